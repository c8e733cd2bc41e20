#include "harness/quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "harness/util.h"

static float fake_quant(float v, float delta, float zero, float levels_max) {
    float q = nearbyintf(v / delta) + zero;
    q = q < 0.f ? 0.f : (q > levels_max ? levels_max : q);
    return delta * (q - zero);
}

/* One candidate's search score: the mean of |fake_quant(x) - x|^2.4, summed in double. Alone on
 * its thread the sum runs in index order and stops once its partial mean passes `bound` (the
 * best score so far), or reaches it where a tie would not win (tie_wins 0): the terms are >= 0
 * and rounding is monotone, so the full mean could not end below, and the choice is the full
 * search's, bit for bit, for a fraction of the powf calls (most of a PTQ calibration's time).
 * A large tensor with threads to spare is summed by all of them, in full, as before: an OpenMP
 * reduction, whose order (and so its last bits) is the team's; sweeps run one thread a process. */
static float candidate_score(const float *x, size_t n, float delta, float zero, float lmax, float bound, int tie_wins) {
    double acc = 0.0;
    if (n > 65536 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
        #pragma omp parallel for reduction(+ : acc) schedule(static)
        for (size_t j = 0; j < n; j++) acc += (double)powf(fabsf(fake_quant(x[j], delta, zero, lmax) - x[j]), 2.4f);
        return (float)(acc / (double)n);
    }
    enum { CHECK_EVERY = 32 }; /* a division per 32 powf calls: rows of 128 stop early too */
    for (size_t j0 = 0; j0 < n; j0 += CHECK_EVERY) {
        size_t j1 = n - j0 < CHECK_EVERY ? n : j0 + CHECK_EVERY;
        for (size_t j = j0; j < j1; j++) acc += (double)powf(fabsf(fake_quant(x[j], delta, zero, lmax) - x[j]), 2.4f);
        float partial = (float)(acc / (double)n);
        if (partial > bound || (partial == bound && !tie_wins)) break;
    }
    return (float)(acc / (double)n);
}

void qa_quant_search(const float *x, size_t n, int bits, float *delta_out, float *zero_out) {
    QA_ASSERT(n > 0); /* callers quantize a non-empty row or tensor: x[0] starts the range */
    float lmax = (float)((1 << bits) - 1);
    float m = x[0], M = x[0];
    for (size_t i = 1; i < n; i++) {
        m = x[i] < m ? x[i] : m;
        M = x[i] > M ? x[i] : M;
    }
    if (M == m) { /* documented fallback: the reference yields NaN here. delta = |c|, z = -sign(c)
                   * puts c exactly on code 0: delta (0 - z) = c. */
        *delta_out = fabsf(m) > 0.f ? fabsf(m) : 1.0f;
        *zero_out = m > 0.f ? -1.0f : (m < 0.f ? 1.0f : 0.0f);
        return;
    }
    /* The choice is the first strictly best of candidates 0..79. They are scored out of that
     * order, every 8th first and then outward from the best of those, so that a good bound stops
     * most sums early; a candidate before the best so far must beat it or tie, one after it must
     * beat it strictly, which keeps the first best whatever the order. */
    int order[80], n_order = 0;
    for (int i = 0; i < 80; i += 8) order[n_order++] = i;
    float best = INFINITY, best_delta = 0.f, best_zero = 0.f;
    int best_i = -1;
    for (int k = 0; k < 80; k++) {
        if (k == n_order) { /* the coarse pass is done: the rest, nearest the best first (from 0
                             * when none scored, as with a NaN in x) */
            const int centre = best_i < 0 ? 0 : best_i;
            for (int dist = 1; dist < 80; dist++)
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                    int i = centre + sgn * dist;
                    if (i >= 0 && i < 80 && i % 8) order[n_order++] = i;
                }
        }
        int i = order[k];
        float shrink = 1.0f - 0.01f * (float)i;
        float mi = m * shrink, Mi = M * shrink;
        float delta = (Mi - mi) / lmax;
        float zero = nearbyintf(-mi / delta);
        float score = candidate_score(x, n, delta, zero, lmax, best, i < best_i);
        if (score < best || (score == best && i < best_i)) { best = score; best_i = i; best_delta = delta; best_zero = zero; }
    }
    *delta_out = best_delta;
    *zero_out = best_zero;
}

void qa_quant_search_rows(const float *W, int rows, int cols, int bits, float *delta, float *zero) {
    #pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < rows; r++) qa_quant_search(W + (size_t)r * cols, (size_t)cols, bits, &delta[r], &zero[r]);
}

void qa_quant_codes_rows(int32_t *codes, const float *W, int rows, int cols, int bits,
                      const float *delta, const float *zero) {
    float lmax = (float)((1 << bits) - 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float q = nearbyintf(W[(size_t)r * cols + c] / delta[r]) + zero[r];
            q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
            codes[(size_t)r * cols + c] = (int32_t)(q - zero[r]);
        }
}

void qa_quant_fake_rows(float *Wq, const float *W, int rows, int cols, int bits, const float *delta,
                     const float *zero) {
    float lmax = (float)((1 << bits) - 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            Wq[(size_t)r * cols + c] = fake_quant(W[(size_t)r * cols + c], delta[r], zero[r], lmax);
}

void qa_actq_forward(qa_actq *q, float *xhat, const float *x, size_t n) {
    if (!q->calibrated) {
        qa_quant_search(x, n, q->bits, &q->delta, &q->zero);
        q->calibrated = 1;
    }
    float lmax = (float)((1 << q->bits) - 1), delta = q->delta, zero = q->zero;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) xhat[i] = fake_quant(x[i], delta, zero, lmax);
}

void qa_actq_backward(const qa_actq *q, float *dx, const float *dxhat, const float *x, size_t n) {
    float lmax = (float)((1 << q->bits) - 1), delta = q->delta, zero = q->zero;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] / delta) + zero;
        if (v >= 0.f && v <= lmax) dx[i] += dxhat[i];
    }
}

/* ---- ICQ (information-calibrated quantization, integer variant): quant.h ---- */

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* torch.linspace(start, end, steps) in float32 (its CPU kernel): step = (end - start) / (steps - 1);
 * the first half counts up from start, the second half down from end. */
static float linspace_at(float start, float end, int steps, int idx) {
    float step = (end - start) / (float)(steps - 1);
    return idx < steps / 2 ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
}

void qa_quant_icq_candidates(const quant_icq_cfg *cfg, float *p) {
    const int n = cfg->tau_n;
    const float right = (float)(1.0 + (double)cfg->tau_range), left = (float)(1.0 - (double)cfg->tau_range);
    p[0] = 1.0f;
    for (int k = 1; k <= n; k++) p[k] = linspace_at(1.0f, right, n + 1, k);
    for (int k = 1; k <= n; k++) p[n + k] = linspace_at(1.0f, left, n + 1, k);
}

float qa_quant_icq_entropy(const float *x, size_t n, int bits, float scale, float zero, const quant_icq_cfg *cfg) {
    QA_ASSERT(bits >= 1 && bits <= 8);
    const int levels = 1 << bits;
    const float lmax = (float)(levels - 1);
    size_t count[256] = {0};
    for (size_t j = 0; j < n; j++) {
        float q = nearbyintf(x[j] / scale) + zero;
        q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
        int code = (int)q;
        if (cfg->count_int8) code = (int)(int8_t)(uint8_t)code; /* the reference's .char(): 128..255 wrap */
        if (code >= 0 && code < levels) count[code]++;
    }
    /* The entropy depends only on the multiset of counts: sum it over the counts in sorted
     * order (in double, rounded to float once), so that two histograms that are permutations of
     * each other score exactly the same and the first candidate is kept, as the reference keeps
     * it (its float32 sum over codes came out equal for such candidates in its fixtures). */
    size_t sorted[256];
    int k = 0;
    for (int v = 0; v < levels; v++)
        if (count[v]) sorted[k++] = count[v]; /* 0 log 0 = 0 (the reference turns its NaN into 0) */
    qsort(sorted, (size_t)k, sizeof sorted[0], cmp_size);
    double h = 0.0;
    for (int i = 0; i < k; i++) {
        float f = (float)sorted[i] / (float)n;
        h += -(double)f * log2((double)f);
    }
    return (float)h;
}

void qa_quant_icq_search(const float *x, size_t n, int bits, const quant_icq_cfg *cfg, float *scale_out, float *zero_out) {
    const float lmax = (float)((1 << bits) - 1);
    float xmin = 0.0f, xmax = 0.0f;
    for (size_t j = 0; j < n; j++) {
        xmin = x[j] < xmin ? x[j] : xmin;
        xmax = x[j] > xmax ? x[j] : xmax;
    }
    if (cfg->symmetric) {
        xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
        if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) { xmin = -1.0f; xmax = 1.0f; }
    const int n_p = 2 * cfg->tau_n + 1;
    float p[2 * 1000 + 1];
    QA_ASSERT(cfg->tau_n >= 1 && cfg->tau_n <= 1000);
    qa_quant_icq_candidates(cfg, p);
    const float zero_sym = (lmax + 1.0f) / 2.0f;
    float best = INFINITY, best_scale = 0.0f, best_zero = 0.0f;
    for (int k = 0; k < n_p; k++) {
        float xmin1 = p[k] * xmin, xmax1 = p[k] * xmax;
        float scale = (xmax1 - xmin1) / lmax;
        float zero = cfg->symmetric ? zero_sym : nearbyintf(-xmin1 / scale);
        float err = -qa_quant_icq_entropy(x, n, bits, scale, zero, cfg);
        if (err < best) { best = err; best_scale = scale; best_zero = zero; }
    }
    *scale_out = best_scale;
    *zero_out = best_zero;
}

void qa_quant_icq_rows(const float *W, int rows, int cols, int bits, const quant_icq_cfg *cfg, float *scale, float *zero) {
    #pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < rows; r++) qa_quant_icq_search(W + (size_t)r * cols, (size_t)cols, bits, cfg, &scale[r], &zero[r]);
}
