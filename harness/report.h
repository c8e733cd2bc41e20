/* Tables of a results folder: one row per cell (method, deploy variant, bits, rank), each
 * metric as mean +- 95% CI over seeds with n, best per column marked, and the held-out loss
 * difference to the baseline cell (paired by seed where seeds match, Welch otherwise).
 * Writes DIR/report.md (also to `out`), DIR/report.tex (booktabs), DIR/report.csv and
 * DIR/summary.h5 (/summary/<cell>: mean, ci95, n per metric). Diverged runs are listed, not dropped. */
#ifndef QA_REPORT_H
#define QA_REPORT_H

#include <stdio.h>

#include "harness/util.h"

int report_write(const char *dir, FILE *out, qa_error *err);

#endif
