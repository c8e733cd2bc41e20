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
    L->c = qa_alloc(sizeof(int32_t) * out);
    L->zu = qa_alloc(sizeof(int32_t) * out);
    L->usum = qa_alloc(sizeof(int32_t) * out);
    L->ones = qa_alloc(sizeof(float) * out);
    L->bias = bias;
    for (int o = 0; o < out; o++) {
        if (zw[o] != nearbyintf(zw[o])) { int8_linear_free(L); return -1; } /* the correction needs whole zero points */
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
        L->c[o] = 128 - (int32_t)zw[o];
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
    double t0 = L->profile ? qa_now() : 0, t1 = 0, t2 = 0;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *restrict xm = x + (size_t)m * in;
        uint8_t *restrict qm = L->xq + (size_t)m * in;
        for (int k = 0; k < in; k++) {
            /* written to vectorise (ternary clamps, no fminf; the sum in its own loop).
             * nearbyintf (ties to even) as (t + 1.5 2^23) - 1.5 2^23: exact for |t| < 2^22 under
             * round-to-nearest; t is clamped to +-512 first, which changes no code: beyond it the
             * code clamps to 0 or 255 either way (0 <= zx <= 255) */
            const float magic = 12582912.0f;
            float t = xm[k] / dx;
            t = t < -512.f ? -512.f : (t > 512.f ? 512.f : t);
            float q = ((t + magic) - magic) + zx;
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
            qm[k] = (uint8_t)(int32_t)q;
        }
        int32_t s = 0;
        for (int k = 0; k < in; k++) s += qm[k];
        L->xsum[m] = s;
    }
    if (L->profile) t1 = qa_now();
    qa_matmul_u8s8(M, out, in, L->xq, L->u, L->ones, L->acc);
    if (L->profile) t2 = qa_now();
    /* [acc + c (xsum - K zx) - zx usum] in int32: every term is a whole number (zero points
     * are) and |.| < 2^26 for K <= 513, so the sum is exact, as the float matmul result is */
    QA_ASSERT(zx == nearbyintf(zx) && zx >= 0.f && zx <= 255.f);
    const int32_t zxi = (int32_t)zx, kzx = in * zxi;
    for (int o = 0; o < out; o++) L->zu[o] = zxi * L->usum[o];
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const int32_t d = L->xsum[m] - kzx;
        const float *restrict acc = L->acc + (size_t)m * out;
        float *restrict ym = y + (size_t)m * out;
        const int32_t *restrict c = L->c, *restrict zu = L->zu;
        const float *restrict dw = L->dw;
        for (int o = 0; o < out; o++) {
            int32_t v = (int32_t)acc[o] + c[o] * d - zu[o];
            ym[o] = dx * dw[o] * (float)v;
        }
        if (L->bias)
            for (int o = 0; o < out; o++) ym[o] += L->bias[o];
    }
    if (L->profile) {
        double t3 = qa_now();
        L->t_quantize += t1 - t0;
        L->t_matmul += t2 - t1;
        L->t_correct += t3 - t2;
    }
}

void int8_linear_free(qa_int8_linear *L) {
    qa_free(L->u); qa_free(L->dw); qa_free(L->c); qa_free(L->usum); qa_free(L->zu); qa_free(L->ones);
    qa_free(L->xq); qa_free(L->xsum); qa_free(L->acc);
    memset(L, 0, sizeof *L);
}
