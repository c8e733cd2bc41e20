#include "harness/report.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/cells.h"
#include "harness/results.h"
#include "harness/runs.h"
#include "harness/stats.h"

typedef qa_cell cell;

/* Paired loss difference against the baseline cell (same seeds), per cell. */
typedef struct { double dloss, dloss_ci, dloss_p; int has_delta; } delta;

/* A cell's deploy label, returned by value (no shared buffer). */
typedef struct { char text[48]; } deploy_text;

static deploy_text deploy_of(const cell *c) {
    deploy_text t;
    qa_cells_deploy_label(c, t.text, sizeof t.text);
    return t;
}

static void fmt_cell(char *buf, size_t len, const qa_summary *s, int digits) {
    if (s->n == 0) snprintf(buf, len, "-");
    else if (s->n == 1) snprintf(buf, len, "%.*f", digits, s->mean);
    else snprintf(buf, len, "%.*f ± %.*f", digits, s->mean, digits, s->ci95);
}

/* A metric's cell: mean ± 95% CI, or mean [lo, hi] where the interval reaches past the metric's
 * range (schema.c), clipped to it: a share is never shown above 1. */
static void fmt_metric(char *buf, size_t len, const qa_summary *s, int m, int digits) {
    double lo, hi;
    if (s->n >= 2 && isfinite(s->ci95)) qa_metric_interval(m, s->mean, s->ci95, &lo, &hi);
    if (s->n < 2 || !isfinite(s->ci95) || (lo == s->mean - s->ci95 && hi == s->mean + s->ci95)) {
        fmt_cell(buf, len, s, digits);
        return;
    }
    snprintf(buf, len, "%.*f [%.*f, %.*f]", digits, s->mean, digits, lo, digits, hi);
}

/* The paper layout's row of cell i: FP cells ("FP") join their method's float deploy row. */
static deploy_text paper_row_label(const cell *c) {
    deploy_text t = deploy_of(c);
    if (c->w_bits == 0) snprintf(t.text, sizeof t.text, "FP (before PTQ)");
    return t;
}

static int same_paper_row(const cell *a, const cell *b) {
    return !strcmp(a->method, b->method) && !strcmp(paper_row_label(a).text, paper_row_label(b).text) && a->rank == b->rank &&
           !strcmp(a->axes, b->axes);
}

/* The paper layout's metrics, per bit setting, in this order. */
static const int paper_metrics[] = {MET_SUBJECT, MET_PROMPT, MET_LOSS};
#define N_PAPER_METRICS ((int)(sizeof paper_metrics / sizeof paper_metrics[0]))

/* " **x** |" when c is the best of its bit setting on metric m (and another cell competes) */
static void write_paper_value(FILE *f, const cell *cells, int nc, const cell *c, const char *bits, int m) {
    if (!c || c->sum[m].n == 0) { fprintf(f, " - |"); return; }
    int is_best = 1, others = 0;
    for (int j = 0; j < nc; j++) {
        if (&cells[j] == c || strcmp(cells[j].bits, bits) || cells[j].sum[m].n == 0) continue;
        others++;
        double x = c->sum[m].mean, y = cells[j].sum[m].mean;
        if (qa_metrics[m].better == QA_BETTER_LOWER ? y < x : y > x) is_best = 0;
    }
    char tmp[64];
    fmt_metric(tmp, sizeof tmp, &c->sum[m], m, qa_metrics[m].detail_digits);
    fprintf(f, is_best && others ? " **%s** |" : " %s |", tmp);
}

/* The paper's layout: one row per (method, deploy, rank), one column group per bit setting with
 * the paper's metrics (mean ± CI), the best per column in bold. */
static void write_paper_layout(FILE *f, cell *cells, int nc) {
    const char *bits[16];
    int nb = 0;
    for (int i = 0; i < nc; i++) {
        int seen = 0;
        for (int b = 0; b < nb; b++) seen |= !strcmp(bits[b], cells[i].bits);
        if (!seen && nb < 16) bits[nb++] = cells[i].bits;
    }
    fprintf(f, "| method | deploy | rank |");
    for (int b = 0; b < nb; b++)
        for (int k = 0; k < N_PAPER_METRICS; k++) fprintf(f, " %s %s %s |", bits[b], qa_metrics[paper_metrics[k]].tex, qa_metric_arrow(paper_metrics[k]));
    fprintf(f, "\n|---|---|---|");
    for (int b = 0; b < nb * N_PAPER_METRICS; b++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < nc; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = !same_paper_row(&cells[j], &cells[i]);
        if (!first) continue;
        fprintf(f, "| %s%s%s%s | %s | %d |", cells[i].method, cells[i].axes[0] ? " (" : "", cells[i].axes, cells[i].axes[0] ? ")" : "",
                cells[i].w_bits == 0 ? "FP" : paper_row_label(&cells[i]).text, cells[i].rank);
        for (int b = 0; b < nb; b++) {
            const cell *c = NULL;
            for (int j = 0; j < nc; j++)
                if (same_paper_row(&cells[j], &cells[i]) && !strcmp(cells[j].bits, bits[b])) c = &cells[j];
            for (int k = 0; k < N_PAPER_METRICS; k++) write_paper_value(f, cells, nc, c, bits[b], paper_metrics[k]);
        }
        fprintf(f, "\n");
    }
}

/* What a method measured about its own merged layers (e.g. IntLoRA's W_int = 0 share), per cell. */
static void write_method_stats(FILE *f, const cell *cells, int nc) {
    int any = 0;
    for (int i = 0; i < nc; i++) any |= cells[i].n_stats > 0;
    if (!any) return;
    fprintf(f, "\nMethod measurements (pooled over the adapted layers of each run; mean ± 95%% CI over seeds):\n\n"
               "| method | bits | rank | setting | n | measurement | value |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nc; i++) {
        const cell *c = &cells[i];
        if (strcmp(c->variant, "int") != 0) continue; /* one row per run, not per deploy */
        for (int k = 0; k < c->n_stats; k++) {
            char v[64];
            fmt_cell(v, sizeof v, &c->stat[k], 4);
            fprintf(f, "| %s | %s | %d | %s | %d | %s | %s |\n", c->method, c->bits, c->rank, c->axes[0] ? c->axes : "-",
                    c->stat[k].n, c->stat_name[k], v);
        }
    }
}

/* ---- efficiency: memory by category, timings, storage ---- */

typedef enum { EFF_SUMMARY, EFF_TIMING, EFF_BITS_PER_WEIGHT, EFF_NEEDS_PTQ } efficiency_kind;

/* A column: a cell summary (at `summary`, MiB or ms or s as the cell keeps it) headed by the
 * label of the run field it summarizes, or by its own heading where it is derived. */
typedef struct {
    efficiency_kind kind;
    qa_run_object object;     /* with field: the run field whose label heads the column */
    const char *field;
    const char *heading;      /* a derived column's heading */
    const char *csv;
    size_t summary;           /* EFF_SUMMARY: offsetof(qa_cell, <qa_summary>); EFF_TIMING: <qa_median_ci> */
    int digits;               /* markdown decimals */
} efficiency_column;

#define CELL_SUMMARY(member) .kind = EFF_SUMMARY, .summary = offsetof(qa_cell, member)
#define CELL_TIMING(member) .kind = EFF_TIMING, .summary = offsetof(qa_cell, member)
static const efficiency_column efficiency_columns[] = {
    {CELL_SUMMARY(frozen_mb), .object = QA_OBJ_MEMORY, .field = "frozen_bytes", .csv = "frozen_mib", .digits = 3},
    {CELL_SUMMARY(trainable_mb), .object = QA_OBJ_MEMORY, .field = "trainable_bytes", .csv = "trainable_mib", .digits = 3},
    {CELL_SUMMARY(gradient_mb), .object = QA_OBJ_MEMORY, .field = "gradient_bytes", .csv = "gradient_mib", .digits = 3},
    {CELL_SUMMARY(optimizer_mb), .object = QA_OBJ_MEMORY, .field = "optimizer_bytes", .csv = "optimizer_mib", .digits = 3},
    {CELL_SUMMARY(train_mb), .heading = "training total", .csv = "training_mib", .digits = 3},
    {CELL_SUMMARY(activation_mb), .object = QA_OBJ_MEMORY, .field = "activation_bytes", .csv = "activation_mib", .digits = 1},
    {CELL_SUMMARY(peak_rss_mb), .object = QA_OBJ_MEMORY, .field = "peak_rss_bytes", .csv = "peak_rss_mib", .digits = 0},
    {CELL_TIMING(step_med), .object = QA_OBJ_TIMING, .field = "train_step_median_ms", .csv = "train_step_ms", .digits = 1},
    {CELL_TIMING(merge_med), .object = QA_OBJ_TIMING, .field = "merge_seconds", .csv = "merge_s", .digits = 3},
    {CELL_TIMING(sampling_med), .object = QA_OBJ_EVAL, .field = "sampling_ms_per_image", .csv = "sampling_ms_per_image", .digits = 2},
    {CELL_SUMMARY(deployed_mb), .heading = "deployed MiB", .csv = "deployed_mib", .digits = 3},
    {.kind = EFF_BITS_PER_WEIGHT, .object = QA_OBJ_EVAL, .field = "bits_per_weight", .csv = "bits_per_weight"},
    {CELL_SUMMARY(artifact_kib), .heading = "artifact KiB on disk", .csv = "artifact_kib", .digits = 1},
    {CELL_SUMMARY(stored_bpw), .heading = "stored bits/weight", .csv = "stored_bits_per_weight", .digits = 2},
    {.kind = EFF_NEEDS_PTQ, .heading = "PTQ needed", .csv = "needs_ptq"},
};
#define N_EFFICIENCY_COLUMNS ((int)(sizeof efficiency_columns / sizeof efficiency_columns[0]))

static const char *efficiency_heading(const efficiency_column *col) {
    return col->field ? qa_run_field_label(qa_run_field_find(col->object, col->field)) : col->heading;
}

static const qa_summary *efficiency_summary(const cell *c, const efficiency_column *col) {
    return (const qa_summary *)((const char *)c + col->summary);
}

static const qa_median_ci *efficiency_timing(const cell *c, const efficiency_column *col) {
    return (const qa_median_ci *)((const char *)c + col->summary);
}

static void write_efficiency_md_row(FILE *f, const cell *c) {
    fprintf(f, "| %s%s%s%s | %s | %d | %s | %s |", c->method, c->axes[0] ? " (" : "", c->axes, c->axes[0] ? ")" : "", c->bits,
            c->rank, deploy_of(c).text, c->kernel);
    for (int k = 0; k < N_EFFICIENCY_COLUMNS; k++) {
        const efficiency_column *col = &efficiency_columns[k];
        const qa_summary *sum = col->kind == EFF_SUMMARY ? efficiency_summary(c, col) : NULL;
        const qa_median_ci *t = col->kind == EFF_TIMING ? efficiency_timing(c, col) : NULL;
        if (t && t->n == 0) fprintf(f, " - |");
        else if (t && t->n == 1) fprintf(f, " %.*f |", col->digits, t->median);
        else if (t) fprintf(f, " %.*f [%.*f, %.*f] |", col->digits, t->median, col->digits, t->lo, col->digits, t->hi);
        else if (col->kind == EFF_BITS_PER_WEIGHT) fprintf(f, " %.3g |", c->bits_pw);
        else if (col->kind == EFF_NEEDS_PTQ) fprintf(f, " %s |", c->w_bits == 0 ? "-" : (c->needs_ptq ? "yes" : "no"));
        else if (sum->n == 0) fprintf(f, " - |"); /* e.g. no artifact written */
        else fprintf(f, " %.*f |", col->digits, sum->mean);
    }
    fputc('\n', f);
}

static void write_efficiency_csv_row(FILE *f, const cell *c) {
    const deploy_text deploy = deploy_of(c);
    qa_csv_field(f, c->method);
    fputc(',', f);
    qa_csv_field(f, c->bits);
    fprintf(f, ",%d,", c->rank);
    qa_csv_field(f, c->axes);
    fputc(',', f);
    qa_csv_field(f, deploy.text);
    fputc(',', f);
    qa_csv_field(f, c->kernel);
    fprintf(f, ",%d", c->n);
    for (int k = 0; k < N_EFFICIENCY_COLUMNS; k++) {
        const efficiency_column *col = &efficiency_columns[k];
        const qa_median_ci *t = col->kind == EFF_TIMING ? efficiency_timing(c, col) : NULL;
        if (t) fprintf(f, ",%.6g,%.6g,%.6g", t->median, t->lo, t->hi);
        else if (col->kind == EFF_BITS_PER_WEIGHT) fprintf(f, ",%.4g", c->bits_pw);
        else if (col->kind == EFF_NEEDS_PTQ) fprintf(f, ",%d", c->needs_ptq);
        else fprintf(f, ",%.6g", efficiency_summary(c, col)->n ? efficiency_summary(c, col)->mean : NAN);
    }
    fputc('\n', f);
}

/* Training memory of the adapted layers by category, timings and storage, per cell (means over
 * seeds): the efficiency columns of the paper, measured the same way for every method. */
static void write_efficiency(FILE *f, const cell *cells, int nc, FILE *csv) {
    if (f) {
        fprintf(f, "\nEfficiency (MiB as allocated: frozen ... training total = the adapted layers; model activations = the "
                   "whole model's activations and their gradients at its largest batch; process peak RSS; means over seeds. "
                   "kernel: what the adapted layers of the deploy run on, u8s8 = oneDNN's u8 x s8 -> s32 matmul (per-row "
                   "codes, N-plane integers, or one matmul per group), f32 = float matmul of the dequantized weights. "
                   "Timings (each run's median training step, merge, sampling per image): the median over the cell's "
                   "repeats (its seeds; a plan runs every method of one seed before the next, so the repeats interleave the "
                   "methods) with [x_(k), x_(n+1-k)], the order-statistic interval of the median, k the largest with 95%% "
                   "coverage, else the range: 93.8%% coverage at 5 repeats):\n\n| method | bits | rank | deploy | kernel |");
        for (int k = 0; k < N_EFFICIENCY_COLUMNS; k++) fprintf(f, " %s |", efficiency_heading(&efficiency_columns[k]));
        fprintf(f, "\n|---|---|---|---|---|");
        for (int k = 0; k < N_EFFICIENCY_COLUMNS; k++) fprintf(f, "---|");
        fputc('\n', f);
    }
    if (csv) {
        fprintf(csv, "method,bits,rank,setting,deploy,kernel,n");
        for (int k = 0; k < N_EFFICIENCY_COLUMNS; k++) {
            const efficiency_column *col = &efficiency_columns[k];
            if (col->kind == EFF_TIMING) fprintf(csv, ",%s,%s_lo,%s_hi", col->csv, col->csv, col->csv); /* median, interval */
            else fprintf(csv, ",%s", col->csv);
        }
        fputc('\n', csv);
    }
    for (int i = 0; i < nc; i++) {
        if (cells[i].n == 0) continue;
        if (f) write_efficiency_md_row(f, &cells[i]);
        if (csv) write_efficiency_csv_row(csv, &cells[i]);
    }
}

/* A - B on metric m: paired by seed when every seed of A has one in B (and a value per seed),
 * mean and 95% CI of the differences with a paired t-test; otherwise the difference of the
 * means, no CI (NaN) and Welch's p. Returns 1 when paired. */
int qa_report_cell_difference(const cell *a, const cell *b, int m, double *mean, double *ci, double *p) {
    double x[QA_CELL_MAX_SEEDS], y[QA_CELL_MAX_SEEDS], d[QA_CELL_MAX_SEEDS];
    int k = 0, aligned = a->nm[m] == a->n && b->nm[m] == b->n;
    for (int i = 0; aligned && i < a->n; i++)
        for (int j = 0; j < b->n; j++)
            if (a->seeds[i] == b->seeds[j]) { x[k] = a->vals[m][i]; y[k] = b->vals[m][j]; d[k] = x[k] - y[k]; k++; }
    if (aligned && k == a->n && k >= 2) {
        qa_summary ds = qa_stats_summarize(d, k);
        *mean = ds.mean;
        *ci = ds.ci95;
        *p = qa_stats_paired_p(x, y, k, NULL);
        return 1;
    }
    *mean = a->sum[m].mean - b->sum[m].mean;
    *ci = NAN;
    *p = qa_stats_welch_p(a->vals[m], a->nm[m], b->vals[m], b->nm[m], NULL, NULL);
    return 0;
}

const qa_cell *qa_report_baseline_cell(const qa_cell *cells, int nc, const char *spec, const char *dir, qa_error *err) {
    if (spec) return qa_cell_find(cells, nc, spec, dir, err);
    for (int i = 0; i < nc; i++)
        if (cells[i].w_bits == 0 && cells[i].n > 0) return &cells[i];
    return &cells[0];
}

/* ---- the tables: columns declared once, for markdown, LaTeX and CSV ---- */

typedef enum { COL_METRIC, COL_DELTA, COL_BITS_PER_WEIGHT, COL_SETTING, COL_LR } column_kind;
enum { IN_MD = 1, IN_TEX = 2, IN_CSV = 4 };

typedef struct {
    column_kind kind;
    int metric;           /* COL_METRIC: MET_* */
    int outputs;          /* IN_MD | IN_TEX | IN_CSV */
    int style_tasks_only; /* markdown shows it only when a run is not a subject task */
    int if_measured;      /* shown only when some cell has a value (metrics older run files lack) */
} column;

/* After method, deploy, bits, rank, (markdown: setting,) n: */
static const column table_columns[] = {
    {.kind = COL_METRIC, .metric = MET_LOSS, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_DELTA, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_METRIC, .metric = MET_SUBJECT, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_METRIC, .metric = MET_FLOOR, .outputs = IN_MD | IN_TEX | IN_CSV, .if_measured = 1},
    {.kind = COL_METRIC, .metric = MET_GAIN, .outputs = IN_MD | IN_TEX | IN_CSV, .if_measured = 1},
    {.kind = COL_METRIC, .metric = MET_IDENT, .outputs = IN_MD | IN_TEX | IN_CSV, .if_measured = 1},
    {.kind = COL_METRIC, .metric = MET_PROMPT, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_BITS_PER_WEIGHT, .outputs = IN_MD | IN_CSV},
    {.kind = COL_LR, .outputs = IN_MD | IN_CSV, .if_measured = 1}, /* when some run records its rate */
    {.kind = COL_METRIC, .metric = MET_DIVERSITY, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_METRIC, .metric = MET_PRIOR, .outputs = IN_MD | IN_TEX | IN_CSV},
    {.kind = COL_METRIC, .metric = MET_PRIOR_DIST, .outputs = IN_MD | IN_TEX | IN_CSV, .if_measured = 1},
    {.kind = COL_SETTING, .outputs = IN_CSV},
    {.kind = COL_METRIC, .metric = MET_STYLE, .outputs = IN_MD | IN_CSV, .style_tasks_only = 1},
    {.kind = COL_METRIC, .metric = MET_FID, .outputs = IN_MD | IN_CSV, .style_tasks_only = 1},
};
#define N_TABLE_COLUMNS ((int)(sizeof table_columns / sizeof table_columns[0]))

/* What the tables show, loaded once: the runs, their cells, the baseline, the best per metric. */
typedef struct {
    const char *dir;
    qa_run_record *runs;
    int nr;
    qa_run_skipped *skipped;
    int n_skipped;
    cell *cells;
    int nc, base;
    delta *deltas;
    int best[N_MET];          /* the best cell per metric; -1: none (a tie, or one cell) */
    int measured[N_MET];      /* some cell has a value of the metric */
    int have_lr;              /* some run records the learning rate it trained at */
    int style_tasks, with_axes;
} report_data;

static int shown_in(const column *col, int output, const report_data *d) {
    return (col->outputs & output) && !(output == IN_MD && col->style_tasks_only && !d->style_tasks) &&
           !(col->if_measured && (col->kind == COL_LR ? !d->have_lr : !d->measured[col->metric]));
}

/* best per column; none where every cell ties (or only one cell has a value) */
static int best_cell(const cell *cells, int nc, int m) {
    if (qa_metrics[m].better == QA_BETTER_NONE) return -1; /* a reference value */
    int best = -1, tie = 1, have = 0;
    double first = 0;
    for (int i = 0; i < nc; i++) {
        if (cells[i].sum[m].n == 0) continue;
        if (!have) first = cells[i].sum[m].mean;
        else if (cells[i].sum[m].mean != first) tie = 0;
        have++;
        if (best < 0) { best = i; continue; }
        double x = cells[i].sum[m].mean, y = cells[best].sum[m].mean;
        if (qa_metrics[m].better == QA_BETTER_LOWER ? x < y : x > y) best = i;
    }
    return tie || have < 2 ? -1 : best;
}

static void report_data_free(report_data *d) {
    qa_free(d->cells);
    qa_free(d->deltas);
    qa_runs_free(d->runs, d->nr);
    qa_runs_skipped_free(d->skipped, d->n_skipped);
}

/* The baseline: the named cell, or by default as report_baseline_cell says. */
static int choose_baseline(report_data *d, const char *baseline, qa_error *err) {
    const cell *b = qa_report_baseline_cell(d->cells, d->nc, baseline, d->dir, err);
    if (!b) return QA_ERR_INPUT;
    d->base = (int)(b - d->cells);
    return QA_OK;
}

static int report_load(const char *dir, const char *baseline, report_data *d, qa_error *err) {
    memset(d, 0, sizeof *d);
    d->dir = dir;
    int rc = qa_runs_scan(dir, &d->runs, &d->nr, &d->skipped, &d->n_skipped, err);
    if (rc) return rc;
    if (d->nr == 0) {
        report_data_free(d);
        return qa_fail(err, QA_ERR_INPUT, "%s: no finished runs (*.h5) to report", dir);
    }
    qa_cells_build(d->runs, d->nr, &d->cells, &d->nc);
    for (int i = 0; i < d->nr; i++) d->style_tasks |= strcmp(d->runs[i].task, "subject") != 0;
    for (int i = 0; i < d->nc; i++) d->with_axes |= d->cells[i].axes[0] != 0;
    d->deltas = qa_alloc(sizeof(delta) * (size_t)(d->nc + 1));
    rc = choose_baseline(d, baseline, err);
    if (rc) { report_data_free(d); return rc; }
    const cell *b = &d->cells[d->base];
    for (int i = 0; i < d->nc; i++) {
        const cell *c = &d->cells[i];
        if (i == d->base || c->n == 0 || b->n == 0) continue;
        delta *dc = &d->deltas[i];
        dc->has_delta = 1;
        qa_report_cell_difference(c, b, MET_LOSS, &dc->dloss, &dc->dloss_ci, &dc->dloss_p);
    }
    for (int m = 0; m < N_MET; m++) d->best[m] = best_cell(d->cells, d->nc, m);
    for (int i = 0; i < d->nc; i++)
        for (int m = 0; m < N_MET; m++) d->measured[m] |= d->cells[i].nm[m] > 0;
    for (int i = 0; i < d->nr; i++) d->have_lr |= isfinite(d->runs[i].learning_rate);
    return QA_OK;
}

/* "| method | deploy | bits | rank | [setting |] n | <columns> |" and its separator row */
static void write_md_header(FILE *f, const report_data *d) {
    const cell *b = &d->cells[d->base];
    fprintf(f, "| method | deploy | bits | rank |%s n |", d->with_axes ? " setting |" : "");
    int n_cols = 5 + d->with_axes;
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_MD, d)) continue;
        n_cols++;
        if (col->kind == COL_METRIC)
            fprintf(f, " %s%s%s |", qa_metrics[col->metric].title, *qa_metric_arrow(col->metric) ? " " : "", qa_metric_arrow(col->metric));
        else if (col->kind == COL_BITS_PER_WEIGHT) fprintf(f, " %s |", qa_run_field_label(qa_run_field_find(QA_OBJ_EVAL, "bits_per_weight")));
        else if (col->kind == COL_LR) fprintf(f, " %s |", qa_run_field_label(qa_run_field_find(QA_OBJ_RUN, "learning_rate")));
        else if (col->kind == COL_DELTA)
            fprintf(f, " Δ loss vs %s %s%s%s%s%s (p) |", b->method, b->bits, b->w_bits ? " " : "", b->w_bits ? deploy_of(b).text : "",
                    b->axes[0] ? " " : "", b->axes);
    }
    fprintf(f, "\n|");
    for (int k = 0; k < n_cols; k++) fprintf(f, "---|");
    fprintf(f, "\n");
}

static void write_tex_header(FILE *f, const report_data *d) {
    int n_cols = 0;
    for (int k = 0; k < N_TABLE_COLUMNS; k++) n_cols += shown_in(&table_columns[k], IN_TEX, d);
    fprintf(f, "%% generated by qadapt report from %s\n\\begin{tabular}{lllrr", d->dir);
    for (int k = 0; k < n_cols; k++) fputc('l', f);
    fprintf(f, "}\n\\toprule\nmethod & deploy & bits & rank & $n$");
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_TEX, d)) continue;
        if (col->kind == COL_METRIC)
            fprintf(f, " & %s%s", qa_metrics[col->metric].tex, qa_metrics[col->metric].better == QA_BETTER_NONE ? ""
                    : qa_metrics[col->metric].better == QA_BETTER_LOWER ? " $\\downarrow$" : " $\\uparrow$");
        else if (col->kind == COL_DELTA) fprintf(f, " & $\\Delta$ loss");
    }
    fprintf(f, " \\\\\n\\midrule\n");
}

static void write_csv_header(FILE *f, const report_data *d) {
    fprintf(f, "method,deploy,bits,rank,n,n_diverged");
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_CSV, d)) continue;
        if (col->kind == COL_METRIC) fprintf(f, ",%s_mean,%s_ci95", qa_metrics[col->metric].csv, qa_metrics[col->metric].csv);
        else if (col->kind == COL_DELTA) fprintf(f, ",delta_loss,delta_loss_ci95,delta_loss_p");
        else if (col->kind == COL_BITS_PER_WEIGHT) fprintf(f, ",bits_per_weight");
        else if (col->kind == COL_LR) fprintf(f, ",learning_rate");
        else fprintf(f, ",setting");
    }
    fprintf(f, "\n");
}

/* The learning rate a cell's runs trained at: one value, "lo–hi" when the seeds differ, "-" when
 * no run records it; *mean for the CSV (NaN: none). */
static void lr_text(const cell *c, char *buf, size_t len, double *mean) {
    double lo = HUGE_VAL, hi = -HUGE_VAL, acc = 0;
    int n = 0;
    for (int s = 0; s < c->n; s++) {
        double v = c->runs[s]->learning_rate;
        if (!isfinite(v)) continue;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        acc += v;
        n++;
    }
    *mean = n ? acc / n : NAN;
    if (!n) snprintf(buf, len, "-");
    else if (lo == hi) snprintf(buf, len, "%.3g", lo);
    else snprintf(buf, len, "%.3g–%.3g", lo, hi);
}

/* The text of a metric in the markdown table (bold when best) and in LaTeX. */
static void md_value(const report_data *d, int i, int m, char *buf, size_t len) {
    char tmp[64];
    fmt_metric(tmp, sizeof tmp, &d->cells[i].sum[m], m, qa_metrics[m].table_digits);
    snprintf(buf, len, i == d->best[m] ? "**%s**" : "%s", tmp);
}

static void tex_value(const report_data *d, int i, int m, char *buf, size_t len) {
    char tmp[64], plain[160];
    fmt_metric(tmp, sizeof tmp, &d->cells[i].sum[m], m, qa_metrics[m].table_digits);
    char *pm = strstr(tmp, "±");
    if (pm) { *pm = 0; snprintf(plain, sizeof plain, "%.60s$\\pm$%.60s", tmp, pm + strlen("±")); }
    else snprintf(plain, sizeof plain, "%s", tmp);
    snprintf(buf, len, i == d->best[m] ? "\\textbf{%s}" : "%s", plain);
}

static void md_delta(const report_data *d, int i, char *buf, size_t len) {
    const delta *dc = &d->deltas[i];
    if (i == d->base) snprintf(buf, len, "(baseline)");
    else if (!dc->has_delta) snprintf(buf, len, "-");
    else if (isnan(dc->dloss_p)) snprintf(buf, len, "%+.5f", dc->dloss); /* one seed: no test */
    else if (isnan(dc->dloss_ci)) snprintf(buf, len, "%+.5f (p=%.3g)", dc->dloss, dc->dloss_p);
    else snprintf(buf, len, "%+.5f ± %.5f (p=%.3g)", dc->dloss, dc->dloss_ci, dc->dloss_p);
}

static void write_md_row(FILE *f, const report_data *d, int i) {
    const cell *c = &d->cells[i];
    fprintf(f, "| %s | %s | %s | %d |", c->method, deploy_of(c).text, c->bits, c->rank);
    if (d->with_axes) fprintf(f, " %s |", c->axes[0] ? c->axes : "-");
    fprintf(f, c->n_diverged ? " %d (+%d diverged) |" : " %d |", c->n, c->n_diverged);
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_MD, d)) continue;
        char v[128];
        if (col->kind == COL_METRIC) md_value(d, i, col->metric, v, sizeof v);
        else if (col->kind == COL_DELTA) md_delta(d, i, v, sizeof v);
        else if (col->kind == COL_LR) { double mean; lr_text(c, v, sizeof v, &mean); }
        else snprintf(v, sizeof v, "%.3g", c->bits_pw);
        fprintf(f, " %s |", v);
    }
    fputc('\n', f);
}

static void write_tex_row(FILE *f, const report_data *d, int i) {
    const cell *c = &d->cells[i];
    fprintf(f, "%s%s%s%s & %s & %s & %d & %d", c->method, c->axes[0] ? " (" : "", c->axes, c->axes[0] ? ")" : "", deploy_of(c).text,
            c->bits, c->rank, c->n);
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_TEX, d)) continue;
        char v[200] = "--";
        if (col->kind == COL_METRIC) tex_value(d, i, col->metric, v, sizeof v);
        else if (col->kind == COL_DELTA && i != d->base && d->deltas[i].has_delta) snprintf(v, sizeof v, "%+.5f", d->deltas[i].dloss);
        fprintf(f, " & %s", v);
    }
    fprintf(f, " \\\\\n");
}

static void write_csv_row(FILE *f, const report_data *d, int i) {
    const cell *c = &d->cells[i];
    const delta *dc = &d->deltas[i];
    qa_csv_field(f, c->method);
    fputc(',', f);
    qa_csv_field(f, deploy_of(c).text);
    fputc(',', f);
    qa_csv_field(f, c->bits);
    fprintf(f, ",%d,%d,%d", c->rank, c->n, c->n_diverged);
    for (int k = 0; k < N_TABLE_COLUMNS; k++) {
        const column *col = &table_columns[k];
        if (!shown_in(col, IN_CSV, d)) continue;
        if (col->kind == COL_METRIC) fprintf(f, ",%.8g,%.8g", c->sum[col->metric].mean, c->sum[col->metric].ci95);
        else if (col->kind == COL_DELTA)
            fprintf(f, ",%.8g,%.8g,%.8g", dc->has_delta ? dc->dloss : 0.0, dc->has_delta ? dc->dloss_ci : 0.0, dc->has_delta ? dc->dloss_p : NAN);
        else if (col->kind == COL_BITS_PER_WEIGHT) fprintf(f, ",%.4g", c->bits_pw);
        else if (col->kind == COL_LR) { char v[64]; double mean; lr_text(c, v, sizeof v, &mean); fprintf(f, ",%.6g", mean); }
        else { fputc(',', f); qa_csv_field(f, c->axes); }
    }
    fprintf(f, "\n");
}

/* /summary/<method>-<variant>-<bits>-r<rank>[-<axes>]: n, n_diverged, <metric>_mean/_ci95 */
static int write_summary_cell(qa_h5 *sf, const cell *c, qa_error *err) {
    size_t len = strlen(c->method) + strlen(c->variant) + strlen(c->bits) + strlen(c->axes) + 64;
    char *g = qa_alloc(len);
    snprintf(g, len, "/summary/%s-%s-%s-r%d%s%s", c->method, c->variant, c->bits, c->rank, c->axes[0] ? "-" : "", c->axes);
    int rc = qa_h5_attr_set_f64(sf, g, "n", c->n, err);
    if (!rc) rc = qa_h5_attr_set_f64(sf, g, "n_diverged", c->n_diverged, err);
    for (int m = 0; m < N_MET && !rc; m++) {
        char nm[96];
        snprintf(nm, sizeof nm, "%s_mean", qa_metrics[m].name);
        rc = qa_h5_attr_set_f64(sf, g, nm, c->sum[m].mean, err);
        snprintf(nm, sizeof nm, "%s_ci95", qa_metrics[m].name);
        if (!rc) rc = qa_h5_attr_set_f64(sf, g, nm, c->sum[m].ci95, err);
    }
    qa_free(g);
    return rc;
}

/* ---- files written to a temporary name and renamed when complete ---- */

typedef struct {
    char *path, *tmp;
    FILE *f;
} staged;

static char *path_in(const char *dir, const char *name, const char *suffix) {
    size_t len = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/%s%s", dir, name, suffix);
    return p;
}

/* <dir>/<name> as <dir>/<name>.tmp; with text, opened for writing */
static int staged_open(staged *s, const char *dir, const char *name, int text, qa_error *err) {
    s->path = path_in(dir, name, "");
    s->tmp = path_in(dir, name, ".tmp");
    s->f = NULL;
    if (!text) return QA_OK;
    s->f = fopen(s->tmp, "w");
    if (!s->f) return qa_fail(err, QA_ERR_RUN, "%s: cannot write: %s", s->tmp, strerror(errno));
    return QA_OK;
}

/* Close (checking every write reached the file) and, when all went well, rename into place;
 * otherwise remove the temporary file. Returns status or the first failure. */
static int staged_close(staged *s, int status, qa_error *err) {
    int rc = status;
    if (s->f) {
        int failed = ferror(s->f) || fflush(s->f) != 0;
        int saved = errno;
        if (fclose(s->f) != 0 && !failed) { failed = 1; saved = errno; }
        if (!rc && failed) rc = qa_fail(err, QA_ERR_RUN, "%s: cannot write: %s", s->tmp, strerror(saved ? saved : EIO));
        s->f = NULL;
    }
    if (!rc && s->tmp && rename(s->tmp, s->path) != 0)
        rc = qa_fail(err, QA_ERR_RUN, "cannot rename %s to %s: %s", s->tmp, s->path, strerror(errno));
    if (rc && s->tmp) unlink(s->tmp);
    qa_free(s->path);
    qa_free(s->tmp);
    s->path = s->tmp = NULL;
    return rc;
}

/* ---- qadapt report ---- */

enum { OUT_MD, OUT_TEX, OUT_CSV, OUT_EFFICIENCY_MD, OUT_EFFICIENCY_CSV, OUT_PAPER, OUT_SUMMARY, N_OUT };
static const struct { const char *name; int text; } report_files[N_OUT] = {
    [OUT_MD] = {"report.md", 1}, [OUT_TEX] = {"report.tex", 1}, [OUT_CSV] = {"report.csv", 1},
    [OUT_EFFICIENCY_MD] = {"efficiency.md", 1}, [OUT_EFFICIENCY_CSV] = {"efficiency.csv", 1},
    [OUT_PAPER] = {"report_paper.md", 1}, [OUT_SUMMARY] = {"summary.h5", 0},
};

/* Diverged or failed runs by name, the files left out, the note, the method measurements. */
static void write_md_tail(FILE *f, const report_data *d) {
    int any = 0;
    for (int i = 0; i < d->nr; i++)
        if (strcmp(d->runs[i].status, "done") != 0) {
            fprintf(f, "%s- run %s: %s %s\n", any ? "" : "\nNot evaluated:\n", d->runs[i].id, d->runs[i].status, d->runs[i].fail_reason);
            any = 1;
        }
    for (int i = 0; i < d->n_skipped; i++)
        fprintf(f, "%s- %s: %s\n", i ? "" : "\nFiles left out (not readable run files):\n", d->skipped[i].file, d->skipped[i].why);
    int n_bf16 = 0;
    for (int i = 0; i < d->nr; i++) n_bf16 += !strcmp(d->runs[i].dtype, "bf16");
    if (n_bf16) /* f32 goes unsaid: every run before [train] dtype existed was f32 */
        fprintf(f, "\nTraining dtype: bf16 matmuls (f32 accumulation, master weights and optimizer) in %d of %d runs%s.\n",
                n_bf16, d->nr, n_bf16 < d->nr ? ", f32 in the others" : "");
    fputs("\nCells: mean ± 95% CI over seeds (t distribution); n = seeds. Δ loss: paired by seed when every seed "
          "has a baseline run, Welch otherwise. Best per column in bold.\n", f);
    fputs("An interval in brackets [lo, hi] is the 95% CI clipped to the metric's range (a share never above 1, a "
          "distance never below 0).\n", f);
    write_method_stats(f, d->cells, d->nc);
}

/* ---- storage-matched view: methods at the same stored bits per weight ---- */

/* The width of a storage group: a group opens at the smallest bits/weight not yet grouped and
 * takes every deployed cell below that + QA_STORAGE_WINDOW (a bin of +-0.5 b/w around its
 * centre), so IntLoRA-MUL at W4 (8.75 b/w) meets LoRA / QLoRA + PTQ at W8 (8 to 8.5 b/w). */
#define QA_STORAGE_WINDOW 1.0

/* A cell as deployed: not the float deploy of a quantized run (before PTQ, nothing stored). */
static int deployed_cell(const cell *c) { return c->n > 0 && !(c->w_bits > 0 && c->bits_pw >= 32); }

/* A deployed cell in the storage view, with its sort keys: tier 0 for the report's baseline
 * cell, 1 for other cells of the baseline's method, 2 for the rest; index: its place in the
 * report's cells (a fixed order). */
typedef struct {
    const cell *c;
    int tier, index;
} storage_entry;

/* By stored bits; among equal storage the baseline cell, then its method's other cells, then by
 * method and the report's cell order: a group's reference is the report's baseline where that
 * stores least (e.g. LoRA + PTQ), and the order never depends on qsort. */
static int by_storage(const void *a, const void *b) {
    const storage_entry *x = a, *y = b;
    if (x->c->bits_pw != y->c->bits_pw) return x->c->bits_pw < y->c->bits_pw ? -1 : 1;
    if (x->tier != y->tier) return x->tier - y->tier;
    int m = strcmp(x->c->method, y->c->method);
    return m ? m : x->index - y->index;
}

/* The metric a storage group compares on: subject fidelity where measured, else FID, style, loss. */
static int storage_metric(const cell *const *g, int n) {
    const int order[] = {MET_SUBJECT, MET_FID, MET_STYLE, MET_LOSS};
    for (int k = 0; k < 4; k++) {
        int all = 1;
        for (int i = 0; i < n; i++) all &= g[i]->nm[order[k]] > 0;
        if (all) return order[k];
    }
    return MET_LOSS;
}

static void write_storage_difference(FILE *f, const cell *a, const cell *b, int m) {
    double mean, ci, p;
    if (a->nm[m] == 0 || b->nm[m] == 0) { fprintf(f, " - |"); return; }
    int paired = qa_report_cell_difference(a, b, m, &mean, &ci, &p);
    int dg = qa_metrics[m].detail_digits;
    if (paired) fprintf(f, " %+.*f ± %.*f (paired, p=%.3g) |", dg, mean, dg, ci, p);
    else if (isnan(p)) fprintf(f, " %+.*f |", dg, mean);
    else fprintf(f, " %+.*f (Welch, p=%.3g) |", dg, mean, p);
}

/* Cells grouped by the bits per weight their deploy stores (the run files' bits_per_weight),
 * each group's cells against its lowest-storage cell on the group's quality metric and the
 * held-out loss: does paying more bits buy quality? */
static void write_storage_matched(FILE *f, const report_data *d) {
    storage_entry *sorted = qa_alloc(sizeof *sorted * (size_t)(d->nc + 1));
    const cell *base = &d->cells[d->base];
    int n = 0;
    for (int i = 0; i < d->nc; i++) {
        const cell *c = &d->cells[i];
        if (!deployed_cell(c)) continue;
        sorted[n++] = (storage_entry){c, c == base ? 0 : (strcmp(c->method, base->method) ? 2 : 1), i};
    }
    qsort(sorted, (size_t)n, sizeof *sorted, by_storage);
    const cell **g = qa_alloc(sizeof(cell *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) g[i] = sorted[i].c;
    qa_free(sorted);
    fprintf(f, "\nStorage-matched comparison (cells grouped by the bits per weight their deploy stores, the run files' "
               "bits_per_weight: a group takes every deployed cell within %.1f b/w above its smallest, i.e. bins of "
               "±%.1f b/w; float deploys of quantized runs are left out; each cell against its group's lowest-storage "
               "cell (among equals the baseline cell, then its method's), paired by seed when every seed has a run in both, Welch otherwise):\n",
            QA_STORAGE_WINDOW, QA_STORAGE_WINDOW / 2);
    int shown = 0;
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && g[e]->bits_pw < g[s]->bits_pw + QA_STORAGE_WINDOW) e++;
        if (e - s < 2) { s = e; continue; }
        int m = storage_metric(g + s, e - s);
        char ref[160]; /* the reference as a reader finds it in the rows: method (setting) bits */
        snprintf(ref, sizeof ref, "%s%s%s%s %s", g[s]->method, g[s]->axes[0] ? " (" : "", g[s]->axes, g[s]->axes[0] ? ")" : "",
                 g[s]->bits);
        fprintf(f, "\n%.3g to %.3g b/w:\n\n| method | bits | deploy | rank | b/w | n | %s %s | Δ %s vs %s | %s %s | Δ %s vs %s |\n"
                   "|---|---|---|---|---|---|---|---|---|---|\n",
                g[s]->bits_pw, g[e - 1]->bits_pw, qa_metrics[m].title, qa_metric_arrow(m), qa_metrics[m].title, ref,
                qa_metrics[MET_LOSS].title, qa_metric_arrow(MET_LOSS), qa_metrics[MET_LOSS].title, ref);
        for (int i = s; i < e; i++) {
            const cell *c = g[i];
            char v[96], l[96];
            fmt_metric(v, sizeof v, &c->sum[m], m, qa_metrics[m].table_digits);
            fmt_metric(l, sizeof l, &c->sum[MET_LOSS], MET_LOSS, qa_metrics[MET_LOSS].table_digits);
            fprintf(f, "| %s%s%s%s | %s | %s | %d | %.3g | %d | %s |", c->method, c->axes[0] ? " (" : "", c->axes, c->axes[0] ? ")" : "",
                    c->bits, deploy_of(c).text, c->rank, c->bits_pw, c->n, v);
            if (i == s) fprintf(f, " (reference) |");
            else write_storage_difference(f, c, g[s], m);
            fprintf(f, " %s |", l);
            if (i == s) fprintf(f, " (reference) |");
            else write_storage_difference(f, c, g[s], MET_LOSS);
            fputc('\n', f);
        }
        shown++;
        s = e;
    }
    if (!shown) fprintf(f, "\nNo two deployed cells store within %.1f b/w of each other.\n", QA_STORAGE_WINDOW);
    qa_free(g);
}

/* ---- the tuning stage: <dir>/tune/rates.csv, one row per method x bits cell ---- */

#define QA_TUNE_MAX_RATES 16
#define QA_TUNE_MAX_CELLS 64

typedef struct {
    char cell[96], metric[32];
    double score[QA_TUNE_MAX_RATES], lr[QA_TUNE_MAX_RATES];
    int has[QA_TUNE_MAX_RATES], chosen, seeds;
} tune_row;

/* rates.csv: cell,metric,lr_multiplier,learning_rate,seeds,mean_score,chosen (no file: nothing) */
static void write_tuning(FILE *f, const char *dir) {
    size_t len = strlen(dir) + 32;
    char *path = qa_alloc(len), *text = NULL;
    snprintf(path, len, "%s/tune/rates.csv", dir);
    size_t tl;
    qa_error err;
    if (!qa_file_exists(path) || qa_read_file(path, &text, &tl, &err)) { qa_free(path); return; }
    double rates[QA_TUNE_MAX_RATES];
    int nr = 0, nrow = 0;
    tune_row *rows = qa_alloc(sizeof(tune_row) * QA_TUNE_MAX_CELLS);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char cellname[96], metric[32];
        double mult, lr, score;
        int seeds, chosen;
        if (sscanf(line, "%95[^,],%31[^,],%lf,%lf,%d,%lf,%d", cellname, metric, &mult, &lr, &seeds, &score, &chosen) != 7) continue;
        int k = 0, r = 0;
        while (k < nr && rates[k] != mult) k++;
        if (k == nr) { if (nr == QA_TUNE_MAX_RATES) continue; rates[nr++] = mult; }
        while (r < nrow && strcmp(rows[r].cell, cellname)) r++;
        if (r == nrow) {
            if (nrow == QA_TUNE_MAX_CELLS) continue;
            memset(&rows[nrow], 0, sizeof rows[nrow]);
            snprintf(rows[nrow].cell, sizeof rows[nrow].cell, "%s", cellname);
            snprintf(rows[nrow].metric, sizeof rows[nrow].metric, "%s", metric);
            rows[nrow++].chosen = -1;
        }
        rows[r].score[k] = score;
        rows[r].lr[k] = lr;
        rows[r].has[k] = 1;
        rows[r].seeds = seeds;
        if (chosen) rows[r].chosen = k;
    }
    if (nrow > 0) {
        /* the rate columns in increasing order; rows keep the file's order */
        int order[QA_TUNE_MAX_RATES];
        for (int k = 0; k < nr; k++) order[k] = k;
        for (int a = 1; a < nr; a++)
            for (int b = a; b > 0 && rates[order[b]] < rates[order[b - 1]]; b--) { int t = order[b]; order[b] = order[b - 1]; order[b - 1] = t; }
        fprintf(f, "\nLearning-rate tuning (%s: each cell's mean validation score over its tuning seeds, per rate as a "
                   "multiple of the method's reference rate; the chosen rate in bold: the best score, or with the recipe's "
                   "[tune] within the smallest rate within that tolerance of it; nan: a rate with a diverged run):\n\n"
                   "| cell | metric | seeds |", path);
        for (int k = 0; k < nr; k++) fprintf(f, " ×%g |", rates[order[k]]);
        fprintf(f, " chosen lr |\n|---|---|---|");
        for (int k = 0; k < nr; k++) fprintf(f, "---|");
        fprintf(f, "---|\n");
        for (int r = 0; r < nrow; r++) {
            fprintf(f, "| %s | %s | %d |", rows[r].cell, rows[r].metric, rows[r].seeds);
            for (int k = 0; k < nr; k++) {
                int j = order[k];
                if (!rows[r].has[j]) fprintf(f, " - |");
                else fprintf(f, j == rows[r].chosen ? " **%.4g** |" : " %.4g |", rows[r].score[j]);
            }
            if (rows[r].chosen >= 0) fprintf(f, " %g |\n", rows[r].lr[rows[r].chosen]);
            else fprintf(f, " - |\n");
        }
    }
    qa_free(rows);
    free(text); /* qa_read_file's buffer */
    qa_free(path);
}

/* A run's own time: training, merge (+ PTQ) and every deployed variant's evaluation. */
static double run_seconds(const qa_run_record *r) {
    double parts[2 + QA_MAX_VARIANTS] = {r->train_seconds, r->merge_seconds}, s = 0;
    for (int k = 0; k < r->n_eval; k++) parts[2 + k] = r->eval[k].eval_seconds;
    for (int k = 0; k < 2 + r->n_eval; k++) s += isfinite(parts[k]) && parts[k] > 0 ? parts[k] : 0; /* not recorded: 0 */
    return s;
}

/* The commits the folder's run files record (the builds that made them), with counts, most
 * frequent first: a folder made by several builds says so. At most 16 are named; each name is a
 * copy (the run records are freed before the line is written). */
typedef struct { char *commit; int n; } commit_count;
enum { QA_MAX_COMMITS = 16 };

static void count_commit(commit_count *c, int *nc, int *other, const qa_run_record *r) {
    const char *name = r->provenance.git_commit && r->provenance.git_commit[0] ? r->provenance.git_commit : "not recorded";
    for (int k = 0; k < *nc; k++)
        if (!strcmp(c[k].commit, name)) { c[k].n++; return; }
    if (*nc == QA_MAX_COMMITS) { (*other)++; return; }
    c[*nc].commit = qa_alloc(strlen(name) + 1);
    strcpy(c[*nc].commit, name);
    c[(*nc)++].n = 1;
}

static int by_count(const void *a, const void *b) {
    const commit_count *x = a, *y = b;
    return x->n != y->n ? y->n - x->n : strcmp(x->commit, y->commit);
}

/* The [job] name a recorded recipe gives (its default "run"; "not recorded" without a recipe),
 * into buf: the recipe that made a run, which differs from the folder's own for a run copied in
 * with `qadapt run --reuse`. Read as the recipe parser reads it: a comment from '#', a section
 * header, then key = value with both ends trimmed (a name may hold spaces). */
static void recipe_job_name(const char *text, char *buf, size_t len) {
    snprintf(buf, len, "%s", text && text[0] ? "run" : "not recorded");
    int in_job = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *hash = memchr(line, '#', n);
        if (hash) n = (size_t)(hash - line);
        const char *a = line, *b = line + n;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        if (a < b && *a == '[') {
            in_job = b - a == 5 && !strncmp(a, "[job]", 5);
        } else if (in_job && eq) {
            const char *k = eq, *v = eq + 1;
            while (k > a && isspace((unsigned char)k[-1])) k--;
            while (v < b && isspace((unsigned char)*v)) v++;
            if (k - a == 4 && !strncmp(a, "name", 4)) snprintf(buf, len, "%.*s", (int)(b - v), v);
        }
        line = end ? end + 1 : NULL;
    }
}

/* Run files and their run time by the recipe that made them, named in the same table as the
 * commits (the first QA_MAX_COMMITS names). */
typedef struct { commit_count c; double seconds; } recipe_count;

static void count_recipe(recipe_count *c, int *nc, int *other, const qa_run_record *r, double seconds) {
    char name[256];
    recipe_job_name(r->provenance.recipe, name, sizeof name);
    for (int k = 0; k < *nc; k++)
        if (!strcmp(c[k].c.commit, name)) { c[k].c.n++; c[k].seconds += seconds; return; }
    if (*nc == QA_MAX_COMMITS) { (*other)++; return; }
    c[*nc].c.commit = qa_alloc(strlen(name) + 1);
    strcpy(c[*nc].c.commit, name);
    c[*nc].c.n = 1;
    c[(*nc)++].seconds = seconds;
}

/* What the folder cost: every run file's own time, the tuning runs' (tune/) included, so a
 * reproduction can state its total. Each time is the run's wall clock in its process. Then the
 * commits the run files record. */
static void write_compute(FILE *f, const report_data *d) {
    commit_count commits[QA_MAX_COMMITS];
    recipe_count recipes[QA_MAX_COMMITS];
    int n_commits = 0, other = 0, n_recipes = 0, other_recipes = 0;
    double total = 0, tuning = 0;
    for (int i = 0; i < d->nr; i++) {
        total += run_seconds(&d->runs[i]);
        count_commit(commits, &n_commits, &other, &d->runs[i]);
        count_recipe(recipes, &n_recipes, &other_recipes, &d->runs[i], run_seconds(&d->runs[i]));
    }
    size_t len = strlen(d->dir) + 8;
    char *tune_dir = qa_alloc(len);
    snprintf(tune_dir, len, "%s/tune", d->dir);
    qa_run_record *runs = NULL;
    qa_run_skipped *skipped = NULL;
    int n = 0, n_skipped = 0;
    qa_error err = {0, ""};
    if (qa_file_exists(tune_dir) && qa_runs_scan(tune_dir, &runs, &n, &skipped, &n_skipped, &err) == QA_OK) {
        for (int i = 0; i < n; i++) {
            tuning += run_seconds(&runs[i]);
            count_commit(commits, &n_commits, &other, &runs[i]);
            count_recipe(recipes, &n_recipes, &other_recipes, &runs[i], run_seconds(&runs[i]));
        }
        qa_runs_free(runs, n);
        qa_runs_skipped_free(skipped, n_skipped);
    } else n = 0;
    qa_free(tune_dir);
    fprintf(f, "\nRun time: %.2f hours over %d run files", (total + tuning) / 3600.0, d->nr + n);
    if (n) fprintf(f, " (%d tuning runs: %.2f hours)", n, tuning / 3600.0);
    fputs(" - each run's training, merge and evaluation by its own clock, summed; runs of a sweep on "
          "several processes overlap in wall time.\n", f);
    qsort(commits, (size_t)n_commits, sizeof *commits, by_count);
    fputs("\nRun files by the commit they record, tune/ included (-dirty: built from modified sources; builds "
          "older than this rule recorded the commit their build folder was configured at):", f);
    for (int k = 0; k < n_commits; k++) {
        fprintf(f, "%s %s %d", k ? "," : "", commits[k].commit, commits[k].n);
        qa_free(commits[k].commit);
    }
    if (other) fprintf(f, ", %d run files of other commits", other);
    fputs(".\n", f);
    /* a folder holding runs of more than one recipe (copies made with --reuse) says whose, so
     * that a reproduction's total counts each run once */
    if (n_recipes > 1) {
        qsort(recipes, (size_t)n_recipes, sizeof *recipes, by_count); /* by its first member */
        fputs("\nRun files by the [job] name of the recipe that made them (another name: a run copied in with "
              "`qadapt run --reuse`, whose own folder's report counts its time too, or made before the recipe was "
              "renamed):", f);
        for (int k = 0; k < n_recipes; k++)
            fprintf(f, "%s %s %d (%.2f hours)", k ? "," : "", recipes[k].c.commit, recipes[k].c.n, recipes[k].seconds / 3600.0);
        if (other_recipes) fprintf(f, ", %d run files of other recipes", other_recipes);
        fputs(".\n", f);
    }
    for (int k = 0; k < n_recipes; k++) qa_free(recipes[k].c.commit);
}

/* ---- qadapt runtime ---- */

/* The runs met so far, by "id|created|commit"; a run without a creation time has no key. */
typedef struct { char **keys; int n, cap; } run_keys;

/* 1 when run r was met already (in this or an earlier folder); else it is added. */
static int run_met(run_keys *k, const qa_run_record *r) {
    const char *created = r->provenance.created, *commit = r->provenance.git_commit ? r->provenance.git_commit : "";
    if (!created || !*created) return 0;
    size_t len = strlen(r->id) + strlen(created) + strlen(commit) + 3;
    char *key = qa_alloc(len);
    snprintf(key, len, "%s|%s|%s", r->id, created, commit);
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->keys[i], key)) { qa_free(key); return 1; }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 256;
        char **grown = qa_alloc(sizeof(char *) * (size_t)k->cap);
        if (k->n) memcpy(grown, k->keys, sizeof(char *) * (size_t)k->n);
        qa_free(k->keys);
        k->keys = grown;
    }
    k->keys[k->n++] = key;
    return 0;
}

/* One folder's row of the runtime table. */
typedef struct { int files, tuning, met, skipped; double seconds, new_seconds; } runtime_row;

static int runtime_add(const char *dir, int tuning, run_keys *keys, runtime_row *row, qa_error *err) {
    qa_run_record *runs = NULL;
    qa_run_skipped *skipped = NULL;
    int n = 0, n_skipped = 0;
    int rc = qa_runs_scan(dir, &runs, &n, &skipped, &n_skipped, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        double s = run_seconds(&runs[i]);
        row->files++;
        row->tuning += tuning;
        row->seconds += s;
        if (run_met(keys, &runs[i])) row->met++;
        else row->new_seconds += s;
    }
    row->skipped += n_skipped;
    qa_runs_free(runs, n);
    qa_runs_skipped_free(skipped, n_skipped);
    return QA_OK;
}

int qa_report_runtime(const char *const *dirs, int n_dirs, FILE *out, qa_error *err) {
    run_keys keys = {0};
    runtime_row *rows = qa_alloc(sizeof(runtime_row) * (size_t)(n_dirs > 0 ? n_dirs : 1));
    memset(rows, 0, sizeof(runtime_row) * (size_t)(n_dirs > 0 ? n_dirs : 1));
    int rc = QA_OK;
    for (int d = 0; d < n_dirs && !rc; d++) {
        if (!qa_dir_exists(dirs[d])) { rc = qa_fail(err, QA_ERR_INPUT, "%s: no such results folder", dirs[d]); break; }
        rc = runtime_add(dirs[d], 0, &keys, &rows[d], err);
        size_t len = strlen(dirs[d]) + 8;
        char *tune = qa_alloc(len);
        snprintf(tune, len, "%s/tune", dirs[d]);
        if (!rc && qa_dir_exists(tune)) rc = runtime_add(tune, 1, &keys, &rows[d], err);
        qa_free(tune);
    }
    if (!rc) {
        runtime_row total = {0};
        fputs("| folder | run files | of them tuning runs | run time (hours) | files a folder above holds | run time not "
              "counted above (hours) |\n|---|---|---|---|---|---|\n", out);
        for (int d = 0; d < n_dirs; d++) {
            const runtime_row *r = &rows[d];
            fprintf(out, "| %s | %d | %d | %.2f | %d | %.2f |\n", dirs[d], r->files, r->tuning, r->seconds / 3600.0, r->met,
                    r->new_seconds / 3600.0);
            total.files += r->files; total.tuning += r->tuning; total.met += r->met; total.skipped += r->skipped;
            total.seconds += r->seconds; total.new_seconds += r->new_seconds;
        }
        fprintf(out, "| total | %d | %d | %.2f | %d | %.2f |\n", total.files, total.tuning, total.seconds / 3600.0, total.met,
                total.new_seconds / 3600.0);
        fprintf(out, "\n%.2f hours of run time over %d distinct run files: each run's training, merge and evaluation by "
                "its own clock, in one process (runs made at once on several processes overlap in wall time). A file a "
                "folder above holds is the same run (the same id, creation time and commit: a copy made with `qadapt run "
                "--reuse`), counted once.", total.new_seconds / 3600.0, total.files - total.met);
        if (total.skipped) fprintf(out, " %d damaged or foreign .h5 files were left out (named on stderr).", total.skipped);
        fputc('\n', out);
    }
    for (int i = 0; i < keys.n; i++) qa_free(keys.keys[i]);
    qa_free(keys.keys);
    qa_free(rows);
    return rc;
}

static void write_tables(const report_data *d, FILE *md, FILE *out, FILE *tex, FILE *csv) {
    FILE *outs[2] = {md, out};
    for (int o = 0; o < 2; o++) if (outs[o]) write_md_header(outs[o], d);
    write_tex_header(tex, d);
    write_csv_header(csv, d);
    for (int i = 0; i < d->nc; i++) {
        for (int o = 0; o < 2; o++) if (outs[o]) write_md_row(outs[o], d, i);
        write_tex_row(tex, d, i);
        write_csv_row(csv, d, i);
    }
    fprintf(tex, "\\bottomrule\n\\end{tabular}\n");
    for (int o = 0; o < 2; o++)
        if (outs[o]) {
            write_md_tail(outs[o], d);
            write_storage_matched(outs[o], d);
            write_tuning(outs[o], d->dir);
            write_compute(outs[o], d);
        }
}

static int write_summary(const report_data *d, const char *path, qa_error *err) {
    qa_h5 *sf;
    int rc = qa_h5_create(path, &sf, err);
    for (int i = 0; i < d->nc && !rc; i++) rc = write_summary_cell(sf, &d->cells[i], err);
    if (!rc) return qa_h5_close(sf, err);
    qa_error ignored;
    if (sf) qa_h5_close(sf, &ignored);
    return rc;
}

static int write_report_files(const report_data *d, FILE *out, qa_error *err) {
    staged files[N_OUT] = {{0}};
    int rc = QA_OK;
    for (int k = 0; k < N_OUT && !rc; k++) rc = staged_open(&files[k], d->dir, report_files[k].name, report_files[k].text, err);
    if (!rc) {
        write_tables(d, files[OUT_MD].f, out, files[OUT_TEX].f, files[OUT_CSV].f);
        /* timings vary from run to run of the same sweep: their own files, apart from the tables */
        write_efficiency(files[OUT_EFFICIENCY_MD].f, d->cells, d->nc, NULL);
        write_efficiency(NULL, d->cells, d->nc, files[OUT_EFFICIENCY_CSV].f);
        fprintf(files[OUT_PAPER].f, "Paper layout (methods as rows, bit settings as column groups; mean ± 95%% CI over seeds; best per column "
                                    "in bold). FP rows show the method's float deploy.\n\n");
        write_paper_layout(files[OUT_PAPER].f, d->cells, d->nc);
        rc = write_summary(d, files[OUT_SUMMARY].tmp, err);
    }
    for (int k = 0; k < N_OUT; k++) rc = staged_close(&files[k], rc, err);
    return rc;
}

int qa_report_write(const char *dir, FILE *out, qa_error *err) { return qa_report_write_baseline(dir, NULL, out, err); }

int qa_report_write_baseline(const char *dir, const char *baseline, FILE *out, qa_error *err) {
    report_data d;
    int rc = report_load(dir, baseline, &d, err);
    if (rc) return rc;
    rc = write_report_files(&d, out, err);
    report_data_free(&d);
    return rc;
}

/* ---- qadapt compare: one cell against another, every metric, paired by seed ---- */

int qa_report_compare(const char *dir, const char *spec_a, const char *spec_b, FILE *out, qa_error *err) {
    qa_run_record *runs;
    qa_run_skipped *skipped; /* left out with a warning, as the report does */
    int nr, n_skipped;
    int rc = qa_runs_scan(dir, &runs, &nr, &skipped, &n_skipped, err);
    if (rc) return rc;
    qa_runs_skipped_free(skipped, n_skipped);
    cell *cells;
    int nc;
    qa_cells_build(runs, nr, &cells, &nc);
    const cell *a = qa_cell_find(cells, nc, spec_a, dir, err), *b = a ? qa_cell_find(cells, nc, spec_b, dir, err) : NULL;
    if (!a || !b) { qa_free(cells); qa_runs_free(runs, nr); return QA_ERR_INPUT; }
    char la[48], lb[48];
    fprintf(out, "A = %s %s %s%s%s (n = %d), B = %s %s %s%s%s (n = %d), %s\n\n", a->method, a->bits, qa_cells_deploy_label(a, la, sizeof la),
            a->axes[0] ? " " : "", a->axes, a->n, b->method, b->bits, qa_cells_deploy_label(b, lb, sizeof lb), b->axes[0] ? " " : "", b->axes,
            b->n, dir);
    fprintf(out, "| metric | A | B | A - B | test | p | n |\n|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < N_MET; m++) {
        if (a->nm[m] == 0 || b->nm[m] == 0) continue;
        char ta[64], tb[64], td[64];
        int digits = qa_metrics[m].detail_digits;
        fmt_metric(ta, sizeof ta, &a->sum[m], m, digits);
        fmt_metric(tb, sizeof tb, &b->sum[m], m, digits);
        double mean, ci, p;
        int paired = qa_report_cell_difference(a, b, m, &mean, &ci, &p);
        const char *test = paired ? "paired t" : "Welch t";
        int n = paired ? a->n : a->nm[m] + b->nm[m];
        if (paired) snprintf(td, sizeof td, "%+.*f ± %.*f", digits, mean, digits, ci);
        else snprintf(td, sizeof td, "%+.*f", digits, mean);
        fprintf(out, "| %s%s%s | %s | %s | %s | %s | %.3g | %d |\n", qa_metrics[m].title, *qa_metric_arrow(m) ? " " : "",
                qa_metric_arrow(m), ta, tb, td, test, p, n);
    }
    fprintf(out, "\nMeans ± 95%% CI over seeds; A - B paired by seed (mean ± 95%% CI of the per-seed differences) "
                 "when every seed of A has a run in B, Welch's t on the cell values otherwise.\n");
    qa_free(cells);
    qa_runs_free(runs, nr);
    return QA_OK;
}
