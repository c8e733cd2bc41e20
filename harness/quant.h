/* Uniform affine quantization (specified in methods/README.md, section 0).
 *
 * Search: for a vector x with m = min(x), M = max(x), try i = 0..79:
 *   m_i = m (1 - 0.01 i), M_i = M (1 - 0.01 i), delta_i = (M_i - m_i) / (L - 1),
 *   z_i = round(-m_i / delta_i)  (not clamped),  q = clamp(round(x / delta_i) + z_i, 0, L - 1),
 *   score_i = mean |delta_i (q - z_i) - x|^2.4;  keep the first strictly best.
 * round() is round-half-to-even (nearbyint), as torch.round.
 * Constant vector (M == m), where the reference divides by a zero step, accepts no candidate and
 * keeps delta = 0, z = 0 (what it then quantizes is NaN): we use delta = |m| (1 when m = 0) and
 * z = -sign(m), which puts the constant exactly on code 0. */
#ifndef QA_QUANT_H
#define QA_QUANT_H

#include <stddef.h>
#include <stdint.h>

void quant_search(const float *x, size_t n, int bits, float *delta, float *zero);
/* Per output channel (row) search of a [rows, cols] matrix. */
void quant_search_rows(const float *W, int rows, int cols, int bits, float *delta, float *zero);
/* codes[r,c] = clamp(round(W/delta_r) + z_r, 0, L-1) - z_r   (the signed integer weight) */
void quant_codes_rows(int32_t *codes, const float *W, int rows, int cols, int bits,
                      const float *delta, const float *zero);
/* Wq = delta_r * codes  (dequantized, "fake-quantized" weight) */
void quant_fake_rows(float *Wq, const float *W, int rows, int cols, int bits, const float *delta,
                     const float *zero);

/* Per-tensor activation quantizer, calibrated with the search on the first batch, then frozen. */
typedef struct {
    int bits;        /* 0 = off (full precision) */
    int calibrated;
    float delta, zero;
} qa_actq;

/* xhat = delta (clamp(round(x/delta) + z, 0, L-1) - z); calibrates on the first call. */
void actq_forward(qa_actq *q, float *xhat, const float *x, size_t n);
/* Straight-through: dx += dxhat where round(x/delta) + z lies inside [0, L-1] (inclusive). */
void actq_backward(const qa_actq *q, float *dx, const float *dxhat, const float *x, size_t n);

#endif
