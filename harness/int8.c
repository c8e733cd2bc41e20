#include "harness/int8.h"

#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/util.h"

int int8_linear_init(qa_int8_linear *L, const float *W, const float *dw, const float *zw, int in, int out,
                     const float *bias) {
    memset(L, 0, sizeof *L);
    if (in > QA_INT8_MAX_K) return -1;
    L->in = in;
    L->out = out;
    L->u = qa_alloc((size_t)in * out);
    L->dw = qa_alloc(sizeof(float) * out);
    L->c = qa_alloc(sizeof(float) * out);
    L->usum = qa_alloc(sizeof(int32_t) * out);
    L->ones = qa_alloc(sizeof(float) * out);
    L->bias = bias;
    for (int o = 0; o < out; o++) {
        int32_t s = 0;
        for (int k = 0; k < in; k++) {
            float w = W[(size_t)o * in + k];
            float q = nearbyintf(w / dw[o]) + zw[o];
            /* the weight must sit on its grid: dequantizing the code gives it back */
            if (q < 0.f || q > 255.f || fabsf(dw[o] * (q - zw[o]) - w) > 1e-6f * (fabsf(w) + fabsf(dw[o]))) {
                int8_linear_free(L);
                return -1;
            }
            int8_t u = (int8_t)((int)q - 128);
            L->u[(size_t)o * in + k] = u;
            s += u;
        }
        L->usum[o] = s;
        L->dw[o] = dw[o];
        L->c[o] = 128.0f - zw[o];
        L->ones[o] = 1.0f;
    }
    return 0;
}

void int8_linear_forward(qa_int8_linear *L, const qa_actq *aq, const float *x, float *y, int M) {
    const int in = L->in, out = L->out;
    if (M > L->cap) {
        qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc);
        L->xq = qa_alloc((size_t)M * in);
        L->xsum = qa_alloc(sizeof(int32_t) * M);
        L->acc = qa_alloc(sizeof(float) * (size_t)M * out);
        L->cap = M;
    }
    const float dx = aq->delta, zx = aq->zero;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < in; k++) {
            float q = nearbyintf(x[(size_t)m * in + k] / dx) + zx;
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
            uint8_t b = (uint8_t)q;
            L->xq[(size_t)m * in + k] = b;
            s += b;
        }
        L->xsum[m] = s;
    }
    qa_matmul_u8s8(M, out, in, L->xq, L->u, L->ones, L->acc);
    /* every term is an integer (zero points are whole numbers) and below 2^53: summed exactly in
     * double (they reach ~3e7 and cancel, beyond float's exact range; double vectorises where
     * int64 multiplies do not) */
    const double zxd = zx, kzx = (double)in * zx;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const double xs = L->xsum[m];
        const float *acc = L->acc + (size_t)m * out;
        float *ym = y + (size_t)m * out;
        for (int o = 0; o < out; o++) {
            const double c = L->c[o];
            double v = (double)acc[o] + c * xs - zxd * (double)L->usum[o] - kzx * c;
            ym[o] = dx * L->dw[o] * (float)v + (L->bias ? L->bias[o] : 0.f);
        }
    }
}

void int8_linear_free(qa_int8_linear *L) {
    qa_free(L->u); qa_free(L->dw); qa_free(L->c); qa_free(L->usum); qa_free(L->ones);
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc);
    memset(L, 0, sizeof *L);
}
