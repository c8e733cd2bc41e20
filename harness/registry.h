/* The adaptation-method plugin interface and the registry (a NULL-terminated const table).
 *
 * A method sees one linear layer y = x W^T + b at a time (x [M, in], W [out, in]) and owns its
 * state; the core allocates state_size zeroed bytes per adapted layer. Everything else (model,
 * training loop, evaluation, logging) is method-agnostic: adding a method is one new file in
 * methods/ and one line in registry.c; its options are declared in its file (qa_option). */
#ifndef QA_REGISTRY_H
#define QA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "harness/nn.h"
#include "harness/rng.h"
#include "harness/util.h"

/* A method's options, in the spirit of FFmpeg's AVOption: each method declares in its own file a
 * const table of what a recipe may set for it in [adapt] (name, type, default, range or allowed
 * values, one-line doc, whether a list of values makes it a grid axis). The recipe parser, the
 * grid, the run id, `qadapt list` / `qadapt help METHOD` and the recipe documentation all read
 * these tables. The parsed values live in the method's own options struct (options_size bytes):
 * an int (QA_OPT_INT, QA_OPT_ENUM: the index into allowed) or a float (QA_OPT_FLOAT) at offset. */
typedef enum { QA_OPT_INT = 0, QA_OPT_FLOAT, QA_OPT_ENUM, QA_OPT_TYPE_COUNT } qa_option_type;

typedef struct {
    const char *name;      /* the key in [adapt] */
    qa_option_type type;
    const char *def;       /* the default, as a recipe value */
    double lo, hi;         /* QA_OPT_INT, QA_OPT_FLOAT: allowed range, inclusive */
    const char *allowed;   /* QA_OPT_ENUM: '|'-separated values */
    const char *doc;       /* one line */
    int axis_ok;           /* a list of values is a grid axis */
    const char *id_tag;    /* a grid axis shows in the run id as "-<id_tag><value>" ("" = the value alone) */
    size_t offset;         /* of the value in the method's options struct */
} qa_option;

/* Per-run method configuration: what every method reads, and the method's own options. */
typedef struct {
    int w_bits;            /* 0 = full precision */
    int a_bits;            /* 0 = full precision */
    int rank;
    float lora_scale;      /* s in y += s (x A^T) B^T; 1.0 = no alpha/r scaling (the reference) */
    float base_lr;         /* the recipe's learning rate (qa_param.lr_scale multiplies it) */
    int sampling_steps;    /* DDIM steps at evaluation (EfficientDM's per-timestep quantizers) */
    const void *options;   /* the method's options struct; NULL = its defaults (qa_method_options) */
} qa_method_cfg;

/* Per-forward context the model keeps current for the layers: the diffusion timestep of each
 * sample (row m of a layer's input belongs to sample m / rows_per_sample). */
typedef struct {
    const float *t;        /* [B] timesteps of the current forward, in [0, T_train) */
    int B, rows_per_sample, T_train;
    qa_dtype dtype;        /* the training arithmetic of the big matmuls (dit_set_dtype; f32 to evaluate) */
} qa_step_ctx;

/* Method flags */
enum {
    /* The method quantizes its own inputs (e.g. per-timestep activation quantizers): the model
     * passes raw inputs, and after merge() the deployed layer is computed by forward() itself
     * (which must then use only the deployed weights and quantizers). */
    QA_METHOD_OWNS_ACT_QUANT = 1u << 0,
    /* The deployed layer is the per-row W-bit PTQ codes of a float merge: at 8 bits it runs on
     * the u8 x s8 integer kernel (bench-layer --deployed). */
    QA_METHOD_ROW_CODES_DEPLOY = 1u << 1,
};

/* A reference-fixture attribute (the layer-fixture schema of `qadapt fixture`) that sets one of
 * the method's options, e.g. the fixture's "alpha" is IntLoRA's vmc_alpha. */
typedef struct {
    const char *attr, *option;
} qa_fixture_option;

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
    size_t workspace;      /* [out, in]-sized compute buffers the layer keeps between calls (a
                              dequantized f32 copy of the base, a fake-quantized weight and its
                              masks), refilled from the frozen state; not part of `frozen` */
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
/* One more of the method's own measurements: num / den, pooled over layers as sum(num) / sum(den). */
void qa_deployed_add_stat(qa_deployed *d, const char *name, double num, double den);

/* The reference rate of a LoRA-style adapter (rank-r factors, AdamW, 300-600 steps at batch 16)
 * on this harness's 128-wide DiT: the centre of the tuning grids. The reference codes' rates
 * (IntLoRA 6e-5 and DreamBooth-LoRA 1e-4 over 2000 steps on SD-1.5, QLoRA 2e-4 on LLaMA) are
 * for models a thousand times larger; a grid spanning 10x each side of 1e-3 holds both the
 * committed tables' 3e-3 and the low end of those rates. */
#define QA_ADAPTER_REFERENCE_LR 1e-3

typedef struct qa_method {
    const char *name;
    const char *summary;   /* one line for `qadapt list` */
    int version;           /* raised by a change that alters what the method computes: a run file of
                            * another version is neither resumed as this run nor lent by --reuse */
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
    /* The method's reference learning rate: the peak AdamW rate of its adapter at which it is
     * meant to train at this harness's scale (the recipe's [tune] grid multiplies it; each method
     * says in its file where its value comes from). A method with further rates (quantizer
     * scales, step sizes) keeps their reference ratio to this one. 0: none declared (the method
     * cannot be tuned). */
    double reference_lr;
    /* Optional: bits the method needs (0 = runs at full precision too). */
    int needs_weight_bits;
    unsigned flags;        /* QA_METHOD_* */
    /* Optional: the method's options (see qa_option) and the size of its options struct. */
    const qa_option *options;
    int n_options;
    size_t options_size;
    /* Optional: the method's layers can be recomputed from reference layer fixtures (`qadapt
     * fixture`); these fixture attributes set its options. */
    const qa_fixture_option *fixture_options;
    int n_fixture_options;
} qa_method;

const qa_method *qa_method_find(const char *name);
const qa_method *const *qa_methods(void); /* NULL-terminated */
/* Add a method defined outside methods/ (tests, out-of-tree plugins) for the rest of the
 * process; its name must be new. At most QA_MAX_ADDED_METHODS. */
#define QA_MAX_ADDED_METHODS 8
int qa_method_register(const qa_method *m, qa_error *err);
/* The plain LoRA baseline that bench-model times. */
const qa_method *qa_method_baseline(void);

/* ---- options ---- */
const qa_option *qa_method_option(const qa_method *m, const char *name);
/* Parse value for o into options (may be NULL: only check it). On a bad value returns -1 and
 * says in why what is allowed (the values, or the type and range). */
int qa_option_parse(const qa_option *o, const char *value, void *options, char *why, size_t why_len);
/* The option's value in options, as a number (an enum: its index). */
double qa_option_number(const qa_option *o, const void *options);
/* The allowed values or range of o in words, e.g. "laplace|gaussian" or "an integer in 0..8". */
void qa_option_describe(const qa_option *o, char *buf, size_t len);
/* options (m->options_size bytes) = every option's default. */
void qa_method_options_defaults(const qa_method *m, void *options);
/* Set one option by name from a recipe value (QA_ERR_INPUT naming the option and what is allowed). */
int qa_method_option_set(const qa_method *m, void *options, const char *name, const char *value, qa_error *err);
/* What a method's init reads: a copy of cfg->options into out, or m's defaults when NULL. */
void qa_method_options_of(const qa_method *m, const qa_method_cfg *cfg, void *out);
/* Print the method's options, one line each (`qadapt list`, `qadapt help METHOD`). */
void qa_method_print_options(const qa_method *m, FILE *out, const char *indent);
/* Every registered method's options as a markdown table, one row per option name (`qadapt list
 * --markdown`: the table of experiments/README.md). */
void qa_method_options_markdown(FILE *out);

void qa_deployed_free(qa_deployed *d);
/* W_out[out,in] = the deployed weights in float (dequantized), whatever the encoding. */
void qa_deployed_weights(const qa_deployed *d, float *W_out);

#endif
