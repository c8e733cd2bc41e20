#include "harness/plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cells.h"
#include "harness/plot_forest.h"
#include "harness/plot_gnuplot.h"
#include "harness/plot_stats.h"
#include "harness/report.h"
#include "harness/runs.h"

/* GUTTER_GREY between tiles; PAD_GREY fills a grid's places that hold no image: a flat mid-grey,
 * unlike any image of the data sets (white on black) */
enum { TILE = 28, GUTTER = 2, GRID_COLS = 8, GUTTER_GREY = 96, PAD_GREY = 128 };

/* The picture as a gnuplot matrix, its first line the bottom; grey gutters between tiles,
 * images as in the data set (white on black). */
static void write_matrix(FILE *f, const uint8_t *tiles, int rows, int cols) {
    const int step = TILE + GUTTER, height = rows * step, width = cols * step;
    for (int yy = height - 1; yy >= 0; yy--) {
        int r = yy / step, py = yy % step;
        for (int xx = 0; xx < width; xx++) {
            int c = xx / step, px = xx % step;
            int v = GUTTER_GREY;
            if (py < TILE && px < TILE) v = tiles[((size_t)r * cols + c) * TILE * TILE + py * TILE + px];
            fprintf(f, xx ? " %d" : "%d", v);
        }
        fputc('\n', f);
    }
}

int qa_plot_image_grid(const char *out, const uint8_t *tiles, int rows, int cols, const char *const *row_labels,
                       const char *column_label, const char *title, qa_error *err) {
    FILE *f = qa_plot_open_dat(out, err);
    if (!f) return err->code;
    write_matrix(f, tiles, rows, cols);
    /* the labels block: each row's middle, counted in pixels from the bottom */
    fprintf(f, "\n\n# row middle (pixels from the bottom), label\n");
    int label_chars = 0;
    for (int r = 0; r < rows; r++) {
        const char *label = row_labels && row_labels[r] ? row_labels[r] : "";
        if ((int)strlen(label) > label_chars) label_chars = (int)strlen(label);
        fprintf(f, "%d \"%s\"\n", (rows - 1 - r) * (TILE + GUTTER) + GUTTER + TILE / 2, label);
    }
    int rc = qa_plot_close_dat(f, out, err);
    if (rc) return rc;
    plot_args a = {0};
    qa_plot_arg(&a, "%s", title ? title : "");
    qa_plot_arg(&a, "%d", rows);
    qa_plot_arg(&a, "%d", cols);
    qa_plot_arg(&a, "%d", label_chars);
    qa_plot_arg(&a, "%s", column_label ? column_label : "");
    return qa_plot_draw("samples", out, &a, err);
}

/* "lora w4a8 INT (+PTQ) a1.5 r8": what tells a run's deploy variant from the others of a grid,
 * named as the other figures name its cell (a plain integer deploy without "INT") */
static void variant_row_label(const qa_run_record *r, int v, int with_rank, char *buf, size_t len) {
    char deploy[48];
    qa_cells_variant_label(r->w_bits, r->needs_ptq, r->eval[v].variant, deploy, sizeof deploy);
    int off = r->w_bits ? snprintf(buf, len, "%s %s%s%s", r->method, r->bits, strcmp(deploy, "INT") ? " " : "",
                                   strcmp(deploy, "INT") ? deploy : "")
                        : snprintf(buf, len, "%s fp", r->method);
    if (r->axes[0]) off += snprintf(buf + off, len - (size_t)off, " %s", r->axes);
    if (with_rank) snprintf(buf + off, len - (size_t)off, " r%d", r->rank);
}

/* Copy up to `max` tiles of a run's sample group into the grid from row `row`, the rest of the
 * last row filled as padding (a whole row where nothing is copied); 0 tiles when the run has no
 * such group (a domain run has no references). */
static int copy_samples(const qa_run_record *r, const char *group, uint8_t *grid, int row, int max, int *copied,
                        qa_error *err) {
    uint8_t *pix = NULL, *at = grid + (size_t)row * GRID_COLS * TILE * TILE;
    int n = 0;
    *copied = 0;
    int rc = qa_runs_samples(r, group, &pix, &n, err);
    if (!rc) {
        *copied = n < max ? n : max;
        memcpy(at, pix, (size_t)*copied * TILE * TILE);
        qa_free(pix);
    }
    int row_end = (*copied ? (*copied + GRID_COLS - 1) / GRID_COLS : 1) * GRID_COLS;
    memset(at + (size_t)*copied * TILE * TILE, PAD_GREY, (size_t)(row_end - *copied) * TILE * TILE);
    return rc && strcmp(group, "references") ? err->code : QA_OK;
}

/* Per run and deploy variant: the item's references on top (where the task has them), then
 * every sample, GRID_COLS a row. */
static int plot_run_grids(const char *pdir, const qa_run_record *r, qa_error *err) {
    int rc = QA_OK;
    for (int v = 0; v < r->n_eval && !rc; v++) {
        const int max_rows = 1 + 64;
        uint8_t *tiles = qa_alloc((size_t)max_rows * GRID_COLS * TILE * TILE);
        const char *labels[1 + 64] = {0};
        int nref = 0, ns = 0, rows = 0;
        rc = copy_samples(r, "references", tiles, 0, GRID_COLS, &nref, err);
        if (nref) labels[rows++] = "references";
        if (!rc) rc = copy_samples(r, r->eval[v].variant, tiles, rows, (max_rows - rows) * GRID_COLS, &ns, err);
        if (ns) labels[rows] = "samples";
        rows += (ns + GRID_COLS - 1) / GRID_COLS;
        char out[4400], title[240], label[128];
        snprintf(out, sizeof out, "%s/%s_%s_samples", pdir, r->id, r->eval[v].variant);
        variant_row_label(r, v, 0, label, sizeof label);
        snprintf(title, sizeof title, "%s (%s): seed %ld", r->id, label, r->seed);
        if (!rc && rows > 0) rc = qa_plot_image_grid(out, tiles, rows, GRID_COLS, labels, NULL, title, err);
        qa_free(tiles);
    }
    return rc;
}

static void compare_title(const qa_run_record *r, char *buf, size_t len) {
    if (!strcmp(r->task, "domain"))
        snprintf(buf, len, "Domain task (every class in a new style), seed %ld: the same sampler noise in every row", r->seed);
    else if (!strcmp(r->task, "style"))
        snprintf(buf, len, "Style bound to a spare class slot, seed %ld: the same sampler noise in every row", r->seed);
    else
        snprintf(buf, len, "Item bound to a spare class slot, seed %ld: the same sampler noise in every row", r->seed);
}

/* Every run of the first seed side by side, one row per deploy variant, under the item's
 * references where the task has them. */
static int plot_compare_grid(const char *pdir, const qa_run_record *runs, int n, qa_error *err) {
    long seed0 = runs[0].seed;
    int rows = 1, multi_rank = 0;
    for (int i = 0; i < n; i++) {
        if (runs[i].seed != seed0) continue;
        rows += runs[i].n_eval;
        multi_rank |= runs[i].rank != runs[0].rank;
    }
    uint8_t *tiles = qa_alloc((size_t)rows * GRID_COLS * TILE * TILE);
    char (*label_text)[128] = qa_alloc(sizeof(char[128]) * rows);
    const char **labels = qa_alloc(sizeof(char *) * rows);
    int r = 0, got = 0;
    int rc = copy_samples(&runs[0], "references", tiles, 0, GRID_COLS, &got, err);
    if (got) snprintf(label_text[r++], 128, "references");
    for (int i = 0; i < n && !rc; i++) {
        if (runs[i].seed != seed0) continue;
        for (int v = 0; v < runs[i].n_eval && !rc; v++) {
            rc = copy_samples(&runs[i], runs[i].eval[v].variant, tiles, r, GRID_COLS, &got, err);
            variant_row_label(&runs[i], v, multi_rank, label_text[r++], 128);
        }
    }
    for (int k = 0; k < r; k++) labels[k] = label_text[k];
    char out[4400], title[200];
    snprintf(out, sizeof out, "%s/compare_seed%ld", pdir, seed0);
    compare_title(&runs[0], title, sizeof title);
    /* a column is one sampler noise: numbered, so that a reader can name it */
    if (!rc && r > 0) rc = qa_plot_image_grid(out, tiles, r, GRID_COLS, labels, "sample", title, err);
    qa_free(tiles);
    qa_free(label_text);
    qa_free(labels);
    return rc;
}

int qa_plot_results(const char *dir, const char *baseline, qa_error *err) {
    qa_run_record *runs;
    qa_run_skipped *skipped; /* left out with a warning, as the report does */
    int n, n_skipped;
    int rc = qa_runs_scan(dir, &runs, &n, &skipped, &n_skipped, err);
    if (rc) return rc;
    qa_runs_skipped_free(skipped, n_skipped);
    if (n == 0) { qa_runs_free(runs, 0); return qa_fail(err, QA_ERR_INPUT, "%s: no finished runs (*.h5) to plot", dir); }
    char pdir[4096];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    qa_cell *cells;
    int nc;
    qa_cells_build(runs, n, &cells, &nc);
    const qa_cell *base = qa_report_baseline_cell(cells, nc, baseline, dir, err);
    rc = base ? qa_mkdir_p(pdir, err) : QA_ERR_INPUT;
    if (!rc) rc = qa_plot_statistics(pdir, cells, nc, err);
    if (!rc) rc = qa_plot_forest(pdir, cells, nc, base, err);
    qa_free(cells);
    for (int i = 0; i < n && !rc; i++) rc = plot_run_grids(pdir, &runs[i], err);
    if (!rc) rc = plot_compare_grid(pdir, runs, n, err);
    qa_runs_free(runs, n);
    return rc;
}
