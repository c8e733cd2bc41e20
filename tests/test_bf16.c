/* bf16 training arithmetic: the f32 -> bf16 rounding, the bf16 linear layer's three products
 * against the f32 layer within the error bound of 8-bit-significand operands, and a short
 * training run of a tiny denoiser in bf16 against the same run in f32. */
#include <criterion/criterion.h>
#include <omp.h>

#include "common.h"
#include "harness/diffusion.h"
#include "harness/model.h"
#include "harness/nn.h"
#include "harness/optim.h"

/* bf16 keeps 8 significant bits: each rounded operand carries a relative error of at most
 * u = 2^-8, so a product of two carries at most 2u + u^2, and a sum of K products at most
 * (2u + u^2) sum_k |a_k b_k| plus the f32 accumulation error (K 2^-24, negligible here). */
#define BF16_U (1.0 / 256.0)
#define BF16_PRODUCT_BOUND (2.0 * BF16_U + BF16_U * BF16_U + 1e-5)

static float bf16_value(qa_bf16 h) {
    union { uint32_t i; float f; } u = {(uint32_t)h << 16};
    return u.f;
}

static qa_bf16 bf16_of(float f) {
    qa_bf16 h;
    qa_convert_to_bf16(&h, &f, 1);
    return h;
}

Test(bf16, conversion_rounds_to_nearest_even) {
    cr_expect_eq(bf16_of(1.0f), 0x3F80);
    cr_expect_eq(bf16_of(-2.0f), 0xC000);
    cr_expect_eq(bf16_of(1.0f + 0x1p-8f), 0x3F80, "a tie rounds to the even 1.0");
    cr_expect_eq(bf16_of(1.0f + 3 * 0x1p-8f), 0x3F82, "a tie rounds to the even 1 + 2^-6");
    cr_expect_eq(bf16_of(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81, "above the tie rounds up");
    /* a long buffer: every element within half a bf16 ulp of its f32 value */
    enum { N = 5000 };
    static float x[N];
    static qa_bf16 h[N];
    trng r = trng_new(3);
    fill_normal(&r, x, N, 10.0);
    qa_convert_to_bf16(h, x, N);
    for (int i = 0; i < N; i++)
        cr_assert(fabs(bf16_value(h[i]) - x[i]) <= fabs(x[i]) * 0x1p-8, "x[%d] = %g -> %g", i, x[i], bf16_value(h[i]));
}

/* The one-value rounding the fused loops use gives the conversion's bits: ties, NaN, infinities,
 * overflow, subnormals (to a signed zero, as AVX512-BF16's conversion) and random magnitudes. */
Test(bf16, single_value_rounding_equals_the_conversion) {
    union { uint32_t i; float f; } u;
    const uint32_t special[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u, 0x3F808000u,
                                0x3F818000u, 0x3F808001u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u,
                                0x7FC00000u, 0x7F800001u, 0xFFC12345u};
    const uint16_t expect[] = {0x0000, 0x8000, 0x0000, 0x8000, 0x0080, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0xFF80,
                               0x7F80, 0xFF80, 0x7FC0, 0x7FC0, 0xFFC1};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        u.i = special[i];
        qa_bf16 h = qa_bf16_round(u.f);
        cr_expect_eq(h, expect[i], "%08x -> %04x, expected %04x", special[i], h, expect[i]);
        cr_expect_eq(bf16_of(u.f), expect[i], "the conversion: %08x -> %04x", special[i], bf16_of(u.f));
    }
    enum { N = 20000 };
    static float x[N];
    static qa_bf16 h[N];
    trng r = trng_new(31);
    for (int i = 0; i < N; i++) x[i] = (float)(trng_normal(&r) * pow(2.0, trng_unif(&r, -140, 120)));
    qa_convert_to_bf16(h, x, N);
    for (int i = 0; i < N; i++) cr_assert_eq(qa_bf16_round(x[i]), h[i], "x[%d] = %g", i, x[i]);
}

enum { M = 96, IN = 160, OUT = 72 };

static struct {
    float x[M * IN], W[OUT * IN], b[OUT], dy[M * OUT];
    float y32[M * OUT], y16[M * OUT];
    float dx32[M * IN], dx16[M * IN], dW32[OUT * IN], dW16[OUT * IN], db32[OUT], db16[OUT];
} L;

static void fill_layer(void) {
    trng r = trng_new(11);
    fill_normal(&r, L.x, M * IN, 1.0);
    fill_normal(&r, L.W, OUT * IN, 0.1);
    fill_normal(&r, L.b, OUT, 0.1);
    fill_normal(&r, L.dy, M * OUT, 1.0);
}

/* Every C[i,j] = sum_k A[i,k] B[k,j] (strided) within BF16_PRODUCT_BOUND * sum_k |A B|; returns
 * the relative Frobenius error of the bf16 result. */
static double check_product(const char *name, const float *c16, const float *c32, const float *A, long a_row,
                            long a_k, const float *B, long b_k, long b_col, int rows, int cols, int K) {
    double err2 = 0, ref2 = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double mag = 0;
            for (int k = 0; k < K; k++) mag += fabs((double)A[i * a_row + k * a_k] * B[k * b_k + j * b_col]);
            double d = (double)c16[i * cols + j] - c32[i * cols + j];
            cr_assert(fabs(d) <= BF16_PRODUCT_BOUND * mag, "%s[%d,%d]: bf16 %.7g vs f32 %.7g, bound %.3g", name, i, j,
                      c16[i * cols + j], c32[i * cols + j], BF16_PRODUCT_BOUND * mag);
            err2 += d * d;
            ref2 += (double)c32[i * cols + j] * c32[i * cols + j];
        }
    return sqrt(err2 / ref2);
}

/* The bf16 path really rounds (error above f32 noise) and stays near its typical size (u). */
static void expect_bf16_sized(const char *name, double rel) {
    cr_log_info("%s: relative Frobenius error of bf16 against f32 %.3g (u = 2^-8 = %.3g)", name, rel, BF16_U);
    cr_expect(rel > 0x1p-14 && rel < 2 * BF16_U, "%s: relative error %.3g", name, rel);
}

Test(bf16, linear_forward_and_backward_within_the_bf16_bound) {
    fill_layer();
    qa_linear_bf16 c;
    qa_linear_bf16_init(&c, M, IN, OUT);
    qa_linear_forward(L.y32, L.x, L.W, L.b, M, IN, OUT);
    qa_linear_forward_bf16(&c, L.y16, L.x, L.W, L.b, M);
    qa_linear_backward(L.dx32, L.dW32, L.db32, L.dy, L.x, L.W, M, IN, OUT);
    qa_linear_backward_bf16(&c, L.dx16, L.dW16, L.db16, L.dy, M);
    /* y - b = x W^T; dx = dy W; dW = dy^T x */
    float yb32[M * OUT], yb16[M * OUT];
    for (int i = 0; i < M * OUT; i++) { yb32[i] = L.y32[i] - L.b[i % OUT]; yb16[i] = L.y16[i] - L.b[i % OUT]; }
    expect_bf16_sized("y", check_product("y", yb16, yb32, L.x, IN, 1, L.W, 1, IN, M, OUT, IN));
    expect_bf16_sized("dx", check_product("dx", L.dx16, L.dx32, L.dy, OUT, 1, L.W, IN, 1, M, IN, OUT));
    expect_bf16_sized("dW", check_product("dW", L.dW16, L.dW32, L.dy, 1, OUT, L.x, IN, 1, OUT, IN, M));
    for (int o = 0; o < OUT; o++) cr_expect_eq(L.db16[o], L.db32[o], "db[%d]: f32 in both", o);
    qa_linear_bf16_free(&c);
}

Test(bf16, backward_accumulates_and_skips_null_grads) {
    fill_layer();
    qa_linear_bf16 c;
    qa_linear_bf16_init(&c, M, IN, OUT);
    qa_linear_forward_bf16(&c, L.y16, L.x, L.W, L.b, M);
    qa_linear_backward_bf16(&c, L.dx16, L.dW16, NULL, L.dy, M);
    static float dx2[M * IN], dW2[OUT * IN];
    for (int i = 0; i < M * IN; i++) dx2[i] = 1.0f;
    for (int i = 0; i < OUT * IN; i++) dW2[i] = -2.0f;
    qa_linear_backward_bf16(&c, dx2, dW2, NULL, L.dy, M);
    for (int i = 0; i < M * IN; i++) cr_assert_float_eq(dx2[i], L.dx16[i] + 1.0f, 1e-5, "dx[%d] += ", i);
    for (int i = 0; i < OUT * IN; i++) cr_assert_float_eq(dW2[i], L.dW16[i] - 2.0f, 1e-5, "dW[%d] += ", i);
    float db[OUT] = {0};
    qa_linear_backward_bf16(&c, NULL, NULL, db, L.dy, M);
    for (int o = 0; o < OUT; o++) {
        double s = 0;
        for (int m = 0; m < M; m++) s += L.dy[m * OUT + o];
        cr_assert_float_eq(db[o], s, 1e-4, "db[%d] alone", o);
    }
    cr_expect(qa_linear_bf16_bytes(&c) == 2 * ((size_t)M * IN + OUT * IN + M * OUT));
    qa_linear_bf16_free(&c);
}

/* ---- attention with bf16 operands ----
 * Each product is checked against naive double loops over the bf16 copies the kernel keeps (so
 * the only error left is the f32 accumulation), the copies against the rounding of their f32
 * sources, and the whole against f32 attention (bf16-sized error). */
enum { AB = 3, AT = 7, AC = 12, AH = 3, AHD = AC / AH };
#define ATT_N (AB * AT * AC)
#define ATT_P (AB * AH * AT * AT)
static struct {
    float q[ATT_N], k[ATT_N], v[ATT_N], dout[ATT_N];
    float out32[ATT_N], out16[ATT_N], p32[ATT_P], p16[ATT_P], scratch[2 * ATT_P];
    float dq32[ATT_N], dk32[ATT_N], dv32[ATT_N], dq16[ATT_N], dk16[ATT_N], dv16[ATT_N];
} A;

static size_t tok(int b, int t, int h, int c) { return ((size_t)b * AT + t) * AC + h * AHD + c; }
static size_t prob(int b, int h, int i, int j) { return (((size_t)b * AH + h) * AT + i) * AT + j; }

static void fill_attention(void) {
    trng r = trng_new(41);
    fill_unif(&r, A.q, ATT_N, -2, 2);
    fill_unif(&r, A.k, ATT_N, -2, 2);
    fill_unif(&r, A.v, ATT_N, -1, 1);
    fill_unif(&r, A.dout, ATT_N, -1, 1);
}

static double relative_error(const float *a, const float *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) { e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]); r += (double)ref[i] * ref[i]; }
    return sqrt(e / r);
}

/* f32 accumulation of K products: |error| <= K 2^-24 sum |a b| (plus exp_fast's 2e-7 in P) */
#define F32_ACC(K, mag) ((K) * 0x1p-24 * (mag) + 1e-7)

/* Row (b, h, i) of P = softmax(q16 k16^T / sqrt(hd)) from the kernel's copies, in double. */
static void reference_probs(const qa_attention_bf16 *C, int b, int h, int i, double *p) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < AT; j++) {
        double dot = 0;
        for (int c = 0; c < AHD; c++) dot += (double)bf16_value(C->q[tok(b, i, h, c)]) * bf16_value(C->k[tok(b, j, h, c)]);
        p[j] = dot / sqrt((double)AHD);
        mx = fmax(mx, p[j]);
    }
    for (int j = 0; j < AT; j++) sum += (p[j] = exp(p[j] - mx));
    for (int j = 0; j < AT; j++) p[j] /= sum;
}

Test(bf16, attention_forward_products_use_the_bf16_copies) {
    fill_attention();
    qa_attention_bf16 C = {0};
    qa_attention_forward_bf16(&C, A.out16, A.p16, A.q, A.k, A.v, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) {
        cr_assert_eq(C.q[i], qa_bf16_round(A.q[i]), "q copy [%d]", i);
        cr_assert_eq(C.k[i], qa_bf16_round(A.k[i]), "k copy [%d]", i);
        cr_assert_eq(C.v[i], qa_bf16_round(A.v[i]), "v copy [%d]", i);
    }
    for (int i = 0; i < ATT_P; i++) cr_assert_eq(C.p[i], qa_bf16_round(A.p16[i]), "P copy [%d]", i);
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int i = 0; i < AT; i++) {
                double pr[AT];
                reference_probs(&C, b, h, i, pr);
                for (int j = 0; j < AT; j++)
                    cr_assert(fabs(A.p16[prob(b, h, i, j)] - pr[j]) < 1e-5, "P[%d,%d,%d,%d] = %.7g vs %.7g", b, h, i, j,
                              A.p16[prob(b, h, i, j)], pr[j]);
                /* out = P16 v16 */
                for (int c = 0; c < AHD; c++) {
                    double o = 0, mag = 0;
                    for (int j = 0; j < AT; j++) {
                        double t = (double)bf16_value(C.p[prob(b, h, i, j)]) * bf16_value(C.v[tok(b, j, h, c)]);
                        o += t;
                        mag += fabs(t);
                    }
                    cr_assert(fabs(A.out16[tok(b, i, h, c)] - o) <= F32_ACC(AT, mag), "out[%d,%d,%d,%d] = %.7g vs %.7g", b,
                              i, h, c, A.out16[tok(b, i, h, c)], o);
                }
            }
    /* against f32 attention: two bf16 roundings in sequence (q k^T, then P v) */
    qa_attention_forward(A.out32, A.p32, A.q, A.k, A.v, AB, AT, AC, AH);
    double rel = relative_error(A.out16, A.out32, ATT_N);
    cr_log_info("attention out: relative error of bf16 against f32 %.3g", rel);
    cr_expect(rel > 0x1p-14 && rel < 4 * BF16_U, "out: relative error %.3g", rel);
    qa_attention_bf16_free(&C);
}

Test(bf16, attention_backward_products_and_accumulation) {
    fill_attention();
    qa_attention_bf16 C = {0};
    qa_attention_forward_bf16(&C, A.out16, A.p16, A.q, A.k, A.v, AB, AT, AC, AH);
    /* dq, dk, dv start at 1: the backward adds */
    for (int i = 0; i < ATT_N; i++) A.dq16[i] = A.dk16[i] = A.dv16[i] = 1.0f;
    qa_attention_backward_bf16(&C, A.dq16, A.dk16, A.dv16, 1, A.dout, A.p16, A.scratch, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) cr_assert_eq(C.dout[i], qa_bf16_round(A.dout[i]), "dout copy [%d]", i);
    const double scale = 1.0 / sqrt((double)AHD);
    static double ds[ATT_P];
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int i = 0; i < AT; i++) {
                /* dP = dout16 v16^T; dS = P (dP - rowsum(dP P)) in double; the kernel's bf16 dS
                 * within one bf16 step of it (its f32 dP may round across a boundary) */
                double dp[AT], dot = 0;
                for (int j = 0; j < AT; j++) {
                    dp[j] = 0;
                    for (int c = 0; c < AHD; c++)
                        dp[j] += (double)bf16_value(C.dout[tok(b, i, h, c)]) * bf16_value(C.v[tok(b, j, h, c)]);
                    dot += dp[j] * A.p16[prob(b, h, i, j)];
                }
                for (int j = 0; j < AT; j++) {
                    size_t ij = prob(b, h, i, j);
                    ds[ij] = A.p16[ij] * (dp[j] - dot);
                    double got = bf16_value(C.ds[ij]);
                    cr_assert(fabs(got - ds[ij]) <= 2 * BF16_U * fabs(ds[ij]) + 1e-6, "dS[%zu] = %.7g vs %.7g", ij, got, ds[ij]);
                }
            }
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int t = 0; t < AT; t++)
                for (int c = 0; c < AHD; c++) {
                    /* dv[t] = sum_i P16[i,t] dout16[i]; dq[t] = scale sum_j dS16[t,j] k16[j]; dk[t] = scale sum_i dS16[i,t] q16[i] */
                    double dv = 0, dq = 0, dk = 0, mv = 0, mq = 0, mk = 0;
                    for (int i = 0; i < AT; i++) {
                        double a = (double)bf16_value(C.p[prob(b, h, i, t)]) * bf16_value(C.dout[tok(b, i, h, c)]);
                        double e = scale * bf16_value(C.ds[prob(b, h, t, i)]) * bf16_value(C.k[tok(b, i, h, c)]);
                        double f = scale * bf16_value(C.ds[prob(b, h, i, t)]) * bf16_value(C.q[tok(b, i, h, c)]);
                        dv += a; dq += e; dk += f;
                        mv += fabs(a); mq += fabs(e); mk += fabs(f);
                    }
                    size_t x = tok(b, t, h, c);
                    cr_assert(fabs(A.dv16[x] - 1.0 - dv) <= F32_ACC(AT, mv) + 0x1p-23, "dv[%zu] = %.7g vs 1 + %.7g", x, A.dv16[x], dv);
                    cr_assert(fabs(A.dq16[x] - 1.0 - dq) <= F32_ACC(AT, mq) + 0x1p-23, "dq[%zu] = %.7g vs 1 + %.7g", x, A.dq16[x], dq);
                    cr_assert(fabs(A.dk16[x] - 1.0 - dk) <= F32_ACC(AT, mk) + 0x1p-23, "dk[%zu] = %.7g vs 1 + %.7g", x, A.dk16[x], dk);
                }
    /* against f32 attention's gradients (both from 1) */
    qa_attention_forward(A.out32, A.p32, A.q, A.k, A.v, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) A.dq32[i] = A.dk32[i] = A.dv32[i] = 1.0f;
    qa_attention_backward(A.dq32, A.dk32, A.dv32, A.dout, A.p32, A.q, A.k, A.v, A.scratch, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) { A.dq32[i] -= 1; A.dk32[i] -= 1; A.dv32[i] -= 1; A.dq16[i] -= 1; A.dk16[i] -= 1; A.dv16[i] -= 1; }
    const char *names[3] = {"dq", "dk", "dv"};
    const float *g16[3] = {A.dq16, A.dk16, A.dv16}, *g32[3] = {A.dq32, A.dk32, A.dv32};
    for (int g = 0; g < 3; g++) {
        double rel = relative_error(g16[g], g32[g], ATT_N);
        cr_log_info("attention %s: relative error of bf16 against f32 %.3g", names[g], rel);
        /* dq, dk pass through three roundings (dP's operands, dS, then k or q) */
        cr_expect(rel > 0x1p-14 && rel < 6 * BF16_U, "%s: relative error %.3g", names[g], rel);
    }
    cr_expect(qa_attention_bf16_bytes(&C) == 2 * (4 * (size_t)ATT_N + 2 * (size_t)ATT_P));
    qa_attention_bf16_free(&C);
}

Test(bf16, attention_backward_writes_what_it_adds_to_zeros) {
    fill_attention();
    qa_attention_bf16 C = {0};
    qa_attention_forward_bf16(&C, A.out16, A.p16, A.q, A.k, A.v, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) A.dq32[i] = A.dk32[i] = A.dv32[i] = 0.0f;
    qa_attention_backward_bf16(&C, A.dq32, A.dk32, A.dv32, 1, A.dout, A.p16, A.scratch, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) A.dq16[i] = A.dk16[i] = A.dv16[i] = 1e30f; /* stale values, overwritten */
    qa_attention_backward_bf16(&C, A.dq16, A.dk16, A.dv16, 0, A.dout, A.p16, A.scratch, AB, AT, AC, AH);
    for (int i = 0; i < ATT_N; i++) {
        cr_assert_eq(A.dq16[i], A.dq32[i], "dq[%d]", i);
        cr_assert_eq(A.dk16[i], A.dk32[i], "dk[%d]", i);
        cr_assert_eq(A.dv16[i], A.dv32[i], "dv[%d]", i);
    }
    qa_attention_bf16_free(&C);
}

/* ---- the elementwise passes of the bf16 training step that also write a bf16 copy: the floats
 * of the f32 kernels (or of the expression, written out here), and the copy their rounding ---- */

enum { EB = 3, ET = 37, EC = 24, ES = 6 * EC, EN = EB * ET * EC };

static struct {
    float x[EN], cond[EB * ES], dy[EN], y[EN];
    float a32[EN], b32[EN], a16[EN], b16[EN], mean32[EB * ET], rstd32[EB * ET], mean16[EB * ET], rstd16[EB * ET];
    float d32[EB * ES], d16[EB * ES];
    qa_bf16 h[EN];
} E;

static void fill_elementwise(void) {
    trng r = trng_new(61);
    fill_normal(&r, E.x, EN, 1.5);
    fill_normal(&r, E.cond, EB * ES, 0.5);
    fill_normal(&r, E.dy, EN, 1.0);
    fill_normal(&r, E.y, EN, 1.0);
}

static void expect_copy(const qa_bf16 *h, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) cr_assert_eq(h[i], qa_bf16_round(f[i]), "bf16 copy [%zu] of %g", i, f[i]);
}

Test(bf16, layernorm_modulate_pass_equals_the_two_kernels) {
    fill_elementwise();
    const float *shift = E.cond + EC, *scale = E.cond + 3 * EC;
    qa_layernorm_forward(E.a32, E.mean32, E.rstd32, E.x, EB * ET, EC);
    qa_modulate_forward(E.b32, E.a32, shift, scale, ES, EB, ET, EC);
    for (int with_copy = 0; with_copy < 2; with_copy++) {
        qa_layernorm_modulate_forward_bf16(E.a16, E.mean16, E.rstd16, E.b16, with_copy ? E.h : NULL, E.x, shift, scale,
                                           ES, EB, ET, EC);
        cr_assert(memcmp(E.a16, E.a32, sizeof E.a32) == 0, "ln differs");
        cr_assert(memcmp(E.b16, E.b32, sizeof E.b32) == 0, "h differs");
        cr_assert(memcmp(E.mean16, E.mean32, sizeof E.mean32) == 0 && memcmp(E.rstd16, E.rstd32, sizeof E.rstd32) == 0);
    }
    expect_copy(E.h, E.b32, EN);
}

Test(bf16, gated_residual_backward_writes_dy_and_its_copy) {
    fill_elementwise();
    const float *gate = E.cond + 2 * EC;
    for (int i = 0; i < EB * ES; i++) E.d32[i] = E.d16[i] = 0.25f;
    for (int i = 0; i < EN; i++) { E.a32[i] = 0.0f; E.a16[i] = 1e30f; }
    qa_gated_residual_backward(E.a32, E.d32 + 2 * EC, E.dy, E.y, gate, ES, EB, ET, EC);
    qa_gated_residual_backward_bf16(E.a16, E.h, E.d16 + 2 * EC, E.dy, E.y, gate, ES, EB, ET, EC);
    for (int b = 0; b < EB; b++)
        for (int t = 0; t < ET; t++)
            for (int c = 0; c < EC; c++) {
                size_t i = ((size_t)b * ET + t) * EC + c;
                cr_assert_eq(E.a16[i], gate[b * ES + c] * E.dy[i], "dy[%zu]", i);
            }
    cr_assert(memcmp(E.d16, E.d32, sizeof E.d32) == 0, "dgate differs");
    expect_copy(E.h, E.a16, EN);
}

Test(bf16, modulate_backward_writes_what_it_adds_to_zeros) {
    fill_elementwise();
    const float *scale = E.cond + 4 * EC;
    for (int i = 0; i < EB * ES; i++) E.d32[i] = E.d16[i] = -0.5f;
    for (int i = 0; i < EN; i++) { E.a32[i] = 0.0f; E.a16[i] = 1e30f; }
    qa_modulate_backward(E.a32, E.d32 + 3 * EC, E.d32 + 4 * EC, E.dy, E.x, scale, ES, EB, ET, EC);
    qa_modulate_backward_write(E.a16, E.d16 + 3 * EC, E.d16 + 4 * EC, E.dy, E.x, scale, ES, EB, ET, EC);
    cr_assert(memcmp(E.a16, E.a32, sizeof E.a32) == 0, "dx differs");
    cr_assert(memcmp(E.d16, E.d32, sizeof E.d32) == 0, "dshift, dscale differ");
}

Test(bf16, gelu_passes_equal_the_f32_kernels) {
    enum { GN = 3 * 4096 + 77 }; /* more than one chunk, and a partial one */
    static float x[GN], y32[GN], sig[GN], d32[GN], d16[GN], e16[GN];
    static qa_bf16 h[GN];
    trng r = trng_new(71);
    fill_normal(&r, x, GN, 2.0);
    fill_normal(&r, d32, GN, 1.0);
    memcpy(d16, d32, sizeof d32);
    memcpy(e16, d32, sizeof d32);
    qa_gelu_forward(y32, x, GN);
    qa_gelu_forward_bf16(sig, h, x, GN);
    expect_copy(h, y32, GN);
    for (int i = 0; i < GN; i++) /* the saved factor: GELU(x) = x s, s in [0, 1] (rounded) */
        cr_assert(x[i] * sig[i] == y32[i] && sig[i] >= 0.f && sig[i] <= 1.f, "s[%d] = %g", i, sig[i]);
    qa_gelu_backward_in_place(d32, x, GN);
    qa_gelu_backward_bf16(d16, h, x, sig, GN);
    cr_assert(memcmp(d16, d32, sizeof d32) == 0, "GELU backward from the saved factor differs");
    expect_copy(h, d32, GN);
    qa_gelu_backward_bf16(e16, NULL, x, NULL, GN);
    cr_assert(memcmp(e16, d32, sizeof d32) == 0, "GELU backward computing the factor again differs");
}

/* The bias gradient's column sums, split over threads, are the row-order sums of one thread, bit
 * for bit (db does not depend on the thread count), for column counts that do not divide evenly. */
Test(bf16, bias_gradient_is_the_row_order_sum_for_any_thread_count) {
    enum { BM = 37, BIN = 8, BOUT = 83 };
    static float dy[BM * BOUT], x[BM * BIN], W[BOUT * BIN];
    trng r = trng_new(51);
    fill_normal(&r, dy, BM * BOUT, 1.0);
    float ref[BOUT];
    for (int o = 0; o < BOUT; o++) {
        ref[o] = 0.25f;
        for (int m = 0; m < BM; m++) ref[o] += dy[m * BOUT + o];
    }
    for (int threads = 1; threads <= 4; threads++) {
        omp_set_num_threads(threads);
        float db[BOUT];
        for (int o = 0; o < BOUT; o++) db[o] = 0.25f;
        qa_linear_backward(NULL, NULL, db, dy, x, W, BM, BIN, BOUT);
        cr_expect(memcmp(db, ref, sizeof db) == 0, "%d threads: db differs from the row-order sums", threads);
    }
}

Test(bf16, dtype_names_round_trip) {
    for (int d = 0; d < QA_DTYPE_COUNT; d++) {
        qa_dtype back;
        cr_expect_eq(qa_dtype_parse(qa_dtype_name((qa_dtype)d), &back), QA_OK);
        cr_expect_eq((int)back, d);
    }
    qa_dtype dt = QA_DTYPE_F32;
    cr_expect_eq(qa_dtype_parse("fp16", &dt), QA_ERR_INPUT);
}

/* ---- a short training run of a tiny denoiser, f32 against bf16 ---- */

static const qa_dit_config TINY = {28, 4, 32, 2, 2, 2, 10, 2};
enum { BATCH = 16, D = 28 * 28, STEPS = 80, TAIL = 20, N_PROTO = 4 };

/* Loss per step of STEPS AdamW steps from the same initial weights and the same batches. */
static void train_tiny(qa_dtype dtype, float *losses) {
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &TINY, BATCH, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(&m, 4);
    qa_dit_set_dtype(&m, dtype);
    qa_param p = {"all", m.params, m.grads, m.n_params, 1.0f};
    qa_adamw opt;
    qa_adamw_init(&opt, &p, 1, 0.0f, 1.0f);
    qa_schedule sched;
    qa_schedule_linear(&sched, 1000, 1e-4f, 0.02f);
    static float proto[N_PROTO * D], x0[BATCH * D], xt[BATCH * D], eps[BATCH * D], pred[BATCH * D], deps[BATCH * D];
    float t[BATCH];
    int y[BATCH];
    trng r = trng_new(21);
    fill_unif(&r, proto, N_PROTO * D, -1, 1); /* four "classes" of one fixed image each */
    qa_rng *noise = qa_rng_new(77);
    for (int step = 0; step < STEPS; step++) {
        for (int b = 0; b < BATCH; b++) {
            y[b] = (step + b) % N_PROTO;
            memcpy(x0 + b * D, proto + y[b] * D, sizeof(float) * D);
        }
        qa_diffusion_noise(&sched, noise, x0, BATCH, D, xt, eps, t);
        qa_dit_zero_grads(&m);
        qa_dit_forward(&m, xt, t, y, BATCH, pred);
        losses[step] = qa_mse_loss(pred, eps, (size_t)BATCH * D, deps);
        qa_dit_backward(&m, deps);
        qa_adamw_step(&opt, &p, 1, 3e-3f);
    }
    qa_rng_free(noise);
    qa_adamw_free(&opt);
    qa_dit_free(&m);
}

static double tail_mean(const float *losses) {
    double s = 0;
    for (int i = STEPS - TAIL; i < STEPS; i++) s += losses[i];
    return s / TAIL;
}

Test(bf16, tiny_training_run_reaches_the_f32_loss, .timeout = 120) {
    static float l32[STEPS], l16[STEPS];
    train_tiny(QA_DTYPE_F32, l32);
    train_tiny(QA_DTYPE_BF16, l16);
    double a = tail_mean(l32), b = tail_mean(l16);
    cr_log_info("tiny DiT, %d steps: first loss f32 %.4f bf16 %.4f; mean of the last %d: f32 %.4f bf16 %.4f", STEPS,
                l32[0], l16[0], TAIL, a, b);
    /* the same initial weights and batch: the first losses differ by bf16 rounding only */
    cr_expect(close_rel(l16[0], l32[0], 0.02, 0), "first loss: bf16 %.5f vs f32 %.5f", l16[0], l32[0]);
    cr_expect(a < 0.6 * l32[0], "f32 did not learn: %.4f -> %.4f", l32[0], a);
    /* stated tolerance: the bf16 run ends within 5% of the f32 run's loss */
    cr_expect(close_rel(b, a, 0.05, 0), "bf16 tail loss %.4f vs f32 %.4f (5%% tolerance)", b, a);
}

Test(bf16, model_default_is_f32_and_switching_back_restores_it) {
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &TINY, 2, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(&m, 5);
    trng r = trng_new(8);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(0.05 * trng_normal(&r));
    static float x[2 * D], e32[2 * D], e16[2 * D], again[2 * D];
    fill_normal(&r, x, 2 * D, 1.0);
    float t[2] = {10.f, 700.f};
    int y[2] = {1, 3};
    size_t bytes_f32 = qa_dit_activation_bytes(&m);
    for (int i = 0; i < m.n_lin; i++) cr_expect_eq(m.lin[i].dtype, QA_DTYPE_F32, "%s", m.lin[i].name);
    qa_dit_forward(&m, x, t, y, 2, e32);
    qa_dit_set_dtype(&m, QA_DTYPE_BF16);
    cr_expect(qa_dit_activation_bytes(&m) > bytes_f32, "bf16 copies are counted");
    qa_dit_forward(&m, x, t, y, 2, e16);
    double diff = 0, ref = 0;
    for (int i = 0; i < 2 * D; i++) { diff += fabs(e16[i] - e32[i]); ref += fabs(e32[i]); }
    cr_expect(diff > 0 && diff < 0.05 * ref, "bf16 forward: mean |diff| / mean |eps| = %.3g", diff / ref);
    qa_dit_set_dtype(&m, QA_DTYPE_F32);
    qa_dit_forward(&m, x, t, y, 2, again);
    cr_expect(memcmp(again, e32, sizeof again) == 0, "f32 again gives the f32 numbers bit for bit");
    qa_dit_free(&m);
}

/* k and v read the bf16 copy of the input q made: their weight gradients (dW = dY^T x) must still
 * be the gradients of their own input, as in f32. */
Test(bf16, model_gradients_match_f32_for_every_tensor) {
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &TINY, 4, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(&m, 6);
    trng r = trng_new(9);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(0.05 * trng_normal(&r));
    static float x[4 * D], target[4 * D], pred[4 * D], deps[4 * D];
    fill_normal(&r, x, 4 * D, 1.0);
    fill_normal(&r, target, 4 * D, 1.0);
    float t[4] = {3.f, 250.f, 600.f, 990.f};
    int y[4] = {0, 4, 9, 12};
    float *g32 = malloc(sizeof(float) * m.n_params);
    for (int pass = 0; pass < 2; pass++) {
        qa_dit_set_dtype(&m, pass ? QA_DTYPE_BF16 : QA_DTYPE_F32);
        qa_dit_zero_grads(&m);
        qa_dit_forward(&m, x, t, y, 4, pred);
        qa_mse_loss(pred, target, 4 * D, deps);
        qa_dit_backward(&m, deps);
        if (!pass) memcpy(g32, m.grads, sizeof(float) * m.n_params);
    }
    /* Tensors whose true gradient is zero (the key bias: softmax ignores a shift q.b shared by a
     * row's scores) hold round-off only; they are measured against 1e-3 of the largest norm. */
    double largest = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        double r2 = 0;
        for (size_t j = m.tensors[i].offset; j < m.tensors[i].offset + m.tensors[i].n; j++) r2 += (double)g32[j] * g32[j];
        largest = fmax(largest, sqrt(r2));
    }
    for (int i = 0; i < m.n_tensors; i++) {
        const qa_tensor_info *ti = &m.tensors[i];
        double d2 = 0, r2 = 0;
        for (size_t j = ti->offset; j < ti->offset + ti->n; j++) {
            d2 += ((double)m.grads[j] - g32[j]) * ((double)m.grads[j] - g32[j]);
            r2 += (double)g32[j] * g32[j];
        }
        double scale = fmax(sqrt(r2), 1e-3 * largest);
        /* bf16 rounding through a few layers: a few u = 2^-8, far below a wrong input (~100%) */
        cr_expect(sqrt(d2) < 0.03 * scale, "%s: bf16 gradient off by %.3g of %.3g", ti->name, sqrt(d2), scale);
    }
    free(g32);
    qa_dit_free(&m);
}
