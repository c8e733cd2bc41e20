/* LQ-LoRA: LoRA whose factors start as the low-rank part of a low-rank plus quantized
 * decomposition of the weight, trained over the frozen quantized part; LoftQ's initialisation as
 * an option of the same plugin.
 *
 * Papers: "LQ-LoRA: Low-rank Plus Quantized Matrix Decomposition for Efficient Language Model
 * Finetuning", Guo et al., arXiv 2311.12023; "LoftQ: LoRA-Fine-Tuning-Aware Quantization for Large
 * Language Models", Li et al., arXiv 2310.08659. Reference code: github HanGuo97/lq-lora (read at
 * c2424b3): models/lq_utils.py (lowrank_quantized_sparse_decomposition, the qconfig assignment),
 * models/factorizations_utils.py (svd_decomposition); github yxli2123/LoftQ (read at ae33fd4):
 * glue/utils.py (quant_first_iter). Notation and the section-0 quantizer: methods/README.md.
 *
 * 1. Initialisation, W [out,in] ~ Q + L1 L2, L1 [out,r], L2 [r,in] (lqlora_decompose):
 *      svd_r(E):  E = U S V^T (GSL, double), L1 = U_r sqrt(S_r), L2 = sqrt(S_r) V_r^T
 *      quant(E):  NF4 + double quantization as QLoRA (qlora.h), or the section-0 per-row INT-N
 *                 quantizer (quant_search_rows / quant_fake_rows); lq_quant = auto picks NF4 at
 *                 4 bits and INT otherwise
 *      lq-lora (lq_init = lq-lora):  Q = 0, e_prev = inf; for t = 1..T (T = lq_iters, default 20):
 *                 (L1, L2) = svd_r(W - Q);  Q = quant(W - L1 L2);  e = ||W - Q - L1 L2||_F
 *                 if e > e_prev: stop, keeping this (worse) iterate, as the reference does (its own
 *                 TODO says so); lq_stop = best keeps the best iterate instead;  e_prev = e
 *      loftq (lq_init = loftq):  L1 L2 = 0; for t = 1..T (default 5, no early stop):
 *                 Q = quant(W - L1 L2);  (L1, L2) = svd_r(W - Q)
 *    The factors become the adapter: B = L1 / s, A = L2 (s = lora_scale), so s B A = L1 L2 and
 *    the layer starts at Q + L1 L2 ~ W (not at Q, as QLoRA does).
 * 2. Training (QLoRA-style, the quantized part frozen, methods/lora_adapter.c):
 *      y = x Q^T + b + s (x A^T) B^T;   dB += s dy^T xa,  dA += (s dy B)^T x,  dx += dy Q + s dy B A
 * 3. Deploy, both ways, with their stored bits:
 *      requantized merge (the main deploy): W' = Q + s B A in float ("fp"), then the harness's
 *        section-0 PTQ at N bits ("int": one rounding of the merged weight, N + 64/in bits)
 *      "q+lr" (extra): Q as stored plus the factors in FP16: W_d = Q + s fp16(B) fp16(A),
 *        bits = bits(Q) + 16 r (in + out) / (in out)  (bits(Q): N + 64/in for INT, 4.127 NF4 + DQ)
 *      "nf4" (extra, NF4 only): W' re-quantized to NF4 + DQ (as QLoRA's D2).
 * 4. Memory-budget bit allocation (lqlora_allocate): for layers l and configs c (bits), error
 *    e_lc = ||W_l - Q - L1 L2||_F^2 and storage m_lc (lqlora_storage_bits); minimise sum e subject
 *    to sum m <= budget, one config per layer. The reference solves this integer programme with
 *    Gurobi (mip_solve); here it is a multiple-choice knapsack solved exactly by dynamic
 *    programming over the total storage in units of the gcd of all storages. The per-layer plugin
 *    interface sees one layer at a time, so the allocation cannot run inside init(): it is a
 *    tested function (tests/test_lqlora.c checks it against brute force) whose per-layer answer a
 *    run applies through the option lq_bits (the bits of this method's layers; 0 = the
 *    experiment's W bits). A run with one lq_bits value gives every adapted layer the same bits.
 *
 * Memory (bytes()): frozen = Q as stored, encoded at init from the quantizer input that gave Q
 *   (NF4 + DQ; or N-bit codes, methods/frozen_codes.h, packed at N <= 4 and a byte at 5..8, with an
 *   FP32 scale and zero point per row) + FP32 bias; workspace = Q_dq, its f32 dequantization that
 *   the products read (qa_lqlora_stored_decode reproduces it exactly); deployed = the requantized
 *   merge (N-bit codes + FP32 scale and zero per row) + bias.
 *
 * It needs a quantized part: at bits = fp a sweep leaves it out (needs_weight_bits), and lq_bits or
 * the W bits must be 1..8 (NF4: 4 only); the rank must lie in 1..min(in, out) (recipe errors).
 *
 * Deliberate deviations from the references:
 *   - The SVD (lq_svd): auto = exact (gsl_linalg_SV_decomp) when min(in, out) <= 256, where it is
 *     cheap, and above it the reference's randomized range finder (svd_lowrank: rank + 10 seeded
 *     Gaussian vectors, two power iterations; lqlora_svd_rank_randomized); exact and randomized
 *     force one or the other.
 *   - T = 20 by default instead of the reference's 100 (with the same early stop): each iteration
 *     is an SVD and a quantizer search, and on a 128x128 Gaussian layer at 3 bits, rank 4, T = 20
 *     ends within 0.6% of the error where the early stop ends (36 iterations; 0.3965 vs 0.3941,
 *     quantization alone 0.4826). lq_iters = 100 is the reference's setting.
 *   - The quantizer: LQ-LoRA's blockwise NF-b (b = 2, 3, 4, 8; 8-bit first-level scales) is
 *     QLoRA's NF4 + DQ at 4 bits, and the section-0 INT-b per-row quantizer at the other widths
 *     (no NF2/NF3 code here); LoftQ's NF4 likewise.
 *   - No Fisher-weighted decomposition (the reference's optional W); no sparse part.
 *   - The allocation is solved exactly by DP instead of an ILP solver (same optimum), and reaches
 *     the layers through lq_bits (above).
 *   - f32 training compute, as every method here. */
#include "methods/lqlora.h"

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "methods/frozen_codes.h"
#include "methods/lora_adapter.h"
#include "methods/qalora.h"
#include "methods/qlora.h"

extern const qa_method qa_method_lqlora;

/* ---- the decomposition ---------------------------------------------------------------------- */

void qa_lqlora_svd_rank(const float *E, int out, int in, int rank, float *L1, float *L2) {
    /* GSL's thin SVD needs rows >= columns: decompose E or E^T */
    const int tall = out >= in, rows = tall ? out : in, cols = tall ? in : out;
    gsl_matrix *U = gsl_matrix_alloc((size_t)rows, (size_t)cols), *V = gsl_matrix_alloc((size_t)cols, (size_t)cols);
    gsl_vector *S = gsl_vector_alloc((size_t)cols), *work = gsl_vector_alloc((size_t)cols);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double v = E[(size_t)o * in + i];
            if (tall) gsl_matrix_set(U, (size_t)o, (size_t)i, v);
            else gsl_matrix_set(U, (size_t)i, (size_t)o, v);
        }
    gsl_linalg_SV_decomp(U, V, S, work); /* rows x cols = U S V^T, S descending */
    /* E = U S V^T (tall) or E = V S U^T (wide): the left factor of E is U or V */
    const gsl_matrix *left = tall ? U : V, *right = tall ? V : U;
    for (int k = 0; k < rank; k++) {
        double sq = sqrt(gsl_vector_get(S, (size_t)k));
        for (int o = 0; o < out; o++) L1[(size_t)o * rank + k] = (float)(gsl_matrix_get(left, (size_t)o, (size_t)k) * sq);
        for (int i = 0; i < in; i++) L2[(size_t)k * in + i] = (float)(gsl_matrix_get(right, (size_t)i, (size_t)k) * sq);
    }
    gsl_matrix_free(U);
    gsl_matrix_free(V);
    gsl_vector_free(S);
    gsl_vector_free(work);
}

/* Columns of Y [rows, q] (row-major, double) made orthonormal in place: modified Gram-Schmidt,
 * twice (one pass loses orthogonality when Y is ill-conditioned). A column that vanishes stays 0. */
static void orthonormalize(double *Y, int rows, int q) {
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < q; k++) {
            for (int j = 0; j < k; j++) {
                double d = 0;
                for (int i = 0; i < rows; i++) d += Y[(size_t)i * q + j] * Y[(size_t)i * q + k];
                for (int i = 0; i < rows; i++) Y[(size_t)i * q + k] -= d * Y[(size_t)i * q + j];
            }
            double nrm = 0;
            for (int i = 0; i < rows; i++) nrm += Y[(size_t)i * q + k] * Y[(size_t)i * q + k];
            nrm = sqrt(nrm);
            for (int i = 0; i < rows; i++) Y[(size_t)i * q + k] = nrm > 0 ? Y[(size_t)i * q + k] / nrm : 0;
        }
}

/* Y [m, q] = E [m, n] X [n, q] (trans_E: E^T [n, m] as stored [m, n] ... see callers), in double */
static void mul_EX(const float *E, int out, int in, int transpose, const double *X, int q, double *Y) {
    const int m = transpose ? in : out;
    memset(Y, 0, sizeof(double) * (size_t)m * q);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            const double e = E[(size_t)o * in + i];
            const double *x = transpose ? X + (size_t)o * q : X + (size_t)i * q;
            double *y = transpose ? Y + (size_t)i * q : Y + (size_t)o * q;
            for (int k = 0; k < q; k++) y[k] += e * x[k];
        }
}

void qa_lqlora_svd_rank_randomized(const float *E, int out, int in, int rank, uint64_t seed, float *L1, float *L2) {
    const int q0 = rank + 10, q = q0 < (out < in ? out : in) ? q0 : (out < in ? out : in);
    double *Om = qa_alloc(sizeof(double) * (size_t)in * q), *Y = qa_alloc(sizeof(double) * (size_t)out * q);
    double *Z = qa_alloc(sizeof(double) * (size_t)in * q);
    qa_rng *r = qa_rng_new(seed);
    for (size_t i = 0; i < (size_t)in * q; i++) Om[i] = qa_rng_normal(r);
    qa_rng_free(r);
    mul_EX(E, out, in, 0, Om, q, Y);     /* Y = E Om */
    orthonormalize(Y, out, q);
    for (int it = 0; it < 2; it++) {     /* two power iterations, as torch.svd_lowrank's default */
        mul_EX(E, out, in, 1, Y, q, Z);  /* Z = E^T Y */
        orthonormalize(Z, in, q);
        mul_EX(E, out, in, 0, Z, q, Y);  /* Y = E Z */
        orthonormalize(Y, out, q);
    }
    mul_EX(E, out, in, 1, Y, q, Z);      /* Z = E^T Y = (Y^T E)^T [in, q]: E ~ Y Z^T */
    /* Z = U_z S V_z^T (in >= q), so E ~ (Y V_z) S U_z^T */
    gsl_matrix *U = gsl_matrix_alloc((size_t)in, (size_t)q), *V = gsl_matrix_alloc((size_t)q, (size_t)q);
    gsl_vector *S = gsl_vector_alloc((size_t)q), *work = gsl_vector_alloc((size_t)q);
    for (int i = 0; i < in; i++)
        for (int k = 0; k < q; k++) gsl_matrix_set(U, (size_t)i, (size_t)k, Z[(size_t)i * q + k]);
    gsl_linalg_SV_decomp(U, V, S, work);
    for (int k = 0; k < rank; k++) {
        double sq = sqrt(gsl_vector_get(S, (size_t)k));
        for (int o = 0; o < out; o++) {
            double v = 0;
            for (int j = 0; j < q; j++) v += Y[(size_t)o * q + j] * gsl_matrix_get(V, (size_t)j, (size_t)k);
            L1[(size_t)o * rank + k] = (float)(v * sq);
        }
        for (int i = 0; i < in; i++) L2[(size_t)k * in + i] = (float)(gsl_matrix_get(U, (size_t)i, (size_t)k) * sq);
    }
    gsl_matrix_free(U);
    gsl_matrix_free(V);
    gsl_vector_free(S);
    gsl_vector_free(work);
    qa_free(Om); qa_free(Y); qa_free(Z);
}

/* The SVD a config asks for: exact (GSL) up to LQ_EXACT_SVD_MAX, randomized above (auto) */
#define LQ_EXACT_SVD_MAX 256
static void svd_rank(const float *E, int out, int in, const lqlora_cfg *cfg, int iteration, float *L1, float *L2) {
    int small = (out < in ? out : in) <= LQ_EXACT_SVD_MAX;
    if (cfg->svd == LQ_SVD_EXACT || (cfg->svd == LQ_SVD_AUTO && small)) qa_lqlora_svd_rank(E, out, in, cfg->rank, L1, L2);
    else qa_lqlora_svd_rank_randomized(E, out, in, cfg->rank, cfg->seed + (uint64_t)iteration, L1, L2);
}

/* Q_dq = quant(E) */
static void quantize(const float *E, int out, int in, int bits, lqlora_quant_kind quant, float *Q_dq) {
    const size_t n = (size_t)out * in;
    if (quant == LQ_QUANT_NF4) {
        qlora_nf4_tensor t;
        qa_qlora_nf4_tensor_encode(&t, E, n);
        qa_qlora_nf4_tensor_decode(&t, Q_dq);
        qa_qlora_nf4_tensor_free(&t);
        return;
    }
    float *delta = qa_alloc(sizeof(float) * out), *zero = qa_alloc(sizeof(float) * out);
    qa_quant_search_rows(E, out, in, bits, delta, zero);
    qa_quant_fake_rows(Q_dq, E, out, in, bits, delta, zero);
    qa_free(delta);
    qa_free(zero);
}

/* ||W - Q - L1 L2||_F; LR holds L1 L2 */
static double residual_norm(const float *W, const float *Q, const float *LR, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)W[i] - Q[i] - LR[i];
        s += e * e;
    }
    return sqrt(s);
}

/* The decomposition; Q_in (NULL: not wanted) receives the quantizer input of the returned Q. */
static int decompose(const float *W, int out, int in, const lqlora_cfg *cfg, float *Q_dq, float *L1, float *L2,
                     float *Q_in, lqlora_stats *st, qa_error *err) {
    const int r = cfg->rank;
    if (r < 1 || r > out || r > in)
        return qa_fail(err, QA_ERR_INPUT, "lq-lora: rank %d is outside 1..min(in=%d, out=%d)", r, in, out);
    if (cfg->bits < 1 || cfg->bits > 8)
        return qa_fail(err, QA_ERR_INPUT, "lq-lora: weight bits %d unsupported (allowed 1..8)", cfg->bits);
    lqlora_quant_kind quant = cfg->quant == LQ_QUANT_AUTO ? (cfg->bits == 4 ? LQ_QUANT_NF4 : LQ_QUANT_INT) : cfg->quant;
    if (quant == LQ_QUANT_NF4 && cfg->bits != 4)
        return qa_fail(err, QA_ERR_INPUT, "lq-lora: lq_quant nf4 exists only at 4 bits (bits %d; allowed: auto, int)", cfg->bits);
    const int T = cfg->iters > 0 ? cfg->iters : (cfg->init == LQ_INIT_LOFTQ ? 5 : 20);
    const size_t n = (size_t)out * in;
    float *E = qa_alloc(sizeof(float) * n), *LR = qa_alloc(sizeof(float) * n);
    float *bestQ = NULL, *best1 = NULL, *best2 = NULL, *bestIn = NULL;
    if (cfg->keep_best && cfg->init == LQ_INIT_LQLORA) {
        bestQ = qa_alloc(sizeof(float) * n);
        if (Q_in) bestIn = qa_alloc(sizeof(float) * n);
        best1 = qa_alloc(sizeof(float) * (size_t)out * r);
        best2 = qa_alloc(sizeof(float) * (size_t)r * in);
    }
    memset(Q_dq, 0, sizeof(float) * n);
    memset(L1, 0, sizeof(float) * (size_t)out * r);
    memset(L2, 0, sizeof(float) * (size_t)r * in);
    double e_prev = INFINITY, e = INFINITY, e_best = INFINITY;
    int t = 0;
    for (t = 1; t <= T; t++) {
        if (cfg->init == LQ_INIT_LOFTQ) {
            for (size_t i = 0; i < n; i++) E[i] = W[i] - LR[i];
            quantize(E, out, in, cfg->bits, quant, Q_dq);                 /* Q = quant(W - L1 L2) */
            if (Q_in) memcpy(Q_in, E, sizeof(float) * n);
            for (size_t i = 0; i < n; i++) E[i] = W[i] - Q_dq[i];
            svd_rank(E, out, in, cfg, t, L1, L2);                          /* L1 L2 = svd_r(W - Q) */
            qa_matmul(out, in, r, L1, 0, L2, 0, LR, 0, NULL);
            e = residual_norm(W, Q_dq, LR, n);
            continue;
        }
        for (size_t i = 0; i < n; i++) E[i] = W[i] - Q_dq[i];
        svd_rank(E, out, in, cfg, t, L1, L2);                              /* L1 L2 = svd_r(W - Q) */
        qa_matmul(out, in, r, L1, 0, L2, 0, LR, 0, NULL);
        for (size_t i = 0; i < n; i++) E[i] = W[i] - LR[i];
        quantize(E, out, in, cfg->bits, quant, Q_dq);                     /* Q = quant(W - L1 L2) */
        if (Q_in) memcpy(Q_in, E, sizeof(float) * n);
        e = residual_norm(W, Q_dq, LR, n);
        if (bestQ && e < e_best) {
            e_best = e;
            memcpy(bestQ, Q_dq, sizeof(float) * n);
            if (bestIn) memcpy(bestIn, E, sizeof(float) * n);
            memcpy(best1, L1, sizeof(float) * (size_t)out * r);
            memcpy(best2, L2, sizeof(float) * (size_t)r * in);
        }
        if (e > e_prev) break; /* the reference keeps this iterate */
        e_prev = e;
    }
    if (bestQ) {
        memcpy(Q_dq, bestQ, sizeof(float) * n);
        if (bestIn) memcpy(Q_in, bestIn, sizeof(float) * n);
        memcpy(L1, best1, sizeof(float) * (size_t)out * r);
        memcpy(L2, best2, sizeof(float) * (size_t)r * in);
        e = e_best;
    }
    if (st) {
        memset(E, 0, sizeof(float) * n);
        quantize(W, out, in, cfg->bits, quant, LR); /* QLoRA's base: quant(W) alone */
        st->error_q_only = residual_norm(W, LR, E, n);
        st->error = e;
        st->iterations = t > T ? T : t;
        st->quant = quant;
    }
    qa_free(E); qa_free(LR); qa_free(bestQ); qa_free(best1); qa_free(best2); qa_free(bestIn);
    return QA_OK;
}

int qa_lqlora_decompose(const float *W, int out, int in, const lqlora_cfg *cfg, float *Q_dq, float *L1, float *L2,
                        lqlora_stats *st, qa_error *err) {
    return decompose(W, out, in, cfg, Q_dq, L1, L2, NULL, st, err);
}

int64_t qa_lqlora_storage_bits(int out, int in, int bits, lqlora_quant_kind quant) {
    const size_t n = (size_t)out * in;
    if (quant == LQ_QUANT_NF4 || (quant == LQ_QUANT_AUTO && bits == 4)) return 8 * (int64_t)qa_qlora_nf4_tensor_bytes(n);
    return (int64_t)n * bits + 64 * (int64_t)out;
}

/* ---- the bit allocation --------------------------------------------------------------------- */

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) { int64_t t = a % b; a = b; b = t; }
    return a;
}

int qa_lqlora_allocate(int n_layers, int n_configs, const double *cost, const int64_t *storage, int64_t budget, int *choice,
                    double *total_cost, qa_error *err) {
    QA_ASSERT(n_layers >= 1 && n_configs >= 1 && n_configs <= 255);
    int64_t g = 0, cheapest = 0, dearest = 0;
    for (int l = 0; l < n_layers; l++) {
        int64_t lo = -1, hi = -1;
        for (int c = 0; c < n_configs; c++) {
            int64_t m = storage[(size_t)l * n_configs + c];
            if (m < 0) continue;
            g = gcd64(g, m);
            lo = lo < 0 || m < lo ? m : lo;
            hi = m > hi ? m : hi;
        }
        if (lo < 0) return qa_fail(err, QA_ERR_INPUT, "bit allocation: layer %d has no available configuration", l);
        cheapest += lo;
        dearest += hi;
    }
    if (budget < cheapest)
        return qa_fail(err, QA_ERR_INPUT, "bit allocation: budget %lld is smaller than the cheapest configuration (%lld)",
                       (long long)budget, (long long)cheapest);
    if (g == 0) g = 1; /* every storage 0 */
    const int64_t cap = (budget < dearest ? budget : dearest) / g;
    if ((cap + 1) * n_layers > ((int64_t)1 << 27))
        return qa_fail(err, QA_ERR_INPUT, "bit allocation: %lld storage units of %lld bits per layer is too fine for the DP",
                       (long long)cap, (long long)g);
    const size_t W = (size_t)cap + 1;
    /* best[w] = least cost of the layers so far with total storage exactly w units (inf: none) */
    double *best = qa_alloc(sizeof(double) * W), *next = qa_alloc(sizeof(double) * W);
    uint8_t *pick = qa_alloc((size_t)n_layers * W);
    for (size_t w = 0; w < W; w++) best[w] = INFINITY;
    best[0] = 0;
    for (int l = 0; l < n_layers; l++) {
        for (size_t w = 0; w < W; w++) next[w] = INFINITY;
        for (int c = 0; c < n_configs; c++) {
            int64_t m = storage[(size_t)l * n_configs + c];
            if (m < 0) continue;
            size_t u = (size_t)(m / g);
            double e = cost[(size_t)l * n_configs + c];
            for (size_t w = u; w < W; w++)
                if (best[w - u] + e < next[w]) { next[w] = best[w - u] + e; pick[(size_t)l * W + w] = (uint8_t)c; }
        }
        double *tmp = best; best = next; next = tmp;
    }
    size_t w_star = 0;
    for (size_t w = 1; w < W; w++)
        if (best[w] < best[w_star]) w_star = w;
    QA_ASSERT(isfinite(best[w_star])); /* the budget covers the cheapest assignment */
    *total_cost = best[w_star];
    for (int l = n_layers - 1; l >= 0; l--) {
        int c = pick[(size_t)l * W + w_star];
        choice[l] = c;
        w_star -= (size_t)(storage[(size_t)l * n_configs + c] / g);
    }
    qa_free(best); qa_free(next); qa_free(pick);
    return QA_OK;
}

/* ---- the method ----------------------------------------------------------------------------- */

typedef struct {
    int init;              /* lqlora_init_kind */
    int quant;             /* lqlora_quant_kind */
    int iters;
    int stop;              /* 0 reference, 1 best */
    int bits;              /* 0 = the experiment's W bits */
    int svd;               /* lqlora_svd_kind */
} lqlora_options;

typedef struct {
    int in, out, rank, bits, w_bits; /* bits of Q; the experiment's W bits (the PTQ of the merge) */
    float scale;
    lqlora_quant_kind quant;
    /* the frozen quantized part Q as stored: NF4 + DQ, or N-bit codes with an FP32 scale and zero
     * point per row (frozen_codes.h); Q_dq = its dequantization, the products' f32 operand */
    qlora_nf4_tensor nf4;
    qa_frozen_codes codes;
    float *q_delta, *q_zero;
    float *Q_dq, *bias;
    float init_error[2];   /* ||W - Q - L1 L2||_F, ||W - quant(W)||_F */
    double w_norm2;        /* ||W||^2, for the relative init_error stat */
    int32_t iterations;
    qa_lora_adapter ad;
} lqlora_state;

/* Q as stored, from the quantizer input that gave it (the same encoders as quantize()). */
static void store_quantized(lqlora_state *s, const float *Q_in) {
    const size_t n = (size_t)s->in * s->out;
    if (s->quant == LQ_QUANT_NF4) {
        qa_qlora_nf4_tensor_encode(&s->nf4, Q_in, n);
        return;
    }
    s->q_delta = qa_alloc(sizeof(float) * s->out);
    s->q_zero = qa_alloc(sizeof(float) * s->out);
    qa_quant_search_rows(Q_in, s->out, s->in, s->bits, s->q_delta, s->q_zero);
    int32_t *q = qa_alloc(sizeof(int32_t) * n); /* q - z, then q = (q - z) + z in 0 .. 2^N - 1 */
    qa_quant_codes_rows(q, Q_in, s->out, s->in, s->bits, s->q_delta, s->q_zero);
    for (int r = 0; r < s->out; r++)
        for (int c = 0; c < s->in; c++) q[(size_t)r * s->in + c] += (int32_t)s->q_zero[r];
    qa_frozen_codes_alloc(&s->codes, n, s->bits);
    qa_frozen_codes_pack(&s->codes, q);
    qa_free(q);
}

static int lqlora_init(void *state, const qa_layer_init *li, qa_error *err) {
    lqlora_state *s = state;
    const qa_method_cfg *c = li->cfg;
    lqlora_options opt;
    qa_method_options_of(&qa_method_lqlora, c, &opt);
    const int bits = opt.bits ? opt.bits : c->w_bits;
    if (bits < 1 || bits > 8)
        return qa_fail(err, QA_ERR_INPUT, "lq-lora: weight bits %d unsupported (allowed 1..8; it needs a quantized base) for %s",
                       bits, li->layer_name);
    lqlora_cfg cfg = {.rank = c->rank, .bits = bits, .init = (lqlora_init_kind)opt.init, .quant = (lqlora_quant_kind)opt.quant,
                      .iters = opt.iters, .keep_best = opt.stop, .svd = (lqlora_svd_kind)opt.svd,
                      .seed = qa_rng_below(li->rng, 1ul << 31)};
    s->in = li->in;
    s->out = li->out;
    s->rank = c->rank;
    s->bits = bits;
    s->w_bits = c->w_bits;
    s->scale = c->lora_scale;
    const size_t n = (size_t)s->in * s->out;
    float *L1 = qa_alloc(sizeof(float) * (size_t)s->out * (c->rank > 0 ? c->rank : 1));
    float *L2 = qa_alloc(sizeof(float) * (size_t)(c->rank > 0 ? c->rank : 1) * s->in);
    s->Q_dq = qa_alloc(sizeof(float) * n);
    float *Q_in = qa_alloc(sizeof(float) * n); /* Q = quant(Q_in): the stored form is encoded from it */
    lqlora_stats st;
    int rc = decompose(li->W, s->out, s->in, &cfg, s->Q_dq, L1, L2, Q_in, &st, err);
    if (rc) {
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), " for %s", li->layer_name);
        qa_free(L1); qa_free(L2); qa_free(Q_in); qa_free(s->Q_dq); s->Q_dq = NULL;
        return rc;
    }
    s->quant = st.quant;
    store_quantized(s, Q_in);
    qa_free(Q_in);
    s->init_error[0] = (float)st.error;
    s->init_error[1] = (float)st.error_q_only;
    for (size_t i = 0; i < n; i++) s->w_norm2 += (double)li->W[i] * li->W[i];
    s->iterations = st.iterations;
    s->bias = qa_alloc(sizeof(float) * s->out);
    if (li->bias) memcpy(s->bias, li->bias, sizeof(float) * s->out);
    qa_lora_adapter_init(&s->ad, s->in, s->out, s->rank, s->scale, li->rng);
    /* s B A = L1 L2: B = L1 / s, A = L2 */
    memcpy(s->ad.A, L2, sizeof(float) * (size_t)s->rank * s->in);
    for (size_t i = 0; i < (size_t)s->out * s->rank; i++) s->ad.B[i] = L1[i] / s->scale;
    qa_free(L1);
    qa_free(L2);
    return QA_OK;
}

void qa_lqlora_stored_decode(const void *state, float *Q) {
    const lqlora_state *s = state;
    if (s->quant == LQ_QUANT_NF4) {
        qa_qlora_nf4_tensor_decode(&s->nf4, Q);
        return;
    }
    for (int r = 0; r < s->out; r++)
        for (int c = 0; c < s->in; c++) {
            size_t k = (size_t)r * s->in + c;
            Q[k] = s->q_delta[r] * ((float)qa_frozen_codes_get(&s->codes, k) - s->q_zero[r]);
        }
}

static void lqlora_forward(void *state, const float *x, float *y, int M) {
    lqlora_state *s = state;
    qa_linear_forward(y, x, s->Q_dq, s->bias, M, s->in, s->out); /* y = x Q^T + b */
    qa_lora_adapter_forward(&s->ad, x, y, M);                     /* y += s (x A^T) B^T */
}

static void lqlora_backward(void *state, const float *dy, float *dx, int M) {
    lqlora_state *s = state;
    qa_lora_adapter_backward(&s->ad, dy, dx, M);
    if (dx) qa_matmul(M, s->in, s->out, dy, 0, s->Q_dq, 0, dx, 1, NULL); /* dx += dy Q */
}

static int lqlora_params(void *state, qa_param *out, int max) {
    lqlora_state *s = state;
    return qa_lora_adapter_params(&s->ad, out, max);
}

static double q_bits_per_weight(const lqlora_state *s) {
    return (double)qa_lqlora_storage_bits(s->out, s->in, s->bits, s->quant) / ((double)s->in * s->out);
}

static int lqlora_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    lqlora_state *s = state;
    const size_t n = (size_t)s->in * s->out, r = (size_t)s->rank;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    d->w_fp = qa_alloc(sizeof(float) * n);
    qa_lora_adapter_merge(&s->ad, s->Q_dq, d->w_fp); /* W' = Q + s B A */
    d->needs_ptq = s->w_bits > 0; /* the harness's PTQ at the experiment's W bits */
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = s->w_bits > 0 ? s->w_bits : 32;
    snprintf(d->note, sizeof d->note, "quant %s, %d bits, %d init iterations", s->quant == LQ_QUANT_NF4 ? "nf4" : "int",
             s->bits, (int)s->iterations);
    /* "q+lr": the quantized part as stored plus the factors in FP16 */
    float *A16 = qa_alloc(sizeof(float) * r * s->in), *B16 = qa_alloc(sizeof(float) * s->out * r);
    for (size_t i = 0; i < r * s->in; i++) A16[i] = qa_qalora_half_to_float(qa_qalora_half_from_float(s->ad.A[i]));
    for (size_t i = 0; i < s->out * r; i++) B16[i] = qa_qalora_half_to_float(qa_qalora_half_from_float(s->ad.B[i]));
    d->extra_w[0] = qa_alloc(sizeof(float) * n);
    qa_matmul(s->out, s->in, s->rank, B16, 0, A16, 0, d->extra_w[0], 0, NULL);
    for (size_t i = 0; i < n; i++) d->extra_w[0][i] = s->Q_dq[i] + s->scale * d->extra_w[0][i];
    snprintf(d->extra_name[0], sizeof d->extra_name[0], "q+lr");
    d->extra_bits[0] = q_bits_per_weight(s) + 16.0 * (double)r * (s->in + s->out) / (double)n;
    d->n_extra = 1;
    qa_free(A16);
    qa_free(B16);
    if (s->quant == LQ_QUANT_NF4) { /* "nf4": W' re-quantized to NF4 + DQ */
        d->extra_w[1] = qa_alloc(sizeof(float) * n);
        quantize(d->w_fp, s->out, s->in, 4, LQ_QUANT_NF4, d->extra_w[1]);
        snprintf(d->extra_name[1], sizeof d->extra_name[1], "nf4");
        d->extra_bits[1] = qa_qlora_nf4_bits_per_weight(n);
        d->n_extra = 2;
    }
    /* the start's distance from the pre-trained weight (literature.claims L3): Q + L1 L2 */
    qa_deployed_add_stat(d, "init_error", (double)s->init_error[0] * s->init_error[0], s->w_norm2);
    return QA_OK;
}

static void lqlora_bytes(const void *state, qa_bytes *b) {
    const lqlora_state *s = state;
    size_t n = (size_t)s->in * s->out, lr = (size_t)s->rank * (s->in + s->out);
    size_t bias_bytes = s->out * sizeof(float);
    /* held: Q as stored (NF4 + DQ; or codes in frozen_codes' storage + FP32 scale and zero per
     * row) + bias; the f32 Q_dq the products read is workspace */
    if (s->quant == LQ_QUANT_NF4) b->frozen = qa_qlora_nf4_tensor_bytes(n) + bias_bytes;
    else b->frozen = qa_frozen_codes_bytes(n, s->bits) + 2 * s->out * sizeof(float) + bias_bytes;
    b->workspace = n * sizeof(float);
    b->trainable = lr * sizeof(float);
    b->gradients = lr * sizeof(float);
    b->optimizer = 2 * lr * sizeof(float);
    /* the requantized merge: N-bit codes + FP32 scale and zero per row, + bias */
    b->deployed = (n * (s->w_bits > 0 ? s->w_bits : 32) + 7) / 8 + 2 * s->out * sizeof(float) + bias_bytes;
}

static int lqlora_inspect(const void *state, qa_named_tensor *o, int max) {
    const lqlora_state *s = state;
    qa_named_tensor all[] = {
        {"W_dq", s->Q_dq, NULL, 2, {s->out, s->in}},
        {"init_error", s->init_error, NULL, 1, {2, 1}}, /* ||W - Q - L1 L2||_F, ||W - quant(W)||_F */
        {"init_iterations", NULL, &s->iterations, 1, {1, 1}},
    };
    int k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && k < max; i++) o[k++] = all[i];
    return k;
}

static void lqlora_destroy(void *state) {
    lqlora_state *s = state;
    qa_lora_adapter_free(&s->ad);
    qa_qlora_nf4_tensor_free(&s->nf4);
    qa_frozen_codes_free(&s->codes);
    qa_free(s->q_delta);
    qa_free(s->q_zero);
    qa_free(s->Q_dq);
    qa_free(s->bias);
}

_Static_assert(LQ_QUANT_AUTO == 0 && LQ_QUANT_INT == 1 && LQ_QUANT_NF4 == 2, "lq_quant values are lqlora_quant_kind");
_Static_assert(LQ_SVD_AUTO == 0 && LQ_SVD_EXACT == 1 && LQ_SVD_RANDOMIZED == 2, "lq_svd values are lqlora_svd_kind");
_Static_assert(LQ_INIT_LQLORA == 0 && LQ_INIT_LOFTQ == 1, "lq_init values are lqlora_init_kind");
static const qa_option lqlora_option_table[] = {
    {"lq_init", QA_OPT_ENUM, "lq-lora", 0, 0, "lq-lora|loftq",
     "initialisation: lq-lora (SVD first, stop when the error rises) or loftq (quantize first, fixed iterations)", 1, "",
     offsetof(lqlora_options, init)},
    {"lq_quant", QA_OPT_ENUM, "auto", 0, 0, "auto|int|nf4", "the quantized part: auto (nf4 at 4 bits, int otherwise), int, nf4",
     1, "", offsetof(lqlora_options, quant)},
    {"lq_iters", QA_OPT_INT, "0", 0, 1000, NULL, "iterations T of the initialisation (0: lq-lora 20, loftq 5; the reference lq-lora 100)", 1, "T",
     offsetof(lqlora_options, iters)},
    {"lq_stop", QA_OPT_ENUM, "reference", 0, 0, "reference|best",
     "lq-lora's early stop keeps the iterate whose error rose (reference) or the best one", 0, "",
     offsetof(lqlora_options, stop)},
    {"lq_svd", QA_OPT_ENUM, "auto", 0, 0, "auto|exact|randomized",
     "truncated SVD: auto (exact up to min(in, out) = 256, randomized above), exact, randomized (the reference's)", 0, "",
     offsetof(lqlora_options, svd)},
    {"lq_bits", QA_OPT_INT, "0", 0, 8, NULL, "bits of the quantized part (0: the experiment's W bits; a bit allocation's answer)",
     1, "q", offsetof(lqlora_options, bits)},
};

const qa_method qa_method_lqlora = {
    .name = "lq-lora",
    .summary = "LQ-LoRA: factors from the low-rank plus quantized decomposition W ~ Q + L1 L2 (or LoftQ's), trained over "
               "frozen Q; deploys the requantized merge (INT PTQ), Q + FP16 factors (\"q+lr\"), NF4 re-quantization",
    .version = 1,
    .reference_lr = QA_ADAPTER_REFERENCE_LR, /* see registry.h */
    .state_size = sizeof(lqlora_state),
    .init = lqlora_init,
    .forward = lqlora_forward,
    .backward = lqlora_backward,
    .params = lqlora_params,
    .merge = lqlora_merge,
    .bytes = lqlora_bytes,
    .destroy = lqlora_destroy,
    .inspect = lqlora_inspect,
    .needs_weight_bits = 1,
    .flags = QA_METHOD_ROW_CODES_DEPLOY,
    .options = lqlora_option_table,
    .n_options = sizeof lqlora_option_table / sizeof lqlora_option_table[0],
    .options_size = sizeof(lqlora_options),
};
