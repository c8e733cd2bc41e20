#include "harness/quant.h"

#include <math.h>

static float fake_quant(float v, float delta, float zero, float levels_max) {
    float q = nearbyintf(v / delta) + zero;
    q = q < 0.f ? 0.f : (q > levels_max ? levels_max : q);
    return delta * (q - zero);
}

void quant_search(const float *x, size_t n, int bits, float *delta_out, float *zero_out) {
    float lmax = (float)((1 << bits) - 1);
    float m = x[0], M = x[0];
    for (size_t i = 1; i < n; i++) {
        m = x[i] < m ? x[i] : m;
        M = x[i] > M ? x[i] : M;
    }
    if (M == m) { /* documented fallback: the reference yields NaN here. delta = |c|, z = -sign(c)
                   * puts c exactly on code 0: delta (0 - z) = c. */
        *delta_out = fabsf(m) > 0.f ? fabsf(m) : 1.0f;
        *zero_out = m > 0.f ? -1.0f : (m < 0.f ? 1.0f : 0.0f);
        return;
    }
    float best = INFINITY, best_delta = 0.f, best_zero = 0.f;
    for (int i = 0; i < 80; i++) {
        float shrink = 1.0f - 0.01f * (float)i;
        float mi = m * shrink, Mi = M * shrink;
        float delta = (Mi - mi) / lmax;
        float zero = nearbyintf(-mi / delta);
        double acc = 0.0;
        /* Large activation tensors are calibrated here too: parallelise the sum (rows of a
         * weight matrix are already spread over threads by quant_search_rows). */
        #pragma omp parallel for reduction(+ : acc) schedule(static) if (n > 65536)
        for (size_t j = 0; j < n; j++) {
            float e = fabsf(fake_quant(x[j], delta, zero, lmax) - x[j]);
            acc += (double)powf(e, 2.4f);
        }
        float score = (float)(acc / (double)n);
        if (score < best) { best = score; best_delta = delta; best_zero = zero; }
    }
    *delta_out = best_delta;
    *zero_out = best_zero;
}

void quant_search_rows(const float *W, int rows, int cols, int bits, float *delta, float *zero) {
    #pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < rows; r++) quant_search(W + (size_t)r * cols, (size_t)cols, bits, &delta[r], &zero[r]);
}

void quant_codes_rows(int32_t *codes, const float *W, int rows, int cols, int bits,
                      const float *delta, const float *zero) {
    float lmax = (float)((1 << bits) - 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float q = nearbyintf(W[(size_t)r * cols + c] / delta[r]) + zero[r];
            q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
            codes[(size_t)r * cols + c] = (int32_t)(q - zero[r]);
        }
}

void quant_fake_rows(float *Wq, const float *W, int rows, int cols, int bits, const float *delta,
                     const float *zero) {
    float lmax = (float)((1 << bits) - 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            Wq[(size_t)r * cols + c] = fake_quant(W[(size_t)r * cols + c], delta[r], zero[r], lmax);
}

void actq_forward(qa_actq *q, float *xhat, const float *x, size_t n) {
    if (!q->calibrated) {
        quant_search(x, n, q->bits, &q->delta, &q->zero);
        q->calibrated = 1;
    }
    float lmax = (float)((1 << q->bits) - 1), delta = q->delta, zero = q->zero;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) xhat[i] = fake_quant(x[i], delta, zero, lmax);
}

void actq_backward(const qa_actq *q, float *dx, const float *dxhat, const float *x, size_t n) {
    float lmax = (float)((1 << q->bits) - 1), delta = q->delta, zero = q->zero;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] / delta) + zero;
        if (v >= 0.f && v <= lmax) dx[i] += dxhat[i];
    }
}
