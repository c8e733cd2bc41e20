#include "harness/record.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness/backend.h"
#include "harness/eval.h"
#include "harness/results.h"

#define D_IMG 784

struct qa_record {
    qa_h5 *file;
    char final_path[4096], tmp_path[4200];
    char *grp;                     /* "/runs/<id>" */
};

/* "<grp><suffix>", allocated: ids are not bounded by a fixed buffer */
static char *group_path(const qa_record *rec, const char *suffix) {
    size_t n = strlen(rec->grp) + strlen(suffix) + 1;
    char *p = qa_alloc(n);
    snprintf(p, n, "%s%s", rec->grp, suffix);
    return p;
}

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

static int write_provenance(qa_h5 *f, const qa_record_run *run, qa_error *err) {
    char cpu[256], kernels[2048], buf[64];
    cpu_model(cpu, sizeof cpu);
    qa_backend_kernels(kernels, sizeof kernels);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    int rc = h5_attr_set_str(f, "/", "harness_version", QA_VERSION, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "git_commit", QA_GIT_COMMIT, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "recipe", run->recipe_text, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "recipe_path", run->recipe_path, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "created", buf, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "host_cpu", cpu, err);
    if (!rc) rc = h5_attr_set_f64(f, "/", "host_cores", (double)sysconf(_SC_NPROCESSORS_ONLN), err);
    if (!rc) rc = h5_attr_set_str(f, "/", "onednn", qa_backend_version(), err);
    if (!rc) rc = h5_attr_set_str(f, "/", "onednn_kernels", kernels, err);
    if (!rc) rc = h5_attr_set_str(f, "/", "hdf5", h5_library_version(), err);
    if (!rc) rc = h5_attr_set_f64(f, "/", "seed", (double)run->seed, err);
    return rc;
}

/* uint8 [n, 28, 28] at <grp>/samples/<name> */
static int write_samples(qa_record *rec, const char *name, const float *x, int n, qa_error *err) {
    uint8_t *pix = qa_alloc((size_t)n * D_IMG);
    to_pixels(x, (size_t)n * D_IMG, pix);
    size_t len = strlen(rec->grp) + strlen(name) + 16;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/samples/%s", rec->grp, name);
    int64_t dims[3] = {n, 28, 28};
    int rc = h5_write(rec->file, p, QA_H5_U8, pix, 3, dims, err);
    qa_free(p);
    qa_free(pix);
    return rc;
}

static void record_free(qa_record *rec) {
    qa_free(rec->grp);
    qa_free(rec);
}

int qa_record_begin(const char *final_path, const qa_record_run *run, qa_record **out, qa_error *err) {
    qa_record *rec = qa_alloc(sizeof *rec);
    snprintf(rec->final_path, sizeof rec->final_path, "%s", final_path);
    snprintf(rec->tmp_path, sizeof rec->tmp_path, "%s.partial", final_path);
    size_t gl = strlen(run->id) + 8;
    rec->grp = qa_alloc(gl);
    snprintf(rec->grp, gl, "/runs/%s", run->id);
    unlink(rec->tmp_path);
    int rc = h5_create(rec->tmp_path, &rec->file, err);
    if (rc) { record_free(rec); return rc; }
    qa_h5 *f = rec->file;
    const char *grp = rec->grp;
    rc = write_provenance(f, run, err);
    if (!rc) rc = h5_attr_set_str(f, grp, "method", run->method, err);
    if (!rc) rc = h5_attr_set_str(f, grp, "bits", run->bits, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "w_bits", run->w_bits, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "a_bits", run->a_bits, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "rank", run->rank, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "seed", (double)run->seed, err);
    if (!rc) rc = h5_attr_set_str(f, grp, "task", run->task, err);
    if (!rc) rc = h5_attr_set_str(f, grp, "objective", run->objective, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "item_class", run->item_class, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "slot", run->slot, err);
    if (!rc) rc = h5_attr_set_f64(f, grp, "method_version", run->method_version, err);
    for (int i = 0; !rc && i < run->n_options; i++)
        rc = h5_attr_set_f64(f, grp, run->options[i].name, run->options[i].value, err);
    if (!rc) rc = h5_attr_set_str(f, grp, "status", "running", err);
    char *table = group_path(rec, "/train");
    if (!rc) rc = h5_table_create(f, table, 5, "step,loss,lr,grad_norm,seconds", err);
    qa_free(table);
    if (!rc && run->n_references > 0) rc = write_samples(rec, "references", run->references, run->n_references, err);
    if (rc) { qa_record_end(rec, rc, NULL); return rc; }
    *out = rec;
    return QA_OK;
}

int qa_record_train_rows(qa_record *rec, const double *rows, int n_rows, qa_error *err) {
    char *table = group_path(rec, "/train");
    int rc = h5_table_append(rec->file, table, rows, n_rows, err);
    qa_free(table);
    return rc;
}

int qa_record_diverged(qa_record *rec, const char *reason, long step, qa_error *err) {
    int rc = h5_attr_set_str(rec->file, rec->grp, "status", "diverged", err);
    if (!rc) rc = h5_attr_set_str(rec->file, rec->grp, "fail_reason", reason, err);
    if (!rc) rc = h5_attr_set_f64(rec->file, rec->grp, "fail_step", (double)step, err);
    return rc;
}

int qa_record_merge_info(qa_record *rec, const qa_record_merge *merge, qa_error *err) {
    qa_h5 *f = rec->file;
    int rc = h5_attr_set_str(f, rec->grp, "merge_arithmetic", merge->merge_arithmetic, err);
    if (!rc) rc = h5_attr_set_f64(f, rec->grp, "needs_ptq", merge->needs_ptq, err);
    if (!rc && merge->method_note && merge->method_note[0]) {
        rc = h5_attr_set_str(f, rec->grp, "method_note", merge->method_note, err);
        if (!rc) rc = h5_attr_set_str(f, rec->grp, "method_notes", merge->method_notes, err);
    }
    char *sp = group_path(rec, "/method_stats");
    for (int q = 0; !rc && q < merge->n_stats; q++) rc = h5_attr_set_f64(f, sp, merge->stat_name[q], merge->stat_value[q], err);
    qa_free(sp);
    return rc;
}

int qa_record_int8_layers(qa_record *rec, int n_layers, qa_error *err) {
    return h5_attr_set_f64(rec->file, rec->grp, "int8_kernel_layers", n_layers, err);
}

int qa_record_variant(qa_record *rec, const qa_record_eval *ev, qa_error *err) {
    qa_h5 *f = rec->file;
    size_t len = strlen(rec->grp) + strlen(ev->variant) + 32;
    char *path = qa_alloc(len);
    snprintf(path, len, "%s/eval/%s", rec->grp, ev->variant);
    int rc = h5_attr_set_f64(f, path, "heldout_loss", ev->heldout_loss, err);
    if (!rc && ev->subject_fidelity >= 0) rc = h5_attr_set_f64(f, path, "subject_fidelity", ev->subject_fidelity, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "style_score", ev->style_score, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "heldout_loss_se", ev->heldout_loss_se, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "prompt_fidelity_se", ev->prompt_fidelity_se, err);
    if (!rc && ev->subject_fidelity >= 0) rc = h5_attr_set_f64(f, path, "subject_fidelity_se", ev->subject_fidelity_se, err);
    if (!rc && ev->fid >= 0) rc = h5_attr_set_f64(f, path, "fid", ev->fid, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "prompt_fidelity", ev->prompt_fidelity, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "diversity", ev->diversity, err);
    if (!rc && ev->prior_preservation >= 0) rc = h5_attr_set_f64(f, path, "prior_preservation", ev->prior_preservation, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "bits_per_weight", ev->bits_per_weight, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "eval_seconds", ev->eval_seconds, err);
    if (!rc) rc = h5_attr_set_f64(f, path, "sampling_ms_per_image", ev->sampling_ms_per_image, err);
    if (!rc) {
        size_t l2 = len + 32;
        char *p2 = qa_alloc(l2);
        snprintf(p2, l2, "%s/heldout_per_image", path);
        int64_t dims[1] = {ev->n_heldout};
        rc = h5_write(f, p2, QA_H5_F64, ev->heldout_per_image, 1, dims, err);
        qa_free(p2);
    }
    if (!rc) rc = write_samples(rec, ev->variant, ev->samples, ev->n_samples, err);
    qa_free(path);
    return rc;
}

int qa_record_artifact(qa_record *rec, const qa_artifact_size *size, qa_error *err) {
    char *sp = group_path(rec, "/memory");
    int rc = h5_attr_set_f64(rec->file, sp, "artifact_file_bytes", size->file_bytes, err);
    if (!rc) rc = h5_attr_set_f64(rec->file, sp, "artifact_payload_bytes", size->payload_bytes, err);
    if (!rc) rc = h5_attr_set_f64(rec->file, sp, "artifact_float_layers", size->float_layers, err);
    if (!rc) rc = h5_attr_set_f64(rec->file, sp, "artifact_weights", size->weights, err);
    qa_free(sp);
    return rc;
}

int qa_record_finish(qa_record *rec, const qa_record_costs *costs, qa_error *err) {
    qa_h5 *f = rec->file;
    char *p = group_path(rec, "/memory");
    int rc = h5_attr_set_f64(f, p, "frozen_bytes", costs->frozen_bytes, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "trainable_bytes", costs->trainable_bytes, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "gradient_bytes", costs->gradient_bytes, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "optimizer_bytes", costs->optimizer_bytes, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "deployed_bytes", costs->deployed_bytes, err);
    /* the whole model's activations at the largest batch it was created for (not per method) */
    if (!rc) rc = h5_attr_set_f64(f, p, "activation_bytes", costs->activation_bytes, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "activation_batch", costs->activation_batch, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "peak_rss_bytes", costs->peak_rss_bytes, err);
    if (!rc) rc = h5_attr_set_str(f, p, "peak_rss_scope", costs->peak_rss_scope, err);
    qa_free(p);
    p = group_path(rec, "/timing");
    if (!rc) rc = h5_attr_set_f64(f, p, "train_step_median_ms", costs->train_step_median_ms, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "train_seconds", costs->train_seconds, err);
    if (!rc) rc = h5_attr_set_f64(f, p, "merge_seconds", costs->merge_seconds, err);
    qa_free(p);
    if (!rc) rc = h5_attr_set_str(f, rec->grp, "status", "done", err);
    return rc;
}

int qa_record_end(qa_record *rec, int status, qa_error *err) {
    int rc = status;
    if (!rc) {
        char kernels[2048];
        qa_backend_kernels(kernels, sizeof kernels);
        rc = h5_attr_set_str(rec->file, "/", "onednn_kernels", kernels, err);
        if (!rc) rc = h5_attr_set_f64(rec->file, "/", "onednn_reference_kernels", qa_backend_ref_kernels(), err);
    }
    if (!rc) rc = h5_flush(rec->file, err);
    qa_error cerr;
    int crc = h5_close(rec->file, &cerr);
    if (!rc && crc) { if (err) *err = cerr; rc = crc; }
    if (!rc && rename(rec->tmp_path, rec->final_path) != 0)
        rc = qa_fail(err, QA_ERR_RUN, "cannot rename %s to %s", rec->tmp_path, rec->final_path);
    if (rc) unlink(rec->tmp_path);
    record_free(rec);
    return rc;
}

int qa_record_read_recipe(const char *path, size_t max_len, char **text, qa_error *err) {
    qa_h5 *f;
    int rc = h5_open(path, 0, &f, err);
    if (rc) return rc;
    size_t cap = max_len + 1;
    char *old = qa_alloc(cap);
    qa_error e2;
    if (h5_attr_get_str(f, "/", "recipe", old, cap, &e2) != 0) old[0] = 0;
    h5_close(f, &e2);
    *text = old;
    return QA_OK;
}
