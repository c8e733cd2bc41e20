#include "harness/plot_stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/plot_gnuplot.h"
#include "harness/plot_pareto.h"
#include "harness/util.h"

#define MAX_SERIES 48
#define MAX_GROUPS 16

/* A series: the cells that differ only in one grid dimension (bits, or bits and rank). */
typedef struct {
    char label[128];
    int cells[MAX_GROUPS * MAX_GROUPS];
    int n;
} series;

/* ---- names, orders and looks shared by every figure of a folder ---- */

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

int qa_plot_multi_rank(const qa_cell *cells, int nc) {
    int ranks[MAX_GROUPS];
    return ranks_of(cells, nc, ranks) > 1;
}

void qa_plot_series_name(const qa_cell *c, int multi_rank, char *buf, size_t len) {
    /* a full-precision cell names its bits ("lora fp"), as the forest and the Pareto keys do */
    qa_cells_series_label(c, buf, len, c->w_bits == 0, multi_rank);
}

/* Same series when method, deploy variant, axes (and rank, unless the rank is a dimension) agree. */
static int same_series(const qa_cell *a, const qa_cell *b, int rank_is_dim) {
    return !strcmp(a->method, b->method) && !strcmp(a->variant, b->variant) && !strcmp(a->axes, b->axes) &&
           (rank_is_dim || a->rank == b->rank) && (a->w_bits == 0) == (b->w_bits == 0);
}

static int group_series(const qa_cell *cells, int nc, int rank_is_dim, series *out) {
    int multi_rank = !rank_is_dim && qa_plot_multi_rank(cells, nc);
    int ns = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        int k = 0;
        while (k < ns && !same_series(&cells[out[k].cells[0]], &cells[i], rank_is_dim)) k++;
        if (k == ns) {
            if (ns == MAX_SERIES) continue;
            out[ns].n = 0;
            qa_plot_series_name(&cells[i], multi_rank, out[ns].label, sizeof out[ns].label);
            ns++;
        }
        if (out[k].n < MAX_GROUPS * MAX_GROUPS) out[k].cells[out[k].n++] = i;
    }
    return ns;
}

/* the sort key of a bit setting: weight bits (full precision above all), then activation bits */
static int bits_key(const char *bits, int w_bits) {
    int a = 0;
    const char *p = strchr(bits, 'a');
    if (p) a = atoi(p + 1);
    return (w_bits ? w_bits : 999) * 1000 + a;
}

int qa_plot_bit_settings(const qa_cell *cells, int nc, char bits[][16]) {
    int nb = 0, key[MAX_GROUPS];
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0 || qa_plot_bits_index(bits, nb, cells[i].bits) >= 0 || nb == MAX_GROUPS) continue;
        snprintf(bits[nb], 16, "%s", cells[i].bits);
        key[nb++] = bits_key(cells[i].bits, cells[i].w_bits);
    }
    for (int i = 1; i < nb; i++) /* insertion sort, rising */
        for (int j = i; j > 0 && (key[j] < key[j - 1] || (key[j] == key[j - 1] && strcmp(bits[j], bits[j - 1]) < 0)); j--) {
            int t = key[j]; key[j] = key[j - 1]; key[j - 1] = t;
            char tb[16];
            memcpy(tb, bits[j], 16); memcpy(bits[j], bits[j - 1], 16); memcpy(bits[j - 1], tb, 16);
        }
    return nb;
}

int qa_plot_bits_index(char bits[][16], int nb, const char *name) {
    for (int b = 0; b < nb; b++) if (!strcmp(bits[b], name)) return b;
    return -1;
}

int qa_plot_assign_looks(int n, const int *pref_colour, const int *pref_mark, int keep_mark, int *colour, int *mark) {
    unsigned char taken[QA_PLOT_COLOURS][QA_PLOT_MARKS];
    memset(taken, 0, sizeof taken);
    for (int k = 0; k < n; k++) {
        int c0 = pref_colour[k] % QA_PLOT_COLOURS, m0 = pref_mark[k] % QA_PLOT_MARKS, found = 0;
        /* the preferred pair, then the other marks of its colour (or colours of its mark), then the next */
        for (int outer = 0; outer < QA_PLOT_COLOURS * QA_PLOT_MARKS && !found; outer++) {
            int dc = keep_mark ? outer % QA_PLOT_COLOURS : outer / QA_PLOT_MARKS;
            int dm = keep_mark ? outer / QA_PLOT_COLOURS : outer % QA_PLOT_MARKS;
            int c = (c0 + dc) % QA_PLOT_COLOURS, m = (m0 + dm) % QA_PLOT_MARKS;
            if (taken[c][m]) continue;
            taken[c][m] = 1;
            colour[k] = c + 1;
            mark[k] = m + 1;
            found = 1;
        }
        if (!found) return -1;
    }
    return 0;
}

int qa_plot_method_index(const qa_cell *cells, int nc, const char *method) {
    int n = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        int first = 1;
        for (int j = 0; j < i && first; j++) first = cells[j].n == 0 || strcmp(cells[j].method, cells[i].method);
        if (!first) continue;
        if (!strcmp(cells[i].method, method)) return n;
        n++;
    }
    return n;
}

/* looks as the templates read them: "C:M C:M ..." */
static void looks_text(const int *colour, const int *mark, int n, char *buf, size_t len) {
    buf[0] = 0;
    for (int k = 0; k < n; k++) snprintf(buf + strlen(buf), len - strlen(buf), "%s%d:%d", k ? " " : "", colour[k], mark[k]);
}

/* ---- metrics and their axes ---- */

int qa_plot_folder_metrics(const qa_cell *cells, int nc, int *mets) {
    int n = 0, domain = 0, style = 0;
    for (int i = 0; i < nc; i++) {
        domain |= cells[i].sum[MET_FID].n > 0;
        style |= cells[i].task && !strcmp(cells[i].task, "style");
    }
    /* the style task is judged by its style score first (the Pareto figures take the first) */
    const int subject_order[] = {MET_SUBJECT, MET_PROMPT, MET_FID, MET_STYLE, MET_LOSS};
    const int style_order[] = {MET_STYLE, MET_SUBJECT, MET_PROMPT, MET_FID, MET_LOSS};
    const int *order = style && !domain ? style_order : subject_order;
    for (int k = 0; k < 5; k++) {
        int have = 0;
        for (int i = 0; i < nc; i++) have |= cells[i].sum[order[k]].n > 0;
        if (order[k] == MET_STYLE && !domain && !style) have = 0; /* the style score matters for style/domain tasks */
        if (order[k] == MET_SUBJECT && domain) have = 0; /* no item in the domain task */
        if (have) mets[n++] = order[k];
    }
    return n;
}

/* the schema's bound of a score with a natural top (the style score's is above 1) */
double qa_plot_metric_upper(int met) {
    return met == MET_SUBJECT || met == MET_PROMPT || met == MET_PRIOR || met == MET_STYLE ? qa_metrics[met].hi : INFINITY;
}

static double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

void qa_plot_cell_interval(const qa_cell *c, int met, double *lo, double *hi) {
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

void qa_plot_value_axis(double upper, int tight, const char *axis, double lo, double hi, char *range, size_t range_len,
                        char *label, size_t label_len) {
    /* a long label on two lines, parted before its last parenthesis, else after its colon */
    const char *cut = NULL;
    if (strlen(axis) > 45) {
        for (const char *q = strstr(axis, " ("); q; q = strstr(q + 2, " (")) if (q - axis > 10) cut = q;
        if (!cut && strstr(axis, ": ")) cut = strstr(axis, ": ") + 1;
    }
    if (cut) snprintf(label, label_len, "%.*s\\n%s", (int)(cut - axis), axis, cut + 1);
    else snprintf(label, label_len, "%s", axis);
    if ((isfinite(upper) && !tight) || !(hi >= lo)) {
        snprintf(range, range_len, isfinite(upper) ? "[0:%g]" : "[0:*]", 1.05 * upper);
        return;
    }
    /* the data and a margin, out to a round value one decade below the span */
    double span = hi > lo ? hi - lo : (hi > 0 ? hi : 1), pad = 0.06 * span;
    double q = pow(10, floor(log10(span + 2 * pad)) - 1);
    double bottom = floor((lo - pad) / q) * q, top = fmin(ceil((hi + pad) / q) * q, 1.05 * upper);
    if (bottom <= 0 || lo < 0.25 * span) { /* near 0 for its span: from 0 */
        snprintf(range, range_len, "[0:%.6g]", top);
        return;
    }
    snprintf(range, range_len, "[%.6g:%.6g]", bottom, top);
    snprintf(label + strlen(label), label_len - strlen(label), "\\n(axis from %.6g, not 0)", bottom);
}

static const qa_cell *series_cell_at(const qa_cell *cells, const series *s, const char *bits, int met) {
    for (int j = 0; j < s->n; j++) {
        const qa_cell *c = &cells[s->cells[j]];
        if (!strcmp(c->bits, bits) && c->sum[met].n) return c;
    }
    return NULL;
}

/* ---- bars ---- */

/* One group of bars per series (its name under it), one bar per bit setting with its 95% CI,
 * a look per bit setting named in the key: however many series, the key has a few entries and
 * every bar is named by its place. A wider gap parts the groups of two methods. */
static int plot_bars(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    series ser[MAX_SERIES];
    int ns = group_series(cells, nc, 0, ser);
    char bits[MAX_GROUPS][16];
    int nb = qa_plot_bit_settings(cells, nc, bits);
    if (ns == 0 || nb == 0) return QA_OK;
    char out[4200];
    snprintf(out, sizeof out, "%s/bars_%s", pdir, qa_met_names[met]);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    fprintf(f, "# one line per bar: x, mean, low and high end of the 95%% CI, bit setting (1-based:");
    for (int b = 0; b < nb; b++) fprintf(f, " %s", bits[b]);
    fprintf(f, "), series\n");
    double x = -1, centre[MAX_SERIES];
    int groups[MAX_SERIES], ng = 0, label_chars = 0;
    const char *prev_method = NULL;
    for (int k = 0; k < ns; k++) {
        int bars = 0;
        for (int b = 0; b < nb; b++) bars += series_cell_at(cells, &ser[k], bits[b], met) != NULL;
        if (bars == 0) continue;
        const char *method = cells[ser[k].cells[0]].method;
        x += prev_method && strcmp(prev_method, method) ? 2.2 : 1.6;
        prev_method = method;
        double first = x;
        for (int b = 0; b < nb; b++) {
            const qa_cell *c = series_cell_at(cells, &ser[k], bits[b], met);
            if (!c) continue;
            double lo, hi;
            qa_plot_cell_interval(c, met, &lo, &hi);
            fprintf(f, "%.6g %.8g %.8g %.8g %d \"%s\"\n", x, c->sum[met].mean, lo, hi, b + 1, ser[k].label);
            x += 1;
        }
        x -= 1;
        centre[ng] = (first + x) / 2;
        groups[ng++] = k;
        if ((int)strlen(ser[k].label) > label_chars) label_chars = (int)strlen(ser[k].label);
    }
    fprintf(f, "\n\n# the groups: x of the middle, series\n");
    for (int g = 0; g < ng; g++) fprintf(f, "%.6g \"%s\"\n", centre[g], ser[groups[g]].label);
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    char phrase[80], names[MAX_GROUPS * 17] = "", looks[MAX_GROUPS * 8];
    int colour[MAX_GROUPS], mark[MAX_GROUPS];
    for (int b = 0; b < nb; b++) {
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", b ? " " : "", bits[b]);
        /* solid bars, a colour each: pale hatchings of light colours hid the bars; past eight
         * settings the colours come round hatched */
        colour[b] = b % QA_PLOT_COLOURS + 1;
        mark[b] = b / QA_PLOT_COLOURS + 1;
    }
    looks_text(colour, mark, nb, looks, sizeof looks);
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    char yrange[64], ylabel[256];
    qa_plot_value_axis(qa_plot_metric_upper(met), 0, qa_met_axis[met], NAN, NAN, yrange, sizeof yrange, ylabel, sizeof ylabel);
    plot_args a = {0};
    qa_plot_arg(&a, "%s: %s", qa_met_titles[met], phrase);
    qa_plot_arg(&a, "%s", ylabel);
    qa_plot_arg(&a, "%s", yrange);
    qa_plot_arg(&a, "%s", names);
    qa_plot_arg(&a, "%s", looks);
    qa_plot_arg(&a, "%d", label_chars);
    return qa_plot_draw("bars", out, &a, err);
}

/* ---- the bit sweep ---- */

/* A panel of the bit sweep: its quantized series (lines), then its full-precision ones (points). */
typedef struct {
    int n_lines, n_points;
    const char *title;
} sweep_panel;

/* more series than this in one panel: a panel per method */
#define SWEEP_PANEL_MAX 12

static int has_metric(const qa_cell *cells, const series *s, int met) {
    for (int j = 0; j < s->n; j++) if (cells[s->cells[j]].sum[met].n > 0) return 1;
    return 0;
}

/* The series of a bit sweep in drawing order (indices into ser), panel by panel: one panel, or
 * a panel per method where the series are too many for one. A series without a value of the
 * metric is left out. Returns how many series; the panels into panels, *npanels. */
static int sweep_order(const qa_cell *cells, const series *ser, int ns, int met, int *order, sweep_panel *panels,
                       int *npanels) {
    const char *methods[MAX_SERIES];
    int nm = 0, drawn = 0;
    for (int k = 0; k < ns; k++) {
        if (!has_metric(cells, &ser[k], met)) continue;
        drawn++;
        const char *m = cells[ser[k].cells[0]].method;
        int seen = 0;
        for (int j = 0; j < nm; j++) seen |= !strcmp(methods[j], m);
        if (!seen) methods[nm++] = m;
    }
    const int per_method = drawn > SWEEP_PANEL_MAX && nm > 1;
    int n = 0;
    *npanels = per_method ? nm : 1;
    for (int p = 0; p < *npanels; p++) {
        panels[p] = (sweep_panel){0, 0, per_method ? methods[p] : ""};
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < ns; k++) {
                const qa_cell *c0 = &cells[ser[k].cells[0]];
                if (!has_metric(cells, &ser[k], met) || (c0->w_bits != 0) != (pass == 0)) continue;
                if (per_method && strcmp(c0->method, methods[p])) continue;
                order[n++] = k;
                if (pass == 0) panels[p].n_lines++;
                else panels[p].n_points++;
            }
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

/* One block per series: its name, then x (the bits, nudged among the series of its panel and
 * kind), bits, mean, low, high, n by increasing bits; full-precision cells at fp_x. The lowest
 * low and highest high into *lo_all, *hi_all. */
static void write_sweep_blocks(FILE *f, const qa_cell *cells, const series *ser, const int *order,
                               const sweep_panel *panels, int npanels, int met, int fp_x, double *lo_all, double *hi_all) {
    *lo_all = INFINITY;
    *hi_all = -INFINITY;
    int d = 0;
    for (int p = 0; p < npanels; p++)
        for (int r = 0; r < panels[p].n_lines + panels[p].n_points; r++, d++) {
            const series *s = &ser[order[d]];
            int line = r < panels[p].n_lines;
            int rank_in_kind = line ? r : r - panels[p].n_lines, kind_size = line ? panels[p].n_lines : panels[p].n_points;
            double dx = kind_size > 1 ? fmin(0.1, 0.8 / kind_size) * (rank_in_kind - (kind_size - 1) / 2.0) : 0;
            fprintf(f, "%s\"%s\"\n", d ? "\n\n" : "", s->label);
            for (int w = 0; w <= 64; w++)
                for (int j = 0; j < s->n; j++) {
                    const qa_cell *c = &cells[s->cells[j]];
                    if (c->w_bits != w || c->sum[met].n == 0) continue;
                    double lo, hi;
                    qa_plot_cell_interval(c, met, &lo, &hi);
                    *lo_all = fmin(*lo_all, lo);
                    *hi_all = fmax(*hi_all, hi);
                    fprintf(f, "%.4g %s %.8g %.8g %.8g %d\n", (w ? w : fp_x) + dx, c->bits, c->sum[met].mean, lo, hi, c->sum[met].n);
                }
        }
}

/* Looks of the drawn series: a colour per method, the method's series told apart by their marks. */
static int sweep_looks(const qa_cell *cells, int nc, const series *ser, const int *order, int nd, char *buf, size_t len) {
    int pref_colour[MAX_SERIES], pref_mark[MAX_SERIES], colour[MAX_SERIES], mark[MAX_SERIES];
    for (int d = 0; d < nd; d++) {
        const char *method = cells[ser[order[d]].cells[0]].method;
        pref_colour[d] = qa_plot_method_index(cells, nc, method);
        pref_mark[d] = 0;
        for (int e = 0; e < d; e++) pref_mark[d] += !strcmp(cells[ser[order[e]].cells[0]].method, method);
    }
    if (qa_plot_assign_looks(nd, pref_colour, pref_mark, 0, colour, mark)) return -1;
    looks_text(colour, mark, nd, buf, len);
    return 0;
}

/* The bit sweep (the paper's Figure 1): a metric against weight bits, one line per quantized
 * series, the full-precision runs as points at 'fp'; a panel per method where the series are
 * many. Drawn only where the folder has two bit settings or more. */
static int plot_bit_sweep(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    int wbits[MAX_GROUPS], nw = weight_bits(cells, nc, met, wbits);
    if (nw < 2) return QA_OK;
    series ser[MAX_SERIES];
    sweep_panel panels[MAX_SERIES];
    int order[MAX_SERIES], npanels;
    int nd = sweep_order(cells, ser, group_series(cells, nc, 0, ser), met, order, panels, &npanels);
    const int has_fp = wbits[0] == 0, fp_x = wbits[nw - 1] + 2;
    char out[4200], xtics[256] = "(", looks[MAX_SERIES * 8], panel_text[MAX_SERIES * 40] = "";
    snprintf(out, sizeof out, "%s/bits_%s", pdir, qa_met_names[met]);
    if (sweep_looks(cells, nc, ser, order, nd, looks, sizeof looks))
        return qa_fail(err, QA_ERR_RUN, "plot: %s: %d series, more than one figure's looks can tell apart", out, nd);
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    double lo, hi;
    write_sweep_blocks(f, cells, ser, order, panels, npanels, met, fp_x, &lo, &hi);
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    for (int k = has_fp; k < nw; k++) snprintf(xtics + strlen(xtics), sizeof xtics - strlen(xtics), "%s%d", k > has_fp ? ", " : "", wbits[k]);
    snprintf(xtics + strlen(xtics), sizeof xtics - strlen(xtics), has_fp ? ", 'fp' %d)" : ")", fp_x);
    for (int p = 0; p < npanels; p++)
        snprintf(panel_text + strlen(panel_text), sizeof panel_text - strlen(panel_text), "%s%d:%d:%s", p ? " " : "",
                 panels[p].n_lines, panels[p].n_points, panels[p].title);
    char phrase[80], yrange[64], ylabel[256];
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    qa_plot_value_axis(qa_plot_metric_upper(met), 0, qa_met_axis[met], lo, hi, yrange, sizeof yrange, ylabel, sizeof ylabel);
    plot_args a = {0};
    qa_plot_arg(&a, "Bit sweep of %s: %s", qa_met_titles[met], phrase);
    qa_plot_arg(&a, "%s", ylabel);
    qa_plot_arg(&a, "%s", yrange);
    qa_plot_arg(&a, "[%g:%g]", wbits[has_fp] - 1.0, (has_fp ? fp_x : wbits[nw - 1]) + 1.0);
    qa_plot_arg(&a, "%s", xtics);
    qa_plot_arg(&a, "%s", looks);
    qa_plot_arg(&a, "%s", panel_text);
    return qa_plot_draw("bits", out, &a, err);
}

/* ---- heatmaps ---- */

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
    int nb = qa_plot_bit_settings(cells, nc, bits);
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
            int ri = 0;
            while (ranks[ri] != c->rank) ri++;
            fprintf(f, "%d %d %.8g %.8g %d %s\n", ri, qa_plot_bits_index(bits, nb, c->bits), c->sum[met].mean,
                    c->sum[met].ci95, c->rank, c->bits);
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

/* ---- loss curves ---- */

/* one curve per run group: the cell of the run's first deploy variant */
static int is_curve(const qa_cell *c, const char *bits) {
    return c->n > 0 && !strcmp(c->bits, bits) && c->runs[0]->n_train > 0 && !strcmp(c->runs[0]->eval[0].variant, c->variant);
}

/* A curve: per step the mean over seeds of the 20-step moving average of the loss and its 95%
 * CI (the low end clipped at 0). */
typedef struct {
    const qa_cell *cell;
    char name[128];
    int steps;
    double *step, *mean, *lo, *hi;
} curve;

static void curve_compute(curve *cv, const qa_cell *c, int multi_rank) {
    int steps = c->runs[0]->n_train;
    for (int s = 1; s < c->n; s++) if (c->runs[s]->n_train < steps) steps = c->runs[s]->n_train;
    /* the training run's name: what its deploy variants share */
    int off = snprintf(cv->name, sizeof cv->name, "%s%s", c->method, c->w_bits ? "" : " fp");
    if (c->axes[0]) off += snprintf(cv->name + off, sizeof cv->name - (size_t)off, " %s", c->axes);
    if (multi_rank) snprintf(cv->name + off, sizeof cv->name - (size_t)off, " r%d", c->rank);
    cv->cell = c;
    cv->steps = steps;
    double *block = qa_alloc(sizeof(double) * 4 * (size_t)(steps > 0 ? steps : 1));
    cv->step = block;
    cv->mean = block + steps;
    cv->lo = block + 2 * steps;
    cv->hi = block + 3 * steps;
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
        cv->step[t] = c->runs[0]->train[t * 5];
        cv->mean[t] = sm.mean;
        cv->lo[t] = fmax(0, sm.mean - sm.ci95);
        cv->hi[t] = sm.mean + sm.ci95;
    }
}

/* the largest gap between two curves' means over their common steps */
static double curve_gap(const curve *a, const curve *b) {
    int steps = a->steps < b->steps ? a->steps : b->steps;
    double gap = 0;
    for (int t = 0; t < steps; t++) gap = fmax(gap, fabs(a->mean[t] - b->mean[t]));
    return gap;
}

/* Curves that coincide: groups whose means are everywhere within tol (each curve joins the
 * first group it is within tol of, member by member). group[k]: the group of curve k, numbered
 * by first member; returns how many groups. */
static int coinciding_groups(const curve *cv, int n, double tol, int *group) {
    int ng = 0;
    for (int k = 0; k < n; k++) {
        group[k] = -1;
        for (int g = 0; g < ng && group[k] < 0; g++) {
            int close = 1;
            for (int j = 0; j < k && close; j++) close = group[j] != g || curve_gap(&cv[j], &cv[k]) <= tol;
            if (close) group[k] = g;
        }
        if (group[k] < 0) group[k] = ng++;
    }
    return ng;
}

/* "\nlora, qlora and ir-qlora coincide (largest gap 3e-05)" per group of two curves or more */
static void coincide_notes(const curve *cv, int n, const int *group, int ng, char *buf, size_t len) {
    for (int g = 0; g < ng; g++) {
        int members[MAX_SERIES], m = 0;
        double gap = 0;
        for (int k = 0; k < n; k++) if (group[k] == g) members[m++] = k;
        if (m < 2) continue;
        for (int i = 0; i < m; i++)
            for (int j = i + 1; j < m; j++) gap = fmax(gap, curve_gap(&cv[members[i]], &cv[members[j]]));
        snprintf(buf + strlen(buf), len - strlen(buf), "\\n");
        for (int i = 0; i < m; i++)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i == 0 ? "" : (i == m - 1 ? " and " : ", "), cv[members[i]].name);
        snprintf(buf + strlen(buf), len - strlen(buf), " coincide (largest gap %.2g)", gap);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median over curves and steps of the CI's upper half-width */
static double median_half_width(const curve *cv, int n) {
    size_t total = 0, k = 0;
    for (int i = 0; i < n; i++) total += cv[i].cell->n >= 2 ? (size_t)cv[i].steps : 0; /* one run: no interval */
    if (total == 0) return 0;
    double *w = qa_alloc(sizeof(double) * total);
    for (int i = 0; i < n; i++)
        if (cv[i].cell->n >= 2)
            for (int t = 0; t < cv[i].steps; t++) w[k++] = cv[i].hi[t] - cv[i].mean[t];
    qsort(w, total, sizeof(double), cmp_double);
    double med = total % 2 ? w[total / 2] : 0.5 * (w[total / 2 - 1] + w[total / 2]);
    qa_free(w);
    return med;
}

/* A band needs this many seeds: with 2 the 95% CI's t has 1 degree of freedom (12.7 standard
 * errors), and the bands of every curve cover the figure. */
#define QA_LOSS_BAND_MIN_SEEDS 3

/* The title's first line: the bits, the seeds, and where the CI is drawn as bands (n_banded of
 * the n curves; few: the curves make three groups or fewer, so bands would not bury them). */
static void loss_title(const char *bits, const curve *cv, int n, int n_lo, int n_hi, int few, int n_banded, char *buf,
                       size_t len) {
    char phrase[80], seeds[32];
    n_phrase(n_lo, n_hi, phrase, sizeof phrase);
    if (n_lo == n_hi) snprintf(seeds, sizeof seeds, "%d", n_hi);
    else snprintf(seeds, sizeof seeds, "%d-%d", n_lo, n_hi);
    if (n_hi <= 1) snprintf(buf, len, "Fine-tuning loss at %s: one run per curve, no band", bits);
    else if (n_banded && n_lo >= QA_LOSS_BAND_MIN_SEEDS) snprintf(buf, len, "Fine-tuning loss at %s: %s (band)", bits, phrase);
    else if (n_banded)
        snprintf(buf, len, "Fine-tuning loss at %s: %s (band where a curve has %d seeds or more)", bits, phrase,
                 QA_LOSS_BAND_MIN_SEEDS);
    else if (few)
        snprintf(buf, len, "Fine-tuning loss at %s: mean over %s seeds; no CI bands below %d seeds (median 95%% CI: +-%.2g)",
                 bits, seeds, QA_LOSS_BAND_MIN_SEEDS, median_half_width(cv, n));
    else
        snprintf(buf, len, "Fine-tuning loss at %s: mean over %s seeds; %d curves, so no CI bands (median 95%% CI: +-%.2g)",
                 bits, seeds, n, median_half_width(cv, n));
}

/* Every curve's block (its name, then step, mean, low, high), and the template's arguments:
 * the title with its notes, the looks, and which curves have their band drawn. */
static int draw_loss_curves(const char *out, const char *bits, const qa_cell *cells, int nc, curve *cv, int n,
                            qa_error *err) {
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    fprintf(f, "# per curve: step, mean, low, high\n");
    int n_lo = 1 << 30, n_hi = 0;
    double top = 0, bottom = INFINITY;
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s\"%s\"\n", k ? "\n\n" : "", cv[k].name);
        for (int t = 0; t < cv[k].steps; t++) {
            fprintf(f, "%g %.8g %.8g %.8g\n", cv[k].step[t], cv[k].mean[t], cv[k].lo[t], cv[k].hi[t]);
            top = fmax(top, cv[k].mean[t]);
            bottom = fmin(bottom, cv[k].mean[t]);
        }
        n_lo = cv[k].cell->n < n_lo ? cv[k].cell->n : n_lo;
        n_hi = cv[k].cell->n > n_hi ? cv[k].cell->n : n_hi;
    }
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    /* coinciding: everywhere closer than 1% of the span of the means, a line's width or two */
    int group[MAX_SERIES], pref_colour[MAX_SERIES], pref_mark[MAX_SERIES], colour[MAX_SERIES], mark[MAX_SERIES];
    int ng = coinciding_groups(cv, n, 0.01 * (top - bottom), group);
    /* bands only where few and meaningful: at most three groups of coinciding curves, one band
     * per group, on its first curve that is a mean over QA_LOSS_BAND_MIN_SEEDS seeds or more */
    const int few = ng <= 3;
    int band[MAX_SERIES], n_banded = 0;
    double band_lo = bottom, band_hi = top; /* the axis spans what is drawn: means and bands */
    for (int k = 0; k < n; k++) {
        int group_has_band = 0;
        for (int j = 0; j < k; j++) group_has_band |= group[j] == group[k] && band[j];
        band[k] = few && !group_has_band && cv[k].cell->n >= QA_LOSS_BAND_MIN_SEEDS;
        n_banded += band[k];
        for (int t = 0; band[k] && t < cv[k].steps; t++) {
            band_lo = fmin(band_lo, cv[k].lo[t]);
            band_hi = fmax(band_hi, cv[k].hi[t]);
        }
    }
    char title[1200], band_flags[MAX_SERIES * 2 + 1] = "", looks[MAX_SERIES * 8], yrange[64], ylabel[160];
    loss_title(bits, cv, n, n_lo, n_hi, few, n_banded, title, sizeof title);
    coincide_notes(cv, n, group, ng, title, sizeof title);
    for (int k = 0; k < n; k++) {
        snprintf(band_flags + strlen(band_flags), sizeof band_flags - strlen(band_flags), "%s%d", k ? " " : "", band[k]);
        pref_colour[k] = qa_plot_method_index(cells, nc, cv[k].cell->method);
        pref_mark[k] = 0;
    }
    if (qa_plot_assign_looks(n, pref_colour, pref_mark, 0, colour, mark))
        return qa_fail(err, QA_ERR_RUN, "plot: %s: %d curves, more than one figure's looks can tell apart", out, n);
    looks_text(colour, mark, n, looks, sizeof looks);
    qa_plot_value_axis(INFINITY, 1, "training loss (moving average of 20 steps)", band_lo, band_hi, yrange, sizeof yrange, ylabel,
                       sizeof ylabel);
    plot_args a = {0};
    qa_plot_arg(&a, "%s", title);
    qa_plot_arg(&a, "%s", ylabel);
    qa_plot_arg(&a, "%s", yrange);
    qa_plot_arg(&a, "%s", looks);
    qa_plot_arg(&a, "%s", band_flags);
    return qa_plot_draw("loss_curves", out, &a, err);
}

/* Training loss per run group, one figure per bit setting: the mean over seeds as a line, its 95%
 * CI as a band where the curves are few; curves that coincide are named in the title. */
static int plot_loss_curves(const char *pdir, const qa_cell *cells, int nc, qa_error *err) {
    char bits[MAX_GROUPS][16];
    int nb = qa_plot_bit_settings(cells, nc, bits), multi_rank = qa_plot_multi_rank(cells, nc), rc = QA_OK;
    for (int b = 0; b < nb && !rc; b++) {
        curve cv[MAX_SERIES];
        int n = 0;
        for (int i = 0; i < nc && n < MAX_SERIES; i++)
            if (is_curve(&cells[i], bits[b])) curve_compute(&cv[n++], &cells[i], multi_rank);
        if (n == 0) continue;
        char out[4200];
        snprintf(out, sizeof out, "%s/loss_curves_%s", pdir, bits[b]);
        rc = draw_loss_curves(out, bits[b], cells, nc, cv, n, err);
        for (int k = 0; k < n; k++) qa_free(cv[k].step);
    }
    return rc;
}

int qa_plot_statistics(const char *pdir, const qa_cell *cells, int nc, qa_error *err) {
    int mets[8], nm = qa_plot_folder_metrics(cells, nc, mets);
    int rc = plot_loss_curves(pdir, cells, nc, err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bars(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bit_sweep(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_heatmaps(pdir, cells, nc, mets[k], err);
    /* quality against cost: the folder's main quality metric */
    if (!rc && nm > 0) rc = qa_plot_pareto(pdir, cells, nc, mets[0], 0, err);
    if (!rc && nm > 0) rc = qa_plot_pareto(pdir, cells, nc, mets[0], 1, err);
    return rc;
}
