/* Figures of the statistics of a results folder, drawn from the same cells as the report
 * (harness/cells.h), each by its template in plots/: bars_<metric> (grouped bars, 95% CI),
 * bits_<metric> (the bit sweep, where a folder has two bit settings or more),
 * heatmap_<metric>_<series> (bits x rank, where a folder has both),
 * pareto_{training_memory,storage}_<metric> and loss_curves_<bits> (mean over seeds, CI band). */
#ifndef QA_PLOT_STATS_H
#define QA_PLOT_STATS_H

#include <stddef.h>

#include "harness/cells.h"

int qa_plot_statistics(const char *pdir, const qa_cell *cells, int nc, qa_error *err);

/* The metrics a folder's figures show, most telling first: subject (or, for the domain task,
 * FID and style), prompt fidelity, held-out loss. Returns how many. */
int qa_plot_folder_metrics(const qa_cell *cells, int nc, int *mets);
/* The largest value a metric can take: 1 for shares, probabilities and cosines, else infinity;
 * every metric is at least 0. Intervals drawn are clipped to this range. */
double qa_plot_metric_upper(int met);
/* How the cells' intervals were made, for titles: "mean and 95% CI over 5 seeds", "... over 3-5
 * seeds", or "one run per cell, no interval". */
void qa_plot_seeds_phrase(const qa_cell *cells, int nc, int met, char *buf, size_t len);

#endif
