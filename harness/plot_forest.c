#include "harness/plot_forest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/plot_gnuplot.h"
#include "harness/plot_stats.h"
#include "harness/report.h"
#include "harness/stats.h"

/* What one row of the figure knows about its differences. */
typedef struct {
    int n_lo, n_hi, any_welch;
} forest_tally;

static int is_row(const qa_cell *c, const qa_cell *base) { return c != base && c->n > 0; }

/* c - base on met with its 95% CI: the report's paired difference where the cells share every
 * seed, else Welch's interval; one seed on a side gives no interval. A difference of two values
 * in [0, U] lies in [-U, U]: the interval is clipped to it. Returns 1 when paired. */
static int difference(const qa_cell *c, const qa_cell *base, int met, double *mean, double *lo, double *hi) {
    double ci, p;
    int paired = qa_report_cell_difference(c, base, met, mean, &ci, &p);
    if (!paired) ci = qa_stats_welch_ci95(c->vals[met], c->nm[met], base->vals[met], base->nm[met]);
    if (isnan(ci)) ci = 0;
    double span = qa_plot_metric_upper(met);
    *lo = fmax(*mean - ci, -span);
    *hi = fmin(*mean + ci, span);
    return paired;
}

/* One block per metric: row (0 = bottom), mean, low, high, paired (0: a Welch interval), label. A cell without the
 * metric keeps its row (and label) with no point. */
static void write_forest_blocks(FILE *f, const qa_cell *cells, int nc, const qa_cell *base, const int *mets, int nm,
                                int multi_rank, int nrows, forest_tally *t) {
    for (int k = 0; k < nm; k++) {
        const int met = mets[k];
        fprintf(f, "%s# %s: row mean low high paired label\n", k ? "\n\n" : "", qa_met_names[met]);
        int row = nrows - 1;
        for (int i = 0; i < nc; i++) {
            const qa_cell *c = &cells[i];
            if (!is_row(c, base)) continue;
            char label[160];
            qa_cells_series_label(c, label, sizeof label, 1, multi_rank);
            if (c->nm[met] == 0 || base->nm[met] == 0) {
                fprintf(f, "%d NaN NaN NaN 1 \"%s\"\n", row--, label);
                continue;
            }
            double mean, lo, hi;
            int paired = difference(c, base, met, &mean, &lo, &hi);
            int n = paired ? c->nm[met] : (c->nm[met] < base->nm[met] ? c->nm[met] : base->nm[met]);
            int welch = !paired && n > 1; /* one run a side: no interval of either kind */
            fprintf(f, "%d %.8g %.8g %.8g %d \"%s\"\n", row--, mean, lo, hi, !welch, label);
            t->n_lo = n < t->n_lo ? n : t->n_lo;
            t->n_hi = n > t->n_hi ? n : t->n_hi;
            t->any_welch |= welch;
        }
    }
}

static void forest_title(const qa_cell *base, int multi_rank, const forest_tally *t, char *buf, size_t len) {
    char base_label[160];
    qa_cells_series_label(base, base_label, sizeof base_label, 1, multi_rank);
    int off = snprintf(buf, len, "Each cell minus %s: ", base_label);
    if (t->n_hi <= 1) snprintf(buf + off, len - (size_t)off, "one run per cell, differences without intervals");
    else if (t->n_lo == t->n_hi)
        off += snprintf(buf + off, len - (size_t)off, "mean and 95%% CI of the differences paired by seed (n = %d)", t->n_hi);
    else off += snprintf(buf + off, len - (size_t)off, "mean and 95%% CI of the differences paired by seed (n = %d-%d)", t->n_lo, t->n_hi);
    if (t->n_hi > 1 && t->any_welch) snprintf(buf + off, len - (size_t)off, "; open points: Welch, not paired");
}

int qa_plot_forest(const char *pdir, const qa_cell *cells, int nc, const qa_cell *base, qa_error *err) {
    int mets[8], nm = qa_plot_folder_metrics(cells, nc, mets), nrows = 0, label_chars = 0, multi_rank = 0;
    for (int i = 0; i < nc; i++) {
        if (!is_row(&cells[i], base)) continue;
        multi_rank |= cells[i].rank != base->rank;
        nrows++;
    }
    if (nrows == 0 || nm == 0) return QA_OK;
    for (int i = 0; i < nc; i++) {
        char label[160];
        if (!is_row(&cells[i], base)) continue;
        qa_cells_series_label(&cells[i], label, sizeof label, 1, multi_rank);
        if ((int)strlen(label) > label_chars) label_chars = (int)strlen(label);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/forest", pdir);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    forest_tally tally = {1 << 30, 0, 0};
    write_forest_blocks(f, cells, nc, base, mets, nm, multi_rank, nrows, &tally);
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    char title[400], panels[600] = "";
    forest_title(base, multi_rank, &tally, title, sizeof title);
    for (int k = 0; k < nm; k++)
        snprintf(panels + strlen(panels), sizeof panels - strlen(panels), "%s\"%s: %s is better\"", k ? " " : "",
                 qa_met_titles[mets[k]], qa_met_lower_better[mets[k]] ? "lower" : "higher");
    plot_args a = {0};
    qa_plot_arg(&a, "%s", title);
    qa_plot_arg(&a, "%d", nm);
    qa_plot_arg(&a, "%s", panels);
    qa_plot_arg(&a, "%d", nrows);
    qa_plot_arg(&a, "%d", label_chars);
    return qa_plot_draw("forest", out, &a, err);
}
