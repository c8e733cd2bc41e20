/* The low-rank adapter term that LoRA-style methods add to their frozen base (LoRA over an FP
 * weight, QLoRA over an NF4 or INT one):
 *   forward   y  += s (x A^T) B^T             A [r,in] kaiming-uniform (bound 1/sqrt(in)); B [out,r] = 0
 *   backward  xa = x A^T (kept from the forward)
 *             dB += s dy^T xa,  dxa = s dy B,  dA += dxa^T x,  dx += dxa A
 *   merge     W' = W_base + s B A */
#ifndef QA_LORA_ADAPTER_H
#define QA_LORA_ADAPTER_H

#include "harness/registry.h"
#include "harness/rng.h"

typedef struct {
    int in, out, rank;
    float scale;
    float *A, *B, *dA, *dB;
    const float *x;      /* input of the last forward (owned by the caller) */
    float *xa, *dxa;     /* [rows_cap, rank] */
    int rows_cap;
} qa_lora_adapter;

/* The LoRA factors alone, for methods that use B A inside their own formula (IntLoRA,
 * EfficientDM): A [rank,in] kaiming-uniform (bound 1/sqrt(in)), B [out,rank] = 0, and their
 * gradient buffers. */
void qa_lora_factors_init(int in, int out, int rank, qa_rng *rng, float **A, float **B, float **dA, float **dB);

void qa_lora_adapter_init(qa_lora_adapter *a, int in, int out, int rank, float scale, qa_rng *rng);
void qa_lora_adapter_forward(qa_lora_adapter *a, const float *x, float *y, int M);
void qa_lora_adapter_backward(qa_lora_adapter *a, const float *dy, float *dx, int M);
int qa_lora_adapter_params(qa_lora_adapter *a, qa_param *out, int max);
/* W_out[out,in] = W_base + s B A */
void qa_lora_adapter_merge(const qa_lora_adapter *a, const float *W_base, float *W_out);
void qa_lora_adapter_free(qa_lora_adapter *a);

#endif
