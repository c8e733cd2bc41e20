/* Figures of a results folder (`qadapt plot`). Each figure is <name>.dat (its numbers), <name>.gp
 * (a call of the gnuplot template of its kind in plots/, see harness/plot_gnuplot.h) and the
 * rendered <name>.png and <name>.svg. A failing gnuplot is reported with the script's path. */
#ifndef QA_PLOT_H
#define QA_PLOT_H

#include <stdint.h>

#include "harness/util.h"

/* All figures of a results folder into DIR/plots/: the statistics figures and the paired
 * differences against the baseline cell (harness/plot_stats.h; baseline: a cell spec as the
 * report's --baseline, NULL for the report's default), a sample grid per run and deploy variant,
 * and the grid of every run of the first seed side by side (a column per sample, places without
 * an image in a flat mid-grey). */
int qa_plot_results(const char *dir, const char *baseline, qa_error *err);

/* A grid of 28x28 tiles: rows x cols tiles ([rows*cols, 28*28] uint8, row-major), a label per
 * row (may be NULL), the columns numbered from 1 under a heading when column_label is not NULL,
 * drawn by plots/samples.gp to out.{png,svg}. */
int qa_plot_image_grid(const char *out, const uint8_t *tiles, int rows, int cols, const char *const *row_labels,
                       const char *column_label, const char *title, qa_error *err);

#endif
