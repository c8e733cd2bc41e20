/* QA-LoRA: a group-wise quantized base whose adapter sees group-pooled inputs, so that the merge
 * folds exactly into the zero points and the model stays integer without PTQ.
 *
 * Paper: "QA-LoRA: Quantization-Aware Low-Rank Adaptation of Large Language Models", Xu et al.,
 * arXiv 2309.14717. Reference code: github yuhuixu1993/qa-lora (peft_utils.py: the pooled adapter;
 * merge.py: the zero-point fold; read at commit 91604c7). Notation and the section-0 search:
 * methods/README.md.
 *
 * Frozen base: asymmetric INT-N (N = w_bits), groups of g consecutive inputs along d_in (g = the
 * recipe's group_size), G = in / g groups (in must be a multiple of g). The default, group_size =
 * 0 ("auto"), scales g with the width: the largest divisor of in that is <= in / 16 (at least 1),
 * so a layer has >= 16 groups: g = 8 at in = 128 (16 groups), g = 48 at SD-1.5's in = 768. The
 * repo's g = 32 is for LLaMA's in = 4096 (128 groups); at in = 128 it would pool the adapter's
 * input to 4 features. Per (group j, output row o) a scale and a zero point:
 *   W_hat[o,i] = scale[j,o] (q[o,i] - zero[j,o]),   j = floor(i / g),   q in 0..2^N - 1
 *   scale[j,o], zero[j,o] = the section-0 search (quant_search) on the g weights W[o, jg .. jg+g-1];
 *   q[o,i] = clamp(round(W[o,i] / delta) + zero, 0, 2^N - 1) with the search's FP32 delta.
 *   Documented substitute: the repo picks q with GPTQ; we use round-to-nearest with the search.
 *   Scales and zero points are stored as FP16 (as the repo's GPTQ checkpoints store scales), and
 *   training uses exactly the stored values: scale = fp16(delta), zero = fp16(z) (z is an integer,
 *   exact in FP16 while |z| <= 2048). The FP weight is then dropped.
 * Trainable: A [r, G] ~ U(-b, b), b = sqrt(6 / (fan_in + fan_out)), fan_in = G, fan_out = r
 *   (Xavier-uniform, as the repo's reset_lora_parameters), and B [out, r] = 0. s = lora_scale
 *   (1 by default; the repo uses PEFT's lora_alpha / r).
 * forward   p[m,j] = c sum_{i in group j} x[m,i],  c = 1/g          (AvgPool_g, as the repo)
 *           pa = p A^T                                              [M, r]
 *           y  = x W_hat^T + b + s pa B^T                           s = lora_scale
 * backward  dB += s dy^T pa
 *           dpa = s dy B                                            [M, r]
 *           dA += dpa^T p
 *           dp  = dpa A                    (= s dy B A)             [M, G]
 *           dx += dy W_hat + c dp[m, j(i)]  (the pooled gradient broadcast to each group member)
 * merge     s pa B^T = sum_i x[m,i] s c (B A)[o, j(i)], a per-(group, row) constant added to W_hat,
 *           so it folds into the zero point exactly (no PTQ):
 *             zero'[j,o] = zero[j,o] - s c (B A)[o,j] / scale[j,o]
 *             W'[o,i]    = scale[j,o] (q[o,i] - zero'[j,o]) = W_hat[o,i] + s c (B A)[o,j]
 *           zero' is fractional and is stored as FP16 (round-to-nearest-even), which is the only
 *           rounding of the merge; the deployed weight is scale (q - fp16(zero')). A zero' that
 *           does not fit FP16 fails the merge (QA_ERR_RUN), naming the layer, group and row.
 * bits per weight (deployed):  N (code) + (16 + 16) / g (one FP16 scale and one FP16 zero point
 *           per g weights of a row) = 4 + 32/32 = 5.0 at N = 4, g = 32; 4 + 32/8 = 8.0 at g = 8
 *           (the auto group size at width 128: finer groups cost storage, which the
 *           storage-matched view of a report shows).
 *           The FP32 bias is counted in bytes() but not in bits per weight.
 * Memory (bytes()): frozen = the codes as held (methods/frozen_codes.h: N-bit packed at N <= 4,
 *           one byte at N = 5..8, two at 9..16) + the scale and zero point per (group, row),
 *           held as FP32 (FP16 values) + FP32 bias; workspace = the f32 W_hat (scale (q - zero),
 *           [out, in]) the product reads, dequantized from the codes once at init (the base is
 *           frozen); deployed = N-bit codes + FP16 scale and merged zero per (group, row) + bias. */
#include "methods/qalora.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/frozen_codes.h"

typedef struct {
    int in, out, rank, n_bits, group_size, n_groups;
    float lora_scale;        /* s */
    float pool_factor;       /* c = 1/g */
    char layer_name[96];
    qa_frozen_codes w_code;  /* q [out, in], 0..2^N - 1, N-bit (frozen_codes.h) */
    float *group_scale;      /* scale [G, out] (FP16 values) */
    float *group_zero;       /* zero [G, out] (FP16 values, integers) */
    float *merged_zero;      /* zero' [G, out] (FP16 values), filled by merge() */
    float *w_hat;            /* dequantized base [out, in]: scale (q - zero), workspace */
    float *bias;             /* [out] FP32 */
    float *A, *B, *dA, *dB;  /* [r, G], [out, r] */
    const float *x;          /* input of the last forward (owned by the caller) */
    float *pooled, *dpooled;     /* p, dp [rows_cap, G] */
    float *pooled_a, *dpooled_a; /* pa, dpa [rows_cap, r] */
    int rows_cap;
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
} qalora_state;

/* ---- IEEE binary16 ---------------------------------------------------------------------- */

uint16_t qa_qalora_half_from_float(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    int exp = (int)((bits >> 23) & 0xffu);
    uint32_t mant = bits & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u)); /* inf, NaN */
    int e = exp - 127;                           /* unbiased exponent; x = 1.mant 2^e */
    if (e > 15) return (uint16_t)(sign | 0x7c00u); /* >= 2^16: overflow to inf */
    if (e >= -14) {                              /* normal half: keep 10 of 23 mantissa bits */
        uint32_t h = ((uint32_t)(e + 15) << 10) | (mant >> 13);
        uint32_t rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry may reach inf: right */
        return (uint16_t)(sign | h);
    }
    if (e < -25) return sign;                    /* below half the smallest subnormal: +-0 */
    /* subnormal half, unit 2^-24: |x| / 2^-24 = m 2^(e+1) with the 24-bit significand m */
    uint32_t m = mant | 0x800000u;
    int shift = -e - 1;                          /* 14 .. 24 */
    uint32_t h = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) h++; /* 0x3ff + 1 = smallest normal: right */
    return (uint16_t)(sign | h);
}

float qa_qalora_half_to_float(uint16_t h) {
    float sign = (h & 0x8000u) ? -1.0f : 1.0f;
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    if (exp == 0) return sign * ldexpf((float)mant, -24);
    if (exp == 31) return mant ? NAN : sign * INFINITY;
    return sign * ldexpf((float)(1024 + mant), exp - 25);
}

static float fp16_round(float x) { return qa_qalora_half_to_float(qa_qalora_half_from_float(x)); }

/* ---- init --------------------------------------------------------------------------------- */

int qa_qalora_init_grouped(void *state, const qa_layer_init *li, int group_size, qa_error *err) {
    qalora_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    const qa_method_cfg *c = li->cfg;
    const char *name = li->layer_name ? li->layer_name : "?";
    if (c->w_bits == 0)
        return qa_fail(err, QA_ERR_INPUT,
                       "qalora: layer %s: QA-LoRA needs an integer base (w_bits >= 1, e.g. bits = w4a8), "
                       "not full precision (w_bits = 0)", name);
    if (c->w_bits < 1 || c->w_bits > 16)
        return qa_fail(err, QA_ERR_INPUT, "qalora: layer %s: w_bits = %d is outside 1..16", name, c->w_bits);
    if (group_size < 1 || li->in % group_size != 0)
        return qa_fail(err, QA_ERR_INPUT,
                       "qalora: layer %s: in = %d is not a multiple of the group size g = %d "
                       "(QA-LoRA quantizes and pools the input in groups of g along d_in)",
                       name, li->in, group_size);
    if (c->rank < 1)
        return qa_fail(err, QA_ERR_INPUT, "qalora: layer %s: rank %d must be >= 1", name, c->rank);
    const int in = li->in, out = li->out, G = in / group_size;
    s->in = in;
    s->out = out;
    s->rank = c->rank;
    s->n_bits = c->w_bits;
    s->group_size = group_size;
    s->n_groups = G;
    s->lora_scale = c->lora_scale;
    s->pool_factor = 1.0f / (float)group_size;
    snprintf(s->layer_name, sizeof s->layer_name, "%s", name);

    /* group-wise quantizer: the section-0 search on each group's g weights of each row */
    int32_t *codes = qa_alloc(sizeof(int32_t) * (size_t)out * in); /* packed after the parallel loop */
    s->group_scale = qa_alloc(sizeof(float) * (size_t)G * out);
    s->group_zero = qa_alloc(sizeof(float) * (size_t)G * out);
    s->merged_zero = qa_alloc(sizeof(float) * (size_t)G * out);
    s->w_hat = qa_alloc(sizeof(float) * (size_t)out * in);
    const float levels_max = (float)((1 << s->n_bits) - 1);
    #pragma omp parallel for schedule(dynamic, 4)
    for (int o = 0; o < out; o++) {
        for (int j = 0; j < G; j++) {
            const float *w = li->W + (size_t)o * in + (size_t)j * group_size;
            float delta, zero;
            qa_quant_search(w, (size_t)group_size, s->n_bits, &delta, &zero);
            const float scale16 = fp16_round(delta), zero16 = fp16_round(zero);
            s->group_scale[(size_t)j * out + o] = scale16;
            s->group_zero[(size_t)j * out + o] = zero16;
            s->merged_zero[(size_t)j * out + o] = zero16; /* B = 0: the merge starts as the base */
            for (int k = 0; k < group_size; k++) {
                size_t at = (size_t)o * in + (size_t)j * group_size + k;
                float q = nearbyintf(w[k] / delta) + zero;
                q = q < 0.f ? 0.f : (q > levels_max ? levels_max : q);
                codes[at] = (int32_t)q;
                s->w_hat[at] = scale16 * (q - zero16);
            }
        }
    }
    qa_frozen_codes_alloc(&s->w_code, (size_t)out * in, s->n_bits);
    qa_frozen_codes_pack(&s->w_code, codes);
    qa_free(codes);
    s->bias = qa_alloc(sizeof(float) * out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * out);

    s->A = qa_alloc(sizeof(float) * (size_t)s->rank * G);
    s->dA = qa_alloc(sizeof(float) * (size_t)s->rank * G);
    s->B = qa_alloc(sizeof(float) * (size_t)out * s->rank); /* zeros */
    s->dB = qa_alloc(sizeof(float) * (size_t)out * s->rank);
    float bound = sqrtf(6.0f / (float)(G + s->rank)); /* Xavier-uniform, fan_in = G, fan_out = r */
    qa_rng_fill_uniform(li->rng, s->A, (size_t)s->rank * G, -bound, bound);
    return QA_OK;
}

/* The options (the table is at the end of this file). */
typedef struct {
    int group_size;        /* along d_in */
} qalora_options;

int qa_qalora_auto_group(int in) {
    int g = in / QA_QALORA_AUTO_MIN_GROUPS > 1 ? in / QA_QALORA_AUTO_MIN_GROUPS : 1;
    while (in % g != 0) g--;
    return g;
}

static int qalora_init(void *state, const qa_layer_init *li, qa_error *err) {
    qalora_options opt;
    qa_method_options_of(&qa_method_qalora, li->cfg, &opt);
    int group = opt.group_size == QA_QALORA_AUTO_GROUP ? qa_qalora_auto_group(li->in) : opt.group_size;
    return qa_qalora_init_grouped(state, li, group, err);
}

/* ---- forward / backward ------------------------------------------------------------------- */

static void ensure_rows(qalora_state *s, int M) {
    if (M <= s->rows_cap) return;
    float **group_bufs[] = {&s->pooled, &s->dpooled};
    float **rank_bufs[] = {&s->pooled_a, &s->dpooled_a};
    for (int b = 0; b < 2; b++) {
        qa_free(*group_bufs[b]);
        *group_bufs[b] = qa_alloc(sizeof(float) * (size_t)M * s->n_groups);
        qa_free(*rank_bufs[b]);
        *rank_bufs[b] = qa_alloc(sizeof(float) * (size_t)M * s->rank);
    }
    s->rows_cap = M;
}

/* C[M,N] (+)= alpha op(A) op(B), as qa_matmul with an output scale. */
static void matmul_scaled(int M, int N, int K, const float *A, int transA, const float *B, int transB, float *C,
                          float alpha, int accumulate) {
    qa_view va = qa_view_2d(M, K, transA), vb = qa_view_2d(K, N, transB), vc = qa_view_2d(M, N, 0);
    qa_matmul_view(&va, A, &vb, B, &vc, C, alpha, accumulate, NULL);
}

static void qalora_forward(void *state, const float *x, float *y, int M) {
    qalora_state *s = state;
    const int in = s->in, G = s->n_groups, g = s->group_size;
    ensure_rows(s, M);
    s->x = x;
    qa_base_product_forward(&s->base_mm, y, x, s->w_hat, s->bias, M);            /* y = x W_hat^T + b */
    for (int m = 0; m < M; m++)                                          /* p = AvgPool_g(x) */
        for (int j = 0; j < G; j++) {
            const float *xg = x + (size_t)m * in + (size_t)j * g;
            float sum = 0.f;
            for (int k = 0; k < g; k++) sum += xg[k];
            s->pooled[(size_t)m * G + j] = s->pool_factor * sum;
        }
    qa_matmul(M, s->rank, G, s->pooled, 0, s->A, 1, s->pooled_a, 0, NULL);          /* pa = p A^T */
    matmul_scaled(M, s->out, s->rank, s->pooled_a, 0, s->B, 1, y, s->lora_scale, 1); /* y += s pa B^T */
}

static void qalora_backward(void *state, const float *dy, float *dx, int M) {
    qalora_state *s = state;
    const int in = s->in, out = s->out, r = s->rank, G = s->n_groups, g = s->group_size;
    matmul_scaled(out, r, M, dy, 1, s->pooled_a, 0, s->dB, s->lora_scale, 1); /* dB += s dy^T pa */
    matmul_scaled(M, r, out, dy, 0, s->B, 0, s->dpooled_a, s->lora_scale, 0); /* dpa = s dy B */
    qa_matmul(r, G, M, s->dpooled_a, 1, s->pooled, 0, s->dA, 1, NULL);        /* dA += dpa^T p */
    if (!dx) return;
    qa_matmul(M, G, r, s->dpooled_a, 0, s->A, 0, s->dpooled, 0, NULL);        /* dp = dpa A */
    qa_base_product_backward_dx(&s->base_mm, dx, dy, s->w_hat, M);                   /* dx += dy W_hat */
    for (int m = 0; m < M; m++)                                  /* dx[m,i] += c dp[m, i/g] */
        for (int j = 0; j < G; j++) {
            const float share = s->pool_factor * s->dpooled[(size_t)m * G + j];
            float *dxg = dx + (size_t)m * in + (size_t)j * g;
            for (int k = 0; k < g; k++) dxg[k] += share;
        }
}

static int qalora_params(void *state, qa_param *out, int max) {
    qalora_state *s = state;
    if (max < 2) return 0;
    out[0] = (qa_param){"lora_A", s->A, s->dA, (size_t)s->rank * s->n_groups, 1.0f};
    out[1] = (qa_param){"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f};
    return 2;
}

/* ---- merge: fold s c (B A)[o,j] into the zero points ------------------------------------- */

static int qalora_merge(void *state, qa_deployed *d, qa_error *err) {
    qalora_state *s = state;
    const int in = s->in, out = s->out, G = s->n_groups, g = s->group_size;
    float *update = qa_alloc(sizeof(float) * (size_t)out * G);         /* (B A) [out, G] */
    qa_matmul(out, G, s->rank, s->B, 0, s->A, 0, update, 0, NULL);
    const float fold = s->lora_scale * s->pool_factor;                  /* s c */
    for (int j = 0; j < G; j++)
        for (int o = 0; o < out; o++) {
            size_t at = (size_t)j * out + o;
            float zero_merged = s->group_zero[at] - fold * update[(size_t)o * G + j] / s->group_scale[at];
            float zero16 = fp16_round(zero_merged);
            if (!isfinite(zero16)) {
                qa_free(update);
                return qa_fail(err, QA_ERR_RUN,
                               "qalora: layer %s: merged zero point %g (group %d, row %d) does not fit FP16 "
                               "(scale %g)", s->layer_name, (double)zero_merged, j, o, (double)s->group_scale[at]);
            }
            s->merged_zero[at] = zero16;
        }
    qa_free(update);
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    d->w_fp = qa_alloc(sizeof(float) * (size_t)out * in);             /* scale (q - fp16(zero')) */
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            size_t at = (size_t)(i / g) * out + o, w = (size_t)o * in + i;
            d->w_fp[w] = s->group_scale[at] * ((float)qa_frozen_codes_get(&s->w_code, w) - s->merged_zero[at]);
        }
    d->needs_ptq = 0; /* already integer codes with FP16 scales and zero points */
    /* stored: the N-bit codes, FP16 scale and merged FP16 zero point per (group, row) */
    qa_frozen_codes_unpack(&s->w_code, 0, (size_t)out * in, qa_deployed_store_int(d, "codes", s->n_bits, 0, out, in));
    memcpy(qa_deployed_store_float(d, "scale", 16, G, out), s->group_scale, sizeof(float) * (size_t)G * out);
    memcpy(qa_deployed_store_float(d, "zero", 16, G, out), s->merged_zero, sizeof(float) * (size_t)G * out);
    d->merge = QA_MERGE_ZERO_POINT_FOLD;
    d->bits_per_weight = s->n_bits + (16.0 + 16.0) / g; /* N + (FP16 scale + FP16 zero) / g */
    return QA_OK;
}

static void qalora_bytes(const void *state, qa_bytes *b) {
    const qalora_state *s = state;
    size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * ((size_t)s->n_groups + s->out);
    /* held: the codes, the scale and zero point per (group, row) in FP32, the FP32 bias; deployed:
     * N-bit codes + an FP16 scale and an FP16 merged zero point per (group, row) + FP32 bias */
    const size_t per_group = (size_t)s->n_groups * s->out * 2;
    b->frozen = qa_frozen_codes_bytes(n, s->n_bits) + per_group * sizeof(float) + (size_t)s->out * sizeof(float);
    b->workspace = n * sizeof(float); /* W_hat */
    size_t packed = (n * (size_t)s->n_bits + 7) / 8 + per_group * sizeof(uint16_t) + (size_t)s->out * sizeof(float);
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    b->deployed = packed;
}

static int qalora_inspect(const void *state, qa_named_tensor *o, int max) {
    const qalora_state *s = state;
    qa_named_tensor all[] = {
        {"group_scale", s->group_scale, NULL, 2, {s->n_groups, s->out}},
        {"group_zero", s->group_zero, NULL, 2, {s->n_groups, s->out}},
        {"merged_zero", s->merged_zero, NULL, 2, {s->n_groups, s->out}},
        {"W_hat", s->w_hat, NULL, 2, {s->out, s->in}},
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) o[k++] = all[i];
    return k;
}

static void qalora_destroy(void *state) {
    qalora_state *s = state;
    qa_base_product_free(&s->base_mm);
    float *ps[] = {s->group_scale, s->group_zero, s->merged_zero, s->w_hat, s->bias, s->A, s->B,
                   s->dA, s->dB, s->pooled, s->dpooled, s->pooled_a, s->dpooled_a};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_frozen_codes_free(&s->w_code);
}

/* ---- options ---- */

#define QALORA_STR(x) #x
#define QALORA_XSTR(x) QALORA_STR(x)
static const qa_option qalora_option_table[] = {
    {"group_size", QA_OPT_INT, QALORA_XSTR(QA_QALORA_AUTO_GROUP), 0, 4096, NULL,
     "group size along d_in (d_in must be a multiple); 0 = auto: the largest divisor of d_in <= d_in/16 (8 at 128)",
     1, "g", offsetof(qalora_options, group_size)},
};

const qa_method qa_method_qalora = {
    .name = "qalora",
    .summary = "QA-LoRA: group-wise INT-N base (g = d_in/16 by default), pooled-input LoRA folded into FP16 zero points, no PTQ",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(qalora_state),
    .init = qalora_init,
    .forward = qalora_forward,
    .backward = qalora_backward,
    .params = qalora_params,
    .merge = qalora_merge,
    .bytes = qalora_bytes,
    .destroy = qalora_destroy,
    .inspect = qalora_inspect,
    .needs_weight_bits = 1,
    .options = qalora_option_table,
    .n_options = 1,
    .options_size = sizeof(qalora_options),
};
