#include "harness/classifier.h"

#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/checkpoint.h"
#include "harness/nn.h"
#include "harness/rng.h"

static size_t add_t(qa_classifier *c, const char *name, int rows, int cols) {
    qa_tensor_info *t = &c->tensors[c->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = c->n_params;
    t->n = (size_t)rows * cols;
    t->ndim = cols > 1 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    c->n_params += t->n;
    return t->offset;
}

int qa_clf_create(qa_classifier *c, int max_batch, qa_error *err) {
    (void)err;
    memset(c, 0, sizeof *c);
    c->max_batch = max_batch;
    size_t o[8];
    o[0] = add_t(c, "conv1.weight", 32, 9);
    o[1] = add_t(c, "conv1.bias", 32, 1);
    o[2] = add_t(c, "conv2.weight", 64, 9 * 32);
    o[3] = add_t(c, "conv2.bias", 64, 1);
    o[4] = add_t(c, "fc1.weight", QA_CLF_FEATURES, 7 * 7 * 64);
    o[5] = add_t(c, "fc1.bias", QA_CLF_FEATURES, 1);
    o[6] = add_t(c, "fc2.weight", QA_CLF_CLASSES, QA_CLF_FEATURES);
    o[7] = add_t(c, "fc2.bias", QA_CLF_CLASSES, 1);
    c->params = qa_alloc(sizeof(float) * c->n_params);
    c->grads = qa_alloc(sizeof(float) * c->n_params);
    float **w[8] = {&c->c1w, &c->c1b, &c->c2w, &c->c2b, &c->f1w, &c->f1b, &c->f2w, &c->f2b};
    for (int i = 0; i < 8; i++) *w[i] = c->params + o[i];
    size_t B = (size_t)max_batch;
    c->col1 = qa_alloc(sizeof(float) * B * 784 * 9);
    c->a1 = qa_alloc(sizeof(float) * B * 784 * 32);
    c->r1 = qa_alloc(sizeof(float) * B * 784 * 32);
    c->p1 = qa_alloc(sizeof(float) * B * 196 * 32);
    c->arg1 = qa_alloc(sizeof(int) * B * 196 * 32);
    c->col2 = qa_alloc(sizeof(float) * B * 196 * 288);
    c->a2 = qa_alloc(sizeof(float) * B * 196 * 64);
    c->r2 = qa_alloc(sizeof(float) * B * 196 * 64);
    c->p2 = qa_alloc(sizeof(float) * B * 49 * 64);
    c->arg2 = qa_alloc(sizeof(int) * B * 49 * 64);
    c->h = qa_alloc(sizeof(float) * B * QA_CLF_FEATURES);
    c->feat = qa_alloc(sizeof(float) * B * QA_CLF_FEATURES);
    c->logits = qa_alloc(sizeof(float) * B * QA_CLF_CLASSES);
    c->probs = qa_alloc(sizeof(float) * B * QA_CLF_CLASSES);
    c->d_logits = qa_alloc(sizeof(float) * B * QA_CLF_CLASSES);
    c->d_feat = qa_alloc(sizeof(float) * B * QA_CLF_FEATURES);
    c->d_h = qa_alloc(sizeof(float) * B * QA_CLF_FEATURES);
    c->d_p2 = qa_alloc(sizeof(float) * B * 49 * 64);
    c->d_r2 = qa_alloc(sizeof(float) * B * 196 * 64);
    c->d_col2 = qa_alloc(sizeof(float) * B * 196 * 288);
    c->d_p1 = qa_alloc(sizeof(float) * B * 196 * 32);
    c->d_r1 = qa_alloc(sizeof(float) * B * 784 * 32);
    c->d_col1 = qa_alloc(sizeof(float) * B * 784 * 9);
    return QA_OK;
}

void qa_clf_free(qa_classifier *c) {
    float *ps[] = {c->params, c->grads, c->col1, c->a1, c->r1, c->p1, c->col2, c->a2, c->r2, c->p2, c->h,
                   c->feat, c->logits, c->probs, c->d_logits, c->d_feat, c->d_h, c->d_p2, c->d_r2, c->d_col2,
                   c->d_p1, c->d_r1, c->d_col1};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_free(c->arg1);
    qa_free(c->arg2);
    memset(c, 0, sizeof *c);
}

void qa_clf_init_weights(qa_classifier *c, uint64_t seed) {
    qa_rng *r = qa_rng_new(qa_seed_for(seed, "classifier-init"));
    memset(c->params, 0, sizeof(float) * c->n_params);
    for (int i = 0; i < c->n_tensors; i += 2) { /* He-uniform on weights, zero biases */
        qa_tensor_info *t = &c->tensors[i];
        float bound = sqrtf(6.0f / (float)t->shape[1]);
        qa_rng_fill_uniform(r, c->params + t->offset, t->n, -bound, bound);
    }
    qa_rng_free(r);
}

/* col[(b,y,x), (ky*3+kx)*C + ch] = x[b, y+ky-1, x+kx-1, ch] (0 outside) */
static void im2col(float *col, const float *x, int B, int S, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++) {
                float *row = col + (((size_t)b * S + y) * S + xx) * 9 * C;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int yy = y + ky - 1, xs = xx + kx - 1;
                        float *dst = row + (ky * 3 + kx) * C;
                        if (yy < 0 || yy >= S || xs < 0 || xs >= S) memset(dst, 0, sizeof(float) * C);
                        else memcpy(dst, x + (((size_t)b * S + yy) * S + xs) * C, sizeof(float) * C);
                    }
            }
}

static void col2im(float *dx, const float *dcol, int B, int S, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++) {
                const float *row = dcol + (((size_t)b * S + y) * S + xx) * 9 * C;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int yy = y + ky - 1, xs = xx + kx - 1;
                        if (yy < 0 || yy >= S || xs < 0 || xs >= S) continue;
                        float *dst = dx + (((size_t)b * S + yy) * S + xs) * C;
                        const float *src = row + (ky * 3 + kx) * C;
                        for (int ch = 0; ch < C; ch++) dst[ch] += src[ch];
                    }
            }
}

/* 2x2 max pool, stride 2, NHWC; arg keeps the flat input index of each max. */
static void maxpool_forward(float *y, int *arg, const float *x, int B, int S, int C) {
    int So = S / 2;
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < So; oy++)
            for (int ox = 0; ox < So; ox++)
                for (int ch = 0; ch < C; ch++) {
                    size_t best = (((size_t)b * S + 2 * oy) * S + 2 * ox) * C + ch;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            size_t i = (((size_t)b * S + 2 * oy + dy) * S + 2 * ox + dx) * C + ch;
                            if (x[i] > x[best]) best = i;
                        }
                    size_t o = (((size_t)b * So + oy) * So + ox) * C + ch;
                    y[o] = x[best];
                    arg[o] = (int)best;
                }
}

void qa_clf_forward(qa_classifier *c, const float *x, int B) {
    QA_ASSERT(B <= c->max_batch);
    c->x = x;
    c->last_B = B;
    im2col(c->col1, x, B, 28, 1);
    qa_linear_forward(c->a1, c->col1, c->c1w, c->c1b, B * 784, 9, 32);
    qa_relu_forward(c->r1, c->a1, (size_t)B * 784 * 32);
    maxpool_forward(c->p1, c->arg1, c->r1, B, 28, 32);
    im2col(c->col2, c->p1, B, 14, 32);
    qa_linear_forward(c->a2, c->col2, c->c2w, c->c2b, B * 196, 288, 64);
    qa_relu_forward(c->r2, c->a2, (size_t)B * 196 * 64);
    maxpool_forward(c->p2, c->arg2, c->r2, B, 14, 64);
    qa_linear_forward(c->h, c->p2, c->f1w, c->f1b, B, 49 * 64, QA_CLF_FEATURES);
    qa_relu_forward(c->feat, c->h, (size_t)B * QA_CLF_FEATURES);
    qa_linear_forward(c->logits, c->feat, c->f2w, c->f2b, B, QA_CLF_FEATURES, QA_CLF_CLASSES);
}

float qa_clf_backward(qa_classifier *c, const int *labels) {
    int B = c->last_B;
    qa_tensor_info *t = c->tensors;
    float *g[8];
    for (int i = 0; i < 8; i++) g[i] = c->grads + t[i].offset;
    float loss = qa_softmax_xent_forward_backward(c->d_logits, c->probs, c->logits, labels, B, QA_CLF_CLASSES);
    memset(c->d_feat, 0, sizeof(float) * B * QA_CLF_FEATURES);
    qa_linear_backward(c->d_feat, g[6], g[7], c->d_logits, c->feat, c->f2w, B, QA_CLF_FEATURES, QA_CLF_CLASSES);
    memset(c->d_h, 0, sizeof(float) * B * QA_CLF_FEATURES);
    qa_relu_backward(c->d_h, c->d_feat, c->h, (size_t)B * QA_CLF_FEATURES);
    memset(c->d_p2, 0, sizeof(float) * B * 49 * 64);
    qa_linear_backward(c->d_p2, g[4], g[5], c->d_h, c->p2, c->f1w, B, 49 * 64, QA_CLF_FEATURES);
    memset(c->d_r2, 0, sizeof(float) * B * 196 * 64);
    for (size_t i = 0; i < (size_t)B * 49 * 64; i++) c->d_r2[c->arg2[i]] += c->d_p2[i];
    for (size_t i = 0; i < (size_t)B * 196 * 64; i++) if (c->a2[i] <= 0.f) c->d_r2[i] = 0.f;
    memset(c->d_col2, 0, sizeof(float) * B * 196 * 288);
    qa_linear_backward(c->d_col2, g[2], g[3], c->d_r2, c->col2, c->c2w, B * 196, 288, 64);
    memset(c->d_p1, 0, sizeof(float) * B * 196 * 32);
    col2im(c->d_p1, c->d_col2, B, 14, 32);
    memset(c->d_r1, 0, sizeof(float) * B * 784 * 32);
    for (size_t i = 0; i < (size_t)B * 196 * 32; i++) c->d_r1[c->arg1[i]] += c->d_p1[i];
    for (size_t i = 0; i < (size_t)B * 784 * 32; i++) if (c->a1[i] <= 0.f) c->d_r1[i] = 0.f;
    qa_linear_backward(NULL, g[0], g[1], c->d_r1, c->col1, c->c1w, B * 784, 9, 32);
    return loss;
}

void qa_clf_embed(qa_classifier *c, const float *x, int n, float *feat, float *probs) {
    for (int s = 0; s < n; s += c->max_batch) {
        int B = n - s < c->max_batch ? n - s : c->max_batch;
        qa_clf_forward(c, x + (size_t)s * 784, B);
        if (feat) memcpy(feat + (size_t)s * QA_CLF_FEATURES, c->feat, sizeof(float) * B * QA_CLF_FEATURES);
        if (probs) {
            for (int b = 0; b < B; b++) {
                const float *l = c->logits + (size_t)b * QA_CLF_CLASSES;
                float mx = l[0], sum = 0;
                for (int k = 1; k < QA_CLF_CLASSES; k++) mx = l[k] > mx ? l[k] : mx;
                for (int k = 0; k < QA_CLF_CLASSES; k++) sum += expf(l[k] - mx);
                for (int k = 0; k < QA_CLF_CLASSES; k++)
                    probs[((size_t)s + b) * QA_CLF_CLASSES + k] = expf(l[k] - mx) / sum;
            }
        }
    }
}

int qa_clf_save(const char *path, const qa_classifier *c, double test_accuracy, const char *recipe,
             double wall, long steps, qa_error *err) {
    const char *keys[] = {"features", "classes"};
    double vals[] = {QA_CLF_FEATURES, QA_CLF_CLASSES};
    qa_ckpt_meta meta = {"evaluator", recipe, 0, wall, steps, 0, test_accuracy};
    return qa_ckpt_save_tensors(path, c->tensors, c->n_tensors, c->params, keys, vals, 2, &meta, err);
}

int qa_clf_load(const char *path, qa_classifier *c, int max_batch, qa_error *err) {
    qa_h5 *f;
    int rc = qa_h5_open(path, 0, &f, err);
    if (rc) return rc;
    rc = qa_clf_create(c, max_batch, err);
    if (rc == 0) rc = qa_ckpt_load_tensors(f, c->tensors, c->n_tensors, c->params, err);
    if (rc) qa_clf_free(c);
    qa_error e2;
    qa_h5_close(f, &e2);
    return rc;
}

double qa_evaluator_accuracy(qa_classifier *c, const qa_images *test, double *per_class) {
    float *x = qa_alloc(sizeof(float) * (size_t)c->max_batch * 784);
    float *probs = qa_alloc(sizeof(float) * (size_t)c->max_batch * QA_CLF_CLASSES);
    int *idx = qa_alloc(sizeof(int) * c->max_batch);
    long correct = 0, n_class[QA_CLF_CLASSES] = {0}, ok_class[QA_CLF_CLASSES] = {0};
    for (int s = 0; s < test->n; s += c->max_batch) {
        int B = test->n - s < c->max_batch ? test->n - s : c->max_batch;
        for (int b = 0; b < B; b++) idx[b] = s + b;
        qa_images_to_float(test, idx, B, x);
        qa_clf_embed(c, x, B, NULL, probs);
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int k = 1; k < QA_CLF_CLASSES; k++) if (probs[b * QA_CLF_CLASSES + k] > probs[b * QA_CLF_CLASSES + best]) best = k;
            int y = test->labels[s + b];
            n_class[y]++;
            if (best == y) { correct++; ok_class[y]++; }
        }
    }
    if (per_class)
        for (int k = 0; k < QA_CLF_CLASSES; k++) per_class[k] = n_class[k] ? (double)ok_class[k] / n_class[k] : 0;
    qa_free(x); qa_free(probs); qa_free(idx);
    return (double)correct / test->n;
}
