/* IntLoRA-MUL and -SHIFT gradients of A and B against finite differences of a straight-through
 * surrogate written here in double: U = delta_i + (R* + B A) / D is recomputed from the tensors
 * the layer exposes, and the rounding is frozen at the evaluation point, so
 *   MUL:   W_sur = W' + mask (U - U0) W_int           (round(U/dU) passes U/dU straight through)
 *   SHIFT: W_sur = W' + mask (2^k0 / |U0|) (U - U0) W_int  (round(log2|U|) passes straight through)
 * with mask = 0 where W_int = 0 or (MUL) the update code is clamped. A true finite difference of
 * the layer would be zero almost everywhere (rounding), so this is the check that can fail.
 * MUL with zero_path = additive: where W_int = 0, W' = dU clamp(round(B A / dU)) and (D = 1 there)
 * U - U0 = B A - (B A)0, so W_sur = W' + mask (U - U0) with mask = 1 inside the code's range.
 * Then a hand-computed 2 x 4 layer at 2 bits checks the forward, the straight-through masks and
 * both options (zero_path, constant_row) against numbers worked out in the comments. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/registry.h"
#include "harness/rng.h"
#include "tests/method_check.h"

enum { IN = 12, OUT = 8, M = 5, R = 2 };

/* an options struct of any method (aligned, 64 bytes), the defaults plus name = value */
static void *options_with(const qa_method *m, const char *name, const char *value) {
    static double opts[8];
    cr_assert(m->options_size <= sizeof opts);
    qa_method_options_defaults(m, opts);
    qa_error err = {0, ""};
    if (name) cr_assert_eq(qa_method_option_set(m, opts, name, value, &err), 0, "%s", err.msg);
    return opts;
}

/* The surrogate's U at [o, i]: U = delta_o + (R* + B A) / D, D = (W_int == 0 ? 1 : W_int), in
 * double from the tensors the layer exposes; (B A)[o, i] and W_int into *ba and *wi. */
typedef struct {
    const float *A, *B, *Rs, *delta, *zero;
    const int32_t *Wr;
} surrogate_point;

static double surrogate_u(const surrogate_point *P, int o, int i, double *ba, double *wi) {
    *ba = 0;
    for (int k = 0; k < R; k++) *ba += (double)P->B[o * R + k] * P->A[k * IN + i];
    *wi = P->Wr[o * IN + i] - P->zero[o];
    double D = *wi == 0 ? 1 : *wi;
    return P->delta[o] + (P->Rs[o * IN + i] + *ba) / D;
}

static void check_with(const char *method, int bits, const char *opt_name, const char *opt_value) {
    const qa_method *m = qa_method_find(method);
    cr_assert_not_null(m);
    qa_rng *r = qa_rng_new(21);
    mc_layer layer;
    mc_layer_new_rng(&layer, m, IN, OUT, r);
    float x[M * IN], w[M * OUT], y[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    qa_rng_fill_normal(r, w, M * OUT, 1.0f);
    /* options: the defaults (vmc_alpha 1.5), or one set */
    if (opt_name) mc_layer_option(&layer, opt_name, opt_value);
    layer.cfg.w_bits = bits;
    layer.cfg.rank = R;
    layer.cfg.lora_scale = 1.0f;
    int additive = opt_name && !strcmp(opt_name, "zero_path") && !strcmp(opt_value, "additive");
    qa_error err = {0, ""};
    cr_assert_eq(mc_layer_init(&layer, r, "t", NULL, &err), 0, "%s", err.msg);
    void *st = layer.state;
    m->forward(st, x, y, M); /* calibrates (MUL) with B = 0 */
    qa_param ps[2];
    cr_assert_eq(m->params(st, ps, 2), 2);
    qa_rng_fill_normal(r, ps[1].data, ps[1].n, 0.05f);
    for (int p = 0; p < 2; p++) memset(ps[p].grad, 0, sizeof(float) * ps[p].n);
    m->forward(st, x, y, M);
    m->backward(st, w, NULL, M);
    qa_named_tensor t[16];
    int nt = m->inspect(st, t, 16);
    const float *Rs = mc_find_tensor(t, nt, "R")->f32, *delta = mc_find_tensor(t, nt, "delta")->f32;
    const float *zero = mc_find_tensor(t, nt, "zero_point")->f32, *Weff = mc_find_tensor(t, nt, "W_eff")->f32;
    const int32_t *Wr = mc_find_tensor(t, nt, "W_round")->i32;
    int mul = strcmp(method, "intlora-mul") == 0;
    const float *dU = mul ? mc_find_tensor(t, nt, "U_delta")->f32 : NULL;
    const float *zU = mul ? mc_find_tensor(t, nt, "U_zero_point")->f32 : NULL;
    const surrogate_point P = {ps[0].data, ps[1].data, Rs, delta, zero, Wr};
    double L = (1 << bits) - 1;
    /* U0, mask and the surrogate's slope at the evaluation point */
    static double U0[OUT * IN], slope[OUT * IN];
    int active = 0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double ba, wi, u = surrogate_u(&P, o, i, &ba, &wi);
            U0[o * IN + i] = u;
            double sl = 0;
            if (wi == 0 && additive) {
                double c = nearbyint(ba / dU[o]);
                sl = (c >= -(1 << (bits - 1)) && c <= (1 << (bits - 1)) - 1) ? 1 : 0;
            } else if (wi != 0) {
                if (mul) {
                    double q = nearbyint(u / dU[o]) + zU[o];
                    sl = (q >= 0 && q <= L) ? wi : 0;
                } else {
                    double k = nearbyint(log2(fabs(u) + 1e-16));
                    sl = u != 0 ? exp2(k) / (fabs(u) + 1e-16) * wi : 0;
                }
            }
            slope[o * IN + i] = sl;
            active += sl != 0;
        }
    cr_assert_gt(active, OUT * IN / 2, "most entries must be adaptable");
    if (additive) { /* the additive path is exercised: some W_int = 0 entry adapts */
        int zero_active = 0;
        for (int k = 0; k < OUT * IN; k++) zero_active += Wr[k] - zero[k / IN] == 0 && slope[k] != 0;
        cr_assert_gt(zero_active, 0, "no W_int = 0 entry to check at %d bits", bits);
    }
    /* L_s(A, B) = sum_m sum_o w[m,o] (sum_i x[m,i] W_sur[o,i]) */
    double h = 1e-3;
    for (int p = 0; p < 2; p++)
        for (size_t e = 0; e < ps[p].n; e++) {
            double lv[2];
            float old = ps[p].data[e];
            for (int sgn = 0; sgn < 2; sgn++) {
                ps[p].data[e] = old + (float)(sgn ? -h : h);
                double acc = 0;
                for (int o = 0; o < OUT; o++)
                    for (int i = 0; i < IN; i++) {
                        double ba, wi, u = surrogate_u(&P, o, i, &ba, &wi);
                        double wsur = Weff[o * IN + i] + slope[o * IN + i] * (u - U0[o * IN + i]);
                        double g = 0;
                        for (int mm = 0; mm < M; mm++) g += (double)w[mm * OUT + o] * x[mm * IN + i];
                        acc += g * wsur;
                    }
                lv[sgn] = acc;
            }
            ps[p].data[e] = old;
            double num = (lv[0] - lv[1]) / (2 * h), an = ps[p].grad[e];
            cr_expect(fabs(num - an) <= 2e-3 * (1 + fabs(num)), "%s %s[%zu]: surrogate FD %g, analytic %g", method,
                      ps[p].name, e, num, an);
        }
    /* the merge reports the share of entries that cannot adapt and (SHIFT) the exponent range */
    qa_deployed d;
    cr_assert_eq(m->merge(st, &d, &err), 0, "%s", err.msg);
    size_t zeros = 0;
    for (int i = 0; i < OUT * IN; i++) zeros += Wr[i] - zero[i / IN] == 0;
    char want[64];
    snprintf(want, sizeof want, "W_int=0 %.2f%%", 100.0 * zeros / (OUT * IN));
    cr_expect(strstr(d.note, want) != NULL, "note '%s' should contain '%s'", d.note, want);
    if (!mul) cr_expect(strstr(d.note, "exponents ") != NULL, "note: %s", d.note);
    qa_deployed_free(&d);
    mc_layer_free(&layer);
    qa_rng_free(r);
}

static void check(const char *method, int bits) { check_with(method, bits, NULL, NULL); }

Test(intlora, mul_gradients_match_the_ste_surrogate) { check("intlora-mul", 8); }
Test(intlora, mul_gradients_at_4_bits) { check("intlora-mul", 4); }
Test(intlora, shift_gradients_match_the_ste_surrogate) { check("intlora-shift", 8); }
Test(intlora, shift_gradients_at_4_bits) { check("intlora-shift", 4); }
Test(intlora, mul_additive_zero_path_gradients_match_the_ste_surrogate) {
    check_with("intlora-mul", 4, "zero_path", "additive");
    check_with("intlora-mul", 3, "zero_path", "additive");
}

/* ---- a layer small enough to work out by hand: 2 x 4, 2 bits (L - 1 = 3), rank 1, R = 0 ----
 *
 * W = [ 0     0.25  0.5  0.75 ]   row 0: m = 0, M = 0.75: delta = 0.25, z = 0,  W_int = [ 0  1 2 3]
 *     [-0.5  -0.25  0    0.25 ]   row 1: m = -0.5, M = 0.25: delta = 0.25, z = 2, W_int = [-2 -1 0 1]
 * (the search's first candidate is exact, score 0, and is kept). R = 0, so R* = 0 and, while B = 0,
 * U = delta = 0.25 on every entry: both rows are constant at calibration. The fallback gives
 * dU = 0.25, zU = -1: U_int = clamp(round(U / 0.25) - 1, 0, 3) + 1, W' = 0.25 U_int W_int.
 * Then A = [0.5 1 -2 0.25], B = [0.6 -0.3]^T:
 *   row 0: B A = [0.3 0.6 -1.2 0.15], D = [1 1 2 3], U = 0.25 + B A / D = [0.55 0.85 -0.35 0.3]
 *          U / 0.25 = [2.2 3.4 -1.4 1.2], round - 1 = [1 2 -2 0] (-2 clamped to 0), U_int = [2 3 1 1]
 *          W' = [0 (W_int = 0), 0.75, 0.5, 0.75]; mask = [0 1 0 1]
 *   row 1: B A = [-0.15 -0.3 0.6 -0.075], D = [-2 -1 1 1], U = [0.325 0.55 0.85 0.175]
 *          U / 0.25 = [1.3 2.2 3.4 0.7], round - 1 = [0 1 2 0], U_int = [1 2 3 1]
 *          W' = [-0.5, -0.5, 0 (W_int = 0), 0.25]; mask = [1 1 0 1]
 * zero_path = additive, where W_int = 0: c = clamp(round(B A / 0.25), -2, 1):
 *   row 0 col 0: 0.3 / 0.25 = 1.2 -> 1, W' = 0.25, inside (mask 1)
 *   row 1 col 2: 0.6 / 0.25 = 2.4 -> 2, clamped to 1, W' = 0.25, outside (mask 0)
 * With x = I (4 rows) and b = 0, y[m][o] = W'[o][m]; with dy = 1, G_W = 1, so
 *   dB[o] = sum_j mask[o][j] A[j], dA[j] = sum_o B[o] mask[o][j]:
 *   none:     dB = [1 + 0.25, 0.5 + 1 + 0.25] = [1.25 1.75]; dA = [-0.3 0.3 0 0.3]
 *   additive: dB = [0.5 + 1 + 0.25, 1.75] = [1.75 1.75];     dA = [0.6 - 0.3, 0.3, 0, 0.3] = [0.3 0.3 0 0.3]
 * constant_row = reference: dU = zU = 0 on both (constant) rows: U / 0 = inf, its straight-through
 *   rounding NaN, and every W' (W_int = 0 entries too: 0 * NaN) is NaN. */

typedef struct {
    void *st;
    const qa_method *m;
    float y[4 * 2];
    float dA[4], dB[2];
} hand_layer;

static void hand_run(hand_layer *h, const char *opt_name, const char *opt_value) {
    static const float W[8] = {0, 0.25f, 0.5f, 0.75f, -0.5f, -0.25f, 0, 0.25f}, bias[2] = {0, 0}, Rz[8] = {0};
    static const float x[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, dy[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    h->m = qa_method_find("intlora-mul");
    qa_rng *r = qa_rng_new(3);
    qa_method_cfg cfg = {.w_bits = 2, .rank = 1, .lora_scale = 1.0f, .options = options_with(h->m, opt_name, opt_value)};
    qa_layer_init li = {4, 2, W, bias, &cfg, r, "hand", Rz, NULL};
    h->st = qa_alloc(h->m->state_size);
    qa_error err = {0, ""};
    cr_assert_eq(h->m->init(h->st, &li, &err), 0, "%s", err.msg);
    h->m->forward(h->st, x, h->y, 4); /* calibration, B = 0 */
    qa_param ps[2];
    cr_assert_eq(h->m->params(h->st, ps, 2), 2);
    const float A[4] = {0.5f, 1.0f, -2.0f, 0.25f}, B[2] = {0.6f, -0.3f};
    memcpy(ps[0].data, A, sizeof A);
    memcpy(ps[1].data, B, sizeof B);
    memset(ps[0].grad, 0, sizeof(float) * 4);
    memset(ps[1].grad, 0, sizeof(float) * 2);
    h->m->forward(h->st, x, h->y, 4);
    h->m->backward(h->st, dy, NULL, 4);
    memcpy(h->dA, ps[0].grad, sizeof h->dA);
    memcpy(h->dB, ps[1].grad, sizeof h->dB);
    qa_rng_free(r);
}

static void hand_free(hand_layer *h) {
    h->m->destroy(h->st);
    qa_free(h->st);
}

static void expect_hand(const hand_layer *h, const float Wp[8], const float dA[4], const float dB[2], const char *what) {
    for (int m = 0; m < 4; m++)
        for (int o = 0; o < 2; o++)
            cr_expect(fabsf(h->y[m * 2 + o] - Wp[o * 4 + m]) < 1e-6f, "%s: W'[%d][%d] = %g, by hand %g", what, o, m, h->y[m * 2 + o],
                      Wp[o * 4 + m]);
    for (int j = 0; j < 4; j++) cr_expect(fabsf(h->dA[j] - dA[j]) < 1e-6f, "%s: dA[%d] = %g, by hand %g", what, j, h->dA[j], dA[j]);
    for (int o = 0; o < 2; o++) cr_expect(fabsf(h->dB[o] - dB[o]) < 1e-6f, "%s: dB[%d] = %g, by hand %g", what, o, h->dB[o], dB[o]);
}

Test(intlora, hand_case_default_fallback) {
    hand_layer h;
    hand_run(&h, NULL, NULL);
    const float Wp[8] = {0, 0.75f, 0.5f, 0.75f, -0.5f, -0.5f, 0, 0.25f};
    expect_hand(&h, Wp, (const float[]){-0.3f, 0.3f, 0, 0.3f}, (const float[]){1.25f, 1.75f}, "zero_path = none");
    qa_named_tensor t[16];
    int nt = h.m->inspect(h.st, t, 16);
    const float *dU = mc_find_tensor(t, nt, "U_delta")->f32, *zU = mc_find_tensor(t, nt, "U_zero_point")->f32;
    for (int o = 0; o < 2; o++) cr_expect(dU[o] == 0.25f && zU[o] == -1.f, "row %d: dU %g zU %g, want 0.25, -1", o, dU[o], zU[o]);
    hand_free(&h);
}

Test(intlora, hand_case_additive_zero_path) {
    hand_layer h;
    hand_run(&h, "zero_path", "additive");
    const float Wp[8] = {0.25f, 0.75f, 0.5f, 0.75f, -0.5f, -0.5f, 0.25f, 0.25f};
    expect_hand(&h, Wp, (const float[]){0.3f, 0.3f, 0, 0.3f}, (const float[]){1.75f, 1.75f}, "zero_path = additive");
    /* merged integers: c where W_int = 0, U_int W_int elsewhere; one scale dU per row */
    qa_deployed d;
    qa_error err = {0, ""};
    cr_assert_eq(h.m->merge(h.st, &d, &err), 0, "%s", err.msg);
    const int32_t want[8] = {1, 3, 2, 3, -2, -2, 1, 1};
    for (int k = 0; k < 8; k++) cr_expect_eq(d.w_int[k], want[k], "w_int[%d] = %d, by hand %d", k, d.w_int[k], want[k]);
    /* the stored form: c + 2^(N-1) = 3 in U's code slot where W_round = z, and add_zero = 2 */
    const qa_stored_tensor *u = mc_find_stored(&d, "u_codes"), *az = mc_find_stored(&d, "add_zero");
    cr_expect_eq(az->i32[0], 2);
    cr_expect_eq(u->i32[0], 3, "row 0 col 0: c = 1 stored as 3, got %d", u->i32[0]);
    cr_expect_eq(u->i32[6], 3, "row 1 col 2: c = 1 stored as 3, got %d", u->i32[6]);
    cr_expect(fabs(d.bits_per_weight - (2 * 2 + 3 * 32.0 / 4)) < 1e-12, "no extra bits per weight: %g", d.bits_per_weight);
    /* the update energy lost on W_int = 0 entries: what the codes miss, (0.3 - 0.25)^2 + (0.6 - 0.25)^2 */
    cr_expect(fabs(d.stat_num[1] - (0.05 * 0.05 + 0.35 * 0.35)) < 1e-6, "lost %g", d.stat_num[1]);
    qa_deployed_free(&d);
    hand_free(&h);
}

Test(intlora, hand_case_reference_constant_row_is_nan_and_does_not_merge) {
    hand_layer h;
    hand_run(&h, "constant_row", "reference");
    for (int k = 0; k < 8; k++) cr_expect(isnan(h.y[k]), "y[%d] = %g, the reference's weight is NaN", k, h.y[k]);
    qa_named_tensor t[16];
    int nt = h.m->inspect(h.st, t, 16);
    const float *dU = mc_find_tensor(t, nt, "U_delta")->f32, *zU = mc_find_tensor(t, nt, "U_zero_point")->f32;
    for (int o = 0; o < 2; o++) cr_expect(dU[o] == 0.f && zU[o] == 0.f, "row %d keeps the reference's dU = zU = 0", o);
    qa_deployed d;
    qa_error err = {0, ""};
    cr_expect_neq(h.m->merge(h.st, &d, &err), 0, "a NaN layer has no integer form");
    cr_expect(strstr(err.msg, "constant_row = reference") != NULL, "%s", err.msg);
    hand_free(&h);
}

/* On rows that are not constant (R ~ Laplace), the reference's rule never applies: the same layer. */
Test(intlora, reference_constant_row_changes_nothing_when_no_row_is_constant) {
    const qa_method *m = qa_method_find("intlora-mul");
    float y[2][M * OUT];
    for (int v = 0; v < 2; v++) {
        qa_rng *r = qa_rng_new(5);
        mc_layer L;
        mc_layer_new_rng(&L, m, IN, OUT, r);
        float x[M * IN];
        qa_rng_fill_normal(r, x, M * IN, 1.0f);
        mc_layer_option(&L, "constant_row", v ? "reference" : "fallback");
        L.cfg.w_bits = 4;
        L.cfg.rank = R;
        L.cfg.lora_scale = 1.0f;
        qa_error err = {0, ""};
        cr_assert_eq(mc_layer_init(&L, r, "t", NULL, &err), 0, "%s", err.msg);
        m->forward(L.state, x, y[v], M);
        qa_param ps[2];
        m->params(L.state, ps, 2);
        qa_rng_fill_normal(r, ps[1].data, ps[1].n, 0.05f);
        m->forward(L.state, x, y[v], M);
        mc_layer_free(&L);
        qa_rng_free(r);
    }
    for (int k = 0; k < M * OUT; k++) cr_expect(isfinite(y[1][k]) && y[0][k] == y[1][k], "y[%d]: %g vs %g", k, y[0][k], y[1][k]);
}

/* ---- R regenerated from its seed against R given explicitly ----
 * A layer built from the seed holds only R's key and regenerates R* row by row in every pass; the
 * same layer given R explicitly (the fixture path, qa_layer_init.aux_init) holds R* in full. With
 * R_ij = Laplace number i * in + j of the key the seeded layer draws (its first draw of the rng),
 * both must compute the same bits everywhere: y, dx, dA, dB, the update quantizer and its
 * gradients, R*, W_round and the merged layer. in is odd so that packed rows (N <= 4) share bytes. */
enum { SIN = 13, SOUT = 9, SM = 6 };

typedef struct {
    float y[2][SM * SOUT], dx[2][SM * SIN];
} seeded_pass;

static void layer_pass(const qa_method *m, void *st, const float *x, const float *dy, const float *Bv, seeded_pass *p) {
    qa_param ps[2];
    cr_assert_eq(m->params(st, ps, 2), 2);
    m->forward(st, x, p->y[0], SM); /* calibrates (MUL) with B = 0 */
    memcpy(ps[1].data, Bv, sizeof(float) * ps[1].n);
    for (int q = 0; q < 2; q++) memset(ps[q].grad, 0, sizeof(float) * ps[q].n);
    m->forward(st, x, p->y[1], SM);
    memset(p->dx[1], 0, sizeof p->dx[1]);
    m->backward(st, dy, p->dx[1], SM);
}

static void expect_same_floats(const float *a, const float *b, size_t n, const char *what) {
    for (size_t k = 0; k < n; k++)
        if (memcmp(&a[k], &b[k], sizeof(float)) != 0) {
            cr_expect_fail("%s[%zu]: seeded %.9g, explicit %.9g", what, k, a[k], b[k]);
            return;
        }
}

/* a layer's weights, bias, input, output gradient and a trained B [out,R], drawn from seed */
static void layer_data(int seed, int in, int out, int tokens, float *W, float *b, float *x, float *dy, float *Bv) {
    qa_rng *data = qa_rng_new((uint64_t)seed);
    qa_rng_fill_normal(data, W, (size_t)out * in, 0.3f);
    qa_rng_fill_normal(data, b, (size_t)out, 0.1f);
    qa_rng_fill_normal(data, x, (size_t)tokens * in, 1.0f);
    qa_rng_fill_normal(data, dy, (size_t)tokens * out, 1.0f);
    qa_rng_fill_normal(data, Bv, (size_t)out * R, 0.05f);
    qa_rng_free(data);
}

static void seeded_vs_explicit(const char *method, int bits, const char *opt_name, const char *opt_value) {
    const qa_method *m = qa_method_find(method);
    cr_assert_not_null(m);
    float W[SOUT * SIN], b[SOUT], x[SM * SIN], dy[SM * SOUT], Bv[SOUT * R];
    layer_data(77, SIN, SOUT, SM, W, b, x, dy, Bv);
    /* the explicit R: the key is the seeded layer's first draw; the explicit layer's generator
     * skips that draw, so that both draw the same A */
    qa_rng *r_seeded = qa_rng_new(9), *r_explicit = qa_rng_new(9);
    uint64_t key = qa_rng_u64(r_explicit);
    static float Rraw[SOUT * SIN];
    for (int k = 0; k < SOUT * SIN; k++) Rraw[k] = (float)qa_counter_laplace(key, (uint64_t)k, 0.5);
    qa_method_cfg cfg = {.w_bits = bits, .rank = R, .lora_scale = 1.0f, .options = options_with(m, opt_name, opt_value)};
    qa_layer_init li_s = {SIN, SOUT, W, b, &cfg, r_seeded, "seeded", NULL, NULL};
    qa_layer_init li_e = {SIN, SOUT, W, b, &cfg, r_explicit, "explicit", Rraw, NULL};
    void *st[2] = {qa_alloc(m->state_size), qa_alloc(m->state_size)};
    qa_error err = {0, ""};
    cr_assert_eq(m->init(st[0], &li_s, &err), 0, "%s", err.msg);
    cr_assert_eq(m->init(st[1], &li_e, &err), 0, "%s", err.msg);
    static seeded_pass p[2];
    for (int v = 0; v < 2; v++) layer_pass(m, st[v], x, dy, Bv, &p[v]);
    expect_same_floats(p[0].y[0], p[1].y[0], SM * SOUT, "y at calibration");
    expect_same_floats(p[0].y[1], p[1].y[1], SM * SOUT, "y");
    expect_same_floats(p[0].dx[1], p[1].dx[1], SM * SIN, "dx");
    qa_param ps[2][2];
    for (int v = 0; v < 2; v++) m->params(st[v], ps[v], 2);
    expect_same_floats(ps[0][0].data, ps[1][0].data, ps[0][0].n, "A");
    expect_same_floats(ps[0][0].grad, ps[1][0].grad, ps[0][0].n, "dA");
    expect_same_floats(ps[0][1].grad, ps[1][1].grad, ps[0][1].n, "dB");
    /* every exposed tensor: R*, the quantizers, W_round, W', the quantizer's gradients */
    qa_named_tensor t[2][16];
    int nt[2] = {m->inspect(st[0], t[0], 16), m->inspect(st[1], t[1], 16)};
    cr_assert_eq(nt[0], nt[1]);
    for (int i = 0; i < nt[0]; i++) {
        size_t n = (size_t)t[0][i].dims[0] * t[0][i].dims[1];
        cr_assert_str_eq(t[0][i].name, t[1][i].name);
        if (t[0][i].f32) expect_same_floats(t[0][i].f32, t[1][i].f32, n, t[0][i].name);
        else cr_expect(memcmp(t[0][i].i32, t[1][i].i32, sizeof(int32_t) * n) == 0, "%s differs", t[0][i].name);
    }
    /* W_round in range, and R* nonzero: the comparison is not between two empty layers */
    const qa_named_tensor *wr = mc_find_tensor(t[0], nt[0], "W_round"), *rs = mc_find_tensor(t[0], nt[0], "R");
    int nonzero = 0;
    for (int k = 0; k < SOUT * SIN; k++) {
        cr_expect(wr->i32[k] >= 0 && wr->i32[k] < (1 << bits), "W_round[%d] = %d at %d bits", k, wr->i32[k], bits);
        nonzero += rs->f32[k] != 0.f;
    }
    cr_expect_gt(nonzero, SOUT * SIN / 2);
    /* the merged layers */
    qa_deployed d[2];
    for (int v = 0; v < 2; v++) cr_assert_eq(m->merge(st[v], &d[v], &err), 0, "%s", err.msg);
    const size_t n = SOUT * SIN;
    cr_assert_eq(!d[0].w_int, !d[1].w_int);
    cr_assert_eq(!d[0].w_fp, !d[1].w_fp);
    if (d[0].w_int) {
        cr_expect(memcmp(d[0].w_int, d[1].w_int, sizeof(int32_t) * n) == 0, "merged integers differ");
        expect_same_floats(d[0].row_scale, d[1].row_scale, SOUT, "row_scale");
    }
    if (d[0].w_fp) expect_same_floats(d[0].w_fp, d[1].w_fp, n, "merged W'");
    cr_assert_eq(d[0].n_stored, d[1].n_stored);
    for (int i = 0; i < d[0].n_stored; i++) {
        const qa_stored_tensor *a = &d[0].stored[i], *c = &d[1].stored[i];
        size_t ne = (size_t)a->rows * a->cols;
        cr_assert_str_eq(a->name, c->name);
        cr_assert_eq(a->rows * a->cols, c->rows * c->cols);
        if (a->i32) cr_expect(memcmp(a->i32, c->i32, sizeof(int32_t) * ne) == 0, "stored %s differs", a->name);
        else expect_same_floats(a->f32, c->f32, ne, a->name);
    }
    for (int k = 0; k < d[0].n_stats; k++)
        cr_expect(d[0].stat_num[k] == d[1].stat_num[k] && d[0].stat_den[k] == d[1].stat_den[k], "stat %s", d[0].stat_name[k]);
    cr_expect_str_eq(d[0].note, d[1].note);
    /* what each layer holds: the seeded one the codes of W_round (N bits each, packed, at <= 4
     * bits, one byte above), 6 FP32 per row (delta, z, VMC factor, dU, zU, bias) and the 8-byte
     * key; the explicit one R* on top; both a workspace of 3 floats a weight (B A / G, W', U or M) */
    qa_bytes by[2];
    for (int v = 0; v < 2; v++) { memset(&by[v], 0, sizeof by[v]); m->bytes(st[v], &by[v]); }
    size_t codes = bits <= 4 ? (n * (size_t)bits + 7) / 8 : n, held = codes + SOUT * 6 * sizeof(float) + sizeof(uint64_t);
    cr_expect_eq(by[0].frozen, held, "%s w%d: frozen %zu, counted %zu", method, bits, by[0].frozen, held);
    cr_expect_eq(by[1].frozen, held + n * sizeof(float), "explicit R*: %zu", by[1].frozen);
    cr_expect_eq(by[0].workspace, 3 * n * sizeof(float));
    for (int v = 0; v < 2; v++) {
        qa_deployed_free(&d[v]);
        m->destroy(st[v]);
        qa_free(st[v]);
    }
    qa_rng_free(r_seeded);
    qa_rng_free(r_explicit);
}

Test(intlora, seeded_r_matches_explicit_r_mul) {
    seeded_vs_explicit("intlora-mul", 8, NULL, NULL);
    seeded_vs_explicit("intlora-mul", 4, NULL, NULL);
    seeded_vs_explicit("intlora-mul", 3, NULL, NULL);
    seeded_vs_explicit("intlora-mul", 6, NULL, NULL);
}
Test(intlora, seeded_r_matches_explicit_r_shift) {
    seeded_vs_explicit("intlora-shift", 8, NULL, NULL);
    seeded_vs_explicit("intlora-shift", 4, NULL, NULL);
}
Test(intlora, seeded_r_matches_explicit_r_mul_additive_and_std) {
    seeded_vs_explicit("intlora-mul", 4, "zero_path", "additive");
    seeded_vs_explicit("intlora-mul", 8, "vmc_stat", "std");
}

/* ---- bf16 training arithmetic ----
 * With the step's dtype bf16 the layer builds the same W' (the build is dtype-independent) and runs
 * its three products, y = x W'^T, dx = dy W' and G_W = dy^T x, on bf16 operands with f32
 * accumulation. Each product then differs from the f32 layer's by at most (2u + u^2) times the
 * sum of the absolute products it adds (u = 2^-8), and dA, dB (computed from G_W . M in f32) by
 * that bound carried through |A| and |B|. */
static void bf16_against_f32(const char *method, int bits) {
    const qa_method *m = qa_method_find(method);
    enum { BI = 40, BO = 24, BM = 32 };
    static float W[BO * BI], b[BO], x[BM * BI], dy[BM * BO], Bv[BO * R], y[2][BM * BO], dx[2][BM * BI], Weff[2][BO * BI];
    static float dA[2][R * BI], dB[2][BO * R], A[R * BI];
    layer_data(31, BI, BO, BM, W, b, x, dy, Bv);
    qa_method_cfg cfg = {.w_bits = bits, .rank = R, .lora_scale = 1.0f, .options = options_with(m, NULL, NULL)};
    for (int v = 0; v < 2; v++) {
        qa_step_ctx step = {NULL, 1, BM, 1000, v ? QA_DTYPE_BF16 : QA_DTYPE_F32};
        qa_rng *r = qa_rng_new(4);
        qa_layer_init li = {BI, BO, W, b, &cfg, r, "bf16", NULL, &step};
        void *st = qa_alloc(m->state_size);
        qa_error err = {0, ""};
        cr_assert_eq(m->init(st, &li, &err), 0, "%s", err.msg);
        qa_param ps[2];
        cr_assert_eq(m->params(st, ps, 2), 2);
        m->forward(st, x, y[v], BM); /* calibrates (MUL) with B = 0 */
        memcpy(ps[1].data, Bv, sizeof Bv);
        memset(ps[0].grad, 0, sizeof(float) * ps[0].n);
        memset(ps[1].grad, 0, sizeof(float) * ps[1].n);
        m->forward(st, x, y[v], BM);
        memset(dx[v], 0, sizeof dx[v]);
        m->backward(st, dy, dx[v], BM);
        memcpy(A, ps[0].data, sizeof A);
        memcpy(dA[v], ps[0].grad, sizeof dA[v]);
        memcpy(dB[v], ps[1].grad, sizeof dB[v]);
        qa_named_tensor t[16];
        int nt = m->inspect(st, t, 16);
        memcpy(Weff[v], mc_find_tensor(t, nt, "W_eff")->f32, sizeof Weff[v]);
        m->destroy(st);
        qa_free(st);
        qa_rng_free(r);
    }
    cr_expect(memcmp(Weff[0], Weff[1], sizeof Weff[0]) == 0, "%s: W' depends on the dtype", method);
    const double bound = 2.0 / 256 + 1.0 / 65536;
    static double gabs[BO * BI];
    for (int o = 0; o < BO; o++)
        for (int i = 0; i < BI; i++) {
            double s = 0;
            for (int mm = 0; mm < BM; mm++) s += fabs((double)dy[mm * BO + o] * x[mm * BI + i]);
            gabs[o * BI + i] = s;
        }
    int differs = 0;
    for (int mm = 0; mm < BM; mm++)
        for (int o = 0; o < BO; o++) {
            double s = 0;
            for (int i = 0; i < BI; i++) s += fabs((double)x[mm * BI + i] * Weff[0][o * BI + i]);
            float a = y[0][mm * BO + o], c = y[1][mm * BO + o];
            cr_expect(fabs((double)a - c) <= bound * s + 1e-5, "%s y[%d,%d]: f32 %g, bf16 %g", method, mm, o, a, c);
            differs += a != c;
        }
    cr_expect_gt(differs, 0, "%s: the bf16 step computed the f32 product", method);
    for (int mm = 0; mm < BM; mm++)
        for (int i = 0; i < BI; i++) {
            double s = 0;
            for (int o = 0; o < BO; o++) s += fabs((double)dy[mm * BO + o] * Weff[0][o * BI + i]);
            cr_expect(fabs((double)dx[0][mm * BI + i] - dx[1][mm * BI + i]) <= bound * s + 1e-5, "%s dx[%d,%d]", method, mm, i);
        }
    for (int o = 0; o < BO; o++)
        for (int k = 0; k < R; k++) {
            double s = 0;
            for (int i = 0; i < BI; i++) s += gabs[o * BI + i] * fabs((double)A[k * BI + i]);
            cr_expect(fabs((double)dB[0][o * R + k] - dB[1][o * R + k]) <= bound * s + 1e-5, "%s dB[%d,%d]: f32 %g, bf16 %g",
                      method, o, k, dB[0][o * R + k], dB[1][o * R + k]);
        }
    for (int k = 0; k < R; k++)
        for (int i = 0; i < BI; i++) {
            double s = 0;
            for (int o = 0; o < BO; o++) s += fabs((double)Bv[o * R + k]) * gabs[o * BI + i];
            cr_expect(fabs((double)dA[0][k * BI + i] - dA[1][k * BI + i]) <= bound * s + 1e-5, "%s dA[%d,%d]: f32 %g, bf16 %g",
                      method, k, i, dA[0][k * BI + i], dA[1][k * BI + i]);
        }
}

Test(intlora, bf16_step_within_the_bf16_bound_of_f32) {
    bf16_against_f32("intlora-mul", 8);
    bf16_against_f32("intlora-mul", 4);
    bf16_against_f32("intlora-shift", 8);
}

/* ---- the batched Laplace generator R is regenerated with ----
 * qa_counter_laplace_f32 must give, bit for bit, (float)qa_counter_laplace (itself checked against
 * SplitMix64's published outputs in test_rng): over a million numbers per key, at several keys,
 * scales and start indices, with lengths that are not multiples of its block. */
Test(intlora, batched_laplace_is_the_scalar_generator_bit_for_bit) {
    enum { NB = 1 << 20 };
    static float got[NB + 7];
    const uint64_t keys[3] = {0, 0x9E3779B97F4A7C15ull, 12345};
    const double scales[3] = {0.5, 1.0, 0.37};
    const uint64_t starts[3] = {0, 1000003, (uint64_t)1 << 40};
    for (int c = 0; c < 3; c++) {
        size_t n = NB + (size_t)(c * 3 + 1);
        qa_counter_laplace_f32(keys[c], starts[c], n, scales[c], got);
        size_t bad = 0, first = n;
        for (size_t k = 0; k < n; k++) {
            float want = (float)qa_counter_laplace(keys[c], starts[c] + k, scales[c]);
            if (memcmp(&want, &got[k], sizeof want) != 0) {
                bad++;
                if (first == n) first = k;
            }
        }
        cr_expect_eq(bad, 0, "key %d: %zu of %zu differ, first at %zu", c, bad, n, first);
    }
}
