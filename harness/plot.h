/* Figures through gnuplot (run as an external program; the only unit that does). Each figure
 * is written as <name>.dat + <name>.gp and rendered to <name>.png (pngcairo) and <name>.svg.
 * A failing gnuplot (missing, or a script error) is reported with the script's path. */
#ifndef QA_PLOT_H
#define QA_PLOT_H

#include <stdint.h>

#include "harness/util.h"

/* All figures of a results folder into DIR/plots/: loss curves (all runs), a sample grid per
 * run and deploy variant, and a side-by-side grid across methods for the first seed. */
int plot_results(const char *dir, qa_error *err);

/* A grid of 28x28 tiles: rows x cols tiles ([rows*cols, 28*28] uint8, row-major), a label per
 * row (may be NULL), rendered to path_noext.{png,svg}. */
int plot_image_grid(const char *path_noext, const uint8_t *tiles, int rows, int cols,
                    const char *const *row_labels, const char *title, qa_error *err);

/* Run a gnuplot script (terminal set inside); 0 when gnuplot exits 0. */
int plot_run_gnuplot(const char *script_path, qa_error *err);

#endif
