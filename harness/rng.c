#include "harness/rng.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "harness/util.h"

struct qa_rng {
    gsl_rng *g;
};

qa_rng *qa_rng_new(uint64_t seed) {
    qa_rng *r = qa_alloc(sizeof *r);
    r->g = gsl_rng_alloc(gsl_rng_mt19937);
    QA_ASSERT(r->g);
    gsl_rng_set(r->g, (unsigned long)seed);
    return r;
}

void qa_rng_free(qa_rng *r) {
    if (!r) return;
    gsl_rng_free(r->g);
    qa_free(r);
}

double qa_rng_uniform(qa_rng *r) { return gsl_rng_uniform(r->g); }
double qa_rng_normal(qa_rng *r) { return gsl_ran_gaussian_ziggurat(r->g, 1.0); }
double qa_rng_laplace(qa_rng *r, double scale) { return gsl_ran_laplace(r->g, scale); }
unsigned long qa_rng_below(qa_rng *r, unsigned long n) { return gsl_rng_uniform_int(r->g, n); }

void qa_rng_fill_normal(qa_rng *r, float *x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * gsl_ran_gaussian_ziggurat(r->g, 1.0));
}

void qa_rng_fill_uniform(qa_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * gsl_rng_uniform(r->g));
}

void qa_rng_shuffle(qa_rng *r, int *idx, size_t n) {
    gsl_ran_shuffle(r->g, idx, n, sizeof *idx);
}

uint64_t qa_rng_u64(qa_rng *r) {
    uint64_t hi = gsl_rng_get(r->g) & 0xffffffffu, lo = gsl_rng_get(r->g) & 0xffffffffu; /* mt19937: 32 bits a draw */
    return hi << 32 | lo;
}

/* SplitMix64's output `index` of stream `key`, inline so that the batched generators vectorize */
static inline uint64_t counter_mix(uint64_t key, uint64_t index) {
    uint64_t z = key + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t qa_counter_u64(uint64_t key, uint64_t index) { return counter_mix(key, index); }

double qa_counter_uniform(uint64_t key, uint64_t index) {
    return ((double)(qa_counter_u64(key, index) >> 11) + 0.5) * 0x1.0p-53; /* 53-bit midpoints: 0 < u < 1 */
}

double qa_counter_laplace(uint64_t key, uint64_t index, double scale) {
    double u = qa_counter_uniform(key, index) - 0.5; /* (-0.5, 0.5) */
    return u < 0 ? scale * log1p(2.0 * u) : -scale * log1p(-2.0 * u);
}

double qa_counter_normal(uint64_t key, uint64_t index) {
    double u1 = qa_counter_uniform(key, 2 * index), u2 = qa_counter_uniform(key, 2 * index + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* log1p(a) for a in (-1, 0], relative error below 2^-50: 1 + a = s + c exactly (Fast2Sum, |a| <= 1),
 * s = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(z), z = (m - 1) / (m + 1), |z| <= 0.172,
 * by its series to z^21 (remainder below 2^-54), and log(1 + a) = e ln 2 + log m + c, where c
 * stands for c / s: c != 0 only for s in [1/2, 1], where |c| <= 2^-54 and |c / s - c| <= 2^-54 |log s|. */
static inline double log1p_nonpositive(double a) {
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10; /* ln2_hi: 32 bits */
    double s = 1.0 + a, c = a - (s - 1.0);
    uint64_t bits;
    memcpy(&bits, &s, sizeof bits);
    int64_t e = (int64_t)(bits >> 52) - 1023;
    uint64_t mbits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &mbits, sizeof m);
    int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1 : e;
    double f = m - 1.0, z = f / (2.0 + f), w = z * z;
    double p = 1.0 / 21;
    static const double inv_odd[10] = {1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0};
    for (int i = 0; i < 10; i++) p = p * w + inv_odd[i];
    double de = (double)e;
    return de * ln2_hi + (2.0 * z * p + (de * ln2_lo + c));
}

void qa_counter_laplace_f32(uint64_t key, uint64_t index0, size_t n, double scale, float *out) {
    enum { BLOCK = 64 };
    for (size_t b0 = 0; b0 < n; b0 += BLOCK) {
        const size_t nb = n - b0 < BLOCK ? n - b0 : BLOCK;
        int undecided[BLOCK];
        for (size_t j = 0; j < nb; j++) { /* vectorizable: no calls, no branches */
            double u = ((double)(int64_t)(counter_mix(key, index0 + b0 + j) >> 11) + 0.5) * 0x1.0p-53 - 0.5;
            double sc = u < 0 ? scale : -scale, a = u < 0 ? 2.0 * u : -2.0 * u;
            double y = log1p_nonpositive(a), err = fabs(y) * 0x1.0p-40;
            float v = (float)(sc * y), lo = (float)(sc * (y - err)), hi = (float)(sc * (y + err));
            out[b0 + j] = v;
            undecided[j] = lo != v || hi != v || y == 0.0; /* y = 0: the sign of zero */
        }
        for (size_t j = 0; j < nb; j++)
            if (undecided[j]) out[b0 + j] = (float)qa_counter_laplace(key, index0 + b0 + j, scale);
    }
}
