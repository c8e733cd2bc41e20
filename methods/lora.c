/* LoRA (METHODS.md section 1): the FP baseline and the PTQ step it needs.
 *
 *   forward   y  = x W^T + b + s (x A^T) B^T        W frozen FP32 [out,in]; A [r,in]; B [out,r]
 *   backward  xa = x A^T                             (kept from the forward)
 *             dB += s dy^T xa,   dxa = s dy B,   dA += dxa^T x,   dx += dy W + dxa A
 *   init      A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform, a = sqrt 5), B = 0
 *   merge     W' = W + s B A in float; the harness then applies PTQ (section 0 quantizer, per
 *             channel, W bits) to deploy at the experiment's bit width: that PTQ step is exactly
 *             what the IntLoRA paper criticises, so both the FP and the INT deploy are scored.
 * s is 1 unless the recipe sets lora_scale (the IntLoRA reference has no alpha/r scaling). */
#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/registry.h"

typedef struct {
    int in, out, rank, w_bits;
    float scale;
    float *W, *bias;        /* frozen copy of the pre-trained layer */
    float *A, *B, *dA, *dB;
    const float *x;         /* input of the last forward (owned by the caller) */
    float *xa, *dxa;        /* [rows_cap, rank] */
    int rows_cap;
} lora_state;

static int lora_init(void *state, const qa_layer_init *li, qa_error *err) {
    lora_state *s = state;
    if (li->cfg->rank < 1 || li->cfg->rank > li->in || li->cfg->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "lora: rank %d is outside 1..min(in=%d, out=%d) for %s", li->cfg->rank,
                       li->in, li->out, li->layer_name);
    s->in = li->in;
    s->out = li->out;
    s->rank = li->cfg->rank;
    s->w_bits = li->cfg->w_bits;
    s->scale = li->cfg->lora_scale;
    s->W = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    memcpy(s->W, li->W, sizeof(float) * (size_t)s->in * s->out);
    s->bias = qa_alloc(sizeof(float) * s->out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * s->out);
    s->A = qa_alloc(sizeof(float) * (size_t)s->rank * s->in);
    s->B = qa_alloc(sizeof(float) * (size_t)s->out * s->rank); /* zeros */
    s->dA = qa_alloc(sizeof(float) * (size_t)s->rank * s->in);
    s->dB = qa_alloc(sizeof(float) * (size_t)s->out * s->rank);
    float bound = 1.0f / sqrtf((float)s->in);
    qa_rng_fill_uniform(li->rng, s->A, (size_t)s->rank * s->in, -bound, bound);
    return QA_OK;
}

static void ensure_rows(lora_state *s, int M) {
    if (M <= s->rows_cap) return;
    qa_free(s->xa);
    qa_free(s->dxa);
    s->xa = qa_alloc(sizeof(float) * (size_t)M * s->rank);
    s->dxa = qa_alloc(sizeof(float) * (size_t)M * s->rank);
    s->rows_cap = M;
}

static void lora_forward(void *state, const float *x, float *y, int M) {
    lora_state *s = state;
    ensure_rows(s, M);
    s->x = x;
    linear_forward(y, x, s->W, s->bias, M, s->in, s->out);
    linear_forward(s->xa, x, s->A, NULL, M, s->in, s->rank);
    /* y += s xa B^T: fold s into xa's copy so one accumulate-matmul does it */
    if (s->scale != 1.0f) {
        for (size_t i = 0; i < (size_t)M * s->rank; i++) s->dxa[i] = s->scale * s->xa[i];
        qa_matmul(M, s->out, s->rank, s->dxa, 0, s->B, 1, y, 1, NULL);
    } else {
        qa_matmul(M, s->out, s->rank, s->xa, 0, s->B, 1, y, 1, NULL);
    }
}

static void lora_backward(void *state, const float *dy, float *dx, int M) {
    lora_state *s = state;
    /* dB += s dy^T xa  ([out,M]·[M,r]) */
    if (s->scale != 1.0f) for (size_t i = 0; i < (size_t)M * s->rank; i++) s->xa[i] *= s->scale;
    qa_matmul(s->out, s->rank, M, dy, 1, s->xa, 0, s->dB, 1, NULL);
    /* dxa = s dy B  ([M,out]·[out,r]) */
    qa_matmul(M, s->rank, s->out, dy, 0, s->B, 0, s->dxa, 0, NULL);
    if (s->scale != 1.0f) for (size_t i = 0; i < (size_t)M * s->rank; i++) s->dxa[i] *= s->scale;
    /* dA += dxa^T x  ([r,M]·[M,in]) */
    qa_matmul(s->rank, s->in, M, s->dxa, 1, s->x, 0, s->dA, 1, NULL);
    if (dx) {
        qa_matmul(M, s->in, s->out, dy, 0, s->W, 0, dx, 1, NULL);     /* dy W */
        qa_matmul(M, s->in, s->rank, s->dxa, 0, s->A, 0, dx, 1, NULL); /* dxa A */
    }
}

static int lora_params(void *state, qa_param *out, int max) {
    lora_state *s = state;
    if (max < 2) return 0;
    out[0] = (qa_param){"lora_A", s->A, s->dA, (size_t)s->rank * s->in, 1.0f};
    out[1] = (qa_param){"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f};
    return 2;
}

static int lora_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    lora_state *s = state;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    d->w_fp = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    memcpy(d->w_fp, s->W, sizeof(float) * (size_t)s->in * s->out);
    /* W' = W + s B A  ([out,r]·[r,in], accumulated onto the copy of W) */
    float *BA = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    qa_matmul(s->out, s->in, s->rank, s->B, 0, s->A, 0, BA, 0, NULL);
    for (size_t i = 0; i < (size_t)s->in * s->out; i++) d->w_fp[i] += s->scale * BA[i];
    qa_free(BA);
    d->needs_ptq = s->w_bits > 0;
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = s->w_bits > 0 ? s->w_bits : 32;
    return QA_OK;
}

static void lora_bytes(const void *state, qa_bytes *b) {
    const lora_state *s = state;
    size_t w = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out);
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
    float *ps[] = {s->W, s->bias, s->A, s->B, s->dA, s->dB, s->xa, s->dxa};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
}

const qa_method qa_method_lora = {
    .name = "lora",
    .summary = "LoRA on the frozen FP weight; deploy = merge in float then PTQ to W bits (FP and INT scored)",
    .version = 1,
    .state_size = sizeof(lora_state),
    .init = lora_init,
    .forward = lora_forward,
    .backward = lora_backward,
    .params = lora_params,
    .merge = lora_merge,
    .bytes = lora_bytes,
    .destroy = lora_destroy,
};
