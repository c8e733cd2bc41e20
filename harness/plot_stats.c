/* Figures of the statistics of a results folder, drawn from the same cells as the report
 * (harness/cells.c): grouped bars with 95% CI, the bit sweep, a bits x rank heatmap, memory and
 * storage against quality (Pareto fronts), and training-loss curves with CI bands. Every figure
 * keeps its numbers in <name>.dat beside it. */
#include "harness/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cells.h"
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
            cells_series_label(&cells[i], out[ns].label, sizeof out[ns].label, 0, multi_rank);
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

static FILE *open_dat(const char *base, char *dat, size_t len, qa_error *err) {
    snprintf(dat, len, "%s.dat", base);
    FILE *f = fopen(dat, "w");
    if (!f) qa_fail(err, QA_ERR_RUN, "plot: cannot write %s", dat);
    return f;
}

/* The metrics a folder has: held-out loss always; subject/prompt fidelity and FID where measured. */
static int folder_metrics(const qa_cell *cells, int nc, int *mets) {
    int n = 0;
    const int order[] = {MET_SUBJECT, MET_PROMPT, MET_FID, MET_STYLE, MET_LOSS};
    for (int k = 0; k < 5; k++) {
        int have = 0, domain = 0;
        for (int i = 0; i < nc; i++) {
            have |= cells[i].sum[order[k]].n > 0;
            domain |= cells[i].sum[MET_FID].n > 0;
        }
        if (order[k] == MET_STYLE && !domain) have = 0; /* the style score matters for style/domain tasks */
        if (order[k] == MET_SUBJECT && domain) have = 0; /* no item in the domain task */
        if (have) mets[n++] = order[k];
    }
    return n;
}

/* gnuplot y range: bounded scores (shares, probabilities, cosines) on [0, 1.05]; a CI whisker
 * beyond is clipped by the frame, its value stays in the .dat */
static const char *y_range(int met, int bars) {
    if (met == MET_SUBJECT || met == MET_PROMPT || met == MET_PRIOR || met == MET_STYLE) return "set yrange [0:1.05]\n";
    return bars ? "set yrange [0:*]\n" : "";
}

/* Grouped bars: one group per bit setting, one bar per series, 95% CI error bars. */
static int plot_bars(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    series ser[MAX_SERIES];
    int ns = group_series(cells, nc, 0, ser);
    char bits[MAX_GROUPS][16];
    int wb[MAX_GROUPS];
    int nb = bit_groups(cells, nc, bits, wb);
    char base[4200], dat[4300];
    snprintf(base, sizeof base, "%s/bars_%s", pdir, qa_met_names[met]);
    FILE *f = open_dat(base, dat, sizeof dat, err);
    if (!f) return err->code;
    fprintf(f, "# bits, then per series: mean, 95%% CI half-width ('?' where the series has no such cell)\n");
    for (int b = 0; b < nb; b++) {
        fprintf(f, "%s", bits[b]);
        for (int k = 0; k < ns; k++) {
            const qa_cell *c = NULL;
            for (int j = 0; j < ser[k].n; j++)
                if (!strcmp(cells[ser[k].cells[j]].bits, bits[b])) c = &cells[ser[k].cells[j]];
            if (c && c->sum[met].n) fprintf(f, " %.8g %.8g", c->sum[met].mean, c->sum[met].ci95);
            else fprintf(f, " ? ?");
        }
        fprintf(f, "\n");
    }
    fclose(f);
    char body[16384];
    int off = snprintf(body, sizeof body,
                       "set style data histogram\nset style histogram errorbars gap 2 lw 1\nset style fill solid 0.8 border -1\n"
                       "set datafile missing '?'\n%sset grid ytics\nset key outside right top\n"
                       "set xlabel 'weight / activation bits'\nset ylabel '%s'\n"
                       "set title '%s: mean and 95%% CI over seeds'\nplot ",
                       y_range(met, 1), qa_met_axis[met], qa_met_titles[met]);
    for (int k = 0; k < ns && off < (int)sizeof body - 300; k++)
        off += snprintf(body + off, sizeof body - (size_t)off, "%s'%s' using %d:%d%s title '%s'", k ? ", " : "", dat, 2 + 2 * k,
                        3 + 2 * k, k ? "" : ":xtic(1)", ser[k].label);
    snprintf(body + off, sizeof body - (size_t)off, "\n");
    return plot_render(base, body, 1000, 520, err);
}

/* The bit sweep (the paper's Figure 1): a metric against weight bits, fp drawn at 16. */
static int plot_bit_sweep(const char *pdir, const qa_cell *cells, int nc, int met, qa_error *err) {
    series ser[MAX_SERIES];
    int ns = group_series(cells, nc, 0, ser);
    /* FP cells of a method join its curves: the series of FP deploys is drawn at 16 */
    char base[4200], dat[4300];
    snprintf(base, sizeof base, "%s/bits_%s", pdir, qa_met_names[met]);
    FILE *f = open_dat(base, dat, sizeof dat, err);
    if (!f) return err->code;
    char body[16384];
    int off = snprintf(body, sizeof body,
                       "set xlabel 'weight bits (fp shown at 16)'\nset ylabel '%s'\nset key outside right top\nset grid\n"
                       "set xtics (2, 3, 4, 5, 6, 7, 8, 'fp' 16)\nset xrange [1.5:16.5]\n%s"
                       "set title 'Bit sweep: mean and 95%% CI over seeds'\nplot ",
                       qa_met_axis[met], y_range(met, 0));
    int blocks = 0;
    for (int k = 0; k < ns; k++) {
        const qa_cell *c0 = &cells[ser[k].cells[0]];
        /* the method's FP run starts each of its quantized curves (at 16); drawn alone only
         * for a method without quantized runs */
        const qa_cell *fp = NULL;
        int quantized_siblings = 0;
        for (int j = 0; j < ns; j++) {
            const qa_cell *cj = &cells[ser[j].cells[0]];
            if (strcmp(cj->method, c0->method) || strcmp(cj->axes, c0->axes) || cj->rank != c0->rank) continue;
            if (cj->w_bits == 0) fp = cj;
            else quantized_siblings++;
        }
        if (c0->w_bits == 0 && quantized_siblings) continue; /* drawn with its quantized curves */
        /* the points first: a block is written (and indexed) only when it has some */
        double px[20], py[20], pc[20];
        int pn[20], pts = 0;
        for (int w = 2; w <= 16 && pts < 19; w++) /* by increasing bits, the FP point (16) last */
            for (int j = 0; j < ser[k].n && pts < 19; j++) {
                const qa_cell *c = &cells[ser[k].cells[j]];
                if ((c->w_bits ? c->w_bits : 16) != w || c->sum[met].n == 0) continue;
                px[pts] = w; py[pts] = c->sum[met].mean; pc[pts] = c->sum[met].ci95; pn[pts++] = c->sum[met].n;
            }
        if (c0->w_bits && fp && fp->sum[met].n) {
            px[pts] = 16; py[pts] = fp->sum[met].mean; pc[pts] = fp->sum[met].ci95; pn[pts++] = fp->sum[met].n;
        }
        if (pts == 0) continue;
        fprintf(f, "# %s: bits mean ci95 n\n", ser[k].label);
        for (int q = 0; q < pts; q++) fprintf(f, "%g %.8g %.8g %d\n", px[q], py[q], pc[q], pn[q]);
        fprintf(f, "\n\n");
        if (off < (int)sizeof body - 300)
            off += snprintf(body + off, sizeof body - (size_t)off, "%s'%s' index %d using 1:2:3 with yerrorlines lw 1.5 title '%s'",
                            blocks ? ", " : "", dat, blocks, ser[k].label);
        blocks++;
    }
    fclose(f);
    if (blocks == 0) return QA_OK;
    snprintf(body + off, sizeof body - (size_t)off, "\n");
    return plot_render(base, body, 1000, 520, err);
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
    for (int k = 0; k < ns; k++) {
        char name[128], base[4200], dat[4300];
        memcpy(name, ser[k].label, sizeof name);
        name[sizeof name - 1] = 0;
        for (char *q = name; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '.')) *q = '_';
        snprintf(base, sizeof base, "%s/heatmap_%s_%s", pdir, qa_met_names[met], name);
        FILE *f = open_dat(base, dat, sizeof dat, err);
        if (!f) return err->code;
        fprintf(f, "# rank_index bits_index mean ci95 rank bits\n");
        int pts = 0;
        for (int j = 0; j < ser[k].n; j++) {
            const qa_cell *c = &cells[ser[k].cells[j]];
            if (c->sum[met].n == 0) continue;
            int ri = 0, bi = 0;
            while (ranks[ri] != c->rank) ri++;
            while (strcmp(bits[bi], c->bits)) bi++;
            fprintf(f, "%d %d %.8g %.8g %d %s\n", ri, bi, c->sum[met].mean, c->sum[met].ci95, c->rank, c->bits);
            pts++;
        }
        fclose(f);
        if (pts < 4) continue;
        char body[8192];
        int off = snprintf(body, sizeof body,
                           "unset key\nset palette rgbformulae 33,13,10\nset xlabel 'LoRA rank'\nset ylabel 'bits'\n"
                           "set cblabel '%s'\nset xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset xtics (",
                           qa_met_titles[met], nr - 1, nb - 1);
        for (int r = 0; r < nr; r++) off += snprintf(body + off, sizeof body - (size_t)off, "%s'%d' %d", r ? ", " : "", ranks[r], r);
        off += snprintf(body + off, sizeof body - (size_t)off, ")\nset ytics (");
        for (int b = 0; b < nb; b++) off += snprintf(body + off, sizeof body - (size_t)off, "%s'%s' %d", b ? ", " : "", bits[b], b);
        snprintf(body + off, sizeof body - (size_t)off,
                 ")\nset title '%s, %s: mean over seeds (± 95%% CI)'\n"
                 "plot '%s' using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette, "
                 "'' using 1:2:(sprintf('%%.3f\\n± %%.3f', $3, $4)) with labels font 'sans,9'\n",
                 ser[k].label, qa_met_titles[met], dat);
        int rc = plot_render(base, body, 120 + 110 * nr, 120 + 70 * nb, err);
        if (rc) return rc;
    }
    return QA_OK;
}

/* Memory (or storage) against quality, one point per deployed cell with CI bars; the Pareto
 * front (no other point has less memory and a better mean) joined by a line. */
static int plot_pareto(const char *pdir, const qa_cell *cells, int nc, int met, int storage, qa_error *err) {
    char base[4200], dat[4300];
    snprintf(base, sizeof base, "%s/pareto_%s_%s", pdir, storage ? "storage" : "training_memory", qa_met_names[met]);
    int idx[MAX_SERIES * MAX_GROUPS], n = 0;
    for (int i = 0; i < nc && n < MAX_SERIES * MAX_GROUPS; i++) {
        const qa_cell *c = &cells[i];
        /* the deployed model of each run: the integer deploy, a method's own variant, or FP runs */
        if (c->n == 0 || c->sum[met].n == 0 || (c->w_bits && !strcmp(c->variant, "fp"))) continue;
        idx[n++] = i;
    }
    if (n < 2) return QA_OK;
    FILE *f = open_dat(base, dat, sizeof dat, err);
    if (!f) return err->code;
    const int lower = qa_met_lower_better[met];
    double xs[MAX_SERIES * MAX_GROUPS];
    for (int k = 0; k < n; k++) xs[k] = storage ? cells[idx[k]].bits_pw : cells[idx[k]].train_mb.mean;
    fprintf(f, "# %s mean ci95 label\n", storage ? "bits_per_weight" : "training_MiB");
    for (int k = 0; k < n; k++) {
        const qa_cell *c = &cells[idx[k]];
        char lab[128];
        cells_series_label(c, lab, sizeof lab, 1, 0);
        fprintf(f, "%.6g %.8g %.8g \"%s\"\n", xs[k], c->sum[met].mean, c->sum[met].ci95, lab);
    }
    /* the front, by increasing x */
    fprintf(f, "\n\n# Pareto front: x mean\n");
    int order[MAX_SERIES * MAX_GROUPS];
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && xs[order[j]] < xs[order[j - 1]]; j--) { int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t; }
    double best = lower ? INFINITY : -INFINITY;
    for (int k = 0; k < n; k++) {
        double y = cells[idx[order[k]]].sum[met].mean;
        if (lower ? y < best : y > best) { best = y; fprintf(f, "%.6g %.8g\n", xs[order[k]], y); }
    }
    fclose(f);
    char body[8192];
    snprintf(body, sizeof body,
             "set grid\nset key bottom right\nset xlabel '%s'\nset ylabel '%s'\nset offsets graph 0.05, graph 0.25, graph 0.05, graph 0.05\n"
             "set title '%s against %s: mean and 95%% CI over seeds; line: the Pareto front'\n"
             "plot '%s' index 0 using 1:2:3 with yerrorbars pt 7 ps 0.8 title 'deployed models', "
             "'' index 0 using 1:2:4 with labels left offset 0.8,0 font 'sans,8' notitle, "
             "'' index 1 using 1:2 with steps lw 1.5 dt 2 title 'Pareto front'\n",
             storage ? "deployed bits per weight of the adapted layers" : "training memory of the adapted layers (MiB: frozen + trainable + gradients + optimizer)",
             qa_met_axis[met], qa_met_titles[met], storage ? "storage" : "training memory", dat);
    return plot_render(base, body, 1000, 560, err);
}

/* Training loss (moving average of 20 steps) per cell: the mean over seeds and its 95% CI as a
 * band, one figure per bit setting. */
static int plot_loss_bands(const char *pdir, const qa_cell *cells, int nc, qa_error *err) {
    char bits[MAX_GROUPS][16];
    int wb[MAX_GROUPS];
    int nb = bit_groups(cells, nc, bits, wb);
    for (int b = 0; b < nb; b++) {
        char base[4200], dat[4300];
        snprintf(base, sizeof base, "%s/loss_curves_%s", pdir, bits[b]);
        FILE *f = open_dat(base, dat, sizeof dat, err);
        if (!f) return err->code;
        char body[16384];
        int off = snprintf(body, sizeof body,
                           "set xlabel 'training step'\nset ylabel 'training loss (moving average of 20 steps)'\n"
                           "set key outside right top\nset grid\nset style fill transparent solid 0.2 noborder\n"
                           "set title 'Fine-tuning loss at %s: mean over seeds, band = 95%% CI'\nplot ", bits[b]);
        int blocks = 0;
        for (int i = 0; i < nc; i++) {
            const qa_cell *c = &cells[i];
            /* one curve per run group: the cell of the run's first deploy variant */
            if (c->n == 0 || strcmp(c->bits, bits[b]) || c->runs[0]->n_train == 0 || strcmp(c->runs[0]->eval[0].variant, c->variant))
                continue;
            int steps = c->runs[0]->n_train;
            for (int s = 1; s < c->n; s++) if (c->runs[s]->n_train < steps) steps = c->runs[s]->n_train;
            char lab[128]; /* the run's training, whatever deploy is scored afterwards */
            snprintf(lab, sizeof lab, "%s%s%s r%d", c->method, c->axes[0] ? " " : "", c->axes, c->rank);
            fprintf(f, "# %s: step mean lo hi (n = %d)\n", lab, c->n);
            double acc[QA_CELL_MAX_SEEDS] = {0};
            for (int t = 0; t < steps; t++) {
                double x[QA_CELL_MAX_SEEDS];
                for (int s = 0; s < c->n; s++) {
                    const double *tr = c->runs[s]->train;
                    acc[s] += tr[t * 5 + 1];
                    if (t >= 20) acc[s] -= tr[(t - 20) * 5 + 1];
                    x[s] = acc[s] / (t < 20 ? t + 1 : 20);
                }
                qa_summary sm = stats_summarize(x, c->n);
                fprintf(f, "%g %.8g %.8g %.8g\n", c->runs[0]->train[t * 5], sm.mean, sm.mean - sm.ci95, sm.mean + sm.ci95);
            }
            fprintf(f, "\n\n");
            if (off < (int)sizeof body - 400)
                off += snprintf(body + off, sizeof body - (size_t)off,
                                "%s'%s' index %d using 1:3:4 with filledcurves lc %d notitle, '' index %d using 1:2 with lines lw 1.5 lc %d title '%s'",
                                blocks ? ", " : "", dat, blocks, blocks + 1, blocks, blocks + 1, lab);
            blocks++;
        }
        fclose(f);
        if (blocks == 0) continue;
        snprintf(body + off, sizeof body - (size_t)off, "\n");
        int rc = plot_render(base, body, 1000, 520, err);
        if (rc) return rc;
    }
    return QA_OK;
}

int plot_statistics(const char *pdir, const qa_run_record *runs, int nr, qa_error *err) {
    qa_cell *cells;
    int nc;
    cells_build(runs, nr, &cells, &nc);
    int mets[8], nm = folder_metrics(cells, nc, mets);
    int rc = plot_loss_bands(pdir, cells, nc, err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bars(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_bit_sweep(pdir, cells, nc, mets[k], err);
    for (int k = 0; k < nm && !rc; k++) rc = plot_heatmaps(pdir, cells, nc, mets[k], err);
    /* quality against cost: the folder's main quality metric */
    if (!rc && nm > 0) rc = plot_pareto(pdir, cells, nc, mets[0], 0, err);
    if (!rc && nm > 0) rc = plot_pareto(pdir, cells, nc, mets[0], 1, err);
    qa_free(cells);
    return rc;
}
