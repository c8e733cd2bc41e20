/* The low-rank adapter term of the LoRA-style methods (LoRA over an FP weight, QLoRA over an NF4
 * or INT one), and the LoRA factors alone for the methods that put B A inside their own formula
 * (IntLoRA, EfficientDM). Paper: arXiv 2106.09685 (LoRA); notation: methods/README.md.
 *
 *   factors   A [r,in] ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's kaiming_uniform_ with a = sqrt 5,
 *             whose bound is 1/sqrt(fan_in)), B [out,r] = 0, and zeroed gradient buffers dA, dB
 *   forward   xa = x A^T [M,r] (kept for the backward);  y += s xa B^T    (x [M,in], y [M,out])
 *   backward  dB += s dy^T xa      [out,r]
 *             dxa = s dy B         [M,r]
 *             dA += dxa^T x        [r,in]
 *             dx += dxa A          [M,in]   (the base's own dx term is the caller's)
 *   merge     W' = W_base + s B A  [out,in], in float
 * s = lora_scale (1 = no scaling, the default). With s != 1 the forward scales a copy of xa (in
 * the dxa buffer, free until the backward) and the backward scales xa in place: the same values. */
#include "methods/lora_adapter.h"

#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"

void qa_lora_factors_init(int in, int out, int rank, qa_rng *rng, float **A, float **B, float **dA, float **dB) {
    *A = qa_alloc(sizeof(float) * (size_t)rank * in);
    *B = qa_alloc(sizeof(float) * (size_t)out * rank); /* zeros */
    *dA = qa_alloc(sizeof(float) * (size_t)rank * in);
    *dB = qa_alloc(sizeof(float) * (size_t)out * rank);
    float bound = 1.0f / sqrtf((float)in);
    qa_rng_fill_uniform(rng, *A, (size_t)rank * in, -bound, bound);
}

void qa_lora_adapter_init(qa_lora_adapter *a, int in, int out, int rank, float scale, qa_rng *rng) {
    memset(a, 0, sizeof *a);
    a->in = in;
    a->out = out;
    a->rank = rank;
    a->scale = scale;
    qa_lora_factors_init(in, out, rank, rng, &a->A, &a->B, &a->dA, &a->dB);
}

static void ensure_rows(qa_lora_adapter *a, int M) {
    if (M <= a->rows_cap) return;
    qa_free(a->xa);
    qa_free(a->dxa);
    a->xa = qa_alloc(sizeof(float) * (size_t)M * a->rank);
    a->dxa = qa_alloc(sizeof(float) * (size_t)M * a->rank);
    a->rows_cap = M;
}

void qa_lora_adapter_forward(qa_lora_adapter *a, const float *x, float *y, int M) {
    ensure_rows(a, M);
    a->x = x;
    qa_linear_forward(a->xa, x, a->A, NULL, M, a->in, a->rank); /* xa = x A^T */
    /* y += s xa B^T: fold s into a copy of xa (dxa is free until backward) */
    const float *xa_scaled = a->xa;
    if (a->scale != 1.0f) {
        for (size_t i = 0; i < (size_t)M * a->rank; i++) a->dxa[i] = a->scale * a->xa[i];
        xa_scaled = a->dxa;
    }
    qa_matmul(M, a->out, a->rank, xa_scaled, 0, a->B, 1, y, 1, NULL);
}

void qa_lora_adapter_backward(qa_lora_adapter *a, const float *dy, float *dx, int M) {
    /* dB += s dy^T xa  ([out,M]·[M,r]); xa is scaled in place, it is not needed afterwards */
    if (a->scale != 1.0f) for (size_t i = 0; i < (size_t)M * a->rank; i++) a->xa[i] *= a->scale;
    qa_matmul(a->out, a->rank, M, dy, 1, a->xa, 0, a->dB, 1, NULL);
    /* dxa = s dy B  ([M,out]·[out,r]) */
    qa_matmul(M, a->rank, a->out, dy, 0, a->B, 0, a->dxa, 0, NULL);
    if (a->scale != 1.0f) for (size_t i = 0; i < (size_t)M * a->rank; i++) a->dxa[i] *= a->scale;
    /* dA += dxa^T x  ([r,M]·[M,in]) */
    qa_matmul(a->rank, a->in, M, a->dxa, 1, a->x, 0, a->dA, 1, NULL);
    if (dx) qa_matmul(M, a->in, a->rank, a->dxa, 0, a->A, 0, dx, 1, NULL); /* dx += dxa A */
}

int qa_lora_adapter_params(qa_lora_adapter *a, qa_param *out, int max) {
    if (max < 2) return 0;
    out[0] = (qa_param){"lora_A", a->A, a->dA, (size_t)a->rank * a->in, 1.0f};
    out[1] = (qa_param){"lora_B", a->B, a->dB, (size_t)a->out * a->rank, 1.0f};
    return 2;
}

void qa_lora_adapter_merge(const qa_lora_adapter *a, const float *W_base, float *W_out) {
    const size_t n = (size_t)a->in * a->out;
    qa_matmul(a->out, a->in, a->rank, a->B, 0, a->A, 0, W_out, 0, NULL); /* B A: [out,r]·[r,in] */
    for (size_t i = 0; i < n; i++) W_out[i] = W_base[i] + a->scale * W_out[i];
}

void qa_lora_adapter_free(qa_lora_adapter *a) {
    float *ps[] = {a->A, a->B, a->dA, a->dB, a->xa, a->dxa};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    memset(a, 0, sizeof *a);
}
