/* The evaluator CNN: backward against directional finite differences of a double-accumulated
 * softmax cross-entropy, both convolutions against a naive direct 3x3 'same' convolution, the
 * max pool and ReLU against their definitions, clf_embed's probabilities against a softmax in
 * double, a save/load round trip, and evaluator_accuracy against labels built in the test. */
#include <criterion/criterion.h>

#include "common.h"
#include "datasets/dataset.h"
#include "harness/classifier.h"
#include "harness/nn.h"

TestSuite(classifier, .timeout = 120);

static void make_clf(qa_classifier *c, int max_batch, uint64_t seed) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_clf_create(c, max_batch, &err), 0, "%s", err.msg);
    qa_clf_init_weights(c, seed);
    /* non-zero biases, so the bias gradients and the ReLU pattern are not degenerate */
    trng r = trng_new(seed + 99);
    for (int i = 1; i < c->n_tensors; i += 2) fill_unif(&r, c->params + c->tensors[i].offset, c->tensors[i].n, -0.1, 0.1);
}

/* mean softmax cross-entropy of the current logits, in double */
static double xent_double(const float *logits, const int *labels, int B) {
    double L = 0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * QA_CLF_CLASSES;
        double mx = l[0], s = 0;
        for (int k = 1; k < QA_CLF_CLASSES; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < QA_CLF_CLASSES; k++) s += exp((double)l[k] - mx);
        L += -((double)l[labels[b]] - mx - log(s));
    }
    return L / B;
}

static double loss_at(qa_classifier *c, const float *x, const int *y, int B) {
    qa_clf_forward(c, x, B);
    return xent_double(c->logits, y, B);
}

/* ---------- gradients ---------- */

/* Directional derivative along a random direction u (N(0,1) per entry) with step h, using the
 * perturbation actually applied in float. The loss is piecewise smooth (about 75k ReLU and
 * max-pool kinks for B = 2), so a step can cross a few kinks and the float forward adds noise
 * ~1e-6 to the loss: measured over 7 inputs x 6 directions, |fd - an| / max(|an|, ||g||) stays
 * below 0.026 at h = 5e-5 and 1e-4 (and a wrong backward is off by O(1)). The error is scaled
 * by max(|an|, ||g||) because a random direction can nearly cancel g (g.u << ||g||). */
static void check_tensor_grad(qa_classifier *c, int ti, const float *x, const int *y, int B, uint64_t seed) {
    qa_tensor_info *t = &c->tensors[ti];
    float *w = c->params + t->offset, *g = c->grads + t->offset;
    size_t n = t->n;
    double gn = 0;
    for (size_t j = 0; j < n; j++) gn += (double)g[j] * g[j];
    gn = sqrt(gn);
    float *w0 = malloc(sizeof(float) * n), *wp = malloc(sizeof(float) * n), *wm = malloc(sizeof(float) * n);
    double *u = malloc(sizeof(double) * n);
    memcpy(w0, w, sizeof(float) * n);
    trng r = trng_new(seed);
    for (size_t j = 0; j < n; j++) u[j] = trng_normal(&r);
    const double hs[2] = {5e-5, 1e-4};
    double best = INFINITY, fd_best = 0, an_best = 0;
    for (int k = 0; k < 2; k++) {
        double h = hs[k];
        for (size_t j = 0; j < n; j++) {
            wp[j] = (float)(w0[j] + h * u[j]);
            wm[j] = (float)(w0[j] - h * u[j]);
        }
        memcpy(w, wp, sizeof(float) * n);
        double Lp = loss_at(c, x, y, B);
        memcpy(w, wm, sizeof(float) * n);
        double Lm = loss_at(c, x, y, B);
        memcpy(w, w0, sizeof(float) * n);
        double fd = (Lp - Lm) / (2 * h), an = 0;
        for (size_t j = 0; j < n; j++) an += (double)g[j] * ((double)wp[j] - wm[j]);
        an /= 2 * h;
        cr_assert(gn > 1e-6 && fabs(an) > 1e-3 * gn, "d/d%s ~ 0 (%g, ||g|| %g): the check would be vacuous", t->name, an, gn);
        double e = fabs(fd - an) / fmax(fabs(an), gn);
        if (e < best) { best = e; fd_best = fd; an_best = an; }
    }
    cr_expect(best <= 4e-2, "d/d%s along a random direction: analytic %.7g vs finite diff %.7g (error %.3g of max(|an|, ||g|| = %.4g))",
              t->name, an_best, fd_best, best, gn);
    free(w0); free(wp); free(wm); free(u);
}

static void grad_setup(qa_classifier *c, float **x, int **y, int B) {
    make_clf(c, B, 11);
    *x = malloc(sizeof(float) * B * 784);
    *y = malloc(sizeof(int) * B);
    trng r = trng_new(5);
    fill_unif(&r, *x, (size_t)B * 784, -1, 1);
    for (int b = 0; b < B; b++) (*y)[b] = (3 * b + 1) % QA_CLF_CLASSES;
    /* condition the base point: move fc1 biases so no fc1 pre-activation sits within 0.05 of its
     * ReLU kink (each of these 128 units carries a large share of the gradient; the conv units
     * are too many and too small to matter one by one) */
    for (int it = 0; it < 40; it++) {
        qa_clf_forward(c, *x, B);
        int moved = 0;
        for (int o = 0; o < QA_CLF_FEATURES; o++)
            for (int b = 0; b < B; b++)
                if (fabsf(c->h[b * QA_CLF_FEATURES + o]) < 0.05f) { c->f1b[o] += 0.05f; moved = 1; break; }
        if (!moved) break;
    }
    qa_clf_forward(c, *x, B);
    memset(c->grads, 0, sizeof(float) * c->n_params);
    double Ld = xent_double(c->logits, *y, B);
    float L = qa_clf_backward(c, *y);
    cr_assert(fabs(L - Ld) < 1e-5 * (1 + Ld), "clf_backward's loss %.7g vs softmax xent in double %.7g", L, Ld);
}

static void grad_check_tensor(int ti) {
    qa_classifier c;
    float *x;
    int *y;
    const int B = 2;
    grad_setup(&c, &x, &y, B);
    cr_assert(ti < c.n_tensors);
    for (int d = 0; d < 3; d++) check_tensor_grad(&c, ti, x, y, B, 300 + 7 * ti + d);
    free(x); free(y);
    qa_clf_free(&c);
}

Test(classifier, grad_conv1_weight) { grad_check_tensor(0); }
Test(classifier, grad_conv1_bias) { grad_check_tensor(1); }
Test(classifier, grad_conv2_weight) { grad_check_tensor(2); }
Test(classifier, grad_conv2_bias) { grad_check_tensor(3); }
Test(classifier, grad_fc1_weight) { grad_check_tensor(4); }
Test(classifier, grad_fc1_bias) { grad_check_tensor(5); }
Test(classifier, grad_fc2_weight) { grad_check_tensor(6); }
Test(classifier, grad_fc2_bias) { grad_check_tensor(7); }

/* single entries by central differences: the entry with the largest |gradient| of each weight
 * tensor (an error confined to a few entries can average out along a random direction) */
Test(classifier, grad_largest_single_entries) {
    qa_classifier c;
    float *x;
    int *y;
    const int B = 2;
    grad_setup(&c, &x, &y, B);
    const int tis[4] = {0, 2, 4, 6};
    for (int k = 0; k < 4; k++) {
        qa_tensor_info *t = &c.tensors[tis[k]];
        size_t jm = 0;
        for (size_t j = 1; j < t->n; j++)
            if (fabsf(c.grads[t->offset + j]) > fabsf(c.grads[t->offset + jm])) jm = j;
        float *w = c.params + t->offset + jm;
        double g = c.grads[t->offset + jm];
        float w0 = *w;
        double h = 1e-3;
        *w = (float)(w0 + h);
        double hp = (double)*w - w0;
        double Lp = loss_at(&c, x, y, B);
        *w = (float)(w0 - h);
        double hm = w0 - (double)*w;
        double Lm = loss_at(&c, x, y, B);
        *w = w0;
        double fd = (Lp - Lm) / (hp + hm);
        cr_expect(close_rel(fd, g, 3e-2, 1e-4), "d/d%s[%zu] (largest entry): analytic %.6g vs finite diff %.6g", t->name,
                  jm, g, fd);
    }
    free(x); free(y);
    qa_clf_free(&c);
}

Test(classifier, backward_accumulates) {
    qa_classifier c;
    float *x;
    int *y;
    grad_setup(&c, &x, &y, 2);
    float *g1 = malloc(sizeof(float) * c.n_params);
    memcpy(g1, c.grads, sizeof(float) * c.n_params);
    qa_clf_forward(&c, x, 2);
    qa_clf_backward(&c, y);
    size_t bad = 0, first = 0;
    for (size_t j = 0; j < c.n_params; j++)
        if (fabsf(c.grads[j] - 2 * g1[j]) > 1e-6f + 1e-5f * fabsf(g1[j])) { if (!bad) first = j; bad++; }
    cr_expect_eq(bad, 0, "%zu grads are not 2x after two backward calls (first %zu: %g vs %g)", bad, first,
                 c.grads[first], 2 * g1[first]);
    free(g1); free(x); free(y);
    qa_clf_free(&c);
}

/* ---------- forward pieces against their definitions ---------- */

/* out[b,y,x,o] = bias[o] + sum_{ky,kx,ch} W[o, (ky*3+kx)*C + ch] in[b, y+ky-1, x+kx-1, ch] */
static double direct_conv(const float *in, const float *W, const float *bias, int b, int S, int C, int yy, int xx, int o) {
    double s = bias[o];
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            int sy = yy + ky - 1, sx = xx + kx - 1;
            if (sy < 0 || sy >= S || sx < 0 || sx >= S) continue;
            for (int ch = 0; ch < C; ch++)
                s += (double)W[(size_t)o * 9 * C + (ky * 3 + kx) * C + ch] * in[(((size_t)b * S + sy) * S + sx) * C + ch];
        }
    return s;
}

Test(classifier, conv1_hand_kernel) {
    qa_classifier c;
    make_clf(&c, 2, 3);
    /* channel 0: a pure shift (picks the pixel up-left); channel 1: a vertical edge kernel
     * [-1 0 1]x3; channel 2: all ones (box sum); bias 0.25 on channel 1 */
    memset(c.c1w, 0, sizeof(float) * 32 * 9);
    memset(c.c1b, 0, sizeof(float) * 32);
    c.c1w[0 * 9 + 0] = 1.0f;
    for (int ky = 0; ky < 3; ky++) { c.c1w[1 * 9 + ky * 3 + 0] = -1.0f; c.c1w[1 * 9 + ky * 3 + 2] = 1.0f; }
    for (int k = 0; k < 9; k++) c.c1w[2 * 9 + k] = 1.0f;
    c.c1b[1] = 0.25f;
    float *x = malloc(sizeof(float) * 2 * 784);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++) x[b * 784 + i * 28 + j] = (float)(0.01 * (i * 28 + j) - b);
    qa_clf_forward(&c, x, 2);
    /* hand values at a few places */
    /* ch0 at (5,7) of image 0 = x[4][6] = 0.01*(4*28+6) */
    cr_expect(fabs(c.a1[((0 * 28 + 5) * 28 + 7) * 32 + 0] - 0.01 * (4 * 28 + 6)) < 1e-6, "shift kernel: %g",
              c.a1[((0 * 28 + 5) * 28 + 7) * 32 + 0]);
    /* ch0 at (0,3): the up-left neighbour is outside -> 0 */
    cr_expect(c.a1[((0 * 28 + 0) * 28 + 3) * 32 + 0] == 0.0f, "zero padding");
    /* ch1 in the interior of image 0: 3 rows x (+0.02) = 0.06, + bias 0.25 */
    cr_expect(fabs(c.a1[((0 * 28 + 10) * 28 + 10) * 32 + 1] - 0.31) < 1e-5, "edge kernel: %g",
              c.a1[((0 * 28 + 10) * 28 + 10) * 32 + 1]);
    /* ch2 at corner (0,0) of image 1: sum of the 2x2 in-range pixels */
    double corner = 0;
    for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) corner += 0.01 * (i * 28 + j) - 1;
    cr_expect(fabs(c.a1[((1 * 28 + 0) * 28 + 0) * 32 + 2] - corner) < 1e-5, "box at corner: %g vs %g",
              c.a1[((1 * 28 + 0) * 28 + 0) * 32 + 2], corner);
    /* every output against the direct convolution */
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++)
                for (int o = 0; o < 32; o++) {
                    double ref = direct_conv(x, c.c1w, c.c1b, b, 28, 1, i, j, o);
                    double e = fabs(c.a1[(((size_t)b * 28 + i) * 28 + j) * 32 + o] - ref);
                    if (e > worst) worst = e;
                }
    cr_expect(worst < 1e-5, "conv1 vs direct convolution: max error %g", worst);
    free(x);
    qa_clf_free(&c);
}

Test(classifier, conv1_random_against_direct) {
    qa_classifier c;
    make_clf(&c, 3, 4);
    trng r = trng_new(8);
    float *x = malloc(sizeof(float) * 3 * 784);
    fill_unif(&r, x, 3 * 784, -1, 1);
    qa_clf_forward(&c, x, 3);
    double worst = 0;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++)
                for (int o = 0; o < 32; o++) {
                    double ref = direct_conv(x, c.c1w, c.c1b, b, 28, 1, i, j, o);
                    double e = fabs(c.a1[(((size_t)b * 28 + i) * 28 + j) * 32 + o] - ref);
                    if (e > worst) worst = e;
                }
    cr_expect(worst < 1e-5, "conv1 vs direct: max error %g", worst);
    free(x);
    qa_clf_free(&c);
}

Test(classifier, conv2_against_direct_on_pooled_input) {
    qa_classifier c;
    make_clf(&c, 2, 6);
    trng r = trng_new(9);
    float *x = malloc(sizeof(float) * 2 * 784);
    fill_unif(&r, x, 2 * 784, -1, 1);
    qa_clf_forward(&c, x, 2);
    double worst = 0, scale = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 14; i++)
            for (int j = 0; j < 14; j++)
                for (int o = 0; o < 64; o++) {
                    double ref = direct_conv(c.p1, c.c2w, c.c2b, b, 14, 32, i, j, o);
                    double e = fabs(c.a2[(((size_t)b * 14 + i) * 14 + j) * 64 + o] - ref);
                    if (e > worst) worst = e;
                    if (fabs(ref) > scale) scale = fabs(ref);
                }
    cr_expect(worst < 1e-5 * (1 + scale), "conv2 vs direct (32 in-channels, 14x14): max error %g (scale %g)", worst, scale);
    free(x);
    qa_clf_free(&c);
}

static void check_relu_pool(const float *a, const float *rl, const float *p, const int *arg, int B, int S, int C,
                            const char *name) {
    size_t bad_relu = 0, bad_pool = 0, bad_arg = 0;
    for (size_t i = 0; i < (size_t)B * S * S * C; i++)
        if (rl[i] != (a[i] > 0 ? a[i] : 0.0f)) bad_relu++;
    int So = S / 2;
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < So; oy++)
            for (int ox = 0; ox < So; ox++)
                for (int ch = 0; ch < C; ch++) {
                    float m = -INFINITY;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            float v = rl[(((size_t)b * S + 2 * oy + dy) * S + 2 * ox + dx) * C + ch];
                            if (v > m) m = v;
                        }
                    size_t o = (((size_t)b * So + oy) * So + ox) * C + ch;
                    if (p[o] != m) bad_pool++;
                    if (rl[arg[o]] != m) bad_arg++;
                }
    cr_expect_eq(bad_relu, 0, "%s: %zu ReLU outputs wrong", name, bad_relu);
    cr_expect_eq(bad_pool, 0, "%s: %zu max-pool outputs are not the window max", name, bad_pool);
    cr_expect_eq(bad_arg, 0, "%s: %zu argmax indices do not point at the max", name, bad_arg);
}

Test(classifier, relu_and_maxpool_pick_the_max) {
    qa_classifier c;
    make_clf(&c, 2, 12);
    trng r = trng_new(10);
    float *x = malloc(sizeof(float) * 2 * 784);
    fill_unif(&r, x, 2 * 784, -1, 1);
    qa_clf_forward(&c, x, 2);
    check_relu_pool(c.a1, c.r1, c.p1, c.arg1, 2, 28, 32, "layer 1");
    check_relu_pool(c.a2, c.r2, c.p2, c.arg2, 2, 14, 64, "layer 2");
    /* a hand case: conv1 channel 0 = identity, so p1[..,0] is the 2x2 max of max(x, 0) */
    memset(c.c1w, 0, sizeof(float) * 32 * 9);
    memset(c.c1b, 0, sizeof(float) * 32);
    c.c1w[4] = 1.0f; /* centre tap */
    for (int i = 0; i < 784; i++) x[i] = -0.5f;
    x[2 * 28 + 3] = 0.7f;  /* in window (1,1) */
    x[3 * 28 + 2] = 0.4f;  /* same window, smaller */
    qa_clf_forward(&c, x, 1);
    cr_expect(c.p1[((0 * 14 + 1) * 14 + 1) * 32 + 0] == 0.7f, "window max: %g", c.p1[((0 * 14 + 1) * 14 + 1) * 32]);
    cr_expect_eq(c.arg1[((0 * 14 + 1) * 14 + 1) * 32 + 0], (2 * 28 + 3) * 32, "argmax index");
    cr_expect(c.p1[((0 * 14 + 0) * 14 + 0) * 32 + 0] == 0.0f, "all-negative window after ReLU: 0");
    free(x);
    qa_clf_free(&c);
}

Test(classifier, fc_layers_against_naive) {
    qa_classifier c;
    make_clf(&c, 2, 13);
    trng r = trng_new(14);
    float *x = malloc(sizeof(float) * 2 * 784);
    fill_unif(&r, x, 2 * 784, -1, 1);
    qa_clf_forward(&c, x, 2);
    double worst = 0;
    for (int b = 0; b < 2; b++) {
        for (int o = 0; o < QA_CLF_FEATURES; o++) {
            double s = c.f1b[o];
            for (int k = 0; k < 49 * 64; k++) s += (double)c.f1w[(size_t)o * 49 * 64 + k] * c.p2[(size_t)b * 49 * 64 + k];
            double f = s > 0 ? s : 0;
            double e = fabs(c.feat[b * QA_CLF_FEATURES + o] - f);
            if (e > worst) worst = e;
        }
        for (int o = 0; o < QA_CLF_CLASSES; o++) {
            double s = c.f2b[o];
            for (int k = 0; k < QA_CLF_FEATURES; k++) s += (double)c.f2w[o * QA_CLF_FEATURES + k] * c.feat[b * QA_CLF_FEATURES + k];
            double e = fabs(c.logits[b * QA_CLF_CLASSES + o] - s);
            if (e > worst) worst = e;
        }
    }
    cr_expect(worst < 1e-4, "fc layers vs naive: max error %g", worst);
    free(x);
    qa_clf_free(&c);
}

/* ---------- embed, save/load, accuracy ---------- */

Test(classifier, embed_probabilities_and_features) {
    qa_classifier c;
    make_clf(&c, 3, 21); /* 7 images in batches of 3, 3, 1 */
    const int n = 7;
    trng r = trng_new(22);
    float *x = malloc(sizeof(float) * n * 784);
    fill_unif(&r, x, (size_t)n * 784, -1, 1);
    float *feat = malloc(sizeof(float) * n * QA_CLF_FEATURES), *probs = malloc(sizeof(float) * n * QA_CLF_CLASSES);
    qa_clf_embed(&c, x, n, feat, probs);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < QA_CLF_CLASSES; k++) {
            cr_expect(probs[i * QA_CLF_CLASSES + k] >= 0 && probs[i * QA_CLF_CLASSES + k] <= 1);
            s += probs[i * QA_CLF_CLASSES + k];
        }
        cr_expect(fabs(s - 1) < 1e-5, "image %d: probabilities sum to %.8g", i, s);
        int pos = 0;
        for (int k = 0; k < QA_CLF_FEATURES; k++) {
            cr_expect(feat[i * QA_CLF_FEATURES + k] >= 0, "feature %d of image %d is negative", k, i);
            pos += feat[i * QA_CLF_FEATURES + k] > 0;
        }
        cr_expect(pos > 0, "image %d: all features are zero", i);
        /* against a single-image forward and a softmax in double */
        qa_clf_forward(&c, x + (size_t)i * 784, 1);
        double mx = c.logits[0], z = 0;
        for (int k = 1; k < QA_CLF_CLASSES; k++) mx = c.logits[k] > mx ? c.logits[k] : mx;
        for (int k = 0; k < QA_CLF_CLASSES; k++) z += exp(c.logits[k] - mx);
        for (int k = 0; k < QA_CLF_CLASSES; k++)
            cr_expect(fabs(probs[i * QA_CLF_CLASSES + k] - exp(c.logits[k] - mx) / z) < 1e-5, "image %d class %d: %g vs %g",
                      i, k, probs[i * QA_CLF_CLASSES + k], exp(c.logits[k] - mx) / z);
        for (int k = 0; k < QA_CLF_FEATURES; k++)
            cr_expect(fabs(feat[i * QA_CLF_FEATURES + k] - c.feat[k]) < 1e-4 * (1 + fabsf(c.feat[k])),
                      "image %d feature %d: batched %g vs alone %g", i, k, feat[i * QA_CLF_FEATURES + k], c.feat[k]);
    }
    /* either output may be NULL */
    float *p2 = malloc(sizeof(float) * n * QA_CLF_CLASSES);
    qa_clf_embed(&c, x, n, NULL, p2);
    cr_expect(memcmp(p2, probs, sizeof(float) * n * QA_CLF_CLASSES) == 0, "probs without feat differ");
    qa_clf_embed(&c, x, n, feat, NULL);
    free(x); free(feat); free(probs); free(p2);
    qa_clf_free(&c);
}

Test(classifier, save_load_round_trip) {
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "clf");
    snprintf(path, sizeof path, "%s/evaluator.h5", dir);
    qa_classifier c, d;
    make_clf(&c, 2, 31);
    qa_error err = {0, ""};
    cr_assert_eq(qa_clf_save(path, &c, 0.875, "[job]\nkind = test\n", 1.5, 42, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_clf_load(path, &d, 4, &err), 0, "%s", err.msg);
    cr_expect_eq(d.max_batch, 4);
    cr_assert_eq(d.n_params, c.n_params);
    cr_expect(memcmp(d.params, c.params, sizeof(float) * c.n_params) == 0, "parameters differ after the round trip");
    trng r = trng_new(32);
    float x[2 * 784];
    fill_unif(&r, x, 2 * 784, -1, 1);
    qa_clf_forward(&c, x, 2);
    float l1[2 * QA_CLF_CLASSES];
    memcpy(l1, c.logits, sizeof l1);
    qa_clf_forward(&d, x, 2);
    cr_expect(memcmp(l1, d.logits, sizeof l1) == 0, "logits differ after save/load");
    qa_clf_free(&c);
    qa_clf_free(&d);
    /* a missing file is an error, not a crash */
    snprintf(path, sizeof path, "%s/none.h5", dir);
    cr_expect_neq(qa_clf_load(path, &d, 2, &err), 0);
    rm_rf_dir(dir);
}

Test(classifier, evaluator_accuracy_against_test_labels) {
    qa_classifier c;
    make_clf(&c, 4, 41); /* 10 images: batches of 4, 4, 2 */
    qa_images im;
    qa_synthetic_images(&im, 10, 28, 10, 5);
    /* predictions from clf_embed's argmax, one image at a time */
    int pred[10];
    for (int i = 0; i < 10; i++) {
        float x[784], p[QA_CLF_CLASSES];
        qa_images_to_float(&im, &i, 1, x);
        qa_clf_embed(&c, x, 1, NULL, p);
        pred[i] = 0;
        for (int k = 1; k < QA_CLF_CLASSES; k++) if (p[k] > p[pred[i]]) pred[i] = k;
    }
    /* relabel: images 0, 2, 3, 5, 8, 9 correct (6/10), the rest wrong */
    const int correct[10] = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1};
    for (int i = 0; i < 10; i++) im.labels[i] = correct[i] ? pred[i] : (pred[i] + 1 + i % 3) % QA_CLF_CLASSES;
    double per[QA_CLF_CLASSES];
    double acc = qa_evaluator_accuracy(&c, &im, per);
    cr_expect(fabs(acc - 0.6) < 1e-12, "accuracy %g, want 6/10", acc);
    long nk[QA_CLF_CLASSES] = {0}, ok[QA_CLF_CLASSES] = {0};
    for (int i = 0; i < 10; i++) { nk[im.labels[i]]++; ok[im.labels[i]] += correct[i]; }
    for (int k = 0; k < QA_CLF_CLASSES; k++) {
        double want = nk[k] ? (double)ok[k] / nk[k] : 0.0;
        cr_expect(fabs(per[k] - want) < 1e-12, "class %d: %g, want %g (%ld of %ld)", k, per[k], want, ok[k], nk[k]);
    }
    cr_expect(fabs(qa_evaluator_accuracy(&c, &im, NULL) - 0.6) < 1e-12, "per_class may be NULL");
    /* all correct */
    for (int i = 0; i < 10; i++) im.labels[i] = pred[i];
    cr_expect(qa_evaluator_accuracy(&c, &im, per) == 1.0);
    qa_images_free(&im);
    qa_clf_free(&c);
}
