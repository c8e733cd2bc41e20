#include "harness/rng.h"

#include <math.h>

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

uint64_t qa_counter_u64(uint64_t key, uint64_t index) {
    uint64_t z = key + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

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
