/* Seeded random numbers (GSL mt19937). One generator per purpose, seeded by qa_seed_for(). */
#ifndef QA_RNG_H
#define QA_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct qa_rng qa_rng;

qa_rng *qa_rng_new(uint64_t seed);
void qa_rng_free(qa_rng *r);
double qa_rng_uniform(qa_rng *r);              /* [0, 1) */
double qa_rng_normal(qa_rng *r);               /* N(0, 1) */
double qa_rng_laplace(qa_rng *r, double scale);
unsigned long qa_rng_below(qa_rng *r, unsigned long n); /* uniform integer in [0, n) */
void qa_rng_fill_normal(qa_rng *r, float *x, size_t n, float std);
void qa_rng_fill_uniform(qa_rng *r, float *x, size_t n, float lo, float hi);
void qa_rng_shuffle(qa_rng *r, int *idx, size_t n);

#endif
