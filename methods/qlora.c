/* QLoRA: LoRA over a frozen 4-bit NormalFloat (NF4) base with double quantization.
 *
 * Paper: "QLoRA: Efficient Finetuning of Quantized LLMs", Dettmers et al., arXiv 2305.14314.
 * Reference code: github artidoro/qlora, with the storage formats of bitsandbytes (NF4 code,
 * blockwise absmax, the signed 8-bit "dynamic" code of double quantization) and the merge of
 * PEFT (merge_and_unload). Notation, the LoRA factors and the section-0 quantizer:
 * methods/README.md. The formats are exposed in qlora.h so that tests can reach them.
 *
 * Frozen base, by the experiment's weight bits N and the recipe's qlora_base (auto: NF4 at
 * N = 4, the uniform INT base otherwise; nf4: an error at N != 4, as NF4 exists only at 4 bits;
 * int: the uniform base at any N, 4 included). The state records which one it used (see
 * qlora_base_kind; inspect() exposes it as "base_kind", merge() notes it as "base nf4|int|fp"):
 *   NF4     NF4 + double quantization (the QLoRA format), N = 4 only:
 *             blocks of 64 consecutive weights of the row-major flattened W [out,in]:
 *               absmax_b = max |w| over the block (FP32),  v = w / absmax_b,
 *               idx = #{k : v > mid_k},  mid_k = (NF4[k] + NF4[k+1]) / 2, k = 0..14
 *               (strict ">": a value exactly on a midpoint takes the lower code)
 *             two 4-bit codes per byte, first element of each pair in the high nibble
 *             double quantization of the absmax values:
 *               offset = mean_b absmax_b,  c_b = absmax_b - offset,
 *               per 256 consecutive c: absmax2 = max |c|, q8_b = argmin_j |code8[j] - c_b/absmax2|
 *               code8 = bitsandbytes' signed dynamic tree code: for i = 0..6 the 2^i midpoints
 *               of linspace(0.1, 1, 2^i + 1) times 10^(i-6), both signs (254), plus 0 and 1.0,
 *               sorted (256 entries)
 *             dequant:  absmax_b = code8[q8_b] absmax2 + offset,  W_dq = NF4[idx] absmax_b
 *             bits/weight = 4 + 8/64 + 32/(64*256) + 32/n = 4.127 (packed codes, q8 per block,
 *               FP32 absmax2 per 256 blocks, one FP32 offset per tensor; exact count in
 *               qlora_nf4_bits_per_weight)
 *   INT     the section-0 uniform quantizer per output channel at N = 1..8 bits (the IntLoRA
 *             paper's "QLoRA" rows at W8 use such a base):
 *             delta_r, z_r = Q_N search of row r;  q = clamp(round(W/delta_r) + z_r, 0, 2^N - 1)
 *             held as N-bit integer codes (methods/frozen_codes.h: packed at N <= 4, one byte
 *             at N = 5..8);  W_dq = delta_r (q - z_r)  (== quant_fake_rows)
 *   N = 0   the FP weight itself (QLoRA is then plain LoRA).
 *   The FP weight is dropped after init (except at N = 0): the state keeps what deployment would
 *   store, and the compute-type copy W_dq is refilled from it on every forward, as QLoRA
 *   dequantizes per matmul. Compute type: f32 (QLoRA uses bf16; we keep f32 everywhere).
 *
 * Training (no STE anywhere: the base is frozen, its rounding sits outside every gradient path):
 *   forward   y  = x W_dq^T + b + s (x A^T) B^T      A [r,in], B [out,r], s = lora_scale
 *   backward  xa = x A^T                             (kept from the forward)
 *             dB += s dy^T xa,   dxa = s dy B,   dA += dxa^T x,   dx += dy W_dq + dxa A
 *   init      A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform), B = 0
 *
 * Deploy variants (D1-D4: the ways a QLoRA model can be shipped):
 *   D1  unmerged NF4 base + FP adapter: computes exactly the training forward above, which equals
 *       D3 up to float rounding, so it is not produced as a separate variant.
 *   D3  main deploy, "merge into FP":  W' = W_dq + s B A  (w_fp, float)
 *   D4  needs_ptq = (N > 0): the harness applies section-0 PTQ at N bits to W' ("QLoRA + PTQ")
 *   D2  extra variant "nf4", only when the base is NF4: W' re-quantized to NF4 + DQ and
 *       dequantized (PEFT merge_and_unload; an update smaller than an NF4 step rounds away).
 *   D5  extra variant "basegrid", only when the base is INT: W' re-quantized onto the frozen
 *       base's own grid (its per-row delta_r, z_r; section 0's fake quantizer):
 *         q' = clamp(round(W' / delta_r) + z_r, 0, 2^N - 1),  W_deployed = delta_r (q' - z_r)
 *       = the base's codes moved by the update rounded to whole grid steps: ONE rounding.
 * What "QLoRA" is at N != 4 (and at qlora_base = int): LoRA over a uniform INT base, deployed by
 * D4, whose PTQ searches a NEW grid for W' and rounds again: the base, already rounded onto its
 * grid, is rounded a second time onto another one (double rounding), which at 2-3 bits costs
 * more than the adapter recovers. It is not the QLoRA of the paper (NF4 exists only at 4 bits);
 * D5 is the single-rounding deploy of the same trained model, so that a collapse of D4 can be
 * attributed to the double rounding rather than to the adapter.
 *
 * Memory (bytes()): frozen = the base as held (NF4 + DQ bytes; or N-bit codes + an FP32 scale
 *   and zero point per row; or FP32 weights at N = 0) + FP32 bias. workspace = the f32 W_dq the
 *   layer keeps between calls (refilled from the codes every forward; 4 bytes per weight; none at
 *   N = 0, where W_dq is the frozen base itself). deployed = D4 (N-bit codes + FP32 scale and
 *   zero point per row, FP32 weights at N = 0) + bias. D2 reports qlora_nf4_bits_per_weight.
 *
 * Choices made here where neither the paper nor bitsandbytes fixes the detail:
 *   - v = w / absmax by division (bitsandbytes multiplies by 1/absmax); a zero block gets code 7,
 *     and so does the unused low nibble of an odd-length tensor's last byte.
 *   - The last NF4 block (and the last 256-block of DQ) may be short; bits/weight is counted from
 *     the storage actually held, so a 128x128 layer (256 blocks, one absmax2, one offset) is at
 *     4.129 bits/weight; 4.127 holds from 256x256 (4.1274) upwards.
 *   - offset = mean(absmax) is accumulated in double and rounded to FP32.
 *   - The NF4 codes are computed with the exact FP32 absmax; DQ then compresses the absmax
 *     (bitsandbytes' order), so W_dq carries both roundings.
 *   - DQ "nearest" breaks an exact tie towards the lower index; a 256-block of equal absmax
 *     values (absmax2 = 0) gets the index of 0.0 and decodes to the offset exactly.
 *   - The INT base holds uint8 codes, so it takes N = 1..8 (other N are rejected at init).
 * Deviation: compute in f32, not bf16 (above); everything else follows bitsandbytes and PEFT. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/frozen_codes.h"
#include "methods/lora_adapter.h"
#include "methods/qlora.h"

const char *const qlora_base_names[QLORA_BASE_COUNT] = {
    [QLORA_BASE_FP] = "fp",
    [QLORA_BASE_INT] = "int",
    [QLORA_BASE_NF4] = "nf4",
};
_Static_assert(sizeof qlora_base_names / sizeof qlora_base_names[0] == QLORA_BASE_COUNT, "base names vs COUNT");

/* ---- NF4 ------------------------------------------------------------------------------------ */

const float qlora_nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

uint8_t qa_qlora_nf4_index(float v) {
    uint8_t idx = 0;
    for (int k = 0; k < 15; k++) {
        float midpoint = (float)(0.5 * ((double)qlora_nf4_code[k] + (double)qlora_nf4_code[k + 1]));
        idx += v > midpoint; /* strict: a tie stays on the lower code */
    }
    return idx;
}

float qa_qlora_nf4_encode_block(const float *w, int n, uint8_t *packed) {
    QA_ASSERT(n >= 1 && n <= QLORA_NF4_BLOCK);
    float absmax = 0.0f;
    for (int i = 0; i < n; i++) absmax = fabsf(w[i]) > absmax ? fabsf(w[i]) : absmax;
    const uint8_t zero_code = 7;
    for (int i = 0; i < n; i += 2) {
        uint8_t hi = absmax > 0.0f ? qa_qlora_nf4_index(w[i] / absmax) : zero_code;
        uint8_t lo = zero_code; /* the pad of an odd block */
        if (i + 1 < n) lo = absmax > 0.0f ? qa_qlora_nf4_index(w[i + 1] / absmax) : zero_code;
        packed[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return absmax;
}

static inline uint8_t nf4_code_at(const uint8_t *packed, size_t i) {
    return i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 0x0F;
}

void qa_qlora_nf4_decode(const uint8_t *packed, const float *absmax, size_t n, float *w) {
    for (size_t i = 0; i < n; i++) w[i] = qlora_nf4_code[nf4_code_at(packed, i)] * absmax[i / QLORA_NF4_BLOCK];
}

/* ---- double quantization -------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void qa_qlora_dynamic_code_table(float code[QLORA_DYNAMIC_CODE_SIZE]) {
    int k = 0;
    for (int i = 0; i <= 6; i++) {
        int n_means = 1 << i; /* linspace(0.1, 1, 2^i + 1) has 2^i midpoints */
        double scale = pow(10.0, i - 6);
        for (int j = 0; j < n_means; j++) {
            double lo = 0.1 + 0.9 * j / n_means, hi = 0.1 + 0.9 * (j + 1) / n_means;
            double mean = 0.5 * (lo + hi);
            code[k++] = (float)(scale * mean);
            code[k++] = (float)(-scale * mean);
        }
    }
    code[k++] = 0.0f;
    code[k++] = 1.0f;
    QA_ASSERT(k == QLORA_DYNAMIC_CODE_SIZE);
    qsort(code, QLORA_DYNAMIC_CODE_SIZE, sizeof(float), cmp_float);
}

static uint8_t dynamic_code_nearest(const float *code, float v) {
    int best = 0;
    float best_err = fabsf(code[0] - v);
    for (int j = 1; j < QLORA_DYNAMIC_CODE_SIZE; j++) {
        float e = fabsf(code[j] - v);
        if (e < best_err) { best_err = e; best = j; } /* strict: a tie keeps the lower index */
    }
    return (uint8_t)best;
}

void qa_qlora_dq_encode(const float *absmax, size_t n_blocks, uint8_t *q8, float *absmax2, float *offset) {
    float code[QLORA_DYNAMIC_CODE_SIZE];
    qa_qlora_dynamic_code_table(code);
    uint8_t zero_index = dynamic_code_nearest(code, 0.0f);
    double sum = 0.0;
    for (size_t b = 0; b < n_blocks; b++) sum += absmax[b];
    float mean = n_blocks ? (float)(sum / (double)n_blocks) : 0.0f;
    *offset = mean;
    for (size_t b2 = 0; b2 * QLORA_DQ_BLOCK < n_blocks; b2++) {
        size_t first = b2 * QLORA_DQ_BLOCK;
        size_t last = first + QLORA_DQ_BLOCK < n_blocks ? first + QLORA_DQ_BLOCK : n_blocks;
        float cmax = 0.0f;
        for (size_t b = first; b < last; b++) {
            float c = absmax[b] - mean;
            cmax = fabsf(c) > cmax ? fabsf(c) : cmax;
        }
        absmax2[b2] = cmax;
        for (size_t b = first; b < last; b++)
            q8[b] = cmax > 0.0f ? dynamic_code_nearest(code, (absmax[b] - mean) / cmax) : zero_index;
    }
}

void qa_qlora_dq_decode(const uint8_t *q8, const float *absmax2, float offset, size_t n_blocks, float *absmax) {
    float code[QLORA_DYNAMIC_CODE_SIZE];
    qa_qlora_dynamic_code_table(code);
    for (size_t b = 0; b < n_blocks; b++) absmax[b] = code[q8[b]] * absmax2[b / QLORA_DQ_BLOCK] + offset;
}

/* ---- a whole tensor as NF4 + DQ ------------------------------------------------------------- */

void qa_qlora_nf4_tensor_encode(qlora_nf4_tensor *t, const float *w, size_t n) {
    QA_ASSERT(n > 0);
    t->n = n;
    t->n_blocks = (n + QLORA_NF4_BLOCK - 1) / QLORA_NF4_BLOCK;
    t->n_blocks2 = (t->n_blocks + QLORA_DQ_BLOCK - 1) / QLORA_DQ_BLOCK;
    t->packed = qa_alloc((n + 1) / 2);
    t->absmax_q8 = qa_alloc(t->n_blocks);
    t->absmax2 = qa_alloc(sizeof(float) * t->n_blocks2);
    /* the codes use the exact FP32 absmax; only then is the absmax itself compressed */
    float *absmax = qa_alloc(sizeof(float) * t->n_blocks);
    for (size_t b = 0; b < t->n_blocks; b++) {
        size_t first = b * QLORA_NF4_BLOCK;
        int len = (int)(n - first < QLORA_NF4_BLOCK ? n - first : QLORA_NF4_BLOCK);
        absmax[b] = qa_qlora_nf4_encode_block(w + first, len, t->packed + first / 2);
    }
    qa_qlora_dq_encode(absmax, t->n_blocks, t->absmax_q8, t->absmax2, &t->offset);
    qa_free(absmax);
}

void qa_qlora_nf4_tensor_decode(const qlora_nf4_tensor *t, float *w) {
    float code[QLORA_DYNAMIC_CODE_SIZE];
    qa_qlora_dynamic_code_table(code);
    const size_t n = t->n;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < t->n_blocks; b++) {
        float absmax = code[t->absmax_q8[b]] * t->absmax2[b / QLORA_DQ_BLOCK] + t->offset;
        size_t last = (b + 1) * QLORA_NF4_BLOCK < n ? (b + 1) * QLORA_NF4_BLOCK : n;
        for (size_t i = b * QLORA_NF4_BLOCK; i < last; i++)
            w[i] = qlora_nf4_code[nf4_code_at(t->packed, i)] * absmax;
    }
}

void qa_qlora_nf4_tensor_free(qlora_nf4_tensor *t) {
    qa_free(t->packed);
    qa_free(t->absmax_q8);
    qa_free(t->absmax2);
    memset(t, 0, sizeof *t);
}

size_t qa_qlora_nf4_tensor_bytes(size_t n) {
    size_t n_blocks = (n + QLORA_NF4_BLOCK - 1) / QLORA_NF4_BLOCK;
    size_t n_blocks2 = (n_blocks + QLORA_DQ_BLOCK - 1) / QLORA_DQ_BLOCK;
    return (n + 1) / 2                 /* packed NF4 codes */
           + n_blocks                  /* uint8 q8 per 64 weights */
           + n_blocks2 * sizeof(float) /* FP32 absmax2 per 256 blocks */
           + sizeof(float);            /* FP32 offset */
}

double qa_qlora_nf4_bits_per_weight(size_t n) {
    return 8.0 * (double)qa_qlora_nf4_tensor_bytes(n) / (double)n;
}

/* ---- the method ----------------------------------------------------------------------------- */

typedef struct {
    int in, out, rank, w_bits;
    qlora_base_kind base;
    int32_t base_kind_i32;     /* `base`, as inspect() exposes it */
    float scale;
    /* the frozen base as deployed storage holds it: exactly one of these, by `base` */
    qlora_nf4_tensor nf4;      /* NF4 */
    qa_frozen_codes int_codes; /* INT: q in [0, 2^N - 1], [out,in], N-bit (frozen_codes.h) */
    float *int_delta, *int_zero; /* INT: per row */
    float *W_dq;               /* [out,in] f32 compute copy, refilled every forward; at FP it is the base */
    float *bias;
    qa_lora_adapter ad;        /* the trainable low-rank term */
    qa_base_product base_mm; /* the frozen base product, in the training dtype (base_product.h) */
    double init_err2, w_norm2; /* ||W - W_dq||^2 and ||W||^2 at init (B = 0: the start is the base) */
} qlora_state;

/* W_dq from the stored base (a no-op at FP, where W_dq is the base). */
static void dequantize_base(qlora_state *s) {
    if (s->base == QLORA_BASE_NF4) {
        qa_qlora_nf4_tensor_decode(&s->nf4, s->W_dq);
    } else if (s->base == QLORA_BASE_INT) {
        const int in = s->in;
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < s->out; r++)
            for (int c = 0; c < in; c++) {
                size_t k = (size_t)r * in + c;
                s->W_dq[k] = s->int_delta[r] * ((float)qa_frozen_codes_get(&s->int_codes, k) - s->int_zero[r]);
            }
    }
}

/* The options (the table is at the end of this file): the frozen base the recipe asks for. */
typedef struct {
    int base;              /* a qlora_base_kind, where QLORA_BASE_FP (0) stands for "auto" */
} qlora_options;

static int qlora_init(void *state, const qa_layer_init *li, qa_error *err) {
    qlora_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    const qa_method_cfg *c = li->cfg;
    qlora_options opt;
    qa_method_options_of(&qa_method_qlora, c, &opt);
    if (c->rank < 1 || c->rank > li->in || c->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "qlora: rank %d is outside 1..min(in=%d, out=%d) for %s", c->rank, li->in,
                       li->out, li->layer_name);
    if (c->w_bits < 0 || c->w_bits > 8)
        return qa_fail(err, QA_ERR_INPUT, "qlora: weight bits %d unsupported (NF4 at 4, uniform INT at 1..8, 0 = fp) for %s",
                       c->w_bits, li->layer_name);
    s->in = li->in;
    s->out = li->out;
    s->rank = c->rank;
    s->w_bits = c->w_bits;
    s->scale = c->lora_scale;
    if (opt.base == QLORA_BASE_NF4 && c->w_bits != 4)
        return qa_fail(err, QA_ERR_INPUT, "qlora: base nf4 exists only at 4 bits (bits give %d) for %s", c->w_bits,
                       li->layer_name);
    /* base = nf4 | int (the recipe's qlora_base; auto: nf4 at 4 bits, the uniform INT base of
     * section 0 at any other width, as the IntLoRA paper's W8 "QLoRA" rows) */
    if (c->w_bits == 0) s->base = QLORA_BASE_FP;
    else if (opt.base == QLORA_BASE_INT) s->base = QLORA_BASE_INT;
    else s->base = c->w_bits == 4 ? QLORA_BASE_NF4 : QLORA_BASE_INT;
    s->base_kind_i32 = (int32_t)s->base;
    const size_t n = (size_t)s->in * s->out;
    s->W_dq = qa_alloc(sizeof(float) * n);
    if (s->base == QLORA_BASE_NF4) {
        qa_qlora_nf4_tensor_encode(&s->nf4, li->W, n);
    } else if (s->base == QLORA_BASE_INT) {
        s->int_delta = qa_alloc(sizeof(float) * s->out);
        s->int_zero = qa_alloc(sizeof(float) * s->out);
        qa_quant_search_rows(li->W, s->out, s->in, s->w_bits, s->int_delta, s->int_zero);
        /* the section-0 codes q - z (signed), kept as the unsigned q = (q - z) + z in [0, 2^N - 1] */
        int32_t *signed_codes = qa_alloc(sizeof(int32_t) * n);
        qa_quant_codes_rows(signed_codes, li->W, s->out, s->in, s->w_bits, s->int_delta, s->int_zero);
        for (int r = 0; r < s->out; r++)
            for (int col = 0; col < s->in; col++) signed_codes[(size_t)r * s->in + col] += (int32_t)s->int_zero[r];
        qa_frozen_codes_alloc(&s->int_codes, n, s->w_bits);
        qa_frozen_codes_pack(&s->int_codes, signed_codes);
        qa_free(signed_codes);
    } else {
        memcpy(s->W_dq, li->W, sizeof(float) * n);
    }
    dequantize_base(s); /* so inspect("W_dq") is valid before the first forward */
    for (size_t i = 0; i < n; i++) {
        double e = (double)li->W[i] - s->W_dq[i];
        s->init_err2 += e * e;
        s->w_norm2 += (double)li->W[i] * li->W[i];
    }
    s->bias = qa_alloc(sizeof(float) * s->out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * s->out);
    qa_lora_adapter_init(&s->ad, s->in, s->out, s->rank, s->scale, li->rng);
    return QA_OK;
}

static void qlora_forward(void *state, const float *x, float *y, int M) {
    qlora_state *s = state;
    dequantize_base(s);
    qa_base_product_forward(&s->base_mm, y, x, s->W_dq, s->bias, M); /* y = x W_dq^T + b */
    qa_lora_adapter_forward(&s->ad, x, y, M);                     /* y += s (x A^T) B^T */
}

static void qlora_backward(void *state, const float *dy, float *dx, int M) {
    qlora_state *s = state;
    qa_lora_adapter_backward(&s->ad, dy, dx, M);
    qa_base_product_backward_dx(&s->base_mm, dx, dy, s->W_dq, M); /* dx += dy W_dq */
}

static int qlora_params(void *state, qa_param *out, int max) {
    qlora_state *s = state;
    return qa_lora_adapter_params(&s->ad, out, max);
}

static int qlora_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    qlora_state *s = state;
    const size_t n = (size_t)s->in * s->out;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    /* D3: W' = W_dq + s B A  ([out,r]·[r,in], added onto the dequantized base) */
    dequantize_base(s);
    d->w_fp = qa_alloc(sizeof(float) * n);
    qa_lora_adapter_merge(&s->ad, s->W_dq, d->w_fp);
    /* D4 is the harness's PTQ of w_fp at N bits */
    d->needs_ptq = s->w_bits > 0;
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = s->w_bits > 0 ? s->w_bits : 32;
    snprintf(d->note, sizeof d->note, "base %s", s->base == QLORA_BASE_NF4 ? "nf4" : (s->base == QLORA_BASE_INT ? "int" : "fp"));
    /* D5: W' re-quantized onto the INT base's own grid (single rounding) */
    if (s->base == QLORA_BASE_INT) {
        d->extra_w[0] = qa_alloc(sizeof(float) * n);
        qa_quant_fake_rows(d->extra_w[0], d->w_fp, s->out, s->in, s->w_bits, s->int_delta, s->int_zero);
        snprintf(d->extra_name[0], sizeof d->extra_name[0], "basegrid");
        d->extra_bits[0] = s->w_bits;
        d->n_extra = 1;
        snprintf(d->note, sizeof d->note, "base int; int deploy = 2nd PTQ (double rounding)");
    }
    /* D2: W' re-quantized to NF4 + DQ (PEFT merge_and_unload), only over an NF4 base */
    if (s->base == QLORA_BASE_NF4) {
        qlora_nf4_tensor merged;
        qa_qlora_nf4_tensor_encode(&merged, d->w_fp, n);
        d->extra_w[0] = qa_alloc(sizeof(float) * n);
        qa_qlora_nf4_tensor_decode(&merged, d->extra_w[0]);
        qa_qlora_nf4_tensor_free(&merged);
        snprintf(d->extra_name[0], sizeof d->extra_name[0], "nf4");
        d->extra_bits[0] = qa_qlora_nf4_bits_per_weight(n);
        d->n_extra = 1;
    }
    /* the start's distance from the pre-trained weight (literature.claims L3): the base, B = 0 */
    qa_deployed_add_stat(d, "init_error", s->init_err2, s->w_norm2);
    return QA_OK;
}

static void qlora_bytes(const void *state, qa_bytes *b) {
    const qlora_state *s = state;
    size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out);
    size_t bias_bytes = s->out * sizeof(float);
    /* frozen: the base as held (INT codes in frozen_codes' storage + scale/zero per row); the f32
     * W_dq refilled from it is workspace (at fp it is the base itself, so frozen) */
    switch (s->base) {
    case QLORA_BASE_NF4: b->frozen = qa_qlora_nf4_tensor_bytes(n) + bias_bytes; break;
    case QLORA_BASE_INT:
        b->frozen = qa_frozen_codes_bytes(n, s->w_bits) + 2 * s->out * sizeof(float) + bias_bytes;
        break;
    default: b->frozen = n * sizeof(float) + bias_bytes; break;
    }
    b->workspace = s->base == QLORA_BASE_FP ? 0 : n * sizeof(float);
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    /* deployed (the INT deploy D4, as LoRA): W-bit codes + per-row FP32 scale and zero point
     * (FP32 weights at fp) + FP32 bias */
    b->deployed = (s->w_bits > 0 ? (n * s->w_bits + 7) / 8 + 2 * s->out * sizeof(float) : n * sizeof(float)) +
                  bias_bytes;
}

static int qlora_inspect(const void *state, qa_named_tensor *o, int max) {
    const qlora_state *s = state;
    qa_named_tensor all[] = {
        {"W_dq", s->W_dq, NULL, 2, {s->out, s->in}},
        {"base_kind", NULL, &s->base_kind_i32, 1, {1, 1}}, /* qlora_base_kind: 0 fp, 1 int, 2 nf4 */
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) o[k++] = all[i];
    return k;
}

static void qlora_destroy(void *state) {
    qlora_state *s = state;
    qa_base_product_free(&s->base_mm);
    qa_qlora_nf4_tensor_free(&s->nf4);
    qa_frozen_codes_free(&s->int_codes);
    qa_lora_adapter_free(&s->ad);
    float *ps[] = {s->int_delta, s->int_zero, s->W_dq, s->bias};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
}

/* ---- options ---- */

/* the allowed values in qlora_base_kind's order, "auto" in the place of fp */
_Static_assert(QLORA_BASE_FP == 0 && QLORA_BASE_INT == 1 && QLORA_BASE_NF4 == 2, "qlora_base values are qlora_base_kind");
static const qa_option qlora_option_table[] = {
    {"qlora_base", QA_OPT_ENUM, "auto", 0, 0, "auto|int|nf4",
     "the frozen base: auto (nf4 at 4 bits, int otherwise), int, nf4; over int the INT deploy is a second PTQ "
     "(double rounding) and deploy basegrid the single-rounding merge onto the base's grid",
     1, "", offsetof(qlora_options, base)},
};

const qa_method qa_method_qlora = {
    .name = "qlora",
    .summary = "QLoRA: LoRA over a frozen NF4+DQ base at W4 (at other W: LoRA over a uniform INT base, whose INT "
               "deploy rounds twice), f32 compute; deploys FP merge, INT PTQ, NF4 re-quantization (\"nf4\") or "
               "the merge on the INT base's grid (\"basegrid\", one rounding)",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(qlora_state),
    .init = qlora_init,
    .forward = qlora_forward,
    .backward = qlora_backward,
    .params = qlora_params,
    .merge = qlora_merge,
    .bytes = qlora_bytes,
    .destroy = qlora_destroy,
    .inspect = qlora_inspect,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
    .options = qlora_option_table,
    .n_options = 1,
    .options_size = sizeof(qlora_options),
};
