/* The integer W8A8 path against the fake-quantized float layer it replaces: same codes, same
 * activation quantizer, so the outputs agree up to float rounding; and a whole W8A8 model run
 * on the u8 x s8 kernels equals the fake-quantized model. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/int8.h"
#include "harness/int8_multi.h"
#include "harness/model.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/rng.h"

static double max_rel(const float *a, const float *b, size_t n) {
    double e = 0, mx = 0;
    for (size_t i = 0; i < n; i++) { e = fmax(e, fabs((double)a[i] - b[i])); mx = fmax(mx, fabs((double)b[i])); }
    return e / (mx + 1e-30);
}

static void layer_case_bits(int M, int in, int out, float xshift, int bits) {
    qa_rng *r = qa_rng_new((uint64_t)(in * 31 + out));
    float *W = qa_alloc(sizeof(float) * in * out), *Wq = qa_alloc(sizeof(float) * in * out);
    float *x = qa_alloc(sizeof(float) * M * in), *xh = qa_alloc(sizeof(float) * M * in);
    float *b = qa_alloc(sizeof(float) * out), *y_ref = qa_alloc(sizeof(float) * M * out), *y = qa_alloc(sizeof(float) * M * out);
    float *dl = qa_alloc(sizeof(float) * out), *z = qa_alloc(sizeof(float) * out);
    qa_rng_fill_normal(r, W, (size_t)in * out, 0.2f);
    for (int k = 0; k < in; k++) W[k] = 0.05f + 0.01f * (float)k / in; /* a one-signed row: z far from 128 */
    qa_rng_fill_normal(r, x, (size_t)M * in, 1.0f);
    for (int i = 0; i < M * in; i++) x[i] += xshift; /* asymmetric activations: zx far from 0 */
    qa_rng_fill_normal(r, b, out, 0.1f);
    qa_quant_search_rows(W, out, in, bits, dl, z);
    qa_quant_fake_rows(Wq, W, out, in, bits, dl, z);
    qa_actq aq = {8, 0, 0, 0};
    qa_actq_forward(&aq, xh, x, (size_t)M * in); /* calibrates */
    qa_linear_forward(y_ref, xh, Wq, b, M, in, out);
    qa_int8_linear L;
    cr_assert_eq(qa_int8_linear_init(&L, Wq, dl, z, in, out, b), 0);
    qa_int8_linear_forward(&L, &aq, x, y, M);
    double e = max_rel(y, y_ref, (size_t)M * out);
    cr_expect(e < 1e-5, "int8 vs fake-quant float (M %d, K %d, N %d, W%d, zx %g): relative error %g", M, in, out, bits, aq.zero, e);
    /* weights off their grid are refused, not silently re-quantized */
    Wq[3] += 0.37f * dl[0];
    qa_int8_linear L2;
    cr_expect_eq(qa_int8_linear_init(&L2, Wq, dl, z, in, out, b), -1);
    qa_int8_linear_free(&L);
    qa_free(W); qa_free(Wq); qa_free(x); qa_free(xh); qa_free(b); qa_free(y_ref); qa_free(y); qa_free(dl); qa_free(z);
    qa_rng_free(r);
}

static void layer_case(int M, int in, int out, float xshift) { layer_case_bits(M, in, out, xshift, 8); }

Test(int8, layer_matches_fake_quant) {
    layer_case(7, 16, 9, 0.0f);
    layer_case(50, 128, 128, 1.5f);
    layer_case(33, 512, 128, -0.7f); /* the widest layer of the model (K = 512) */
}

/* codes of fewer bits lie on the 8-bit grid of the same (delta, zero): the same kernel runs them */
Test(int8, sub_8_bit_row_codes_match_fake_quant) {
    layer_case_bits(20, 64, 24, 0.4f, 4);
    layer_case_bits(33, 128, 40, -0.3f, 6);
    layer_case_bits(9, 32, 8, 0.0f, 2);
}

Test(int8, wider_than_exact_range_is_refused) {
    float W[2 * (QA_INT8_MAX_K + 1)] = {0}, dl[2] = {1, 1}, z[2] = {0, 0};
    qa_int8_linear L;
    cr_expect_eq(qa_int8_linear_init(&L, W, dl, z, QA_INT8_MAX_K + 1, 2, NULL), -1);
}

Test(int8, w8a8_model_on_integer_kernels_equals_fake_quant_model) {
    qa_error err = {0, ""};
    qa_dit m;
    qa_dit_config c = {28, 7, 32, 2, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(&m, &c, 4, &err), 0);
    qa_dit_init_weights(&m, 5);
    qa_rng *r = qa_rng_new(6);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.05f * (float)qa_rng_normal(r);
    float x[4 * 784], t[4] = {10, 300, 600, 990}, ref[4 * 784], out[4 * 784];
    int y[4] = {0, 3, 11, 12};
    qa_rng_fill_normal(r, x, 4 * 784, 1.0f);
    qa_dit_quantize_base(&m, 8, 8, 0); /* every linear frozen at W8, inputs at A8 */
    qa_dit_forward(&m, x, t, y, 4, ref); /* calibrates, fake-quant float path */
    qa_dit_forward(&m, x, t, y, 4, ref);
    int n = qa_dit_enable_int8(&m);
    cr_expect_eq(n, m.n_lin, "every linear (K <= 513) runs on the integer kernel, got %d of %d", n, m.n_lin);
    qa_dit_forward(&m, x, t, y, 4, out);
    double e = max_rel(out, ref, 4 * 784);
    cr_expect(e < 1e-3, "integer model vs fake-quant model: relative error %g", e);
    qa_dit_free(&m);
    qa_rng_free(r);
}

/* The activation codes of the integer path are those of the section-0 quantizer,
 * clamp(nearbyint(x / dx) + zx, 0, 255), at the cases a rounding shortcut could get wrong: exact
 * ties (x / dx = j + 1/2, both parities, both signs), values just off a tie, and values far
 * outside the range (clamped). */
Test(int8, activation_codes_at_ties_and_extremes) {
    enum { IN = 64, OUT = 2, M = 16 };
    float W[OUT * IN], dl[OUT] = {0.01f, 0.02f}, z[OUT] = {128, 100}, x[M * IN], y[M * OUT];
    for (int o = 0; o < OUT; o++)
        for (int k = 0; k < IN; k++) W[o * IN + k] = dl[o] * (float)((k * 7 + o) % 256 - z[o]);
    const float dx = 0.125f, zx = 101;
    for (int i = 0; i < M * IN; i++) {
        int j = i % 600 - 300;
        float v = ((float)j + 0.5f) * dx;                              /* an exact tie */
        if (i % 5 == 1) v = nextafterf(v, 1e9f);                       /* just above it */
        if (i % 5 == 2) v = nextafterf(v, -1e9f);                      /* just below it */
        if (i % 97 == 3) v = (i % 2 ? 1e7f : -1e7f);                   /* far outside */
        x[i] = v;
    }
    qa_actq aq = {8, 1, dx, zx};
    qa_int8_linear L;
    cr_assert_eq(qa_int8_linear_init(&L, W, dl, z, IN, OUT, NULL), 0);
    qa_int8_linear_forward(&L, &aq, x, y, M);
    int bad = 0;
    for (int i = 0; i < M * IN; i++) {
        float q = nearbyintf(x[i] / dx) + zx;
        q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
        if (L.xq[i] != (uint8_t)q) {
            if (bad++ < 5) cr_expect_fail("x %.9g: code %d, want %d", (double)x[i], L.xq[i], (int)q);
        }
    }
    cr_expect_eq(bad, 0, "%d codes differ", bad);
    qa_int8_linear_free(&L);
}

/* A small model whose every linear runs on the integer kernel (W8A8), calibrated on one batch. */
static void make_int8_model(qa_dit *m, qa_rng *r, float *x, float *t, int *y) {
    qa_error err = {0, ""};
    qa_dit_config c = {28, 7, 32, 2, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(m, &c, 4, &err), 0);
    qa_dit_init_weights(m, 5);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.05f * (float)qa_rng_normal(r);
    qa_rng_fill_normal(r, x, 4 * 784, 1.0f);
    qa_dit_quantize_base(m, 8, 8, 0);
    float eps[4 * 784];
    qa_dit_forward(m, x, t, y, 4, eps); /* calibrates */
    cr_assert_eq(qa_dit_enable_int8(m), m->n_lin);
}

/* The fused deployed forward (layer norm + modulation writing u8 codes, stacked q/k/v, GELU between
 * two integer layers, dequantization inside the gated residual) is the same arithmetic as the
 * unfused integer layers: equal bit for bit. */
Test(int8, fused_model_equals_unfused_bit_for_bit) {
    qa_rng *r = qa_rng_new(8);
    qa_dit m;
    float x[4 * 784], t[4] = {10, 300, 600, 990}, fused[4 * 784], unfused[4 * 784];
    int y[4] = {0, 3, 11, 12};
    make_int8_model(&m, r, x, t, y);
    for (int l = 0; l < m.cfg.depth; l++) cr_expect(m.qkv_i8[l] != NULL, "block %d: q, k, v stacked", l);
    m.int8_unfused = 1;
    qa_dit_forward(&m, x, t, y, 4, unfused);
    m.int8_unfused = 0;
    qa_dit_forward(&m, x, t, y, 4, fused);
    int differ = 0;
    for (int i = 0; i < 4 * 784; i++) differ += memcmp(&fused[i], &unfused[i], sizeof(float)) != 0;
    cr_expect_eq(differ, 0, "%d of %d outputs differ between the fused and unfused integer model", differ, 4 * 784);
    /* and the outputs are the model's, not zeros */
    double norm = 0;
    for (int i = 0; i < 4 * 784; i++) norm += (double)fused[i] * fused[i];
    cr_expect(norm > 1e-3, "output norm %g", norm);
    qa_dit_free(&m);
    qa_rng_free(r);
}

/* The fused producers, one at a time, against the unfused layers they replace: the same codes. */
Test(int8, layernorm_modulate_quantize_codes_equal_unfused) {
    enum { B = 3, T = 5, C = 48, M = B * T };
    qa_rng *r = qa_rng_new(9);
    float x[M * C], mod[B * 4 * C], ln[M * C], h[M * C], mean[M], rstd[M], W[C * 8], dl[8], z[8];
    qa_rng_fill_normal(r, x, M * C, 2.0f);
    for (int i = 0; i < M * C; i++) x[i] += 0.3f;
    qa_rng_fill_normal(r, mod, B * 4 * C, 0.5f);
    qa_rng_fill_normal(r, W, C * 8, 0.1f);
    qa_quant_search_rows(W, 8, C, 8, dl, z);
    qa_quant_fake_rows(W, W, 8, C, 8, dl, z);
    qa_layernorm_forward(ln, mean, rstd, x, M, C);
    qa_modulate_forward(h, ln, mod, mod + C, 4 * C, B, T, C); /* shift, scale inside a wider row */
    qa_actq aq = {8, 0, 0, 0};
    float hq[M * C];
    qa_actq_forward(&aq, hq, h, M * C); /* calibrates on the unfused output */
    qa_int8_linear ref, fused;
    cr_assert_eq(qa_int8_linear_init(&ref, W, dl, z, C, 8, NULL), 0);
    cr_assert_eq(qa_int8_linear_init(&fused, W, dl, z, C, 8, NULL), 0);
    qa_int8_linear_quantize(&ref, &aq, h, M);
    qa_layernorm_modulate_quantize(&fused, &aq, x, mod, mod + C, 4 * C, B, T, C);
    cr_expect_eq(memcmp(ref.xq, fused.xq, M * C), 0, "codes differ");
    cr_expect_eq(memcmp(ref.xsum, fused.xsum, sizeof(int32_t) * M), 0, "code sums differ");
    int spread = 0;
    for (int i = 1; i < M * C; i++) spread += fused.xq[i] != fused.xq[0];
    cr_expect(spread > M * C / 2, "the codes span the range");
    qa_int8_linear_free(&ref); qa_int8_linear_free(&fused);
    qa_rng_free(r);
}

Test(int8, gelu_between_integer_layers_equals_unfused) {
    enum { M = 9, K = 32, N = 64, N2 = 16 };
    qa_rng *r = qa_rng_new(10);
    float x[M * K], W1[N * K], W2[N2 * N], d1[N], z1[N], d2[N2], z2[N2], y1[M * N], g[M * N], gq[M * N];
    qa_rng_fill_normal(r, x, M * K, 1.0f);
    qa_rng_fill_normal(r, W1, N * K, 0.2f);
    qa_rng_fill_normal(r, W2, N2 * N, 0.2f);
    qa_quant_search_rows(W1, N, K, 8, d1, z1);
    qa_quant_fake_rows(W1, W1, N, K, 8, d1, z1);
    qa_quant_search_rows(W2, N2, N, 8, d2, z2);
    qa_quant_fake_rows(W2, W2, N2, N, 8, d2, z2);
    qa_actq a1 = {8, 0, 0, 0}, a2 = {8, 0, 0, 0};
    float xq[M * K];
    qa_actq_forward(&a1, xq, x, M * K);
    qa_int8_linear fc1, fc2_ref, fc2;
    cr_assert_eq(qa_int8_linear_init(&fc1, W1, d1, z1, K, N, NULL), 0);
    cr_assert_eq(qa_int8_linear_init(&fc2_ref, W2, d2, z2, N, N2, NULL), 0);
    cr_assert_eq(qa_int8_linear_init(&fc2, W2, d2, z2, N, N2, NULL), 0);
    qa_int8_linear_forward(&fc1, &a1, x, y1, M); /* unfused: y1, GELU, then fc2 quantizes */
    qa_gelu_forward(g, y1, M * N);
    qa_actq_forward(&a2, gq, g, M * N);
    qa_int8_linear_quantize(&fc2_ref, &a2, g, M);
    qa_int8_gelu_quantize(&fc1, &fc2, &a2, M); /* fused, from fc1's accumulator */
    cr_expect_eq(memcmp(fc2_ref.xq, fc2.xq, M * N), 0, "codes differ");
    cr_expect_eq(memcmp(fc2_ref.xsum, fc2.xsum, sizeof(int32_t) * M), 0, "code sums differ");
    qa_int8_linear_free(&fc1); qa_int8_linear_free(&fc2_ref); qa_int8_linear_free(&fc2);
    qa_rng_free(r);
}

/* Integer attention against its fake-quantized float reference (same quantizers): the integer
 * scores equal the reference's up to float rounding, so a P code can at most move across a
 * rounding boundary, which changes an output by one code step dp times |v_hat|. */
Test(int8, integer_attention_matches_fake_quant_reference) {
    enum { B = 3, T = 17, C = 32, H = 2, N = B * T * C };
    qa_rng *r = qa_rng_new(11);
    float *q = qa_alloc(sizeof(float) * N), *k = qa_alloc(sizeof(float) * N), *v = qa_alloc(sizeof(float) * N);
    float *ref = qa_alloc(sizeof(float) * N), *out = qa_alloc(sizeof(float) * N), *scratch = qa_alloc(sizeof(float) * 3 * N);
    float *probs = qa_alloc(sizeof(float) * B * H * T * T);
    qa_rng_fill_normal(r, q, N, 1.5f);
    qa_rng_fill_normal(r, k, N, 1.0f);
    qa_rng_fill_normal(r, v, N, 0.7f);
    for (int i = 0; i < N; i++) { q[i] += 0.4f; v[i] -= 0.2f; } /* zero points away from the middle */
    qa_int8_attention A;
    memset(&A, 0, sizeof A);
    qa_attention_fakequant_forward(&A, ref, probs, q, k, v, scratch, B, T, C, H); /* calibrates */
    cr_assert(qa_int8_attention_ready(&A), "zero points q %g k %g v %g p %g", A.q.zero, A.k.zero, A.v.zero, A.p.zero);
    qa_attention_fakequant_forward(&A, ref, probs, q, k, v, scratch, B, T, C, H);
    qa_int8_attention_forward(&A, out, probs, q, k, v, B, T, C, H);
    double vmax = 0, emax = 0, rmax = 0;
    for (int i = 0; i < N; i++) vmax = fmax(vmax, fabs(A.v.delta * (double)(nearbyintf(v[i] / A.v.delta))) + 2 * A.v.delta);
    for (int i = 0; i < N; i++) { emax = fmax(emax, fabs((double)out[i] - ref[i])); rmax = fmax(rmax, fabs((double)ref[i])); }
    cr_expect(emax <= A.p.delta * vmax + 1e-5 * rmax, "max error %g, one P step x max |v_hat| = %g", emax, A.p.delta * vmax);
    cr_expect(rmax > 0.01, "the reference is not all zeros (%g)", rmax);
    qa_int8_attention_release(&A);
    qa_free(q); qa_free(k); qa_free(v); qa_free(ref); qa_free(out); qa_free(scratch); qa_free(probs);
    qa_rng_free(r);
}

Test(int8, model_with_integer_attention_matches_its_reference) {
    qa_rng *r = qa_rng_new(12);
    qa_dit m;
    float x[4 * 784], t[4] = {10, 300, 600, 990}, ref[4 * 784], out[4 * 784], plain[4 * 784];
    int y[4] = {0, 3, 11, 12};
    make_int8_model(&m, r, x, t, y);
    qa_dit_forward(&m, x, t, y, 4, plain); /* float attention */
    qa_dit_set_attention_quant(&m, QA_ATTN_FAKEQUANT);
    qa_dit_forward(&m, x, t, y, 4, ref); /* calibrates the attention quantizers */
    qa_dit_forward(&m, x, t, y, 4, ref);
    for (int l = 0; l < m.cfg.depth; l++) cr_expect(qa_int8_attention_ready(&m.att_q[l]), "block %d", l);
    qa_dit_set_attention_quant(&m, QA_ATTN_INT8);
    qa_dit_forward(&m, x, t, y, 4, out);
    double e = max_rel(out, ref, 4 * 784), moved = max_rel(plain, ref, 4 * 784);
    cr_expect(e < 1e-3, "integer attention vs its fake-quant reference: relative error %g", e);
    cr_expect(moved > 0, "quantizing attention changes the output (%g)", moved);
    qa_dit_free(&m);
    qa_rng_free(r);
}

/* ---- planes and groups (int8_multi.h) against x_hat W^T + b summed in double ---- */

/* y_ref[M,out] = x_hat W^T + b in double, x_hat the section-0 codes of x under aq */
static void reference_layer(const qa_actq *aq, const float *x, const double *W, const float *b, int M, int in, int out,
                            double *y_ref) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++) {
                float q = nearbyintf(x[(size_t)m * in + k] / aq->delta) + aq->zero;
                q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
                s += (double)aq->delta * ((double)q - aq->zero) * W[(size_t)o * in + k];
            }
            y_ref[(size_t)m * out + o] = s;
        }
}

/* max |y - y_ref| / max |y_ref|, and max |y - y_ref| in *abs_err */
static double rel_to_double(const float *y, const double *y_ref, size_t n, double *abs_err) {
    double e = 0, mx = 0;
    for (size_t i = 0; i < n; i++) { e = fmax(e, fabs(y[i] - y_ref[i])); mx = fmax(mx, fabs(y_ref[i])); }
    *abs_err = e;
    return e / (mx + 1e-30);
}

/* the digits the init wrote give w back: sum_p 256^p u_p, each u_p in s8 */
static int64_t planes_value(const qa_int8_multi *L, size_t i) {
    int64_t v = 0;
    const size_t n = (size_t)L->in * L->out;
    for (int p = L->n_parts - 1; p >= 0; p--) v = 256 * v + L->u[(size_t)p * n + i];
    return v;
}

Test(int8, planes_decomposition_hand_cases) {
    /* balanced base-256 digits: 1 plane to [-128, 127], 2 to [-32896, 32639], 3 to 127 (1 + 256 + 256^2) */
    const int32_t w[] = {0, 127, -128, 128, -129, 32639, -32896, 32640, -32897, 100000, 8355711, 8355712};
    const int want[] = {1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        cr_expect_eq(qa_int8_planes_needed(&w[i], 1), want[i], "w = %d: %d planes, want %d", w[i],
                     qa_int8_planes_needed(&w[i], 1), want[i]);
    const int32_t top4 = 2139062143, over = 2139062144; /* 127 (1 + 256 + 256^2 + 256^3) */
    cr_expect_eq(qa_int8_planes_needed(&top4, 1), 4);
    cr_expect_eq(qa_int8_planes_needed(&over, 1), QA_INT8_MAX_PLANES + 1);
    /* a hand layer: K = 2, two rows; dx = 1, zx = 0 so x_hat = x: y = s (x . w) + b */
    const int32_t W2[] = {300, -5, -32896, 129};
    const float scale[] = {0.5f, 0.25f}, b[] = {1.0f, -2.0f}, x[] = {2, 3};
    qa_int8_multi L;
    cr_assert_eq(qa_int8_planes_init(&L, W2, scale, 2, 2, b), 0);
    cr_expect_eq(L.n_parts, 2);
    for (size_t i = 0; i < 4; i++) cr_expect_eq(planes_value(&L, i), W2[i], "entry %zu", i);
    /* 300 = 256 + 44, -5 = 0 256 - 5: digits (44, 1), (-5, 0) */
    cr_expect(L.u[0] == 44 && L.u[4] == 1 && L.u[1] == -5 && L.u[5] == 0);
    qa_actq aq = {8, 1, 1.0f, 0.0f};
    float y[2];
    qa_int8_multi_forward(&L, &aq, x, y, 1);
    cr_expect_eq(y[0], 0.5f * (2 * 300 + 3 * -5) + 1.0f, "y0 = %g", y[0]);          /* 293.5 */
    cr_expect_eq(y[1], 0.25f * (2 * -32896 + 3 * 129) - 2.0f, "y1 = %g", y[1]);     /* -16353.25 */
    char name[32];
    cr_expect_str_eq(qa_int8_multi_name(&L, name, sizeof name), "u8s8 2-plane");
    qa_int8_multi_free(&L);
}

Test(int8, planes_refused_beyond_their_range) {
    const int32_t w[2] = {0, -2147483647 - 1};
    const float s[1] = {1};
    qa_int8_multi L;
    cr_expect_eq(qa_int8_planes_init(&L, w, s, 2, 1, NULL), 0, "INT32_MIN still fits 4 planes");
    qa_int8_multi_free(&L);
    const int32_t top[2] = {0, 2147483647};
    cr_expect_eq(qa_int8_planes_init(&L, top, s, 2, 1, NULL), -1, "INT32_MAX needs a fifth plane");
    int32_t wide[QA_INT8_MAX_K + 1] = {0};
    cr_expect_eq(qa_int8_planes_init(&L, wide, s, QA_INT8_MAX_K + 1, 1, NULL), -1, "K beyond the exact range");
}

/* IntLoRA-MUL's deployed integers at N bits: U_int W_int, each a code minus a zero point, one
 * scale per row; against the double reference */
static void planes_case(int bits, int M, int in, int out, uint64_t seed, int want_planes) {
    qa_rng *r = qa_rng_new(seed);
    const int L2 = 1 << bits;
    int32_t *w = qa_alloc(sizeof(int32_t) * (size_t)in * out);
    double *Wd = qa_alloc(sizeof(double) * (size_t)in * out), *y_ref = qa_alloc(sizeof(double) * (size_t)M * out);
    float *scale = qa_alloc(sizeof(float) * out), *b = qa_alloc(sizeof(float) * out);
    float *x = qa_alloc(sizeof(float) * (size_t)M * in), *y = qa_alloc(sizeof(float) * (size_t)M * out);
    for (int o = 0; o < out; o++) {
        int zu = (int)(qa_rng_uniform(r) * L2) - 1, zw = (int)(qa_rng_uniform(r) * L2); /* zU may be -1 (the fallback) */
        scale[o] = 1e-4f * (1.0f + (float)qa_rng_uniform(r));
        for (int k = 0; k < in; k++) {
            int u = (int)(qa_rng_uniform(r) * L2) - zu, v = (int)(qa_rng_uniform(r) * L2) - zw;
            w[(size_t)o * in + k] = u * v;
            Wd[(size_t)o * in + k] = (double)scale[o] * u * v;
        }
    }
    w[0] = (L2 - 1) * (L2 - 1); /* the extreme product */
    Wd[0] = (double)scale[0] * w[0];
    qa_rng_fill_normal(r, b, out, 0.1f);
    qa_rng_fill_normal(r, x, (size_t)M * in, 1.0f);
    for (int i = 0; i < M * in; i++) x[i] += 0.8f;
    qa_actq aq = {8, 0, 0, 0};
    float *xh = qa_alloc(sizeof(float) * (size_t)M * in);
    qa_actq_forward(&aq, xh, x, (size_t)M * in); /* calibrates: zx far from 0 */
    qa_int8_multi L;
    cr_assert_eq(qa_int8_planes_init(&L, w, scale, in, out, b), 0);
    cr_expect_eq(L.n_parts, want_planes, "W%d products: %d planes, want %d", bits, L.n_parts, want_planes);
    qa_int8_multi_forward(&L, &aq, x, y, M);
    reference_layer(&aq, x, Wd, b, M, in, out, y_ref);
    double abs_err, e = rel_to_double(y, y_ref, (size_t)M * out, &abs_err);
    cr_log_info("planes W%d (%d planes): max abs %.3g, rel %.3g", bits, L.n_parts, abs_err, e);
    cr_expect(e < 1e-6, "planes W%d vs double reference: relative error %g (abs %g)", bits, e, abs_err);
    qa_int8_multi_free(&L);
    qa_free(w); qa_free(Wd); qa_free(y_ref); qa_free(scale); qa_free(b); qa_free(x); qa_free(y); qa_free(xh);
    qa_rng_free(r);
}

Test(int8, planes_match_double_reference) {
    planes_case(4, 17, 128, 40, 1, 2); /* |U_int W_int| up to 225: 2 planes */
    planes_case(8, 9, 128, 24, 2, 3);  /* up to 65025: 3 planes */
    planes_case(8, 5, 512, 8, 3, 3);   /* the widest layer (K = 512) */
}

/* group-wise codes with FP16-like fractional zero points (QA-LoRA's merge) */
static void groups_case(int bits, int G, int M, int in, int out, uint64_t seed) {
    qa_rng *r = qa_rng_new(seed);
    const int g = in / G, L2 = 1 << bits;
    int32_t *q = qa_alloc(sizeof(int32_t) * (size_t)in * out);
    float *sc = qa_alloc(sizeof(float) * (size_t)G * out), *z = qa_alloc(sizeof(float) * (size_t)G * out);
    double *Wd = qa_alloc(sizeof(double) * (size_t)in * out), *y_ref = qa_alloc(sizeof(double) * (size_t)M * out);
    float *x = qa_alloc(sizeof(float) * (size_t)M * in), *xh = qa_alloc(sizeof(float) * (size_t)M * in);
    float *y = qa_alloc(sizeof(float) * (size_t)M * out);
    for (int i = 0; i < G * out; i++) {
        sc[i] = 0.01f * (1.0f + (float)qa_rng_uniform(r));
        z[i] = (float)(qa_rng_uniform(r) * L2) + 0.37f * (float)qa_rng_normal(r);
    }
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            size_t i = (size_t)o * in + k, at = (size_t)(k / g) * out + o;
            q[i] = (int32_t)(qa_rng_uniform(r) * L2);
            Wd[i] = (double)sc[at] * ((double)q[i] - z[at]);
        }
    q[0] = L2 - 1;
    Wd[0] = (double)sc[0] * ((double)q[0] - z[0]);
    qa_rng_fill_normal(r, x, (size_t)M * in, 1.0f);
    for (int i = 0; i < M * in; i++) x[i] -= 0.6f;
    qa_actq aq = {8, 0, 0, 0};
    qa_actq_forward(&aq, xh, x, (size_t)M * in);
    qa_int8_multi L;
    cr_assert_eq(qa_int8_groups_init(&L, q, sc, z, G, in, out, NULL), 0);
    qa_int8_multi_forward(&L, &aq, x, y, M);
    reference_layer(&aq, x, Wd, NULL, M, in, out, y_ref);
    double abs_err, e = rel_to_double(y, y_ref, (size_t)M * out, &abs_err);
    cr_log_info("groups W%d, %d groups of %d: max abs %.3g, rel %.3g", bits, G, g, abs_err, e);
    cr_expect(e < 1e-6, "groups W%d (G %d) vs double reference: relative error %g (abs %g)", bits, G, e, abs_err);
    char name[32];
    cr_expect_str_eq(qa_int8_multi_name(&L, name, sizeof name), "u8s8 group");
    qa_int8_multi_free(&L);
    qa_free(q); qa_free(sc); qa_free(z); qa_free(Wd); qa_free(y_ref); qa_free(x); qa_free(xh); qa_free(y);
    qa_rng_free(r);
}

Test(int8, groups_match_double_reference) {
    groups_case(4, 4, 13, 128, 32, 4);
    groups_case(8, 2, 7, 64, 16, 5);
    groups_case(4, 16, 6, 512, 8, 6);
}

Test(int8, groups_refuse_bad_shapes_and_codes) {
    int32_t q[2 * 6] = {0};
    float sc[3 * 2] = {1, 1, 1, 1, 1, 1}, z[3 * 2] = {0};
    qa_int8_multi L;
    cr_expect_eq(qa_int8_groups_init(&L, q, sc, z, 4, 6, 2, NULL), -1, "4 groups do not divide 6 columns");
    q[5] = 256;
    cr_expect_eq(qa_int8_groups_init(&L, q, sc, z, 3, 6, 2, NULL), -1, "code 256 is not a u8 code");
    q[5] = -1;
    cr_expect_eq(qa_int8_groups_init(&L, q, sc, z, 3, 6, 2, NULL), -1, "code -1 is not a u8 code");
}
