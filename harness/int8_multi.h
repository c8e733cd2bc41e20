/* Integer execution of deployed layers whose weights are not one set of per-row 8-bit codes, on
 * the same u8 x s8 -> s32 kernel as int8.h (same activation quantizer: per-tensor asymmetric u8
 * codes xq, x_hat = dx (xq - zx)). Two forms:
 *
 * Planes: integer weights w [out, in] with one float scale per row, W_ok = s_o w_ok (IntLoRA-MUL's
 * U_int * W_int, IntLoRA-SHIFT's sign 2^(k - k_min) W_int, ...), w wider than s8. w is split into
 * P balanced base-256 digits, lowest first,
 *   w = sum_p 256^p u_p,   u_p in [-128, 127],
 * each plane one u8 x s8 matmul on the same activation codes, combined in double:
 *   sum_k x_hat_k W_ok = dx s_o sum_p 256^p [ sum_k xq_k u_pok - zx sum_k u_pok ].
 * Exact: each plane's sum is an integer below 2^24 at K <= QA_INT8_MAX_K (exact in the f32
 * accumulator), the combination an integer below 2^48 (exact in double); only the final scaling
 * rounds. At most QA_INT8_MAX_PLANES planes: w from -2^31 to 127 (1 + 256 + 256^2 + 256^3) =
 * 2139062143.
 *
 * Groups: codes q in [0, 255] with a float scale and a float zero point per (group j of g input
 * columns, row o), W_ok = s_jo (q_ok - z_jo) for k in group j (QA-LoRA's group-wise codes with
 * FP16 zero points, PEQA's groups). The activation codes are quantized once; each group's columns
 * run as a u8 x s8 matmul [M, g] x [g, out] (codes held as u = q - 128; all groups in one batched
 * call, the group's columns viewed in place), then
 *   sum_k x_hat_k W_ok = dx sum_j [ s_jo I_jo - (s_jo z_jo) d_j ],   d_j = xsum_j - g zx,
 *   I_jo = sum_{k in j} (xq_k - zx) q_ok = acc_jo + 128 d_j - zx usum_jo,
 * where I_jo and d_j are exact integers (per-group integer accumulation); the scales and the
 * zero point (not an integer in QA-LoRA) apply in float, and the groups are summed in float. */
#ifndef QA_INT8_MULTI_H
#define QA_INT8_MULTI_H

#include <stdint.h>

#include "harness/int8.h"
#include "harness/quant.h"

#define QA_INT8_MAX_PLANES 4

typedef enum { QA_INT8_PLANES = 0, QA_INT8_GROUPS } qa_int8_multi_kind;

typedef struct {
    qa_int8_multi_kind kind;
    int in, out;
    int n_parts;        /* planes, or groups */
    int width;          /* input columns per part: in (planes) or g (groups) */
    int8_t *u;          /* [n_parts][out, width]: plane digits, or q - 128 */
    int32_t *usum;      /* [n_parts][out]: sum over the part's columns of u */
    float *scale;       /* planes: [out]; groups: [n_parts][out] */
    float *zero;        /* groups: [n_parts][out]; NULL for planes */
    float *scale_zero;  /* groups: [n_parts][out] scale * zero */
    float *ones;        /* [out] unit output scales for the primitive */
    float *zeros;       /* [out] the bias when there is none */
    const float *bias;  /* borrowed, may be NULL */
    uint8_t *xq;        /* [cap, in] */
    int32_t *xsum;      /* [cap, n_parts]: sum of the part's codes (groups), or [cap] */
    float *acc;         /* [n_parts][cap, out]: each part's matmul */
    double *sum;        /* planes: [cap, out], the planes combined, row by row */
    int cap;
} qa_int8_multi;

/* Planes (balanced base-256 digits) the widest of w[0..n) needs: 1 when every entry lies in
 * [-128, 127], 2 up to [-32896, 32639], ...; QA_INT8_MAX_PLANES + 1 when more are needed. */
int qa_int8_planes_needed(const int32_t *w, size_t n);
/* W [out,in] = row_scale[o] w[o,in]. Returns 0, or -1 when K > QA_INT8_MAX_K or w needs more
 * than QA_INT8_MAX_PLANES planes. */
int qa_int8_planes_init(qa_int8_multi *L, const int32_t *w, const float *row_scale, int in, int out, const float *bias);
/* W [out,in] = scale[j,o] (q[o,k] - zero[j,o]) for k in group j = k / (in / n_groups); q in
 * [0, 255]. Returns 0, or -1 when n_groups does not divide in, a group is wider than
 * QA_INT8_MAX_K, or a code lies outside [0, 255]. */
int qa_int8_groups_init(qa_int8_multi *L, const int32_t *q, const float *scale, const float *zero, int n_groups, int in,
                        int out, const float *bias);
/* y[M,out] = x_hat W^T + b with the activation quantizer aq (8 bits, calibrated, whole zero point). */
void qa_int8_multi_forward(qa_int8_multi *L, const qa_actq *aq, const float *x, float *y, int M);
void qa_int8_multi_free(qa_int8_multi *L);
/* The kernel in words: "u8s8 2-plane", "u8s8 group". */
const char *qa_int8_multi_name(const qa_int8_multi *L, char *buf, size_t len);

#endif
