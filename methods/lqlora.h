/* LQ-LoRA's pieces that tests and a whole-model allocation step reach: the low-rank plus
 * quantized decomposition of one weight (LQ-LoRA's and LoftQ's alternating loops) and the exact
 * memory-budget bit allocation across layers (a multiple-choice knapsack solved by dynamic
 * programming). The method itself, and its specification, is qa_method_lqlora in lqlora.c. */
#ifndef QA_METHODS_LQLORA_H
#define QA_METHODS_LQLORA_H

#include <stdint.h>

#include "harness/util.h"

typedef enum { LQ_INIT_LQLORA = 0, LQ_INIT_LOFTQ, LQ_INIT_COUNT } lqlora_init_kind;
typedef enum { LQ_QUANT_AUTO = 0, LQ_QUANT_INT, LQ_QUANT_NF4, LQ_QUANT_COUNT } lqlora_quant_kind;

typedef enum { LQ_SVD_AUTO = 0, LQ_SVD_EXACT, LQ_SVD_RANDOMIZED, LQ_SVD_COUNT } lqlora_svd_kind;

typedef struct {
    int rank, bits;        /* bits 1..8; NF4 only at 4 */
    lqlora_init_kind init;
    lqlora_quant_kind quant; /* AUTO: NF4 at 4 bits, the section-0 INT quantizer otherwise */
    int iters;             /* T; 0 = the init's own default (LQ-LoRA 20, LoftQ 5) */
    int keep_best;         /* LQ-LoRA: 0 = the reference (the iterate whose error rose), 1 = the best */
    lqlora_svd_kind svd;   /* AUTO: exact up to min(out, in) = 256, randomized above */
    uint64_t seed;         /* of the randomized SVD's test matrices (iteration t uses seed + t) */
} lqlora_cfg;

typedef struct {
    double error;          /* ||W - Q - L1 L2||_F of what is returned */
    double error_q_only;   /* ||W - quant(W)||_F: the quantized base alone (QLoRA's) */
    int iterations;        /* loop iterations run */
    lqlora_quant_kind quant; /* the quantizer used (INT or NF4) */
} lqlora_stats;

/* W [out,in] ~ Q + L1 L2: Q_dq [out,in] (the dequantized quantized part), L1 [out,rank],
 * L2 [rank,in]. Returns QA_ERR_INPUT for a rank outside 1..min(out, in) or bits outside 1..8 (NF4:
 * only 4). */
int qa_lqlora_decompose(const float *W, int out, int in, const lqlora_cfg *cfg, float *Q_dq, float *L1, float *L2,
                     lqlora_stats *st, qa_error *err);

/* Rank-r truncated SVD of E [out,in] (GSL, in double): L1 = U_r sqrt(S_r) [out,r],
 * L2 = sqrt(S_r) V_r^T [r,in] (the reference's split of the singular values). */
void qa_lqlora_svd_rank(const float *E, int out, int in, int rank, float *L1, float *L2);

/* The same by the randomized range finder of the reference's torch.svd_lowrank: q = rank + 10
 * Gaussian test vectors (seeded), two power iterations, orthonormalized by Gram-Schmidt, then
 * the exact SVD of the small projected matrix. */
void qa_lqlora_svd_rank_randomized(const float *E, int out, int in, int rank, uint64_t seed, float *L1, float *L2);

/* The frozen quantized part Q that an lq-lora layer's state (qa_method_lqlora) holds as stored
 * (NF4 + DQ, or N-bit codes with an FP32 scale and zero point per row), dequantized into Q
 * [out,in]: exactly the Q_dq its products read. */
void qa_lqlora_stored_decode(const void *state, float *Q);

/* Bits of the quantized part as stored: INT b-bit codes + an FP32 scale and zero per row; NF4 +
 * double quantization as QLoRA stores it. */
int64_t qa_lqlora_storage_bits(int out, int in, int bits, lqlora_quant_kind quant);

/* The multiple-choice knapsack of LQ-LoRA's bit allocation: one config per layer (n_layers rows
 * of n_configs), minimise sum cost[l][choice_l] subject to sum storage[l][choice_l] <= budget.
 * Exact: dynamic programming over the total storage in units of the gcd of all storages. A
 * storage < 0 marks a config as unavailable for that layer. Returns QA_ERR_INPUT when the budget
 * is smaller than the cheapest assignment (the message names both) or its resolution would need
 * more than 2^27 states. */
int qa_lqlora_allocate(int n_layers, int n_configs, const double *cost, const int64_t *storage, int64_t budget, int *choice,
                    double *total_cost, qa_error *err);

#endif
