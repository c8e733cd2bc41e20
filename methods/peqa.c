/* PEQA: parameter-efficient and quantization-aware adaptation. The integer codes of the quantized
 * weight are frozen; only the quantization scales train, so the deployed layer is the same codes
 * with the new scales (no merge arithmetic, no PTQ).
 *
 * Paper: "Memory-Efficient Fine-Tuning of Compressed Large Language Models via sub-4-bit Integer
 * Quantization", Kim et al., arXiv 2305.14152 (NeurIPS 2023). Reference code: none public was
 * found; the paper (its section 3 and equation 2) is the reference. Notation, rounding and the
 * section-0 quantizer: methods/README.md.
 *
 * N = w_bits, L = 2^N; W [out, in] the pre-trained weight (dropped after init), x [M, in] the
 * layer's input (already fake-quantized at A bits by the harness), b [out] FP32.
 * Scale groups: peqa_group = 0 (the default, the paper's per-channel setting): one scale per
 * output row, G = 1 group of width g = in; peqa_group = g > 0 (the paper's grouped variant):
 * G = in / g groups of g consecutive inputs per row (in must be a multiple of g).
 *
 * Init (frozen afterwards):
 *   s0[j,o], z0[j,o] = the section-0 search on W[o, jg .. jg+g-1] at N bits        [G, out]
 *   q[o,i] = clamp(round(W[o,i] / s0[j,o]) + z0[j,o], 0, L - 1),   j = floor(i / g)
 *   q held as N-bit integers (methods/frozen_codes.h: packed at N <= 4, a byte at 5..8)
 *   C[o,i] = q[o,i] - z0[j,o]  (the frozen signed code in float, the matmul's operand: workspace)
 *   s = s0: the trainable scale (the paper writes s0 + ds; training s itself is the same
 *   gradient, and ds = s - s0).                                                   [G, out]
 * Forward, per channel (G = 1), without forming the weight:
 *   Z = x C^T                                                                     [M, out]
 *   y[m,o] = s[o] Z[m,o] + b[o]
 * Backward, per channel (the paper's memory argument: no [out, in] gradient is formed):
 *   ds[o] += sum_m dy[m,o] Z[m,o]
 *   dx    += (dy . s) C                         (dy . s: each column o times s[o])
 * Forward and backward with groups (G > 1):
 *   W_hat[o,i] = s[j,o] C[o,i];   y = x W_hat^T + b
 *   G_W = dy^T x [out, in];   ds[j,o] += sum_{i in group j} G_W[o,i] C[o,i];   dx += dy W_hat
 *   (the group sums need G_W or G matmuls; G_W is one matmul and is formed here).
 * Only s trains (learning rate: the recipe's lr times scale_lr, default 0.01: Adam moves each
 * parameter by about lr per step and the scales are of the order of 1e-2, so the recipe's LoRA
 * rate would move them by tens of percent per step; the paper tunes the scale rate per model).
 * The recipe's AdamW weight decay applies to the scales as to any trained tensor (decoupled:
 * lr * scale_lr * weight_decay of the scale per step, 1e-7 at lr 1e-3 and the defaults).
 * The recipe's rank and lora_scale do not apply: there is no low-rank term.
 * Deploy: the frozen codes with the trained scales: W'[o,i] = s[j,o] (q[o,i] - z0[j,o]), exactly
 *   the training forward's weight (no PTQ). Per channel it is the per-row integer form
 *   w_int = q - z0, row_scale = s (the harness's integer path: at 8 bits the u8 x s8 kernel of
 *   bench-layer); with groups it is handed over as float weights (needs_ptq = 0).
 *   Stored: codes q (N bits, unsigned), scale [G, out] (FP32), zero point z0 [G, out] (FP32: z0 is
 *   an integer from the search and is not clamped, so it may lie outside 0 .. L - 1).
 *   bits per weight = N + (32 + 32) / g   (g = in per channel).
 * Deviations: the paper starts from round-to-nearest (RTN) quantization without fixing how the
 * range is chosen; here the scale and zero point come from the section-0 search, the base every
 * method adapts, so that PEQA starts from the same quantized model as the others; a constant row
 * or group gets the section-0 fallback (methods/README.md, 0.2); scales stay FP32 in training
 * and at deploy.
 * Memory (bytes()): frozen = the codes q as held + FP32 zero point per group + FP32 bias;
 *   workspace = C in float (the product's operand), and with groups W_hat and G_W (4 bytes per
 *   weight each); deployed = N-bit codes + FP32 zero point and scale per group + FP32 bias. */
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
    int in, out, n_bits, group, n_groups; /* group = g (in when per channel) */
    char layer_name[96];
    qa_frozen_codes q;       /* codes [out, in], 0 .. L - 1, N-bit (frozen_codes.h) */
    float *code;             /* C = q - z0 [out, in] in float (workspace) */
    float *zero;             /* z0 [G, out] */
    float *scale, *dscale;   /* s, ds [G, out] (trainable) */
    float scale_lr;
    float *w_hat;            /* s C [out, in] (groups only; refreshed every forward) */
    float *grad_w;           /* G_W [out, in] (groups only) */
    float *bias;
    const float *x;          /* input of the last forward (owned by the caller) */
    float *z_cache, *dy_scaled; /* Z, dy . s [rows_cap, out] (per channel) */
    double *ds_acc;          /* the per-channel scale gradient's running sums [out] */
    int rows_cap;
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
} peqa_state;

typedef struct {
    int group;               /* 0 = per output channel */
    float scale_lr;          /* multiplier of the recipe's learning rate for the scales */
} peqa_options;

extern const qa_method qa_method_peqa;

static int peqa_init(void *state, const qa_layer_init *li, qa_error *err) {
    peqa_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    peqa_options opt;
    qa_method_options_of(&qa_method_peqa, li->cfg, &opt);
    const char *name = li->layer_name ? li->layer_name : "?";
    const int in = li->in, out = li->out, bits = li->cfg->w_bits;
    if (bits < 1 || bits > 16)
        return qa_fail(err, QA_ERR_INPUT,
                       "peqa: layer %s: PEQA needs integer weights (bits = wNaM with N in 2..8, e.g. w4a8), not w_bits = %d",
                       name, bits);
    if (opt.group != 0 && (opt.group > in || in % opt.group != 0))
        return qa_fail(err, QA_ERR_INPUT,
                       "peqa: layer %s: peqa_group = %d does not divide the input width %d (allowed: 0 = per output "
                       "channel, or a divisor of %d)", name, opt.group, in, in);
    s->in = in;
    s->out = out;
    s->n_bits = bits;
    s->group = opt.group ? opt.group : in;
    s->n_groups = in / s->group;
    s->scale_lr = opt.scale_lr;
    snprintf(s->layer_name, sizeof s->layer_name, "%s", name);
    const int G = s->n_groups, g = s->group;
    int32_t *q = qa_alloc(sizeof(int32_t) * (size_t)out * in);
    s->code = qa_alloc(sizeof(float) * (size_t)out * in);
    s->zero = qa_alloc(sizeof(float) * (size_t)G * out);
    s->scale = qa_alloc(sizeof(float) * (size_t)G * out);
    s->dscale = qa_alloc(sizeof(float) * (size_t)G * out);
    s->ds_acc = qa_alloc(sizeof(double) * out);
    const float lmax = (float)((1 << bits) - 1);
    for (int o = 0; o < out; o++)
        for (int j = 0; j < G; j++) {
            const float *w = li->W + (size_t)o * in + (size_t)j * g;
            float delta, z;
            qa_quant_search(w, (size_t)g, bits, &delta, &z);
            s->scale[(size_t)j * out + o] = delta;
            s->zero[(size_t)j * out + o] = z;
            for (int k = 0; k < g; k++) {
                size_t at = (size_t)o * in + (size_t)j * g + k;
                float qv = nearbyintf(w[k] / delta) + z;
                qv = qv < 0.f ? 0.f : (qv > lmax ? lmax : qv);
                q[at] = (int32_t)qv;
                s->code[at] = qv - z;
            }
        }
    qa_frozen_codes_alloc(&s->q, (size_t)out * in, bits);
    qa_frozen_codes_pack(&s->q, q);
    qa_free(q);
    if (G > 1) {
        s->w_hat = qa_alloc(sizeof(float) * (size_t)out * in);
        s->grad_w = qa_alloc(sizeof(float) * (size_t)out * in);
    }
    s->bias = qa_alloc(sizeof(float) * out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * out);
    return QA_OK;
}

static void ensure_rows(peqa_state *s, int M) {
    if (M <= s->rows_cap) return;
    qa_free(s->z_cache);
    qa_free(s->dy_scaled);
    s->z_cache = qa_alloc(sizeof(float) * (size_t)M * s->out);
    s->dy_scaled = qa_alloc(sizeof(float) * (size_t)M * s->out);
    s->rows_cap = M;
}

/* W_hat = s C (groups) */
static void refresh_w_hat(peqa_state *s) {
    for (int o = 0; o < s->out; o++)
        for (int i = 0; i < s->in; i++) {
            size_t at = (size_t)o * s->in + i;
            s->w_hat[at] = s->scale[(size_t)(i / s->group) * s->out + o] * s->code[at];
        }
}

static void peqa_forward(void *state, const float *x, float *y, int M) {
    peqa_state *s = state;
    const int out = s->out;
    s->x = x;
    if (s->n_groups > 1) {
        refresh_w_hat(s);
        qa_base_product_forward(&s->base_mm, y, x, s->w_hat, s->bias, M);            /* y = x W_hat^T + b */
        return;
    }
    ensure_rows(s, M);
    qa_matmul(M, out, s->in, x, 0, s->code, 1, s->z_cache, 0, NULL);       /* Z = x C^T */
    for (int m = 0; m < M; m++)                                             /* y = s Z + b */
        for (int o = 0; o < out; o++)
            y[(size_t)m * out + o] = s->scale[o] * s->z_cache[(size_t)m * out + o] + s->bias[o];
}

static void peqa_backward(void *state, const float *dy, float *dx, int M) {
    peqa_state *s = state;
    const int in = s->in, out = s->out;
    if (s->n_groups > 1) {
        qa_matmul(out, in, M, dy, 1, s->x, 0, s->grad_w, 0, NULL);          /* G_W = dy^T x */
        for (int o = 0; o < out; o++)                       /* ds[j,o] += sum_{i in j} G_W C */
            for (int j = 0; j < s->n_groups; j++) {
                double acc = 0;
                for (int k = 0; k < s->group; k++) {
                    size_t at = (size_t)o * in + (size_t)j * s->group + k;
                    acc += (double)s->grad_w[at] * s->code[at];
                }
                s->dscale[(size_t)j * out + o] += (float)acc;
            }
        qa_base_product_backward_dx(&s->base_mm, dx, dy, s->w_hat, M);     /* dx += dy W_hat */
        return;
    }
    /* ds[o] += sum_m dy[m,o] Z[m,o]: each column summed in double in row order, the rows read
     * in memory order (a column walk over [M, out] misses the cache on every row) */
    double *acc = s->ds_acc;
    for (int o = 0; o < out; o++) acc[o] = 0;
    for (int m = 0; m < M; m++) {
        const float *dy_row = dy + (size_t)m * out, *z_row = s->z_cache + (size_t)m * out;
        for (int o = 0; o < out; o++) acc[o] += (double)dy_row[o] * z_row[o];
    }
    for (int o = 0; o < out; o++) s->dscale[o] += (float)acc[o];
    if (!dx) return;
    for (int m = 0; m < M; m++)                                             /* dy . s */
        for (int o = 0; o < out; o++) s->dy_scaled[(size_t)m * out + o] = dy[(size_t)m * out + o] * s->scale[o];
    qa_matmul(M, in, out, s->dy_scaled, 0, s->code, 0, dx, 1, NULL);       /* dx += (dy . s) C */
}

static int peqa_params(void *state, qa_param *out, int max) {
    peqa_state *s = state;
    if (max < 1) return 0;
    out[0] = (qa_param){"scale", s->scale, s->dscale, (size_t)s->n_groups * s->out, s->scale_lr};
    return 1;
}

static int peqa_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    peqa_state *s = state;
    const int in = s->in, out = s->out, G = s->n_groups;
    const size_t n = (size_t)in * out;
    memset(d, 0, sizeof *d);
    d->in = in;
    d->out = out;
    if (G == 1) {                                   /* per channel: the integer row form */
        d->w_int = qa_alloc(sizeof(int32_t) * n);
        d->row_scale = qa_alloc(sizeof(float) * out);
        for (size_t k = 0; k < n; k++) d->w_int[k] = (int32_t)s->code[k]; /* q - z0: small integers */
        memcpy(d->row_scale, s->scale, sizeof(float) * out);
    } else {
        refresh_w_hat(s);
        d->w_fp = qa_alloc(sizeof(float) * n);
        memcpy(d->w_fp, s->w_hat, sizeof(float) * n);
    }
    d->needs_ptq = 0;
    qa_frozen_codes_unpack(&s->q, 0, n, qa_deployed_store_int(d, "codes", s->n_bits, 0, out, in));
    memcpy(qa_deployed_store_float(d, "scale", 32, G, out), s->scale, sizeof(float) * (size_t)G * out);
    memcpy(qa_deployed_store_float(d, "zero", 32, G, out), s->zero, sizeof(float) * (size_t)G * out);
    d->merge = QA_MERGE_QAT_CODES;
    d->bits_per_weight = s->n_bits + (32.0 + 32.0) / s->group;
    snprintf(d->note, sizeof d->note, "scales per %s", G == 1 ? "channel" : "group");
    return QA_OK;
}

static void peqa_bytes(const void *state, qa_bytes *b) {
    const peqa_state *s = state;
    size_t n = (size_t)s->in * s->out, ns = (size_t)s->n_groups * s->out;
    /* held: the codes + FP32 zero point per group + FP32 bias; C in float (and W_hat, G_W with
     * groups) is workspace; deployed: N-bit codes, zero point and scale per group, bias */
    const size_t side = ns * sizeof(float) + (size_t)s->out * sizeof(float);
    b->frozen = qa_frozen_codes_bytes(n, s->n_bits) + side;
    b->workspace = n * sizeof(float) * (s->n_groups > 1 ? 3 : 1);
    size_t codes = (n * (size_t)s->n_bits + 7) / 8 + side;
    b->trainable = ns * sizeof(float);
    b->gradients = ns * sizeof(float);
    b->optimizer = 2 * ns * sizeof(float);
    b->deployed = codes + ns * sizeof(float);
}

static int peqa_inspect(const void *state, qa_named_tensor *o, int max) {
    const peqa_state *s = state;
    qa_named_tensor all[] = {
        {"scale", s->scale, NULL, 2, {s->n_groups, s->out}},
        {"zero_point", s->zero, NULL, 2, {s->n_groups, s->out}},
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) o[k++] = all[i];
    return k;
}

static void peqa_destroy(void *state) {
    peqa_state *s = state;
    qa_base_product_free(&s->base_mm);
    float *ps[] = {s->code, s->zero, s->scale, s->dscale, s->w_hat, s->grad_w, s->bias, s->z_cache, s->dy_scaled};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_free(s->ds_acc);
    qa_frozen_codes_free(&s->q);
}

static const qa_option peqa_option_table[] = {
    {"peqa_group", QA_OPT_INT, "0", 0, 4096, NULL,
     "scale groups along d_in: 0 = one scale per output channel (the paper's default), else the group width (must divide d_in)",
     1, "pg", offsetof(peqa_options, group)},
    {"scale_lr", QA_OPT_FLOAT, "0.01", 1e-6, 100, NULL, "learning rate of the quantization scales, times the recipe's lr", 1,
     "slr", offsetof(peqa_options, scale_lr)},
};

const qa_method qa_method_peqa = {
    .name = "peqa",
    .summary = "PEQA: frozen per-channel (or per-group) INT-N codes, only the scales train; deploys the codes with the new scales, no PTQ",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(peqa_state),
    .init = peqa_init,
    .forward = peqa_forward,
    .backward = peqa_backward,
    .params = peqa_params,
    .merge = peqa_merge,
    .bytes = peqa_bytes,
    .destroy = peqa_destroy,
    .inspect = peqa_inspect,
    .needs_weight_bits = 1,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
    .options = peqa_option_table,
    .n_options = 2,
    .options_size = sizeof(peqa_options),
};
