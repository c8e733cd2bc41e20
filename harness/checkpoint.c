#include "harness/checkpoint.h"
#include "commit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Close (and sync) a file written under the temporary name tmp and, if all went well (rc),
 * rename it to path durably; on any failure the temporary file is removed. */
static int finish_file(qa_h5 *f, const char *tmp, const char *path, int rc, qa_error *err) {
    qa_error cerr;
    int crc = qa_h5_close(f, &cerr);
    if (rc == 0 && crc) { *err = cerr; rc = crc; }
    if (rc == 0) rc = qa_h5_rename_durable(tmp, path, err);
    if (rc) unlink(tmp);
    return rc;
}

int qa_ckpt_save_tensors(const char *path, const qa_tensor_info *tensors, int n_tensors,
                      const float *params, const char *config_keys[], const double config_vals[],
                      int n_config, const qa_ckpt_meta *meta, qa_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    qa_h5 *f;
    int rc = qa_h5_create(tmp, &f, err);
    if (rc) return rc;
    for (int i = 0; i < n_tensors && rc == 0; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", tensors[i].name);
        int64_t dims[2] = {tensors[i].shape[0], tensors[i].shape[1]};
        rc = qa_h5_write_checksummed(f, p, QA_H5_F32, params + tensors[i].offset, tensors[i].ndim, dims, err);
    }
    for (int i = 0; i < n_config && rc == 0; i++) rc = qa_h5_attr_set_f64(f, "/", config_keys[i], config_vals[i], err);
    if (rc == 0) rc = qa_h5_attr_set_str(f, "/", "kind", meta->kind, err);
    if (rc == 0) rc = qa_h5_attr_set_str(f, "/", "recipe", meta->recipe_text ? meta->recipe_text : "", err);
    if (rc == 0) rc = qa_h5_attr_set_str(f, "/", "git_commit", QA_GIT_COMMIT, err);
    if (rc == 0) rc = qa_h5_attr_set_str(f, "/", "harness_version", QA_VERSION, err);
    if (rc == 0) rc = qa_h5_attr_set_f64(f, "/", "final_loss", meta->final_loss, err);
    if (rc == 0) rc = qa_h5_attr_set_f64(f, "/", "wall_seconds", meta->wall_seconds, err);
    if (rc == 0) rc = qa_h5_attr_set_f64(f, "/", "steps", (double)meta->steps, err);
    if (rc == 0) rc = qa_h5_attr_set_f64(f, "/", "epochs", meta->epochs, err);
    if (rc == 0 && meta->test_accuracy >= 0)
        rc = qa_h5_attr_set_f64(f, "/", "test_accuracy", meta->test_accuracy, err);
    return finish_file(f, tmp, path, rc, err);
}

static const char *dit_keys[] = {"img", "patch", "dim", "depth", "heads", "mlp_ratio", "n_classes", "n_spare"};

int qa_dit_save(const char *path, const qa_dit *m, const float *params, const qa_ckpt_meta *meta,
             qa_error *err) {
    const qa_dit_config *c = &m->cfg;
    double vals[] = {c->img, c->patch, c->dim, c->depth, c->heads, c->mlp_ratio, c->n_classes, c->n_spare};
    return qa_ckpt_save_tensors(path, m->tensors, m->n_tensors, params ? params : m->params, dit_keys, vals, 8,
                             meta, err);
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *dims) {
    if (ndim == 1) snprintf(buf, len, "[%lld]", (long long)dims[0]);
    else if (ndim == 2) snprintf(buf, len, "[%lld, %lld]", (long long)dims[0], (long long)dims[1]);
    else snprintf(buf, len, "%d dimensions", ndim);
}

/* The stored shape must be the model's, not just hold as many values: a transposed weight has
 * the right count and loads as garbage. */
static int check_shape(qa_h5 *f, const qa_tensor_info *t, int nd, const int64_t *dims, qa_error *err) {
    int64_t want[2] = {t->shape[0], t->shape[1]};
    int same = nd == t->ndim;
    for (int j = 0; same && j < nd; j++) same = dims[j] == want[j];
    if (same) return QA_OK;
    char got_s[64], want_s[64];
    format_shape(got_s, sizeof got_s, nd, dims);
    format_shape(want_s, sizeof want_s, t->ndim, want);
    return qa_fail(err, QA_ERR_INPUT, "%s: tensor %s is stored as %s, the model expects %s", qa_h5_path(f), t->name,
                   got_s, want_s);
}

/* A NaN or Inf in a base would only show later as a run "diverging at step 0". */
static int check_finite(qa_h5 *f, const qa_tensor_info *t, const float *x, qa_error *err) {
    for (size_t j = 0; j < t->n; j++)
        if (!isfinite(x[j]))
            return qa_fail(err, QA_ERR_INPUT, "%s: tensor %s holds a value that is not finite (%g at index %zu): "
                           "the checkpoint is damaged", qa_h5_path(f), t->name, (double)x[j], j);
    return QA_OK;
}

int qa_ckpt_load_tensors(qa_h5 *f, const qa_tensor_info *tensors, int n_tensors, float *params,
                      qa_error *err) {
    for (int i = 0; i < n_tensors; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", tensors[i].name);
        void *dst = params + tensors[i].offset;
        int nd;
        int64_t dims[4];
        int rc = qa_h5_read(f, p, QA_H5_F32, &dst, tensors[i].n, &nd, dims, err);
        if (!rc) rc = check_shape(f, &tensors[i], nd, dims, err);
        if (!rc) rc = check_finite(f, &tensors[i], dst, err);
        if (rc) return rc;
    }
    return QA_OK;
}

/* A configuration attribute: one finite integer of a plausible size (casting a NaN or 1e300 to
 * int is undefined); the model's own limits are checked by dit_config_check. */
static int read_config_int(qa_h5 *f, const char *key, int *out, qa_error *err) {
    double v;
    int rc = qa_h5_attr_get_f64(f, "/", key, &v, err);
    if (rc) return rc;
    if (!isfinite(v) || v != floor(v) || fabs(v) > 1e6)
        return qa_fail(err, QA_ERR_INPUT, "%s: configuration attribute %s = %g is not an integer the model can take",
                       qa_h5_path(f), key, v);
    *out = (int)v;
    return QA_OK;
}

static int dit_read_config(qa_h5 *f, qa_dit_config *c, qa_error *err) {
    int *fields[] = {&c->img, &c->patch, &c->dim, &c->depth, &c->heads, &c->mlp_ratio, &c->n_classes, &c->n_spare};
    _Static_assert(sizeof fields / sizeof fields[0] == sizeof dit_keys / sizeof dit_keys[0], "one field per key");
    for (int i = 0; i < 8; i++) {
        int rc = read_config_int(f, dit_keys[i], fields[i], err);
        if (rc) return rc;
    }
    return qa_dit_config_check(c, qa_h5_path(f), err);
}

int qa_dit_load(const char *path, qa_dit *m, int max_batch, qa_error *err) {
    qa_h5 *f;
    int rc = qa_h5_open(path, 0, &f, err);
    if (rc) return rc;
    qa_dit_config c;
    rc = dit_read_config(f, &c, err);
    if (rc == 0) {
        rc = qa_dit_create(m, &c, max_batch, err);
        if (rc == 0) rc = qa_ckpt_load_tensors(f, m->tensors, m->n_tensors, m->params, err);
        if (rc) qa_dit_free(m);
    }
    qa_error cerr;
    qa_h5_close(f, &cerr);
    return rc;
}

/* Every /params dataset, rewritten with its checksum. */
static int copy_params_checksummed(qa_h5 *in, qa_h5 *out, qa_error *err) {
    enum { MAX_TENSORS = 4096 };
    char (*names)[64] = qa_alloc(sizeof(*names) * MAX_TENSORS);
    int n = qa_h5_list(in, "/params", names, MAX_TENSORS, err), rc = n < 0 ? n : QA_OK;
    for (int i = 0; i < n && rc == 0; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", names[i]);
        void *data = NULL;
        int nd;
        int64_t dims[4];
        rc = qa_h5_read(in, p, QA_H5_F32, &data, 0, &nd, dims, err);
        if (rc == 0) rc = qa_h5_write_checksummed(out, p, QA_H5_F32, data, nd, dims, err);
        qa_free(data);
    }
    qa_free(names);
    return rc;
}

/* Every root attribute as it is (numbers and strings): the provenance stays the original's. */
static int copy_root_attrs(qa_h5 *in, qa_h5 *out, qa_error *err) {
    enum { MAX_ATTRS = 256, MAX_TEXT = 1 << 20 };
    char (*names)[64] = qa_alloc(sizeof(*names) * MAX_ATTRS);
    char *text = qa_alloc(MAX_TEXT);
    int n = qa_h5_attr_list(in, "/", names, MAX_ATTRS, err), rc = n < 0 ? n : QA_OK;
    for (int i = 0; i < n && rc == 0; i++) {
        double v;
        qa_error not_number;
        if (qa_h5_attr_get_f64(in, "/", names[i], &v, &not_number) == QA_OK)
            rc = qa_h5_attr_set_f64(out, "/", names[i], v, err);
        else if ((rc = qa_h5_attr_get_str(in, "/", names[i], text, MAX_TEXT, err)) == QA_OK)
            rc = qa_h5_attr_set_str(out, "/", names[i], text, err);
    }
    qa_free(text);
    qa_free(names);
    return rc;
}

int qa_ckpt_upgrade(const char *in_path, const char *out_path, qa_error *err) {
    qa_h5 *in, *out;
    int rc = qa_h5_open(in_path, 0, &in, err);
    if (rc) return rc;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", out_path);
    rc = qa_h5_create(tmp, &out, err);
    qa_error cerr;
    if (rc) { qa_h5_close(in, &cerr); return rc; }
    rc = copy_params_checksummed(in, out, err);
    if (rc == 0) rc = copy_root_attrs(in, out, err);
    if (rc == 0) rc = qa_h5_attr_set_str(out, "/", "checksums_added_by", QA_GIT_COMMIT, err);
    qa_h5_close(in, &cerr);
    return finish_file(out, tmp, out_path, rc, err);
}
