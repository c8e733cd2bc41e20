/* The denoiser: a small class-conditional DiT for 28x28 single-channel images.
 *
 *   tokens   = [ c ; patchify(x_t) W_patch^T + b ] + pos          T = 1 + (28/p)^2 tokens
 *   c        = MLP(qa_timestep_features(t)) + class_table[y]          (y = null slot for CFG)
 *   block    : x += gate1 * Attn(LN(x)(1 + scale1) + shift1)
 *              x += gate2 * MLP (LN(x)(1 + scale2) + shift2),      (shift|scale|gate)x2 = adaLN(SiLU(c))
 *   output   = Linear(LN(x)(1 + scale) + shift) on the patch tokens, unpatchified -> epsilon
 * adaLN-zero: every modulation and the output layer start at zero, so each block starts as the
 * identity. The conditioning token lets the attention projections (the layers adapters wrap) see
 * the class directly, as SD's cross-attention k/v see the prompt.
 *
 * Every linear layer is a qa_linear "slot": a plain FP layer (pre-training), a quantized frozen
 * layer (W bits per channel, A-bit fake-quantized input), an adapted layer run by a method plugin,
 * or a deployed layer with merged weights. The model never names a method. */
#ifndef QA_MODEL_H
#define QA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "harness/int8.h"
#include "harness/int8_multi.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"

typedef struct {
    int img;        /* image side (28) */
    int patch;      /* patch side */
    int dim;        /* model width */
    int depth;      /* transformer blocks */
    int heads;
    int mlp_ratio;
    int n_classes;  /* classes the base knows (10) */
    int n_spare;    /* spare slots for new "tokens" bound by adaptation */
} qa_dit_config;

/* The deepest model the tensor table holds. */
#define QA_DIT_MAX_DEPTH 10

enum { QA_ROLE_OTHER = 0, QA_ROLE_ATTN = 1 }; /* attention projections q, k, v, out */

typedef struct qa_linear_s {
    char name[40];
    int in, out, role;
    float *W, *b, *dW, *db;       /* views into the model's parameter / gradient blocks */
    float *W_frozen;              /* quantized-dequantized frozen weight (owned), or NULL */
    float *W_deploy;              /* deployed weight override for evaluation (owned), or NULL */
    qa_actq actq;                 /* input fake-quantizer (bits 0 = off) */
    float *x_hat, *dx_hat;        /* [max_rows, in] buffers when actq is on (owned) */
    const float *x_saved, *x_used;
    const qa_method *method;      /* adapter, or NULL */
    void *state;                  /* method state (owned) */
    int max_rows;
    /* per-row integer codes behind W_frozen / W_deploy, when there are any (owned) */
    float *code_delta, *code_zero;
    int code_bits;
    qa_int8_linear *i8;           /* integer execution (deployed W8A8), or NULL */
    qa_int8_multi *i8m;           /* integer execution of a deployed layer in planes or groups
                                     (qa_deploy_enable_int8, harness/int8_multi.h), or NULL */
    int profile;                  /* 1: accumulate forward seconds (benchmarks) */
    double fwd_seconds;
    qa_dtype dtype;               /* matmul arithmetic of the plain / frozen layer (f32 by default) */
    qa_linear_bf16 bf16;          /* bf16 copies of x and W kept from forward to backward (owned) */
    const float *bf16_x_source;   /* the f32 input bf16.x holds in this forward (NULL: none yet) */
    const struct qa_linear_s *bf16_input_owner; /* k, v: q of the block, whose bf16 x they may share */
} qa_linear;

typedef struct {
    char name[64];
    size_t offset, n;
    int ndim, shape[2];
} qa_tensor_info;

typedef struct {
    float *x_in, *ln1, *mean1, *rstd1, *h1, *q, *k, *v, *probs, *att, *o, *x_mid;
    float *ln2, *mean2, *rstd2, *h2, *m1, *g, *m2, *mod;
    int g_sigmoid; /* bf16 training, fc2 a plain bf16 layer: g holds GELU's sigmoid factor, not GELU(m1) */
} qa_block_acts;

/* Seconds of the forward passes while profiling (benchmarks), by operation. In the fused
 * deployed model the activation quantization runs inside the operation that produces the
 * activation (norm: layer norm + adaLN modulation; gelu: dequantize + GELU + quantize) and the
 * dequantization inside the gated residual; int8_* are the parts of unfused integer layers. */
typedef struct {
    double total;      /* the whole forward */
    double linear;     /* every linear layer: f32, fake-quantized, integer (fused epilogues included) */
    double norm;       /* layer norm + modulation (+ fused quantization) */
    double attention;  /* QK^T, softmax, PV */
    double gelu;       /* GELU (+ fused dequantization / quantization) */
    double int8_quantize, int8_matmul, int8_correct; /* inside the integer layers (all of them) */
} qa_dit_profile;

typedef struct {
    qa_dit_config cfg;
    int T, grid, n_patches, patch_dim, n_slots, null_class, max_batch;

    float *params, *grads;
    size_t n_params;
    qa_tensor_info tensors[160];
    int n_tensors;
    float *pos, *class_table;     /* [T, dim], [n_slots, dim] */

    qa_linear *lin;               /* all linear slots */
    int n_lin;
    qa_linear *patch, *t1, *t2, *final_adaln, *final;
    qa_linear **adaln, **q, **k, **v, **o, **mlp1, **mlp2; /* per block */

    int train_base;               /* 1: accumulate grads of all base parameters (pre-training) */
    qa_step_ctx step;             /* timesteps of the current forward, for the layers */

    /* activations for max_batch */
    float *patches, *tok_patch, *tfeat, *th, *ths, *temb, *yemb, *c, *sc, *fmod;
    float *x_final, *lnf, *meanf, *rstdf, *hf, *out_tok;
    qa_block_acts *acts;
    size_t activation_bytes;      /* bytes of the activation buffers above (max_batch) */
    int last_B;
    const int *last_y;
    /* backward scratch */
    float *d_res, *d_h, *d_q, *d_k, *d_v, *d_att, *d_o, *d_m1, *d_g, *d_m2, *d_mod, *d_sc, *d_c;
    float *d_temb, *d_th, *d_ths, *d_tok_patch, *d_out_tok, *att_scratch, *d_fmod;

    /* deployed integer execution (dit_enable_int8): per block, q, k and v stacked into one
     * integer layer [3 dim, dim] when all three run on the integer kernel with one activation
     * quantizer (their input is the same), else NULL; its bias (owned) */
    qa_int8_linear **qkv_i8;
    float **qkv_bias;
    int int8_unfused;             /* 1: no fused operations (each integer layer quantizes its own input) */
    int attention_mode;           /* QA_ATTN_*: how the deployed model computes attention */
    qa_int8_attention *att_q;     /* per block, when attention_mode != QA_ATTN_FLOAT */
    qa_attention_bf16 *att_bf16;  /* per block, once the dtype has been bf16: attention's bf16 copies */
    int att_bf16_last;            /* 1: the last forward's attention ran on att_bf16 (its backward follows) */
    float *att_scratch_fq;        /* fake-quantized q, k, v of the reference */
    int inference;                /* 1: the last forward was qa_dit_forward_inference (kept nothing for a backward) */
    int profiling;
    qa_dit_profile prof;
} qa_dit;

int qa_dit_create(qa_dit *m, const qa_dit_config *cfg, int max_batch, qa_error *err);
/* The model's limits (img 28, patch divides it, heads divide dim, depth 1..QA_DIT_MAX_DEPTH, 10
 * classes, ...): a QA_ERR_INPUT naming `where` (a checkpoint's path, or "model") and the field.
 * dit_create checks them before allocating anything. */
int qa_dit_config_check(const qa_dit_config *c, const char *where, qa_error *err);
/* Benchmarks: time the forward by operation (qa_dit_profile). on = 1 starts from zero, 0 stops;
 * dit_profile_read gives the seconds so far. */
void qa_dit_profiling(qa_dit *m, int on);
void qa_dit_profile_read(const qa_dit *m, qa_dit_profile *p);
/* Bytes of activations and their gradients held for a step of max_batch, act-quant buffers included. */
size_t qa_dit_activation_bytes(const qa_dit *m);
void qa_dit_free(qa_dit *m);
void qa_dit_init_weights(qa_dit *m, uint64_t seed);
/* eps[B, img*img] = model(x_t[B, img*img], t[B], y[B]) */
void qa_dit_forward(qa_dit *m, const float *x_t, const float *t, const int *y, int B, float *eps);
/* The same eps bit for bit, for a forward no backward follows (sampling, evaluation): layer norm
 * and modulation in one pass that keeps no statistics, the softmax rows in groups
 * (qa_attention_forward_inference). qa_dit_backward must not follow it. */
void qa_dit_forward_inference(qa_dit *m, const float *x_t, const float *t, const int *y, int B, float *eps);
/* Backward of the last forward, from deps = dL/deps. Accumulates parameter grads when
 * train_base, and method grads always. */
void qa_dit_backward(qa_dit *m, const float *deps);
void qa_dit_zero_grads(qa_dit *m);
qa_tensor_info *qa_dit_find_tensor(qa_dit *m, const char *name);

/* Quantize the frozen base: every linear that will not be adapted (role != ATTN, or all when
 * adapt_attn == 0) gets Q_N per channel at w_bits; every linear's input is fake-quantized at
 * a_bits (calibrated on the first batch). w_bits/a_bits 0 leave that part in FP. */
void qa_dit_quantize_base(qa_dit *m, int w_bits, int a_bits, int adapt_attn);
/* Wrap every attention projection with the method. */
int qa_dit_attach_method(qa_dit *m, const qa_method *method, const qa_method_cfg *cfg, uint64_t seed,
                      qa_error *err);
/* Deploy: every adapted slot computes with the deployed weights from now on. weights[k] is the
 * k-th adapted slot's [out,in] deployed weight (copied); a method with QA_METHOD_OWNS_ACT_QUANT
 * keeps computing through its own forward (its merge() switched it to the deployed layer), so
 * its weights[k] may be NULL. row_delta / row_zero (may be NULL, or NULL entries): the per-row
 * quantizer whose code_bits-bit codes the weights are, when they are. */
void qa_dit_set_deployed(qa_dit *m, float *const *weights, float *const *row_delta, float *const *row_zero,
                      int code_bits);
/* Run every slot whose weights are per-row codes of 2 to 8 bits (they lie on the 8-bit grid of
 * the same scale and zero point) and whose input quantizer is 8-bit on
 * oneDNN's u8 x s8 kernel (see int8.h); returns how many slots switched. dit_reset_slots undoes it.
 * Where consecutive operations allow (deployed model, inference only), the forward then fuses
 * them: layer norm + modulation write the next integer layer's u8 codes, q/k/v run as one
 * stacked integer layer, GELU sits between mlp.fc1's dequantization and mlp.fc2's quantization,
 * and the attention output and MLP layers dequantize inside the gated residual; float attention
 * runs as qa_attention_forward_inference (the same floats), integer attention codes q, k, v from the
 * stacked layer's accumulator and its output for the output projection. The fused model equals
 * the unfused one bit for bit; m->int8_unfused = 1 turns the fusion off. */
int qa_dit_enable_int8(qa_dit *m);
/* The arithmetic of every slot's own linear (plain FP or quantized frozen weights) from now on:
 * QA_DTYPE_F32 (the default) or QA_DTYPE_BF16 (bf16 matmul operands, f32 accumulation; parameters,
 * gradients and the optimizer stay f32). Slots run by a method plugin compute their frozen base
 * product in it too (m->step.dtype, methods/base_product.h); deployed and int8 slots keep their
 * own arithmetic. Attention (QK^T, PV and their backward) follows the dtype too in the
 * float attention mode. qa_train sets the recipe's dtype for its loop and QA_DTYPE_F32 after it, before
 * the model is deployed or evaluated. */
void qa_dit_set_dtype(qa_dit *m, qa_dtype dtype);
/* Attention of the deployed model (an option beyond the paper's W8A8, off by default):
 * QA_ATTN_FLOAT, QA_ATTN_INT8 (QK^T and PV on u8 x s8 kernels, nn.h) or QA_ATTN_FAKEQUANT (its
 * float reference: attention on fake-quantized q, k, v and P). Each block's quantizers are
 * calibrated on the first forward after switching away from FLOAT, which runs the reference;
 * later forwards run the integer kernels in QA_ATTN_INT8 (a block whose calibrated zero points
 * the integer path cannot take, or with more than QA_INT8_MAX_K tokens or head channels, keeps
 * running the reference). Inference only. */
enum { QA_ATTN_FLOAT = 0, QA_ATTN_INT8 = 1, QA_ATTN_FAKEQUANT = 2 };
void qa_dit_set_attention_quant(qa_dit *m, int mode);
/* Restore plain FP slots (drops quantizers, adapters, deploy overrides). */
void qa_dit_reset_slots(qa_dit *m);
/* Matmul FLOPs of one forward at batch B (2 per multiply-add; linear layers and attention). */
double qa_dit_forward_flops(const qa_dit *m, int B);

#endif
