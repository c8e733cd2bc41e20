/* QLoRA's storage formats (arXiv 2305.14314, as bitsandbytes stores them), exposed so tests can
 * reach them: NF4 with blockwise FP32 absmax, and the double quantization (DQ) of those absmax
 * values with the signed 8-bit "dynamic" tree code of bitsandbytes. The method itself, and its
 * whole specification, is qa_method_qlora in qlora.c.
 *
 *   NF4        v = w / absmax_block  ->  idx = #{k : v > mid_k}, mid_k = (NF4[k] + NF4[k+1]) / 2
 *              (15 midpoints evaluated in double, rounded to float; strict ">" so a tie goes to
 *              the lower code); blocks of QLORA_NF4_BLOCK consecutive weights of the row-major
 *              flattened [out, in] tensor (the last block may be shorter); two codes per byte,
 *              the first element of a pair in the HIGH nibble.
 *   DQ         offset = mean(absmax); c = absmax - offset; per QLORA_DQ_BLOCK values of c:
 *              absmax2 = max |c|, q8 = index of the dynamic-code entry nearest to c / absmax2.
 *   dequant    absmax = code8[q8] * absmax2 + offset;   w = NF4[idx] * absmax
 *   bits       4 + 8/64 + 32/(64*256) + 32/n = 4.127 per weight for large n (see
 *              qlora_nf4_bits_per_weight for the exact count of a tensor of n weights). */
#ifndef QA_METHODS_QLORA_H
#define QA_METHODS_QLORA_H

#include <stddef.h>
#include <stdint.h>

#include "harness/registry.h"

#define QLORA_NF4_BLOCK 64   /* weights per absmax */
#define QLORA_DQ_BLOCK 256   /* absmax values per absmax2 */
#define QLORA_DYNAMIC_CODE_SIZE 256

/* Which frozen base a QLoRA layer holds (append-only; names checked against COUNT). */
typedef enum { QLORA_BASE_FP = 0, QLORA_BASE_INT, QLORA_BASE_NF4, QLORA_BASE_COUNT } qlora_base_kind;
extern const char *const qlora_base_names[QLORA_BASE_COUNT];

/* The NF4 code, index -> value (bitsandbytes' exact FP32 constants). */
extern const float qlora_nf4_code[16];

/* The NF4 index of a normalized value v (v in [-1, 1]; NaN maps to 0). */
uint8_t qa_qlora_nf4_index(float v);

/* Quantize one block w[0..n) (1 <= n <= QLORA_NF4_BLOCK) into (n+1)/2 packed bytes; returns the
 * block's absmax (FP32). A block of zeros has absmax 0 and every code is 7 (the code of 0.0);
 * an odd n pads the last low nibble with 7 too (bitsandbytes loads the pad as 0.0). */
float qa_qlora_nf4_encode_block(const float *w, int n, uint8_t *packed);

/* w[i] = NF4[code i of packed] * absmax[i / QLORA_NF4_BLOCK], i < n. */
void qa_qlora_nf4_decode(const uint8_t *packed, const float *absmax, size_t n, float *w);

/* The 256 sorted entries of bitsandbytes' signed dynamic code (create_dynamic_map(True, 7, 8)):
 * for i = 0..6 the 2^i midpoints of linspace(0.1, 1, 2^i + 1) times 10^(i-6), both signs, plus
 * 0 and 1.0. Computed in double and rounded to float (bitsandbytes builds it with float32 torch
 * ops, so an entry may differ from it in the last bit). */
void qa_qlora_dynamic_code_table(float code[QLORA_DYNAMIC_CODE_SIZE]);

/* Double quantization of absmax[0..n_blocks): q8[n_blocks], absmax2[ceil(n_blocks / 256)],
 * *offset. A 256-block whose c are all 0 gets absmax2 = 0 and q8 = the index of 0.0 (the
 * division would be 0/0); it then decodes to the offset exactly. */
void qa_qlora_dq_encode(const float *absmax, size_t n_blocks, uint8_t *q8, float *absmax2, float *offset);
/* absmax[b] = code8[q8[b]] * absmax2[b / 256] + offset */
void qa_qlora_dq_decode(const uint8_t *q8, const float *absmax2, float offset, size_t n_blocks, float *absmax);

/* A tensor of n weights stored as NF4 + DQ, exactly as deployed. */
typedef struct {
    size_t n, n_blocks, n_blocks2;
    uint8_t *packed;       /* [(n + 1) / 2] two NF4 codes per byte, first in the high nibble */
    uint8_t *absmax_q8;    /* [n_blocks] dynamic-code index of (absmax - offset) / absmax2 */
    float *absmax2;        /* [n_blocks2] */
    float offset;
} qlora_nf4_tensor;

void qa_qlora_nf4_tensor_encode(qlora_nf4_tensor *t, const float *w, size_t n);
void qa_qlora_nf4_tensor_decode(const qlora_nf4_tensor *t, float *w);
void qa_qlora_nf4_tensor_free(qlora_nf4_tensor *t);
/* Bytes of that storage: packed codes + q8 + absmax2 + offset. */
size_t qa_qlora_nf4_tensor_bytes(size_t n);
/* 8 * qa_qlora_nf4_tensor_bytes(n) / n  (4.127 for large n) */
double qa_qlora_nf4_bits_per_weight(size_t n);

extern const qa_method qa_method_qlora;

#endif
