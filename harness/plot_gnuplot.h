/* Figures drawn by the gnuplot templates of plots/ (the only unit that starts gnuplot).
 * A figure is OUT.dat, written by the caller, and OUT.gp, one call of the template of its kind:
 *     call 'bars.gp' 'OUT' 'title' ...
 * run with the template folder on gnuplot's load path (GNUPLOT_LIB), so that the script names
 * no folder and a committed OUT.gp redraws from any checkout. The look of a figure lives in its
 * template; the harness passes only data, text and ranges. */
#ifndef QA_PLOT_GNUPLOT_H
#define QA_PLOT_GNUPLOT_H

#include <stdio.h>

#include "harness/util.h"

/* gnuplot's call passes at most 9 arguments: OUT and 8 more */
#define PLOT_MAX_ARGS 8

typedef struct {
    char text[PLOT_MAX_ARGS][1536];
    int n, overflow; /* overflow: too many or too long; plot_draw refuses to draw */
} plot_args;

/* Append one template argument, printf-style. */
void qa_plot_arg(plot_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The folder holding the templates: $QA_PLOTS_DIR when set, else the source tree's plots/ the
 * binary was built from, else ./plots. A folder without kind.gp is an input error (exit 2) that
 * says where it looked. */
int qa_plot_templates_dir(const char *kind, char *dir, size_t len, qa_error *err);

/* Write OUT.gp calling plots/<kind>.gp with OUT and the arguments, then run it. */
int qa_plot_draw(const char *kind, const char *out, const plot_args *a, qa_error *err);

/* Run a script with the templates on the load path. formats: NULL for the templates' default
 * (png and svg), or e.g. "dumb" to render OUT.txt as text. */
int qa_plot_run_script(const char *script, const char *formats, qa_error *err);

/* OUT.dat for writing, and its checked close (a write error names the file and the cause). */
FILE *qa_plot_open_dat(const char *out, qa_error *err);
int qa_plot_close_dat(FILE *f, const char *out, qa_error *err);

#endif
