/* Statistics across seeds (GSL): mean, sample sd, 95% CI half-width from the t distribution,
 * and two-sided tests: paired t on per-seed differences, Welch's t otherwise. */
#ifndef QA_STATS_H
#define QA_STATS_H

typedef struct {
    int n;
    double mean, sd, ci95; /* ci95 = t_{0.975, n-1} sd / sqrt(n); 0 when n < 2 */
} qa_summary;

qa_summary stats_summarize(const double *x, int n);
/* Welch: t = (ma - mb) / sqrt(va/na + vb/nb), df by Welch-Satterthwaite; returns p (NaN if n < 2). */
double stats_welch_p(const double *a, int na, const double *b, int nb, double *t_out, double *df_out);
/* Half-width of the 95% CI of mean(a) - mean(b) without pairing: Welch's standard error and
 * degrees of freedom (NaN if n < 2). */
double stats_welch_ci95(const double *a, int na, const double *b, int nb);
/* Paired: t = mean(d) / (sd(d)/sqrt(n)), d = a - b, df = n - 1; returns p (NaN if n < 2). */
double stats_paired_p(const double *a, const double *b, int n, double *t_out);

#endif
