#include "harness/record.h"
#include "commit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness/backend.h"
#include "harness/eval.h"
#include "harness/results.h"
#include "harness/schema.h"

#define D_IMG 784

struct qa_record {
    qa_h5 *file;
    char *final_path, *tmp_path;   /* <run>.h5 and <run>.h5.partial */
    char *grp;                     /* "/runs/<id>" */
};

/* "<head><tail>", allocated: ids are not bounded by a fixed buffer */
static char *joined(const char *head, const char *tail) {
    size_t n = strlen(head) + strlen(tail) + 1;
    char *p = qa_alloc(n);
    snprintf(p, n, "%s%s", head, tail);
    return p;
}

static char *group_path(const qa_record *rec, const char *suffix) { return joined(rec->grp, suffix); }

static void cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) { c++; while (*c == ' ') c++; c[strcspn(c, "\n")] = 0; snprintf(buf, len, "%s", c); }
            break;
        }
    fclose(f);
}

/* "/", "<grp>", "<grp>/eval/<variant>", "<grp>/memory" or "<grp>/timing", allocated */
static char *object_path(const qa_record *rec, qa_run_object obj, const char *variant) {
    if (obj == QA_OBJ_ROOT) return joined("/", "");
    char *suffix = joined(qa_run_object_suffix[obj], obj == QA_OBJ_EVAL ? variant : "");
    char *p = group_path(rec, suffix);
    qa_free(suffix);
    return p;
}

static const void *slot_at(const void *src, qa_value_slot slot) { return (const char *)src + slot.offset; }

static double slot_number(const void *src, qa_value_slot slot) {
    const void *at = slot_at(src, slot);
    switch (slot.kind) {
    case QA_VAL_INT: return *(const int *)at;
    case QA_VAL_LONG: return (double)*(const long *)at;
    default: return *(const double *)at;
    }
}

/* A field with a written_if slot is written only when that value was measured. */
static int field_measured(const qa_run_field *fd, const void *src) {
    if (fd->written_if.kind == QA_VAL_NONE) return 1;
    if (fd->written_if.kind == QA_VAL_STR) {
        const char *text = *(const char *const *)slot_at(src, fd->written_if);
        return text && text[0];
    }
    return slot_number(src, fd->written_if) >= 0;
}

/* Every field of the schema that `step` writes, from src (the step's struct). */
static int write_step(qa_record *rec, qa_record_step step, const void *src, const char *variant, qa_error *err) {
    int rc = QA_OK;
    for (int i = 0; i < qa_n_run_fields && !rc; i++) {
        const qa_run_field *fd = &qa_run_fields[i];
        if (fd->step != step || fd->from.kind == QA_VAL_NONE || !field_measured(fd, src)) continue; /* NONE: written elsewhere */
        char *obj = object_path(rec, fd->object, variant);
        if (qa_run_field_is_text(fd)) {
            const char *text = *(const char *const *)slot_at(src, fd->from);
            rc = qa_h5_attr_set_str(rec->file, obj, qa_run_field_name(fd), text ? text : "", err);
        } else {
            rc = qa_h5_attr_set_f64(rec->file, obj, qa_run_field_name(fd), slot_number(src, fd->from), err);
        }
        qa_free(obj);
    }
    return rc;
}

static int write_provenance(qa_record *rec, const qa_record_run *run, qa_error *err) {
    char cpu[256], created[64];
    cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    char onednn[64], hdf5[32];
    const qa_record_provenance prov = {
        .format_version = QA_RUN_FORMAT_VERSION, .harness_version = QA_VERSION, .git_commit = QA_GIT_COMMIT,
        .recipe = run->recipe_text, .recipe_path = run->recipe_path, .created = created, .host_cpu = cpu,
        .host_cores = (double)sysconf(_SC_NPROCESSORS_ONLN), .onednn = qa_backend_version(onednn, sizeof onednn), .hdf5 = qa_h5_library_version(hdf5, sizeof hdf5),
        .seed = (double)run->seed};
    return write_step(rec, QA_STEP_PROVENANCE, &prov, NULL, err);
}

static int set_status(qa_record *rec, const char *status, qa_error *err) {
    return qa_h5_attr_set_str(rec->file, rec->grp, qa_run_field_name(qa_run_field_find(QA_OBJ_RUN, "status")), status, err);
}

/* uint8 [n, 28, 28] at <grp>/samples/<name> */
static int write_samples(qa_record *rec, const char *name, const float *x, int n, qa_error *err) {
    uint8_t *pix = qa_alloc((size_t)n * D_IMG);
    qa_to_pixels(x, (size_t)n * D_IMG, pix);
    size_t len = strlen(rec->grp) + strlen(name) + 16;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/samples/%s", rec->grp, name);
    int64_t dims[3] = {n, 28, 28};
    int rc = qa_h5_write_checksummed(rec->file, p, QA_H5_U8, pix, 3, dims, err);
    qa_free(p);
    qa_free(pix);
    return rc;
}

static void record_free(qa_record *rec) {
    qa_free(rec->grp);
    qa_free(rec->final_path);
    qa_free(rec->tmp_path);
    qa_free(rec);
}

int qa_record_begin(const char *final_path, const qa_record_run *run, qa_record **out, qa_error *err) {
    qa_record *rec = qa_alloc(sizeof *rec);
    rec->final_path = joined(final_path, "");
    rec->tmp_path = joined(final_path, ".partial");
    rec->grp = joined("/runs/", run->id);
    unlink(rec->tmp_path);
    int rc = qa_h5_create(rec->tmp_path, &rec->file, err);
    if (rc) { record_free(rec); return rc; }
    rc = write_provenance(rec, run, err);
    if (!rc) rc = write_step(rec, QA_STEP_BEGIN, run, NULL, err);
    for (int i = 0; !rc && i < run->n_options; i++)
        rc = qa_h5_attr_set_f64(rec->file, rec->grp, run->options[i].name, run->options[i].value, err);
    if (!rc) rc = set_status(rec, "running", err);
    char *table = group_path(rec, "/train");
    if (!rc) rc = qa_h5_table_create(rec->file, table, 5, "step,loss,lr,grad_norm,seconds", err);
    qa_free(table);
    if (!rc && run->n_references > 0) rc = write_samples(rec, "references", run->references, run->n_references, err);
    if (rc) { qa_record_end(rec, rc, NULL); return rc; }
    *out = rec;
    return QA_OK;
}

int qa_record_train_rows(qa_record *rec, const double *rows, int n_rows, qa_error *err) {
    char *table = group_path(rec, "/train");
    int rc = qa_h5_table_append(rec->file, table, rows, n_rows, err);
    qa_free(table);
    return rc;
}

int qa_record_diverged(qa_record *rec, const char *reason, long step, qa_error *err) {
    const qa_record_failure failure = {.reason = reason, .step = step};
    int rc = set_status(rec, "diverged", err);
    return rc ? rc : write_step(rec, QA_STEP_DIVERGED, &failure, NULL, err);
}

int qa_record_merge_info(qa_record *rec, const qa_record_merge *merge, qa_error *err) {
    int rc = write_step(rec, QA_STEP_MERGE, merge, NULL, err);
    char *sp = group_path(rec, "/method_stats");
    for (int q = 0; !rc && q < merge->n_stats; q++) rc = qa_h5_attr_set_f64(rec->file, sp, merge->stat_name[q], merge->stat_value[q], err);
    qa_free(sp);
    return rc;
}

int qa_record_int8_layers(qa_record *rec, int n_layers, const char *deploy_kernel, qa_error *err) {
    const qa_record_kernels kernels = {.int8_layers = n_layers, .deploy_kernel = deploy_kernel};
    return write_step(rec, QA_STEP_INT8, &kernels, NULL, err);
}

int qa_record_variant(qa_record *rec, const qa_record_eval *ev, qa_error *err) {
    int rc = write_step(rec, QA_STEP_VARIANT, ev, ev->variant, err);
    if (!rc) {
        char *path = object_path(rec, QA_OBJ_EVAL, ev->variant);
        size_t len = strlen(path) + sizeof "/heldout_per_image";
        char *dataset = qa_alloc(len);
        snprintf(dataset, len, "%s/heldout_per_image", path);
        int64_t dims[1] = {ev->n_heldout};
        rc = qa_h5_write_checksummed(rec->file, dataset, QA_H5_F64, ev->heldout_per_image, 1, dims, err);
        qa_free(dataset);
        qa_free(path);
    }
    if (!rc) rc = write_samples(rec, ev->variant, ev->samples, ev->n_samples, err);
    return rc;
}

int qa_record_artifact(qa_record *rec, const qa_artifact_size *size, qa_error *err) {
    return write_step(rec, QA_STEP_ARTIFACT, size, NULL, err);
}

int qa_record_finish(qa_record *rec, const qa_record_costs *costs, qa_error *err) {
    int rc = write_step(rec, QA_STEP_FINISH, costs, NULL, err);
    return rc ? rc : set_status(rec, "done", err);
}

int qa_record_end(qa_record *rec, int status, qa_error *err) {
    int rc = status;
    if (!rc) {
        char kernels[2048];
        qa_backend_kernels(kernels, sizeof kernels);
        const qa_record_kernels used = {.onednn_kernels = kernels, .reference_kernels = qa_backend_ref_kernels()};
        rc = write_step(rec, QA_STEP_END, &used, NULL, err);
    }
    if (!rc) rc = qa_h5_flush(rec->file, err);
    qa_error cerr;
    int crc = qa_h5_close(rec->file, &cerr);
    if (!rc && crc) { if (err) *err = cerr; rc = crc; }
    /* the file was synced by its close; the rename that marks it finished is synced too */
    if (!rc) rc = qa_h5_rename_durable(rec->tmp_path, rec->final_path, err);
    if (rc) unlink(rec->tmp_path);
    record_free(rec);
    return rc;
}

int qa_record_read_recipe(const char *path, size_t max_len, char **text, qa_error *err) {
    qa_h5 *f;
    int rc = qa_h5_open(path, 0, &f, err);
    if (rc) return rc;
    size_t cap = max_len + 1;
    char *old = qa_alloc(cap);
    qa_error e2;
    if (qa_h5_attr_get_str(f, "/", "recipe", old, cap, &e2) != 0) old[0] = 0;
    qa_h5_close(f, &e2);
    *text = old;
    return QA_OK;
}
