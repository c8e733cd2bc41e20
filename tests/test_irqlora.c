/* IR-QLoRA (methods/irqlora.c) and its quantizer ICQ (quant_icq_* in harness/quant.c): ICQ on
 * hand-computed rows (the search's order, its ties, the int8 counting quirk, the symmetric and
 * zero-row cases); the elastic connection against the reference's formula written out here;
 * gradients by finite differences; merge = training forward; the "icq" deploy on its grid; bad
 * input. The reference's own numbers (icq_quantizer.h5) are checked in test_fixture.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "tests/common.h"
#include "tests/method_check.h"

static const quant_icq_cfg REF = {.tau_range = 0.1f, .tau_n = 50, .symmetric = 0, .count_int8 = 1};

/* ---- ICQ ---- */

Test(icq, candidates_are_one_then_up_then_down) {
    float p[101];
    qa_quant_icq_candidates(&REF, p);
    cr_expect_eq(p[0], 1.0f);
    cr_expect(fabsf(p[1] - 1.002f) < 1e-6f && fabsf(p[50] - 1.1f) < 1e-6f, "up: %g .. %g", p[1], p[50]);
    cr_expect(fabsf(p[51] - 0.998f) < 1e-6f && fabsf(p[100] - 0.9f) < 1e-6f, "down: %g .. %g", p[51], p[100]);
    for (int k = 2; k <= 50; k++) cr_expect(p[k] > p[k - 1], "increasing at %d", k);
    for (int k = 52; k <= 100; k++) cr_expect(p[k] < p[k - 1], "decreasing at %d", k);
}

Test(icq, entropy_by_hand_and_the_int8_quirk) {
    /* codes at scale 1, zero 0: {0, 1, 1, 3} -> f = 1/4, 1/2, 1/4 -> H = 1.5 bits */
    const float x[4] = {0, 1, 1, 3};
    cr_expect(fabsf(qa_quant_icq_entropy(x, 4, 2, 1.0f, 0.0f, &REF) - 1.5f) < 1e-6f);
    /* 8 bits, codes {0, 200}: the reference casts to int8, 200 wraps to -56 and is not counted:
     * H = -(1/2) log2(1/2) = 0.5; counting every code gives 1 */
    const float y[2] = {0, 200};
    quant_icq_cfg all = REF;
    all.count_int8 = 0;
    cr_expect(fabsf(qa_quant_icq_entropy(y, 2, 8, 1.0f, 0.0f, &REF) - 0.5f) < 1e-6f);
    cr_expect(fabsf(qa_quant_icq_entropy(y, 2, 8, 1.0f, 0.0f, &all) - 1.0f) < 1e-6f);
}

Test(icq, a_row_already_on_distinct_codes_keeps_p_1) {
    /* 2 bits, {0, 1, 2, 3}: p = 1 gives scale 1, zero 0, four distinct codes, H = 2 (the most
     * four values can have); no later p is strictly better */
    const float x[4] = {0, 1, 2, 3};
    float s, z;
    qa_quant_icq_search(x, 4, 2, &REF, &s, &z);
    cr_expect_eq(s, 1.0f);
    cr_expect_eq(z, 0.0f);
}

Test(icq, the_first_strictly_better_p_wins) {
    /* 2 bits, {0, 0.5, 0.5, 3}: at p = 1 (scale 1) 0.5 rounds half-to-even to 0: codes {0,0,0,3},
     * H = 0.811; every p > 1 keeps that; the first p < 1 (0.998, candidate 51) gives
     * 0.5 / 0.998 > 0.5 -> codes {0,1,1,3}, H = 1.5, and no later candidate beats 1.5 */
    const float x[4] = {0, 0.5f, 0.5f, 3};
    float p[101], s, z;
    qa_quant_icq_candidates(&REF, p);
    qa_quant_icq_search(x, 4, 2, &REF, &s, &z);
    cr_expect_eq(s, (p[51] * 3.0f - p[51] * 0.0f) / 3.0f, "scale %.9g, want p = %.9g", s, p[51]);
    cr_expect_eq(z, 0.0f);
}

Test(icq, symmetric_zero_point_is_half_the_levels) {
    /* 4 bits, {-1, 0.5}: xmax = 1, xmin = -1, scale 2/15, zero 8; codes 0 and 12 are distinct at
     * p = 1, so p = 1 is kept */
    const float x[2] = {-1.0f, 0.5f};
    quant_icq_cfg sym = REF;
    sym.symmetric = 1;
    float s, z;
    qa_quant_icq_search(x, 2, 4, &sym, &s, &z);
    cr_expect_eq(s, 2.0f / 15.0f);
    cr_expect_eq(z, 8.0f);
    /* a row >= 0 keeps xmin = 0 (the reference's quirk): scale = max / 15, zero still 8 */
    const float y[2] = {0.25f, 1.5f};
    qa_quant_icq_search(y, 2, 4, &sym, &s, &z);
    cr_expect_eq(z, 8.0f);
    cr_expect_eq(s, 1.5f / 15.0f, "scale %.9g", s);
}

Test(icq, a_zero_row_gets_the_range_minus_one_to_one) {
    const float x[3] = {0, 0, 0};
    float s, z, q[3];
    qa_quant_icq_search(x, 3, 2, &REF, &s, &z);
    cr_expect_eq(s, 2.0f / 3.0f);
    cr_expect_eq(z, 2.0f); /* round(1 / (2/3)) = round(1.5) = 2 */
    qa_quant_fake_rows(q, x, 1, 3, 2, &s, &z);
    for (int i = 0; i < 3; i++) cr_expect_eq(q[i], 0.0f);
}

/* ---- the layer ---- */

#define IN 16
#define OUT 8
#define R 4
#define M 5
#define NW (IN * OUT)

static int setup(mc_layer *f, int w_bits, float scale, const char *iec, int rank, int in, qa_error *err) {
    mc_layer_new(f, qa_method_find("ir-qlora"), in, OUT, 21);
    mc_layer_option(f, "iec", iec);
    f->cfg.w_bits = w_bits;
    f->cfg.rank = rank;
    f->cfg.lora_scale = scale;
    return mc_layer_init_seeded(f, 21, "test.layer", NULL, err);
}

/* B and the elastic scalars non-zero, so that every path carries a gradient */
static void perturb(mc_layer *f) {
    qa_param ps[4];
    int np = f->m->params(f->state, ps, 4);
    trng t = trng_new(4);
    fill_normal(&t, ps[1].data, ps[1].n, 0.2);
    for (int i = 2; i < np; i++) ps[i].data[0] = 0.3f + 0.4f * (float)i;
}

static const float *tensor(mc_layer *f, const char *name) { return mc_inspect(f->m, f->state, name)->f32; }

/* W_dq, decoded from the held codes (packed at N <= 4, bytes above), is ICQ's fake-quantized weight. */
Test(irqlora, base_is_the_icq_quantizer) {
    const int bits[] = {4, 3, 2, 8};
    for (int k = 0; k < 4; k++) {
        mc_layer f;
        qa_error err;
        cr_assert_eq(setup(&f, bits[k], 1.0f, "learned", R, IN, &err), 0, "%s", err.msg);
        float s[OUT], z[OUT], Wq[NW];
        qa_quant_icq_rows(f.W, OUT, IN, bits[k], &REF, s, z);
        qa_quant_fake_rows(Wq, f.W, OUT, IN, bits[k], s, z);
        const float *W_dq = tensor(&f, "W_dq");
        for (int i = 0; i < NW; i++) cr_expect_eq(W_dq[i], Wq[i], "W%d: W_dq[%d]", bits[k], i);
        mc_layer_free(&f);
    }
}

/* The reference's IEC written out: h_j = sum_i A[j,i] x_i + bA mean(x over the j-th group of
 * in/r inputs); y_o = (W_dq x)_o + b_o + s (sum_j B[o,j] h_j + bB h_(o / (out/r))). */
static void iec_reference(mc_layer *f, const float *x, double *y) {
    qa_param ps[4];
    int np = f->m->params(f->state, ps, 4);
    const float *A = ps[0].data, *B = ps[1].data, *W_dq = tensor(f, "W_dq");
    double bA = np > 2 ? ps[2].data[0] : 0, bB = np > 3 ? ps[3].data[0] : 0;
    const int gi = IN / R, go = OUT / R;
    for (int m = 0; m < M; m++) {
        double h[R];
        for (int j = 0; j < R; j++) {
            double a = 0, mean = 0;
            for (int i = 0; i < IN; i++) a += (double)A[j * IN + i] * x[m * IN + i];
            for (int i = j * gi; i < (j + 1) * gi; i++) mean += x[m * IN + i];
            h[j] = a + bA * mean / gi;
        }
        for (int o = 0; o < OUT; o++) {
            double v = f->b[o], u = bB * h[o / go];
            for (int i = 0; i < IN; i++) v += (double)W_dq[o * IN + i] * x[m * IN + i];
            for (int j = 0; j < R; j++) u += (double)B[o * R + j] * h[j];
            y[m * OUT + o] = v + f->cfg.lora_scale * u;
        }
    }
}

Test(irqlora, forward_is_the_reference_elastic_connection) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, 4, 0.75f, "learned", R, IN, &err), 0, "%s", err.msg);
    perturb(&f);
    trng t = trng_new(6);
    float x[M * IN], y[M * OUT];
    double ref[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    f.m->forward(f.state, x, y, M);
    iec_reference(&f, x, ref);
    for (int i = 0; i < M * OUT; i++) cr_expect(fabs(y[i] - ref[i]) < 1e-4, "y[%d] %g vs reference %g", i, y[i], ref[i]);
    mc_layer_free(&f);
}

static void check_grads(int w_bits, float scale, const char *iec, int want_params) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, w_bits, scale, iec, R, IN, &err), 0, "%s", err.msg);
    perturb(&f);
    trng t = trng_new(5);
    float x[M * IN], w[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    fill_normal(&t, w, M * OUT, 1.0);
    char what[32];
    snprintf(what, sizeof what, "W%d %s", w_bits, iec);
    mc_check_grads(&f, x, w, M, want_params, &(mc_fd_plan){.param_stride = 3, .x_stride = 3, .h = 1e-2, .tol = 2e-3}, what);
    mc_layer_free(&f);
}

Test(irqlora, gradients_learned_elastic_paths) { check_grads(4, 0.5f, "learned", 4); }
Test(irqlora, gradients_fixed_elastic_paths_int8) { check_grads(8, 1.0f, "fixed", 2); }
Test(irqlora, gradients_without_elastic_paths_fp) { check_grads(0, 2.0f, "off", 2); }

Test(irqlora, starts_as_the_quantized_base_layer) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, 3, 1.0f, "learned", R, IN, &err), 0, "%s", err.msg);
    trng t = trng_new(3);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    f.m->forward(f.state, x, y, M);
    mc_expect_affine(x, tensor(&f, "W_dq"), f.b, y, M, IN, OUT, 1e-4, "B = 0, beta = 0 at init: y = x W_dq^T + b");
    mc_layer_free(&f);
}

static void check_merge(int w_bits, const char *iec) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, w_bits, 0.75f, iec, R, IN, &err), 0, "%s", err.msg);
    perturb(&f);
    trng t = trng_new(8);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    qa_deployed d;
    char what[32];
    snprintf(what, sizeof what, "W%d %s", w_bits, iec);
    mc_check_merge(&f, x, M, y, &d, 1e-4f, what);
    cr_expect_eq(d.needs_ptq, w_bits > 0);
    cr_expect_eq(d.merge, QA_MERGE_FLOAT_ADD_PTQ);
    if (w_bits > 0) {
        /* "icq": W' re-quantized by ICQ: every row on its own grid of at most 2^N values, and
         * equal to quant_icq_rows + quant_fake_rows of W' */
        cr_assert_eq(d.n_extra, 1);
        cr_expect_str_eq(d.extra_name[0], "icq");
        cr_expect(d.extra_bits[0] > w_bits && d.extra_bits[0] <= w_bits + 64.0 / IN, "bits %g", d.extra_bits[0]);
        float s[OUT], z[OUT], Wq[NW];
        qa_quant_icq_rows(d.w_fp, OUT, IN, w_bits, &REF, s, z);
        qa_quant_fake_rows(Wq, d.w_fp, OUT, IN, w_bits, s, z);
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) {
                float v = d.extra_w[0][o * IN + i], k = v / s[o];
                cr_expect_eq(v, Wq[o * IN + i]);
                cr_expect(fabsf(k - nearbyintf(k)) < 1e-3f && k + z[o] > -0.5f && k + z[o] < (float)(1 << w_bits) - 0.5f,
                          "row %d: %g is not a code of the grid", o, v);
            }
    } else {
        cr_expect_eq(d.n_extra, 0);
    }
    qa_deployed_free(&d);
    mc_layer_free(&f);
}

Test(irqlora, merge_reproduces_the_forward_learned_w4) { check_merge(4, "learned"); }
Test(irqlora, merge_reproduces_the_forward_fixed_w8) { check_merge(8, "fixed"); }
Test(irqlora, merge_reproduces_the_forward_fp) { check_merge(0, "learned"); }

Test(irqlora, bytes_count_the_elastic_scalars) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, 4, 1.0f, "learned", R, IN, &err), 0, "%s", err.msg);
    qa_bytes b;
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.trainable, sizeof(float) * (R * (IN + OUT) + 2));
    cr_expect_eq(b.optimizer, 2 * b.trainable);
    cr_expect_eq(b.deployed, NW * 4 / 8 + 2 * OUT * sizeof(float) + OUT * sizeof(float));
    /* held: 4-bit codes packed, scale and zero per row, bias; W_dq in float is workspace */
    cr_expect_eq(b.frozen, NW * 4 / 8 + 3 * OUT * sizeof(float));
    cr_expect_eq(b.workspace, NW * sizeof(float));
    mc_layer_free(&f);
    cr_assert_eq(setup(&f, 3, 1.0f, "learned", R, IN, &err), 0, "%s", err.msg);
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.frozen, (NW * 3 + 7) / 8 + 3 * OUT * sizeof(float), "3-bit codes packed");
    mc_layer_free(&f);
    cr_assert_eq(setup(&f, 0, 1.0f, "learned", R, IN, &err), 0, "%s", err.msg);
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.frozen, NW * sizeof(float) + OUT * sizeof(float), "N = 0: the FP weight is the base");
    cr_expect_eq(b.workspace, 0);
    mc_layer_free(&f);
}

Test(irqlora, bad_input_is_refused_naming_what_is_allowed) {
    mc_layer f;
    qa_error err;
    /* a rank that does not divide in = 16 (IEC groups the inputs by in / r) */
    cr_expect_eq(setup(&f, 4, 1.0f, "learned", 3, IN, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "divide") && strstr(err.msg, "iec = off"), "%s", err.msg);
    mc_layer_free(&f);
    cr_expect_eq(setup(&f, 4, 1.0f, "learned", OUT + 1, IN, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "rank 9"), "%s", err.msg);
    mc_layer_free(&f);
    cr_expect_eq(setup(&f, 9, 1.0f, "learned", R, IN, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "1..8"), "%s", err.msg);
    mc_layer_free(&f);
    /* with iec = off any rank up to min(in, out) is fine */
    cr_assert_eq(setup(&f, 4, 1.0f, "off", 3, IN, &err), 0, "%s", err.msg);
    mc_layer_free(&f);
    char o[64];
    qa_method_options_defaults(qa_method_find("ir-qlora"), o);
    cr_expect_eq(qa_method_option_set(qa_method_find("ir-qlora"), o, "icq_tau_range", "0.7", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "0..0.5"), "%s", err.msg);
    cr_expect_eq(qa_method_option_set(qa_method_find("ir-qlora"), o, "iec", "maybe", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "learned|fixed|off"), "%s", err.msg);
}
