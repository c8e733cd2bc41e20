/* Layers, each a forward and a backward on plain row-major float arrays (llm.c style).
 * Backward functions ACCUMULATE (+=) into every gradient they produce, inputs included: the
 * caller zeroes gradients once per step. Shapes are in the comments; B = batch, T = tokens,
 * C = channels, H = heads. */
#ifndef QA_NN_H
#define QA_NN_H

#include <stddef.h>
#include <stdint.h>

#include "harness/int8.h"

#include "harness/backend.h"

/* The arithmetic of a layer's matmuls in training. f32 everywhere, or bf16 operands with f32
 * accumulation and f32 results (master weights, gradients and optimizer state stay f32). */
typedef enum { QA_DTYPE_F32 = 0, QA_DTYPE_BF16 = 1, QA_DTYPE_COUNT } qa_dtype;
const char *qa_dtype_name(qa_dtype dtype);
/* "f32" | "bf16"; QA_ERR_INPUT (-2) otherwise. */
int qa_dtype_parse(const char *name, qa_dtype *dtype);

/* y[M,out] = x[M,in] W[out,in]^T + b[out]   (b may be NULL) */
void qa_linear_forward(float *y, const float *x, const float *W, const float *b, int M, int in, int out);
/* dx += dy W; dW += dy^T x; db += sum_rows dy.  Any of dx, dW, db may be NULL (not wanted). */
void qa_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int M, int in, int out);

/* The bf16 linear layer: the same products as linear_forward / linear_backward with bf16 operands.
 * The forward converts x and W (the f32 master weight, every call: once per training step) to bf16
 * and keeps both for the backward; the backward converts dy once and uses it for both products:
 *   y = bf16(x) bf16(W)^T + b;  dx += bf16(dy) bf16(W);  dW += bf16(dy)^T bf16(x);  db += sum_rows dy.
 * Each product's error is bounded by about 2 * 2^-8 * sum_k |a_k b_k| (8 significant bits per operand). */
typedef struct {
    qa_bf16 *x, *W, *dy;  /* [max_rows, in], [out, in], [max_rows, out] */
    int max_rows, in, out;
    int rows;             /* rows of the last forward */
    const qa_bf16 *x_used;/* its bf16 input, which the backward's dW reads: x, or another layer's copy */
} qa_linear_bf16;

void qa_linear_bf16_init(qa_linear_bf16 *c, int max_rows, int in, int out);
void qa_linear_bf16_free(qa_linear_bf16 *c);
size_t qa_linear_bf16_bytes(const qa_linear_bf16 *c);
void qa_linear_forward_bf16(qa_linear_bf16 *c, float *y, const float *x, const float *W, const float *b, int M);
/* The same forward on an input already in bf16 (another layer's c->x: q, k and v read one x), which
 * must stay unchanged until this layer's backward. */
void qa_linear_forward_bf16_on(qa_linear_bf16 *c, float *y, const qa_bf16 *x_bf16, const float *W, const float *b, int M);
/* Backward of c's last forward (same M); dx, dW, db may be NULL. */
void qa_linear_backward_bf16(qa_linear_bf16 *c, float *dx, float *dW, float *db, const float *dy, int M);
/* The same with two options for a caller that saves memory passes: dx_accumulate = 0 writes
 * dx = dy W instead of adding it (dx need not be zeroed first); dy_ready = 1 says the caller has
 * already written bf16(dy) into c->dy (the GELU backward does, in the pass that computes dy), and
 * dy is then read only for db (NULL allowed without db). */
void qa_linear_backward_bf16_ex(qa_linear_bf16 *c, float *dx, int dx_accumulate, float *dW, float *db, const float *dy,
                                int dy_ready, int M);

/* Layer norm without affine parameters over the last dim C (the affine comes from adaLN):
 * y = (x - mean) * rstd, rstd = 1/sqrt(var + 1e-6). mean, rstd are [M] (kept for backward). */
void qa_layernorm_forward(float *y, float *mean, float *rstd, const float *x, int M, int C);
/* dx += rstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
void qa_layernorm_backward(float *dx, const float *dy, const float *x, const float *mean,
                        const float *rstd, int M, int C);

/* adaLN modulation, per sample b: y[b,t,:] = x[b,t,:] * (1 + scale[b,:]) + shift[b,:].
 * shift and scale are rows of a [B, cond_stride] array (offsets into the adaLN output). */
void qa_modulate_forward(float *y, const float *x, const float *shift, const float *scale,
                      int cond_stride, int B, int T, int C);
/* dx += dy (1 + scale); dshift += sum_t dy; dscale += sum_t dy x */
void qa_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                       const float *scale, int cond_stride, int B, int T, int C);
/* The same writing dx = dy (1 + scale) instead of adding it (dx need not be zeroed). */
void qa_modulate_backward_write(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                                const float *scale, int cond_stride, int B, int T, int C);

/* The bf16 training forward's layer norm and modulation in one pass, the floats of
 * qa_layernorm_forward then qa_modulate_forward (ln, mean, rstd kept for backward), with the
 * bf16 copy of h = modulate(ln) written into h16 (the next layer's bf16 input) unless NULL. */
void qa_layernorm_modulate_forward_bf16(float *ln, float *mean, float *rstd, float *h, qa_bf16 *h16, const float *x,
                                        const float *shift, const float *scale, int cond_stride, int B, int T, int C);

/* Layer norm and modulation in one pass for a forward no backward follows (inference):
 * h = LN(x)(1 + scale) + shift with layernorm_forward's statistics and modulate_forward's
 * expression, equal to the two bit for bit; nothing is kept for a backward (no normalized copy,
 * mean or rstd). h may not alias x. */
void qa_layernorm_modulate_forward(float *h, const float *x, const float *shift, const float *scale, int cond_stride,
                                   int B, int T, int C);

/* Gated residual: x_out[b,t,:] = x[b,t,:] + gate[b,:] * y[b,t,:]  (x_out may be x: in place) */
void qa_gated_residual_forward(float *x_out, const float *x, const float *y, const float *gate, int cond_stride,
                               int B, int T, int C);
/* dy += gate * dx; dgate += sum_t dx * y   (dx, the residual stream grad, passes through) */
void qa_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                             const float *gate, int cond_stride, int B, int T, int C);

/* dy = gate * dx (written, not added: dy need not be zeroed), its bf16 copy in dy16 unless NULL,
 * and dgate += sum_t dx * y: the bf16 training backward's gated residual. */
void qa_gated_residual_backward_bf16(float *dy, qa_bf16 *dy16, float *dgate, const float *dx, const float *y,
                                     const float *gate, int cond_stride, int B, int T, int C);

/* GELU, tanh approximation (as in GPT-2 and DiT): y = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
void qa_gelu_forward(float *y, const float *x, size_t n);
void qa_gelu_backward(float *dx, const float *dy, const float *x, size_t n);
/* dy = GELU'(x) dy: the gradient through GELU written over the incoming one, for a caller with no
 * further use for it (no zeroed dx buffer to fill). */
void qa_gelu_backward_in_place(float *dy, const float *x, size_t n);
/* The bf16 training step's GELU, for a next layer that reads only the bf16 copy of GELU(x): the
 * forward writes that copy (y16 = bf16(GELU(x)), the floats of qa_gelu_forward rounded) and the
 * sigmoid factor s of GELU(x) = x s, which the backward reads instead of computing it again
 * (s = NULL: computed again). The backward is qa_gelu_backward_in_place's dy = GELU'(x) dy, bit
 * for bit, and writes bf16(dy) into dy16 (the previous layer's output gradient) unless NULL. */
void qa_gelu_forward_bf16(float *s, qa_bf16 *y16, const float *x, size_t n);
void qa_gelu_backward_bf16(float *dy, qa_bf16 *dy16, const float *x, const float *s, size_t n);
/* SiLU: y = x sigmoid(x) */
void qa_silu_forward(float *y, const float *x, size_t n);
void qa_silu_backward(float *dx, const float *dy, const float *x, size_t n);
void qa_relu_forward(float *y, const float *x, size_t n);
void qa_relu_backward(float *dx, const float *dy, const float *x, size_t n);

/* Multi-head softmax attention, no mask. q, k, v, out are [B,T,C] with C = H*hd (head h uses
 * channels h*hd..); probs is [B,H,T,T] (kept for backward).
 * S = q k^T / sqrt(hd);  P = softmax_rows(S);  out = P v */
void qa_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       int B, int T, int C, int H);
/* The same for a forward no backward follows (sampling, evaluation; the deployed model): equal
 * bit for bit, the softmax rows processed in groups whose in-order sums overlap. */
void qa_attention_forward_inference(float *out, float *probs, const float *q, const float *k, const float *v,
                                    int B, int T, int C, int H);
/* dP = dout v^T; dv += P^T dout; dS = P (dP - rowsum(dP P)); dq += dS k / sqrt(hd);
 * dk += dS^T q / sqrt(hd).  scratch must hold 2 * B*H*T*T floats. */
void qa_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                        const float *q, const float *k, const float *v, float *scratch, int B,
                        int T, int C, int H);

/* The same attention with bf16 operands for its four products (f32 accumulation; the softmax, P
 * and dS = P (dP - rowsum(dP P)) computed in f32). The forward converts q, k, v once and writes
 * the bf16 copy of P in the softmax pass; the backward converts dout once and writes dS in bf16
 * in the pass that computes it; every copy lives in A, whose buffers grow on demand:
 *   S = bf16(q) bf16(k)^T / sqrt(hd);  P = softmax_rows(S);  out = bf16(P) bf16(v)
 *   dP = bf16(dout) bf16(v)^T;  dv += bf16(P)^T bf16(dout);  dq += bf16(dS) bf16(k) / sqrt(hd);
 *   dk += bf16(dS)^T bf16(q) / sqrt(hd).
 * Each product carries the bf16 bound of qa_linear_bf16 (about 2 * 2^-8 * sum_k |a_k b_k|). */
typedef struct {
    qa_bf16 *q, *k, *v, *p;  /* the forward's copies, read by the backward: [B*T, C] x 3, [B, H, T, T] */
    qa_bf16 *dout, *ds;      /* the backward's: [B*T, C], [B, H, T, T] */
    size_t cap_tokens, cap_probs;
} qa_attention_bf16;

void qa_attention_forward_bf16(qa_attention_bf16 *A, float *out, float *probs, const float *q, const float *k,
                               const float *v, int B, int T, int C, int H);
/* Backward of A's last forward (same shapes, probs its f32 P). scratch holds B*H*T*T floats.
 * accumulate = 0 writes dq, dk, dv instead of adding to them (they need not be zeroed). */
void qa_attention_backward_bf16(qa_attention_bf16 *A, float *dq, float *dk, float *dv, int accumulate,
                                const float *dout, const float *probs, float *scratch, int B, int T, int C, int H);
size_t qa_attention_bf16_bytes(const qa_attention_bf16 *A);
void qa_attention_bf16_free(qa_attention_bf16 *A);

/* Sinusoidal timestep features (DiT / ADM convention): for i < C/2, f = exp(-ln(10000) i/(C/2)),
 * y[b, i] = cos(t_b f), y[b, C/2 + i] = sin(t_b f). */
void qa_timestep_features(float *y, const float *t, int B, int C);

/* Embedding lookup y[b,:] = table[ids[b],:] and its backward dtable[ids[b],:] += dy[b,:]. */
void qa_embedding_forward(float *y, const float *table, const int *ids, int B, int C);
void qa_embedding_backward(float *dtable, const float *dy, const int *ids, int B, int C);

/* Softmax cross-entropy over K classes: returns mean loss; dlogits = (softmax - onehot)/B. */
float qa_softmax_xent_forward_backward(float *dlogits, float *probs, const float *logits,
                                    const int *labels, int B, int K);

/* Deployed (inference-only) operations fused with integer layers (harness/int8.h): each equals
 * the unfused composition bit for bit.
 * Codes of LN(x)(1 + scale) + shift for the integer layer `next` (into next->xq, next->xsum),
 * quantized with next's activation quantizer aq. */
void qa_layernorm_modulate_quantize(qa_int8_linear *next, const qa_actq *aq, const float *x, const float *shift,
                                    const float *scale, int cond_stride, int B, int T, int C);
/* Codes of GELU(L's output) for `next` (L's accumulator must hold its matmul; L prepared). */
void qa_int8_gelu_quantize(const qa_int8_linear *L, qa_int8_linear *next, const qa_actq *aq, int M);
/* x_out[b,t,:] = x_res[b,t,:] + gate[b,:] * L's output row (x_out may not alias x_res). */
void qa_int8_gated_residual(const qa_int8_linear *L, float *x_out, const float *x_res, const float *gate,
                            int cond_stride, int B, int T);
/* L's output rows [M, N] split column-wise into n_parts buffers [M, N / n_parts]. */
void qa_int8_split_rows(const qa_int8_linear *L, float *const *parts, int n_parts, int M);

/* Integer attention (deployed model, an option beyond the paper's W8A8): q, k, v and the softmax
 * probabilities P quantized per tensor at 8 bits (the section-0 quantizer, calibrated on the first
 * call of the fake-quantized reference), QK^T and PV on u8 x s8 kernels with the zero points
 * corrected exactly in int32 (k and v held as s8 = code - 128, as the linear layers' weights),
 * softmax in float. */
typedef struct {
    qa_actq q, k, v, p;
    uint8_t *qc, *pc;            /* q codes [B*T, C], P codes [B, H, T, T] */
    int8_t *kc, *vc;             /* k, v codes - 128 [B*T, C] */
    int32_t *qsum, *ksum;        /* per (token, head): sum of q codes, of k codes - 128 */
    int32_t *vsum, *psum;        /* per (sample, channel): sum over tokens of v codes - 128; per P row: code sum */
    float *acc;                  /* [B, H, T, T] */
    size_t cap_tokens, cap_probs;
} qa_int8_attention;

/* The reference: float attention on fake-quantized q, k, v and P (calibrates A's quantizers on
 * the first call). scratch holds 3 B*T*C floats. */
void qa_attention_fakequant_forward(qa_int8_attention *A, float *out, float *probs, const float *q, const float *k,
                                    const float *v, float *scratch, int B, int T, int C, int H);
/* The same on the integer kernels (A calibrated). Equal to the reference up to float rounding,
 * which can move a P code across a rounding boundary (one code step dp times |v_hat|). */
void qa_int8_attention_forward(qa_int8_attention *A, float *out, float *probs, const float *q, const float *k,
                               const float *v, int B, int T, int C, int H);
/* The same in the fused deployed forward: q, k, v from the stacked q/k/v integer layer's
 * accumulator (its matmul run; coded without a float copy), and each output row also quantized
 * for the next integer layer (the attention output projection) with its quantizer aq. The codes
 * and outputs equal qa_int8_attention_forward's on qa_int8_split_rows's q, k, v bit for bit. */
void qa_int8_attention_forward_fused(qa_int8_attention *A, const qa_int8_linear *qkv, qa_int8_linear *next,
                                     const qa_actq *aq, float *out, float *probs, int B, int T, int C, int H);
void qa_int8_attention_release(qa_int8_attention *A); /* frees the buffers, keeps the quantizers */
/* 1 when A's quantizers are calibrated with whole zero points the integer path handles exactly
 * (-257..512; the codes themselves are clamped to 0..255). */
int qa_int8_attention_ready(const qa_int8_attention *A);

/* Elementwise helpers */
void qa_vec_add(float *y, const float *x, size_t n);      /* y += x */
void qa_vec_scale(float *y, float s, size_t n);           /* y *= s */

#endif
