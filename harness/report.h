/* Tables of a results folder: one row per cell (method, deploy variant, bits, rank), each
 * metric as mean +- 95% CI over seeds with n, best per column marked, and the held-out loss
 * difference to the baseline cell (paired by seed where seeds match, Welch otherwise).
 * Writes DIR/report.md (also to `out`), DIR/report.tex (booktabs), DIR/report.csv and
 * DIR/summary.h5 (/summary/<cell>: mean, ci95, n per metric). Diverged runs are listed, not dropped. */
#ifndef QA_REPORT_H
#define QA_REPORT_H

#include <stdio.h>

#include "harness/cells.h"
#include "harness/util.h"

int qa_report_write(const char *dir, FILE *out, qa_error *err);
/* Same, with the Δ-loss column against a named cell ("method:bits[:deploy[:setting]]", as
 * report_compare's); NULL: the default (the first FP cell, else the first cell). */
int qa_report_write_baseline(const char *dir, const char *baseline, FILE *out, qa_error *err);

/* Cell A against cell B of a results folder (`qadapt compare`): each metric's mean ± CI for both
 * and A - B, paired by seed when every seed of A has a run in B (Welch otherwise), with p.
 * A cell is "method:bits[:deploy[:setting]]": deploy fp | int | nf4 (default int for quantized
 * bits, fp for bits fp), setting = an ablation's grid axes as in the run names (e.g. a1.5); a
 * part rN anywhere after the bits picks rank N (else the first cell of any rank). */
int qa_report_compare(const char *dir, const char *a, const char *b, FILE *out, qa_error *err);

/* A - B on metric m: paired by seed when every seed of A has one in B (and a value per seed),
 * mean and 95% CI of the differences with a paired t-test; otherwise the difference of the
 * means, no CI (NaN) and Welch's p. Returns 1 when paired. */
int qa_report_cell_difference(const qa_cell *a, const qa_cell *b, int m, double *mean, double *ci, double *p);

/* The cell a spec names (as report_compare's; NULL with err when none matches), or for a NULL
 * spec the default baseline: the first cell at full precision (runs sorted by id), else the first. */
const qa_cell *qa_report_baseline_cell(const qa_cell *cells, int nc, const char *spec, const char *dir, qa_error *err);

/* `qadapt runtime DIR...`: the run time of several results folders taken together, each run
 * counted once, as a markdown table on out: per folder its run files (tune/ included) and their
 * summed time, and how many of them a folder listed before it holds already (a copy made with
 * `qadapt run --reuse` is the same file: the same id, creation time and commit; a file without
 * a creation time is never taken for a copy). A folder that does not exist is bad input. */
int qa_report_runtime(const char *const *dirs, int n_dirs, FILE *out, qa_error *err);

#endif
