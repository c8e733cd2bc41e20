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
    int32_t *zu;        /* per row: zx * usum, for the prepared activation zero point zx */
    float *scale;       /* per row: dx * dw, for the prepared activation step dx */
    int32_t kzx;        /* K * zx */
    float prepared_dx, prepared_zx; /* the activation quantizer the two rows above belong to */
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
int qa_int8_linear_init(qa_int8_linear *L, const float *W, const float *dw, const float *zw, int in, int out,
                     const float *bias);
/* y[M,out] = x_hat W^T + b with the activation quantizer aq (8 bits, calibrated). */
void qa_int8_linear_forward(qa_int8_linear *L, const qa_actq *aq, const float *x, float *y, int M);
void qa_int8_linear_free(qa_int8_linear *L);

/* ---- the parts of int8_linear_forward, for the deployed model's fused operations ----
 * A producer that knows its consumer is an integer layer writes the consumer's codes itself
 * (qa_int8_quantize_row into L->xq, sums into L->xsum), the consumer runs the matmul, and its
 * output rows are dequantized inside the next operation (qa_int8_dequant_row). Each part is the
 * same arithmetic as the unfused layer, so the fused model equals it bit for bit. */

/* Grow the code and accumulator buffers to M rows. */
void qa_int8_linear_reserve(qa_int8_linear *L, int M);
/* Per-row constants of the correction for the activation quantizer aq (cheap; recomputed only
 * when aq changed): scale[o] = dx dw[o], zu[o] = zx usum[o], kzx = K zx. */
void qa_int8_linear_prepare(qa_int8_linear *L, const qa_actq *aq);
/* Codes of x [M, in] with the activation quantizer aq into L->xq, their row sums into L->xsum. */
void qa_int8_linear_quantize(qa_int8_linear *L, const qa_actq *aq, const float *x, int M);
/* acc[M, out] = xq[M, in] . u^T on the u8 x s8 kernel (xq: L->xq, filled by a producer). */
void qa_int8_linear_matmul(qa_int8_linear *L, int M);

/* Codes of one row, q[k] = clamp(nearbyint(x[k] / dx) + zx, 0, 255) (the section-0 quantizer);
 * returns sum_k q[k]. Written to vectorise: ternary clamps, the sum in its own loop;
 * nearbyintf (ties to even) as (t + 1.5 2^23) - 1.5 2^23, exact for |t| < 2^22 under
 * round-to-nearest; t is clamped to +-512 first, which changes no code: beyond it the code
 * clamps to 0 or 255 either way (0 <= zx <= 255). */
static inline int32_t qa_int8_quantize_row(const float *restrict x, uint8_t *restrict q, int K, float dx,
                                           float zx) {
    const float magic = 12582912.0f;
    for (int k = 0; k < K; k++) {
        float t = x[k] / dx;
        t = t < -512.f ? -512.f : (t > 512.f ? 512.f : t);
        float v = ((t + magic) - magic) + zx;
        v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
        q[k] = (uint8_t)(int32_t)v;
    }
    int32_t s = 0;
    for (int k = 0; k < K; k++) s += q[k];
    return s;
}

/* Output row m of the prepared layer from its accumulator: the zero-point correction as one
 * rank-1 update c[o] (xsum_m - K zx) with the precomputed column sums zu, fused with the
 * dequantization and the bias:
 *   y[o] = scale[o] (acc[m,o] + c[o] (xsum_m - K zx) - zu[o]) + b[o]
 * summed in int32 (exact: every term is a whole number below 2^26 at K <= 513). */
static inline void qa_int8_dequant_row(const qa_int8_linear *L, int m, float *restrict y) {
    const int out = L->out;
    const int32_t d = L->xsum[m] - L->kzx;
    const float *restrict acc = L->acc + (size_t)m * out;
    const int32_t *restrict c = L->c, *restrict zu = L->zu;
    const float *restrict scale = L->scale;
    for (int o = 0; o < out; o++) y[o] = scale[o] * (float)((int32_t)acc[o] + c[o] * d - zu[o]);
    if (L->bias)
        for (int o = 0; o < out; o++) y[o] += L->bias[o];
}

#endif
