/* LoRA: the full-precision baseline, and the PTQ step it needs to deploy at N bits.
 *
 * Paper: "LoRA: Low-Rank Adaptation of Large Language Models", Hu et al., arXiv 2106.09685.
 * Reference code: microsoft/LoRA (loralib); as a baseline here it follows the conventions of the
 * IntLoRA authors' code (csguoh/IntLoRA), which adds B A with no alpha/r scaling.
 * Shared notation, the quantizers (section 0) and the PTQ step (0.5): methods/README.md.
 *
 *   W [out,in] frozen FP32 copy of the pre-trained weight; b [out]; A [r,in]; B [out,r]; x [M,in]
 *   init      A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform, a = sqrt 5), B = 0
 *   forward   y  = x W^T + b + s (x A^T) B^T                          y [M,out]
 *   backward  xa = x A^T  [M,r]                                       (kept from the forward)
 *             dB += s dy^T xa,   dxa = s dy B,   dA += dxa^T x,   dx += dy W + dxa A
 *   merge     W' = W + s B A in float (needs_ptq); the harness then quantizes W' per row at N
 *             bits with the section-0 search (methods/README.md, 0.5) and scores both deploys,
 *             "fp" (W') and "int" (after PTQ): that PTQ step is exactly what the IntLoRA paper
 *             criticises.
 *   deployed  N-bit codes + an FP32 scale and zero point per row (FP32 weights at N = 0) + bias
 *
 * s = the recipe's lora_scale, 1 by default (no alpha/r scaling, as the IntLoRA reference; PEFT
 * would use alpha / r). The adapter term is methods/lora_adapter.c, shared with QLoRA. */
#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/lora_adapter.h"

typedef struct {
    int in, out, w_bits;
    float *W, *bias;        /* frozen copy of the pre-trained layer */
    qa_lora_adapter ad;
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
} lora_state;

static int lora_init(void *state, const qa_layer_init *li, qa_error *err) {
    lora_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    if (li->cfg->rank < 1 || li->cfg->rank > li->in || li->cfg->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "lora: rank %d is outside 1..min(in=%d, out=%d) for %s", li->cfg->rank,
                       li->in, li->out, li->layer_name);
    s->in = li->in;
    s->out = li->out;
    s->w_bits = li->cfg->w_bits;
    s->W = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    memcpy(s->W, li->W, sizeof(float) * (size_t)s->in * s->out);
    s->bias = qa_alloc(sizeof(float) * s->out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * s->out);
    qa_lora_adapter_init(&s->ad, s->in, s->out, li->cfg->rank, li->cfg->lora_scale, li->rng);
    return QA_OK;
}

static void lora_forward(void *state, const float *x, float *y, int M) {
    lora_state *s = state;
    qa_base_product_forward(&s->base_mm, y, x, s->W, s->bias, M); /* y = x W^T + b */
    qa_lora_adapter_forward(&s->ad, x, y, M);                  /* y += s (x A^T) B^T */
}

static void lora_backward(void *state, const float *dy, float *dx, int M) {
    lora_state *s = state;
    qa_lora_adapter_backward(&s->ad, dy, dx, M);
    qa_base_product_backward_dx(&s->base_mm, dx, dy, s->W, M); /* dx += dy W */
}

static int lora_params(void *state, qa_param *out, int max) {
    lora_state *s = state;
    return qa_lora_adapter_params(&s->ad, out, max);
}

static int lora_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    lora_state *s = state;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    d->w_fp = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    qa_lora_adapter_merge(&s->ad, s->W, d->w_fp); /* W' = W + s B A */
    d->needs_ptq = s->w_bits > 0;
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = s->w_bits > 0 ? s->w_bits : 32;
    return QA_OK;
}

static void lora_bytes(const void *state, qa_bytes *b) {
    const lora_state *s = state;
    size_t w = (size_t)s->in * s->out, lr = (size_t)s->ad.rank * (s->in + s->out);
    b->frozen = (w + s->out) * sizeof(float);
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    /* deployed: W-bit codes + per-row FP32 scale and zero point (FP32 weights at fp) + FP32 bias */
    b->deployed = (s->w_bits > 0 ? (w * s->w_bits + 7) / 8 + 2 * s->out * sizeof(float) : w * sizeof(float)) +
                  s->out * sizeof(float);
}

static void lora_destroy(void *state) {
    lora_state *s = state;
    qa_base_product_free(&s->base_mm);
    qa_free(s->W);
    qa_free(s->bias);
    qa_lora_adapter_free(&s->ad);
}

const qa_method qa_method_lora = {
    .name = "lora",
    .summary = "LoRA on the frozen FP weight; deploy = merge in float then PTQ to W bits (FP and INT scored)",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(lora_state),
    .init = lora_init,
    .forward = lora_forward,
    .backward = lora_backward,
    .params = lora_params,
    .merge = lora_merge,
    .bytes = lora_bytes,
    .destroy = lora_destroy,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
};
