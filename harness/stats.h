/* Statistics across seeds (GSL): mean, sample sd, 95% CI half-width from the t distribution,
 * and two-sided tests: paired t on per-seed differences, Welch's t otherwise. */
#ifndef QA_STATS_H
#define QA_STATS_H

typedef struct {
    int n;
    double mean, sd, ci95; /* ci95 = t_{0.975, n-1} sd / sqrt(n); 0 when n < 2 */
} qa_summary;

qa_summary qa_stats_summarize(const double *x, int n);

/* The median of n repeats (timings) and a distribution-free interval for it: the order
 * statistics [x_(k), x_(n+1-k)] with the largest k whose coverage, 1 - 2 P(Bin(n, 1/2) <= k - 1),
 * is at least 95%, or the range (k = 1) when no k reaches it (n <= 5: coverage 1 - 2^(1-n), 93.75%
 * at n = 5; 0 at n = 1). n = 0: NaN. */
typedef struct {
    int n;
    double median, lo, hi, coverage;
} qa_median_ci;

qa_median_ci qa_stats_median_ci(const double *x, int n);
/* Welch: t = (ma - mb) / sqrt(va/na + vb/nb), df by Welch-Satterthwaite; returns p (NaN if n < 2). */
double qa_stats_welch_p(const double *a, int na, const double *b, int nb, double *t_out, double *df_out);
/* Half-width of the 95% CI of mean(a) - mean(b) without pairing: Welch's standard error and
 * degrees of freedom (NaN if n < 2). */
double qa_stats_welch_ci95(const double *a, int na, const double *b, int nb);
/* Paired: t = mean(d) / (sd(d)/sqrt(n)), d = a - b, df = n - 1; returns p (NaN if n < 2). */
double qa_stats_paired_p(const double *a, const double *b, int n, double *t_out);

/* One-sided test on per-seed paired differences d (n >= 2) of H1: mean(d) > bound:
 * t = (mean(d) - bound) / (sd(d) / sqrt(n)), df = n - 1, returns P(T > t). With sd = 0 the
 * difference is exact: 0 when mean(d) > bound, else 1. NaN when n < 2. */
double qa_stats_one_sided_p(const double *d, int n, double bound);
/* Holm-Bonferroni step-down adjustment of a family of p-values: with the k non-NaN p sorted
 * ascending, adj_(i) = max over j <= i of min(1, (k - j + 1) p_(j)) (1-based ranks). NaN entries
 * are not part of the family and stay NaN. adj may alias p. */
void qa_stats_holm(const double *p, int n, double *adj);
/* Seeds needed for a one-sided paired t at level alpha to reach the given power when the true
 * mean difference lies `gap` beyond the test's bound and the paired sd is `sd`: Guenther's (1981)
 * normal approximation to the noncentral t, n = ((z_{1-alpha} + z_{power}) sd / gap)^2
 * + z_{1-alpha}^2 / 2, rounded up, at least 2. -1 when gap <= 0: no number of seeds will do. */
int qa_stats_seeds_needed(double gap, double sd, double alpha, double power);

#endif
