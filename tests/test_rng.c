/* The counter-based generator (harness/rng.h): SplitMix64's published outputs, values that do not
 * depend on the order they are asked for, and the moments of the distributions built on it. */
#include <criterion/criterion.h>
#include <math.h>

#include "common.h"
#include "harness/rng.h"

/* SplitMix64 seeded with 0 (the reference implementation, Vigna's splitmix64.c): its first three
 * outputs. Counter i of key 0 is the generator's (i + 1)-th output. */
Test(rng, counter_matches_splitmix64_reference_outputs) {
    cr_assert_eq(qa_counter_u64(0, 0), 0xE220A8397B1DCDAFull);
    cr_assert_eq(qa_counter_u64(0, 1), 0x6E789E6AA1B965F4ull);
    cr_assert_eq(qa_counter_u64(0, 2), 0x06C45D188009454Full);
}

Test(rng, counter_values_do_not_depend_on_order_or_other_keys) {
    double fwd[64], back[64];
    for (int i = 0; i < 64; i++) fwd[i] = qa_counter_laplace(1234, (uint64_t)i, 0.5);
    for (int i = 63; i >= 0; i--) back[i] = qa_counter_laplace(1234, (uint64_t)i, 0.5);
    int differ_from_other_key = 0;
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(fwd[i], back[i]);
        differ_from_other_key += fwd[i] != qa_counter_laplace(1235, (uint64_t)i, 0.5);
    }
    cr_assert_eq(differ_from_other_key, 64);
}

/* Laplace(0, b): mean 0, E|x| = b, var = 2 b^2; uniform: in (0, 1), mean 1/2, var 1/12; normal:
 * mean 0, var 1. n = 200000: the bounds are > 5 standard errors of each estimate. */
Test(rng, counter_distributions_have_their_moments) {
    const int n = 200000;
    double lap = 0, lap_abs = 0, lap2 = 0, u = 0, u2 = 0, z = 0, z2 = 0, umin = 1, umax = 0;
    for (int i = 0; i < n; i++) {
        double l = qa_counter_laplace(7, (uint64_t)i, 0.5), v = qa_counter_uniform(8, (uint64_t)i),
               g = qa_counter_normal(9, (uint64_t)i);
        lap += l; lap_abs += fabs(l); lap2 += l * l;
        u += v; u2 += v * v; umin = v < umin ? v : umin; umax = v > umax ? v : umax;
        z += g; z2 += g * g;
    }
    cr_assert_lt(fabs(lap / n), 0.008);
    cr_assert_lt(fabs(lap_abs / n - 0.5), 0.006);
    cr_assert_lt(fabs(lap2 / n - 0.5), 0.02);
    cr_assert(umin > 0 && umax < 1);
    cr_assert_lt(fabs(u / n - 0.5), 0.004);
    cr_assert_lt(fabs(u2 / n - u / n * u / n - 1.0 / 12), 0.001);
    cr_assert_lt(fabs(z / n), 0.012);
    cr_assert_lt(fabs(z2 / n - 1), 0.02);
}
