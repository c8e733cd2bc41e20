/* LR-QAT: low-rank quantization-aware training. The frozen weight is kept on the integer grid as
 * 8-bit fixed point; a low-rank term in grid units is added inside the rounding, so every element
 * can move to another code; A, B and the per-channel scale train; the merge is a pure b-bit
 * weight with its scale.
 *
 * Paper: "Low-Rank Quantization-Aware Training for LLMs", Bondarenko et al., arXiv 2406.06385.
 * Reference code: github Qualcomm-AI-research/lr-qat, quantization/hijacker.py (the
 * `lr_qat_fixed_point8` variant; quantizers/uniform_quantizers.py for the symmetric quantizer,
 * range_estimators.py for `current_minmax`), read at commit 8795afe, the commit that computed
 * tests/data/lrqat_layers.h5 (tests/test_fixture.c reproduces every case through `qadapt fixture`).
 * Notation and rounding: methods/README.md.
 *
 * b = w_bits (2..8), symmetric signed grid qmin = -2^(b-1), qmax = 2^(b-1) - 1; f = 8 - b
 * fractional bits. W [out, in] (dropped after init), x [M, in] (fake-quantized at A bits by the
 * harness), A [r, in] kaiming-uniform, B [out, r] = 0 (lora_factors_init; the reference's
 * `lora_Bt` and `lora_A`, same initialisation), c = lora_scale: the reference's lora_alpha / r
 * (1 / r at its default alpha = 1); 1 by default here, the harness's convention for every method;
 * the fixture command sets it to lora_alpha / rank.
 *
 * Init (the reference's symmetric quantizer with the current min-max range, per channel):
 *   s0[o]   = max(|min(min_i W[o,i], 0)|, max(max_i W[o,i], 1e-8)) / qmax                  [out]
 *   Phi0    = round(clamp(W / s0, qmin, qmax) * 2^f)   int8, f = 8 - b fractional bits   [out, in]
 *             (phi = fp32, the reference's `lr_qat_fp32`: Phi0 = W / s0 in float, no clamp)
 *   s = s0 trains.
 * Forward:
 *   C     = c (B A)                                         grid units                    [out, in]
 *   Z     = Phi0 / 2^f + C
 *   W_int = clamp(round(Z), qmin, qmax)
 *   W_eff = max(s, 1e-8) W_int     (the reference's scale property clamps delta at eps = 1e-8)
 *   y     = x W_eff^T + b                                                                   [M, out]
 * Backward (straight-through rounding; the reference's quirk reproduced: the clamp acts on round(Z),
 * so the mask is qmin <= round(Z) <= qmax, and an element whose Z lies less than half a step
 * outside the grid still passes the gradient):
 *   G_W   = dy^T x                                         (dense, like full QAT)          [out, in]
 *   ds[o] += [s[o] >= 1e-8] sum_i G_W[o,i] W_int[o,i]
 *   GM    = c max(s, 1e-8) (G_W . mask)
 *   dB   += GM A^T   [out, r];   dA += B^T GM   [r, in];   dx += dy W_eff   [M, in]
 * Learning rates: A, B at the recipe's lr; s at the recipe's lr times scale_lr (0.01 by default:
 *   the reference's README runs lr_ab = 1e-3 and scales_lr = 1e-5). The recipe's AdamW weight
 *   decay applies to A, B and s alike (the reference decays none of them: its LoRA group and its
 *   scale group both have weight decay 0 in the README's runs; set weight_decay = 0 to match).
 * Merge: W_int = clamp(round(Phi0 / 2^f + C), qmin, qmax) (exactly what training used; no PTQ)
 *   with row scale max(s, 1e-8): the integer row form w_int, row_scale. Stored as the harness
 *   stores integer rows (b-bit signed codes at most, FP32 scale per row):
 *   bits per weight = b + 32 / in.
 * Deviations:
 *   - The reference asserts 2 <= b <= 7 (no fractional bit is left at 8); here b = 8 is allowed:
 *     Phi0 is then the rounded grid value itself (f = 0), so the W8A8 tables can include the
 *     method. The reference also picks an unsigned grid when no weight of the whole model is
 *     negative; the harness's layers always have negative weights, and the grid here is
 *     always signed (the fixed-point variant of the reference requires it too).
 *   - f32 compute (the reference may run A, B in bf16); no gradient checkpointing (memory is
 *     counted, including the dense G_W buffer, see bytes()).
 *   - Only the per-channel range is implemented (the reference also has block-wise scales).
 * Memory (bytes()): frozen = Phi0 as held: the fixed-point values in int8 (one byte per weight;
 *   inspect() widens them to int32 on demand for the reference fixture) or FP32, + FP32 bias; gradients include the dense G_W; workspace = B A, W_eff (FP32), W_int (int32)
 *   and the pass mask (one byte): 13 bytes per weight; deployed = b-bit codes + FP32 scale and
 *   bias per row. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/lora_adapter.h"

enum { LRQAT_PHI_FIXED8 = 0, LRQAT_PHI_FP32 };

struct lrqat_view {
    int32_t *phi_fixed;
};

#define LRQAT_SCALE_EPS 1e-8f

typedef struct {
    int in, out, rank, n_bits, qmin, qmax, phi_mode;
    float frac_unit;          /* 2^-f (fixed8) */
    float lora_scale;         /* c */
    float scale_lr;
    char layer_name[96];
    int8_t *phi_fixed;        /* Phi0 (fixed8: the 8-bit fixed-point values) [out, in] */
    struct lrqat_view *view;  /* inspect()'s int32 copy of phi_fixed, made on demand */
    float *phi_fp;            /* Phi0 (fp32 variant) [out, in] */
    float *scale, *dscale;    /* s [out] (trainable) */
    float *A, *B, *dA, *dB;   /* [r, in], [out, r] */
    float *BA;                /* B A [out, in] */
    int32_t *w_int;           /* W_int of the last forward [out, in] */
    float *w_eff;             /* [out, in] */
    unsigned char *pass;      /* qmin <= round(Z) <= qmax [out, in] */
    float *grad_w;            /* G_W, then GM [out, in] */
    float *bias;
    const float *x;
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
} lrqat_state;

typedef struct {
    int phi;                  /* LRQAT_PHI_* */
    float scale_lr;
} lrqat_options;

extern const qa_method qa_method_lrqat;

static int lrqat_init(void *state, const qa_layer_init *li, qa_error *err) {
    lrqat_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    lrqat_options opt;
    qa_method_options_of(&qa_method_lrqat, li->cfg, &opt);
    const char *name = li->layer_name ? li->layer_name : "?";
    const int in = li->in, out = li->out, bits = li->cfg->w_bits, r = li->cfg->rank;
    if (bits < 2 || bits > 8)
        return qa_fail(err, QA_ERR_INPUT,
                       "lr-qat: layer %s: w_bits = %d is not allowed (allowed: bits = wNaM with N in 2..8: Phi0 is kept "
                       "as 8-bit fixed point with 8 - N fractional bits)", name, bits);
    if (r < 1 || r > in || r > out)
        return qa_fail(err, QA_ERR_INPUT, "lr-qat: layer %s: rank = %d is outside the allowed range 1..min(in=%d, out=%d)",
                       name, r, in, out);
    s->in = in;
    s->out = out;
    s->rank = r;
    s->n_bits = bits;
    s->qmin = -(1 << (bits - 1));
    s->qmax = (1 << (bits - 1)) - 1;
    s->phi_mode = opt.phi;
    s->frac_unit = ldexpf(1.0f, -(8 - bits));
    s->lora_scale = li->cfg->lora_scale;
    s->scale_lr = opt.scale_lr;
    snprintf(s->layer_name, sizeof s->layer_name, "%s", name);
    const size_t n = (size_t)in * out;
    s->scale = qa_alloc(sizeof(float) * out);
    s->dscale = qa_alloc(sizeof(float) * out);
    if (s->phi_mode == LRQAT_PHI_FIXED8) s->phi_fixed = qa_alloc(n);
    else s->phi_fp = qa_alloc(sizeof(float) * n);
    const float qmin = (float)s->qmin, qmax = (float)s->qmax, to_fixed = ldexpf(1.0f, 8 - bits);
    for (int o = 0; o < out; o++) {
        const float *w = li->W + (size_t)o * in;
        float lo = w[0], hi = w[0];
        for (int i = 1; i < in; i++) { lo = w[i] < lo ? w[i] : lo; hi = w[i] > hi ? w[i] : hi; }
        lo = lo < 0.f ? lo : 0.f;                       /* the range includes 0 */
        hi = hi > LRQAT_SCALE_EPS ? hi : LRQAT_SCALE_EPS;
        const float absmax = fabsf(lo) > hi ? fabsf(lo) : hi;
        const float s0 = absmax / qmax;
        s->scale[o] = s0;
        for (int i = 0; i < in; i++) {
            float phi = w[i] / s0;
            if (s->phi_mode == LRQAT_PHI_FP32) { s->phi_fp[(size_t)o * in + i] = phi; continue; }
            phi = phi < qmin ? qmin : (phi > qmax ? qmax : phi);
            s->phi_fixed[(size_t)o * in + i] = (int8_t)nearbyintf(phi * to_fixed); /* in -128 .. 127 */
        }
    }
    qa_lora_factors_init(in, out, r, li->rng, &s->A, &s->B, &s->dA, &s->dB);
    s->BA = qa_alloc(sizeof(float) * n);
    s->w_int = qa_alloc(sizeof(int32_t) * n);
    s->w_eff = qa_alloc(sizeof(float) * n);
    s->pass = qa_alloc(n);
    s->grad_w = qa_alloc(sizeof(float) * n);
    s->bias = qa_alloc(sizeof(float) * out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * out);
    s->view = qa_alloc(sizeof *s->view);
    return QA_OK;
}

static float phi_at(const lrqat_state *s, size_t k) {
    return s->phi_mode == LRQAT_PHI_FIXED8 ? (float)s->phi_fixed[k] * s->frac_unit : s->phi_fp[k];
}

/* W_int, the pass mask and W_eff from the current A, B and s */
static void quantize_weight(lrqat_state *s) {
    const int in = s->in, out = s->out;
    qa_matmul(out, in, s->rank, s->B, 0, s->A, 0, s->BA, 0, NULL);          /* B A */
    for (int o = 0; o < out; o++) {
        const float row_scale = s->scale[o] > LRQAT_SCALE_EPS ? s->scale[o] : LRQAT_SCALE_EPS;
        for (int i = 0; i < in; i++) {
            const size_t k = (size_t)o * in + i;
            const float z = phi_at(s, k) + s->BA[k] * s->lora_scale;      /* Z = Phi0 + c B A */
            const float r = nearbyintf(z);
            const int inside = r >= (float)s->qmin && r <= (float)s->qmax;
            const float wi = inside ? r : (r < (float)s->qmin ? (float)s->qmin : (float)s->qmax);
            s->pass[k] = (unsigned char)inside;
            s->w_int[k] = (int32_t)wi;
            s->w_eff[k] = row_scale * wi;
        }
    }
}

static void lrqat_forward(void *state, const float *x, float *y, int M) {
    lrqat_state *s = state;
    s->x = x;
    quantize_weight(s);
    qa_base_product_forward(&s->base_mm, y, x, s->w_eff, s->bias, M);              /* y = x W_eff^T + b */
}

static void lrqat_backward(void *state, const float *dy, float *dx, int M) {
    lrqat_state *s = state;
    const int in = s->in, out = s->out, r = s->rank;
    qa_matmul(out, in, M, dy, 1, s->x, 0, s->grad_w, 0, NULL);              /* G_W = dy^T x */
    for (int o = 0; o < out; o++) {
        const float *g = s->grad_w + (size_t)o * in;
        double acc = 0;
        for (int i = 0; i < in; i++) acc += (double)g[i] * s->w_int[(size_t)o * in + i];
        if (s->scale[o] >= LRQAT_SCALE_EPS) s->dscale[o] += (float)acc;    /* ds += sum_i G_W W_int */
        const float row = s->lora_scale * (s->scale[o] > LRQAT_SCALE_EPS ? s->scale[o] : LRQAT_SCALE_EPS);
        for (int i = 0; i < in; i++) {                                      /* GM = c s (G_W . mask) */
            const size_t k = (size_t)o * in + i;
            s->grad_w[k] = s->pass[k] ? row * s->grad_w[k] : 0.f;
        }
    }
    qa_matmul(out, r, in, s->grad_w, 0, s->A, 1, s->dB, 1, NULL);            /* dB += GM A^T */
    qa_matmul(r, in, out, s->B, 1, s->grad_w, 0, s->dA, 1, NULL);            /* dA += B^T GM */
    qa_base_product_backward_dx(&s->base_mm, dx, dy, s->w_eff, M);          /* dx += dy W_eff */
}

static int lrqat_params(void *state, qa_param *out, int max) {
    lrqat_state *s = state;
    if (max < 3) return 0;
    out[0] = (qa_param){"lora_A", s->A, s->dA, (size_t)s->rank * s->in, 1.0f};
    out[1] = (qa_param){"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f};
    out[2] = (qa_param){"scale", s->scale, s->dscale, (size_t)s->out, s->scale_lr};
    return 3;
}

static int lrqat_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    lrqat_state *s = state;
    const int in = s->in, out = s->out;
    const size_t n = (size_t)in * out;
    quantize_weight(s);
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    d->w_int = qa_alloc(sizeof(int32_t) * n);
    memcpy(d->w_int, s->w_int, sizeof(int32_t) * n);
    d->row_scale = qa_alloc(sizeof(float) * out);
    for (int o = 0; o < out; o++) d->row_scale[o] = s->scale[o] > LRQAT_SCALE_EPS ? s->scale[o] : LRQAT_SCALE_EPS;
    d->needs_ptq = 0;
    d->merge = QA_MERGE_QAT_CODES;
    d->bits_per_weight = s->n_bits + 32.0 / in;
    snprintf(d->note, sizeof d->note, "phi %s", s->phi_mode == LRQAT_PHI_FIXED8 ? "fixed_point8" : "fp32");
    return QA_OK;
}

static void lrqat_bytes(const void *state, qa_bytes *b) {
    const lrqat_state *s = state;
    const size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out) + s->out;
    /* frozen: Phi0 as held (int8 fixed point, or FP32) + FP32 bias; the trainable scale is
     * counted as trainable. Gradients include the dense G_W [out, in] the backward needs (as full
     * QAT); B A, W_eff, W_int and the pass mask are workspace. */
    const size_t phi_bytes = s->phi_mode == LRQAT_PHI_FIXED8 ? sizeof(int8_t) : sizeof(float);
    b->frozen = n * phi_bytes + (size_t)s->out * sizeof(float);
    b->workspace = n * (2 * sizeof(float) + sizeof(int32_t) + 1);
    b->trainable = lr * sizeof(float);
    b->gradients = (lr + n) * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    b->deployed = (n * (size_t)s->n_bits + 7) / 8 + 2 * (size_t)s->out * sizeof(float); /* codes + scale + bias */
}

static int lrqat_inspect(const void *state, qa_named_tensor *o, int max) {
    const lrqat_state *s = state;
    struct lrqat_view *v = s->view; /* Phi0 widened to int32 on the first call (fixtures, tests) */
    if (s->phi_fixed && !v->phi_fixed) {
        const size_t n = (size_t)s->in * s->out;
        v->phi_fixed = qa_alloc(sizeof(int32_t) * n);
        for (size_t k = 0; k < n; k++) v->phi_fixed[k] = s->phi_fixed[k];
    }
    qa_named_tensor all[] = {
        {"scale", s->scale, NULL, 1, {s->out, 1}},
        {"Phi0", s->phi_fp, v->phi_fixed, 2, {s->out, s->in}},
        {"W_int", NULL, s->w_int, 2, {s->out, s->in}},
        {"W_eff", s->w_eff, NULL, 2, {s->out, s->in}},
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) o[k++] = all[i];
    return k;
}

static void lrqat_destroy(void *state) {
    lrqat_state *s = state;
    qa_base_product_free(&s->base_mm);
    float *ps[] = {s->phi_fp, s->scale, s->dscale, s->A, s->B, s->dA, s->dB, s->BA, s->w_eff, s->grad_w, s->bias};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_free(s->phi_fixed);
    if (s->view) qa_free(s->view->phi_fixed);
    qa_free(s->view);
    qa_free(s->w_int);
    qa_free(s->pass);
}

static const qa_option lrqat_option_table[] = {
    {"phi", QA_OPT_ENUM, "fixed_point8", 0, 0, "fixed_point8|fp32",
     "storage of the frozen Phi0 = W / s0: 8-bit fixed point (the paper's choice) or FP32", 1, "",
     offsetof(lrqat_options, phi)},
    {"scale_lr", QA_OPT_FLOAT, "0.01", 1e-6, 100, NULL, "learning rate of the quantization scales, times the recipe's lr", 1,
     "slr", offsetof(lrqat_options, scale_lr)},
};

/* the reference fixture's `variant` attribute names the Phi0 storage */
static const qa_fixture_option lrqat_fixture[] = {{"variant", "phi"}};

const qa_method qa_method_lrqat = {
    .name = "lr-qat",
    .summary = "LR-QAT: low-rank term in grid units inside the rounding of an 8-bit fixed-point Phi0; A, B and the scale train; "
               "merges into a pure W-bit weight",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(lrqat_state),
    .init = lrqat_init,
    .forward = lrqat_forward,
    .backward = lrqat_backward,
    .params = lrqat_params,
    .merge = lrqat_merge,
    .bytes = lrqat_bytes,
    .destroy = lrqat_destroy,
    .inspect = lrqat_inspect,
    .needs_weight_bits = 1,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
    .options = lrqat_option_table,
    .n_options = 2,
    .options_size = sizeof(lrqat_options),
    .fixture_options = lrqat_fixture,
    .n_fixture_options = 1,
};
