/* EfficientDM plugin (methods/efficientdm.c): the weight quantizer against the section-0 search by
 * hand, timestep buckets by hand, activation calibration on the first forward then frozen,
 * gradients by central differences of an STE surrogate written here in double (rounding offsets
 * and clamp masks frozen at the evaluation point, so the surrogate is smooth and its derivative is
 * what the straight-through estimator defines), dx by finite differences of the real forward where
 * it is linear, merge == the deployed layer computed here, learning-rate scales, bytes, errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "harness/util.h"
#include "tests/common.h"
#include "tests/method_check.h"

extern const qa_method qa_method_efficientdm;

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct {
    const qa_method *m;
    void *state;
    int in, out, rank;
    float *W, *b;
    qa_method_cfg cfg;
    qa_step_ctx step;
    float t[16];
} layer;

static int make_layer(layer *L, int in, int out, int w_bits, int a_bits, int rank, int steps, float base_lr,
                      uint64_t seed, qa_error *err) {
    memset(L, 0, sizeof *L);
    L->m = &qa_method_efficientdm;
    L->in = in;
    L->out = out;
    L->rank = rank;
    L->W = qa_alloc(sizeof(float) * (size_t)in * out);
    L->b = qa_alloc(sizeof(float) * (size_t)out);
    trng t = trng_new(seed);
    fill_normal(&t, L->W, (size_t)in * out, 0.3);
    fill_normal(&t, L->b, (size_t)out, 0.1);
    L->cfg = (qa_method_cfg){.w_bits = w_bits, .a_bits = a_bits, .rank = rank, .lora_scale = 1.0f,
                             .base_lr = base_lr, .sampling_steps = steps};
    L->step = (qa_step_ctx){L->t, 1, 1, 1000, QA_DTYPE_F32};
    qa_rng *r = qa_rng_new(seed + 100);
    qa_layer_init li = {in, out, L->W, L->b, &L->cfg, r, "blocks.2.attn.qkv", NULL, &L->step};
    L->state = qa_alloc(L->m->state_size);
    int rc = L->m->init(L->state, &li, err);
    qa_rng_free(r);
    return rc;
}

/* B samples of rows_per_sample rows each, sample b at timestep t[b]; T_train = 1000. */
static void set_step(layer *L, int B, int rows_per_sample, const float *t) {
    memcpy(L->t, t, sizeof(float) * (size_t)B);
    L->step.B = B;
    L->step.rows_per_sample = rows_per_sample;
    L->step.T_train = 1000;
}

static void free_layer(layer *L) {
    L->m->destroy(L->state);
    qa_free(L->state);
    qa_free(L->W);
    qa_free(L->b);
}

/* Q0 and z_w, s_w from the section-0 search applied here (float, as the quantizer is defined). */
static void weight_codes_by_hand(const layer *L, int bits, float *delta, float *zero, float *q0) {
    qa_quant_search_rows(L->W, L->out, L->in, bits, delta, zero);
    const float lmax = (float)((1 << bits) - 1);
    for (int o = 0; o < L->out; o++)
        for (int i = 0; i < L->in; i++) {
            float q = nearbyintf(L->W[o * L->in + i] / delta[o]) + zero[o];
            q0[o * L->in + i] = q < 0.f ? 0.f : (q > lmax ? lmax : q);
        }
}

/* One forward of M random rows x (one sample at timestep t_step) into y. */
static void forward_random(layer *L, int M, uint64_t seed, float t_step, float *x, float *y) {
    trng t = trng_new(seed);
    fill_normal(&t, x, (size_t)M * L->in, 1.0);
    float ts[1] = {t_step};
    set_step(L, 1, M, ts);
    L->m->forward(L->state, x, y, M);
}

/* ---- init: the section-0 search, Q0, W_b, A, B ----------------------------------------------- */

/* Q0 held as integers (packed at N <= 4, bytes at 5..8, uint16 above) decodes to exactly the W_b the
 * float copy of Q0 gave: at B = 0, W_hat = s_w (Q0 - z_w) with Q0 by hand in float, bit for bit. */
Test(efficientdm, held_codes_decode_to_the_float_path_at_every_width) {
    enum { IN = 24, OUT = 7, M = 2 };
    const int widths[] = {1, 2, 3, 4, 5, 8, 11, 16};
    for (size_t c = 0; c < sizeof widths / sizeof widths[0]; c++) {
        layer L;
        qa_error err;
        cr_assert_eq(make_layer(&L, IN, OUT, widths[c], 0, 2, 10, 1e-4f, 40 + (unsigned)c, &err), QA_OK, "%s", err.msg);
        float delta[OUT], zero[OUT], q0[OUT * IN], x[M * IN], y[M * OUT];
        weight_codes_by_hand(&L, widths[c], delta, zero, q0);
        forward_random(&L, M, 50 + (unsigned)c, 100, x, y);
        qa_named_tensor tn[16];
        int nt = L.m->inspect(L.state, tn, 16);
        const float *w_hat = mc_find_tensor(tn, nt, "W_hat")->f32;
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) {
                const float ref = delta[o] * (q0[o * IN + i] - zero[o]);
                cr_expect_eq(w_hat[o * IN + i], ref, "N = %d: W_hat[%d,%d] %g vs s_w (Q0 - z_w) %g", widths[c], o, i,
                             w_hat[o * IN + i], ref);
            }
        free_layer(&L);
    }
}

Test(efficientdm, init_is_the_section0_quantizer_of_the_fp_weight) {
    enum { IN = 16, OUT = 5, R = 2, M = 3 };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 4, 0, R, 10, 1e-4f, 11, &err), QA_OK, "%s", err.msg);
    float delta[OUT], zero[OUT], q0[OUT * IN], w_ptq[OUT * IN];
    weight_codes_by_hand(&L, 4, delta, zero, q0);
    qa_quant_fake_rows(w_ptq, L.W, OUT, IN, 4, delta, zero);
    float x[M * IN], y[M * OUT];
    forward_random(&L, M, 12, 500, x, y);
    qa_named_tensor tn[16];
    int nt = L.m->inspect(L.state, tn, 16);
    const float *s_w = mc_find_tensor(tn, nt, "s_w")->f32, *z_w = mc_find_tensor(tn, nt, "z_w")->f32;
    const float *w_hat = mc_find_tensor(tn, nt, "W_hat")->f32;
    for (int o = 0; o < OUT; o++) {
        cr_expect_eq(s_w[o], delta[o], "s_w[%d] %g vs search %g", o, s_w[o], delta[o]);
        cr_expect_eq(z_w[o], zero[o], "z_w[%d] %g vs search %g", o, z_w[o], zero[o]);
    }
    for (int k = 0; k < OUT * IN; k++) {
        /* B = 0: W_hat = W_b = s_w (Q0 - z_w), which is the PTQ of the FP weight */
        cr_expect_eq(w_hat[k], w_ptq[k], "W_hat[%d] %g vs Q_N(W) %g", k, w_hat[k], w_ptq[k]);
    }
    mc_expect_affine_rel(x, w_ptq, L.b, y, M, IN, OUT, 1e-5, 1e-6, "a_bits = 0: y = x Q_N(W)^T + b");
    qa_param ps[8];
    int np = L.m->params(L.state, ps, 8);
    cr_assert_eq(np, 3, "a_bits = 0: A, B, s_w only");
    const qa_param *A = mc_find_param(ps, np, "lora_A"), *B = mc_find_param(ps, np, "lora_B");
    cr_expect_eq(A->n, (size_t)R * IN);
    cr_expect_eq(B->n, (size_t)OUT * R);
    mc_expect_lora_start(A, B, IN);
    free_layer(&L);
}

/* ---- timestep buckets --------------------------------------------------------------------- */

static void check_buckets(int steps, const float *t, const int *want, int B, int rows_per_sample) {
    enum { IN = 4, OUT = 3 };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 4, 8, 1, steps, 1e-4f, 21, &err), QA_OK, "%s", err.msg);
    set_step(&L, B, rows_per_sample, t);
    const int M = B * rows_per_sample;
    float *x = qa_alloc(sizeof(float) * (size_t)M * IN), *y = qa_alloc(sizeof(float) * (size_t)M * OUT);
    trng r = trng_new(22);
    fill_normal(&r, x, (size_t)M * IN, 1.0);
    L.m->forward(L.state, x, y, M);
    qa_named_tensor tn[16];
    int nt = L.m->inspect(L.state, tn, 16);
    const qa_named_tensor *bk = mc_find_tensor(tn, nt, "act_bucket");
    cr_assert_eq(bk->dims[0], M);
    cr_expect_eq(mc_find_tensor(tn, nt, "act_delta")->dims[0], steps > 0 ? steps : 1);
    for (int m = 0; m < M; m++)
        cr_expect_eq(bk->i32[m], want[m / rows_per_sample], "n = %d, t = %g (row %d): bucket %d, want %d", steps,
                     t[m / rows_per_sample], m, bk->i32[m], want[m / rows_per_sample]);
    qa_free(x);
    qa_free(y);
    free_layer(&L);
}

Test(efficientdm, timestep_buckets_by_hand) {
    /* n = 10, T = 1000: bucket width 100 */
    float t10[] = {0, 99.9f, 100, 500, 899.99f, 999};
    int w10[] = {0, 0, 1, 5, 8, 9};
    check_buckets(10, t10, w10, 6, 2);
    /* n = 25: width 40 (the DDIM sampler's stride at 25 steps) */
    float t25[] = {0, 39.99f, 40, 520, 960, 999};
    int w25[] = {0, 0, 1, 13, 24, 24};
    check_buckets(25, t25, w25, 6, 3);
    /* n = 30 does not divide 1000: stride 33, sampler step i (t = 33 i) must get quantizer i */
    float t30[] = {0, 33, 66, 957, 999};
    int w30[] = {0, 1, 2, 29, 29};
    check_buckets(30, t30, w30, 5, 1);
    /* sampling_steps = 0: one quantizer for every timestep */
    float t1[] = {0, 999};
    int w1[] = {0, 0};
    check_buckets(0, t1, w1, 2, 1);
}

Test(efficientdm, each_row_uses_its_own_timesteps_quantizer) {
    enum { IN = 6, OUT = 4, B = 4, RPS = 2, M = B * RPS };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 4, 8, 2, 10, 1e-4f, 31, &err), QA_OK, "%s", err.msg);
    float t[B] = {50, 550, 560, 950};  /* buckets 0, 5, 5, 9 */
    set_step(&L, B, RPS, t);
    trng r = trng_new(32);
    float x[M * IN], y0[M * OUT], y1[M * OUT];
    fill_normal(&r, x, M * IN, 1.0);
    L.m->forward(L.state, x, y0, M);
    qa_param ps[8];
    int np = L.m->params(L.state, ps, 8);
    qa_param *delta = mc_find_param(ps, np, "act_delta"), *zero = mc_find_param(ps, np, "act_zero");
    delta->data[5] *= 3.0f;
    zero->data[5] += 7.0f;
    L.m->forward(L.state, x, y1, M);
    for (int m = 0; m < M; m++) {
        int sample = m / RPS, moved = 0;
        for (int o = 0; o < OUT; o++) moved |= y0[m * OUT + o] != y1[m * OUT + o];
        cr_expect_eq(moved, sample == 1 || sample == 2, "row %d (t = %g): changed %d", m, t[sample], moved);
    }
    /* X_hat by hand with each row's bucket */
    qa_named_tensor tn[16];
    int nt = L.m->inspect(L.state, tn, 16);
    const float *x_hat = mc_find_tensor(tn, nt, "X_hat")->f32;
    int bucket_of_sample[B] = {0, 5, 5, 9};
    for (int m = 0; m < M; m++) {
        int k = bucket_of_sample[m / RPS];
        for (int i = 0; i < IN; i++) {
            double d = delta->data[k], z = zero->data[k];
            double p = nearbyint(x[m * IN + i] / d) + z;
            p = p < 0 ? 0 : (p > 255 ? 255 : p);
            cr_expect(close_rel(x_hat[m * IN + i], d * (p - z), 1e-6, 1e-7), "X_hat[%d,%d] %g vs %g", m, i,
                      x_hat[m * IN + i], d * (p - z));
        }
    }
    free_layer(&L);
}

/* ---- calibration ---------------------------------------------------------------------------- */

Test(efficientdm, activation_quantizer_calibrates_on_the_first_batch_then_stays) {
    enum { IN = 8, OUT = 3, B = 2, RPS = 4, M = B * RPS, NB = 10 };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 4, 6, 2, NB, 1e-4f, 41, &err), QA_OK, "%s", err.msg);
    float t[B] = {120, 870};
    set_step(&L, B, RPS, t);
    trng r = trng_new(42);
    float x1[M * IN], x2[M * IN], y[M * OUT];
    fill_normal(&r, x1, M * IN, 1.0);
    x1[5] = 4.0f; /* a wide first batch: the search shrinks its range */
    float want_delta, want_zero;
    qa_quant_search(x1, (size_t)M * IN, 6, &want_delta, &want_zero); /* over the whole first batch */
    L.m->forward(L.state, x1, y, M);
    qa_named_tensor tn[16];
    int nt = L.m->inspect(L.state, tn, 16);
    const float *delta = mc_find_tensor(tn, nt, "act_delta")->f32, *zero = mc_find_tensor(tn, nt, "act_zero")->f32;
    for (int k = 0; k < NB; k++) {
        cr_expect_eq(delta[k], want_delta, "bucket %d delta %g vs search %g", k, delta[k], want_delta);
        cr_expect_eq(zero[k], want_zero, "bucket %d zero %g vs search %g", k, zero[k], want_zero);
    }
    for (int i = 0; i < M * IN; i++) x2[i] = 3.0f * x1[i] + 0.5f;
    float t2[B] = {0, 999}; /* other buckets too */
    set_step(&L, B, RPS, t2);
    L.m->forward(L.state, x2, y, M);
    nt = L.m->inspect(L.state, tn, 16);
    delta = mc_find_tensor(tn, nt, "act_delta")->f32;
    zero = mc_find_tensor(tn, nt, "act_zero")->f32;
    for (int k = 0; k < NB; k++) {
        cr_expect_eq(delta[k], want_delta, "bucket %d re-calibrated: %g", k, delta[k]);
        cr_expect_eq(zero[k], want_zero, "bucket %d re-calibrated: %g", k, zero[k]);
    }
    free_layer(&L);
}

/* ---- gradients: central differences of the STE surrogate ------------------------------------- */

enum { G_IN = 12, G_OUT = 5, G_R = 3, G_B = 2, G_RPS = 3, G_M = G_B * G_RPS, G_NB = 10 };

/* Everything in double. Parameters (the point of evaluation) and frozen inputs, then the STE
 * constants frozen at that point: inside the clamp the surrogate replaces round(v) by v + offset
 * (offset = round(v0) - v0), outside it keeps the clamp value. */
typedef struct {
    int a_bits, w_levels, a_levels;
    double A[G_R][G_IN], B[G_OUT][G_R], s[G_OUT], x[G_M][G_IN], delta[G_NB], zero[G_NB];
    double q0[G_OUT][G_IN], zw[G_OUT], bias[G_OUT], w[G_M][G_OUT];
    int bucket[G_M];
    int w_inside[G_OUT][G_IN], x_inside[G_M][G_IN];
    double w_offset[G_OUT][G_IN], w_bound[G_OUT][G_IN], x_offset[G_M][G_IN], x_bound[G_M][G_IN];
} ste_ref;

static double ref_v(const ste_ref *R, int o, int i) {
    double ba = 0;
    for (int k = 0; k < G_R; k++) ba += R->B[o][k] * R->A[k][i];
    return (R->s[o] * (R->q0[o][i] - R->zw[o]) + ba) / R->s[o]; /* W_m / s_w, W_m = s_w (Q0 - z_w) + B A */
}

static void ref_freeze(ste_ref *R) {
    for (int o = 0; o < G_OUT; o++)
        for (int i = 0; i < G_IN; i++) {
            double v = ref_v(R, o, i), q = nearbyint(v) + R->zw[o];
            R->w_inside[o][i] = q >= 0 && q <= R->w_levels;
            R->w_offset[o][i] = nearbyint(v) - v;
            R->w_bound[o][i] = q < 0 ? 0 : R->w_levels;
        }
    for (int m = 0; m < G_M; m++)
        for (int i = 0; i < G_IN; i++) {
            int k = R->bucket[m];
            double u = R->x[m][i] / R->delta[k], p = nearbyint(u) + R->zero[k];
            R->x_inside[m][i] = p >= 0 && p <= R->a_levels;
            R->x_offset[m][i] = nearbyint(u) - u;
            R->x_bound[m][i] = p < 0 ? 0 : R->a_levels;
        }
}

/* y of the surrogate (equal to the true layer at the freezing point) and L = sum y w. */
static double ref_objective(const ste_ref *R, double y[G_M][G_OUT]) {
    double w_hat[G_OUT][G_IN], x_hat[G_M][G_IN];
    for (int o = 0; o < G_OUT; o++)
        for (int i = 0; i < G_IN; i++)
            w_hat[o][i] = R->w_inside[o][i] ? R->s[o] * (ref_v(R, o, i) + R->w_offset[o][i])
                                            : R->s[o] * (R->w_bound[o][i] - R->zw[o]);
    for (int m = 0; m < G_M; m++)
        for (int i = 0; i < G_IN; i++) {
            int k = R->bucket[m];
            double d = R->delta[k];
            x_hat[m][i] = !R->a_bits         ? R->x[m][i]
                          : R->x_inside[m][i] ? d * (R->x[m][i] / d + R->x_offset[m][i])
                                              : d * (R->x_bound[m][i] - R->zero[k]);
        }
    double L = 0;
    for (int m = 0; m < G_M; m++)
        for (int o = 0; o < G_OUT; o++) {
            double acc = R->bias[o];
            for (int i = 0; i < G_IN; i++) acc += x_hat[m][i] * w_hat[o][i];
            if (y) y[m][o] = acc;
            L += acc * R->w[m][o];
        }
    return L;
}

static double central_difference(ste_ref *R, double *p) {
    const double h = 1e-4, old = *p;
    *p = old + h;
    double lp = ref_objective(R, NULL);
    *p = old - h;
    double lm = ref_objective(R, NULL);
    *p = old;
    return (lp - lm) / (2 * h);
}

#define CHECK_GRAD(label, analytic, param_ptr)                                                                 \
    do {                                                                                                       \
        double num_ = central_difference(&R, (param_ptr));                                                     \
        double ana_ = (analytic);                                                                              \
        cr_expect(close_rel(ana_, num_, 1e-3, 2e-4), "%s: analytic %g vs central difference %g", label, ana_, \
                  num_);                                                                                       \
        checked++;                                                                                             \
    } while (0)

static void check_grads(int a_bits, uint64_t seed) {
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, G_IN, G_OUT, 4, a_bits, G_R, G_NB, 1e-4f, seed, &err), QA_OK, "%s", err.msg);
    float t[G_B] = {120, 870}; /* buckets 1 and 8 */
    const int used[G_B] = {1, 8};
    set_step(&L, G_B, G_RPS, t);
    trng r = trng_new(seed + 1);
    float x1[G_M * G_IN], x2[G_M * G_IN], y[G_M * G_OUT], w[G_M * G_OUT], dx[G_M * G_IN] = {0};
    fill_normal(&r, x1, G_M * G_IN, 1.0);
    L.m->forward(L.state, x1, y, G_M); /* calibration */

    /* move off the initial point: B != 0, the two buckets apart, fractional zero points */
    qa_param ps[8];
    int np = L.m->params(L.state, ps, 8);
    qa_param *pA = mc_find_param(ps, np, "lora_A"), *pB = mc_find_param(ps, np, "lora_B");
    qa_param *ps_w = mc_find_param(ps, np, "w_scale");
    qa_param *pd = a_bits ? mc_find_param(ps, np, "act_delta") : NULL, *pz = a_bits ? mc_find_param(ps, np, "act_zero") : NULL;
    fill_normal(&r, pB->data, pB->n, 1.0);
    for (int o = 0; o < G_OUT; o++) ps_w->data[o] *= 1.0f + 0.05f * (float)o;
    if (a_bits) {
        pd->data[8] *= 0.8f;
        pz->data[1] += 0.3f;
        pz->data[8] -= 0.45f;
    }
    fill_normal(&r, x2, G_M * G_IN, 1.6); /* wider than the calibration batch: some inputs clamp */
    fill_normal(&r, w, G_M * G_OUT, 1.0);
    L.m->forward(L.state, x2, y, G_M);
    L.m->backward(L.state, w, dx, G_M); /* dL/dy = w for L = sum y w */

    /* the reference, from the plugin's parameters and this test's own Q0, z_w */
    static ste_ref R;
    memset(&R, 0, sizeof R);
    R.a_bits = a_bits;
    R.w_levels = 15;
    R.a_levels = a_bits ? (1 << a_bits) - 1 : 0;
    float delta0[G_OUT], zero0[G_OUT], q0[G_OUT * G_IN];
    weight_codes_by_hand(&L, 4, delta0, zero0, q0);
    for (int o = 0; o < G_OUT; o++) {
        R.s[o] = ps_w->data[o];
        R.zw[o] = zero0[o];
        R.bias[o] = L.b[o];
        for (int k = 0; k < G_R; k++) R.B[o][k] = pB->data[o * G_R + k];
        for (int i = 0; i < G_IN; i++) R.q0[o][i] = q0[o * G_IN + i];
    }
    for (int k = 0; k < G_R; k++)
        for (int i = 0; i < G_IN; i++) R.A[k][i] = pA->data[k * G_IN + i];
    for (int k = 0; k < G_NB && a_bits; k++) {
        R.delta[k] = pd->data[k];
        R.zero[k] = pz->data[k];
    }
    for (int m = 0; m < G_M; m++) {
        R.bucket[m] = used[m / G_RPS];
        for (int i = 0; i < G_IN; i++) R.x[m][i] = x2[m * G_IN + i];
        for (int o = 0; o < G_OUT; o++) R.w[m][o] = w[m * G_OUT + o];
    }
    ref_freeze(&R);

    /* the surrogate at the point is the layer itself */
    double y_ref[G_M][G_OUT];
    ref_objective(&R, y_ref);
    for (int m = 0; m < G_M; m++)
        for (int o = 0; o < G_OUT; o++)
            cr_assert(close_rel(y[m * G_OUT + o], y_ref[m][o], 1e-5, 1e-5), "y[%d,%d] %g vs reference %g", m, o,
                      y[m * G_OUT + o], y_ref[m][o]);

    /* the point must exercise both branches of both clamps */
    int w_in = 0, w_out = 0, x_in = 0, x_out = 0;
    for (int o = 0; o < G_OUT; o++)
        for (int i = 0; i < G_IN; i++) R.w_inside[o][i] ? w_in++ : w_out++;
    for (int m = 0; m < G_M; m++)
        for (int i = 0; i < G_IN; i++) R.x_inside[m][i] ? x_in++ : x_out++;
    cr_assert(w_in > 0 && w_out > 0, "weights inside %d / clamped %d: pick another seed", w_in, w_out);
    if (a_bits) cr_assert(x_in > 0 && x_out > 0, "inputs inside %d / clamped %d: pick another seed", x_in, x_out);

    int checked = 0;
    char label[64];
    for (int k = 0; k < G_R; k++)
        for (int i = 0; i < G_IN; i++) {
            snprintf(label, sizeof label, "dA[%d,%d]", k, i);
            CHECK_GRAD(label, pA->grad[k * G_IN + i], &R.A[k][i]);
        }
    for (int o = 0; o < G_OUT; o++)
        for (int k = 0; k < G_R; k++) {
            snprintf(label, sizeof label, "dB[%d,%d]", o, k);
            CHECK_GRAD(label, pB->grad[o * G_R + k], &R.B[o][k]);
        }
    for (int o = 0; o < G_OUT; o++) {
        snprintf(label, sizeof label, "ds_w[%d]", o);
        CHECK_GRAD(label, ps_w->grad[o], &R.s[o]);
    }
    for (int m = 0; m < G_M; m++)
        for (int i = 0; i < G_IN; i++) {
            snprintf(label, sizeof label, "dx[%d,%d]", m, i);
            CHECK_GRAD(label, dx[m * G_IN + i], &R.x[m][i]);
        }
    if (a_bits) {
        for (int b = 0; b < G_B; b++) {
            int k = used[b];
            snprintf(label, sizeof label, "d act_delta[%d]", k);
            CHECK_GRAD(label, pd->grad[k], &R.delta[k]);
            snprintf(label, sizeof label, "d act_zero[%d]", k);
            CHECK_GRAD(label, pz->grad[k], &R.zero[k]);
            cr_expect(pd->grad[k] != 0.0f && pz->grad[k] != 0.0f, "bucket %d in use has a zero gradient", k);
        }
        for (int k = 0; k < G_NB; k++)
            if (k != used[0] && k != used[1])
                cr_expect(pd->grad[k] == 0.0f && pz->grad[k] == 0.0f, "bucket %d unused but has a gradient", k);
    }
    cr_expect_eq(checked, G_R * G_IN + G_OUT * G_R + G_OUT + G_M * G_IN + (a_bits ? 4 : 0));
    free_layer(&L);
}

Test(efficientdm, gradients_match_central_differences_of_the_ste_surrogate) { check_grads(8, 51); }
Test(efficientdm, gradients_with_a_coarse_activation_quantizer) { check_grads(4, 52); }
Test(efficientdm, gradients_without_activation_quantization) { check_grads(0, 53); }

/* The s_w gradient is not the LSQ+ term alone: dropping dW_b/ds_w = Q0 - z_w must show. */
Test(efficientdm, scale_gradient_includes_the_base_weight_term) {
    enum { IN = 8, OUT = 2, M = 2 };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 4, 0, 1, 1, 1e-4f, 61, &err), QA_OK, "%s", err.msg);
    float x[M * IN], y[M * OUT], dy[M * OUT] = {1, 1, 1, 1};
    trng r = trng_new(62);
    fill_normal(&r, x, M * IN, 1.0);
    L.m->forward(L.state, x, y, M);
    L.m->backward(L.state, dy, NULL, M); /* B = 0: W_hat = s (Q0 - z), so dL/ds = sum_i G_W (Q0 - z) */
    qa_param ps[4];
    int np = L.m->params(L.state, ps, 4);
    const qa_param *sw = mc_find_param(ps, np, "w_scale");
    float delta[OUT], zero[OUT], q0[OUT * IN];
    weight_codes_by_hand(&L, 4, delta, zero, q0);
    for (int o = 0; o < OUT; o++) {
        double want = 0;
        for (int m = 0; m < M; m++)
            for (int i = 0; i < IN; i++) want += (double)dy[m * OUT + o] * x[m * IN + i] * (q0[o * IN + i] - zero[o]);
        cr_expect(close_rel(sw->grad[o], want, 1e-4, 1e-5), "ds_w[%d] %g vs sum G_W (Q0 - z_w) %g", o, sw->grad[o],
                  want);
    }
    free_layer(&L);
}

/* Where the layer is linear in x (a_bits = 0), differentiate the real forward. */
Test(efficientdm, dx_matches_finite_differences_of_the_forward_without_act_quant) {
    enum { IN = 10, OUT = 4, M = 3 };
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 3, 0, 2, 5, 1e-4f, 71, &err), QA_OK, "%s", err.msg);
    qa_param ps[4];
    L.m->params(L.state, ps, 4);
    trng r = trng_new(72);
    fill_normal(&r, ps[1].data, ps[1].n, 0.5);
    float x[M * IN], y[M * OUT], w[M * OUT], dx[M * IN] = {0};
    fill_normal(&r, x, M * IN, 1.0);
    fill_normal(&r, w, M * OUT, 1.0);
    L.m->forward(L.state, x, y, M);
    L.m->backward(L.state, w, dx, M);
    for (int k = 0; k < M * IN; k++) {
        double num = mc_central_difference(L.m, L.state, x, w, M, OUT, &x[k], 1e-2f);
        cr_expect(close_rel(dx[k], num, 2e-3, 1e-4), "dx[%d] %g vs %g", k, dx[k], num);
    }
    free_layer(&L);
}

/* ---- merge -------------------------------------------------------------------------------- */

Test(efficientdm, merge_deploys_the_codes_and_rounded_act_zero_points) {
    enum { IN = 16, OUT = 6, R = 2, B = 2, RPS = 3, M = B * RPS, NB = 10, WB = 4, AB = 8 };
    const int wl = (1 << WB) - 1, al = (1 << AB) - 1;
    layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, WB, AB, R, NB, 1e-4f, 81, &err), QA_OK, "%s", err.msg);
    float t[B] = {120, 870};
    const int used[B] = {1, 8};
    set_step(&L, B, RPS, t);
    trng r = trng_new(82);
    float x[M * IN], y_train[M * OUT], y_dep[M * OUT], y_again[M * OUT];
    fill_normal(&r, x, M * IN, 1.0);
    L.m->forward(L.state, x, y_train, M); /* calibration */
    qa_param ps[8];
    int np = L.m->params(L.state, ps, 8);
    qa_param *pA = mc_find_param(ps, np, "lora_A"), *pB = mc_find_param(ps, np, "lora_B");
    qa_param *sw = mc_find_param(ps, np, "w_scale"), *pd = mc_find_param(ps, np, "act_delta");
    qa_param *pz = mc_find_param(ps, np, "act_zero");
    fill_normal(&r, pB->data, pB->n, 0.8);
    for (int o = 0; o < OUT; o++) sw->data[o] *= 1.02f;
    pd->data[8] *= 1.3f;
    float z_before[NB];
    for (int k = 0; k < NB; k++) z_before[k] = pz->data[k];
    pz->data[1] += 0.3f;  /* rounds back */
    pz->data[8] -= 0.6f;  /* rounds to z - 1 */
    L.m->forward(L.state, x, y_train, M);

    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(d.needs_ptq, 0, "EfficientDM deploys without PTQ");
    cr_expect_eq(d.merge, QA_MERGE_QAT_CODES);
    cr_expect(strstr(d.note, "rounded") != NULL, "note: %s", d.note);
    cr_expect_eq(d.bits_per_weight, WB + 64.0 / IN);
    cr_assert_not_null(d.w_int);
    cr_assert_not_null(d.row_scale);
    cr_expect_null(d.w_fp);
    cr_expect_eq(pz->data[1], z_before[1], "act zero %g -> %g", z_before[1] + 0.3, pz->data[1]);
    cr_expect_eq(pz->data[8], z_before[8] - 1, "act zero %g -> %g", z_before[8] - 0.6, pz->data[8]);
    for (int k = 0; k < NB; k++) cr_expect_eq(pz->data[k], nearbyintf(pz->data[k]), "act zero %d not rounded", k);

    /* the codes, computed here in double from the trained s_w, A, B and this test's Q0, z_w */
    float delta0[OUT], zero0[OUT], q0[OUT * IN];
    weight_codes_by_hand(&L, WB, delta0, zero0, q0);
    for (int o = 0; o < OUT; o++) {
        cr_expect_eq(d.row_scale[o], sw->data[o], "row_scale is s_w");
        for (int i = 0; i < IN; i++) {
            double ba = 0;
            for (int k = 0; k < R; k++) ba += (double)pB->data[o * R + k] * pA->data[k * IN + i];
            double v = ((double)sw->data[o] * (q0[o * IN + i] - zero0[o]) + ba) / sw->data[o];
            double q = nearbyint(v) + zero0[o];
            q = q < 0 ? 0 : (q > wl ? wl : q);
            int32_t wi = d.w_int[o * IN + i];
            cr_expect_eq(wi, (int32_t)(q - zero0[o]), "w_int[%d,%d] %d vs %g", o, i, wi, q - zero0[o]);
            cr_expect(wi >= -zero0[o] && wi <= wl - zero0[o], "w_int %d outside [-z, L - z], z = %g", wi, zero0[o]);
        }
    }

    /* forward() is now the deployed layer: x_hat with rounded zero points, row_scale * w_int */
    L.m->forward(L.state, x, y_dep, M);
    double diff = 0;
    for (int m = 0; m < M; m++) {
        int k = used[m / RPS];
        double dl = pd->data[k], zr = nearbyint(pz->data[k]);
        for (int o = 0; o < OUT; o++) {
            double acc = L.b[o];
            for (int i = 0; i < IN; i++) {
                double p = nearbyint(x[m * IN + i] / dl) + zr;
                p = p < 0 ? 0 : (p > al ? al : p);
                acc += dl * (p - zr) * ((double)d.row_scale[o] * d.w_int[o * IN + i]);
            }
            cr_expect(close_rel(y_dep[m * OUT + o], acc, 1e-5, 1e-6), "deployed y[%d,%d] %g vs %g", m, o,
                      y_dep[m * OUT + o], acc);
            diff += fabs(y_dep[m * OUT + o] - y_train[m * OUT + o]);
        }
    }
    cr_expect_gt(diff, 1e-4, "rounding the zero points must change something in this test");

    /* LoRA is discarded: changing it now changes nothing */
    fill_normal(&r, pB->data, pB->n, 1.0);
    L.m->forward(L.state, x, y_again, M);
    for (int k = 0; k < M * OUT; k++) cr_expect_eq(y_again[k], y_dep[k], "deployed forward moved with B");

    /* a second merge gives the same deploy */
    qa_deployed d2;
    cr_assert_eq(L.m->merge(L.state, &d2, &err), QA_OK);
    cr_expect_eq(memcmp(d2.w_int, d.w_int, sizeof(int32_t) * OUT * IN), 0);
    qa_deployed_free(&d2);
    qa_deployed_free(&d);
    free_layer(&L);
}

/* ---- learning rates, bytes, errors, entry ----------------------------------------------------- */

Test(efficientdm, quantizer_rates_keep_their_ratio_to_the_adapter_rate) {
    enum { IN = 16, OUT = 4 };
    const float base_lrs[] = {1e-4f, 3e-3f, 0.0f};
    const char *names[] = {"lora_A", "lora_B", "w_scale", "act_delta", "act_zero"};
    /* the adapter at the recipe's rate; s_w and the activation quantizers at the paper's 1e-6
     * and 5e-4 when the adapter is at its reference rate 1e-3, scaling with it */
    const double want[] = {1, 1, 1e-6 / 1e-3, 5e-4 / 1e-3, 5e-4 / 1e-3};
    const size_t sizes[] = {2 * IN, OUT * 2, OUT, 25, 25};
    cr_expect_eq(qa_method_efficientdm.reference_lr, 1e-3);
    for (int k = 0; k < 3; k++) {
        layer L;
        qa_error err;
        cr_assert_eq(make_layer(&L, IN, OUT, 4, 8, 2, 25, base_lrs[k], 91, &err), QA_OK, "%s", err.msg);
        qa_param ps[8];
        int np = L.m->params(L.state, ps, 8);
        cr_assert_eq(np, 5);
        for (int i = 0; i < 5; i++) {
            const qa_param *p = mc_find_param(ps, np, names[i]);
            cr_expect(close_rel(p->lr_scale, want[i], 1e-6, 0), "%s lr_scale %g, want %g at base lr %g", names[i],
                      p->lr_scale, want[i], base_lrs[k]);
            cr_expect_eq(p->n, sizes[i], "%s has %zu entries", names[i], p->n);
        }
        cr_expect_eq(L.m->params(L.state, ps, 4), 0, "too little room: nothing");
        free_layer(&L);
    }
}

Test(efficientdm, bytes) {
    const int in = 32, out = 6, r = 4, nb = 20;
    int w_bits[] = {4, 8, 3}, a_bits[] = {8, 0, 4};
    for (int c = 0; c < 3; c++) {
        layer L;
        qa_error err;
        cr_assert_eq(make_layer(&L, in, out, w_bits[c], a_bits[c], r, nb, 1e-4f, 101, &err), QA_OK, "%s", err.msg);
        qa_bytes b;
        L.m->bytes(L.state, &b);
        size_t act = a_bits[c] ? 2 * (size_t)nb : 0;
        /* Q0 held as integers: N-bit packed at N <= 4 (3 bits: 32 x 6 x 3 / 8 = 72 bytes), a byte at 8 */
        size_t q0_bytes = w_bits[c] <= 4 ? (size_t)in * out * w_bits[c] / 8 : (size_t)in * out;
        cr_expect_eq(b.frozen, q0_bytes + (size_t)out * 4 * 2, "Q0 codes, z_w, bias: %zu", b.frozen);
        cr_expect_eq(b.workspace, (size_t)in * out * 6 * 4, "B A, W_hat, mask, dW_hat/ds_w, G_W, codes of W_hat");
        cr_expect_eq(b.trainable, ((size_t)r * (in + out) + out + act) * 4, "A, B, s_w, act delta/zero");
        cr_expect_eq(b.gradients, b.trainable);
        cr_expect_eq(b.optimizer, 2 * b.trainable);
        cr_expect_eq(b.deployed, (size_t)in * out * w_bits[c] / 8 + (size_t)out * 4 * 3 + act * 4,
                     "N-bit codes, scale + zero + bias per row, act quantizers");
        free_layer(&L);
    }
}

Test(efficientdm, rejects_full_precision_weights_and_bad_rank) {
    layer L;
    qa_error err = {0, ""};
    cr_expect_eq(make_layer(&L, 8, 2, 0, 8, 1, 10, 1e-4f, 111, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "blocks.2.attn.qkv") && strstr(err.msg, "w_bits = 0"), "message: %s", err.msg);
    qa_free(L.state); /* init failed before allocating anything */
    qa_free(L.W);
    qa_free(L.b);
    cr_expect_eq(make_layer(&L, 8, 2, 4, 8, 3, 10, 1e-4f, 112, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "rank 3"), "message: %s", err.msg);
    qa_free(L.state);
    qa_free(L.W);
    qa_free(L.b);
}

Test(efficientdm, method_entry) {
    const qa_method *m = &qa_method_efficientdm;
    cr_expect_str_eq(m->name, "efficientdm");
    cr_expect_eq(m->needs_weight_bits, 1);
    cr_expect(m->flags & QA_METHOD_OWNS_ACT_QUANT, "the method quantizes its own inputs");
    cr_expect(m->summary && m->init && m->forward && m->backward && m->params && m->merge && m->bytes && m->destroy &&
                  m->inspect, "every slot filled");
}
