/* The adaptation-method plugin interface and the registry (a NULL-terminated const table).
 *
 * A method sees one linear layer y = x W^T + b at a time (x [M, in], W [out, in]) and owns its
 * state; the core allocates state_size zeroed bytes per adapted layer. Everything else (model,
 * training loop, evaluation, logging) is method-agnostic: adding a method is one new file in
 * methods/ and one line in registry.c. */
#ifndef QA_REGISTRY_H
#define QA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "harness/rng.h"
#include "harness/util.h"

/* Per-run method configuration, from the recipe. */
typedef struct {
    int w_bits;            /* 0 = full precision */
    int a_bits;            /* 0 = full precision */
    int rank;
    float lora_scale;      /* s in y += s (x A^T) B^T; 1.0 = no alpha/r scaling (the reference) */
    /* IntLoRA options (specified in methods/intlora.c) */
    float vmc_alpha;       /* variance-matching exponent (1.5) */
    int aux_dist;          /* QA_AUX_LAPLACE | GAUSSIAN | UNIFORM | ZERO */
    int vmc_stat;          /* QA_VMC_ABSMAX (the code) | QA_VMC_STD (the paper) */
    int lora_bits;         /* bits of IntLoRA-MUL's update quantizer (0 = W bits) */
    int group_size;        /* QA-LoRA's group size along d_in (0 = 32) */
    float base_lr;         /* the recipe's learning rate (qa_param.lr_scale multiplies it) */
    int sampling_steps;    /* DDIM steps at evaluation (EfficientDM's per-timestep quantizers) */
    int qlora_base;        /* QA_QLORA_BASE_AUTO (nf4 at 4 bits, int otherwise) | NF4 | INT */
} qa_method_cfg;

enum { QA_QLORA_BASE_AUTO = 0, QA_QLORA_BASE_NF4, QA_QLORA_BASE_INT };

enum { QA_AUX_LAPLACE = 0, QA_AUX_GAUSSIAN, QA_AUX_UNIFORM, QA_AUX_ZERO, QA_AUX_COUNT };
enum { QA_VMC_ABSMAX = 0, QA_VMC_STD, QA_VMC_COUNT };

/* Per-forward context the model keeps current for the layers: the diffusion timestep of each
 * sample (row m of a layer's input belongs to sample m / rows_per_sample). */
typedef struct {
    const float *t;        /* [B] timesteps of the current forward, in [0, T_train) */
    int B, rows_per_sample, T_train;
} qa_step_ctx;

/* Method flags */
enum {
    /* The method quantizes its own inputs (e.g. per-timestep activation quantizers): the model
     * passes raw inputs, and after merge() the deployed layer is computed by forward() itself
     * (which must then use only the deployed weights and quantizers). */
    QA_METHOD_OWNS_ACT_QUANT = 1u << 0,
};

/* What init() receives: the pre-trained FP layer, which the method may keep or drop. */
typedef struct {
    int in, out;
    const float *W;        /* [out, in] */
    const float *bias;     /* [out], stays FP32, never quantized */
    const qa_method_cfg *cfg;
    qa_rng *rng;           /* the run's seeded generator for this layer */
    const char *layer_name;
    const float *aux_init; /* optional [out, in]: a method's random auxiliary tensor given instead
                              of drawn (IntLoRA's R_raw from a reference fixture); NULL = draw it */
    const qa_step_ctx *step; /* the model's per-forward context (valid for the layer's lifetime) */
} qa_layer_init;

/* A trainable tensor, as the optimizer sees it. */
typedef struct {
    const char *name;
    float *data, *grad;
    size_t n;
    float lr_scale;        /* per-tensor learning-rate multiplier (1 by default) */
} qa_param;

/* A named internal tensor a method exposes for checks and fixtures (see inspect()). */
typedef struct {
    const char *name;
    const float *f32;      /* exactly one of f32 / i32 is set */
    const int32_t *i32;
    int ndim;
    int dims[2];
} qa_named_tensor;

/* Memory by category, in bytes. */
typedef struct {
    size_t frozen;         /* frozen base as the method holds it during training */
    size_t trainable;
    size_t gradients;
    size_t optimizer;      /* AdamW moments: 2 x trainable */
    size_t deployed;       /* what deployment stores for this layer (weights + scales) */
} qa_bytes;

/* How the deployed weights were obtained. */
typedef enum {
    QA_MERGE_FLOAT_ADD_PTQ = 0, /* W + BA in float, then PTQ to W bits (LoRA, QLoRA) */
    QA_MERGE_INT_MULTIPLY,
    QA_MERGE_BIT_SHIFT,
    QA_MERGE_ZERO_POINT_FOLD,
    QA_MERGE_QAT_CODES,         /* the codes a trained quantizer produced (EfficientDM); no PTQ */
    QA_MERGE_COUNT
} qa_merge_kind;
extern const char *const qa_merge_names[QA_MERGE_COUNT];

/* A deployed layer. Either w_fp (floating deploy, still to be PTQ'd when needs_ptq) or integer
 * codes with a per-row scale: W_deployed[o,i] = row_scale[o] * w_int[o,i].
 * A method may add named extra deploy variants (dequantized weights), each scored as its own
 * deploy by the harness, e.g. QLoRA's "nf4" (merge, then re-quantize to NF4). */
#define QA_MAX_EXTRA_DEPLOYS 2
/* Measured quantities a method reports about its merged layer, as ratios num/den so that the
 * harness can pool them over layers exactly: sum(num) / sum(den), e.g. the share of entries
 * with W_int = 0 (IntLoRA, claim C10). Written per run under <run>/method_stats. */
#define QA_MAX_DEPLOY_STATS 4
/* A tensor of the deployed layer as it is stored on disk (harness/artifact.c): integers are
 * packed to `bits` bits each; floats are stored as binary16 (bits 16) or binary32 (bits 32).
 * A method that stores its layer in a form of its own (codes and side information) lists it
 * here; otherwise the harness stores w_int at the narrowest width that holds it (and a per-row
 * scale), or the PTQ codes of w_fp. */
#define QA_MAX_STORED 6
typedef struct {
    char name[24];
    int bits, is_float, is_signed;
    int rows, cols;
    int32_t *i32;          /* integers, owned (NULL for floats) */
    float *f32;            /* floats, owned (NULL for integers) */
} qa_stored_tensor;

typedef struct {
    int in, out;
    float *w_fp;           /* [out, in] or NULL */
    int32_t *w_int;        /* [out, in] or NULL */
    float *row_scale;      /* [out] or NULL */
    int needs_ptq;
    qa_merge_kind merge;
    double bits_per_weight;
    int n_extra;
    char extra_name[QA_MAX_EXTRA_DEPLOYS][16];
    float *extra_w[QA_MAX_EXTRA_DEPLOYS];      /* [out, in], owned */
    double extra_bits[QA_MAX_EXTRA_DEPLOYS];
    char note[64];         /* free text the run file records, e.g. QLoRA's "base nf4" */
    int n_stats;
    char stat_name[QA_MAX_DEPLOY_STATS][32];
    double stat_num[QA_MAX_DEPLOY_STATS], stat_den[QA_MAX_DEPLOY_STATS];
    int n_stored;
    qa_stored_tensor stored[QA_MAX_STORED];
} qa_deployed;

/* Add a stored tensor to d (the caller fills the returned array: rows * cols values). */
int32_t *qa_deployed_store_int(qa_deployed *d, const char *name, int bits, int is_signed, int rows, int cols);
float *qa_deployed_store_float(qa_deployed *d, const char *name, int bits, int rows, int cols);

typedef struct qa_method {
    const char *name;
    const char *summary;   /* one line for `qadapt list` */
    int version;
    size_t state_size;

    /* Build the layer's state from the FP layer. */
    int (*init)(void *state, const qa_layer_init *li, qa_error *err);
    /* y[M,out] = layer(x[M,in]); x stays valid until backward (the method may keep the pointer). */
    void (*forward)(void *state, const float *x, float *y, int M);
    /* dx[M,in] += dL/dx (dx may be NULL); accumulate grads of the trainable tensors. */
    void (*backward)(void *state, const float *dy, float *dx, int M);
    /* Fill up to max trainable tensors; return how many. */
    int (*params)(void *state, qa_param *out, int max);
    /* Produce the deployable layer (the caller owns out's arrays, freed with qa_deployed_free). */
    int (*merge)(void *state, qa_deployed *out, qa_error *err);
    void (*bytes)(const void *state, qa_bytes *out);
    void (*destroy)(void *state);
    /* Optional (may be NULL): internal tensors by name, e.g. "W_round", "delta", "U_delta",
     * "W_eff", "grad_U_delta"; valid until the next forward/backward. Returns how many. */
    int (*inspect)(const void *state, qa_named_tensor *out, int max);
    /* Optional: bits the method needs (0 = runs at full precision too). */
    int needs_weight_bits;
    unsigned flags;        /* QA_METHOD_* */
} qa_method;

const qa_method *qa_method_find(const char *name);
const qa_method *const *qa_methods(void); /* NULL-terminated */

void qa_deployed_free(qa_deployed *d);
/* W_out[out,in] = the deployed weights in float (dequantized), whatever the encoding. */
void qa_deployed_weights(const qa_deployed *d, float *W_out);

#endif
