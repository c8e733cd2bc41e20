#include "harness/plot_stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/plot_gnuplot.h"
#include "harness/util.h"

#define MAX_SERIES 48
#define MAX_GROUPS 16

/* A series: the cells that differ only in one grid dimension (bits, or bits and rank). */
typedef struct {
    char label[128];
    int cells[MAX_GROUPS * MAX_GROUPS];
    int n;
} series;

/* Same series when method, deploy variant, axes (and rank, unless the rank is a dimension) agree. */
static int same_series(const qa_cell *a, const qa_cell *b, int rank_is_dim) {
    return !strcmp(a->method, b->method) && !strcmp(a->variant, b->variant) && !strcmp(a->axes, b->axes) &&
           (rank_is_dim || a->rank == b->rank) && (a->w_bits == 0) == (b->w_bits == 0);
}

static int ranks_of(const qa_cell *cells, int nc, int *ranks);

static int group_series(const qa_cell *cells, int nc, int rank_is_dim, series *out) {
    int ranks[MAX_GROUPS], multi_rank = !rank_is_dim && ranks_of(cells, nc, ranks) > 1;
    int ns = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        int k = 0;
        while (k < ns && !same_series(&cells[out[k].cells[0]], &cells[i], rank_is_dim)) k++;
        if (k == ns) {
            if (ns == MAX_SERIES) continue;
            out[ns].n = 0;
            qa_cells_series_label(&cells[i], out[ns].label, sizeof out[ns].label, 0, multi_rank);
            ns++;
        }
        if (out[k].n < MAX_GROUPS * MAX_GROUPS) out[k].cells[out[k].n++] = i;
    }
    return ns;
}

/* distinct bit settings, fp first, then by falling weight bits */
static int bit_groups(const qa_cell *cells, int nc, char bits[][16], int *wbits) {
    int nb = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        int seen = 0;
        for (int b = 0; b < nb; b++) seen |= !strcmp(bits[b], cells[i].bits);
        if (seen || nb == MAX_GROUPS) continue;
        snprintf(bits[nb], 16, "%s", cells[i].bits);
        wbits[nb++] = cells[i].w_bits ? cells[i].w_bits : 99;
    }
    for (int i = 1; i < nb; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && wbits[j] > wbits[j - 1]; j--) {
            int t = wbits[j]; wbits[j] = wbits[j - 1]; wbits[j - 1] = t;
            char tb[16];
            memcpy(tb, bits[j], 16); memcpy(bits[j], bits[j - 1], 16); memcpy(bits[j - 1], tb, 16);
        }
    return nb;
}

static int ranks_of(const qa_cell *cells, int nc, int *ranks) {
    int nr = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        int seen = 0;
        for (int k = 0; k < nr; k++) seen |= ranks[k] == cells[i].rank;
        if (!seen && nr < MAX_GROUPS) ranks[nr++] = cells[i].rank;
    }
    for (int i = 1; i < nr; i++)
        for (int j = i; j > 0 && ranks[j] < ranks[j - 1]; j--) { int t = ranks[j]; ranks[j] = ranks[j - 1]; ranks[j - 1] = t; }
    return nr;
}

int qa_plot_folder_metrics(const qa_cell *cells, int nc, int *mets) {
    int n = 0, domain = 0;
    const int order[] = {MET_SUBJECT, MET_PROMPT, MET_FID, MET_STYLE, MET_LOSS};
    for (int i = 0; i < nc; i++) domain |= cells[i].sum[MET_FID].n > 0;
    for (int k = 0; k < 5; k++) {
        int have = 0;
        for (int i = 0; i < nc; i++) have |= cells[i].sum[order[k]].n > 0;
        if (order[k] == MET_STYLE && !domain) have = 0; /* the style score matters for style/domain tasks */
        if (order[k] == MET_SUBJECT && domain) have = 0; /* no item in the domain task */
        if (have) mets[n++] = order[k];
    }
    return n;
}

double qa_plot_metric_upper(int met) {
    return met == MET_SUBJECT || met == MET_PROMPT || met == MET_PRIOR || met == MET_STYLE ? 1.0 : INFINITY;
}

static double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* the interval of a cell's metric, clipped to the metric's range */
static void cell_interval(const qa_cell *c, int met, double *lo, double *hi) {
    *lo = clip(c->sum[met].mean - c->sum[met].ci95, 0, qa_plot_metric_upper(met));
    *hi = clip(c->sum[met].mean + c->sum[met].ci95, 0, qa_plot_metric_upper(met));
}

static void n_phrase(int lo, int hi, char *buf, size_t len) {
    if (hi <= 1) snprintf(buf, len, "one run per cell, no interval");
    else if (lo == hi) snprintf(buf, len, "mean and 95%% CI over %d seeds", hi);
    else snprintf(buf, len, "mean and 95%% CI over %d-%d seeds", lo < 1 ? 1 : lo, hi);
}

void qa_plot_seeds_phrase(const qa_cell *cells, int nc, int met, char *buf, size_t len) {
    int lo = 1 << 30, hi = 0;
    for (int i = 0; i < nc; i++) {
        int n = cells[i].sum[met].n;
        if (n == 0) continue;
        if (n < lo) lo = n;
        if (n > hi) hi = n;
    }
    n_phrase(lo, hi, buf, len);
}

/* y range: bounded scores on [0, 1.05], bars of other metrics from 0 */
static const char *y_range(int met, int bars) {
    if (isfinite(qa_plot_metric_upper(met))) return "[0:1.05]";
    return bars ? "[0:*]" : "[*:*]";
}

/* The arguments a metric's bars and sweep start with: the title (what, the metric, how its
 * intervals were made), the metric's axis label and the y range. */
static void metric_args(plot_args *a, const char *what, const qa_cell *cells, int nc, int met, int bars) {
    char phrase[80];
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    qa_plot_arg(a, "%s%s: %s", what, qa_met_titles[met], phrase);
    qa_plot_arg(a, "%s", qa_met_axis[met]);
    qa_plot_arg(a, "%s", y_range(met, bars));
}

static const qa_cell *series_cell_at(const qa_cell *cells, const series *s, const char *bits, int met) {
    for (int j = 0; j < s->n; j++) {
        const qa_cell *c = &cells[s->cells[j]];
        if (!strcmp(c->bits, bits) && c->sum[met].n) return c;
    }
    return NULL;
}

/* Grouped bars: one group per bit setting, one bar per series, 95% CI whiskers. */
static int plot_bars(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    series ser[MAX_SERIES];
    int ns = group_series(cells, nc, 0, ser);
    char bits[MAX_GROUPS][16];
    int wb[MAX_GROUPS];
    int nb = bit_groups(cells, nc, bits, wb);
    if (ns == 0 || nb == 0) return QA_OK;
    char out[4200];
    snprintf(out, sizeof out, "%s/bars_%s", pdir, qa_met_names[met]);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    fprintf(f, "# per bit setting and series: mean, low and high end of the 95%% CI ('?': no such cell)\nbits");
    for (int k = 0; k < ns; k++) fprintf(f, " \"%s\" low high", ser[k].label);
    fprintf(f, "\n");
    for (int b = 0; b < nb; b++) {
        fprintf(f, "%s", bits[b]);
        for (int k = 0; k < ns; k++) {
            const qa_cell *c = series_cell_at(cells, &ser[k], bits[b], met);
            double lo, hi;
            if (!c) { fprintf(f, " ? ? ?"); continue; }
            cell_interval(c, met, &lo, &hi);
            fprintf(f, " %.8g %.8g %.8g", c->sum[met].mean, lo, hi);
        }
        fprintf(f, "\n");
    }
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    plot_args a = {0};
    metric_args(&a, "", cells, nc, met, 1);
    qa_plot_arg(&a, "%d", ns);
    return qa_plot_draw("bars", out, &a, err);
}

/* The series of a bit sweep, quantized ones first: their indices into ser, and how many of them
 * are quantized. A series without a value of the metric is left out. */
static int sweep_order(const qa_cell *cells, const series *ser, int ns, int met, int *order, int *n_quantized) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < ns; k++) {
            const qa_cell *c0 = &cells[ser[k].cells[0]];
            int has = 0;
            for (int j = 0; j < ser[k].n; j++) has |= cells[ser[k].cells[j]].sum[met].n > 0;
            if (has && (c0->w_bits != 0) == (pass == 0)) order[n++] = k;
        }
        if (pass == 0) *n_quantized = n;
    }
    return n;
}

/* distinct weight bits of the cells with a value (0: full precision), ascending */
static int weight_bits(const qa_cell *cells, int nc, int met, int *wbits) {
    int n = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].sum[met].n == 0) continue;
        int k = 0;
        while (k < n && wbits[k] != cells[i].w_bits) k++;
        if (k == n && n < MAX_GROUPS) wbits[n++] = cells[i].w_bits;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && wbits[j] < wbits[j - 1]; j--) { int t = wbits[j]; wbits[j] = wbits[j - 1]; wbits[j - 1] = t; }
    return n;
}

/* One block per series: its name, then x (the bits, nudged per series), bits, mean, low, high, n
 * by increasing bits; full-precision cells at fp_x. */
static void write_sweep_blocks(FILE *f, const qa_cell *cells, const series *ser, const int *order, int nd, int nq,
                               int met, int fp_x) {
    for (int d = 0; d < nd; d++) {
        const series *s = &ser[order[d]];
        /* nudged among the series of the same kind: the quantized ones, or the fp points */
        int rank_in_kind = d < nq ? d : d - nq, kind_size = d < nq ? nq : nd - nq;
        double dx = kind_size > 1 ? fmin(0.1, 0.8 / kind_size) * (rank_in_kind - (kind_size - 1) / 2.0) : 0;
        fprintf(f, "%s\"%s%s\"\n", d ? "\n\n" : "", s->label, d < nq ? "" : " fp");
        for (int w = 0; w <= 64; w++)
            for (int j = 0; j < s->n; j++) {
                const qa_cell *c = &cells[s->cells[j]];
                if (c->w_bits != w || c->sum[met].n == 0) continue;
                double lo, hi;
                cell_interval(c, met, &lo, &hi);
                fprintf(f, "%.4g %s %.8g %.8g %.8g %d\n", (w ? w : fp_x) + dx, c->bits, c->sum[met].mean, lo, hi, c->sum[met].n);
            }
    }
}

/* The bit sweep (the paper's Figure 1): a metric against weight bits, one line per quantized
 * series, the full-precision runs as points at 'fp'. Drawn only where the folder has two bit
 * settings or more. */
static int plot_bit_sweep(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    int wbits[MAX_GROUPS], nw = weight_bits(cells, nc, met, wbits);
    if (nw < 2) return QA_OK;
    series ser[MAX_SERIES];
    int order[MAX_SERIES], nq = 0;
    int nd = sweep_order(cells, ser, group_series(cells, nc, 0, ser), met, order, &nq);
    const int has_fp = wbits[0] == 0, fp_x = wbits[nw - 1] + 2;
    char out[4200], xtics[256] = "(";
    snprintf(out, sizeof out, "%s/bits_%s", pdir, qa_met_names[met]);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    write_sweep_blocks(f, cells, ser, order, nd, nq, met, fp_x);
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    for (int k = has_fp; k < nw; k++) snprintf(xtics + strlen(xtics), sizeof xtics - strlen(xtics), "%s%d", k > has_fp ? ", " : "", wbits[k]);
    snprintf(xtics + strlen(xtics), sizeof xtics - strlen(xtics), has_fp ? ", 'fp' %d)" : ")", fp_x);
    plot_args a = {0};
    metric_args(&a, "Bit sweep of ", cells, nc, met, 0);
    qa_plot_arg(&a, "[%g:%g]", wbits[has_fp] - 1.0, (has_fp ? fp_x : wbits[nw - 1]) + 1.0);
    qa_plot_arg(&a, "%s", xtics);
    qa_plot_arg(&a, "%d", nq);
    qa_plot_arg(&a, "%d", nd - nq);
    return qa_plot_draw("bits", out, &a, err);
}

/* file-name form of a series label */
static void file_name_of(const char *label, char *name, size_t len) {
    size_t n = strnlen(label, len - 1);
    memcpy(name, label, n);
    name[n] = 0;
    for (char *q = name; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '.')) *q = '_';
}

static int heatmap_cells(const qa_cell *cells, const series *s, int met) {
    int pts = 0;
    for (int j = 0; j < s->n; j++) pts += cells[s->cells[j]].sum[met].n > 0;
    return pts;
}

/* bits x rank heatmap of a metric, one figure per series with at least two ranks and two bit settings */
static int plot_heatmaps(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    int ranks[MAX_GROUPS], nr = ranks_of(cells, nc, ranks);
    char bits[MAX_GROUPS][16];
    int wb[MAX_GROUPS];
    int nb = bit_groups(cells, nc, bits, wb);
    if (nr < 2 || nb < 2) return QA_OK;
    series ser[MAX_SERIES];
    int ns = group_series(cells, nc, 1, ser);
    char phrase[80];
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    for (int k = 0; k < ns; k++) {
        if (heatmap_cells(cells, &ser[k], met) < 4) continue;
        char name[128], out[4200];
        file_name_of(ser[k].label, name, sizeof name);
        snprintf(out, sizeof out, "%s/heatmap_%s_%s", pdir, qa_met_names[met], name);
        FILE *f = qa_plot_open_dat(out, err);
        if (!f) return err->code;
        fprintf(f, "# rank_index bits_index mean ci95 rank bits\n");
        for (int j = 0; j < ser[k].n; j++) {
            const qa_cell *c = &cells[ser[k].cells[j]];
            if (c->sum[met].n == 0) continue;
            int ri = 0, bi = 0;
            while (ranks[ri] != c->rank) ri++;
            while (strcmp(bits[bi], c->bits)) bi++;
            fprintf(f, "%d %d %.8g %.8g %d %s\n", ri, bi, c->sum[met].mean, c->sum[met].ci95, c->rank, c->bits);
        }
        int rc = qa_plot_close_dat(f, out, err);
        if (rc) return rc;
        plot_args a = {0};
        qa_plot_arg(&a, "%s, %s: %s", ser[k].label, qa_met_titles[met], phrase);
        qa_plot_arg(&a, "%s", qa_met_titles[met]);
        qa_plot_arg(&a, "%d", nr);
        qa_plot_arg(&a, "%d", nb);
        rc = qa_plot_draw("heatmap", out, &a, err);
        if (rc) return rc;
    }
    return QA_OK;
}

/* the deployed model of each run: the integer deploy, a method's own variant, or FP runs */
static int is_deployed(const qa_cell *c, int met) {
    return c->n > 0 && c->sum[met].n > 0 && !(c->w_bits && !strcmp(c->variant, "fp"));
}

static double pareto_cost(const qa_cell *c, int storage) { return storage ? c->bits_pw : c->train_mb.mean; }

/* The Pareto front by increasing cost: each point that scores better than every cheaper one. */
static void write_front(FILE *f, const qa_cell *cells, const int *idx, int n, int met, int storage) {
    int order[MAX_SERIES * MAX_GROUPS];
    for (int k = 0; k < n; k++) order[k] = idx[k];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && pareto_cost(&cells[order[j]], storage) < pareto_cost(&cells[order[j - 1]], storage); j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    const int lower = qa_met_lower_better[met];
    double best = lower ? INFINITY : -INFINITY;
    fprintf(f, "\n\n# Pareto front: cost mean\n");
    for (int k = 0; k < n; k++) {
        double y = cells[order[k]].sum[met].mean;
        if (lower ? y < best : y > best) { best = y; fprintf(f, "%.6g %.8g\n", pareto_cost(&cells[order[k]], storage), y); }
    }
}

/* index of name in names (appended when new) */
static int index_of(char names[][64], int *n, const char *name) {
    for (int k = 0; k < *n; k++) if (!strcmp(names[k], name)) return k;
    snprintf(names[*n], 64, "%s", name);
    return (*n)++;
}

/* One block per deployed cell (its name, then cost, mean, low, high), then the front. Each cell's
 * marker: a colour per method (with its setting and rank where those vary) and a shape per bits
 * and deploy, as 1-based indices in colours and shapes (space-separated, one per block). Returns
 * the number of cell blocks. */
static int write_pareto_blocks(FILE *f, const qa_cell *cells, int nc, int met, int storage, char *colours, char *shapes,
                               size_t len) {
    char families[MAX_SERIES * MAX_GROUPS][64], kinds[MAX_SERIES * MAX_GROUPS][64];
    int nfamilies = 0, nkinds = 0, n = 0, idx[MAX_SERIES * MAX_GROUPS], ranks[MAX_GROUPS];
    const int multi_rank = ranks_of(cells, nc, ranks) > 1;
    colours[0] = shapes[0] = 0;
    for (int i = 0; i < nc && n < MAX_SERIES * MAX_GROUPS; i++) {
        const qa_cell *c = &cells[i];
        if (!is_deployed(c, met)) continue;
        char label[128], deploy[48], kind[64], family[64];
        qa_cells_series_label(c, label, sizeof label, 1, multi_rank);
        snprintf(kind, sizeof kind, "%s %s", c->bits, qa_cells_deploy_label(c, deploy, sizeof deploy));
        snprintf(family, sizeof family, "%s %s r%d", c->method, c->axes, multi_rank ? c->rank : 0);
        snprintf(colours + strlen(colours), len - strlen(colours), "%s%d", n ? " " : "", 1 + index_of(families, &nfamilies, family));
        snprintf(shapes + strlen(shapes), len - strlen(shapes), "%s%d", n ? " " : "", 1 + index_of(kinds, &nkinds, kind));
        double lo, hi;
        cell_interval(c, met, &lo, &hi);
        fprintf(f, "%s\"%s\"\n%.6g %.8g %.8g %.8g\n", n ? "\n\n" : "", label, pareto_cost(c, storage), c->sum[met].mean, lo, hi);
        idx[n++] = i;
    }
    write_front(f, cells, idx, n, met, storage);
    return n;
}

/* Memory (or storage) against quality, one point per deployed cell with CI bars, a colour per
 * method and a shape per bits and deploy; the Pareto front (no other point costs less and scores
 * better) as a step line. Drawn only where the cells' costs differ. */
static int plot_pareto(const char *pdir, const qa_cell *cells, int nc, int met, int storage, qa_error *err) {
    int n = 0, costs_differ = 0;
    const qa_cell *first = NULL;
    for (int i = 0; i < nc; i++) {
        if (!is_deployed(&cells[i], met)) continue;
        n++;
        if (!first) first = &cells[i];
        costs_differ |= fabs(pareto_cost(&cells[i], storage) - pareto_cost(first, storage)) > 1e-9;
    }
    if (n < 2 || !costs_differ) return QA_OK; /* one cost: no trade-off to show */
    char out[4200];
    snprintf(out, sizeof out, "%s/pareto_%s_%s", pdir, storage ? "storage" : "training_memory", qa_met_names[met]);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    char colours[1400], shapes[1400];
    int blocks = write_pareto_blocks(f, cells, nc, met, storage, colours, shapes, sizeof colours);
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    if (strlen(colours) + 8 >= sizeof colours || strlen(shapes) + 8 >= sizeof shapes)
        return qa_fail(err, QA_ERR_RUN, "plot: %s: %d cells, more than one figure's markers can name", out, blocks);
    char phrase[80];
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    plot_args a = {0};
    qa_plot_arg(&a, "%s against %s: %s; dashed: the Pareto front", qa_met_titles[met], storage ? "storage" : "training memory", phrase);
    qa_plot_arg(&a, "%s", storage ? "deployed bits per weight of the adapted layers"
                               : "training memory of the adapted layers (MiB: frozen + trainable + gradients + optimizer)");
    qa_plot_arg(&a, "%s", qa_met_axis[met]);
    qa_plot_arg(&a, "%s", y_range(met, 0));
    qa_plot_arg(&a, "%d", blocks);
    qa_plot_arg(&a, "%s", colours);
    qa_plot_arg(&a, "%s", shapes);
    return qa_plot_draw("pareto", out, &a, err);
}

/* one curve per run group: the cell of the run's first deploy variant */
static int is_curve(const qa_cell *c, const char *bits) {
    return c->n > 0 && !strcmp(c->bits, bits) && c->runs[0]->n_train > 0 && !strcmp(c->runs[0]->eval[0].variant, c->variant);
}

/* A curve's block: its name, then per step the mean over seeds of the 20-step moving average of
 * the loss and its 95% CI (the low end clipped at 0). */
static void write_loss_block(FILE *f, const qa_cell *c, int first) {
    int steps = c->runs[0]->n_train;
    for (int s = 1; s < c->n; s++) if (c->runs[s]->n_train < steps) steps = c->runs[s]->n_train;
    fprintf(f, "%s\"%s%s%s r%d\"\n", first ? "" : "\n\n", c->method, c->axes[0] ? " " : "", c->axes, c->rank);
    double acc[QA_CELL_MAX_SEEDS] = {0};
    for (int t = 0; t < steps; t++) {
        double x[QA_CELL_MAX_SEEDS];
        for (int s = 0; s < c->n; s++) {
            const double *tr = c->runs[s]->train;
            acc[s] += tr[t * 5 + 1];
            if (t >= 20) acc[s] -= tr[(t - 20) * 5 + 1];
            x[s] = acc[s] / (t < 20 ? t + 1 : 20);
        }
        qa_summary sm = qa_stats_summarize(x, c->n);
        fprintf(f, "%g %.8g %.8g %.8g\n", c->runs[0]->train[t * 5], sm.mean, fmax(0, sm.mean - sm.ci95), sm.mean + sm.ci95);
    }
}

/* Training loss per run group: the mean over seeds and its 95% CI as a band, one figure per bit setting. */
static int plot_loss_bands(const char *pdir, const qa_cell *cells, int nc, qa_error *err) {
    char bits[MAX_GROUPS][16];
    int wb[MAX_GROUPS];
    int nb = bit_groups(cells, nc, bits, wb);
    for (int b = 0; b < nb; b++) {
        int curves = 0, n_lo = 1 << 30, n_hi = 0;
        for (int i = 0; i < nc; i++) curves += is_curve(&cells[i], bits[b]);
        if (curves == 0) continue;
        char out[4200];
        snprintf(out, sizeof out, "%s/loss_curves_%s", pdir, bits[b]);
        FILE *f = qa_plot_open_dat(out, err);
        if (!f) return err->code;
        fprintf(f, "# per curve: step, mean, low, high\n");
        curves = 0;
        for (int i = 0; i < nc; i++) {
            if (!is_curve(&cells[i], bits[b])) continue;
            write_loss_block(f, &cells[i], curves++ == 0);
            n_lo = cells[i].n < n_lo ? cells[i].n : n_lo;
            n_hi = cells[i].n > n_hi ? cells[i].n : n_hi;
        }
        int rc = qa_plot_close_dat(f, out, err);
        if (rc) return rc;
        char phrase[80];
        n_phrase(n_lo, n_hi, phrase, sizeof phrase);
        plot_args a = {0};
        if (n_hi <= 1) qa_plot_arg(&a, "Fine-tuning loss at %s: one run per curve, no band", bits[b]);
        else qa_plot_arg(&a, "Fine-tuning loss at %s: %s (band)", bits[b], phrase);
        qa_plot_arg(&a, "%d", curves);
        rc = qa_plot_draw("loss_curves", out, &a, err);
        if (rc) return rc;
    }
    return QA_OK;
}

int qa_plot_statistics(const char *pdir, const qa_cell *cells, int nc, qa_error *err) {
    int mets[8], nm = qa_plot_folder_metrics(cells, nc, mets);
    int rc = plot_loss_bands(pdir, cells, nc, err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bars(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bit_sweep(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_heatmaps(pdir, cells, nc, mets[k], err);
    /* quality against cost: the folder's main quality metric */
    if (!rc && nm > 0) rc = plot_pareto(pdir, cells, nc, mets[0], 0, err);
    if (!rc && nm > 0) rc = plot_pareto(pdir, cells, nc, mets[0], 1, err);
    return rc;
}
