/* oneDNN backend: every matmul form against a naive double-precision triple loop. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/backend.h"

/* ref[M,N] = op(A) op(B) (+ C0) (+ bias), all in double. */
static void naive_mm(double *ref, int M, int N, int K, const float *A, int tA, const float *B, int tB,
                     const float *C0, const float *bias) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = tA ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                double b = tB ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
                s += a * b;
            }
            if (C0) s += C0[(size_t)i * N + j];
            if (bias) s += bias[j];
            ref[(size_t)i * N + j] = s;
        }
}

static void check_close(const float *got, const double *ref, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]), "%s: element %zu: got %.8g, expected %.8g",
                  what, i, got[i], ref[i]);
}

static void run_combo(int tA, int tB, int accumulate, int with_bias, uint64_t seed) {
    const int M = 5, N = 3, K = 7;
    trng r = trng_new(seed);
    float A[35], B[21], C[15], C0[15], bias[3];
    double ref[15];
    fill_unif(&r, A, 35, -1, 1);
    fill_unif(&r, B, 21, -1, 1);
    fill_unif(&r, C0, 15, -1, 1);
    fill_unif(&r, bias, 3, -1, 1);
    memcpy(C, C0, sizeof C);
    qa_matmul(M, N, K, A, tA, B, tB, C, accumulate, with_bias ? bias : NULL);
    naive_mm(ref, M, N, K, A, tA, B, tB, accumulate ? C0 : NULL, with_bias ? bias : NULL);
    char what[96];
    snprintf(what, sizeof what, "matmul tA=%d tB=%d acc=%d bias=%d", tA, tB, accumulate, with_bias);
    check_close(C, ref, 15, what);
}

Test(backend, matmul_nn) { run_combo(0, 0, 0, 0, 1); }
Test(backend, matmul_tn) { run_combo(1, 0, 0, 0, 2); }
Test(backend, matmul_nt) { run_combo(0, 1, 0, 0, 3); }
Test(backend, matmul_tt) { run_combo(1, 1, 0, 0, 4); }

Test(backend, matmul_accumulate_adds_to_c) {
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) run_combo(tA, tB, 1, 0, 10 + 2 * tA + tB);
}

Test(backend, matmul_bias_broadcast_over_rows) {
    run_combo(0, 1, 0, 1, 20);
    run_combo(1, 0, 0, 1, 21);
    run_combo(0, 1, 1, 1, 22); /* bias and accumulate together */
}

Test(backend, matmul_without_accumulate_overwrites) {
    /* C starts as garbage (NaN): without accumulate, it must be fully overwritten */
    const int M = 4, N = 6, K = 3;
    trng r = trng_new(30);
    float A[12], B[18], C[24];
    double ref[24];
    fill_unif(&r, A, 12, -2, 2);
    fill_unif(&r, B, 18, -2, 2);
    for (int i = 0; i < 24; i++) C[i] = NAN;
    qa_matmul(M, N, K, A, 0, B, 0, C, 0, NULL);
    naive_mm(ref, M, N, K, A, 0, B, 0, NULL, NULL);
    check_close(C, ref, 24, "overwrite");
}

Test(backend, linear_layer_form_from_header) {
    /* y = x W^T + b is qa_matmul(M, out, in, x, 0, W, 1, y, 0, b) */
    const int M = 3, in = 5, out = 4;
    trng r = trng_new(31);
    float x[15], W[20], b[4], y[12];
    fill_unif(&r, x, 15, -1, 1);
    fill_unif(&r, W, 20, -1, 1);
    fill_unif(&r, b, 4, -1, 1);
    qa_matmul(M, out, in, x, 0, W, 1, y, 0, b);
    for (int i = 0; i < M; i++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int k = 0; k < in; k++) s += (double)x[i * in + k] * W[o * in + k];
            cr_assert_float_eq(y[i * out + o], s, 1e-5, "y[%d,%d]", i, o);
        }
}

/* element of a strided 4-D view */
static double at(const qa_view *v, const float *p, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int64_t d0 = v->dims[0] == 1 ? 0 : i0, d1 = v->dims[1] == 1 ? 0 : i1; /* batch broadcast */
    return p[d0 * v->strides[0] + d1 * v->strides[1] + i2 * v->strides[2] + i3 * v->strides[3]];
}

/* the head views of nn.c: a [B,T,C] buffer seen as [B,H,T,hd] (or its transpose [B,H,hd,T]) */
static qa_view head_view(int B, int T, int C, int H, int transposed) {
    int hd = C / H;
    qa_view v;
    v.dims[0] = B; v.dims[1] = H;
    v.strides[0] = (int64_t)T * C; v.strides[1] = hd;
    if (!transposed) { v.dims[2] = T; v.dims[3] = hd; v.strides[2] = C; v.strides[3] = 1; }
    else { v.dims[2] = hd; v.dims[3] = T; v.strides[2] = 1; v.strides[3] = C; }
    return v;
}

Test(backend, matmul_view_batched_head_views_qkT) {
    /* S[b,h] = alpha q_h k_h^T : exactly what attention_forward runs */
    const int B = 2, T = 5, C = 6, H = 3, hd = C / H;
    trng r = trng_new(40);
    float q[60], k[60], S[2 * 3 * 5 * 5];
    fill_unif(&r, q, 60, -1, 1);
    fill_unif(&r, k, 60, -1, 1);
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1);
    qa_view vs = {{B, H, T, T}, {(int64_t)H * T * T, (int64_t)T * T, T, 1}};
    float alpha = 0.37f;
    qa_matmul_view(&vq, q, &vkt, k, &vs, S, alpha, 0, NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int c = 0; c < hd; c++)
                        s += (double)q[(b * T + i) * C + h * hd + c] * k[(b * T + j) * C + h * hd + c];
                    s *= alpha;
                    float got = S[((b * H + h) * T + i) * T + j];
                    cr_assert_float_eq(got, s, 1e-5, "S[%d,%d,%d,%d] got %g want %g", b, h, i, j, got, s);
                }
}

Test(backend, matmul_view_into_head_view_with_accumulate) {
    /* out_h += alpha P_h^T v_h written back into a [B,T,C] buffer (attention backward's dv/dk) */
    const int B = 2, T = 4, C = 6, H = 2;
    trng r = trng_new(41);
    float P[2 * 2 * 4 * 4], v[48], out[48], out0[48];
    fill_unif(&r, P, 64, 0, 1);
    fill_unif(&r, v, 48, -1, 1);
    fill_unif(&r, out0, 48, -1, 1);
    memcpy(out, out0, sizeof out);
    qa_view vpt = {{B, H, T, T}, {(int64_t)H * T * T, (int64_t)T * T, 1, T}}; /* transposed */
    qa_view vv = head_view(B, T, C, H, 0), vo = head_view(B, T, C, H, 0);
    float alpha = 0.5f;
    qa_matmul_view(&vpt, P, &vv, v, &vo, out, alpha, 1, NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++)
                for (int c = 0; c < C / H; c++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) s += at(&vpt, P, b, h, i, j) * at(&vv, v, b, h, j, c);
                    size_t off = (size_t)(b * T + i) * C + h * (C / H) + c;
                    double want = out0[off] + alpha * s;
                    cr_assert_float_eq(out[off], want, 1e-5, "out[%d,%d,%d,%d]", b, h, i, c);
                }
}

Test(backend, matmul_view_batch_broadcast) {
    /* A [2,3,M,K] times a shared B [1,1,K,N] */
    const int M = 3, K = 4, N = 5;
    trng r = trng_new(42);
    float A[2 * 3 * 12], Bm[20], Cm[2 * 3 * 15];
    fill_unif(&r, A, 72, -1, 1);
    fill_unif(&r, Bm, 20, -1, 1);
    qa_view va = {{2, 3, M, K}, {3 * M * K, M * K, K, 1}};
    qa_view vb = {{1, 1, K, N}, {K * N, K * N, N, 1}};
    qa_view vc = {{2, 3, M, N}, {3 * M * N, M * N, N, 1}};
    qa_matmul_view(&va, A, &vb, Bm, &vc, Cm, 1.0f, 0, NULL);
    for (int b0 = 0; b0 < 2; b0++)
        for (int b1 = 0; b1 < 3; b1++)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += at(&va, A, b0, b1, i, k) * at(&vb, Bm, b0, b1, k, j);
                    cr_assert_float_eq(at(&vc, Cm, b0, b1, i, j), s, 1e-5, "C[%d,%d,%d,%d]", b0, b1, i, j);
                }
}

Test(backend, matmul_repeated_calls_reuse_primitive_correctly) {
    /* same shape, new data: the cached primitive must use the new data handles */
    const int M = 5, N = 3, K = 7;
    trng r = trng_new(50);
    for (int rep = 0; rep < 3; rep++) {
        float A[35], B[21], C[15];
        double ref[15];
        fill_unif(&r, A, 35, -1, 1);
        fill_unif(&r, B, 21, -1, 1);
        qa_matmul(M, N, K, A, 0, B, 0, C, 0, NULL);
        naive_mm(ref, M, N, K, A, 0, B, 0, NULL, NULL);
        check_close(C, ref, 15, "repeated");
    }
}

Test(backend, u8s8_matmul_matches_integer_reference) {
    const int M = 3, N = 5, K = 9;
    trng r = trng_new(60);
    uint8_t A[27];
    int8_t B[45];
    float scale[5], C[15];
    for (int i = 0; i < 27; i++) A[i] = (uint8_t)(trng_next(&r) % 256);
    for (int i = 0; i < 45; i++) B[i] = (int8_t)((int)(trng_next(&r) % 255) - 127);
    for (int i = 0; i < 5; i++) scale[i] = (float)trng_unif(&r, 0.001, 0.01);
    cr_assert_eq(qa_matmul_u8s8(M, N, K, A, B, scale, C), 0);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            long acc = 0;
            for (int k = 0; k < K; k++) acc += (long)A[i * K + k] * B[n * K + k];
            double want = (double)scale[n] * acc;
            cr_assert(fabs(C[i * N + n] - want) <= 1e-5 * fabs(want) + 1e-6, "C[%d,%d] got %g want %g", i, n,
                      C[i * N + n], want);
        }
}

/* Regression: the u8s8 primitive cache once keyed on the scale pointer and the first 4 scale
 * values, so changing a later column's scale in the same buffer reused a stale primitive. */
Test(backend, u8s8_scale_change_beyond_fourth_column_is_honoured) {
    const int M = 2, N = 6, K = 4;
    uint8_t A[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int8_t B[24];
    for (int i = 0; i < 24; i++) B[i] = (int8_t)(i % 7 - 3);
    float scale[6] = {1, 1, 1, 1, 1, 1}, C[12];
    cr_assert_eq(qa_matmul_u8s8(M, N, K, A, B, scale, C), 0);
    scale[5] = 2.0f; /* same buffer, first four scales unchanged */
    cr_assert_eq(qa_matmul_u8s8(M, N, K, A, B, scale, C), 0);
    for (int i = 0; i < M; i++) {
        long acc = 0;
        for (int k = 0; k < K; k++) acc += (long)A[i * K + k] * B[5 * K + k];
        cr_expect_float_eq(C[i * N + 5], 2.0 * acc, 1e-4,
                           "column 5 used a stale scale: got %g, want %g", C[i * N + 5],
                           2.0 * acc);
    }
}

Test(backend, kernel_names_and_version_reported) {
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1}, C[4];
    qa_matmul(2, 2, 2, A, 0, B, 0, C, 0, NULL);
    char buf[512];
    qa_backend_kernels(buf, sizeof buf);
    cr_assert(strlen(buf) > 0, "no kernel names recorded");
    char v[64];
    cr_assert(strstr(qa_backend_version(v, sizeof v), "oneDNN") != NULL, "version '%s'", v);
    cr_assert_float_eq(C[0], 1.0, 1e-6);
    cr_assert_float_eq(C[3], 4.0, 1e-6);
}

/* The u8 x s8 primitive is identified by the values of its scales, not their address: a new
 * buffer with the same scales (every run of a sweep allocates its own) reuses the primitive;
 * and a cache filled by many shapes starts over instead of failing. */
Test(backend, u8s8_cache_keys_on_scale_values_and_survives_many_shapes) {
    enum { M = 4, N = 3, K = 8 };
    uint8_t A[M * K];
    int8_t Bw[N * K];
    for (int i = 0; i < M * K; i++) A[i] = (uint8_t)(i * 7 % 256);
    for (int i = 0; i < N * K; i++) Bw[i] = (int8_t)(i * 5 % 200 - 100);
    float *s1 = malloc(sizeof(float) * N), *s2 = malloc(sizeof(float) * N), C1[M * N], C2[M * N];
    for (int j = 0; j < N; j++) s1[j] = s2[j] = 1.0f;
    cr_assert_eq(qa_matmul_u8s8(M, N, K, A, Bw, s1, C1), 0);
    int before = qa_backend_cached();
    cr_assert_eq(qa_matmul_u8s8(M, N, K, A, Bw, s2, C2), 0);
    cr_expect_eq(qa_backend_cached(), before, "same scale values at another address made a new primitive");
    cr_expect(memcmp(C1, C2, sizeof C1) == 0);
    /* more distinct shapes (M = 1 .. 600) than the cache holds (512) */
    enum { R = 600 };
    float *a = malloc(sizeof(float) * R * 4), b[4 * 4], *c = malloc(sizeof(float) * R * 4);
    for (int i = 0; i < R * 4; i++) a[i] = 0.01f * (float)(i % 97);
    for (int i = 0; i < 16; i++) b[i] = 1.0f;
    for (int rows = 1; rows <= R; rows++) qa_matmul(rows, 4, 4, a, 0, b, 0, c, 0, NULL);
    cr_expect(qa_backend_cached() < R, "the cache started over");
    for (int r = 0; r < R; r += 37) {
        float want = a[r * 4] + a[r * 4 + 1] + a[r * 4 + 2] + a[r * 4 + 3];
        cr_expect_float_eq(c[r * 4], want, 1e-5f, "row %d", r);
    }
    free(a);
    free(c);
    free(s1);
    free(s2);
}
