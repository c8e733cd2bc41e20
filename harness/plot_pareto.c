#include "harness/plot_pareto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/plot_gnuplot.h"
#include "harness/plot_stats.h"

#define MAX_POINTS 768
#define MAX_NAMES (QA_PLOT_MARKS * QA_PLOT_COLOURS)

/* A deployed cell as drawn: its cost, the x it is drawn at (apart from points of equal cost),
 * its mean and interval; its method (with its setting and rank where those vary) picks its
 * mark, its kind its colour. The kind of a method's integer deploy (INT, or INT after PTQ: a
 * method has one of the two) and of a full-precision run is its bit setting, coloured as in the
 * bars; another deploy (NF4, a method's own variant) is a kind of its own with its bits. */
typedef struct {
    const qa_cell *cell;
    double cost, x, mean, lo, hi;
    int method, kind, colour, mark;
    char label[160];
} point;

/* the names of a figure's methods and kinds, in the key's order; kinds 0..n_bits-1 are the
 * folder's bit settings */
typedef struct {
    char method[MAX_NAMES][128], kind[MAX_NAMES][128], bits[16][16];
    int n_methods, n_kinds, n_bits, kind_bits[MAX_NAMES], kind_used[MAX_NAMES];
} key_names;

/* the deployed model of each run: the integer deploy, a method's own variant, or FP runs */
static int is_deployed(const qa_cell *c, int met) {
    return c->n > 0 && c->sum[met].n > 0 && !(c->w_bits && !strcmp(c->variant, "fp"));
}

static double pareto_cost(const qa_cell *c, int storage) { return storage ? c->bits_pw : c->train_mb.mean; }

/* index of name in names (appended when new, up to MAX_NAMES) */
static int index_of(char names[][128], int *n, const char *name) {
    for (int k = 0; k < *n; k++) if (!strcmp(names[k], name)) return k;
    if (*n == MAX_NAMES) return MAX_NAMES;
    snprintf(names[*n], 128, "%s", name);
    return (*n)++;
}

/* The other deploys' kinds in the order of their bit settings, then as first seen: each point's
 * kind renumbered to its place. */
static void order_kinds(key_names *names, point *p, int np) {
    int place[MAX_NAMES], order[MAX_NAMES];
    for (int k = 0; k < names->n_kinds; k++) order[k] = place[k] = k;
    for (int i = names->n_bits + 1; i < names->n_kinds; i++)
        for (int j = i; j > names->n_bits && names->kind_bits[order[j]] < names->kind_bits[order[j - 1]]; j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    key_names sorted = *names;
    for (int k = 0; k < names->n_kinds; k++) {
        place[order[k]] = k;
        memcpy(sorted.kind[k], names->kind[order[k]], 128);
        sorted.kind_bits[k] = names->kind_bits[order[k]];
    }
    memcpy(names->kind, sorted.kind, sizeof sorted.kind);
    memcpy(names->kind_bits, sorted.kind_bits, sizeof sorted.kind_bits);
    memset(names->kind_used, 0, sizeof names->kind_used);
    for (int k = 0; k < np; k++)
        if (p[k].kind < MAX_NAMES) names->kind_used[p[k].kind = place[p[k].kind]] = 1;
}

/* A point's method and kind, as named in the key. */
static void point_names(const qa_cell *c, int multi_rank, key_names *names, point *q) {
    char method[128], deploy[48], kind[128];
    int off = snprintf(method, sizeof method, "%s", c->method);
    if (c->axes[0]) off += snprintf(method + off, sizeof method - (size_t)off, " %s", c->axes);
    if (multi_rank) snprintf(method + off, sizeof method - (size_t)off, " r%d", c->rank);
    q->method = index_of(names->method, &names->n_methods, method);
    if (!c->w_bits || !strcmp(c->variant, "int")) snprintf(kind, sizeof kind, "%s", c->bits);
    else snprintf(kind, sizeof kind, "%s %s", c->bits, qa_cells_deploy_label(c, deploy, sizeof deploy));
    q->kind = index_of(names->kind, &names->n_kinds, kind);
    if (q->kind < MAX_NAMES) names->kind_bits[q->kind] = qa_plot_bits_index(names->bits, names->n_bits, c->bits);
}

/* The points, their names and looks: a mark per method, a colour per kind. Returns 1 when every
 * point has that look, so that the key can name marks and colours apart; 0 when some point had
 * to take another colour (the key then names every point); -1 when the points outnumber the looks. */
static int collect_points(const qa_cell *cells, int nc, int met, int storage, point *p, int *np, key_names *names) {
    int multi_rank = qa_plot_multi_rank(cells, nc);
    int pref_colour[MAX_POINTS], pref_mark[MAX_POINTS], colour[MAX_POINTS], mark[MAX_POINTS];
    *np = names->n_methods = 0;
    names->n_kinds = names->n_bits = qa_plot_bit_settings(cells, nc, names->bits);
    for (int b = 0; b < names->n_bits; b++) {
        memcpy(names->kind[b], names->bits[b], 16);
        names->kind_bits[b] = b;
    }
    for (int i = 0; i < nc && *np < MAX_POINTS; i++) {
        const qa_cell *c = &cells[i];
        if (!is_deployed(c, met)) continue;
        point *q = &p[(*np)++];
        q->cell = c;
        q->cost = q->x = pareto_cost(c, storage);
        q->mean = c->sum[met].mean;
        qa_plot_cell_interval(c, met, &q->lo, &q->hi);
        point_names(c, multi_rank, names, q);
        qa_cells_series_label(c, q->label, sizeof q->label, 1, multi_rank);
    }
    order_kinds(names, p, *np);
    /* looks by kind, so that a method's integer deploy keeps the colour of its bits */
    int by_kind[MAX_POINTS], n = 0;
    for (int kind = 0; kind <= MAX_NAMES; kind++)
        for (int k = 0; k < *np; k++) if (p[k].kind == kind) by_kind[n++] = k;
    for (int j = 0; j < n; j++) {
        pref_colour[j] = p[by_kind[j]].kind;
        pref_mark[j] = p[by_kind[j]].method;
    }
    if (qa_plot_assign_looks(n, pref_colour, pref_mark, 1, colour, mark)) return -1;
    int factored = names->n_methods <= QA_PLOT_MARKS && names->n_kinds <= QA_PLOT_COLOURS;
    for (int j = 0; j < n; j++) {
        point *q = &p[by_kind[j]];
        q->colour = colour[j];
        q->mark = mark[j];
        factored &= q->colour == q->kind + 1 && q->mark == q->method + 1;
    }
    return factored;
}

/* The x axis: log2 where the costs span two octaves or more (tics at the powers of 2 within),
 * else linear. Points of equal cost are drawn side by side, a small step apart along x; returns
 * how many points were moved. */
static int x_axis(point *p, int n, char *range, size_t range_len, char *tics, size_t tics_len) {
    double lo = INFINITY, hi = 0;
    for (int k = 0; k < n; k++) { lo = fmin(lo, p[k].cost); hi = fmax(hi, p[k].cost); }
    const int log2_axis = lo > 0 && hi / lo >= 4;
    double step = log2_axis ? 0.04 : 0.012 * (hi - lo);
    int moved = 0;
    for (int k = 0; k < n; k++) {
        int j = 0, ties = 0;
        for (int m = 0; m < n; m++) {
            if (fabs(p[m].cost - p[k].cost) > 1e-9 * fmax(1, fabs(p[k].cost))) continue;
            if (m < k) j++;
            ties++;
        }
        if (ties < 2) continue;
        double off = step * (j - (ties - 1) / 2.0);
        p[k].x = log2_axis ? p[k].cost * exp2(off) : p[k].cost + off;
        moved++;
    }
    if (log2_axis) {
        snprintf(range, range_len, "[%.6g:%.6g]", lo * exp2(-0.35), hi * exp2(0.35));
        int off = snprintf(tics, tics_len, "log2 (");
        for (int e = (int)ceil(log2(lo * exp2(-0.35))); exp2(e) <= hi * exp2(0.35); e++)
            off += snprintf(tics + off, tics_len - (size_t)off, "%s%.6g", tics[off - 1] == '(' ? "" : ", ", exp2(e));
        snprintf(tics + off, tics_len - (size_t)off, ")");
    } else {
        double pad = 0.06 * (hi - lo);
        snprintf(range, range_len, "[%.6g:%.6g]", fmax(0, lo - pad), hi + pad);
        snprintf(tics, tics_len, "linear");
    }
    return moved;
}

/* The Pareto front through the means, by increasing cost: a point is on it when it scores better
 * than every cheaper point and is the best of its cost; of points with equal cost and mean, the
 * first cell (the report's order) is kept. Returns the front's length; its points in front. */
static int pareto_front(const point *p, int n, int lower_better, int *front) {
    int order[MAX_POINTS];
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 1; i < n; i++) /* by cost, better first at equal cost, else key order */
        for (int j = i; j > 0; j--) {
            const point *a = &p[order[j - 1]], *b = &p[order[j]];
            int better = lower_better ? b->mean < a->mean : b->mean > a->mean;
            if (!(b->cost < a->cost || (b->cost == a->cost && better))) break;
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    double best = lower_better ? INFINITY : -INFINITY;
    int nf = 0;
    for (int k = 0; k < n; k++) {
        double y = p[order[k]].mean;
        if (lower_better ? y < best : y > best) { best = y; front[nf++] = order[k]; }
    }
    return nf;
}

/* the median of the points' CI half-widths (upper) */
static double median_ci(const point *p, int n) {
    double w[MAX_POINTS];
    for (int k = 0; k < n; k++) w[k] = p[k].hi - p[k].mean;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && w[j] < w[j - 1]; j--) { double t = w[j]; w[j] = w[j - 1]; w[j - 1] = t; }
    return n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
}

/* The title's further lines: what the front and the whiskers are, and how they compare. */
static void front_note(const point *p, int n, const int *front, int nf, int intervals, int moved, char *buf, size_t len) {
    int off = snprintf(buf, len, "dashed: the Pareto front through the %s (of points with equal cost and mean, "
                       "the first cell in the report's order)", intervals ? "means" : "values");
    if (intervals) {
        off += snprintf(buf + off, len - (size_t)off, "\\nwhiskers: 95%% CI, median +-%.2g", median_ci(p, n));
        if (nf > 1) {
            double lo = INFINITY, hi = 0;
            for (int k = 1; k < nf; k++) {
                double d = fabs(p[front[k]].mean - p[front[k - 1]].mean);
                lo = fmin(lo, d);
                hi = fmax(hi, d);
            }
            if (nf == 2) off += snprintf(buf + off, len - (size_t)off, "; the front's step: %.2g", lo);
            else off += snprintf(buf + off, len - (size_t)off, "; the front's steps: %.2g-%.2g", lo, hi);
        }
    }
    if (moved) snprintf(buf + off, len - (size_t)off, "%s%d points of equal cost spread along x", intervals ? "; " : "\\n", moved);
}

/* The key: where every point has its look, the methods with their marks and the kinds with
 * their colours, under two headings; else every point. */
static void write_key(FILE *f, const point *p, int n, const key_names *names, int factored, char *looks, size_t len) {
    looks[0] = 0;
    if (!factored) {
        for (int k = 0; k < n; k++) {
            fprintf(f, "\n\n\"%s\"\nNaN NaN\n", p[k].label);
            snprintf(looks + strlen(looks), len - strlen(looks), "%s%d:%d", k ? " " : "", p[k].colour, p[k].mark);
        }
        return;
    }
    fprintf(f, "\n\n\"marker: method\"\nNaN NaN\n");
    snprintf(looks, len, "-");
    for (int m = 0; m < names->n_methods; m++) {
        fprintf(f, "\n\n\"%s\"\nNaN NaN\n", names->method[m]);
        snprintf(looks + strlen(looks), len - strlen(looks), " 0:%d", m + 1);
    }
    fprintf(f, "\n\n\"colour: bits (and deploy)\"\nNaN NaN\n");
    snprintf(looks + strlen(looks), len - strlen(looks), " -");
    for (int k = 0; k < names->n_kinds; k++) {
        if (!names->kind_used[k]) continue;
        fprintf(f, "\n\n\"%s\"\nNaN NaN\n", names->kind[k]);
        snprintf(looks + strlen(looks), len - strlen(looks), " %d:0", k + 1);
    }
}

/* The figure's blocks: a block per point (its name; cost, x, mean, low, high), the front
 * (cost, x, mean, cell), then the key's entries (a name each). Its looks into cell_looks, key_looks. */
static int write_pareto_dat(const char *out, const point *p, int np, const int *front, int nf, const key_names *names,
                            int factored, char *cell_looks, char *key_looks, size_t looks_len, qa_error *err) {
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    fprintf(f, "# per deployed cell: its name, then cost, x (drawn at), mean, low and high end of the 95%% CI\n");
    cell_looks[0] = 0;
    for (int k = 0; k < np; k++) {
        fprintf(f, "%s\"%s\"\n%.6g %.6g %.8g %.8g %.8g\n", k ? "\n\n" : "", p[k].label, p[k].cost, p[k].x, p[k].mean, p[k].lo, p[k].hi);
        snprintf(cell_looks + strlen(cell_looks), looks_len - strlen(cell_looks), "%s%d:%d", k ? " " : "", p[k].colour, p[k].mark);
    }
    fprintf(f, "\n\n# Pareto front through the means, by increasing cost (of points with equal cost and mean, the first "
               "cell in the report's order): cost x mean cell\n");
    for (int k = 0; k < nf; k++) fprintf(f, "%.6g %.6g %.8g \"%s\"\n", p[front[k]].cost, p[front[k]].x, p[front[k]].mean, p[front[k]].label);
    write_key(f, p, np, names, factored, key_looks, looks_len);
    int rc = qa_plot_close_dat(f, out, err);
    if (!rc && (strlen(cell_looks) + 8 >= looks_len || strlen(key_looks) + 8 >= looks_len))
        rc = qa_fail(err, QA_ERR_RUN, "plot: %s: %d cells, more than one figure's markers can name", out, np);
    return rc;
}

/* The figure from its points: axes, front, notes and the template's call. */
static int draw_pareto(const char *out, point *p, int np, const key_names *names, int factored,
                       const qa_cell *cells, int nc, int met, int storage, qa_error *err) {
    char xrange[64], xtics[256], yrange[64], ylabel[256], cell_looks[1400], key_looks[1400];
    int moved = x_axis(p, np, xrange, sizeof xrange, xtics, sizeof xtics), front[MAX_POINTS];
    int nf = pareto_front(p, np, qa_met_lower_better[met], front);
    int rc = write_pareto_dat(out, p, np, front, nf, names, factored, cell_looks, key_looks, sizeof cell_looks, err);
    if (rc) return rc;
    char phrase[80], note[400];
    double lo = INFINITY, hi = -INFINITY;
    int intervals = 0;
    for (int k = 0; k < np; k++) {
        intervals |= p[k].cell->sum[met].n > 1;
        lo = fmin(lo, p[k].lo);
        hi = fmax(hi, p[k].hi);
    }
    qa_plot_seeds_phrase(cells, nc, met, phrase, sizeof phrase);
    front_note(p, np, front, nf, intervals, moved, note, sizeof note);
    qa_plot_value_axis(qa_plot_metric_upper(met), 1, qa_met_axis[met], lo, hi, yrange, sizeof yrange, ylabel, sizeof ylabel);
    plot_args a = {0};
    qa_plot_arg(&a, "%s against %s: %s\\n%s", qa_met_titles[met], storage ? "storage" : "training memory", phrase, note);
    qa_plot_arg(&a, "%s", storage ? "deployed bits per weight of the adapted layers"
                               : "training memory of the adapted layers (MiB: frozen + trainable + gradients + optimizer)");
    qa_plot_arg(&a, "%s", ylabel);
    qa_plot_arg(&a, "%s", xrange);
    qa_plot_arg(&a, "%s", xtics);
    qa_plot_arg(&a, "%s", yrange);
    qa_plot_arg(&a, "%s", cell_looks);
    qa_plot_arg(&a, "%s", key_looks);
    return qa_plot_draw("pareto", out, &a, err);
}

int qa_plot_pareto(const char *pdir, const qa_cell *cells, int nc, int met, int storage, qa_error *err) {
    point *p = qa_alloc(sizeof(point) * MAX_POINTS);
    key_names *names = qa_alloc(sizeof(key_names));
    int np, costs_differ = 0, rc = QA_OK;
    int factored = collect_points(cells, nc, met, storage, p, &np, names);
    for (int k = 1; k < np; k++) costs_differ |= fabs(p[k].cost - p[0].cost) > 1e-9;
    if (np >= 2 && costs_differ) { /* else one cost: no trade-off to show */
        char out[4200];
        snprintf(out, sizeof out, "%s/pareto_%s_%s", pdir, storage ? "storage" : "training_memory", qa_met_names[met]);
        if (factored < 0) rc = qa_fail(err, QA_ERR_RUN, "plot: %s: %d cells, more than one figure's markers can name", out, np);
        else rc = draw_pareto(out, p, np, names, factored, cells, nc, met, storage, err);
    }
    qa_free(p);
    qa_free(names);
    return rc;
}
