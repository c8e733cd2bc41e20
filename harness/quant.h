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

void qa_quant_search(const float *x, size_t n, int bits, float *delta, float *zero);
/* Per output channel (row) search of a [rows, cols] matrix. */
void qa_quant_search_rows(const float *W, int rows, int cols, int bits, float *delta, float *zero);
/* codes[r,c] = clamp(round(W/delta_r) + z_r, 0, L-1) - z_r   (the signed integer weight) */
void qa_quant_codes_rows(int32_t *codes, const float *W, int rows, int cols, int bits,
                      const float *delta, const float *zero);
/* Wq = delta_r * codes  (dequantized, "fake-quantized" weight) */
void qa_quant_fake_rows(float *Wq, const float *W, int rows, int cols, int bits, const float *delta,
                     const float *zero);

/* Per-tensor activation quantizer, calibrated with the search on the first batch, then frozen. */
typedef struct {
    int bits;        /* 0 = off (full precision) */
    int calibrated;
    float delta, zero;
} qa_actq;

/* xhat = delta (clamp(round(x/delta) + z, 0, L-1) - z); calibrates on the first call. */
void qa_actq_forward(qa_actq *q, float *xhat, const float *x, size_t n);
/* Straight-through: dx += dxhat where round(x/delta) + z lies inside [0, L-1] (inclusive). */
void qa_actq_backward(const qa_actq *q, float *dx, const float *dxhat, const float *x, size_t n);

/* Information-calibrated quantization (ICQ), integer variant: IR-QLoRA's range search that
 * maximises the entropy of a row's codes (arXiv 2402.05445; reference "integer
 * quantizer/quantizer_icq.py", Quantizer.find_params, per-channel weights). For a row x, L = 2^N:
 *   xmin = min(min x, 0), xmax = max(max x, 0)              (the range always includes 0)
 *   symmetric: xmax = max(|xmin|, xmax); xmin = -xmax where xmin < 0 (a row >= 0 keeps xmin = 0)
 *   xmin = xmax = 0 (a zero row): xmin = -1, xmax = 1
 *   candidates p: 1, then linspace(1, 1 + tau_range, tau_n + 1)[1:], then linspace(1, 1 -
 *   tau_range, tau_n + 1)[1:] (2 tau_n + 1 values, in float32 as torch.linspace computes them)
 *   scale_p = (p xmax - p xmin) / (L - 1);  zero_p = round(-p xmin / scale_p), or L / 2 when symmetric
 *   q = clamp(round(x / scale_p) + zero_p, 0, L - 1);  H_p = -sum_v f_v log2 f_v, f_v = #{q = v} / n
 *   keep the first p whose H_p is strictly the largest.
 * Its quirk (count_int8 = 1, the reference): q is cast to int8 before counting, so codes >= 128 (at
 * 8 bits) wrap to negative values and are not counted; count_int8 = 0 counts every code. The
 * range arithmetic is float32, as the reference; the entropy is summed over the sorted counts (in
 * double, rounded to float), so that histograms that are permutations of one another tie exactly
 * and the first is kept, as in the reference's fixtures (where its float32 sum tied them). Codes and dequantization are then quant_codes_rows and
 * quant_fake_rows with (scale, zero). */
typedef struct {
    float tau_range;       /* reference 0.1 */
    int tau_n;             /* reference 50 */
    int symmetric;         /* 0: asymmetric (zero from the range); 1: zero = L / 2 */
    int count_int8;        /* 1: the reference's int8 cast before counting */
} quant_icq_cfg;

/* The reference's candidates p (2 tau_n + 1 of them) into p[]. */
void qa_quant_icq_candidates(const quant_icq_cfg *cfg, float *p);
/* The entropy (bits) of the codes of x under (scale, zero), counted as cfg says. */
float qa_quant_icq_entropy(const float *x, size_t n, int bits, float scale, float zero, const quant_icq_cfg *cfg);
void qa_quant_icq_search(const float *x, size_t n, int bits, const quant_icq_cfg *cfg, float *scale, float *zero);
/* Per row of a [rows, cols] matrix. */
void qa_quant_icq_rows(const float *W, int rows, int cols, int bits, const quant_icq_cfg *cfg, float *scale, float *zero);

#endif
