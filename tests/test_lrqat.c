/* LR-QAT plugin (methods/lrqat.c): the scale and the fixed-point Phi0 against the formulas
 * computed here in double, a 2-bit layer by hand (with the reference's straight-through quirk at
 * the clamp), gradients by central differences of the straight-through surrogate, merge ==
 * training forward (a pure b-bit weight), bits per weight and bytes, and bad input. The
 * authors' own numbers are checked in tests/test_fixture.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/artifact.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "tests/common.h"
#include "tests/method_check.h"

static int make_layer(mc_layer *L, int in, int out, int rank, int bits, const char *phi, float lora_scale, uint64_t seed,
                      qa_error *err) {
    mc_layer_new(L, qa_method_find("lr-qat"), in, out, seed);
    mc_layer_option(L, "phi", phi);
    L->cfg.w_bits = bits;
    L->cfg.a_bits = 8;
    L->cfg.rank = rank;
    L->cfg.lora_scale = lora_scale;
    return mc_layer_init_seeded(L, seed + 3, "blocks.1.attn.v", NULL, err);
}

static const qa_named_tensor *tensor(mc_layer *L, const char *name) { return mc_inspect(L->m, L->state, name); }

/* params: A, B, scale */
static void params3(mc_layer *L, qa_param p[3]) {
    cr_assert_eq(L->m->params(L->state, p, 3), 3);
    cr_assert_str_eq(p[0].name, "lora_A");
    cr_assert_str_eq(p[1].name, "lora_B");
    cr_assert_str_eq(p[2].name, "scale");
}

/* ---- init: current min-max symmetric scale, Phi0 in 8-bit fixed point ----------------------- */

static void check_init(int bits, const char *phi) {
    mc_layer L;
    qa_error err;
    const int in = 20, out = 6;
    cr_assert_eq(make_layer(&L, in, out, 2, bits, phi, 1.0f, 41, &err), 0, "%s", err.msg);
    const float *scale = tensor(&L, "scale")->f32;
    const qa_named_tensor *p0 = tensor(&L, "Phi0");
    const double qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1)), unit = ldexp(1.0, 8 - bits);
    for (int o = 0; o < out; o++) {
        double lo = 0, hi = 1e-8;
        for (int i = 0; i < in; i++) { lo = fmin(lo, L.W[o * in + i]); hi = fmax(hi, L.W[o * in + i]); }
        double s0 = fmax(-lo, hi) / qmax;
        cr_expect(close_rel(scale[o], s0, 1e-6, 0), "s0[%d] %g vs %g", o, scale[o], s0);
        for (int i = 0; i < in; i++) {
            double v = L.W[o * in + i] / (double)scale[o];
            if (p0->i32) {
                double want = nearbyint(fmin(fmax(v, qmin), qmax) * unit);
                cr_expect(want >= -128 && want <= 127);
                cr_expect(fabs(p0->i32[o * in + i] - want) <= (fabs(fabs(v * unit - floor(v * unit)) - 0.5) < 1e-5 ? 1 : 0),
                          "Phi0[%d,%d] = %d, want %g", o, i, p0->i32[o * in + i], want);
            } else {
                cr_expect(close_rel(p0->f32[o * in + i], v, 1e-6, 1e-7), "Phi0[%d,%d]", o, i);
            }
        }
    }
    /* B = 0: the layer is the rounded grid value times s0 */
    const int M = 2;
    float x[2 * 20], y[2 * 6];
    trng t = trng_new(42);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    L.m->forward(L.state, x, y, M);
    const int32_t *wi = tensor(&L, "W_int")->i32;
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
            double phi_value = p0->i32 ? p0->i32[o * in + i] / unit : p0->f32[o * in + i];
            double want = fmin(fmax(nearbyint(phi_value), qmin), qmax);
            cr_expect_eq(wi[o * in + i], (int32_t)want, "W_int[%d,%d] at B = 0", o, i);
        }
        for (int m = 0; m < M; m++) {
            double ref = L.b[o];
            for (int i = 0; i < in; i++) ref += (double)x[m * in + i] * scale[o] * wi[o * in + i];
            cr_expect(close_rel(y[m * out + o], ref, 1e-5, 1e-6), "y[%d,%d]", m, o);
        }
    }
    mc_layer_free(&L);
}

Test(lrqat, init_fixed_point8_at_4_bits) { check_init(4, "fixed_point8"); }
Test(lrqat, init_fixed_point8_at_2_bits) { check_init(2, "fixed_point8"); }
Test(lrqat, init_fixed_point8_at_8_bits_has_no_fraction) { check_init(8, "fixed_point8"); }
Test(lrqat, init_fp32_phi) { check_init(3, "fp32"); }

/* ---- a 2-bit layer by hand ------------------------------------------------------------------- */

Test(lrqat, a_two_bit_layer_by_hand_with_the_clamp_quirk) {
    /* W = [0.5, -1]: range [-1, 0.5] -> s0 = 1 / qmax = 1 (grid -2 .. 1); Phi0 = [0.5, -1] * 2^6
     * = [32, -64]. A = [1, -2.125], B = [0.8], c = 1: C = [0.8, -1.7], Z = [1.3, -2.7],
     * round(Z) = [1, -3] -> W_int = [1, -2]; the first passes the gradient although Z > qmax
     * (the clamp acts on round(Z)), the second does not. */
    float W[2] = {0.5f, -1.0f}, b[1] = {0.25f};
    const qa_method *m = qa_method_find("lr-qat");
    qa_method_cfg cfg = {.w_bits = 2, .rank = 1, .lora_scale = 1.0f};
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {2, 1, W, b, &cfg, r, "t", NULL, NULL};
    mc_layer L = {.m = m, .in = 2, .out = 1};
    L.state = qa_alloc(m->state_size);
    qa_error err;
    cr_assert_eq(m->init(L.state, &li, &err), 0, "%s", err.msg);
    cr_expect_eq(tensor(&L, "scale")->f32[0], 1.0f);
    cr_expect_eq(tensor(&L, "Phi0")->i32[0], 32);
    cr_expect_eq(tensor(&L, "Phi0")->i32[1], -64);
    qa_param p[3];
    params3(&L, p);
    p[0].data[0] = 1.0f;
    p[0].data[1] = -2.125f;
    p[1].data[0] = 0.8f;
    float x[2] = {2, 3}, y[1], dy[1] = {1}, dx[2] = {0, 0};
    m->forward(L.state, x, y, 1);
    cr_expect_eq(tensor(&L, "W_int")->i32[0], 1);
    cr_expect_eq(tensor(&L, "W_int")->i32[1], -2);
    cr_expect_float_eq(y[0], 2 * 1 + 3 * -2 + 0.25f, 1e-6); /* -3.75 */
    for (int k = 0; k < 3; k++) memset(p[k].grad, 0, sizeof(float) * p[k].n);
    m->backward(L.state, dy, dx, 1);
    /* G_W = [2, 3]; ds = 2 * 1 + 3 * (-2) = -4; GM = [2, 0]; dB = GM A^T = 2; dA = B GM = [1.6, 0] */
    cr_expect_float_eq(p[2].grad[0], -4.0f, 1e-6);
    cr_expect_float_eq(p[1].grad[0], 2.0f, 1e-6);
    cr_expect_float_eq(p[0].grad[0], 1.6f, 1e-6);
    cr_expect_eq(p[0].grad[1], 0.0f, "round(Z) outside the grid passes no gradient");
    cr_expect_float_eq(dx[0], 1.0f, 1e-6);
    cr_expect_float_eq(dx[1], -2.0f, 1e-6);
    qa_deployed d;
    cr_assert_eq(m->merge(L.state, &d, &err), 0);
    cr_expect_eq(d.w_int[0], 1);
    cr_expect_eq(d.w_int[1], -2);
    cr_expect_eq(d.row_scale[0], 1.0f);
    cr_expect_float_eq(d.bits_per_weight, 2 + 32.0 / 2, 1e-12);
    qa_deployed_free(&d);
    m->destroy(L.state);
    qa_free(L.state);
    qa_rng_free(r);
}

/* ---- gradients: central differences of the straight-through surrogate ----------------------
 * At the current point (Z0, W_int0, mask0) the surrogate weight is
 *   W_sur = max(s, 1e-8) (W_int0 + mask0 (Z - Z0)),  Z = Phi0 + c B A,
 * whose gradient is what the straight-through rule computes; L = sum(y . dy), y = x W_sur^T + b,
 * evaluated here in double, independently of the plugin. */

typedef struct {
    int in, out, r;
    double c;
    const double *phi, *z0;
    const int32_t *wint0;
    const unsigned char *mask;
    const float *x, *dy;
    int M;
} surrogate;

static double surrogate_loss(const surrogate *S, const double *A, const double *B, const double *s) {
    double loss = 0;
    for (int o = 0; o < S->out; o++)
        for (int i = 0; i < S->in; i++) {
            double ba = 0;
            for (int k = 0; k < S->r; k++) ba += B[o * S->r + k] * A[k * S->in + i];
            size_t at = (size_t)o * S->in + i;
            double z = S->phi[at] + S->c * ba;
            double w = fmax(s[o], 1e-8) * (S->wint0[at] + (S->mask[at] ? z - S->z0[at] : 0.0));
            double gw = 0; /* G_W[o,i] = sum_m dy[m,o] x[m,i] */
            for (int m = 0; m < S->M; m++) gw += (double)S->dy[m * S->out + o] * S->x[m * S->in + i];
            loss += gw * w;
        }
    return loss;
}

static void check_grads(int bits, float c, uint64_t seed) {
    mc_layer L;
    qa_error err;
    const int in = 10, out = 7, r = 3, M = 4;
    cr_assert_eq(make_layer(&L, in, out, r, bits, "fixed_point8", c, seed, &err), 0, "%s", err.msg);
    qa_param p[3];
    params3(&L, p);
    trng t = trng_new(seed + 1);
    fill_normal(&t, p[1].data, p[1].n, 1.5); /* B large enough that codes move and some clamp */
    float x[4 * 10], dy[4 * 7], y[4 * 7], dx[4 * 10] = {0};
    fill_normal(&t, x, (size_t)M * in, 1.0);
    fill_normal(&t, dy, (size_t)M * out, 1.0);
    L.m->forward(L.state, x, y, M);
    for (int k = 0; k < 3; k++) memset(p[k].grad, 0, sizeof(float) * p[k].n);
    L.m->backward(L.state, dy, dx, M);
    /* the surrogate's point: Phi0 as a real number, Z0, W_int0 and the mask from this forward */
    const qa_named_tensor *p0 = tensor(&L, "Phi0");
    const int32_t *wint = tensor(&L, "W_int")->i32;
    const double unit = ldexp(1.0, 8 - bits), qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
    double phi[70], z0[70], A[30], B[21], s[7];
    unsigned char mask[70];
    int passing = 0, clamped = 0;
    for (int k = 0; k < r * in; k++) A[k] = p[0].data[k];
    for (int k = 0; k < out * r; k++) B[k] = p[1].data[k];
    for (int o = 0; o < out; o++) s[o] = p[2].data[o];
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            int at = o * in + i;
            phi[at] = p0->i32[at] / unit;
            double ba = 0;
            for (int k = 0; k < r; k++) ba += B[o * r + k] * A[k * in + i];
            z0[at] = phi[at] + (double)c * ba;
            double rz = nearbyint(z0[at]);
            mask[at] = rz >= qmin && rz <= qmax;
            passing += mask[at];
            clamped += !mask[at];
        }
    cr_expect(passing > 0 && clamped > 0, "the case exercises both sides of the clamp (%d pass, %d clamped)", passing, clamped);
    surrogate S = {in, out, r, c, phi, z0, wint, mask, x, dy, M};
    double *vars[3] = {A, B, s};
    for (int v = 0; v < 3; v++)
        for (size_t k = 0; k < p[v].n; k++) {
            double keep = vars[v][k], h = 1e-3 * (fabs(keep) + 1e-2);
            vars[v][k] = keep + h;
            double up = surrogate_loss(&S, A, B, s);
            vars[v][k] = keep - h;
            double down = surrogate_loss(&S, A, B, s);
            vars[v][k] = keep;
            double fd = (up - down) / (2 * h);
            cr_expect(close_rel(p[v].grad[k], fd, 1e-3, 1e-4), "%s[%zu]: %g vs finite difference %g", p[v].name, k,
                      p[v].grad[k], fd);
        }
    /* dx: the layer is linear in x */
    for (int k = 0; k < M * in; k += 3)
        cr_expect(close_rel(dx[k], mc_central_difference(L.m, L.state, x, dy, M, out, &x[k], 1e-2), 1e-3, 1e-4), "dx[%d]", k);
    mc_layer_free(&L);
}

Test(lrqat, gradients_match_the_straight_through_surrogate_at_4_bits) { check_grads(4, 1.0f, 51); }
Test(lrqat, gradients_with_an_alpha_over_r_scale_at_3_bits) { check_grads(3, 2.0f / 3.0f, 52); }

/* ---- merge: a pure b-bit weight, what training used ------------------------------------------ */

Test(lrqat, merge_is_the_training_forward_as_b_bit_codes) {
    mc_layer L;
    qa_error err;
    const int in = 32, out = 8, M = 3, bits = 4;
    cr_assert_eq(make_layer(&L, in, out, 2, bits, "fixed_point8", 1.0f, 61, &err), 0, "%s", err.msg);
    qa_param p[3];
    params3(&L, p);
    float x[3 * 32], y[3 * 8];
    trng t = trng_new(62);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    L.m->forward(L.state, x, y, M); /* B = 0 */
    int32_t start[32 * 8];
    memcpy(start, tensor(&L, "W_int")->i32, sizeof start);
    fill_normal(&t, p[1].data, p[1].n, 1.0);
    for (int o = 0; o < out; o++) p[2].data[o] *= 1.1f; /* a trained scale */
    L.m->forward(L.state, x, y, M);
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), 0, "%s", err.msg);
    cr_expect_eq(d.needs_ptq, 0);
    cr_assert_not_null(d.w_int);
    int moved = 0;
    for (int k = 0; k < in * out; k++) {
        cr_expect(d.w_int[k] >= -8 && d.w_int[k] <= 7, "code %d outside the 4-bit grid", d.w_int[k]);
        moved += d.w_int[k] != start[k];
    }
    cr_expect_gt(moved, 0, "the low-rank term moves codes");
    cr_expect_leq(qa_artifact_signed_bits(d.w_int, (size_t)in * out), bits, "stored at b bits at most");
    float Wd[32 * 8];
    qa_deployed_weights(&d, Wd);
    const float *w_eff = tensor(&L, "W_eff")->f32;
    for (int k = 0; k < in * out; k++) cr_expect_eq(Wd[k], w_eff[k], "deployed W[%d] %g vs training %g", k, Wd[k], w_eff[k]);
    mc_expect_affine_rel(x, Wd, L.b, y, M, in, out, 1e-5, 1e-6, "deployed weights against the training forward");
    cr_expect_float_eq(d.bits_per_weight, bits + 32.0 / in, 1e-12);
    qa_deployed_free(&d);
    mc_layer_free(&L);
}

Test(lrqat, bytes_count_phi_as_held_and_the_dense_gradient) {
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, 64, 16, 4, 4, "fixed_point8", 1.0f, 71, &err), 0, "%s", err.msg);
    qa_bytes b;
    L.m->bytes(L.state, &b);
    const size_t lr = 4 * (64 + 16) + 16;
    cr_expect_eq(b.frozen, 64 * 16 * sizeof(int8_t) + 16 * sizeof(float), "Phi0 held in int8 + FP32 bias");
    cr_expect_eq(b.workspace, 64 * 16 * (4 + 4 + 4 + 1), "B A, W_eff, W_int, the pass mask");
    cr_expect_eq(b.trainable, lr * sizeof(float));
    cr_expect_eq(b.gradients, (lr + 64 * 16) * sizeof(float));
    cr_expect_eq(b.optimizer, 2 * lr * sizeof(float));
    cr_expect_eq(b.deployed, 64 * 16 / 2 + 2 * 16 * sizeof(float));
    qa_param p[3];
    params3(&L, p);
    cr_expect_float_eq(p[2].lr_scale, 0.01f, 1e-9);
    cr_expect_float_eq(p[0].lr_scale, 1.0f, 1e-9);
    mc_layer_free(&L);
    cr_assert_eq(make_layer(&L, 64, 16, 4, 4, "fp32", 1.0f, 71, &err), 0, "%s", err.msg);
    L.m->bytes(L.state, &b);
    cr_expect_eq(b.frozen, 64 * 16 * sizeof(float) + 16 * sizeof(float));
    mc_layer_free(&L);
}

/* ---- bad input ------------------------------------------------------------------------------- */

Test(lrqat, bad_input_names_the_key_and_the_allowed_values) {
    mc_layer L;
    qa_error err;
    cr_expect_eq(make_layer(&L, 8, 4, 5, 4, "fixed_point8", 1.0f, 1, &err), QA_ERR_INPUT, "rank > min(in, out)");
    cr_expect(strstr(err.msg, "rank = 5") && strstr(err.msg, "1..min(in=8, out=4)"), "%s", err.msg);
    L.m->destroy(L.state); /* after a failed init too */
    mc_layer_free(&L);
    cr_expect_eq(make_layer(&L, 8, 4, 2, 0, "fixed_point8", 1.0f, 1, &err), QA_ERR_INPUT, "full precision");
    cr_expect(strstr(err.msg, "w_bits = 0") && strstr(err.msg, "2..8"), "%s", err.msg);
    L.m->destroy(L.state);
    mc_layer_free(&L);
    const qa_method *m = qa_method_find("lr-qat");
    double opts[8];
    qa_method_options_defaults(m, opts);
    cr_expect_eq(qa_method_option_set(m, opts, "phi", "bf16", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "phi") && strstr(err.msg, "fixed_point8|fp32"), "%s", err.msg);
    cr_expect_eq(qa_method_option_set(m, opts, "scale_lr", "1000", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "scale_lr") && strstr(err.msg, "1e-06..100"), "%s", err.msg);
}

Test(lrqat, method_entry) {
    const qa_method *m = qa_method_find("lr-qat");
    cr_assert_not_null(m);
    cr_expect_eq(m->needs_weight_bits, 1);
    cr_expect(m->flags & QA_METHOD_ROW_CODES_DEPLOY);
    cr_expect_eq(m->n_fixture_options, 1);
    cr_expect_str_eq(m->fixture_options[0].attr, "variant");
}
