/* Figures through gnuplot (run as an external program; the only unit that does). Each figure
 * is written as <name>.dat + <name>.gp and rendered to <name>.png (pngcairo) and <name>.svg.
 * A failing gnuplot (missing, or a script error) is reported with the script's path. */
#ifndef QA_PLOT_H
#define QA_PLOT_H

#include <stdint.h>

#include "harness/runs.h"
#include "harness/util.h"

/* All figures of a results folder into DIR/plots/: the statistics figures (plot_statistics), a
 * sample grid per run and deploy variant, and a side-by-side grid across methods for the first seed. */
int plot_results(const char *dir, qa_error *err);

/* The statistics figures of loaded runs into pdir (harness/plot_stats.c), from the report's cells:
 * bars_<metric> (grouped bars, 95% CI), bits_<metric> (the bit sweep), heatmap_<metric>_<series>
 * (bits x rank, where a folder has both), pareto_{training_memory,storage}_<metric>, and
 * loss_curves_<bits> (mean over seeds with a 95% CI band). */
int plot_statistics(const char *pdir, const qa_run_record *runs, int nr, qa_error *err);

/* Render a gnuplot body (everything after the terminal) to path_noext.{png,svg}, keeping the
 * script as path_noext.gp. */
int plot_render(const char *path_noext, const char *body, int w, int h, qa_error *err);

/* A grid of 28x28 tiles: rows x cols tiles ([rows*cols, 28*28] uint8, row-major), a label per
 * row (may be NULL), rendered to path_noext.{png,svg}. */
int plot_image_grid(const char *path_noext, const uint8_t *tiles, int rows, int cols,
                    const char *const *row_labels, const char *title, qa_error *err);

/* Run a gnuplot script (terminal set inside); 0 when gnuplot exits 0. */
int plot_run_gnuplot(const char *script_path, qa_error *err);

#endif
