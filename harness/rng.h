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
uint64_t qa_rng_u64(qa_rng *r);                /* 64 uniform bits (two 32-bit draws) */

/* Counter-based numbers: value number `index` of the stream `key`, computed alone, so any element
 * of a large random matrix (or any tile of it) can be regenerated on demand instead of stored.
 * The generator is SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014) read as a counter-based function: output i is its finalizer applied to
 * key + (i + 1) * 0x9E3779B97F4A7C15. */
uint64_t qa_counter_u64(uint64_t key, uint64_t index);
double qa_counter_uniform(uint64_t key, uint64_t index);              /* (0, 1), never 0 or 1 */
double qa_counter_laplace(uint64_t key, uint64_t index, double scale); /* inverse CDF of one uniform */
double qa_counter_normal(uint64_t key, uint64_t index);                /* Box-Muller on numbers 2i, 2i+1 */

/* Numbers index0 .. index0 + n - 1 of the stream `key` as floats, bit for bit
 * (float)qa_counter_laplace(key, index0 + j, scale), at a fraction of its cost: log1p runs as a
 * vectorizable polynomial with an error far below float resolution, and the few numbers whose
 * double value lies too near a rounding boundary of float to decide are computed by
 * qa_counter_laplace itself. */
void qa_counter_laplace_f32(uint64_t key, uint64_t index0, size_t n, double scale, float *out);

#endif
