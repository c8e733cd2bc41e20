/* The paired-difference (forest) figure of a results folder: every cell minus the baseline cell
 * (the report's --baseline), one panel per metric, the mean difference with its 95% CI: paired by
 * seed where the two cells share every seed (the report's own difference), Welch otherwise. */
#ifndef QA_PLOT_FOREST_H
#define QA_PLOT_FOREST_H

#include "harness/cells.h"

/* Writes pdir/forest.{dat,gp,png,svg}; nothing when no other cell has a value. */
int qa_plot_forest(const char *pdir, const qa_cell *cells, int nc, const qa_cell *baseline, qa_error *err);

#endif
