#include "harness/int8_multi.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/util.h"

/* The lowest balanced base-256 digit of v, in [-128, 127]; v - digit is a multiple of 256. */
static inline int64_t low_digit(int64_t v) { return ((v + 128) % 256 + 256) % 256 - 128; }

static int digits(int64_t v) {
    int p = 1;
    for (v = (v - low_digit(v)) / 256; v != 0; v = (v - low_digit(v)) / 256) p++;
    return p;
}

int qa_int8_planes_needed(const int32_t *w, size_t n) {
    int32_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
    }
    /* digits grow with |v| (balanced digits: the extremes need the most) */
    int p = digits(lo) > digits(hi) ? digits(lo) : digits(hi);
    return p > QA_INT8_MAX_PLANES ? QA_INT8_MAX_PLANES + 1 : p;
}

static void alloc_parts(qa_int8_multi *L, qa_int8_multi_kind kind, int n_parts, int width, int in, int out,
                        const float *bias) {
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->in = in;
    L->out = out;
    L->n_parts = n_parts;
    L->width = width;
    L->u = qa_alloc((size_t)n_parts * out * width);
    L->usum = qa_alloc(sizeof(int32_t) * (size_t)n_parts * out);
    L->ones = qa_alloc(sizeof(float) * out);
    for (int o = 0; o < out; o++) L->ones[o] = 1.0f;
    L->bias = bias;
}

int qa_int8_planes_init(qa_int8_multi *L, const int32_t *w, const float *row_scale, int in, int out, const float *bias) {
    memset(L, 0, sizeof *L);
    const size_t n = (size_t)in * out;
    const int P = in <= QA_INT8_MAX_K ? qa_int8_planes_needed(w, n) : QA_INT8_MAX_PLANES + 1;
    if (P > QA_INT8_MAX_PLANES) return -1;
    alloc_parts(L, QA_INT8_PLANES, P, in, in, out, bias);
    L->scale = qa_alloc(sizeof(float) * out);
    memcpy(L->scale, row_scale, sizeof(float) * out);
    for (size_t i = 0; i < n; i++) {
        int64_t v = w[i];
        for (int p = 0; p < P; p++) { /* w = sum_p 256^p u_p */
            int64_t d = low_digit(v);
            L->u[(size_t)p * n + i] = (int8_t)d;
            v = (v - d) / 256;
        }
    }
    for (int p = 0; p < P; p++)
        for (int o = 0; o < out; o++) {
            int32_t s = 0;
            const int8_t *u = L->u + (size_t)p * n + (size_t)o * in;
            for (int k = 0; k < in; k++) s += u[k];
            L->usum[(size_t)p * out + o] = s;
        }
    return 0;
}

int qa_int8_groups_init(qa_int8_multi *L, const int32_t *q, const float *scale, const float *zero, int n_groups, int in,
                        int out, const float *bias) {
    memset(L, 0, sizeof *L);
    if (n_groups < 1 || in % n_groups != 0 || in / n_groups > QA_INT8_MAX_K) return -1;
    for (size_t i = 0; i < (size_t)in * out; i++)
        if (q[i] < 0 || q[i] > 255) return -1;
    const int G = n_groups, g = in / G;
    alloc_parts(L, QA_INT8_GROUPS, G, g, in, out, bias);
    L->scale = qa_alloc(sizeof(float) * (size_t)G * out);
    L->zero = qa_alloc(sizeof(float) * (size_t)G * out);
    memcpy(L->scale, scale, sizeof(float) * (size_t)G * out);
    memcpy(L->zero, zero, sizeof(float) * (size_t)G * out);
    for (int j = 0; j < G; j++)
        for (int o = 0; o < out; o++) {
            int8_t *u = L->u + ((size_t)j * out + o) * g; /* group j's block [out, g] */
            int32_t s = 0;
            for (int k = 0; k < g; k++) {
                u[k] = (int8_t)(q[(size_t)o * in + (size_t)j * g + k] - 128);
                s += u[k];
            }
            L->usum[(size_t)j * out + o] = s;
        }
    return 0;
}

static void reserve(qa_int8_multi *L, int M) {
    if (M <= L->cap) return;
    qa_free(L->xq); qa_free(L->xg); qa_free(L->xsum); qa_free(L->acc); qa_free(L->sum);
    L->xq = qa_alloc((size_t)M * L->in);
    L->xg = qa_alloc((size_t)M * L->width);
    L->xsum = qa_alloc(sizeof(int32_t) * (size_t)M * L->n_parts);
    L->acc = qa_alloc(sizeof(float) * (size_t)M * L->out);
    L->sum = qa_alloc(sizeof(double) * (size_t)M * L->out);
    L->cap = M;
}

/* sum[M,out] (+)= 256^p (acc - zx usum_p): plane p's exact integer bracket */
static void add_plane(qa_int8_multi *L, int p, int32_t zx, int M) {
    const int out = L->out;
    const int32_t *usum = L->usum + (size_t)p * out;
    const double place = ldexp(1.0, 8 * p);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *acc = L->acc + (size_t)m * out;
        double *s = L->sum + (size_t)m * out;
        for (int o = 0; o < out; o++) {
            double v = place * (double)((int32_t)acc[o] - zx * usum[o]);
            s[o] = p == 0 ? v : s[o] + v;
        }
    }
}

/* sum[M,out] (+)= s_jo (I_jo - z_jo (xsum_j - g zx)): group j's exact bracket, scaled */
static void add_group(qa_int8_multi *L, int j, int32_t zx, int M) {
    const int out = L->out, g = L->width, G = L->n_parts;
    const int32_t *usum = L->usum + (size_t)j * out;
    const float *sc = L->scale + (size_t)j * out, *z = L->zero + (size_t)j * out;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *acc = L->acc + (size_t)m * out;
        double *s = L->sum + (size_t)m * out;
        const int32_t xs = L->xsum[(size_t)m * G + j], d = xs - g * zx;
        for (int o = 0; o < out; o++) {
            int32_t I = (int32_t)acc[o] + 128 * xs - zx * (usum[o] + 128 * g);
            double v = (double)sc[o] * ((double)I - (double)z[o] * d);
            s[o] = j == 0 ? v : s[o] + v;
        }
    }
}

void qa_int8_multi_forward(qa_int8_multi *L, const qa_actq *aq, const float *x, float *y, int M) {
    const float dx = aq->delta, zxf = aq->zero;
    /* the brackets are summed in integers: a whole zero point in the code range */
    QA_ASSERT(aq->bits == 8 && zxf == nearbyintf(zxf) && zxf >= 0.f && zxf <= 255.f);
    const int in = L->in, out = L->out, P = L->n_parts, g = L->width;
    const int32_t zx = (int32_t)zxf;
    reserve(L, M);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        uint8_t *q = L->xq + (size_t)m * in;
        int32_t total = qa_int8_quantize_row(x + (size_t)m * in, q, in, dx, zxf);
        if (L->kind == QA_INT8_PLANES) { L->xsum[(size_t)m * P] = total; continue; }
        for (int j = 0; j < P; j++) { /* per-group sums of the codes */
            int32_t s = 0;
            for (int k = 0; k < g; k++) s += q[(size_t)j * g + k];
            L->xsum[(size_t)m * P + j] = s;
        }
    }
    for (int p = 0; p < P; p++) {
        const int8_t *u = L->u + (size_t)p * out * g;
        if (L->kind == QA_INT8_PLANES) {
            qa_matmul_u8s8(M, out, in, L->xq, u, L->ones, L->acc);
            add_plane(L, p, zx, M);
        } else {
            for (int m = 0; m < M; m++) memcpy(L->xg + (size_t)m * g, L->xq + (size_t)m * in + (size_t)p * g, (size_t)g);
            qa_matmul_u8s8(M, out, g, L->xg, u, L->ones, L->acc);
            add_group(L, p, zx, M);
        }
    }
    /* dequantize: one rounding of the exact sum, then the bias */
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const double *s = L->sum + (size_t)m * out;
        float *ym = y + (size_t)m * out;
        for (int o = 0; o < out; o++) {
            double sc = L->kind == QA_INT8_PLANES ? (double)L->scale[o] : 1.0;
            ym[o] = (float)((double)dx * sc * s[o]) + (L->bias ? L->bias[o] : 0.f);
        }
    }
}

void qa_int8_multi_free(qa_int8_multi *L) {
    qa_free(L->u); qa_free(L->usum); qa_free(L->scale); qa_free(L->zero); qa_free(L->ones);
    qa_free(L->xq); qa_free(L->xg); qa_free(L->xsum); qa_free(L->acc); qa_free(L->sum);
    memset(L, 0, sizeof *L);
}

const char *qa_int8_multi_name(const qa_int8_multi *L, char *buf, size_t len) {
    if (L->kind == QA_INT8_GROUPS) snprintf(buf, len, "u8s8 group");
    else if (L->n_parts == 1) snprintf(buf, len, "u8s8 per-row");
    else snprintf(buf, len, "u8s8 %d-plane", L->n_parts);
    return buf;
}
