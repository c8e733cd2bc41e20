/* QA-LoRA plugin (methods/qalora.c): the group quantizer against quant_search by hand, FP16
 * rounding against a frexp/nearbyint reference and hand values, AvgPool by hand, gradients by
 * finite differences, merge == forward (exact without the FP16 zero points, close with them),
 * bits per weight, bytes and error messages. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "methods/qalora.h"
#include "tests/common.h"
#include "tests/method_check.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* Independent reference for IEEE binary16 round-to-nearest-even, in double: the quantum is
 * 2^(e - 11) for |x| = f 2^e, f in [0.5, 1) (11 significant bits), and 2^-24 below the normals. */
static double ref_half(double x) {
    if (x == 0.0 || !isfinite(x)) return x;
    int e;
    frexp(x, &e);
    int quantum_exp = e - 11 < -24 ? -24 : e - 11;
    double r = ldexp(nearbyint(ldexp(x, -quantum_exp)), quantum_exp);
    return fabs(r) > 65504.0 ? copysign(INFINITY, x) : r;
}

static float half_round(float x) { return qa_qalora_half_to_float(qa_qalora_half_from_float(x)); }

/* A layer of size [out, in] with random W, b; group = 0 uses the plugin's own init (g = auto). */
static int make_layer(mc_layer *L, int in, int out, int group, int w_bits, int rank, float scale, uint64_t seed,
                      qa_error *err) {
    mc_layer_new(L, &qa_method_qalora, in, out, seed);
    L->cfg.w_bits = w_bits;
    L->cfg.a_bits = 8;
    L->cfg.rank = rank;
    L->cfg.lora_scale = scale;
    if (!group) return mc_layer_init_seeded(L, seed + 100, "blocks.1.attn.qkv", NULL, err);
    qa_rng *r = qa_rng_new(seed + 100);
    qa_layer_init li = {in, out, L->W, L->b, &L->cfg, r, "blocks.1.attn.qkv", NULL, NULL};
    L->state = qa_alloc(L->m->state_size);
    int rc = qa_qalora_init_grouped(L->state, &li, group, err);
    L->live = rc == 0;
    qa_rng_free(r);
    return rc;
}

static void randomize_B(mc_layer *L, uint64_t seed, double std) {
    qa_param ps[2];
    cr_assert_eq(L->m->params(L->state, ps, 2), 2);
    trng t = trng_new(seed);
    fill_normal(&t, ps[1].data, ps[1].n, std);
}

/* ---- the group quantizer ------------------------------------------------------------------ */

/* The stored "codes" tensor of a deployed layer (the held codes, unpacked). */
static const int32_t *stored_codes(const qa_deployed *d) { return mc_find_stored(d, "codes")->i32; }

static void check_group_quantizer(int in, int out, int group, int bits) {
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, in, out, group, bits, 2, 1.0f, 21, &err), QA_OK, "%s", err.msg);
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    const float *scale = mc_find_tensor(ts, nt, "group_scale")->f32;
    const float *zero = mc_find_tensor(ts, nt, "group_zero")->f32;
    const float *w_hat = mc_find_tensor(ts, nt, "W_hat")->f32;
    const int g = group ? group : qa_qalora_auto_group(in), G = in / g;
    /* the held codes, as merge() unpacks them into the stored "codes" (B = 0) */
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK, "%s", err.msg);
    const int32_t *code = stored_codes(&d);
    cr_expect_eq(mc_find_tensor(ts, nt, "group_scale")->dims[0], G);
    cr_expect_eq(mc_find_tensor(ts, nt, "group_scale")->dims[1], out);
    const float lmax = (float)((1 << bits) - 1);
    int mismatches = 0;
    for (int o = 0; o < out; o++)
        for (int j = 0; j < G; j++) {
            const float *w = L.W + (size_t)o * in + (size_t)j * g;
            float delta, z;
            qa_quant_search(w, (size_t)g, bits, &delta, &z); /* section 0 on this group's g weights */
            size_t at = (size_t)j * out + o;
            cr_expect_eq(scale[at], (float)ref_half(delta), "scale[%d,%d] %g vs fp16(%g)", j, o, scale[at], delta);
            cr_expect_eq(zero[at], (float)ref_half(z), "zero[%d,%d] %g vs %g", j, o, zero[at], z);
            for (int k = 0; k < g; k++) {
                size_t wi = (size_t)o * in + (size_t)j * g + k;
                float q = nearbyintf(w[k] / delta) + z;
                q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
                if (code[wi] != (int32_t)q) mismatches++;
                cr_expect_eq(w_hat[wi], scale[at] * (q - zero[at]), "W_hat[%zu] is not scale (q - zero)", wi);
            }
        }
    cr_expect_eq(mismatches, 0, "%d codes differ from quant_search applied by hand", mismatches);
    qa_deployed_free(&d);
    mc_layer_free(&L);
}

Test(qalora, group_quantizer_is_quant_search_per_group) {
    check_group_quantizer(64, 5, 0, 4);  /* the plugin's init: g = auto = 4 */
    check_group_quantizer(64, 5, 32, 4); /* the reference code's g = 32 */
    check_group_quantizer(24, 3, 8, 3);  /* another g, another N */
    check_group_quantizer(16, 2, 4, 8);
    check_group_quantizer(30, 3, 10, 2);  /* packed widths: 2 and 1 bits, 11 bits in two bytes */
    check_group_quantizer(21, 3, 7, 1);
    check_group_quantizer(16, 3, 8, 11);
}

Test(qalora, group_quantizer_is_not_per_channel) {
    /* a row whose two groups have very different ranges gets two different scales */
    float W[64], b[1] = {0};
    for (int i = 0; i < 64; i++) W[i] = (i < 32 ? 0.01f : 1.0f) * (float)((i * 7) % 11 - 5);
    qa_method_cfg cfg = {.w_bits = 4, .rank = 1, .lora_scale = 1.0f};
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {64, 1, W, b, &cfg, r, "t", NULL, NULL};
    void *st = qa_alloc(qa_method_qalora.state_size);
    qa_error err;
    cr_assert_eq(qa_method_qalora.init(st, &li, &err), QA_OK);
    qa_named_tensor ts[8];
    int nt = qa_method_qalora.inspect(st, ts, 8);
    const float *scale = mc_find_tensor(ts, nt, "group_scale")->f32;
    /* the auto g = 64 / 16 = 4: groups 0-7 hold the small half of the row, groups 8-15 the large */
    cr_expect(scale[8] > 50 * scale[0], "group scales %g and %g", scale[0], scale[8]);
    qa_method_qalora.destroy(st);
    qa_free(st);
    qa_rng_free(r);
}

/* ---- FP16 ----------------------------------------------------------------------------------- */

Test(qalora, half_precision_round_trip_on_hand_values) {
    struct { float in; float want; uint16_t bits; } cases[] = {
        {1.0f, 1.0f, 0x3c00},
        {0.1f, 0.0999755859375f, 0x2e66},
        {65504.0f, 65504.0f, 0x7bff},
        {-2.5f, -2.5f, 0xc100},
        {1.0f + 0x1p-11f, 1.0f, 0x3c00},                 /* halfway: to even (mantissa 0) */
        {1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-9f, 0x3c02},   /* halfway: to even (mantissa 2) */
        {1.0f + 0x1p-11f + 0x1p-20f, 1.0f + 0x1p-10f, 0x3c01}, /* just above halfway: up */
        {2049.0f, 2048.0f, 0x6800},                      /* halfway between 2048 and 2050 */
        {2051.0f, 2052.0f, 0x6802},
        {0x1p-24f, 0x1p-24f, 0x0001},                    /* smallest subnormal */
        {0x1p-25f, 0.0f, 0x0000},                        /* halfway to 0: even */
        {3 * 0x1p-25f, 0x1p-23f, 0x0002},                /* 1.5 units: to even (2 units) */
        {0x1p-14f - 0x1p-25f, 0x1p-14f, 0x0400},         /* rounds up into the smallest normal */
        {65520.0f, INFINITY, 0x7c00},                    /* halfway past the largest: overflow */
        {-1e6f, -INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = qa_qalora_half_from_float(cases[i].in);
        cr_expect_eq(h, cases[i].bits, "half(%a) = 0x%04x, want 0x%04x", (double)cases[i].in, h, cases[i].bits);
        cr_expect_eq(half_round(cases[i].in), cases[i].want, "round trip of %a: %a, want %a", (double)cases[i].in,
                     (double)half_round(cases[i].in), (double)cases[i].want);
    }
    cr_expect(isnan(half_round(NAN)));
    cr_expect_eq(qa_qalora_half_from_float(-0.0f), 0x8000);
}

Test(qalora, half_precision_matches_the_reference_over_many_magnitudes) {
    trng t = trng_new(77);
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        float x = (float)(trng_unif(&t, 0.5, 1.0) * ldexp(1.0, (int)trng_unif(&t, -27, 17)));
        if (i & 1) x = -x;
        if (i % 5 == 0) x = nearbyintf(x * 4096.f) / 4096.f; /* many exact ties */
        float got = half_round(x), want = (float)ref_half(x);
        if (got != want) {
            if (bad < 5) cr_expect_eq(got, want, "fp16(%a): %a, reference %a", (double)x, (double)got, (double)want);
            bad++;
        }
    }
    cr_expect_eq(bad, 0, "%d of 20000 values differ from the reference", bad);
}

/* ---- AvgPool by hand: in = 4, g = 2, out = 1, r = 1 ------------------------------------------ */

Test(qalora, average_pooling_and_its_broadcast_by_hand) {
    float W[4] = {0}, b[1] = {0}; /* a zero base quantizes to exactly zero (constant-group fallback) */
    qa_method_cfg cfg = {.w_bits = 4, .rank = 1, .lora_scale = 1.0f};
    qa_rng *r = qa_rng_new(2);
    qa_layer_init li = {4, 1, W, b, &cfg, r, "tiny", NULL, NULL};
    void *st = qa_alloc(qa_method_qalora.state_size);
    qa_error err;
    cr_assert_eq(qa_qalora_init_grouped(st, &li, 2, &err), QA_OK, "%s", err.msg);
    qa_param ps[2];
    cr_assert_eq(qa_method_qalora.params(st, ps, 2), 2);
    cr_assert_eq(ps[0].n, 2, "A is [r, in/g] = [1, 2]");
    cr_assert_eq(ps[1].n, 1, "B is [out, r] = [1, 1]");
    ps[0].data[0] = 0.5f;
    ps[0].data[1] = -1.0f;
    ps[1].data[0] = 2.0f;
    /* x rows [1 2 3 4] and [-1 1 4 0]: p = [1.5 3.5] and [0 2] (c = 1/2, not a sum) */
    float x[8] = {1, 2, 3, 4, -1, 1, 4, 0}, y[2];
    qa_method_qalora.forward(st, x, y, 2);
    cr_expect_eq(y[0], -5.5f, "y0 = B (A p) = 2 (0.75 - 3.5): got %g", y[0]);
    cr_expect_eq(y[1], -4.0f, "y1 = 2 (0 - 2): got %g", y[1]);
    /* dy = [1 2]: dp_m = dy_m B A = dy_m [1 -2]; dx = c dp broadcast over each group's 2 inputs */
    memset(ps[0].grad, 0, sizeof(float) * 2);
    ps[1].grad[0] = 0;
    float dy[2] = {1, 2}, dx[8] = {0};
    qa_method_qalora.backward(st, dy, dx, 2);
    float want_dx[8] = {0.5f, 0.5f, -1, -1, 1, 1, -2, -2};
    for (int i = 0; i < 8; i++) cr_expect_eq(dx[i], want_dx[i], "dx[%d] = %g, want %g", i, dx[i], want_dx[i]);
    /* dA = sum_m dy_m B p_m = 2 ([1.5 3.5] + 2 [0 2]) = [3 15];  dB = sum_m dy_m (A p_m) = -2.75 - 4 */
    cr_expect_eq(ps[0].grad[0], 3.0f, "dA[0] = %g", ps[0].grad[0]);
    cr_expect_eq(ps[0].grad[1], 15.0f, "dA[1] = %g", ps[0].grad[1]);
    cr_expect_eq(ps[1].grad[0], -6.75f, "dB = %g", ps[1].grad[0]);
    /* backward accumulates (+=) into every gradient, dx included */
    qa_method_qalora.backward(st, dy, dx, 2);
    for (int i = 0; i < 8; i++) cr_expect_eq(dx[i], 2 * want_dx[i], "second backward: dx[%d] = %g", i, dx[i]);
    cr_expect_eq(ps[0].grad[0], 6.0f, "second backward: dA[0] = %g", ps[0].grad[0]);
    cr_expect_eq(ps[0].grad[1], 30.0f, "second backward: dA[1] = %g", ps[0].grad[1]);
    cr_expect_eq(ps[1].grad[0], -13.5f, "second backward: dB = %g", ps[1].grad[0]);
    qa_method_qalora.destroy(st);
    qa_free(st);
    qa_rng_free(r);
}

/* ---- gradients by finite differences (L = sum(y w), central differences) --------------------- */

static void check_grads(int in, int out, int group, float scale) {
    enum { M = 3 };
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, in, out, group, 4, 2, scale, 31, &err), QA_OK, "%s", err.msg);
    randomize_B(&L, 32, 0.3);
    trng t = trng_new(33);
    float *x = qa_alloc(sizeof(float) * M * in), *w = qa_alloc(sizeof(float) * M * out);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    fill_normal(&t, w, (size_t)M * out, 1.0);
    char what[16];
    snprintf(what, sizeof what, "s %g", scale);
    mc_check_grads(&L, x, w, M, 2, &(mc_fd_plan){.param_stride = 1, .x_stride = in > 16 ? 5 : 1, .h = 1e-2, .tol = 2e-3},
                   what);
    qa_free(x); qa_free(w);
    mc_layer_free(&L);
}

Test(qalora, gradients_match_finite_differences) { check_grads(12, 5, 4, 1.0f); }
Test(qalora, gradients_with_scale) { check_grads(12, 5, 4, 0.5f); }
Test(qalora, gradients_at_the_default_group) { check_grads(64, 4, 0, 0.75f); }

/* ---- init ------------------------------------------------------------------------------------- */

Test(qalora, starts_as_the_quantized_base_with_xavier_A) {
    enum { IN = 64, OUT = 6, M = 2, R = 3 };
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 0, 4, R, 1.0f, 41, &err), QA_OK, "%s", err.msg);
    qa_param ps[2];
    L.m->params(L.state, ps, 2);
    const int g = qa_qalora_auto_group(IN);
    cr_expect_eq(ps[0].n, (size_t)R * (IN / g));
    float bound = sqrtf(6.0f / (IN / g + R)), mx = 0;
    for (size_t i = 0; i < ps[0].n; i++) mx = fabsf(ps[0].data[i]) > mx ? fabsf(ps[0].data[i]) : mx;
    cr_expect(mx <= bound && mx > 0.3f * bound, "A range %g vs Xavier bound %g", mx, bound);
    for (size_t i = 0; i < ps[1].n; i++) cr_expect_eq(ps[1].data[i], 0.0f, "B must start at zero");
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    const float *w_hat = mc_find_tensor(ts, nt, "W_hat")->f32;
    trng t = trng_new(42);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    L.m->forward(L.state, x, y, M);
    double err_q = 0, norm = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            double ref = L.b[o], fp = L.b[o];
            for (int i = 0; i < IN; i++) {
                ref += (double)x[m * IN + i] * w_hat[o * IN + i];
                fp += (double)x[m * IN + i] * L.W[o * IN + i];
            }
            cr_expect(close_rel(y[m * OUT + o], ref, 1e-5, 1e-5), "B = 0: y %g vs x W_hat^T + b %g", y[m * OUT + o],
                      ref);
            err_q += (ref - fp) * (ref - fp);
            norm += fp * fp;
        }
    cr_expect(sqrt(err_q / norm) < 0.15, "4-bit group-wise base too far from FP: %g", sqrt(err_q / norm));
    mc_layer_free(&L);
}

Test(qalora, A_is_xavier_uniform_over_the_pooled_width) {
    /* fan_in = in/g = 32, fan_out = r = 8: bound sqrt(6/40); 256 draws reach close to it */
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, 64, 2, 2, 4, 8, 1.0f, 43, &err), QA_OK, "%s", err.msg);
    qa_param ps[2];
    L.m->params(L.state, ps, 2);
    cr_assert_eq(ps[0].n, (size_t)8 * 32);
    float bound = sqrtf(6.0f / 40.0f), mx = 0;
    double mean_sq = 0;
    for (size_t i = 0; i < ps[0].n; i++) {
        mx = fabsf(ps[0].data[i]) > mx ? fabsf(ps[0].data[i]) : mx;
        mean_sq += (double)ps[0].data[i] * ps[0].data[i] / ps[0].n;
    }
    cr_expect(mx <= bound && mx > 0.95f * bound, "A range %g vs Xavier bound %g", mx, bound);
    cr_expect(fabs(mean_sq - bound * bound / 3) < 0.2 * bound * bound / 3, "E[A^2] %g vs b^2/3 = %g", mean_sq,
              bound * bound / 3);
    mc_layer_free(&L);
}

/* ---- merge ------------------------------------------------------------------------------------ */

Test(qalora, merged_weight_reproduces_the_forward) {
    enum { IN = 64, OUT = 6, M = 4, R = 2, G = IN / 32 };
    const float s = 0.75f, c = 1.0f / 32;
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, IN, OUT, 32, 4, R, s, 51, &err), QA_OK, "%s", err.msg);
    randomize_B(&L, 52, 0.5);
    trng t = trng_new(53);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    L.m->forward(L.state, x, y, M);
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(d.needs_ptq, 0, "QA-LoRA deploys without PTQ");
    cr_expect_eq(d.merge, QA_MERGE_ZERO_POINT_FOLD);
    cr_expect_eq(d.bits_per_weight, 5.0, "4 bits + FP16 scale and zero per 32 weights: %g", d.bits_per_weight);
    cr_assert_not_null(d.w_fp);
    cr_expect_null(d.w_int);
    float Wd[OUT * IN];
    qa_deployed_weights(&d, Wd);

    /* the exact fold, in double and without FP16: zero' = zero - s c (B A)[o,j] / scale */
    qa_param ps[2];
    L.m->params(L.state, ps, 2);
    const float *A = ps[0].data, *B = ps[1].data;
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    const int32_t *code = stored_codes(&d);
    const float *scale = mc_find_tensor(ts, nt, "group_scale")->f32;
    const float *zero = mc_find_tensor(ts, nt, "group_zero")->f32;
    const float *merged = mc_find_tensor(ts, nt, "merged_zero")->f32;
    double zero_exact[G * OUT];
    int fractional = 0;
    for (int j = 0; j < G; j++)
        for (int o = 0; o < OUT; o++) {
            double ba = 0;
            for (int k = 0; k < R; k++) ba += (double)B[o * R + k] * A[k * G + j];
            double ze = zero[j * OUT + o] - (double)s * c * ba / scale[j * OUT + o];
            zero_exact[j * OUT + o] = ze;
            double mz = merged[j * OUT + o];
            cr_expect_eq(mz, ref_half(mz), "merged zero %a is not an FP16 value", mz);
            cr_expect(fabs(mz - ze) <= 0x1p-11 * fabs(ze) * 1.001 + 1e-6, "merged zero %g vs exact %g", mz, ze);
            if (mz != nearbyint(mz)) fractional++;
        }
    cr_expect_gt(fractional, 0, "the test must move the zero points off the integers");
    double diff_exact = 0, diff_deploy = 0, norm = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            double y_exact = L.b[o], y_deploy = L.b[o];
            for (int i = 0; i < IN; i++) {
                size_t at = (size_t)(i / 32) * OUT + o;
                double w_exact = scale[at] * ((double)code[o * IN + i] - zero_exact[at]);
                y_exact += (double)x[m * IN + i] * w_exact;
                y_deploy += (double)x[m * IN + i] * Wd[o * IN + i];
                cr_expect_eq(Wd[o * IN + i], scale[at] * ((float)code[o * IN + i] - merged[at]),
                             "deployed weight [%d,%d] is not scale (q - zero'_fp16)", o, i);
            }
            double yf = y[m * OUT + o];
            cr_expect(close_rel(yf, y_exact, 1e-5, 1e-5), "exact fold: forward %g vs merged %g", yf, y_exact);
            diff_exact += (yf - y_exact) * (yf - y_exact);
            diff_deploy += (yf - y_deploy) * (yf - y_deploy);
            norm += yf * yf;
        }
    cr_expect(sqrt(diff_deploy / norm) < 2e-3, "FP16 deploy vs forward: relative %g", sqrt(diff_deploy / norm));
    cr_expect(sqrt(diff_exact / norm) < 1e-5, "exact fold vs forward: relative %g", sqrt(diff_exact / norm));
    qa_deployed_free(&d);
    mc_layer_free(&L);
}

Test(qalora, merge_with_zero_B_is_the_base) {
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, 32, 3, 0, 4, 2, 1.0f, 61, &err), QA_OK, "%s", err.msg);
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK);
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    const float *w_hat = mc_find_tensor(ts, nt, "W_hat")->f32;
    for (int i = 0; i < 32 * 3; i++) cr_expect_eq(d.w_fp[i], w_hat[i], "B = 0: deploy must be W_hat exactly");
    qa_deployed_free(&d);
    mc_layer_free(&L);
}

/* ---- bits, bytes, the method entry, errors ---------------------------------------------------- */

Test(qalora, bits_per_weight_and_bytes) {
    const int in = 64, out = 6, r = 4, G = 2;
    int bits[] = {4, 8, 3};
    double want[] = {5.0, 9.0, 4.0};
    for (int k = 0; k < 3; k++) {
        mc_layer L;
        qa_error err;
        cr_assert_eq(make_layer(&L, in, out, 32, bits[k], r, 1.0f, 71, &err), QA_OK, "%s", err.msg);
        qa_deployed d;
        cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK);
        cr_expect_eq(d.bits_per_weight, want[k], "N = %d, g = 32: %g bits/weight", bits[k], d.bits_per_weight);
        qa_bytes b;
        L.m->bytes(L.state, &b);
        size_t packed = (size_t)in * out * bits[k] / 8 + (size_t)G * out * 2 * 2 + (size_t)out * 4;
        cr_expect_eq(b.deployed, packed, "N-bit codes + FP16 scale and zero per (group,row) + FP32 bias");
        /* held: codes packed at N <= 4, a byte at 8; scale and zero per (group, row) in FP32 */
        size_t codes = bits[k] <= 4 ? (size_t)in * out * bits[k] / 8 : (size_t)in * out;
        cr_expect_eq(b.frozen, codes + (size_t)G * out * 2 * 4 + (size_t)out * 4, "frozen %zu", b.frozen);
        cr_expect_eq(b.workspace, (size_t)in * out * 4, "the f32 W_hat");
        cr_expect_eq(b.trainable, (size_t)r * (G + out) * 4, "A [r, in/g] + B [out, r]");
        cr_expect_eq(b.gradients, b.trainable);
        cr_expect_eq(b.optimizer, 2 * b.trainable);
        qa_deployed_free(&d);
        mc_layer_free(&L);
    }
}

Test(qalora, method_entry) {
    const qa_method *m = &qa_method_qalora;
    cr_expect_str_eq(m->name, "qalora");
    cr_expect_eq(m->needs_weight_bits, 1);
    cr_expect(m->summary && m->init && m->forward && m->backward && m->params && m->merge && m->bytes && m->destroy &&
              m->inspect, "every slot filled");
}

Test(qalora, rejects_full_precision_weights) {
    mc_layer L;
    qa_error err = {0, ""};
    cr_expect_eq(make_layer(&L, 32, 2, 0, 0, 2, 1.0f, 81, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "blocks.1.attn.qkv") && strstr(err.msg, "w_bits = 0") &&
                  strstr(err.msg, "full precision"), "message: %s", err.msg);
    mc_layer_free(&L); /* init failed before allocating anything */
}

Test(qalora, rejects_an_input_width_not_a_multiple_of_the_group) {
    mc_layer L;
    qa_error err = {0, ""};
    cr_expect_eq(make_layer(&L, 40, 2, 32, 4, 2, 1.0f, 82, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "blocks.1.attn.qkv") && strstr(err.msg, "in = 40") && strstr(err.msg, "g = 32"),
              "message: %s", err.msg);
    mc_layer_free(&L);
    cr_expect_eq(make_layer(&L, 4, 2, 3, 4, 1, 1.0f, 83, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "in = 4") && strstr(err.msg, "g = 3"), "message: %s", err.msg);
    mc_layer_free(&L);
}

Test(qalora, the_auto_group_size_gives_a_layer_at_least_16_groups) {
    const int in[] = {128, 64, 32, 16, 8, 100, 96, 768, 4096};
    const int want[] = {8, 4, 2, 1, 1, 5, 6, 48, 256};
    for (int k = 0; k < 9; k++) cr_expect_eq(qa_qalora_auto_group(in[k]), want[k], "in = %d", in[k]);
    cr_expect_str_eq(qa_method_option(&qa_method_qalora, "group_size")->def, "0", "auto is the default");
    /* the plugin's own init at the harness's width: g = 8, 16 groups */
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, 128, 3, 0, 4, 2, 1.0f, 91, &err), QA_OK, "%s", err.msg);
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    cr_expect_eq(mc_find_tensor(ts, nt, "group_scale")->dims[0], 16);
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), QA_OK);
    cr_expect_eq(d.bits_per_weight, 4 + 32.0 / 8, "N + 32 / g");
    qa_deployed_free(&d);
    mc_layer_free(&L);
}
