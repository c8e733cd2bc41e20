#include "harness/runs.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/results.h"

/* Natural order: digit runs compare by value, so r2 < r16 and s9 < s10. */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9') la++;
            while (b[lb] >= '0' && b[lb] <= '9') lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : (*b ? -1 : 0);
}

static int cmp_runs(const void *a, const void *b) {
    return natural_cmp(((const qa_run_record *)a)->id, ((const qa_run_record *)b)->id);
}

static char *text_copy(const char *text) {
    size_t n = strlen(text) + 1;
    char *copy = qa_alloc(n);
    memcpy(copy, text, n);
    return copy;
}

/* "<a><b><c>", allocated */
static char *joined3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = qa_alloc(n);
    snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

static void *slot_at(void *base, qa_value_slot slot) { return (char *)base + slot.offset; }

/* v into the slot; an int or long slot takes only a whole number in its range (a NaN, 1e300 or
 * 2.5 in a file is bad input, and converting it would be undefined). */
static int store_number(qa_h5 *f, const char *obj, const char *name, void *base, qa_value_slot slot, double v,
                        qa_error *err) {
    void *at = slot_at(base, slot);
    if (slot.kind == QA_VAL_INT || slot.kind == QA_VAL_LONG) {
        double lo = slot.kind == QA_VAL_INT ? (double)INT_MIN : -9007199254740992.0;
        double hi = slot.kind == QA_VAL_INT ? (double)INT_MAX : 9007199254740992.0;
        if (!(v >= lo && v <= hi) || v != floor(v))
            return qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s is %g, expected a whole number in [%.0f, %.0f]",
                           qa_h5_path(f), name, obj, v, lo, hi);
        if (slot.kind == QA_VAL_INT) *(int *)at = (int)v;
        else *(long *)at = (long)v;
    } else {
        *(double *)at = v;
    }
    return QA_OK;
}

/* One field of the schema from object obj into base (a qa_run_record or qa_run_eval); *present
 * says whether the file has it. A missing field gets the schema's absent value. */
static int read_field(qa_h5 *f, const char *obj, const qa_run_field *fd, void *base, int *present, qa_error *err) {
    const char *name = qa_run_field_name(fd);
    *present = qa_h5_has_attr(f, obj, name);
    if (!*present && fd->required) return qa_fail(err, QA_ERR_INPUT, "%s: missing attribute '%s' of %s", qa_h5_path(f), name, obj);
    if (qa_run_field_is_text(fd)) {
        char **dst = slot_at(base, fd->to);
        if (*present) return qa_h5_attr_get_text(f, obj, name, dst, err);
        *dst = text_copy(fd->absent_text ? fd->absent_text : "");
        return QA_OK;
    }
    double v = fd->absent;
    int rc = *present ? qa_h5_attr_get_f64(f, obj, name, &v, err) : QA_OK;
    return rc ? rc : store_number(f, obj, name, base, fd->to, v, err);
}

/* Every field of the schema on object kind obj_kind, read from the HDF5 object obj. */
static int read_object(qa_h5 *f, qa_run_object obj_kind, const char *obj, void *base, unsigned *measured, qa_error *err) {
    int rc = QA_OK;
    for (int i = 0; i < qa_n_run_fields && !rc; i++) {
        const qa_run_field *fd = &qa_run_fields[i];
        if (fd->object != obj_kind) continue;
        int present = 0;
        rc = read_field(f, obj, fd, base, &present, err);
        if (present && fd->metric && measured) *measured |= 1u << (fd->metric - 1);
    }
    return rc;
}

static void free_object_text(qa_run_object obj_kind, void *base) {
    for (int i = 0; i < qa_n_run_fields; i++)
        if (qa_run_fields[i].object == obj_kind && qa_run_field_is_text(&qa_run_fields[i])) {
            char **text = slot_at(base, qa_run_fields[i].to);
            qa_free(*text);
            *text = NULL;
        }
}

/* "[d0, d1, ...]" of a dataset's shape, for messages */
static void shape_text(char *buf, size_t len, int nd, const int64_t *dims) {
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && at < len; i++) at += (size_t)snprintf(buf + at, len - at, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

/* The dataset at path, read as `type` and checked to have ndim dimensions and, after the first,
 * the sizes in tail (0: any); a shape the readers would index past is an error naming the file,
 * the dataset and both shapes. *rows: the first dimension. */
static int read_shaped(qa_h5 *f, const char *path, int type, int ndim, const int64_t *tail, void **data, int *rows,
                       qa_error *err) {
    void *values = NULL;
    int nd = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    int rc = qa_h5_read(f, path, type, &values, 0, &nd, dims, err);
    if (rc) return rc;
    int ok = nd == ndim && dims[0] <= 100000000;
    for (int i = 1; ok && i < ndim; i++) ok = !tail[i - 1] || dims[i] == tail[i - 1];
    if (!ok) {
        char got[96], want[96] = "[n";
        shape_text(got, sizeof got, nd, dims);
        for (int i = 1; i < ndim; i++) {
            size_t at = strlen(want);
            snprintf(want + at, sizeof want - at, ", %lld", (long long)tail[i - 1]);
        }
        strcat(want, "]");
        qa_free(values);
        return qa_fail(err, QA_ERR_INPUT, "%s: dataset %s has shape %s, expected %s", qa_h5_path(f), path, got, want);
    }
    *data = values;
    *rows = (int)dims[0];
    return QA_OK;
}

/* <grp>/<name>: f64 of ndim dimensions, cols columns when 2-D */
static int read_dataset(qa_h5 *f, const char *grp, const char *name, int ndim, int cols, double **data, int *rows,
                        qa_error *err) {
    char *p = joined3(grp, "/", name);
    const int64_t tail[1] = {cols};
    void *values = NULL;
    int rc = read_shaped(f, p, QA_H5_F64, ndim, tail, &values, rows, err);
    if (!rc) *data = values;
    qa_free(p);
    return rc;
}

/* uint8 samples [n, 28, 28] at path */
static int read_samples(qa_h5 *f, const char *path, uint8_t **pix, int *n, qa_error *err) {
    const int64_t tail[2] = {28, 28};
    void *data = NULL;
    int rc = read_shaped(f, path, QA_H5_U8, 3, tail, &data, n, err);
    if (!rc) *pix = data;
    return rc;
}

/* The members (attrs 0) or attribute names (attrs 1) of path; none when path is absent. */
static int names_at(qa_h5 *f, const char *path, int attrs, char ***names, qa_error *err) {
    *names = NULL;
    if (!qa_h5_exists(f, path)) return 0;
    return attrs ? qa_h5_attr_names(f, path, names, err) : qa_h5_members(f, path, names, err);
}

/* The deploy variants under <grp>/eval (at most QA_MAX_VARIANTS, in name order). */
static int read_variants(qa_h5 *f, const char *grp, qa_run_record *rec, qa_error *err) {
    char *eval = joined3(grp, "/eval", "");
    char **names;
    int n = names_at(f, eval, 0, &names, err), rc = n < 0 ? n : QA_OK;
    for (int i = 0; i < n && i < QA_MAX_VARIANTS && !rc; i++) {
        qa_run_eval *ev = &rec->eval[rec->n_eval++];
        ev->variant = text_copy(names[i]);
        char *obj = joined3(eval, "/", names[i]);
        rc = read_object(f, QA_OBJ_EVAL, obj, ev, &ev->measured, err);
        if (!rc) rc = read_dataset(f, obj, "heldout_per_image", 1, 0, &ev->heldout_per_image, &ev->n_images, err);
        qa_free(obj);
    }
    if (n > 0) qa_h5_names_free(names, n);
    qa_free(eval);
    return rc;
}

/* The method's own measurements (<grp>/method_stats), at most QA_RUN_MAX_STATS. */
static int read_method_stats(qa_h5 *f, const char *grp, qa_run_record *rec, qa_error *err) {
    char *p = joined3(grp, "/method_stats", "");
    char **names;
    int n = names_at(f, p, 1, &names, err), rc = n < 0 ? n : QA_OK;
    for (int i = 0; i < n && rec->n_stats < QA_RUN_MAX_STATS && !rc; i++) {
        rc = qa_h5_attr_get_f64(f, p, names[i], &rec->stat_value[rec->n_stats], err);
        if (!rc) rec->stat_name[rec->n_stats++] = text_copy(names[i]);
    }
    if (n > 0) qa_h5_names_free(names, n);
    qa_free(p);
    return rc;
}

/* Every sample set under <grp>/samples, read once so that their shapes and checksums are
 * checked when the file is loaded, not first when a plot draws them. */
static int check_samples(qa_h5 *f, const char *grp, qa_error *err) {
    char *dir = joined3(grp, "/samples", "");
    char **names;
    int n = names_at(f, dir, 0, &names, err), rc = n < 0 ? n : QA_OK;
    for (int i = 0; i < n && !rc; i++) {
        char *p = joined3(dir, "/", names[i]);
        uint8_t *pix = NULL;
        int count;
        rc = read_samples(f, p, &pix, &count, err);
        qa_free(pix);
        qa_free(p);
    }
    if (n > 0) qa_h5_names_free(names, n);
    qa_free(dir);
    return rc;
}

/* id = <method>-<bits>-r<rank>[-<axis values>]-s<seed>: the axis values */
static char *axes_of(const qa_run_record *rec) {
    char head[128];
    snprintf(head, sizeof head, "%s-%s-r%d-", rec->method, rec->bits, rec->rank);
    const char *tail = strrchr(rec->id, '-');
    size_t hl = strlen(head);
    if (!tail || strncmp(rec->id, head, hl) != 0 || rec->id + hl >= tail) return text_copy("");
    char *axes = qa_alloc((size_t)(tail - rec->id - (ptrdiff_t)hl) + 1);
    memcpy(axes, rec->id + hl, (size_t)(tail - rec->id - (ptrdiff_t)hl));
    return axes;
}

/* The file's format version first: a newer file may have moved anything else. */
static int check_version(qa_h5 *f, int *version_error, qa_error *err) {
    const qa_run_field *fd = qa_run_field_find(QA_OBJ_ROOT, QA_RUN_FORMAT_ATTR);
    double version = 0;
    if (qa_h5_has_attr(f, "/", fd->name)) {
        int rc = qa_h5_attr_get_f64(f, "/", fd->name, &version, err);
        if (rc) return rc;
        if (version == 0) version = -1; /* 0 is not a version */
    }
    int rc = qa_run_format_check(qa_h5_path(f), version, err);
    /* a newer version is for a newer build to read; 2.5, -1 or NaN is a damaged file */
    *version_error = rc != 0 && isfinite(version) && version > QA_RUN_FORMAT_VERSION && version == floor(version);
    return rc;
}

/* The single run group of the file, or an error saying what is there instead. */
static int the_run_group(qa_h5 *f, char **id, qa_error *err) {
    if (!qa_h5_exists(f, "/runs")) return qa_fail(err, QA_ERR_INPUT, "%s: no /runs group (not a run file)", qa_h5_path(f));
    char **names;
    int n = qa_h5_members(f, "/runs", &names, err);
    if (n < 0) return n;
    int rc = n == 1 ? QA_OK : qa_fail(err, QA_ERR_INPUT, "%s: expected exactly one group under /runs, found %d", qa_h5_path(f), n);
    if (!rc) *id = text_copy(names[0]);
    qa_h5_names_free(names, n);
    return rc;
}

/* The run's fields on "/", its group, memory and timing, then its tables and variants. */
static int read_run(qa_h5 *f, qa_run_record *rec, qa_error *err) {
    static const qa_run_object record_objects[] = {QA_OBJ_ROOT, QA_OBJ_RUN, QA_OBJ_MEMORY, QA_OBJ_TIMING};
    char *grp = joined3("/runs/", rec->id, "");
    int rc = QA_OK;
    for (size_t k = 0; k < sizeof record_objects / sizeof record_objects[0] && !rc; k++) {
        qa_run_object obj = record_objects[k];
        char *path = obj == QA_OBJ_ROOT ? joined3("/", "", "") : joined3(grp, qa_run_object_suffix[obj], "");
        rc = read_object(f, obj, path, rec, NULL, err);
        qa_free(path);
    }
    char *train = joined3(grp, "/train", "");
    if (!rc && qa_h5_exists(f, train)) rc = read_dataset(f, grp, "train", 2, 5, &rec->train, &rec->n_train, err);
    qa_free(train);
    if (!rc) rc = read_method_stats(f, grp, rec, err);
    if (!rc) rc = read_variants(f, grp, rec, err);
    if (!rc) rc = check_samples(f, grp, err);
    qa_free(grp);
    return rc;
}

void qa_runs_record_free(qa_run_record *r) {
    qa_free(r->file);
    qa_free(r->id);
    qa_free(r->axes);
    qa_free(r->train);
    free_object_text(QA_OBJ_ROOT, r);
    free_object_text(QA_OBJ_RUN, r);
    free_object_text(QA_OBJ_MEMORY, r);
    free_object_text(QA_OBJ_TIMING, r);
    for (int j = 0; j < r->n_eval; j++) {
        qa_free(r->eval[j].variant);
        qa_free(r->eval[j].heldout_per_image);
        free_object_text(QA_OBJ_EVAL, &r->eval[j]);
    }
    for (int j = 0; j < r->n_stats; j++) qa_free(r->stat_name[j]);
    memset(r, 0, sizeof *r);
}

static int load_one(const char *path, qa_run_record *rec, int *version_error, qa_error *err) {
    memset(rec, 0, sizeof *rec);
    *version_error = 0;
    qa_h5 *f;
    int rc = qa_h5_open(path, 0, &f, err);
    if (rc) return rc;
    rc = check_version(f, version_error, err);
    if (!rc) rc = the_run_group(f, &rec->id, err);
    if (!rc) {
        rec->file = text_copy(path);
        rc = read_run(f, rec, err);
        if (!rc) rec->axes = axes_of(rec);
        if (rc) qa_runs_record_free(rec);
    } else {
        qa_free(rec->id);
        rec->id = NULL;
    }
    qa_error cerr;
    qa_h5_close(f, &cerr);
    return rc;
}

int qa_runs_load_file(const char *path, qa_run_record *rec, qa_error *err) {
    int version_error;
    return load_one(path, rec, &version_error, err);
}

int qa_runs_check_file(const char *path, int *damaged, qa_error *err) {
    qa_run_record rec;
    int version_error;
    int rc = load_one(path, &rec, &version_error, err);
    if (!rc) qa_runs_record_free(&rec);
    *damaged = rc != 0 && !version_error;
    return rc;
}

static int is_run_file(const char *name) {
    size_t len = strlen(name);
    return len >= 4 && strcmp(name + len - 3, ".h5") == 0 && strcmp(name, "summary.h5") != 0;
}

typedef struct {
    qa_run_record *runs;
    int n, cap;
    qa_run_skipped *skipped;
    int n_skipped, cap_skipped;
} folder;

static void *grown(void *items, int n, int *cap, size_t size) {
    if (n < *cap) return items;
    *cap = *cap ? 2 * *cap : 16;
    return realloc(items, size * (size_t)*cap);
}

static void skip_file(folder *fo, const char *path, const qa_error *why) {
    fprintf(stderr, "warning: skipping %s: %s\n", path, why->msg);
    fo->skipped = grown(fo->skipped, fo->n_skipped, &fo->cap_skipped, sizeof *fo->skipped);
    fo->skipped[fo->n_skipped++] = (qa_run_skipped){text_copy(path), text_copy(why->msg)};
}

/* Every run file of dir into fo; with skip_damaged, a file that is not a readable run file of a
 * known version is skipped, else it is the error. */
static int load_folder(const char *dir, int skip_damaged, folder *fo, qa_error *err) {
    DIR *d = opendir(dir);
    if (!d) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open results folder", dir);
    struct dirent *e;
    int rc = QA_OK;
    while (!rc && (e = readdir(d))) {
        if (!is_run_file(e->d_name)) continue;
        char *path = joined3(dir, "/", e->d_name);
        fo->runs = grown(fo->runs, fo->n, &fo->cap, sizeof *fo->runs);
        int version_error;
        qa_error why = {0, ""};
        rc = load_one(path, &fo->runs[fo->n], &version_error, &why);
        if (!rc) fo->n++;
        else if (skip_damaged && !version_error) { skip_file(fo, path, &why); rc = QA_OK; }
        else if (err) *err = why;
        qa_free(path);
    }
    closedir(d);
    return rc;
}

int qa_runs_scan(const char *dir, qa_run_record **out, int *n_out, qa_run_skipped **skipped, int *n_skipped, qa_error *err) {
    folder fo = {0};
    int rc = load_folder(dir, skipped != NULL, &fo, err);
    if (rc) {
        qa_runs_free(fo.runs, fo.n);
        qa_runs_skipped_free(fo.skipped, fo.n_skipped);
        return rc;
    }
    if (fo.n > 1) qsort(fo.runs, (size_t)fo.n, sizeof *fo.runs, cmp_runs);
    *out = fo.runs;
    *n_out = fo.n;
    if (skipped) { *skipped = fo.skipped; *n_skipped = fo.n_skipped; }
    return QA_OK;
}

int qa_runs_load(const char *dir, qa_run_record **out, int *n_out, qa_error *err) {
    return qa_runs_scan(dir, out, n_out, NULL, NULL, err);
}

void qa_runs_free(qa_run_record *runs, int n) {
    for (int i = 0; i < n; i++) qa_runs_record_free(&runs[i]);
    free(runs);
}

void qa_runs_skipped_free(qa_run_skipped *skipped, int n) {
    for (int i = 0; i < n; i++) {
        qa_free(skipped[i].file);
        qa_free(skipped[i].why);
    }
    free(skipped);
}

int qa_runs_eval_metric(const qa_run_eval *e, int m, double *value) {
    const qa_run_field *fd = qa_metric_field(m);
    *value = *(const double *)((const char *)e + fd->to.offset);
    return fd->written_if.kind == QA_VAL_NONE || (e->measured >> m & 1u);
}

int qa_runs_samples(const qa_run_record *run, const char *which, uint8_t **pix, int *n, qa_error *err) {
    qa_h5 *f;
    int rc = qa_h5_open(run->file, 0, &f, err);
    if (rc) return rc;
    size_t len = strlen(run->id) + strlen(which) + sizeof "/runs//samples/";
    char *p = qa_alloc(len);
    snprintf(p, len, "/runs/%s/samples/%s", run->id, which);
    rc = read_samples(f, p, pix, n, err);
    qa_free(p);
    qa_error cerr;
    qa_h5_close(f, &cerr);
    return rc;
}
