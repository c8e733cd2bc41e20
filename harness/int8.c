#include "harness/int8.h"

#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/util.h"

int qa_int8_linear_init(qa_int8_linear *L, const float *W, const float *dw, const float *zw, int in, int out,
                     const float *bias) {
    memset(L, 0, sizeof *L);
    if (in > QA_INT8_MAX_K) return -1;
    L->in = in;
    L->out = out;
    L->u = qa_alloc((size_t)in * out);
    L->dw = qa_alloc(sizeof(float) * out);
    L->c = qa_alloc(sizeof(int32_t) * out);
    L->zu = qa_alloc(sizeof(int32_t) * out);
    L->usum = qa_alloc(sizeof(int32_t) * out);
    L->ones = qa_alloc(sizeof(float) * out);
    L->bias = bias;
    for (int o = 0; o < out; o++) {
        if (zw[o] != nearbyintf(zw[o])) { qa_int8_linear_free(L); return -1; } /* the correction needs whole zero points */
        int32_t s = 0;
        for (int k = 0; k < in; k++) {
            float w = W[(size_t)o * in + k];
            float q = nearbyintf(w / dw[o]) + zw[o];
            /* the weight must sit on its grid: dequantizing the code gives it back */
            if (q < 0.f || q > 255.f || fabsf(dw[o] * (q - zw[o]) - w) > 1e-6f * (fabsf(w) + fabsf(dw[o]))) {
                qa_int8_linear_free(L);
                return -1;
            }
            int8_t u = (int8_t)((int)q - 128);
            L->u[(size_t)o * in + k] = u;
            s += u;
        }
        L->usum[o] = s;
        L->dw[o] = dw[o];
        L->c[o] = 128 - (int32_t)zw[o];
        L->ones[o] = 1.0f;
    }
    return 0;
}

void qa_int8_linear_reserve(qa_int8_linear *L, int M) {
    if (M <= L->cap) return;
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc);
    L->xq = qa_alloc((size_t)M * L->in);
    L->xsum = qa_alloc(sizeof(int32_t) * M);
    L->acc = qa_alloc(sizeof(float) * (size_t)M * L->out);
    L->cap = M;
}

void qa_int8_linear_prepare(qa_int8_linear *L, const qa_actq *aq) {
    const float dx = aq->delta, zx = aq->zero;
    /* the correction is summed in int32: it needs a whole zero point in the code range */
    QA_ASSERT(aq->bits == 8 && zx == nearbyintf(zx) && zx >= 0.f && zx <= 255.f);
    if (L->scale && L->prepared_dx == dx && L->prepared_zx == zx) return;
    if (!L->scale) L->scale = qa_alloc(sizeof(float) * L->out);
    const int32_t zxi = (int32_t)zx;
    for (int o = 0; o < L->out; o++) {
        L->zu[o] = zxi * L->usum[o];
        L->scale[o] = dx * L->dw[o];
    }
    L->kzx = L->in * zxi;
    L->prepared_dx = dx;
    L->prepared_zx = zx;
}

void qa_int8_linear_matmul(qa_int8_linear *L, int M) {
    QA_ASSERT(M <= L->cap);
    double t0 = L->profile ? qa_now() : 0;
    qa_matmul_u8s8(M, L->out, L->in, L->xq, L->u, L->ones, L->acc);
    if (L->profile) L->t_matmul += qa_now() - t0;
}

void qa_int8_linear_quantize(qa_int8_linear *L, const qa_actq *aq, const float *x, int M) {
    const int in = L->in;
    const float dx = aq->delta, zx = aq->zero;
    qa_int8_linear_reserve(L, M);
    double t0 = L->profile ? qa_now() : 0;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        L->xsum[m] = qa_int8_quantize_row(x + (size_t)m * in, L->xq + (size_t)m * in, in, dx, zx);
    if (L->profile) L->t_quantize += qa_now() - t0;
}

void qa_int8_linear_forward(qa_int8_linear *L, const qa_actq *aq, const float *x, float *y, int M) {
    const int out = L->out;
    qa_int8_linear_reserve(L, M);
    qa_int8_linear_prepare(L, aq);
    qa_int8_linear_quantize(L, aq, x, M);
    qa_int8_linear_matmul(L, M);
    double t2 = L->profile ? qa_now() : 0;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) qa_int8_dequant_row(L, m, y + (size_t)m * out);
    if (L->profile) L->t_correct += qa_now() - t2;
}

void qa_int8_linear_free(qa_int8_linear *L) {
    qa_free(L->u); qa_free(L->dw); qa_free(L->c); qa_free(L->usum); qa_free(L->zu); qa_free(L->ones); qa_free(L->scale);
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc);
    memset(L, 0, sizeof *L);
}
