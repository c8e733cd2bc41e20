/* Uniform affine quantizer (methods/README.md, section 0): hand-computed cases and a naive double
 * implementation of the 80-candidate search as the reference. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "harness/quant.h"

/* The spec, literally, in double. Returns the chosen candidate index; *gap is the relative score
 * gap between the best and the runner-up (to skip near-ties that float rounding may flip). */
static int ref_search(const float *x, int n, int bits, double *delta, double *zero, double *gap) {
    double lmax = (double)((1 << bits) - 1);
    double m = x[0], M = x[0];
    for (int j = 1; j < n; j++) {
        m = x[j] < m ? x[j] : m;
        M = x[j] > M ? x[j] : M;
    }
    double best = INFINITY, second = INFINITY;
    int bi = -1;
    for (int i = 0; i < 80; i++) {
        double mi = m * (1 - 0.01 * i), Mi = M * (1 - 0.01 * i);
        double d = (Mi - mi) / lmax;
        double z = nearbyint(-mi / d);
        double score = 0;
        for (int j = 0; j < n; j++) {
            double q = nearbyint(x[j] / d) + z;
            q = q < 0 ? 0 : (q > lmax ? lmax : q);
            score += pow(fabs(d * (q - z) - x[j]), 2.4);
        }
        score /= n;
        if (score < best) { /* first strictly best */
            second = best;
            best = score;
            bi = i;
            *delta = d;
            *zero = z;
        } else if (score < second) {
            second = score;
        }
    }
    *gap = (second - best) / (second > 0 ? second : 1);
    return bi;
}

Test(quant, grid_row_by_hand_two_bits) {
    /* x on the i = 0 grid: m = -1, M = 2, L = 4: delta_0 = 3/3 = 1, z_0 = round(1/1) = 1, every value
     * exact, score_0 = 0; no later candidate can be strictly better, so i = 0 is kept. */
    float x[4] = {-1.f, 0.f, 1.f, 2.f}, delta, zero;
    qa_quant_search(x, 4, 2, &delta, &zero);
    cr_assert_eq(delta, 1.0f, "delta %g, want 1", delta);
    cr_assert_eq(zero, 1.0f, "zero %g, want 1", zero);
    float xq[4];
    qa_quant_fake_rows(xq, x, 1, 4, 2, &delta, &zero);
    for (int i = 0; i < 4; i++) cr_assert_eq(xq[i], x[i], "exact grid value %g -> %g", x[i], xq[i]);
}

Test(quant, hand_row_i0_candidate_and_search_choice) {
    /* x = {-1, -0.2, 0.4, 2}, 2 bits. Candidate i = 0 by hand: delta = 1, z = 1,
     * q = clamp(round(x) + 1, 0, 3) = {0, 1, 1, 3} -> xhat = {-1, 0, 0, 2},
     * score_0 = (0.2^2.4 + 0.4^2.4) / 4. The chosen candidate must be the reference's, and its score
     * no worse than score_0. */
    float x[4] = {-1.f, -0.2f, 0.4f, 2.f}, delta, zero;
    double rd, rz, gap;
    int bi = ref_search(x, 4, 2, &rd, &rz, &gap);
    qa_quant_search(x, 4, 2, &delta, &zero);
    float xq[4];
    qa_quant_fake_rows(xq, x, 1, 4, 2, &delta, &zero);
    double s = 0, s0 = (pow(0.2, 2.4) + pow(0.4, 2.4)) / 4;
    for (int i = 0; i < 4; i++) s += pow(fabs((double)xq[i] - x[i]), 2.4);
    s /= 4;
    cr_assert(s <= s0 * (1 + 1e-6), "chosen score %g worse than the i=0 score %g", s, s0);
    cr_assert_float_eq(delta, rd, 1e-6 * rd, "delta %.9g vs reference %.9g (candidate %d)", delta, rd, bi);
    cr_assert_eq(zero, (float)rz, "zero %g vs reference %g (candidate %d)", zero, rz, bi);
    /* the reference's i = 0 score matches the hand value, so the reference itself is sane */
    double d0, z0, g0;
    float xg[4] = {-1.f, 0.f, 1.f, 2.f};
    cr_assert_eq(ref_search(xg, 4, 2, &d0, &z0, &g0), 0);
    cr_assert_float_eq(d0, 1.0, 1e-12);
}

Test(quant, search_matches_naive_reference_on_random_rows) {
    trng r = trng_new(11);
    int checked = 0;
    for (int row = 0; row < 40; row++) {
        int n = 8 + row % 9, bits = (int[]){2, 3, 4, 8}[row % 4];
        float x[16];
        for (int j = 0; j < n; j++) {
            switch (row % 4) {
            case 0: x[j] = (float)trng_unif(&r, -1, 1); break;
            case 1: x[j] = (float)(0.1 * trng_normal(&r)); break;
            case 2: x[j] = (float)trng_unif(&r, 0.5, 3.0); break;            /* all positive: z < 0 */
            default: x[j] = (float)(0.05 * trng_normal(&r) + (j == 0 ? 1.5 : 0)); /* an outlier */
            }
        }
        double rd, rz, gap;
        int bi = ref_search(x, n, bits, &rd, &rz, &gap);
        if (gap < 1e-4) continue; /* near-tie: float rounding may legitimately flip it */
        float delta, zero;
        qa_quant_search(x, (size_t)n, bits, &delta, &zero);
        cr_assert_float_eq(delta, rd, 2e-6 * rd, "row %d (%d bits): delta %.9g, reference %.9g (candidate %d)", row,
                           bits, delta, rd, bi);
        cr_assert_eq(zero, (float)rz, "row %d (%d bits): zero %g, reference %g (candidate %d)", row, bits, zero, rz, bi);
        checked++;
    }
    cr_assert(checked >= 30, "only %d rows were clear of near-ties", checked);
}

/* The search as the reference codes it, in float: candidates 0..79 in order, each score summed
 * in full in index order (in double), the first strictly best kept. */
static void inorder_search(const float *x, size_t n, int bits, float *delta_out, float *zero_out) {
    float lmax = (float)((1 << bits) - 1), m = x[0], M = x[0];
    for (size_t j = 1; j < n; j++) {
        m = x[j] < m ? x[j] : m;
        M = x[j] > M ? x[j] : M;
    }
    float best = INFINITY;
    for (int i = 0; i < 80; i++) {
        float shrink = 1.0f - 0.01f * (float)i, mi = m * shrink, Mi = M * shrink;
        float delta = (Mi - mi) / lmax, zero = nearbyintf(-mi / delta);
        double acc = 0.0;
        for (size_t j = 0; j < n; j++) {
            float q = nearbyintf(x[j] / delta) + zero;
            q = q < 0.f ? 0.f : (q > lmax ? lmax : q);
            acc += (double)powf(fabsf(delta * (q - zero) - x[j]), 2.4f);
        }
        float score = (float)(acc / (double)n);
        if (score < best) { best = score; *delta_out = delta; *zero_out = zero; }
    }
}

/* The search scores its candidates out of order and stops a sum once it cannot win: its choice
 * must still be the in-order search's, bit for bit, on rows and on activation-sized tensors
 * (one thread: the sum's order is then the reference's). */
Test(quant, early_stopping_search_chooses_what_the_full_search_does) {
    omp_set_num_threads(1);
    trng r = trng_new(23);
    const size_t sizes[] = {5, 64, 128, 300, 1024, 5000, 70000};
    int cases = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int kind = 0; kind < 4; kind++) {
            size_t n = sizes[si];
            int bits = (int[]){2, 3, 4, 8}[(kind + (int)si) % 4];
            float *x = malloc(sizeof(float) * n);
            for (size_t j = 0; j < n; j++) {
                double v = trng_normal(&r);
                if (kind == 1) v = fabs(v);                                  /* one-sided: z < 0 */
                if (kind == 2) v = trng_unif(&r, -1, 1);
                if (kind == 3 && trng_unif(&r, 0, 1) < 0.01) v *= 30;        /* outliers: heavy clipping */
                x[j] = (float)v;
            }
            float d0 = 0, z0 = 0, d1, z1;
            inorder_search(x, n, bits, &d0, &z0);
            qa_quant_search(x, n, bits, &d1, &z1);
            cr_assert(!memcmp(&d0, &d1, sizeof d0) && !memcmp(&z0, &z1, sizeof z0),
                      "n %zu, %d bits, kind %d: delta %a zero %a, the in-order search %a %a", n, bits, kind, d1, z1, d0, z0);
            free(x);
            cases++;
        }
    cr_assert_eq(cases, 28);
    /* a NaN scores every candidate NaN, so none is ever best: both keep delta = 0, z = 0 */
    float y[6] = {0.1f, -0.4f, NAN, 0.9f, 0.3f, -0.2f}, d0 = -1, z0 = -1, d1 = -1, z1 = -1;
    inorder_search(y, 6, 4, &d0, &z0);
    qa_quant_search(y, 6, 4, &d1, &z1);
    cr_assert(d0 == -1 && z0 == -1 && d1 == 0 && z1 == 0, "NaN: %g %g", d1, z1);
}

Test(quant, ties_keep_the_first_strictly_best_candidate) {
    /* 1 bit, x = {0, 1.5, 2}: m = 0, M = 2, z = 0, delta_i = 2 s_i (s_i = 1 - 0.01 i); both 1.5 and 2
     * map to code 1, errors |2 s - 1.5| and |2 s - 2| are symmetric about s = 0.875, so candidates
     * i = 12 (delta 1.76) and i = 13 (delta 1.74) tie for the best score: the first must be kept. */
    float x[3] = {0.f, 1.5f, 2.f}, delta, zero;
    double rd, rz, gap;
    cr_assert_eq(ref_search(x, 3, 1, &rd, &rz, &gap), 12, "the reference sees the tie at i = 12, 13");
    cr_assert_float_eq(gap, 0.0, 1e-12, "an exact tie in the reference");
    qa_quant_search(x, 3, 1, &delta, &zero);
    cr_assert_float_eq(delta, 1.76f, 1e-6, "tie: delta %.9g, want the first candidate's 1.76 (not 1.74)", delta);
    cr_assert_eq(zero, 0.0f);
    float y[3] = {-2.f, -1.5f, 0.f}; /* the mirror image */
    qa_quant_search(y, 3, 1, &delta, &zero);
    cr_assert_float_eq(delta, 1.76f, 1e-6, "mirrored tie: delta %.9g", delta);
}

/* The same tie within a sum that stops early. x = {0, 1.5, 2}, 253 zeros (on every grid), then
 * x[256] = delta_13 itself: on candidate 13's grid, 0.02 off candidate 12's. The coarse pass
 * is best at i = 16 (score by hand: 0.082 against 0.091 at i = 8), so 13 is scored before 12;
 * 12's partial mean at its first check (after 32 terms) equals 13's full score (the tie above),
 * and only its last term makes it worse: a sum that stopped at that equal partial would choose 12. */
Test(quant, a_tie_at_a_partial_sum_goes_on_to_the_full_sum) {
    enum { N = 257 };
    float x[N] = {0.f, 1.5f, 2.f}, delta, zero;
    const float delta13 = 2.f * (1.0f - 0.01f * 13.f);
    x[256] = delta13;
    qa_quant_search(x, N, 1, &delta, &zero);
    cr_assert_eq(delta, delta13, "delta %.9g, want candidate 13's %.9g", delta, delta13);
    cr_assert_eq(zero, 0.0f);
    double rd, rz, gap;
    cr_assert_eq(ref_search(x, N, 1, &rd, &rz, &gap), 13, "the reference chooses 13 too");
}

Test(quant, search_rows_equals_per_row_search) {
    trng r = trng_new(12);
    enum { R = 5, C = 11 };
    float W[R * C], d[R], z[R];
    fill_unif(&r, W, R * C, -2, 2);
    qa_quant_search_rows(W, R, C, 4, d, z);
    for (int i = 0; i < R; i++) {
        float d1, z1;
        qa_quant_search(W + i * C, C, 4, &d1, &z1);
        cr_assert_eq(d[i], d1, "row %d delta", i);
        cr_assert_eq(z[i], z1, "row %d zero", i);
    }
}

static const float consts[] = {0.7f, -0.3f, 0.0f, 5.0f, -123.25f, 1e-3f};

Test(quant, constant_row_fallback_finite_and_reproduces_constant) {
    for (int bits = 2; bits <= 8; bits += 2)
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            float x[6], xq[6], delta, zero;
            for (int j = 0; j < 6; j++) x[j] = consts[c];
            qa_quant_search(x, 6, bits, &delta, &zero);
            cr_assert(isfinite(delta) && isfinite(zero), "constant %g: delta %g zero %g must be finite", consts[c],
                      delta, zero);
            cr_assert(delta > 0, "constant %g: delta %g must be > 0", consts[c], delta);
            qa_quant_fake_rows(xq, x, 1, 6, bits, &delta, &zero);
            for (int j = 0; j < 6; j++)
                cr_assert_float_eq(xq[j], consts[c], 1e-6f * fabsf(consts[c]),
                                   "constant %g at %d bits -> %.9g (delta %g, zero %g)", consts[c], bits, xq[j], delta,
                                   zero);
        }
}

/* Regression (fixed; was quant.c:18-21, minor): quant.h promises the constant-row fallback "reproduces the constant
 * exactly", but delta = |m| / (L-1) then delta * (L-1) can miss by one ulp (e.g. -123.25 at 4 bits
 * gives -123.249992). delta = |m| with z = -sign(m) would be exact. */
Test(quant, constant_row_fallback_is_bit_exact) {
    for (int bits = 2; bits <= 8; bits += 2)
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            float x[6], xq[6], delta, zero;
            for (int j = 0; j < 6; j++) x[j] = consts[c];
            qa_quant_search(x, 6, bits, &delta, &zero);
            qa_quant_fake_rows(xq, x, 1, 6, bits, &delta, &zero);
            cr_expect_eq(xq[0], consts[c], "constant %.9g at %d bits -> %.9g",
                         consts[c], bits, xq[0]);
        }
}

Test(quant, rounding_is_half_to_even) {
    /* delta 1, zero 8, 4 bits: codes = clamp(round(x) + 8, 0, 15) - 8 with ties to even */
    float W[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 0.49f};
    int32_t want[8] = {0, 2, 2, 0, -2, -2, 4, 0};
    float delta = 1.0f, zero = 8.0f, Wq[8];
    int32_t codes[8];
    qa_quant_codes_rows(codes, W, 1, 8, 4, &delta, &zero);
    qa_quant_fake_rows(Wq, W, 1, 8, 4, &delta, &zero);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(codes[i], want[i], "code of %g: %d, want %d (round half to even)", W[i], codes[i], want[i]);
        cr_assert_eq(Wq[i], (float)want[i], "fake-quant of %g: %g", W[i], Wq[i]);
    }
    /* the 2-bit symmetric pair {-a, a}: delta = 2a/3, z = round(1.5) = 2 (even) */
    float x[2] = {-0.75f, 0.75f}, d, z;
    double rd, rz, gap;
    ref_search(x, 2, 2, &rd, &rz, &gap);
    qa_quant_search(x, 2, 2, &d, &z);
    cr_assert_float_eq(d, rd, 1e-6 * rd);
    cr_assert_eq(z, (float)rz, "zero %g vs reference %g", z, rz);
}

Test(quant, codes_in_range_and_consistent_with_fake) {
    trng r = trng_new(13);
    enum { R = 6, C = 20 };
    float W[R * C], d[R], z[R], Wq[R * C];
    int32_t codes[R * C];
    for (int bits = 2; bits <= 8; bits++) {
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) W[i * C + j] = (float)(trng_unif(&r, -1, 1) + (i == 2 ? 2.0 : 0.0));
        qa_quant_search_rows(W, R, C, bits, d, z);
        qa_quant_codes_rows(codes, W, R, C, bits, d, z);
        qa_quant_fake_rows(Wq, W, R, C, bits, d, z);
        int L = 1 << bits;
        for (int i = 0; i < R; i++)
            for (int j = 0; j < C; j++) {
                int c = codes[i * C + j];
                cr_assert(c >= -(int)z[i] && c <= L - 1 - (int)z[i], "%d bits row %d: code %d outside [%d, %d]", bits, i,
                          c, -(int)z[i], L - 1 - (int)z[i]);
                cr_assert_float_eq(Wq[i * C + j], d[i] * (float)c, 1e-7, "Wq = delta * code");
                /* inside the clamp range the error is at most delta / 2 */
                double v = W[i * C + j] / d[i] + z[i];
                if (v >= 0 && v <= L - 1)
                    cr_assert(fabs(Wq[i * C + j] - W[i * C + j]) <= 0.5 * d[i] * (1 + 1e-5), "error above delta/2");
            }
    }
}

Test(quant, actq_calibrates_once_then_freezes) {
    qa_actq q = {4, 0, 0, 0};
    float x1[10] = {-1, -0.5f, 0, 0.25f, 0.5f, 0.75f, 1, 1.5f, 2, -0.25f}, xh[10];
    qa_actq_forward(&q, xh, x1, 10);
    cr_assert_eq(q.calibrated, 1);
    float d, z;
    qa_quant_search(x1, 10, 4, &d, &z);
    cr_assert_eq(q.delta, d, "calibrated delta %g vs quant_search %g", q.delta, d);
    cr_assert_eq(q.zero, z, "calibrated zero");
    /* second batch with a very different range: delta and zero stay frozen */
    float x2[6] = {-50, -10, 0.3f, 7, 40, 0.1f}, xh2[6];
    qa_actq_forward(&q, xh2, x2, 6);
    cr_assert_eq(q.delta, d, "delta changed after the first batch: %g -> %g", d, q.delta);
    cr_assert_eq(q.zero, z, "zero changed after the first batch");
    for (int i = 0; i < 6; i++) {
        double v = nearbyint(x2[i] / d) + z;
        v = v < 0 ? 0 : (v > 15 ? 15 : v);
        cr_assert_float_eq(xh2[i], d * (v - z), 1e-6, "xhat(%g) = %g", x2[i], xh2[i]);
    }
    cr_assert_float_eq(xh2[0], d * (0 - z), 1e-6, "-50 clamps to the low end");
    cr_assert_float_eq(xh2[4], d * (15 - z), 1e-6, "40 clamps to the high end");
}

Test(quant, actq_backward_straight_through_inclusive_bounds) {
    /* delta 0.5, zero 2, 2 bits (levels 0..3): v = round(x / 0.5) + 2 */
    qa_actq q = {2, 1, 0.5f, 2.0f};
    float x[8] = {-1.0f, -1.25f, -1.3f, 0.5f, 0.7f, 0.75f, 0.0f, 3.0f};
    /*            v=0 in  v=0 in  v=-1 out v=3 in  v=3 in  v=4 out v=2 in  v=8 out   (-2.5 -> -2, 1.5 -> 2) */
    int inside[8] = {1, 1, 0, 1, 1, 0, 1, 0};
    float dxh[8], dx[8];
    for (int i = 0; i < 8; i++) { dxh[i] = 1.0f + i; dx[i] = 100.0f; }
    qa_actq_backward(&q, dx, dxh, x, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(dx[i], 100.0f + (inside[i] ? dxh[i] : 0.0f), "x = %g: dx %g (inside %d; accumulates)", x[i],
                     dx[i], inside[i]);
}
