/* IntLoRA, both variants: IntLoRA-MUL (integer multiply) and IntLoRA-SHIFT (bit shift).
 *
 * Paper: "IntLoRA: Integral Low-rank Adaptation of Quantized Diffusion Models", Guo et al.,
 * arXiv 2410.21759. Reference code: github csguoh/IntLoRA, utils/intlora_mul.py and
 * utils/intlora_shift.py (commit 65a8257, the one that computed tests/data/intlora_layers.h5;
 * tests/test_fixture.c reproduces every case of it through `qadapt fixture`). Where the paper and
 * the code differ, the code is the default. Notation, rounding and the section-0 quantizer:
 * methods/README.md. N = w_bits, L = 2^N; W [out,in], x [M,in] (already fake-quantized at A bits
 * by the harness), A [r,in], B [out,r] (kaiming-uniform / zero, lora_factors_init).
 *
 * Init (steps 1-3; the FP weight W is then dropped):
 *   1 auxiliary matrix R [out,in], by aux_dist: laplace (default, the reference) Laplace(0, 0.5);
 *     gaussian 0.5 N(0, 1); uniform U(-0.5, 0.5); zero R = 0 (the last three are ablations).
 *     R_ij is element i * in + j of a counter-based stream (qa_counter_*, harness/rng.h) whose key
 *     is one draw of the run's seeded RNG, so a tile of R can be regenerated alone (the reference
 *     draws R with torch's generator; only the distribution matters). A fixture gives R instead
 *     (qa_layer_init.aux_init): the only case in which R* is held in full.
 *   2 variance matching (VMC), per row i, alpha = vmc_alpha (1.5; the reference fixes 1.5):
 *       vmc_stat = absmax (the code): wa_i = max(|max_j W_ij|, |min_j W_ij|),
 *                                     ra_i = min(|max_j R_ij|, |min_j R_ij|)
 *       vmc_stat = std (the paper's sigma_W / sigma_R): wa_i = std(W_i), ra_i = std(R_i)
 *                                     (unbiased, n - 1, as torch.std)
 *       factor_i = wa_i^alpha / (ra_i + 1e-8)^alpha;   R*_ij = factor_i * R_ij (float product)
 *   3 delta, z [out] = the section-0 search on the rows of W - R* at N bits;
 *       W_round = clamp(round((W - R*) / delta_i) + z_i, 0, L - 1)          codes [out,in]
 *       W_int   = W_round - z_i                        (decoded per row in the fused passes)
 *   Held (the frozen state): W_round as N-bit codes (methods/frozen_codes.h: packed at N <= 4,
 *   one per byte at N = 5..8), per row delta, z, factor, dU, zU and the bias, and R's key; R* is
 *   regenerated from the key row by row whenever a pass needs it (the Laplace default by
 *   qa_counter_laplace_f32, the same floats as qa_counter_laplace), so every pass sees the
 *   R* that init computed, bit for bit.
 *
 * Every forward, one fused pass over the rows after BA = B A [out,in] (oneDNN, the whole matrix):
 * per row i, in row scratch that stays in cache, R*_i regenerated and W_int decoded, then U, W'
 * and what the backward needs (MUL: U, or B A where W_int = 0 on the additive path; SHIFT: M).
 *   4 D = (W_int == 0 ? 1 : W_int);   U = delta_i + (R* + BA) / D                 U [out,in]
 *     Where W_int = 0 the merged weight is 0 whatever the adapter does (a property of the method;
 *     merge() reports the share of such entries and the part of ||B A||^2 they lose).
 *   4a zero_path = additive (MUL; an intervention for claim C10, not the paper's method; default
 *     none): where W_int = 0 the adapter reaches the weight additively, on the update grid dU:
 *       c = clamp(round((B A)_ij / dU_i), -2^(N-1), 2^(N-1) - 1);   W'_ij = dU_i c      (signed N bits)
 *     dU is the weight step an entry with |W_int| = 1 adapts by, and c has as many levels as U_int,
 *     so such an entry adapts as if W_int were 1 with its zero at code 2^(N-1). B = 0 gives c = 0:
 *     the layer starts exactly where the default does, so the option changes only whether those
 *     entries can adapt (it does not restore their share of R*, which the default also drops).
 *   5 MUL: on the first forward (B = 0) a per-row quantizer dU, zU [out] of U is calibrated with
 *     the section-0 search at lora_bits (0 = N) and then frozen (not trained):
 *       U_int = clamp(round(U / dU_i) + zU_i, 0, L - 1) - zU_i
 *       W'    = dU_i * U_int * W_int
 *     Quirk reproduced: the clamp uses N bits (L), not lora_bits, as the reference does
 *     (lora_levels = n_levels there); harmless while they are equal.
 *   6 SHIFT: k = round(log2(|U| + 1e-16));  W' = sign(U) 2^k W_int   (sign(0) = 0); no quantizer
 *     is calibrated. The exponent range k_min..k_max over the entries with W_int != 0 is kept.
 *   y = x W'^T + b                                                                 y [M,out]
 *
 * Backward (7), straight-through roundings: with G_W = dy^T x [out,in] (written over B A; MUL
 * recomputes M per row from U and W_int, and computes the quantizer's gradients below in the same
 * pass; bf16 steps compute y, dx and G_W on bf16 operands, base_product.h), dW'/dU = W_int (MUL) or
 * 2^k W_int / (|U| + 1e-16) (SHIFT), and dU/d(BA) = 1 / D:
 *   M = 0 where W_int = 0, or (MUL) round(U / dU) + zU lies outside [0, L - 1], or (SHIFT) U = 0;
 *   else M = 1 (MUL) or 2^k / (|U| + 1e-16) (SHIFT). With zero_path = additive, where W_int = 0:
 *   M = 1 if round(B A / dU) lies inside [-2^(N-1), 2^(N-1) - 1], else 0 (dW'/d(BA) = 1, STE)
 *   GM = G_W . M;   dB += GM A^T  [out,r];   dA += B^T GM  [r,in];   dx += dy W'  [M,in]
 *   Only A and B train, as in the reference (its optimizer gets loraA and loraB only). For the
 *   fixture check, MUL also computes the gradients of its frozen quantizer (parameters in the
 *   reference, double_quant_delta / double_quant_zero_point, though never optimized):
 *     dL/d dU_i = sum_j G_W W_int (U_int - U / dU_i inside the clamp, U_int outside)
 *                 (+ with zero_path = additive, over W_int = 0: G_W (c - B A / dU_i inside, c outside))
 *     dL/d zU_i = sum_j G_W dU_i W_int (0 inside, -1 outside)
 *
 * Deploy (8): merge() recomputes W' from the trained A, B: what training used, so no PTQ.
 *   MUL   w_int = U_int * W_int in int32 (|.| < 2^(2N)), row_scale = dU. Stored: W_round and the
 *         codes of U (N bits each, full [out,in], not low-rank) and per row z, dU, zU (FP32):
 *         W' = dU (u - zU)(W_round - z). bits per weight = 2N + 3 * 32 / in.
 *         zero_path = additive: the deployed integer is c where W_int = 0 (U_int * W_int elsewhere),
 *         still one int32 matrix times dU per row. Its code is stored in U's code slot of that
 *         entry (u = c + 2^(N-1)), which the default stores but never reads (its product with
 *         W_int = 0 is 0), plus one 8-bit constant per layer (add_zero = 2^(N-1)); where W_round = z,
 *         W' = dU (u - add_zero). Storage: no extra bits per weight (2N + 3 * 32 / in, the 8 bits
 *         per layer not counted); deploy: one select per entry (W_round = z) when decoding.
 *   SHIFT W' kept in float (exact: a small integer times a power of two; the shift is not run as
 *         integer shifts here). Stored: W_round (N bits; stored as z where U = 0, so that the
 *         product is 0 too), a sign bit, the exponent e = k - k_min in kbits bits, the least
 *         kbits >= 1 with 2^kbits >= k_max - k_min + 1 (e = 0 where W_int = 0), z per row, k_min:
 *         W' = (-1)^sign 2^(k_min + e) (W_round - z). bits per weight = N + 1 + kbits + 2 * 32 / in.
 *   merge() recomputes U per row for SHIFT (its forward keeps only M).
 *   bytes(): frozen = the codes (N <= 4: N/8 byte, else 1 byte per weight) + 6 FP32 per row (delta,
 *   z, factor, dU, zU, bias) + the key (+ R* in float when given); deployed = 2N (MUL) or
 *   N + 1 + 5 (SHIFT: a 5-bit exponent assumed) bits per weight + 4 FP32 per row. Not counted,
 *   as QLoRA's W_dq is not: the per-step workspace, 12 bytes per weight (B A / G_W, W', and U
 *   or M), plus the base product's bf16 copies in bf16 steps.
 *
 * R = 0 (aux_dist = zero): R* = 0, so at calibration U = delta_i on every entry of row i: a
 *   constant row. Option constant_row (MUL) says what the update quantizer does with it:
 *   fallback (default): the section-0 search's documented fallback (dU = delta_i, zU = -1). MUL
 *     then starts exactly at the RTN weight delta_i W_int (U_int = 1), and U_int stays in 1..L:
 *     the adapter can only scale a weight up by whole multiples (a degenerate update quantizer;
 *     the ablate_rdist recipe measures it).
 *   reference: the authors' code, which keeps dU = 0, zU = 0 for such a row (every candidate of
 *     its search scores NaN, none is accepted); its forward divides U by that zero step, and its
 *     straight-through rounding (round(v) - v) + v turns v = inf into NaN, so its merged weight
 *     dU * U_int * W_int is NaN from the first forward (0 * NaN; with a plain round it would be
 *     0 * (L - 1) * W_int = 0, the layer's weight wiped out). Here too: every output of such a row
 *     is NaN, the first training step's loss is NaN and the run is recorded as diverged; merge()
 *     refuses such a layer (no integer form). On a row that is not constant both are the same.
 *   SHIFT has no update quantizer and is unaffected. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "methods/base_product.h"
#include "methods/frozen_codes.h"
#include "methods/lora_adapter.h"

typedef struct {
    int in, out, rank, n_bits, lora_bits, shift, calibrated;
    int zero_path;            /* INTLORA_ZERO_PATH_* (MUL) */
    int constant_row;         /* INTLORA_CONSTANT_ROW_* (MUL) */
    int aux_dist;             /* INTLORA_AUX_*: R's distribution, regenerated from aux_key */
    uint64_t aux_key;         /* R's stream: R_ij = aux_value(aux_dist, aux_key, i * in + j) */
    float *R;                 /* R* [out,in], held only when given (qa_layer_init.aux_init); else NULL */
    float *aux_factor;        /* VMC factor per row: R*_ij = aux_factor_i * R_ij */
    float *delta, *zero;      /* quantizer of W - R*, per row */
    qa_frozen_codes codes;    /* W_round [out,in], 0 .. L - 1, N-bit (frozen_codes.h) */
    float *bias;
    float *A, *B, *dA, *dB;
    float *dU, *zU, *grad_dU, *grad_zU;  /* MUL update quantizer, per row */
    /* per-step workspace, [out,in] f32 each (not frozen state: rebuilt by every forward) */
    float *BA_G;              /* B A in the forward; G_W = dy^T x, then G_W . M, in the backward */
    float *W_eff;             /* W' in f32 (f32 steps and merge(); a bf16 step writes the product's bf16 copy) */
    float *U;                 /* MUL: U for the backward (B A instead where W_int = 0 on the additive path) */
    float *mask;              /* SHIFT: M for the backward */
    int k_min, k_max;         /* SHIFT: exponent range seen in the last forward */
    const float *x;
    qa_base_product base_mm;  /* the frozen base product, in the training dtype (base_product.h) */
    struct intlora_view *view; /* inspect()'s [out,in] copies of R* and W_round, made on demand */
} intlora_state;

/* What inspect() exposes but training does not hold: filled on the first inspect(), freed by destroy(). */
struct intlora_view {
    float *R;
    int32_t *w_round;
};

static void row_absmax_stats(const float *row, int n, float *absmax_of_extremes, float *absmin_of_extremes) {
    float mn = row[0], mx = row[0];
    for (int j = 1; j < n; j++) { mn = row[j] < mn ? row[j] : mn; mx = row[j] > mx ? row[j] : mx; }
    float a = fabsf(mx), b = fabsf(mn);
    *absmax_of_extremes = a > b ? a : b;
    *absmin_of_extremes = a < b ? a : b;
}

static float row_std(const float *row, int n) {
    double m = 0, v = 0;
    for (int j = 0; j < n; j++) m += row[j];
    m /= n;
    for (int j = 0; j < n; j++) v += (row[j] - m) * (row[j] - m);
    return (float)sqrt(v / (n > 1 ? n - 1 : 1)); /* unbiased, as torch.std */
}
/* The options of both variants (the table is at the end of this file); SHIFT has no update
 * quantizer, so its table stops before lora_bits. */
typedef struct {
    float vmc_alpha;       /* variance-matching exponent */
    int aux_dist;          /* INTLORA_AUX_* */
    int vmc_stat;          /* INTLORA_VMC_* */
    int lora_bits;         /* bits of MUL's update quantizer (0 = the W bits) */
    int zero_path;         /* INTLORA_ZERO_PATH_* */
    int constant_row;      /* INTLORA_CONSTANT_ROW_* */
} intlora_options;

enum { INTLORA_AUX_LAPLACE = 0, INTLORA_AUX_GAUSSIAN, INTLORA_AUX_UNIFORM, INTLORA_AUX_ZERO };
enum { INTLORA_VMC_ABSMAX = 0, INTLORA_VMC_STD };
/* index 0 is the default of each: an options struct left zeroed (SHIFT's) means the method itself */
enum { INTLORA_ZERO_PATH_NONE = 0, INTLORA_ZERO_PATH_ADDITIVE };
enum { INTLORA_CONSTANT_ROW_FALLBACK = 0, INTLORA_CONSTANT_ROW_REFERENCE };

extern const qa_method qa_method_intlora_mul;

/* Step 1: element k = i * in + j of R, from the counter-based generator (harness/rng.h), so any
 * tile of R can be regenerated alone from the layer's key. */
static float aux_value(int aux_dist, uint64_t key, size_t k) {
    switch (aux_dist) {
    case INTLORA_AUX_GAUSSIAN: return (float)(0.5 * qa_counter_normal(key, k));
    case INTLORA_AUX_UNIFORM: return (float)(qa_counter_uniform(key, k) - 0.5);
    case INTLORA_AUX_ZERO: return 0.0f;
    default: return (float)qa_counter_laplace(key, k, 0.5);
    }
}


/* Step 1 regenerated: R* of row i into r [in], the same float product aux_value * factor_i as at
 * init, so every regeneration gives the same bits (the explicit R* when the layer holds one). */
static void aux_row(const intlora_state *s, int i, float *r) {
    const size_t k0 = (size_t)i * s->in;
    if (s->R) {
        memcpy(r, s->R + k0, sizeof(float) * s->in);
        return;
    }
    const float f = s->aux_factor[i];
    if (s->aux_dist == INTLORA_AUX_LAPLACE) { /* the default: the batched generator, the same floats as aux_value */
        qa_counter_laplace_f32(s->aux_key, k0, (size_t)s->in, 0.5, r);
        for (int j = 0; j < s->in; j++) r[j] *= f;
        return;
    }
    for (int j = 0; j < s->in; j++) r[j] = aux_value(s->aux_dist, s->aux_key, k0 + j) * f;
}

/* W_int of row i, W_round - z_i, into wi [in] */
static void w_int_row(const intlora_state *s, int i, float *wi) {
    qa_frozen_codes_row_minus(&s->codes, (size_t)i * s->in, (size_t)s->in, s->zero[i], wi);
}

/* Steps 1-3 on row i: R* (into ri, which holds R_i on entry when the layer was given R), the VMC
 * factor, the quantizer of W_i - R*_i and the row's codes (into codes_row, packed afterwards). */
static void init_row(intlora_state *s, const intlora_options *opt, const float *w, int i, float *ri, float *sep,
                     int32_t *codes_row) {
    const int in = s->in;
    if (!s->R && s->aux_dist == INTLORA_AUX_LAPLACE) qa_counter_laplace_f32(s->aux_key, (size_t)i * in, (size_t)in, 0.5, ri);
    else if (!s->R)
        for (int j = 0; j < in; j++) ri[j] = aux_value(s->aux_dist, s->aux_key, (size_t)i * in + j);
    /* step 2: variance matching */
    float wa, ra, dummy;
    if (opt->vmc_stat == INTLORA_VMC_STD) {
        wa = row_std(w, in);
        ra = row_std(ri, in);
    } else {
        row_absmax_stats(w, in, &wa, &dummy);
        row_absmax_stats(ri, in, &dummy, &ra);
    }
    float factor = powf(wa, opt->vmc_alpha) / powf(ra + 1e-8f, opt->vmc_alpha);
    s->aux_factor[i] = factor;
    for (int j = 0; j < in; j++) ri[j] *= factor;
    /* step 3: quantize W - R* */
    for (int j = 0; j < in; j++) sep[j] = w[j] - ri[j];
    qa_quant_search(sep, (size_t)in, s->n_bits, &s->delta[i], &s->zero[i]);
    const float lmax = (float)((1 << s->n_bits) - 1);
    for (int j = 0; j < in; j++) {
        float q = nearbyintf(sep[j] / s->delta[i]) + s->zero[i];
        codes_row[j] = (int32_t)(q < 0.f ? 0.f : (q > lmax ? lmax : q));
    }
}

static int intlora_init_common(void *state, const qa_layer_init *li, int shift, qa_error *err) {
    intlora_state *s = state;
    qa_base_product_init(&s->base_mm, li->in, li->out, li->step);
    const qa_method_cfg *c = li->cfg;
    intlora_options opt;
    qa_method_options_of(&qa_method_intlora_mul, c, &opt);
    if (c->w_bits < 2)
        return qa_fail(err, QA_ERR_INPUT, "%s: IntLoRA needs integer weights (bits wNaM), not full precision (%s)",
                       shift ? "intlora-shift" : "intlora-mul", li->layer_name);
    if (c->rank < 1 || c->rank > li->in || c->rank > li->out)
        return qa_fail(err, QA_ERR_INPUT, "intlora: rank %d is outside 1..min(in=%d, out=%d) for %s", c->rank, li->in,
                       li->out, li->layer_name);
    int in = li->in, out = li->out;
    size_t n = (size_t)in * out;
    s->in = in; s->out = out; s->rank = c->rank; s->n_bits = c->w_bits; s->shift = shift;
    s->lora_bits = opt.lora_bits > 0 ? opt.lora_bits : c->w_bits;
    s->zero_path = shift ? INTLORA_ZERO_PATH_NONE : opt.zero_path;
    s->constant_row = shift ? INTLORA_CONSTANT_ROW_FALLBACK : opt.constant_row;
    s->aux_dist = opt.aux_dist;
    if (li->aux_init) {
        s->R = qa_alloc(sizeof(float) * n); /* scaled to R* in place below */
        memcpy(s->R, li->aux_init, sizeof(float) * n);
    } else {
        s->aux_key = qa_rng_u64(li->rng); /* one draw: R is then a function of (key, element index) */
    }
    float **rows[] = {&s->aux_factor, &s->delta, &s->zero, &s->dU, &s->zU, &s->grad_dU, &s->grad_zU};
    for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++) *rows[b] = qa_alloc(sizeof(float) * out);
    int32_t *codes = qa_alloc(sizeof(int32_t) * n); /* rows in parallel; packed below, serially */
    #pragma omp parallel
    {
        float *ri = qa_alloc(sizeof(float) * in), *sep = qa_alloc(sizeof(float) * in);
        #pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < out; i++)
            init_row(s, &opt, li->W + (size_t)i * in, i, s->R ? s->R + (size_t)i * in : ri, sep, codes + (size_t)i * in);
        qa_free(ri);
        qa_free(sep);
    }
    qa_frozen_codes_alloc(&s->codes, n, s->n_bits);
    qa_frozen_codes_pack(&s->codes, codes);
    qa_free(codes);
    s->bias = qa_alloc(sizeof(float) * out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * out);
    qa_lora_factors_init(in, out, s->rank, li->rng, &s->A, &s->B, &s->dA, &s->dB);
    s->BA_G = qa_alloc(sizeof(float) * n);
    s->W_eff = qa_alloc(sizeof(float) * n);
    if (shift) s->mask = qa_alloc(sizeof(float) * n);
    else s->U = qa_alloc(sizeof(float) * n);
    s->view = qa_alloc(sizeof *s->view);
    return QA_OK;
}

static int intlora_mul_init(void *state, const qa_layer_init *li, qa_error *err) {
    return intlora_init_common(state, li, 0, err);
}

static int intlora_shift_init(void *state, const qa_layer_init *li, qa_error *err) {
    return intlora_init_common(state, li, 1, err);
}

/* Step 4a, zero_path = additive: the signed N-bit code of B A on the update grid dU, and whether
 * round(B A / dU) lies inside its range (the straight-through mask). */
static inline float add_code(float ba, float du, int n_bits) {
    const float lo = -(float)(1 << (n_bits - 1)), hi = (float)((1 << (n_bits - 1)) - 1);
    float c = nearbyintf(ba / du);
    return c < lo ? lo : (c > hi ? hi : c);
}

static inline float add_inside(float ba, float du, int n_bits) {
    const float lo = -(float)(1 << (n_bits - 1)), hi = (float)((1 << (n_bits - 1)) - 1);
    float c = nearbyintf(ba / du);
    return c >= lo && c <= hi ? 1.f : 0.f;
}

/* constant_row = reference, on a row whose step is 0: the reference's straight-through rounding
 * (round(v) - v) + v, which equals round(v) for a finite v (both operations are exact) and is NaN
 * for v = +-inf or NaN. */
static inline float reference_round(float v) { return isfinite(v) ? nearbyintf(v) : NAN; }

/* Step 5: U_int = clamp(q, 0, L - 1) - zU with q = round(U / dU) + zU, and (into *inside)
 * whether q lies inside [0, L - 1]; NaN stays NaN, as torch.clamp. */
static inline float mul_u_int(float u, float du, float zu, float lmax, float *inside) {
    float v = u / du;
    float q = (du == 0.f ? reference_round(v) : nearbyintf(v)) + zu;
    *inside = (q >= 0.f && q <= lmax) ? 1.f : 0.f;
    q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
    return q - zu;
}

/* Step 4 on row i: U_ij = delta_i + (R*_ij + (B A)_ij) / D_ij into u [in], and W_int of the row
 * into wi [in]. */
static void u_row(const intlora_state *s, int i, const float *ba, float *wi, float *u) {
    aux_row(s, i, u);
    w_int_row(s, i, wi);
    const float d = s->delta[i];
    for (int j = 0; j < s->in; j++) {
        float D = wi[j] == 0.f ? 1.f : wi[j];
        u[j] = d + (u[j] + ba[j]) / D;
    }
}

/* Steps 4a-6 on row i: W' into we [in]. MUL leaves in u what its backward reads (U, or B A where
 * W_int = 0 on the additive path); SHIFT writes M into mk and widens [*kmin, *kmax]. */
static void weight_row(const intlora_state *s, int i, const float *wi, float *u, const float *ba, float *we, float *mk,
                       int *kmin, int *kmax) {
    const int in = s->in;
    if (!s->shift) {
        const float du = s->dU[i], zu = s->zU[i], lmax = (float)((1 << s->n_bits) - 1);
        if (du != 0.f) { /* the same arithmetic as mul_u_int, without its branch, so that it vectorizes */
            for (int j = 0; j < in; j++) {
                float q = nearbyintf(u[j] / du) + zu;
                q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
                we[j] = du * (q - zu) * wi[j];
            }
        } else {
            for (int j = 0; j < in; j++) {
                float inside;
                we[j] = du * mul_u_int(u[j], du, zu, lmax, &inside) * wi[j];
            }
        }
        if (s->zero_path == INTLORA_ZERO_PATH_ADDITIVE)
            for (int j = 0; j < in; j++)
                if (wi[j] == 0.f) { /* step 4a */
                    we[j] = du * add_code(ba[j], du, s->n_bits);
                    u[j] = ba[j];
                }
        return;
    }
    for (int j = 0; j < in; j++) {
        float a = fabsf(u[j]);
        float k = nearbyintf(log2f(a + 1e-16f));
        float p2 = exp2f(k);
        float sg = u[j] > 0.f ? 1.f : (u[j] < 0.f ? -1.f : 0.f);
        we[j] = sg * p2 * wi[j];
        mk[j] = (wi[j] != 0.f && sg != 0.f) ? p2 / (a + 1e-16f) : 0.f;
        if (wi[j] != 0.f) {
            int ki = (int)k;
            *kmin = ki < *kmin ? ki : *kmin;
            *kmax = ki > *kmax ? ki : *kmax;
        }
    }
}

/* Step 5: the update quantizer, calibrated on the first forward (B = 0) from U of every row. */
static void calibrate(intlora_state *s) {
    const int in = s->in, out = s->out;
    #pragma omp parallel
    {
        float *wi = qa_alloc(sizeof(float) * in);
        #pragma omp for schedule(static)
        for (int i = 0; i < out; i++) u_row(s, i, s->BA_G + (size_t)i * in, wi, s->U + (size_t)i * in);
        qa_free(wi);
    }
    qa_quant_search_rows(s->U, out, in, s->lora_bits, s->dU, s->zU);
    if (s->constant_row == INTLORA_CONSTANT_ROW_REFERENCE) /* the reference's search on a constant row */
        for (int i = 0; i < out; i++) {
            const float *u = s->U + (size_t)i * in;
            int constant = 1;
            for (int j = 1; j < in && constant; j++) constant = u[j] == u[0];
            if (constant) s->dU[i] = s->zU[i] = 0.f;
        }
    s->calibrated = 1;
}

/* The merged weight W' in one fused pass over the rows after B A: per row, R* regenerated, W_int
 * decoded, U, W' and what the backward needs, in row scratch that stays in cache. */
static void build_weight(intlora_state *s) {
    const int in = s->in, out = s->out;
    qa_matmul(out, in, s->rank, s->B, 0, s->A, 0, s->BA_G, 0, NULL); /* B A [out,in] */
    if (!s->shift && !s->calibrated) calibrate(s);
    int kmin = 1 << 30, kmax = -(1 << 30);
    #pragma omp parallel reduction(min : kmin) reduction(max : kmax)
    {
        float *wi = qa_alloc(sizeof(float) * in), *u_scratch = s->shift ? qa_alloc(sizeof(float) * in) : NULL;
        #pragma omp for schedule(static)
        for (int i = 0; i < out; i++) {
            const size_t k0 = (size_t)i * in;
            float *u = s->shift ? u_scratch : s->U + k0;
            u_row(s, i, s->BA_G + k0, wi, u);
            weight_row(s, i, wi, u, s->BA_G + k0, s->W_eff + k0, s->shift ? s->mask + k0 : NULL, &kmin, &kmax);
        }
        qa_free(wi);
        qa_free(u_scratch);
    }
    s->k_min = kmin;
    s->k_max = kmax;
}

static void intlora_forward(void *state, const float *x, float *y, int M) {
    intlora_state *s = state;
    s->x = x;
    build_weight(s);
    qa_base_product_forward(&s->base_mm, y, x, s->W_eff, s->bias, M);
}

/* Row scratch of MUL's backward: the masked row and the terms of the quantizer's gradients. */
typedef struct {
    float *gm;
    double *td, *tz;
} mul_row_scratch;

/* MUL's backward on row i of G = G_W: the gradients of the frozen update quantizer (for the
 * reference check), then G . M in place, M recomputed from what the forward left in U. The terms
 * are computed in vectorizable loops and summed in j order afterwards (the same sums). */
static void mul_backward_row(intlora_state *s, int i, const float *wi, float *g, const mul_row_scratch *t) {
    const int in = s->in;
    const float du = s->dU[i], zu = s->zU[i], lmax = (float)((1 << s->n_bits) - 1);
    const float *ui = s->U + (size_t)i * in;
    float *gm = t->gm;
    double *td = t->td, *tz = t->tz;
    for (int j = 0; j < in; j++) { /* without branches (& for &&), so that it vectorizes */
        float v = ui[j] / du, q = nearbyintf(v) + zu;
        int inside = (q >= 0.f) & (q <= lmax);
        float qc = q < 0.f ? 0.f : (q > lmax ? lmax : q);
        float uint_ = qc - zu, slope = inside ? uint_ - v : uint_;
        double outside_term = -(double)g[j] * du * wi[j];
        td[j] = (double)g[j] * wi[j] * slope;
        tz[j] = inside ? 0.0 : outside_term;
        gm[j] = g[j] * ((wi[j] != 0.f) & inside ? 1.f : 0.f); /* the forward's mask while dU != 0 */
    }
    if (du == 0.f)
        for (int j = 0; j < in; j++) { /* the forward's mask with its rounding of a zero step */
            float fwd_inside;
            mul_u_int(ui[j], du, zu, lmax, &fwd_inside);
            gm[j] = g[j] * (wi[j] != 0.f ? fwd_inside : 0.f);
        }
    if (s->zero_path == INTLORA_ZERO_PATH_ADDITIVE)
        for (int j = 0; j < in; j++)
            if (wi[j] == 0.f) {
                /* W' = dU c, c = clamp(round(B A / dU)): d/d dU = c - B A / dU inside, c outside */
                const float ba = ui[j], c = add_code(ba, du, s->n_bits), mk = add_inside(ba, du, s->n_bits);
                td[j] = (double)g[j] * (mk ? c - ba / du : c);
                tz[j] = 0.0;
                gm[j] = g[j] * mk;
            }
    double gd = 0, gz = 0;
    for (int j = 0; j < in; j++) {
        gd += td[j];
        gz += tz[j];
    }
    memcpy(g, gm, sizeof(float) * in);
    s->grad_dU[i] = (float)gd;
    s->grad_zU[i] = (float)gz;
}

static void intlora_backward(void *state, const float *dy, float *dx, int M) {
    intlora_state *s = state;
    const int in = s->in, out = s->out;
    float *G = s->BA_G; /* B A is no longer needed (MUL's backward reads U) */
    qa_base_product_backward_dx_dw(&s->base_mm, dx, G, dy, s->W_eff, s->x, M); /* dx += dy W';  G_W = dy^T x */
    if (!s->shift) {
        #pragma omp parallel
        {
            float *wi = qa_alloc(sizeof(float) * in);
            mul_row_scratch t = {qa_alloc(sizeof(float) * in), qa_alloc(sizeof(double) * in), qa_alloc(sizeof(double) * in)};
            #pragma omp for schedule(static)
            for (int i = 0; i < out; i++) {
                w_int_row(s, i, wi);
                mul_backward_row(s, i, wi, G + (size_t)i * in, &t); /* GM = G_W . M */
            }
            qa_free(wi);
            qa_free(t.gm);
            qa_free(t.td);
            qa_free(t.tz);
        }
    } else {
        size_t n = (size_t)in * out;
        #pragma omp parallel for schedule(static)
        for (size_t k = 0; k < n; k++) G[k] *= s->mask[k];             /* GM = G_W . M */
    }
    qa_matmul(out, s->rank, in, G, 0, s->A, 1, s->dB, 1, NULL);        /* dB += GM A^T */
    qa_matmul(s->rank, in, out, s->B, 1, G, 0, s->dA, 1, NULL);        /* dA += B^T GM */
}

static int intlora_params(void *state, qa_param *outp, int max) {
    intlora_state *s = state;
    if (max < 2) return 0;
    outp[0] = (qa_param){"lora_A", s->A, s->dA, (size_t)s->rank * s->in, 1.0f};
    outp[1] = (qa_param){"lora_B", s->B, s->dB, (size_t)s->out * s->rank, 1.0f};
    return 2;
}

static int intlora_merge(void *state, qa_deployed *d, qa_error *err) {
    intlora_state *s = state;
    build_weight(s);
    if (!s->shift)
        for (int i = 0; i < s->out; i++)
            if (s->dU[i] == 0.f) /* constant_row = reference: no integer form exists */
                return qa_fail(err, QA_ERR_RUN,
                               "intlora-mul: row %d of the update quantizer has step 0 (constant_row = reference on a constant "
                               "row): the merged weight is NaN",
                               i);
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    const int in = s->in, out = s->out;
    size_t n = (size_t)in * out;
    const float *BA = s->BA_G; /* as build_weight left it */
    float *wi = qa_alloc(sizeof(float) * in), *u = qa_alloc(sizeof(float) * in);
    if (!s->shift) {
        /* integer Hadamard product U_int * W_int (|.| < 2^(2N)) in int32, one float scale per row.
         * Stored (header, step 8): W_round and U's codes, N bits each, with W's zero point and U's
         * scale and zero point per row; W' = dU (u - zU)(W_round - z). zero_path = additive: where
         * W_round = z the code slot of U holds c + 2^(N-1) instead, and W' = dU (u - add_zero). */
        d->w_int = qa_alloc(sizeof(int32_t) * n);
        d->row_scale = qa_alloc(sizeof(float) * out);
        const float lmax = (float)((1 << s->n_bits) - 1);
        const int add_zero = 1 << (s->n_bits - 1);
        int32_t *wr = qa_deployed_store_int(d, "w_round", s->n_bits, 0, out, in);
        int32_t *uq = qa_deployed_store_int(d, "u_codes", s->n_bits, 0, out, in);
        for (int i = 0; i < out; i++) {
            d->row_scale[i] = s->dU[i];
            w_int_row(s, i, wi);
            qa_frozen_codes_unpack(&s->codes, (size_t)i * in, (size_t)in, wr + (size_t)i * in);
            for (int j = 0; j < in; j++) {
                size_t k = (size_t)i * in + j;
                if (wi[j] == 0.f && s->zero_path == INTLORA_ZERO_PATH_ADDITIVE) {
                    float c = add_code(BA[k], s->dU[i], s->n_bits);
                    d->w_int[k] = (int32_t)c;
                    uq[k] = (int32_t)c + add_zero;
                    continue;
                }
                float q = nearbyintf(s->U[k] / s->dU[i]) + s->zU[i];
                q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
                d->w_int[k] = (int32_t)(q - s->zU[i]) * (int32_t)wi[j];
                uq[k] = (int32_t)q;
            }
        }
        d->merge = QA_MERGE_INT_MULTIPLY;
        memcpy(qa_deployed_store_float(d, "zero", 32, out, 1), s->zero, sizeof(float) * out);
        memcpy(qa_deployed_store_float(d, "u_scale", 32, out, 1), s->dU, sizeof(float) * out);
        memcpy(qa_deployed_store_float(d, "u_zero", 32, out, 1), s->zU, sizeof(float) * out);
        if (s->zero_path == INTLORA_ZERO_PATH_ADDITIVE) *qa_deployed_store_int(d, "add_zero", 8, 0, 1, 1) = add_zero;
        d->bits_per_weight = 2.0 * s->n_bits + 3 * 32.0 / in; /* W_round + U_int; delta, z, dU per row */
    } else {
        /* exact powers of two times small integers: representable in float */
        d->w_fp = qa_alloc(sizeof(float) * n);
        memcpy(d->w_fp, s->W_eff, sizeof(float) * n);
        d->merge = QA_MERGE_BIT_SHIFT;
        int range = s->k_max - s->k_min + 1, kbits = 1;
        while ((1 << kbits) < range) kbits++;
        d->bits_per_weight = s->n_bits + 1 + kbits + 2 * 32.0 / in; /* W_round, sign, exponent */
        /* stored: W_round (N bits), sign (1 bit), exponent - k_min (kbits), W's zero point per row
         * and k_min; W' = (-1)^sign 2^(k_min + e) (W_round - z). Where U = 0 (W' = 0 whatever
         * W_int is) W_round is stored as z, so that the product is 0 too. U is recomputed here
         * (SHIFT's forward keeps only M). */
        int32_t *wr = qa_deployed_store_int(d, "w_round", s->n_bits, 0, out, in);
        int32_t *sg = qa_deployed_store_int(d, "sign", 1, 0, out, in);
        int32_t *ex = qa_deployed_store_int(d, "exponent", kbits, 0, out, in);
        for (int i = 0; i < out; i++) {
            u_row(s, i, BA + (size_t)i * in, wi, u);
            qa_frozen_codes_unpack(&s->codes, (size_t)i * in, (size_t)in, wr + (size_t)i * in);
            for (int j = 0; j < in; j++) {
                size_t k = (size_t)i * in + j;
                int e = (int)nearbyintf(log2f(fabsf(u[j]) + 1e-16f)) - s->k_min;
                if (u[j] == 0.f) wr[k] = (int32_t)s->zero[i];
                sg[k] = u[j] < 0.f;
                ex[k] = wi[j] == 0.f || e < 0 ? 0 : (e >= range ? range - 1 : e); /* free where W_int = 0 */
            }
        }
        memcpy(qa_deployed_store_float(d, "zero", 32, out, 1), s->zero, sizeof(float) * out);
        *qa_deployed_store_int(d, "k_min", 8, 1, 1, 1) = s->k_min;
    }
    d->needs_ptq = 0;
    /* what the paper's claims ask to measure: the entries that cannot adapt (W_int = 0, C10) and,
     * for SHIFT, the exponent range actually used (header, step 6) */
    size_t zeros = 0;
    /* energy of the adapter's update B·A, and the part the entries with W_int = 0 lose: all of
     * it (W' = 0 there), or with zero_path = additive what its code misses (rounding, clamp) */
    double upd_all = 0, upd_zero = 0;
    for (int i = 0; i < out; i++) {
        w_int_row(s, i, wi);
        for (int j = 0; j < in; j++) {
            size_t k = (size_t)i * in + j;
            double u2 = (double)BA[k] * BA[k];
            upd_all += u2;
            if (wi[j] == 0.f) {
                double miss = (double)BA[k] - s->W_eff[k];
                zeros++;
                upd_zero += miss * miss;
            }
        }
    }
    qa_free(wi);
    qa_free(u);
    d->n_stats = 2;
    snprintf(d->stat_name[0], sizeof d->stat_name[0], "w_int_zero_share");
    d->stat_num[0] = (double)zeros;
    d->stat_den[0] = (double)n;
    snprintf(d->stat_name[1], sizeof d->stat_name[1], "update_energy_lost");
    d->stat_num[1] = upd_zero;
    d->stat_den[1] = upd_all;
    if (s->shift)
        snprintf(d->note, sizeof d->note, "W_int=0 %.2f%%; exponents %d..%d", 100.0 * zeros / n, s->k_min, s->k_max);
    else
        snprintf(d->note, sizeof d->note, "W_int=0 %.2f%%%s", 100.0 * zeros / n,
                 s->zero_path == INTLORA_ZERO_PATH_ADDITIVE ? " (additive path)" : "");
    return QA_OK;
}

static void intlora_bytes(const void *state, qa_bytes *b) {
    const intlora_state *s = state;
    size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out);
    /* as held for training: the codes of W_round, per row delta, z, the VMC factor, dU, zU and the
     * bias, R's key; R* only when it was given (a fixture). Workspace: the per-step [out,in]
     * buffers kept between steps (B A / G, W', U or M: 12 bytes per weight; methods/README.md, 0.7). */
    b->frozen = qa_frozen_codes_bytes(n, s->n_bits) + (size_t)s->out * sizeof(float) * 6 + sizeof s->aux_key +
                (s->R ? n * sizeof(float) : 0);
    b->workspace = 3 * n * sizeof(float);
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    size_t per_weight_bits = s->shift ? (size_t)s->n_bits + 1 + 5 : 2 * (size_t)s->n_bits;
    b->deployed = (n * per_weight_bits + 7) / 8 + (size_t)s->out * sizeof(float) * 4;
}

static int intlora_inspect(const void *state, qa_named_tensor *o, int max) {
    const intlora_state *s = state;
    struct intlora_view *v = s->view; /* R* and W_round in full, built on the first call */
    if (!s->R && !v->R) {
        v->R = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
        for (int i = 0; i < s->out; i++) aux_row(s, i, v->R + (size_t)i * s->in);
    }
    if (!v->w_round) {
        size_t n = (size_t)s->in * s->out;
        v->w_round = qa_alloc(sizeof(int32_t) * n);
        qa_frozen_codes_unpack(&s->codes, 0, n, v->w_round);
    }
    int k = 0;
    qa_named_tensor all[] = {
        {"R", s->R ? s->R : v->R, NULL, 2, {s->out, s->in}},
        {"delta", s->delta, NULL, 1, {s->out, 1}},
        {"zero_point", s->zero, NULL, 1, {s->out, 1}},
        {"W_round", NULL, v->w_round, 2, {s->out, s->in}},
        {"W_eff", s->W_eff, NULL, 2, {s->out, s->in}},
        {"U_delta", s->dU, NULL, 1, {s->out, 1}},
        {"U_zero_point", s->zU, NULL, 1, {s->out, 1}},
        {"grad_U_delta", s->grad_dU, NULL, 1, {s->out, 1}},
        {"grad_U_zero_point", s->grad_zU, NULL, 1, {s->out, 1}},
    };
    int n_all = s->shift ? 5 : 9; /* SHIFT has no update quantizer */
    for (int i = 0; i < n_all && k < max; i++) o[k++] = all[i];
    return k;
}

static void intlora_destroy(void *state) {
    intlora_state *s = state;
    qa_base_product_free(&s->base_mm);
    float *ps[] = {s->R, s->aux_factor, s->delta, s->zero, s->bias, s->A, s->B, s->dA, s->dB, s->BA_G, s->W_eff,
                   s->U, s->mask, s->dU, s->zU, s->grad_dU, s->grad_zU};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) qa_free(ps[i]);
    qa_frozen_codes_free(&s->codes);
    if (s->view) {
        qa_free(s->view->R);
        qa_free(s->view->w_round);
        qa_free(s->view);
    }
}

/* ---- options ---- */

static const qa_option intlora_option_table[] = {
    {"vmc_alpha", QA_OPT_FLOAT, "1.5", 0, 10, NULL, "variance-matching exponent (5.2)", 1, "a",
     offsetof(intlora_options, vmc_alpha)},
    {"aux_dist", QA_OPT_ENUM, "laplace", 0, 0, "laplace|gaussian|uniform|zero", "distribution of the auxiliary matrix R (5.1)",
     1, "", offsetof(intlora_options, aux_dist)},
    {"vmc_stat", QA_OPT_ENUM, "absmax", 0, 0, "absmax|std", "VMC statistic: absmax (the reference code) or std (the paper)",
     1, "", offsetof(intlora_options, vmc_stat)},
    {"lora_bits", QA_OPT_INT, "0", 0, 8, NULL, "bits of MUL's update quantizer (0 = the W bits)", 1, "lb",
     offsetof(intlora_options, lora_bits)},
    {"zero_path", QA_OPT_ENUM, "none", 0, 0, "none|additive",
     "entries with W_int = 0: none (W' = 0, the method) or additive (W' = dU times the N-bit code of B A / dU)", 1, "",
     offsetof(intlora_options, zero_path)},
    {"constant_row", QA_OPT_ENUM, "fallback", 0, 0, "fallback|reference",
     "update quantizer of a constant row (R = 0): fallback (the harness's rule) or reference (the authors': NaN weights)", 1, "",
     offsetof(intlora_options, constant_row)},
};

/* the reference layer fixtures: their "alpha" and "lora_bits" attributes */
static const qa_fixture_option intlora_mul_fixture[] = {{"lora_bits", "lora_bits"}, {"alpha", "vmc_alpha"}};
static const qa_fixture_option intlora_shift_fixture[] = {{"alpha", "vmc_alpha"}};

const qa_method qa_method_intlora_mul = {
    .name = "intlora-mul",
    .summary = "IntLoRA, multiplicative: W' = dU * (U_int . W_int), integer merge, no PTQ",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(intlora_state),
    .init = intlora_mul_init,
    .forward = intlora_forward,
    .backward = intlora_backward,
    .params = intlora_params,
    .merge = intlora_merge,
    .bytes = intlora_bytes,
    .destroy = intlora_destroy,
    .inspect = intlora_inspect,
    .needs_weight_bits = 1,
    .options = intlora_option_table,
    .n_options = 6,
    .options_size = sizeof(intlora_options),
    .fixture_options = intlora_mul_fixture,
    .n_fixture_options = 2,
};

const qa_method qa_method_intlora_shift = {
    .name = "intlora-shift",
    .summary = "IntLoRA, shift: W' = sign(U) 2^round(log2|U|) W_int, bit-shift merge, no PTQ",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(intlora_state),
    .init = intlora_shift_init,
    .forward = intlora_forward,
    .backward = intlora_backward,
    .params = intlora_params,
    .merge = intlora_merge,
    .bytes = intlora_bytes,
    .destroy = intlora_destroy,
    .inspect = intlora_inspect,
    .needs_weight_bits = 1,
    .options = intlora_option_table,
    .n_options = 3, /* no lora_bits, zero_path, constant_row: SHIFT has no update quantizer */
    .options_size = sizeof(intlora_options),
    .fixture_options = intlora_shift_fixture,
    .n_fixture_options = 1,
};
