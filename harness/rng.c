#include "harness/rng.h"

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
