/* EfficientDM-style QALoRA with temporal LSQ: LoRA merged into the weight before a learnable-scale
 * fake quantizer, and one learnable activation quantizer per sampling timestep.
 *
 * Paper: "EfficientDM: Efficient Quantization-Aware Fine-Tuning of Low-Bit Diffusion Models",
 * He et al., arXiv 2310.03270. Reference code: github ThisisBillhe/EfficientDM
 * (quant_scripts/quant_layer.py: QuantModule_intnlora, TemporalActivationQuantizer;
 * quant_scripts/train_efficientdm.py: the learning rates; read at commit 293e212). Notation and
 * the section-0 search: methods/README.md.
 *
 * Weights: per output channel asymmetric N-bit (N = w_bits, largest code qmax = 2^N - 1) with a
 *   LEARNABLE scale.
 *   init      s_w[o], z_w[o] = the section-0 search (quant_search_rows) on the FP row W[o,:];
 *             Q0[o,i] = clamp(round(W[o,i] / s_w[o]) + z_w[o], 0, qmax)  (codes of the FP weight);
 *             z_w is frozen, s_w trains; the FP weight is never copied (init reads it once).
 *             A [r, in] ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform), B [out, r] = 0.
 *   base      W_b = s_w (Q0 - z_w)                      (moves with s_w)
 *   merged    W_m = W_b + B A                           (no alpha/r scale: lora_scale is ignored)
 *   fake-q    v = W_m / s_w,  q = round(v) + z_w,  W_hat = s_w (clamp(q, 0, qmax) - z_w)
 *   forward   y = X_hat W_hat^T + b
 *
 * Activations, temporal LSQ (TALSQ). The method owns its activation quantization
 *   (QA_METHOD_OWNS_ACT_QUANT: the model passes raw x). One learnable (delta_k, z_k) per sampling
 *   step: n = max(1, sampling_steps) buckets; row m belongs to sample b = m / rows_per_sample,
 *   whose timestep t = step->t[b] in [0, T_train) selects bucket k = floor(t / stride),
 *   stride = floor(T_train / n): the DDIM sampler's own stride, so sampling step i (t = i stride)
 *   uses quantizer i exactly, whatever n (floor(t n / T_train) would merge steps when n does not
 *   divide T_train).
 *   On the first forward the per-tensor section-0 search over that whole batch (all M x in values)
 *   initialises every bucket; nothing is re-calibrated afterwards.
 *             u = x / delta_k,  p = round(u) + z_k,  X_hat = delta_k (clamp(p, 0, a_qmax) - z_k)
 *             with a_qmax = 2^A - 1 (A = a_bits)
 *   a_bits = 0: no TALSQ, X_hat = x.
 *
 * Backward (dy [M,out]; straight-through rounding; a clamp passes gradient inside only, bounds
 * inclusive; "inside" means 0 <= q <= qmax resp. 0 <= p <= a_qmax):
 *   dX_hat = dy W_hat;   G_W = dy^T X_hat  [out, in]
 *   LoRA:    GM = G_W . mask_w (mask_w = 1 inside),  dB += GM A^T,  dA += B^T GM
 *   s_w:     ds_w[o] += sum_i G_W[o,i] dW_hat[o,i]/ds_w with the FULL derivative. W_m depends on s_w
 *            through W_b, dW_m/ds_w = Q0 - z_w, hence v = (Q0 - z_w) + BA / s_w:
 *              inside:  W_hat = s_w round(v)
 *                       dW_hat/ds_w = round(v) + s_w dv/ds_w = round(v) - BA / s_w
 *                                   = (round(v) - v)          (LSQ+ term, W_m held fixed)
 *                                   + (Q0 - z_w)              (STE path through W_b)
 *              outside: W_hat = s_w (bound - z_w), bound = 0 or qmax (the clamp value)
 *                       dW_hat/ds_w = bound - z_w            (the STE path is masked off)
 *   act:     inside:  X_hat = delta round(u):  dX_hat/ddelta = round(u) - u,  dX_hat/dz = 0,
 *                     dX_hat/dx = 1
 *            outside: X_hat = delta (bound - z): dX_hat/ddelta = bound - z,  dX_hat/dz = -delta,
 *                     dX_hat/dx = 0
 *            summed into the (delta_k, z_k) of each row's bucket;  dx += dX_hat . mask_x.
 *   No LSQ gradient scaling 1/sqrt(n Q_p): the plain derivatives, as the reference's autograd.
 *   Deviation from the reference: there the base is dequantized with a frozen copy of the scale
 *   (SimpleDequantizer, requires_grad = False), so W_b does not move with s_w and ds_w is the LSQ+
 *   term alone; here W_b = s_w (Q0 - z_w) uses the trained s_w, hence the (Q0 - z_w) term above.
 *
 * Learning rates (the tuning protocol): the adapter A, B trains at the recipe's (tuned) rate, as
 * every adapter of a table does (lr_scale 1); s_w and the activation deltas and zero points keep
 * their reference ratio to it: at the adapter's reference rate (QA_ADAPTER_REFERENCE_LR, 1e-3)
 * they are the paper's absolute 1e-6 and 5e-4, and they scale with the adapter's rate
 * (lr_scale 1e-6 / 1e-3 and 5e-4 / 1e-3 whatever the recipe's rate).
 *   Deviation: EfficientDM sets the adapter's rate to mean(s_w) / 2500 (its distillation setting
 *   on SD); at this harness's scale that is ~1e-6 and leaves the adapter nearly unmoved in 400
 *   steps (subject fidelity 0.44 at W8A8 against 0.87-0.92 for the other methods), so here the
 *   adapter's rate is tuned like every other method's.
 *
 * Merge (no PTQ): the codes of W_hat with (s_w, z_w) are what deploys; LoRA is discarded.
 *   w_int = clamp(round(W_m / s_w) + z_w, 0, qmax) - z_w (the signed integer weight), row_scale = s_w:
 *   W_deployed = s_w w_int = W_hat exactly. The activation zero points, fractional after training,
 *   are ROUNDED to the nearest integer (not folded into the bias); the state then switches to
 *   deployed mode: forward() uses the frozen codes and the rounded zero points only, which is how
 *   the harness evaluates an act-quant-owning method after merge. merge kind: QA_MERGE_QAT_CODES
 *   (the deployed weights are the codes the trained quantizer already produced; no PTQ).
 *   bits per weight = N + 64 / in (an FP32 scale and an FP32 zero point per row).
 *
 * Training objective: in the adaptation tasks this method, like every other, trains on the task's
 *   loss. EfficientDM's own data-free distillation (x_T ~ N(0, I), the FP model's DDIM trajectory,
 *   the same x_t fed to both models, loss = MSE(eps_quant, eps_fp), one optimizer step per
 *   denoising step) is the training loop's `objective = distill` (harness/adapt.c), not part of
 *   this layer. The loop's AdamW weight decay and grad-norm clip also reach s_w and the activation
 *   quantizers (the reference's AdamW decays them too).
 *
 * Memory (bytes()): frozen = Q0 held as integers (methods/frozen_codes.h: N-bit packed at N <= 4,
 *   one byte at N = 5..8, two at N = 9..16), z_w and the bias per row; the fused pass reads Q0 - z_w
 *   from the codes (exact in float, so W_b is what a float copy of Q0 gave). workspace = the
 *   [out,in] buffers the fused pass keeps from forward to backward (B A, W_hat, the int32 codes
 *   of W_hat, mask_w, dW_hat/ds_w, G_W: 24 bytes per weight); trainable = A, B, s_w (+ per-bucket
 *   delta, z when a_bits > 0); gradients likewise; AdamW 2x trainable; deployed = N-bit codes
 *   packed, FP32 scale and zero per row, FP32 bias, and the per-bucket activation (delta, z) in
 *   FP32 (TALSQ's own deploy cost). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/frozen_codes.h"
#include "methods/lora_adapter.h"

#define EDM_SCALE_LR 1e-6          /* absolute lr of s_w at the adapter's reference rate */
#define EDM_ACT_LR 5e-4            /* absolute lr of the activation deltas and zero points, likewise */

typedef struct {
    int in, out, rank, w_bits, a_bits, n_buckets;
    int calibrated, deployed;
    const qa_step_ctx *step;  /* the model's per-forward timesteps (may be NULL: bucket 0) */
    /* weight quantizer */
    qa_frozen_codes q0;       /* Q0 [out,in], integer codes 0..L of the FP weight (frozen_codes.h) */
    float *w_zero;            /* z_w [out], frozen (an integer, from the search) */
    float *w_scale, *grad_w_scale; /* s_w [out], trainable */
    float *bias;              /* [out] */
    float *A, *B, *dA, *dB;   /* LoRA, [r,in] and [out,r] */
    /* per forward, [out,in] */
    float *lora_update;       /* B A */
    float *W_hat;             /* the fake-quantized merged weight (frozen after merge) */
    int32_t *w_code;          /* clamp(round(W_m / s_w) + z_w, 0, L) */
    float *w_in_range;        /* mask_w: 1 where the weight clamp is inactive */
    float *dW_hat_dscale;     /* dW_hat/ds_w, the full derivative above */
    float *grad_w;            /* G_W, then GM */
    /* activation quantizers, one per sampling step */
    float *act_delta, *act_zero, *grad_act_delta, *grad_act_zero; /* [n_buckets] */
    /* per forward, [rows] */
    const float *x;           /* raw input of the last forward (owned by the caller) */
    float *x_hat, *dx_hat;    /* [rows_cap, in] */
    int32_t *row_bucket;      /* [rows_cap] */
    double *row_grad_delta, *row_grad_zero; /* [rows_cap] per-row partial sums */
    int rows_cap, last_rows;
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
} efficientdm_state;

static int efficientdm_init(void *state, const qa_layer_init *li, qa_error *err) {
    efficientdm_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    const qa_method_cfg *c = li->cfg;
    if (c->w_bits < 1)
        return qa_fail(err, QA_ERR_INPUT,
                       "efficientdm: layer %s: w_bits = 0 (full precision) is not supported: EfficientDM trains a "
                       "quantized weight (bits wNaM with N >= 1)",
                       li->layer_name);
    if (c->w_bits > 16 || c->a_bits < 0 || c->a_bits > 16)
        return qa_fail(err, QA_ERR_INPUT, "efficientdm: layer %s: w_bits = %d, a_bits = %d outside 1..16 / 0..16",
                       li->layer_name, c->w_bits, c->a_bits);
    if (c->rank < 1 || c->rank > li->in || c->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "efficientdm: rank %d is outside 1..min(in=%d, out=%d) for %s", c->rank,
                       li->in, li->out, li->layer_name);
    const int in = li->in, out = li->out;
    const size_t n = (size_t)in * out;
    s->in = in;
    s->out = out;
    s->rank = c->rank;
    s->w_bits = c->w_bits;
    s->a_bits = c->a_bits;
    s->n_buckets = c->sampling_steps > 0 ? c->sampling_steps : 1;
    s->step = li->step;

    /* weight quantizer: the section-0 search on each FP row; Q0 = codes of the FP weight */
    s->w_scale = qa_alloc(sizeof(float) * out);
    s->grad_w_scale = qa_alloc(sizeof(float) * out);
    s->w_zero = qa_alloc(sizeof(float) * out);
    qa_quant_search_rows(li->W, out, in, s->w_bits, s->w_scale, s->w_zero);
    const float lmax = (float)((1 << s->w_bits) - 1);
    int32_t *q0 = qa_alloc(sizeof(int32_t) * n);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            size_t k = (size_t)o * in + i;
            float q = nearbyintf(li->W[k] / s->w_scale[o]) + s->w_zero[o];
            q0[k] = (int32_t)(q < 0.f ? 0.f : (q > lmax ? lmax : q));
        }
    qa_frozen_codes_alloc(&s->q0, n, s->w_bits);
    qa_frozen_codes_pack(&s->q0, q0);
    qa_free(q0);
    s->bias = qa_alloc(sizeof(float) * out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * out);

    /* LoRA: A kaiming-uniform, B zeros */
    qa_lora_factors_init(in, out, s->rank, li->rng, &s->A, &s->B, &s->dA, &s->dB);

    float **weight_bufs[] = {&s->lora_update, &s->W_hat, &s->w_in_range, &s->dW_hat_dscale, &s->grad_w};
    for (size_t b = 0; b < sizeof weight_bufs / sizeof weight_bufs[0]; b++)
        *weight_bufs[b] = qa_alloc(sizeof(float) * n);
    s->w_code = qa_alloc(sizeof(int32_t) * n);

    float **bucket_bufs[] = {&s->act_delta, &s->act_zero, &s->grad_act_delta, &s->grad_act_zero};
    for (size_t b = 0; b < sizeof bucket_bufs / sizeof bucket_bufs[0]; b++)
        *bucket_bufs[b] = qa_alloc(sizeof(float) * s->n_buckets);
    return QA_OK;
}

/* W_hat (and the backward's mask and dW_hat/ds_w) from the current s_w, A, B: one pass over [out,in]. */
static void build_weight(efficientdm_state *s) {
    const int in = s->in, out = s->out;
    qa_matmul(out, in, s->rank, s->B, 0, s->A, 0, s->lora_update, 0, NULL); /* B A */
    const float lmax = (float)((1 << s->w_bits) - 1);
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++) {
        const float scale = s->w_scale[o], zero = s->w_zero[o];
        const size_t row = (size_t)o * in;
        for (int i = 0; i < in; i++) {
            const size_t k = row + i;
            const float q0_minus_z = (float)qa_frozen_codes_get(&s->q0, k) - zero; /* exact, as Q0 in float */
            const float w_merged = scale * q0_minus_z + s->lora_update[k]; /* W_m = W_b + B A */
            const float v = w_merged / scale;
            const float v_round = nearbyintf(v);
            const float q = v_round + zero;
            const int inside = q >= 0.f && q <= lmax;
            const float q_clamped = q < 0.f ? 0.f : (q > lmax ? lmax : q);
            s->w_code[k] = (int32_t)q_clamped;
            s->W_hat[k] = scale * (q_clamped - zero);
            s->w_in_range[k] = inside ? 1.f : 0.f;
            s->dW_hat_dscale[k] = inside ? (v_round - v) + q0_minus_z : q_clamped - zero;
        }
    }
}

static void ensure_rows(efficientdm_state *s, int M) {
    if (M <= s->rows_cap) return;
    qa_free(s->x_hat);
    qa_free(s->dx_hat);
    qa_free(s->row_bucket);
    qa_free(s->row_grad_delta);
    qa_free(s->row_grad_zero);
    s->x_hat = qa_alloc(sizeof(float) * (size_t)M * s->in);
    s->dx_hat = qa_alloc(sizeof(float) * (size_t)M * s->in);
    s->row_bucket = qa_alloc(sizeof(int32_t) * (size_t)M);
    s->row_grad_delta = qa_alloc(sizeof(double) * (size_t)M);
    s->row_grad_zero = qa_alloc(sizeof(double) * (size_t)M);
    s->rows_cap = M;
}

/* Bucket of input row m: k = floor(t / stride), stride = floor(T_train / n), clamped to 0..n-1.
 * Without a step context (a layer used outside the model) every row uses bucket 0. */
static int bucket_of_row(const efficientdm_state *s, int m) {
    const qa_step_ctx *st = s->step;
    if (!st || !st->t || st->rows_per_sample < 1 || st->T_train < 1) return 0;
    const int sample = m / st->rows_per_sample;
    QA_ASSERT(sample < st->B);
    int stride = st->T_train / s->n_buckets;
    double k = floor((double)st->t[sample] / (stride > 0 ? stride : 1));
    if (k < 0) k = 0;
    if (k > s->n_buckets - 1) k = s->n_buckets - 1;
    return (int)k;
}

static void efficientdm_forward(void *state, const float *x, float *y, int M) {
    efficientdm_state *s = state;
    const int in = s->in;
    s->x = x;
    s->last_rows = M;
    ensure_rows(s, M);
    if (!s->deployed) build_weight(s); /* deployed: W_hat holds the frozen codes times s_w */
    const float *x_used = x;
    if (s->a_bits > 0) {
        if (!s->calibrated) { /* the first batch initialises every timestep's quantizer */
            float delta, zero;
            qa_quant_search(x, (size_t)M * in, s->a_bits, &delta, &zero);
            for (int k = 0; k < s->n_buckets; k++) {
                s->act_delta[k] = delta;
                s->act_zero[k] = zero;
            }
            s->calibrated = 1;
        }
        const float amax = (float)((1 << s->a_bits) - 1);
        for (int m = 0; m < M; m++) s->row_bucket[m] = bucket_of_row(s, m);
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) {
            const float delta = s->act_delta[s->row_bucket[m]], zero = s->act_zero[s->row_bucket[m]];
            const float *xr = x + (size_t)m * in;
            float *xq = s->x_hat + (size_t)m * in;
            for (int i = 0; i < in; i++) {
                float p = nearbyintf(xr[i] / delta) + zero;
                p = p < 0.f ? 0.f : (p > amax ? amax : p);
                xq[i] = delta * (p - zero);
            }
        }
        x_used = s->x_hat;
    }
    qa_base_product_forward(&s->base_mm, y, x_used, s->W_hat, s->bias, M); /* y = X_hat W_hat^T + b */
}

static void efficientdm_backward(void *state, const float *dy, float *dx, int M) {
    efficientdm_state *s = state;
    QA_ASSERT(!s->deployed);  /* after merge the layer is for evaluation only */
    QA_ASSERT(M == s->last_rows);
    const int in = s->in, out = s->out;
    const float *x_used = s->a_bits > 0 ? s->x_hat : s->x;

    /* activations: dX_hat = dy W_hat, then the quantizer's STE mask and its LSQ+ gradients */
    if (s->a_bits > 0) {
        qa_matmul(M, in, out, dy, 0, s->W_hat, 0, s->dx_hat, 0, NULL);
        const float amax = (float)((1 << s->a_bits) - 1);
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) {
            const float delta = s->act_delta[s->row_bucket[m]], zero = s->act_zero[s->row_bucket[m]];
            const float *xr = s->x + (size_t)m * in, *gr = s->dx_hat + (size_t)m * in;
            double g_delta = 0, g_zero = 0;
            for (int i = 0; i < in; i++) {
                const float u = xr[i] / delta, u_round = nearbyintf(u), p = u_round + zero;
                if (p >= 0.f && p <= amax) {
                    g_delta += (double)gr[i] * (u_round - u);
                    if (dx) dx[(size_t)m * in + i] += gr[i];
                } else {
                    const float bound = p < 0.f ? 0.f : amax;
                    g_delta += (double)gr[i] * (bound - zero);
                    g_zero -= (double)gr[i] * delta;
                }
            }
            s->row_grad_delta[m] = g_delta;
            s->row_grad_zero[m] = g_zero;
        }
        for (int m = 0; m < M; m++) {
            s->grad_act_delta[s->row_bucket[m]] += (float)s->row_grad_delta[m];
            s->grad_act_zero[s->row_bucket[m]] += (float)s->row_grad_zero[m];
        }
    } else if (dx) {
        qa_base_product_backward_dx(&s->base_mm, dx, dy, s->W_hat, M); /* dx += dy W_hat */
    }

    /* weights: G_W = dy^T X_hat; s_w by the full LSQ+ derivative; A, B through the masked STE */
    qa_matmul(out, in, M, dy, 1, x_used, 0, s->grad_w, 0, NULL);
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++) {
        const size_t row = (size_t)o * in;
        double g_scale = 0;
        for (int i = 0; i < in; i++) {
            g_scale += (double)s->grad_w[row + i] * s->dW_hat_dscale[row + i];
            s->grad_w[row + i] *= s->w_in_range[row + i]; /* GM = G_W . mask_w */
        }
        s->grad_w_scale[o] += (float)g_scale;
    }
    qa_matmul(out, s->rank, in, s->grad_w, 0, s->A, 1, s->dB, 1, NULL); /* dB += GM A^T */
    qa_matmul(s->rank, in, out, s->B, 1, s->grad_w, 0, s->dA, 1, NULL); /* dA += B^T GM */
}

/* lr_scale of a quantizer tensor whose absolute rate is absolute_lr when the adapter trains at
 * its reference rate: the ratio to the adapter's rate, kept at every rate. */
static float lr_ratio_to_adapter(double absolute_lr) {
    return (float)(absolute_lr / QA_ADAPTER_REFERENCE_LR);
}

static int efficientdm_params(void *state, qa_param *outp, int max) {
    efficientdm_state *s = state;
    qa_param all[] = {
        {"lora_A", s->A, s->dA, (size_t)s->rank * s->in, 1.0f},
        {"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f},
        {"w_scale", s->w_scale, s->grad_w_scale, (size_t)s->out, lr_ratio_to_adapter(EDM_SCALE_LR)},
        {"act_delta", s->act_delta, s->grad_act_delta, (size_t)s->n_buckets, lr_ratio_to_adapter(EDM_ACT_LR)},
        {"act_zero", s->act_zero, s->grad_act_zero, (size_t)s->n_buckets, lr_ratio_to_adapter(EDM_ACT_LR)},
    };
    int n_all = s->a_bits > 0 ? 5 : 3;
    if (max < n_all) return 0;
    for (int i = 0; i < n_all; i++) outp[i] = all[i];
    return n_all;
}

static int efficientdm_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    efficientdm_state *s = state;
    if (!s->deployed) {
        build_weight(s); /* the codes of W_hat from the trained s_w, A, B; LoRA is discarded after this */
        for (int k = 0; k < s->n_buckets; k++) s->act_zero[k] = nearbyintf(s->act_zero[k]); /* rounded */
        s->deployed = 1;
    }
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    d->w_int = qa_alloc(sizeof(int32_t) * (size_t)s->in * s->out);
    d->row_scale = qa_alloc(sizeof(float) * s->out);
    for (int o = 0; o < s->out; o++) {
        const int32_t zero = (int32_t)s->w_zero[o]; /* an integer: the search rounds it */
        d->row_scale[o] = s->w_scale[o];
        for (int i = 0; i < s->in; i++) {
            size_t k = (size_t)o * s->in + i;
            d->w_int[k] = s->w_code[k] - zero;
        }
    }
    d->needs_ptq = 0;
    d->merge = QA_MERGE_QAT_CODES;
    d->bits_per_weight = s->w_bits + 64.0 / s->in;
    snprintf(d->note, sizeof d->note, "QAT codes of W_b+BA, no PTQ; act zero points rounded");
    return QA_OK;
}

static void efficientdm_bytes(const void *state, qa_bytes *b) {
    const efficientdm_state *s = state;
    const size_t n = (size_t)s->in * s->out, lora = (size_t)s->rank * (s->in + s->out);
    const size_t act = s->a_bits > 0 ? 2 * (size_t)s->n_buckets : 0;
    b->frozen = qa_frozen_codes_bytes(n, s->w_bits) + 2 * (size_t)s->out * sizeof(float); /* Q0; z_w; bias */
    b->trainable = (lora + (size_t)s->out + act) * sizeof(float);           /* A, B, s_w, act (delta, z) */
    b->gradients = b->trainable;
    b->optimizer = 2 * b->trainable;
    b->deployed = (n * (size_t)s->w_bits + 7) / 8 + 2 * (size_t)s->out * sizeof(float) /* codes; scale, zero */
                  + (size_t)s->out * sizeof(float) + act * sizeof(float);          /* bias; act (delta, z) */
    /* B A, W_hat, mask_w, dW_hat/ds_w, G_W in float and the codes of W_hat in int32 */
    b->workspace = n * (5 * sizeof(float) + sizeof(int32_t));
}

static int efficientdm_inspect(const void *state, qa_named_tensor *o, int max) {
    const efficientdm_state *s = state;
    const int rows = s->last_rows;
    qa_named_tensor all[] = {
        {"W_hat", s->W_hat, NULL, 2, {s->out, s->in}},
        {"W_code", NULL, s->w_code, 2, {s->out, s->in}},
        {"s_w", s->w_scale, NULL, 1, {s->out, 1}},
        {"z_w", s->w_zero, NULL, 1, {s->out, 1}},
        {"act_delta", s->act_delta, NULL, 1, {s->n_buckets, 1}},
        {"act_zero", s->act_zero, NULL, 1, {s->n_buckets, 1}},
        {"act_bucket", NULL, s->row_bucket, 1, {rows, 1}},
        {"X_hat", s->x_hat, NULL, 2, {rows, s->in}},
    };
    int n_all = s->a_bits > 0 && rows > 0 ? 8 : 6;
    int k = 0;
    for (int i = 0; i < n_all && k < max; i++) o[k++] = all[i];
    return k;
}

static void efficientdm_destroy(void *state) {
    efficientdm_state *s = state;
    qa_base_product_free(&s->base_mm);
    qa_frozen_codes_free(&s->q0);
    float *fs[] = {s->w_zero, s->w_scale, s->grad_w_scale, s->bias, s->A, s->B, s->dA, s->dB,
                   s->lora_update, s->W_hat, s->w_in_range, s->dW_hat_dscale, s->grad_w, s->act_delta,
                   s->act_zero, s->grad_act_delta, s->grad_act_zero, s->x_hat, s->dx_hat};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) qa_free(fs[i]);
    qa_free(s->w_code);
    qa_free(s->row_bucket);
    qa_free(s->row_grad_delta);
    qa_free(s->row_grad_zero);
}

const qa_method qa_method_efficientdm = {
    .name = "efficientdm",
    .summary = "EfficientDM: QALoRA on a learnable-scale INT-N weight + per-timestep LSQ activations; "
               "deploy = trained codes, no PTQ",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(efficientdm_state),
    .init = efficientdm_init,
    .forward = efficientdm_forward,
    .backward = efficientdm_backward,
    .params = efficientdm_params,
    .merge = efficientdm_merge,
    .bytes = efficientdm_bytes,
    .destroy = efficientdm_destroy,
    .inspect = efficientdm_inspect,
    .needs_weight_bits = 1,
    .flags = QA_METHOD_OWNS_ACT_QUANT,
};
