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
    L->zeros = qa_alloc(sizeof(float) * out);
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
    L->scale_zero = qa_alloc(sizeof(float) * (size_t)G * out);
    for (int i = 0; i < G * out; i++) L->scale_zero[i] = scale[i] * zero[i];
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
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc); qa_free(L->sum);
    L->xq = qa_alloc((size_t)M * L->in);
    L->xsum = qa_alloc(sizeof(int32_t) * (size_t)M * L->n_parts);
    L->acc = qa_alloc(sizeof(float) * (size_t)L->n_parts * M * L->out);
    if (L->kind == QA_INT8_PLANES) L->sum = qa_alloc(sizeof(double) * (size_t)M * L->out);
    L->cap = M;
}

/* Row m's output from the parts' accumulators, its partial sums kept in L1 across the parts.
 * Planes: s = sum_p 256^p (acc_p - zx usum_p) in double (exact), y = dx s_o s + b.
 * Groups: y = dx sum_j [s_jo I_jo - (s_jo z_jo) d_j] + b in float, with the group's bracket
 * I_jo = acc_jo + 128 d_j - zx usum_jo and d_j = xsum_j - g zx exact integers. */
static void output_row(qa_int8_multi *L, float dx, int32_t zx, int m, float *restrict ym) {
    const int out = L->out, P = L->n_parts, g = L->width;
    const float *restrict b = L->bias ? L->bias : L->zeros;
    if (L->kind == QA_INT8_GROUPS) {
        memset(ym, 0, sizeof(float) * out);
        for (int j = 0; j < P; j++) {
            const float *restrict acc = L->acc + ((size_t)j * L->cap + m) * out;
            const int32_t *restrict usum = L->usum + (size_t)j * out;
            const float *restrict sc = L->scale + (size_t)j * out, *restrict sz = L->scale_zero + (size_t)j * out;
            const int32_t d = L->xsum[(size_t)m * P + j] - g * zx, c = 128 * d;
            const float df = (float)d;
            for (int o = 0; o < out; o++) ym[o] += sc[o] * (float)((int32_t)acc[o] + c - zx * usum[o]) - sz[o] * df;
        }
        for (int o = 0; o < out; o++) ym[o] = dx * ym[o] + b[o];
        return;
    }
    double *restrict s = L->sum + (size_t)m * out;
    memset(s, 0, sizeof(double) * out);
    for (int p = 0; p < P; p++) {
        const float *restrict acc = L->acc + ((size_t)p * L->cap + m) * out;
        const int32_t *restrict usum = L->usum + (size_t)p * out;
        const double place = ldexp(1.0, 8 * p);
        for (int o = 0; o < out; o++) s[o] += place * (double)((int32_t)acc[o] - zx * usum[o]);
    }
    for (int o = 0; o < out; o++) ym[o] = (float)((double)dx * L->scale[o] * s[o]) + b[o]; /* one rounding, then the bias */
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
    if (L->kind == QA_INT8_PLANES) {
        for (int p = 0; p < P; p++)
            qa_matmul_u8s8(M, out, in, L->xq, L->u + (size_t)p * out * in, L->ones, L->acc + (size_t)p * L->cap * out);
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) output_row(L, dx, zx, m, y + (size_t)m * out);
        return;
    }
    /* every group in one batched call: acc[j] [M, out] = xq[:, group j] [M, g] . u_j^T [g, out],
     * group j's columns viewed in place (row stride in), u_j held [out, g] */
    const qa_view a = {{1, P, M, g}, {(int64_t)M * in, g, in, 1}};
    const qa_view b = {{1, P, g, out}, {(int64_t)P * out * g, (int64_t)out * g, 1, g}};
    const qa_view c = {{1, P, M, out}, {(int64_t)P * L->cap * out, (int64_t)L->cap * out, out, 1}};
    qa_matmul_u8s8_view(&a, L->xq, &b, L->u, &c, L->acc);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) output_row(L, dx, zx, m, y + (size_t)m * out);
}

void qa_int8_multi_free(qa_int8_multi *L) {
    qa_free(L->u); qa_free(L->usum); qa_free(L->scale); qa_free(L->zero); qa_free(L->scale_zero); qa_free(L->ones); qa_free(L->zeros);
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc); qa_free(L->sum);
    memset(L, 0, sizeof *L);
}

const char *qa_int8_multi_name(const qa_int8_multi *L, char *buf, size_t len) {
    if (L->kind == QA_INT8_GROUPS) snprintf(buf, len, "u8s8 group");
    else if (L->n_parts == 1) snprintf(buf, len, "u8s8 per-row");
    else snprintf(buf, len, "u8s8 %d-plane", L->n_parts);
    return buf;
}
