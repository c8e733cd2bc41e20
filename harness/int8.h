/* Integer execution of a deployed W8A8 linear layer on oneDNN's u8 x s8 -> s32 kernels.
 *
 * Activations: per-tensor asymmetric u8 codes xq = clamp(round(x/dx) + zx, 0, 255), so
 *   x_hat = dx (xq - zx).  Weights: per-row asymmetric 8-bit codes q in [0, 255] with W = dw (q - zw).
 * oneDNN 2.6 has no per-channel weight zero points, so the weights are held as s8 u = q - 128 and
 * the rest is a correction term (exact: every sum is an integer):
 *   sum_k x_hat_k W_ok = dx dw_o [ sum_k xq_k u_ok + c_o sum_k xq_k - zx sum_k u_ok - K zx c_o ],
 *   c_o = 128 - zw_o.
 * The first sum is the u8 x s8 matmul (s32 accumulation, returned in f32: exact while
 * K * 255 * 128 < 2^24, i.e. K <= 513; wider layers are not converted). The bracket is summed in
 * int32 (exact: every term is an integer below 2^26 at K <= 513), then scaled in float. The
 * result equals the fake-quantized float layer up to float rounding. */
#ifndef QA_INT8_H
#define QA_INT8_H

#include <stdint.h>

#include "harness/quant.h"

#define QA_INT8_MAX_K 513

typedef struct {
    int in, out;
    int8_t *u;          /* [out, in]: q - 128 */
    float *dw;          /* per row: scale */
    int32_t *c;         /* per row: 128 - zero point */
    int32_t *usum;      /* per row: sum_k u_ok */
    int32_t *zu;        /* per row: zx * usum, for the current activation zero point zx */
    float *ones;        /* [out] unit output scales for the primitive */
    const float *bias;  /* borrowed, may be NULL */
    uint8_t *xq;        /* [cap, in] */
    int32_t *xsum;      /* [cap] */
    float *acc;         /* [cap, out] */
    int cap;
    int profile;        /* 1: accumulate the seconds of each part below (benchmarks) */
    double t_quantize, t_matmul, t_correct;
} qa_int8_linear;

/* From dequantized weights W [out,in] = dw (q - zw) with their per-row (dw, zw) at 8 bits.
 * Returns 0, or -1 when the layer cannot run on the kernel (K > QA_INT8_MAX_K, or W is not on
 * the grid of (dw, zw)). */
int int8_linear_init(qa_int8_linear *L, const float *W, const float *dw, const float *zw, int in, int out,
                     const float *bias);
/* y[M,out] = x_hat W^T + b with the activation quantizer aq (8 bits, calibrated). */
void int8_linear_forward(qa_int8_linear *L, const qa_actq *aq, const float *x, float *y, int M);
void int8_linear_free(qa_int8_linear *L);

#endif
