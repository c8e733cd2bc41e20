/* Figures of the statistics of a results folder, drawn from the same cells as the report
 * (harness/cells.h), each by its template in plots/: bars_<metric> (a group of bars per series,
 * a bar per bit setting, 95% CI), bits_<metric> (the bit sweep, where a folder has two bit
 * settings or more), heatmap_<metric>_<series> (bits x rank, where a folder has both),
 * pareto_{training_memory,storage}_<metric> (harness/plot_pareto.h) and loss_curves_<bits> (mean
 * over seeds, CI band where the curves are few).
 *
 * Every figure of a folder orders bit settings the same way (rising weight bits, full precision
 * last) and names a series the same way (qa_plot_series_name). Each series of a figure has a look
 * of its own, a colour of the palette and a mark (plots/looks.gp), never shared with another
 * series of the figure. */
#ifndef QA_PLOT_STATS_H
#define QA_PLOT_STATS_H

#include <stddef.h>

#include "harness/cells.h"

int qa_plot_statistics(const char *pdir, const qa_cell *cells, int nc, qa_error *err);

/* The metrics a folder's figures show, most telling first (the Pareto figures show the first):
 * subject fidelity (for the domain task FID and style; for the style task its style score, then
 * subject fidelity), prompt fidelity, held-out loss. Returns how many. */
int qa_plot_folder_metrics(const qa_cell *cells, int nc, int *mets);
/* The largest value a metric can take: 1 for shares, probabilities and cosines, else infinity;
 * every metric is at least 0. Intervals drawn are clipped to this range. */
double qa_plot_metric_upper(int met);
/* A cell's mean -+ its 95% CI on met, clipped to the metric's range. */
void qa_plot_cell_interval(const qa_cell *c, int met, double *lo, double *hi);
/* How the cells' intervals were made, for titles: "mean and 95% CI over 5 seeds", "... over 3-5
 * seeds", or "one run per cell, no interval". */
void qa_plot_seeds_phrase(const qa_cell *cells, int nc, int met, char *buf, size_t len);

/* A series' name in every figure: "method [deploy] [setting] [rN]" for quantized cells, "method fp
 * [setting] [rN]" for full-precision ones (the rank where the folder's ranks vary). */
void qa_plot_series_name(const qa_cell *c, int multi_rank, char *buf, size_t len);
/* 1 when the evaluated cells have more than one rank */
int qa_plot_multi_rank(const qa_cell *cells, int nc);
/* The distinct bit settings of the evaluated cells in every figure's order: rising weight bits,
 * then rising activation bits, full precision last. Returns how many (at most 16). */
int qa_plot_bit_settings(const qa_cell *cells, int nc, char bits[][16]);
/* index of a bit setting in bits, -1 when absent */
int qa_plot_bits_index(char bits[][16], int nb, const char *name);

/* Looks: colour 1..QA_PLOT_COLOURS of the palette (0: the neutral grey of key entries that show
 * only a mark) and mark 1..QA_PLOT_MARKS, passed to a template as "C:M". */
#define QA_PLOT_COLOURS 8
#define QA_PLOT_MARKS 15
/* The looks of n series in order: each takes its preferred colour and mark (0-based, taken
 * modulo the palette and the marks) unless an earlier series has that pair, else the next free
 * mark of its colour (keep_mark: the next free colour of its mark), and so on. Returns -1 when
 * the series outnumber the looks. */
int qa_plot_assign_looks(int n, const int *pref_colour, const int *pref_mark, int keep_mark, int *colour, int *mark);
/* The position of a method among the evaluated cells' methods, in first-seen order: the preferred
 * colour of its series in every figure. */
int qa_plot_method_index(const qa_cell *cells, int nc, const char *method);

/* The value axis of a figure: for data on [lo, hi], a padded range out to round values (tight,
 * or an unbounded quantity: upper is infinity), from 0 where lo is within a quarter of the span
 * of 0, else with a line more in the axis label ("(axis from 0.042, not 0)"); a bounded quantity (upper: its largest
 * value) not drawn tight keeps [0:1.05 upper], and tight stops there; without data (NaN) [0:*]
 * or [0:1.05 upper]. A long label is parted on two lines before its last parenthesis (else after
 * its colon); the lines of a label are parted by the two characters \n (the templates' lines_). */
void qa_plot_value_axis(double upper, int tight, const char *axis, double lo, double hi, char *range, size_t range_len,
                        char *label, size_t label_len);

#endif
