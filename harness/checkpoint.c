#include "harness/checkpoint.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int ckpt_save_tensors(const char *path, const qa_tensor_info *tensors, int n_tensors,
                      const float *params, const char *config_keys[], const double config_vals[],
                      int n_config, const qa_ckpt_meta *meta, qa_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    qa_h5 *f;
    int rc = h5_create(tmp, &f, err);
    if (rc) return rc;
    for (int i = 0; i < n_tensors && rc == 0; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", tensors[i].name);
        int64_t dims[2] = {tensors[i].shape[0], tensors[i].shape[1]};
        rc = h5_write(f, p, QA_H5_F32, params + tensors[i].offset, tensors[i].ndim, dims, err);
    }
    for (int i = 0; i < n_config && rc == 0; i++) rc = h5_attr_set_f64(f, "/", config_keys[i], config_vals[i], err);
    if (rc == 0) rc = h5_attr_set_str(f, "/", "kind", meta->kind, err);
    if (rc == 0) rc = h5_attr_set_str(f, "/", "recipe", meta->recipe_text ? meta->recipe_text : "", err);
    if (rc == 0) rc = h5_attr_set_str(f, "/", "git_commit", QA_GIT_COMMIT, err);
    if (rc == 0) rc = h5_attr_set_str(f, "/", "harness_version", QA_VERSION, err);
    if (rc == 0) rc = h5_attr_set_f64(f, "/", "final_loss", meta->final_loss, err);
    if (rc == 0) rc = h5_attr_set_f64(f, "/", "wall_seconds", meta->wall_seconds, err);
    if (rc == 0) rc = h5_attr_set_f64(f, "/", "steps", (double)meta->steps, err);
    if (rc == 0) rc = h5_attr_set_f64(f, "/", "epochs", meta->epochs, err);
    if (rc == 0 && meta->test_accuracy >= 0)
        rc = h5_attr_set_f64(f, "/", "test_accuracy", meta->test_accuracy, err);
    qa_error cerr;
    int crc = h5_close(f, &cerr);
    if (rc == 0 && crc) { *err = cerr; rc = crc; }
    if (rc == 0 && rename(tmp, path) != 0) rc = qa_fail(err, QA_ERR_RUN, "cannot rename %s to %s", tmp, path);
    if (rc) unlink(tmp);
    return rc;
}

static const char *dit_keys[] = {"img", "patch", "dim", "depth", "heads", "mlp_ratio", "n_classes", "n_spare"};

int dit_save(const char *path, const qa_dit *m, const float *params, const qa_ckpt_meta *meta,
             qa_error *err) {
    const qa_dit_config *c = &m->cfg;
    double vals[] = {c->img, c->patch, c->dim, c->depth, c->heads, c->mlp_ratio, c->n_classes, c->n_spare};
    return ckpt_save_tensors(path, m->tensors, m->n_tensors, params ? params : m->params, dit_keys, vals, 8,
                             meta, err);
}

int ckpt_load_tensors(qa_h5 *f, const qa_tensor_info *tensors, int n_tensors, float *params,
                      qa_error *err) {
    for (int i = 0; i < n_tensors; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", tensors[i].name);
        void *dst = params + tensors[i].offset;
        int nd;
        int64_t dims[4];
        int rc = h5_read(f, p, QA_H5_F32, &dst, tensors[i].n, &nd, dims, err);
        if (rc) return rc;
        size_t n = 1;
        for (int j = 0; j < nd; j++) n *= (size_t)dims[j];
        if (n != tensors[i].n)
            return qa_fail(err, QA_ERR_INPUT, "%s: tensor %s has %zu values, the model expects %zu", h5_path(f),
                           tensors[i].name, n, tensors[i].n);
    }
    return QA_OK;
}

int dit_load(const char *path, qa_dit *m, int max_batch, qa_error *err) {
    qa_h5 *f;
    int rc = h5_open(path, 0, &f, err);
    if (rc) return rc;
    double v[8];
    for (int i = 0; i < 8 && rc == 0; i++) rc = h5_attr_get_f64(f, "/", dit_keys[i], &v[i], err);
    if (rc == 0) {
        qa_dit_config c = {(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5], (int)v[6], (int)v[7]};
        rc = dit_create(m, &c, max_batch, err);
        if (rc == 0) rc = ckpt_load_tensors(f, m->tensors, m->n_tensors, m->params, err);
        if (rc) dit_free(m);
    }
    qa_error cerr;
    h5_close(f, &cerr);
    return rc;
}
