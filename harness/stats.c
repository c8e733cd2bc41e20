#include "harness/stats.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>
#include <string.h>

qa_summary qa_stats_summarize(const double *x, int n) {
    qa_summary s = {n, NAN, NAN, NAN};
    if (n < 1) return s;
    s.mean = gsl_stats_mean(x, 1, (size_t)n);
    if (n < 2) { s.sd = 0; s.ci95 = 0; return s; }
    s.sd = gsl_stats_sd_m(x, 1, (size_t)n, s.mean);
    s.ci95 = gsl_cdf_tdist_Pinv(0.975, n - 1) * s.sd / sqrt((double)n);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

qa_median_ci qa_stats_median_ci(const double *x, int n) {
    qa_median_ci c = {n, NAN, NAN, NAN, NAN};
    if (n < 1) return c;
    double *v = malloc(sizeof(double) * (size_t)n);
    memcpy(v, x, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    c.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    /* coverage of [x_(k), x_(n+1-k)]: 1 - 2 P(Bin(n, 1/2) <= k - 1) */
    int k = 1;
    double cover = 1.0 - 2.0 * gsl_cdf_binomial_P(0, 0.5, (unsigned)n);
    while (k + 1 <= (n + 1) / 2) {
        double next = 1.0 - 2.0 * gsl_cdf_binomial_P((unsigned)k, 0.5, (unsigned)n);
        if (next < 0.95) break;
        k++;
        cover = next;
    }
    c.lo = v[k - 1];
    c.hi = v[n - k];
    c.coverage = cover > 0 ? cover : 0;
    free(v);
    return c;
}

double qa_stats_welch_p(const double *a, int na, const double *b, int nb, double *t_out, double *df_out) {
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

double qa_stats_welch_ci95(const double *a, int na, const double *b, int nb) {
    if (na < 2 || nb < 2) return NAN;
    double va = gsl_stats_variance(a, 1, (size_t)na) / na, vb = gsl_stats_variance(b, 1, (size_t)nb) / nb;
    if (va + vb == 0) return 0;
    double df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
    return gsl_cdf_tdist_Pinv(0.975, df) * sqrt(va + vb);
}

double qa_stats_paired_p(const double *a, const double *b, int n, double *t_out) {
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

double qa_stats_one_sided_p(const double *d, int n, double bound) {
    if (n < 2) return NAN;
    double m = gsl_stats_mean(d, 1, (size_t)n), sd = gsl_stats_sd_m(d, 1, (size_t)n, m);
    if (sd == 0) return m > bound ? 0.0 : 1.0;
    return gsl_cdf_tdist_Q((m - bound) / (sd / sqrt((double)n)), n - 1);
}

void qa_stats_holm(const double *p, int n, double *adj) {
    int *order = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), k = 0;
    double *copy = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    memcpy(copy, p, sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (!isnan(copy[i])) order[k++] = i;
    for (int i = 1; i < k; i++) /* insertion sort by p: families are small */
        for (int j = i; j > 0 && copy[order[j]] < copy[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < n; i++) adj[i] = NAN;
    double running = 0;
    for (int r = 0; r < k; r++) {
        double a = (k - r) * copy[order[r]];
        a = a > 1 ? 1 : a;
        running = a > running ? a : running;
        adj[order[r]] = running;
    }
    free(order);
    free(copy);
}

int qa_stats_seeds_needed(double gap, double sd, double alpha, double power) {
    if (!(gap > 0)) return -1;
    double za = gsl_cdf_ugaussian_Pinv(1 - alpha), zb = gsl_cdf_ugaussian_Pinv(power);
    double n = (za + zb) * (za + zb) * sd * sd / (gap * gap) + za * za / 2;
    if (n > 1e6) return 1000000;
    int seeds = (int)ceil(n - 1e-9);
    return seeds < 2 ? 2 : seeds;
}
