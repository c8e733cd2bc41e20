/* IR-QLoRA: LoRA over a base quantized with information-calibrated quantization (ICQ), with the
 * information elastic connection (IEC) around the adapter.
 *
 * Paper: "Accurate LoRA-Finetuning Quantization of LLMs via Information Retention", Qin et al.,
 * arXiv 2402.05445. Reference code: github htqin/IR-QLoRA (read at e6fef4a): "integer
 * quantizer/quantizer_icq.py" (ICQ, integer variant), utils.py (IEC around a QLoRA adapter, and
 * the NF4 variant of ICQ), "integer quantizer/peft_utils_iec.py" (IEC around QA-LoRA's adapter).
 * Notation, the LoRA factors and the section-0 quantizer: methods/README.md.
 *
 * 1. Frozen base (ICQ, `quant_icq_rows` in harness/quant.c, which states the search), per output
 *    row r of W [out,in] at N = 1..8 bits, L = 2^N:
 *      xmin = min(min W_r, 0), xmax = max(max W_r, 0)   (symmetric: +-max(|xmin|, xmax))
 *      for p in 1, linspace(1, 1 + tau, n + 1)[1:], linspace(1, 1 - tau, n + 1)[1:]:
 *        scale_p = p (xmax - xmin) / (L - 1),  zero_p = round(-p xmin / scale_p)  (L/2 symmetric)
 *        q = clamp(round(W_r / scale_p) + zero_p, 0, L - 1),  H_p = entropy of q's histogram
 *      keep the first p with the strictly largest H_p (tau = icq_tau_range, n = icq_tau_n)
 *      codes q [out,in] held as N-bit integers (methods/frozen_codes.h: packed at N <= 4, a byte
 *      at 5..8), scale [out], zero [out];  W_dq = scale_r (q - zero_r), decoded once at init
 *    At N = 0 the base is the FP weight (no quantizer).
 * 2. IEC, with g_in = in / r and g_out = out / r (both must divide: a recipe error otherwise):
 *      P [r,in]   P[j,i] = 1/g_in where i / g_in == j   (the mean of the j-th group of inputs)
 *      R [out,r]  R[o,j] = 1 where o / g_out == j        (h_j repeated over the j-th output group)
 *      h = x (A + bA P)^T                     [M,r]      A [r,in], B [out,r]
 *      y = x W_dq^T + b + s h (B + bB R)^T    [M,out]    s = lora_scale
 *    i.e. the reference's  h = A x + bA mean(x.reshape(r, g_in))  and
 *    out = (B h).reshape(r, g_out) + bB h.unsqueeze(-1). With A_e = A + bA P, B_e = B + bB R the
 *    adapter is plain LoRA on (A_e, B_e):
 *      backward  dB_e = s dy^T h,  dh = s dy B_e,  dA_e = dh^T x,  dx += dy W_dq + dh A_e
 *                dA += dA_e,  dB += dB_e,  dbA += sum_{j,i} P[j,i] dA_e[j,i],  dbB += sum_{o,j} R[o,j] dB_e[o,j]
 *    init: A kaiming-uniform, B = 0 (methods/README.md); bA = bB = 0 (the reference's zeros).
 * 3. Deploy: the elastic paths fold into the dense update, W' = W_dq + s B_e A_e (exact, float);
 *    then, as QLoRA, the harness's section-0 PTQ at N bits ("int") beside the float merge ("fp");
 *    and the extra deploy "icq": W' re-quantized by ICQ itself (the same options), its stored bits
 *    N + 64 / in (N-bit codes, an FP32 scale and zero point per row).
 *
 * Options (the table at the end): iec = learned (the code: bA, bB are trainable scalars starting
 * at 0) | fixed (the paper's parameter-free connection: bA = bB = 1, nothing extra trains) | off
 * (plain QLoRA over the ICQ base); icq_tau_range, icq_tau_n (the search), icq_symmetric, icq_count
 * (int8: the reference's quirk of counting codes after an int8 cast, so that at 8 bits codes >= 128
 * are not counted; all: every code counts).
 *
 * Deliberate deviations from the reference:
 *   - The base is ICQ's integer quantizer with round-to-nearest codes at every width; the
 *     reference runs it inside GPTQ (AutoGPTQ's quantizer replaced), and at 4 bits its main
 *     variant is NF4 with an entropy-searched per-block shift (utils.py), which is not implemented.
 *   - The adapter is QLoRA's A [r,in] over the full input (utils.py's IEC), not QA-LoRA's
 *     group-pooled A [r,in/32] of the integer variant's peft_utils_iec.py, so that IR-QLoRA
 *     trains as QLoRA over the ICQ base (methods/README.md); no dropout.
 *   - f32 compute (the reference computes in bf16), as every method here.
 *   - The entropy is summed over the sorted counts (harness/quant.h), so candidates whose
 *     histograms are permutations of one another tie exactly and the first is kept. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "methods/frozen_codes.h"
#include "methods/lora_adapter.h"

extern const qa_method qa_method_irqlora;

typedef enum { IRQ_IEC_LEARNED = 0, IRQ_IEC_FIXED, IRQ_IEC_OFF, IRQ_IEC_COUNT } irqlora_iec;

typedef struct {
    int iec;               /* irqlora_iec */
    float tau_range;
    int tau_n;
    int symmetric;         /* 0 asym, 1 sym */
    int count;             /* 0 int8 (the reference), 1 all */
} irqlora_options;

typedef struct {
    int in, out, rank, w_bits, g_in, g_out;
    irqlora_options opt;
    float scale;
    qa_frozen_codes codes; /* [out,in] q in [0, 2^N - 1] (N > 0), N-bit (frozen_codes.h) */
    float *q_scale, *q_zero; /* [out] */
    float *W_dq, *bias;    /* [out,in] f32 compute copy of the base (workspace; the base at N = 0); [out] */
    float *A, *B, *dA, *dB; /* [r,in], [out,r] */
    float beta[2], dbeta[2]; /* bA, bB and their gradients */
    float *A_e, *B_e;      /* A + bA P, B + bB R (refreshed every forward) */
    float *dA_e, *dB_e;    /* workspace of the backward */
    const float *x;        /* input of the last forward */
    float *h, *dh;         /* [M,r] */
    int rows_cap;
} irqlora_state;

static quant_icq_cfg icq_cfg(const irqlora_options *o) {
    return (quant_icq_cfg){.tau_range = o->tau_range, .tau_n = o->tau_n, .symmetric = o->symmetric,
                           .count_int8 = o->count == 0};
}

/* A_e = A + bA P, B_e = B + bB R (P, R of the header, step 2) */
static void effective_factors(irqlora_state *s) {
    const int r = s->rank, in = s->in, out = s->out;
    memcpy(s->A_e, s->A, sizeof(float) * (size_t)r * in);
    memcpy(s->B_e, s->B, sizeof(float) * (size_t)out * r);
    if (s->opt.iec == IRQ_IEC_OFF) return;
    for (int i = 0; i < in; i++) s->A_e[(size_t)(i / s->g_in) * in + i] += s->beta[0] / (float)s->g_in;
    for (int o = 0; o < out; o++) s->B_e[(size_t)o * r + o / s->g_out] += s->beta[1];
}

static void irqlora_forward(void *state, const float *x, float *y, int M) {
    irqlora_state *s = state;
    if (M > s->rows_cap) {
        qa_free(s->h);
        qa_free(s->dh);
        s->h = qa_alloc(sizeof(float) * (size_t)M * s->rank);
        s->dh = qa_alloc(sizeof(float) * (size_t)M * s->rank);
        s->rows_cap = M;
    }
    s->x = x;
    effective_factors(s);
    qa_linear_forward(y, x, s->W_dq, s->bias, M, s->in, s->out);        /* y = x W_dq^T + b */
    qa_linear_forward(s->h, x, s->A_e, NULL, M, s->in, s->rank);        /* h = x A_e^T */
    for (size_t i = 0; i < (size_t)M * s->rank; i++) s->dh[i] = s->scale * s->h[i]; /* dh: free until backward */
    qa_matmul(M, s->out, s->rank, s->dh, 0, s->B_e, 1, y, 1, NULL);  /* y += s h B_e^T */
}

static void irqlora_backward(void *state, const float *dy, float *dx, int M) {
    irqlora_state *s = state;
    const int r = s->rank, in = s->in, out = s->out;
    /* dB_e = s dy^T h  ([out,M]·[M,r]) */
    qa_matmul(out, r, M, dy, 1, s->h, 0, s->dB_e, 0, NULL);
    for (size_t i = 0; i < (size_t)out * r; i++) s->dB_e[i] *= s->scale;
    /* dh = s dy B_e  ([M,out]·[out,r]) */
    qa_matmul(M, r, out, dy, 0, s->B_e, 0, s->dh, 0, NULL);
    for (size_t i = 0; i < (size_t)M * r; i++) s->dh[i] *= s->scale;
    /* dA_e = dh^T x  ([r,M]·[M,in]) */
    qa_matmul(r, in, M, s->dh, 1, s->x, 0, s->dA_e, 0, NULL);
    for (size_t i = 0; i < (size_t)r * in; i++) s->dA[i] += s->dA_e[i];
    for (size_t i = 0; i < (size_t)out * r; i++) s->dB[i] += s->dB_e[i];
    if (s->opt.iec == IRQ_IEC_LEARNED) {
        double ga = 0, gb = 0;
        for (int i = 0; i < in; i++) ga += s->dA_e[(size_t)(i / s->g_in) * in + i];
        for (int o = 0; o < out; o++) gb += s->dB_e[(size_t)o * r + o / s->g_out];
        s->dbeta[0] += (float)(ga / s->g_in);
        s->dbeta[1] += (float)gb;
    }
    if (dx) {
        qa_matmul(M, in, out, dy, 0, s->W_dq, 0, dx, 1, NULL); /* dx += dy W_dq */
        qa_matmul(M, in, r, s->dh, 0, s->A_e, 0, dx, 1, NULL); /* dx += dh A_e */
    }
}

static int irqlora_params(void *state, qa_param *out, int max) {
    irqlora_state *s = state;
    int n = 0;
    if (n < max) out[n++] = (qa_param){"lora_A", s->A, s->dA, (size_t)s->rank * s->in, 1.0f};
    if (n < max) out[n++] = (qa_param){"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f};
    if (s->opt.iec == IRQ_IEC_LEARNED) {
        if (n < max) out[n++] = (qa_param){"iec_beta_A", &s->beta[0], &s->dbeta[0], 1, 1.0f};
        if (n < max) out[n++] = (qa_param){"iec_beta_B", &s->beta[1], &s->dbeta[1], 1, 1.0f};
    }
    return n;
}

static int irqlora_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    irqlora_state *s = state;
    const size_t n = (size_t)s->in * s->out;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    effective_factors(s);
    /* W' = W_dq + s B_e A_e: the elastic paths fold into the dense update */
    d->w_fp = qa_alloc(sizeof(float) * n);
    qa_matmul(s->out, s->in, s->rank, s->B_e, 0, s->A_e, 0, d->w_fp, 0, NULL);
    for (size_t i = 0; i < n; i++) d->w_fp[i] = s->W_dq[i] + s->scale * d->w_fp[i];
    d->needs_ptq = s->w_bits > 0;
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = s->w_bits > 0 ? s->w_bits : 32;
    snprintf(d->note, sizeof d->note, "base %s, iec %s", s->w_bits > 0 ? "icq-int" : "fp",
             s->opt.iec == IRQ_IEC_LEARNED ? "learned" : (s->opt.iec == IRQ_IEC_FIXED ? "fixed" : "off"));
    if (s->w_bits > 0) { /* "icq": W' re-quantized by ICQ itself */
        quant_icq_cfg cfg = icq_cfg(&s->opt);
        float *sc = qa_alloc(sizeof(float) * s->out), *z = qa_alloc(sizeof(float) * s->out);
        qa_quant_icq_rows(d->w_fp, s->out, s->in, s->w_bits, &cfg, sc, z);
        d->extra_w[0] = qa_alloc(sizeof(float) * n);
        qa_quant_fake_rows(d->extra_w[0], d->w_fp, s->out, s->in, s->w_bits, sc, z);
        snprintf(d->extra_name[0], sizeof d->extra_name[0], "icq");
        d->extra_bits[0] = s->w_bits + 64.0 / s->in;
        d->n_extra = 1;
        qa_free(sc);
        qa_free(z);
    }
    return QA_OK;
}

static void irqlora_bytes(const void *state, qa_bytes *b) {
    const irqlora_state *s = state;
    size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out) + (s->opt.iec == IRQ_IEC_LEARNED ? 2 : 0);
    size_t bias_bytes = s->out * sizeof(float);
    size_t coded = s->w_bits > 0 ? (n * s->w_bits + 7) / 8 + 2 * s->out * sizeof(float) : n * sizeof(float);
    /* held: the codes in frozen_codes' storage + FP32 scale and zero per row (the FP weight at
     * N = 0) + bias; the f32 W_dq decoded from them is workspace */
    b->frozen = (s->w_bits > 0 ? qa_frozen_codes_bytes(n, s->w_bits) + 2 * s->out * sizeof(float) : coded) + bias_bytes;
    b->workspace = s->w_bits > 0 ? n * sizeof(float) : 0;
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    b->deployed = coded + bias_bytes; /* the INT deploy: N-bit codes + FP32 scale and zero per row */
}

static int irqlora_inspect(const void *state, qa_named_tensor *o, int max) {
    const irqlora_state *s = state;
    qa_named_tensor all[] = {
        {"W_dq", s->W_dq, NULL, 2, {s->out, s->in}},
        {"icq_scale", s->q_scale, NULL, 1, {s->out, 1}},
        {"icq_zero", s->q_zero, NULL, 1, {s->out, 1}},
        {"A_eff", s->A_e, NULL, 2, {s->rank, s->in}},
        {"B_eff", s->B_e, NULL, 2, {s->out, s->rank}},
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++)
        if (all[i].f32) o[k++] = all[i];
    return k;
}

static void irqlora_destroy(void *state) {
    irqlora_state *s = state;
    float *ps[] = {s->q_scale, s->q_zero, s->W_dq, s->bias, s->A, s->B, s->dA, s->dB, s->A_e, s->B_e, s->dA_e, s->dB_e, s->h, s->dh};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_frozen_codes_free(&s->codes);
}

static const qa_option irqlora_option_table[] = {
    {"iec", QA_OPT_ENUM, "learned", 0, 0, "learned|fixed|off",
     "information elastic connection: learned (the code: two scalars from 0), fixed (the paper: weight 1), off", 1, "iec",
     offsetof(irqlora_options, iec)},
    {"icq_tau_range", QA_OPT_FLOAT, "0.1", 0.0, 0.5, NULL, "ICQ: the range is scaled by p in [1 - tau, 1 + tau]", 1, "tau",
     offsetof(irqlora_options, tau_range)},
    {"icq_tau_n", QA_OPT_INT, "50", 1, 1000, NULL, "ICQ: candidates on each side of p = 1", 0, "",
     offsetof(irqlora_options, tau_n)},
    {"icq_symmetric", QA_OPT_ENUM, "asym", 0, 0, "asym|sym", "ICQ: asymmetric range, or symmetric with zero point 2^N / 2", 1, "",
     offsetof(irqlora_options, symmetric)},
    {"icq_count", QA_OPT_ENUM, "int8", 0, 0, "int8|all",
     "ICQ entropy: int8 (the reference: codes >= 128 wrap and are not counted), all", 0, "",
     offsetof(irqlora_options, count)},
};

static int irqlora_init(void *state, const qa_layer_init *li, qa_error *err) {
    irqlora_state *s = state;
    const qa_method_cfg *c = li->cfg;
    qa_method_options_of(&qa_method_irqlora, c, &s->opt);
    if (c->rank < 1 || c->rank > li->in || c->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "ir-qlora: rank %d is outside 1..min(in=%d, out=%d) for %s", c->rank, li->in,
                       li->out, li->layer_name);
    if (c->w_bits < 0 || c->w_bits > 8)
        return qa_fail(err, QA_ERR_INPUT, "ir-qlora: weight bits %d unsupported (ICQ INT base at 1..8, 0 = fp) for %s",
                       c->w_bits, li->layer_name);
    if (s->opt.iec != IRQ_IEC_OFF && (li->in % c->rank || li->out % c->rank))
        return qa_fail(err, QA_ERR_INPUT,
                       "ir-qlora: iec needs the rank to divide in and out (rank %d, in %d, out %d) for %s; "
                       "allowed: a rank dividing both, or iec = off", c->rank, li->in, li->out, li->layer_name);
    s->in = li->in;
    s->out = li->out;
    s->rank = c->rank;
    s->w_bits = c->w_bits;
    s->scale = c->lora_scale;
    s->g_in = li->in / c->rank;
    s->g_out = li->out / c->rank;
    const size_t n = (size_t)s->in * s->out;
    s->W_dq = qa_alloc(sizeof(float) * n);
    if (s->w_bits > 0) {
        quant_icq_cfg cfg = icq_cfg(&s->opt);
        s->q_scale = qa_alloc(sizeof(float) * s->out);
        s->q_zero = qa_alloc(sizeof(float) * s->out);
        qa_quant_icq_rows(li->W, s->out, s->in, s->w_bits, &cfg, s->q_scale, s->q_zero);
        int32_t *signed_codes = qa_alloc(sizeof(int32_t) * n);
        qa_quant_codes_rows(signed_codes, li->W, s->out, s->in, s->w_bits, s->q_scale, s->q_zero);
        for (int r = 0; r < s->out; r++)
            for (int col = 0; col < s->in; col++) signed_codes[(size_t)r * s->in + col] += (int32_t)s->q_zero[r];
        qa_frozen_codes_alloc(&s->codes, n, s->w_bits);
        qa_frozen_codes_pack(&s->codes, signed_codes);
        qa_free(signed_codes);
        for (int r = 0; r < s->out; r++) /* W_dq = scale (q - zero), from the held codes */
            for (int col = 0; col < s->in; col++) {
                size_t k = (size_t)r * s->in + col;
                int32_t q = (int32_t)qa_frozen_codes_get(&s->codes, k);
                s->W_dq[k] = s->q_scale[r] * (float)(q - (int32_t)s->q_zero[r]);
            }
    } else {
        memcpy(s->W_dq, li->W, sizeof(float) * n);
    }
    s->bias = qa_alloc(sizeof(float) * s->out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * s->out);
    qa_lora_factors_init(s->in, s->out, s->rank, li->rng, &s->A, &s->B, &s->dA, &s->dB);
    s->beta[0] = s->beta[1] = s->opt.iec == IRQ_IEC_FIXED ? 1.0f : 0.0f;
    s->A_e = qa_alloc(sizeof(float) * (size_t)s->rank * s->in);
    s->B_e = qa_alloc(sizeof(float) * (size_t)s->out * s->rank);
    s->dA_e = qa_alloc(sizeof(float) * (size_t)s->rank * s->in);
    s->dB_e = qa_alloc(sizeof(float) * (size_t)s->out * s->rank);
    effective_factors(s);
    return QA_OK;
}

const qa_method qa_method_irqlora = {
    .name = "ir-qlora",
    .summary = "IR-QLoRA: LoRA over an entropy-calibrated (ICQ) INT base with elastic pooling/repeat paths (IEC); "
               "deploys FP merge, INT PTQ, and ICQ re-quantization (\"icq\")",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(irqlora_state),
    .init = irqlora_init,
    .forward = irqlora_forward,
    .backward = irqlora_backward,
    .params = irqlora_params,
    .merge = irqlora_merge,
    .bytes = irqlora_bytes,
    .destroy = irqlora_destroy,
    .inspect = irqlora_inspect,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
    .options = irqlora_option_table,
    .n_options = sizeof irqlora_option_table / sizeof irqlora_option_table[0],
    .options_size = sizeof(irqlora_options),
};
