/* Statistics across seeds: summaries against hand values, Welch's t against a textbook example
 * (t, df recomputed here in double), the paired t test against its closed form for df = 2
 * (P(|T| > t) = 1 - t / sqrt(2 + t^2)), and the degenerate cases. */
#include <criterion/criterion.h>
#include <gsl/gsl_cdf.h>

#include "common.h"
#include "harness/stats.h"

Test(stats, summarize_one_to_four) {
    const double x[4] = {1, 2, 3, 4};
    qa_summary s = qa_stats_summarize(x, 4);
    cr_expect_eq(s.n, 4);
    cr_expect(fabs(s.mean - 2.5) < 1e-12, "mean %.10g", s.mean);
    cr_expect(fabs(s.sd - 1.2909944487358056) < 1e-9, "sd %.10g (sample sd, n - 1)", s.sd);
    /* t_{0.975, 3} = 3.18244631 (tables) */
    double ci = 3.182446305284263 * 1.2909944487358056 / 2.0;
    cr_expect(fabs(s.ci95 - ci) < 1e-7, "ci95 %.10g, want %.10g", s.ci95, ci);
}

Test(stats, summarize_against_naive_double_loops) {
    const double x[7] = {0.31, -1.2, 4.75, 2.0, 2.0, 0.001, -3.5};
    qa_summary s = qa_stats_summarize(x, 7);
    double m = 0, v = 0;
    for (int i = 0; i < 7; i++) m += x[i];
    m /= 7;
    for (int i = 0; i < 7; i++) v += (x[i] - m) * (x[i] - m);
    double sd = sqrt(v / 6);
    double ci = 2.446911848791681 * sd / sqrt(7.0); /* t_{0.975, 6} */
    cr_expect(fabs(s.mean - m) < 1e-12, "mean %.12g want %.12g", s.mean, m);
    cr_expect(fabs(s.sd - sd) < 1e-12, "sd %.12g want %.12g", s.sd, sd);
    cr_expect(fabs(s.ci95 - ci) < 1e-8, "ci95 %.12g want %.12g", s.ci95, ci);
}

Test(stats, summarize_n1_and_n2) {
    const double one[1] = {3.25};
    qa_summary s = qa_stats_summarize(one, 1);
    cr_expect_eq(s.n, 1);
    cr_expect(s.mean == 3.25, "mean %g", s.mean);
    cr_expect(s.sd == 0.0, "sd %g", s.sd);
    cr_expect(s.ci95 == 0.0, "ci95 %g", s.ci95);
    /* n = 2: sd = |a - b| / sqrt 2, t_{0.975,1} = 12.7062047 */
    const double two[2] = {1.0, 2.0};
    s = qa_stats_summarize(two, 2);
    cr_expect(fabs(s.sd - 1.0 / sqrt(2.0)) < 1e-12, "sd %g", s.sd);
    cr_expect(fabs(s.ci95 - 12.706204736174707 * (1.0 / sqrt(2.0)) / sqrt(2.0)) < 1e-7, "ci95 %.10g", s.ci95);
}

Test(stats, summarize_n0_is_nan) {
    qa_summary s = qa_stats_summarize(NULL, 0);
    cr_expect_eq(s.n, 0);
    cr_expect(isnan(s.mean), "mean of nothing: %g", s.mean);
}

/* Welch's example 1 (Wikipedia, "Welch's t-test"): t = -2.46, df = 25.0, p = 0.021 */
static const double wa[15] = {27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4};
static const double wb[15] = {27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4};

static void mean_var(const double *x, int n, double *m, double *v) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    s /= n;
    for (int i = 0; i < n; i++) q += (x[i] - s) * (x[i] - s);
    *m = s;
    *v = q / (n - 1);
}

static void welch_ref(const double *a, int na, const double *b, int nb, double *t, double *df, double *p) {
    double ma, va, mb, vb;
    mean_var(a, na, &ma, &va);
    mean_var(b, nb, &mb, &vb);
    double sa = va / na, sb = vb / nb;
    *t = (ma - mb) / sqrt(sa + sb);
    *df = (sa + sb) * (sa + sb) / (sa * sa / (na - 1) + sb * sb / (nb - 1));
    *p = 2.0 * gsl_cdf_tdist_Q(fabs(*t), *df);
}

Test(stats, welch_textbook_example) {
    double t = 0, df = 0;
    double p = qa_stats_welch_p(wa, 15, wb, 15, &t, &df);
    cr_expect(fabs(t - (-2.46)) < 0.005, "t = %g, textbook -2.46", t);
    cr_expect(fabs(df - 25.0) < 0.05, "df = %g, textbook 25.0", df);
    cr_expect(fabs(p - 0.021) < 0.0005, "p = %g, textbook 0.021", p);
    double tr, dfr, pr;
    welch_ref(wa, 15, wb, 15, &tr, &dfr, &pr);
    cr_expect(fabs(t - tr) < 1e-10 && fabs(df - dfr) < 1e-8, "t %.12g df %.12g, want %.12g %.12g", t, df, tr, dfr);
    cr_expect(fabs(p - pr) < 1e-10, "p %.12g want %.12g", p, pr);
}

Test(stats, welch_unequal_sizes_and_symmetry) {
    const double a[3] = {0.50, 0.52, 0.55}, b[5] = {0.61, 0.58, 0.66, 0.70, 0.59};
    double t1, df1, t2, df2, tr, dfr, pr;
    double p1 = qa_stats_welch_p(a, 3, b, 5, &t1, &df1);
    double p2 = qa_stats_welch_p(b, 5, a, 3, &t2, &df2);
    welch_ref(a, 3, b, 5, &tr, &dfr, &pr);
    cr_expect(fabs(t1 - tr) < 1e-10 && fabs(df1 - dfr) < 1e-8, "t %g df %g want %g %g", t1, df1, tr, dfr);
    cr_expect(fabs(p1 - pr) < 1e-10, "p %.12g want %.12g", p1, pr);
    cr_expect(fabs(t1 + t2) < 1e-12 && fabs(df1 - df2) < 1e-12, "swapping the groups flips t only");
    cr_expect(fabs(p1 - p2) < 1e-14, "two-sided p symmetric: %g vs %g", p1, p2);
    cr_expect(p1 > 0 && p1 < 0.05, "clearly separated groups: p = %g", p1);
}

Test(stats, welch_small_n_is_nan) {
    const double a[1] = {1.0}, b[3] = {1, 2, 3};
    cr_expect(isnan(qa_stats_welch_p(a, 1, b, 3, NULL, NULL)));
    cr_expect(isnan(qa_stats_welch_p(b, 3, a, 1, NULL, NULL)));
    cr_expect(isnan(qa_stats_welch_p(b, 0, b, 0, NULL, NULL)));
}

Test(stats, welch_zero_variance) {
    const double a[3] = {2, 2, 2}, b[3] = {2, 2, 2}, c[3] = {3, 3, 3};
    cr_expect(qa_stats_welch_p(a, 3, b, 3, NULL, NULL) == 1.0, "equal constants: p = 1");
    cr_expect(qa_stats_welch_p(a, 3, c, 3, NULL, NULL) == 0.0, "different constants: p = 0");
}

/* The interval and the test agree: shifting b until the difference of the means equals the
 * half-width leaves both variances (so df) unchanged and puts Welch's p at exactly 0.05. */
Test(stats, welch_ci95_matches_the_test_at_its_edge) {
    const double a[4] = {0.50, 0.52, 0.55, 0.49}, b[6] = {0.61, 0.58, 0.66, 0.70, 0.59, 0.64};
    double half = qa_stats_welch_ci95(a, 4, b, 6);
    cr_assert(half > 0 && isfinite(half), "half-width %g", half);
    double ma = (0.50 + 0.52 + 0.55 + 0.49) / 4, mb = (0.61 + 0.58 + 0.66 + 0.70 + 0.59 + 0.64) / 6;
    double shifted[6];
    for (int i = 0; i < 6; i++) shifted[i] = b[i] - mb + ma - half; /* mean(a) - mean(shifted) = half */
    double p = qa_stats_welch_p(a, 4, shifted, 6, NULL, NULL);
    cr_expect(fabs(p - 0.05) < 1e-9, "p at the CI edge: %.12g", p);
    cr_expect(fabs(qa_stats_welch_ci95(b, 6, a, 4) - half) < 1e-15, "symmetric in the groups");
    cr_expect(isnan(qa_stats_welch_ci95(a, 1, b, 6)), "one value: no interval");
    const double c[3] = {2, 2, 2};
    cr_expect(qa_stats_welch_ci95(c, 3, c, 3) == 0.0, "no spread: zero width");
}

Test(stats, paired_equal_arrays_give_one) {
    const double a[5] = {0.3, 0.1, 0.7, 0.2, 0.9};
    cr_expect(qa_stats_paired_p(a, a, 5, NULL) == 1.0);
}

Test(stats, paired_closed_form_df2) {
    /* d = a - b = {0.10, 0.12, 0.11}: mean 0.11, sd 0.01, t = 0.11 / (0.01/sqrt 3) = 19.0526 */
    const double b[3] = {1.0, 2.0, 3.0};
    const double a[3] = {1.10, 2.12, 3.11};
    double t = 0;
    double p = qa_stats_paired_p(a, b, 3, &t);
    double d[3], m, v;
    for (int i = 0; i < 3; i++) d[i] = a[i] - b[i];
    mean_var(d, 3, &m, &v);
    double tr = m / (sqrt(v) / sqrt(3.0));
    double pr = 1.0 - fabs(tr) / sqrt(2.0 + tr * tr); /* Student t, 2 df, two-sided */
    cr_expect(fabs(t - tr) < 1e-9 * fabs(tr), "t %.12g want %.12g", t, tr);
    cr_expect(fabs(tr - 19.05255888) < 1e-6, "hand t %.10g", tr);
    cr_expect(fabs(p - pr) < 1e-12, "p %.12g want closed form %.12g", p, pr);
    cr_expect(p < 0.01, "a constant shift with small noise is significant: p = %g", p);
    double t2;
    double p2 = qa_stats_paired_p(b, a, 3, &t2);
    cr_expect(fabs(t2 + t) < 1e-9 * fabs(t) && fabs(p2 - p) < 1e-14, "swap: t flips, p equal");
}

Test(stats, paired_shift_with_noise_larger_n) {
    double a[12], b[12];
    trng r = trng_new(42);
    for (int i = 0; i < 12; i++) {
        b[i] = trng_unif(&r, 0, 10);              /* large between-seed spread */
        a[i] = b[i] + 0.5 + 0.05 * trng_normal(&r); /* small, consistent shift */
    }
    double t;
    double p = qa_stats_paired_p(a, b, 12, &t);
    cr_expect(t > 0 && p < 1e-6, "paired: t %g p %g", t, p);
    /* Welch ignores the pairing and should see almost nothing */
    double pw = qa_stats_welch_p(a, 12, b, 12, NULL, NULL);
    cr_expect(pw > 0.5, "Welch on the same data: p %g", pw);
    /* reference: one-sample t on the differences, df 11 */
    double d[12], m, v;
    for (int i = 0; i < 12; i++) d[i] = a[i] - b[i];
    mean_var(d, 12, &m, &v);
    double tr = m / sqrt(v / 12);
    cr_expect(fabs(t - tr) < 1e-9 * tr, "t %.12g want %.12g", t, tr);
    cr_expect(fabs(p - 2 * gsl_cdf_tdist_Q(tr, 11)) < 1e-15 + 1e-9 * p);
}

Test(stats, paired_df1_cauchy) {
    /* n = 2: t with 1 df is Cauchy, two-sided p = 1 - (2/pi) atan|t| */
    const double a[2] = {1.0, 2.5}, b[2] = {0.0, 1.0};
    double t;
    double p = qa_stats_paired_p(a, b, 2, &t);
    /* d = {1, 1.5}: mean 1.25, sd 0.353553, t = 1.25 / 0.25 = 5 */
    cr_expect(fabs(t - 5.0) < 1e-12, "t %g", t);
    cr_expect(fabs(p - (1.0 - 2.0 / 3.141592653589793 * atan(5.0))) < 1e-12, "p %.12g", p);
}

Test(stats, paired_constant_shift_and_small_n) {
    const double a[3] = {1.5, 2.5, 3.5}, b[3] = {1, 2, 3};
    cr_expect(qa_stats_paired_p(a, b, 3, NULL) == 0.0, "exact constant shift: p = 0");
    cr_expect(isnan(qa_stats_paired_p(a, b, 1, NULL)), "n = 1: NaN");
    cr_expect(isnan(qa_stats_paired_p(a, b, 0, NULL)), "n = 0: NaN");
}

Test(stats, one_sided_p_df2_closed_form) {
    /* d = {0.10, 0.07, 0.10}: mean 0.09, sd sqrt(0.0006 / 2) = 0.017320508, se 0.01. With df = 2,
     * P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2: bound 0 gives t = 9, p = 0.0060608; bound 0.08 gives
     * t = 1, p = (1 - 1 / sqrt 3) / 2 = 0.2113249 */
    const double d[3] = {0.10, 0.07, 0.10};
    cr_expect(fabs(qa_stats_one_sided_p(d, 3, 0.0) - 0.5 * (1 - 9 / sqrt(83.0))) < 1e-12);
    cr_expect(fabs(qa_stats_one_sided_p(d, 3, 0.0) - 0.0060608) < 1e-7);
    cr_expect(fabs(qa_stats_one_sided_p(d, 3, 0.08) - 0.2113249) < 1e-7);
    cr_expect(fabs(qa_stats_one_sided_p(d, 3, 0.09) - 0.5) < 1e-12, "t = 0: p = 1/2");
    const double c[3] = {0.2, 0.2, 0.2};
    cr_expect(qa_stats_one_sided_p(c, 3, 0.1) == 0.0 && qa_stats_one_sided_p(c, 3, 0.3) == 1.0, "sd 0: exact");
    cr_expect(isnan(qa_stats_one_sided_p(d, 1, 0.0)));
}

Test(stats, holm_hand_example) {
    /* p = {0.01, 0.04, 0.03, 0.005}: ascending 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06,
     * 0.04 x1 = 0.04 -> 0.06 (never below the step before) */
    const double p[4] = {0.01, 0.04, 0.03, 0.005};
    double adj[4];
    qa_stats_holm(p, 4, adj);
    const double want[4] = {0.03, 0.06, 0.06, 0.02};
    for (int i = 0; i < 4; i++) cr_expect(fabs(adj[i] - want[i]) < 1e-15, "adj[%d] = %g, want %g", i, adj[i], want[i]);
    /* NaN is outside the family (k = 2), and the adjustment stops at 1 */
    const double q[3] = {0.01, NAN, 0.04};
    qa_stats_holm(q, 3, adj);
    cr_expect(fabs(adj[0] - 0.02) < 1e-15 && isnan(adj[1]) && fabs(adj[2] - 0.04) < 1e-15);
    double r[2] = {0.6, 0.7};
    qa_stats_holm(r, 2, r); /* in place */
    cr_expect(r[0] == 1.0 && r[1] == 1.0);
}

Test(stats, seeds_needed_guenther_approximation) {
    /* gap 0.01, sd 0.02, alpha 0.05, power 0.8: z = 1.6448536 + 0.8416212 = 2.4864749;
     * n = 2.4864749^2 x 4 + 1.6448536^2 / 2 = 24.730230 + 1.352772 = 26.083 -> 27 */
    cr_expect_eq(qa_stats_seeds_needed(0.01, 0.02, 0.05, 0.8), 27);
    /* a large effect still needs 2 seeds; an effect on the wrong side of the bound: no number */
    cr_expect_eq(qa_stats_seeds_needed(1.0, 0.001, 0.05, 0.8), 2);
    cr_expect_eq(qa_stats_seeds_needed(0.0, 0.02, 0.05, 0.8), -1);
    cr_expect_eq(qa_stats_seeds_needed(-0.01, 0.02, 0.05, 0.8), -1);
    /* gap = sd at alpha 0.025, power 0.9: (1.959964 + 1.281552)^2 + 1.959964^2 / 2 = 10.5074 + 1.9207 -> 13 */
    cr_expect_eq(qa_stats_seeds_needed(0.5, 0.5, 0.025, 0.9), 13);
}

/* order-statistic interval of the median: coverage 1 - 2 P(Bin(n, 1/2) <= k - 1), by hand:
 * n = 5, k = 1: 1 - 2/32 = 0.9375 (the range); n = 9: k = 2 gives 1 - 2 (1 + 9)/512 = 0.9609,
 * k = 3 would give 1 - 2 (1 + 9 + 36)/512 = 0.8203; n = 1: the value, coverage 0 */
Test(stats, median_ci_order_statistics_by_hand) {
    const double five[5] = {5, 1, 4, 2, 3};
    qa_median_ci c = qa_stats_median_ci(five, 5);
    cr_expect(c.n == 5 && c.median == 3 && c.lo == 1 && c.hi == 5, "n 5: %g [%g, %g]", c.median, c.lo, c.hi);
    cr_expect(fabs(c.coverage - 0.9375) < 1e-12, "n 5 coverage %g", c.coverage);
    const double nine[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    c = qa_stats_median_ci(nine, 9);
    cr_expect(c.median == 5 && c.lo == 2 && c.hi == 8, "n 9: %g [%g, %g]", c.median, c.lo, c.hi);
    cr_expect(fabs(c.coverage - (1.0 - 20.0 / 512.0)) < 1e-12, "n 9 coverage %g", c.coverage);
    const double four[4] = {10, 40, 20, 30};
    c = qa_stats_median_ci(four, 4);
    cr_expect(c.median == 25 && c.lo == 10 && c.hi == 40 && fabs(c.coverage - 0.875) < 1e-12, "n 4: %g [%g, %g] %g",
              c.median, c.lo, c.hi, c.coverage);
    const double one[1] = {7};
    c = qa_stats_median_ci(one, 1);
    cr_expect(c.median == 7 && c.lo == 7 && c.hi == 7 && c.coverage == 0, "n 1");
    c = qa_stats_median_ci(one, 0);
    cr_expect(isnan(c.median) && c.n == 0, "n 0: NaN");
}
