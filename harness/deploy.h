/* The deploy step of a run: merge every adapted layer into deployable weights (the method's
 * merge()), put a deploy variant in place in the model (the main deploy, PTQ'd to W bits when
 * the merge ends in float, or one of the method's extra variants), and write the artifact. */
#ifndef QA_DEPLOY_H
#define QA_DEPLOY_H

#include "harness/artifact.h"
#include "harness/int8_multi.h"
#include "harness/model.h"
#include "harness/registry.h"

typedef struct {
    qa_deployed *layers;     /* [n_layers], in the order of the model's adapted slots */
    int n_layers;
    int needs_ptq;           /* the merge ends in float: PTQ to W bits deploys it */
    double bits_per_weight;  /* over all adapted layers, weighted by their size (32 with none) */
    double merge_seconds;    /* every layer's merge (a PTQ pass adds to it) */
    char *notes;             /* every adapted layer's note, one a line; NULL when the method has none */
    int n_stats;             /* the method's own measurements, pooled over layers: sum(num) / sum(den) */
    const char *stat_name[QA_MAX_DEPLOY_STATS];
    double stat_value[QA_MAX_DEPLOY_STATS];
} qa_deploy;

/* Merge every adapted layer of m. On failure d holds nothing to free. */
int qa_deploy_merge(qa_dit *m, qa_deploy *d, qa_error *err);
void qa_deploy_free(qa_deploy *d);
/* The merge arithmetic's name (qa_merge_names) and the first layer's note ("" when none). */
const char *qa_deploy_merge_name(const qa_deploy *d);
const char *qa_deploy_note(const qa_deploy *d);

/* Put the deployed weights in place: the main deploy (PTQ'd at ptq_bits when > 0), or with
 * extra >= 0 the method's extra variant of that index. */
void qa_deploy_set(qa_dit *m, const qa_deploy *d, int ptq_bits, int extra);

/* The kernel a deployed layer runs on at W<=8 A8 (qa_deploy_enable_int8). */
typedef enum {
    QA_KERNEL_F32 = 0,     /* float matmul of the dequantized weights */
    QA_KERNEL_METHOD,      /* the method's own forward (QA_METHOD_OWNS_ACT_QUANT), float */
    QA_KERNEL_ROW,         /* u8 x s8, per-row codes of <= 8 bits (int8.h) */
    QA_KERNEL_PLANES,      /* u8 x s8, integers wider than s8 in 2+ planes (int8_multi.h) */
    QA_KERNEL_GROUPS,      /* u8 x s8, group-wise codes, one matmul per group (int8_multi.h) */
    QA_KERNEL_COUNT
} qa_deploy_kernel;

/* The integer form of a deployed layer, as deploy chooses it (buffers owned by the caller, or
 * NULL): row integers w [out,in] with a float per row, W = scale[o] w[o,k] (w_int of MUL, PEQA
 * per channel, LR-QAT; a shift merge's float weights, which are small integers times powers of
 * two: scale = the row's smallest power). Where every row's integers span at most 256
 * consecutive values they are 8-bit codes w + zero with a whole zero point per row (ROW, the
 * per-row kernel); otherwise the planes they need. Or group codes (GROUPS). */
typedef struct {
    qa_deploy_kernel kernel; /* ROW, PLANES, GROUPS, or F32 when there is no integer form */
    int planes;              /* ROW: 1, PLANES: 2 .. QA_INT8_MAX_PLANES */
    int32_t *w;              /* [out, in] (ROW, PLANES) */
    float *scale;            /* [out] (ROW, PLANES) */
    float *zero;             /* [out] (ROW): codes w + zero lie in [0, 255] (128 where w fits s8) */
    int n_groups;            /* GROUPS: codes / scale / zero point the stored tensors of l */
    const int32_t *codes;
    const float *group_scale, *group_zero;
} qa_deploy_int_form;

/* The integer form of l (not its PTQ: a float merge has none); free with qa_deploy_int_form_free. */
void qa_deploy_int_form_of(const qa_deployed *l, qa_deploy_int_form *f);
void qa_deploy_int_form_free(qa_deploy_int_form *f);

/* One deployed layer as it runs at A8 outside a model (bench-layer --deployed), on the kernel
 * the deploy chooses for it. */
typedef struct {
    qa_deploy_kernel kernel;  /* F32: none built (the caller runs its float matmul) */
    qa_int8_linear row;       /* QA_KERNEL_ROW */
    qa_int8_multi multi;      /* QA_KERNEL_PLANES, QA_KERNEL_GROUPS */
    char name[32];            /* the kernel in words, e.g. "u8s8 2-plane" */
} qa_deploy_layer;

/* Group-wise codes (QA-LoRA, PEQA with groups) run on the group kernel only when asked
 * ([eval] group_kernel = u8s8): oneDNN 2.6 has no grouped integer matmul, so the group kernel is
 * one batched u8 x s8 call with K = the group size (8 at width 128), which its AMX/VNNI kernels
 * run far below their rate, plus an f32 accumulator per group; bench-layer --deployed measured it
 * about 7x slower than the dequantized f32 matmul at 1568 x 128 x 128 (16 groups of 8). The
 * default (f32) runs those layers as that dequantized matmul: the same values up to float rounding. */
typedef enum { QA_GROUP_KERNEL_F32 = 0, QA_GROUP_KERNEL_U8S8 } qa_group_kernel;

/* W [out,in]: the layer's dequantized deployed weights. dl, zp (or NULL): the per-row quantizer
 * whose codes of <= 8 bits W is (PTQ of a float merge); else l's own integer form (l may be NULL;
 * group-wise codes only with group = QA_GROUP_KERNEL_U8S8). */
qa_deploy_kernel qa_deploy_layer_init(qa_deploy_layer *L, const qa_deployed *l, const float *W, const float *dl,
                                      const float *zp, int in, int out, const float *bias, qa_group_kernel group);
/* y[M,out] = x_hat W^T + b on the layer's integer kernel (not F32). */
void qa_deploy_layer_forward(qa_deploy_layer *L, const qa_actq *aq, const float *x, float *y, int M);
void qa_deploy_layer_free(qa_deploy_layer *L);

/* Which kernels the deployed layers run on, after qa_deploy_enable_int8. */
typedef struct {
    int int8_layers;                 /* every slot on an integer kernel (frozen base included) */
    int adapted[QA_KERNEL_COUNT];    /* the adapted layers, by kernel */
    int planes_max;                  /* the most planes a QA_KERNEL_PLANES layer needs */
    char text[96];                   /* the adapted layers' kernels in words, e.g. "u8s8 2-plane" */
} qa_deploy_kernels;

/* After qa_deploy_set (the INT deploy) with 8-bit activations: every slot whose weights are
 * per-row codes of <= 8 bits runs on the u8 x s8 kernel (qa_dit_enable_int8: the frozen base and
 * PTQ'd merges), and every adapted layer with an integer form of its own on the u8 x s8 kernel
 * in planes, or in groups when group says so; the rest stays float. Says which kernel each adapted layer runs on. */
void qa_deploy_enable_int8(qa_dit *m, const qa_deploy *d, qa_group_kernel group, qa_deploy_kernels *k);
extern const char *const qa_deploy_kernel_names[QA_KERNEL_COUNT];

/* Write the deployed artifact to path and measure it. */
int qa_deploy_artifact(const char *path, const qa_dit *m, const qa_deploy *d, int ptq_bits, qa_artifact_size *size,
                       qa_error *err);

#endif
