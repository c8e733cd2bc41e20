#include "harness/stats.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>

qa_summary stats_summarize(const double *x, int n) {
    qa_summary s = {n, NAN, NAN, NAN};
    if (n < 1) return s;
    s.mean = gsl_stats_mean(x, 1, (size_t)n);
    if (n < 2) { s.sd = 0; s.ci95 = 0; return s; }
    s.sd = gsl_stats_sd_m(x, 1, (size_t)n, s.mean);
    s.ci95 = gsl_cdf_tdist_Pinv(0.975, n - 1) * s.sd / sqrt((double)n);
    return s;
}

double stats_welch_p(const double *a, int na, const double *b, int nb, double *t_out, double *df_out) {
    if (na < 2 || nb < 2) return NAN;
    double ma = gsl_stats_mean(a, 1, (size_t)na), mb = gsl_stats_mean(b, 1, (size_t)nb);
    double va = gsl_stats_variance_m(a, 1, (size_t)na, ma) / na, vb = gsl_stats_variance_m(b, 1, (size_t)nb, mb) / nb;
    if (va + vb == 0) return ma == mb ? 1.0 : 0.0;
    double t = (ma - mb) / sqrt(va + vb);
    double df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
    if (t_out) *t_out = t;
    if (df_out) *df_out = df;
    return 2.0 * gsl_cdf_tdist_Q(fabs(t), df);
}

double stats_welch_ci95(const double *a, int na, const double *b, int nb) {
    if (na < 2 || nb < 2) return NAN;
    double va = gsl_stats_variance(a, 1, (size_t)na) / na, vb = gsl_stats_variance(b, 1, (size_t)nb) / nb;
    if (va + vb == 0) return 0;
    double df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
    return gsl_cdf_tdist_Pinv(0.975, df) * sqrt(va + vb);
}

double stats_paired_p(const double *a, const double *b, int n, double *t_out) {
    if (n < 2) return NAN;
    double *d = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) d[i] = a[i] - b[i];
    double m = gsl_stats_mean(d, 1, (size_t)n), sd = gsl_stats_sd_m(d, 1, (size_t)n, m);
    free(d);
    if (sd == 0) return m == 0 ? 1.0 : 0.0;
    double t = m / (sd / sqrt((double)n));
    if (t_out) *t_out = t;
    return 2.0 * gsl_cdf_tdist_Q(fabs(t), n - 1);
}
