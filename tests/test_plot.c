/* Figures: the .dat of an image grid (dimensions, gutters, known pixels at the expected place
 * with the first line the bottom of the picture, the row labels), the call of each figure's
 * template and its text rendering (gnuplot's dumb terminal), the statistics figures of folders
 * with known values (clipped intervals, the bit sweep's series, the paired differences), where
 * the templates are found, and the errors: paths gnuplot cannot be given, a failing script, a
 * write error. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#include "common.h"
#include "harness/cells.h"
#include "harness/plot.h"
#include "harness/plot_forest.h"
#include "harness/plot_gnuplot.h"
#include "harness/plot_stats.h"
#include "harness/runs.h"
#include "harness/stats.h"
#include "fake_runs.h"

TestSuite(plot, .timeout = 60);

static char *slurp(const char *path) {
    char *text;
    size_t len;
    qa_error err;
    cr_assert_eq(qa_read_file(path, &text, &len, &err), 0, "%s", err.msg);
    return text;
}

/* parse the .dat matrix (its first block): lines[n_lines][n_vals] */
static int *parse_dat(const char *text, int *n_lines, int *n_vals_first, int *ragged) {
    size_t cap = 1 << 16, n = 0;
    int *v = malloc(sizeof(int) * cap);
    int lines = 0, first = -1, cur = 0;
    *ragged = 0;
    const char *q = text;
    while (*q && !(q > text && q[-1] == '\n' && q[0] == '\n')) { /* up to the blank line after block 0 */
        if (*q == '\n') {
            if (first < 0) first = cur;
            else if (cur != first) *ragged = 1;
            lines++;
            cur = 0;
            q++;
            continue;
        }
        if (*q == ' ') { q++; continue; }
        char *end;
        long x = strtol(q, &end, 10);
        cr_assert(end != q, "bad character in .dat: '%c'", *q);
        if (n == cap) v = realloc(v, sizeof(int) * (cap *= 2));
        v[n++] = (int)x;
        cur++;
        q = end;
    }
    *n_lines = lines;
    *n_vals_first = first;
    return v;
}

/* The figure's text rendering: its script run with the templates' dumb terminal into OUT.txt. */
static char *render_text(const char *out) {
    char p[700];
    qa_error err = {0, ""};
    snprintf(p, sizeof p, "%s.gp", out);
    cr_assert_eq(qa_plot_run_script(p, "dumb", &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.txt", out);
    return slurp(p);
}

static int exists_in(const char *dir, const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* uint8 samples of one group of a fake run: n tiles of one grey level */
static void add_samples(const char *dir, const char *id, const char *group, int n, uint8_t level) {
    char path[512], ds[200];
    snprintf(path, sizeof path, "%s/%s.h5", dir, id);
    snprintf(ds, sizeof ds, "/runs/%s/samples/%s", id, group);
    uint8_t *pix = malloc((size_t)n * 784);
    memset(pix, level, (size_t)n * 784);
    int64_t dims[3] = {n, 28, 28};
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_write(f, ds, QA_H5_U8, pix, 3, dims, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), 0, "%s", err.msg);
    free(pix);
}

static void set_run_str(const char *dir, const char *id, const char *name, const char *value) {
    char path[512], grp[200];
    snprintf(path, sizeof path, "%s/%s.h5", dir, id);
    snprintf(grp, sizeof grp, "/runs/%s", id);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, grp, name, value, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), 0, "%s", err.msg);
}

/* Load a folder's runs into cells (the caller frees both). */
static qa_cell *load_cells(const char *dir, qa_run_record **runs, int *nr, int *nc) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(dir, runs, nr, &err), 0, "%s", err.msg);
    qa_cell *cells;
    qa_cells_build(*runs, *nr, &cells, nc);
    return cells;
}

/* The statistics figures of a folder into dir/plots. */
static void plot_folder_statistics(const char *dir) {
    qa_run_record *runs;
    int nr, nc;
    qa_cell *cells = load_cells(dir, &runs, &nr, &nc);
    char pdir[400];
    qa_error err = {0, ""};
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    cr_assert_eq(qa_mkdir_p(pdir, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_plot_statistics(pdir, cells, nc, &err), 0, "%s", err.msg);
    qa_free(cells);
    qa_runs_free(runs, nr);
}

Test(plot, image_grid_dat_layout) {
    char dir[256], base[512], p[600];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(base, sizeof base, "%s/grid", dir);
    const int rows = 2, cols = 3, S = 28, G = S + 2;
    uint8_t *tiles = malloc((size_t)rows * cols * S * S);
    for (int t = 0; t < rows * cols; t++)
        for (int i = 0; i < S * S; i++) tiles[t * S * S + i] = (uint8_t)(10 + t); /* tile t is flat 10 + t */
    /* markers: tile (row 1, col 2) pixel (y 0, x 5) = 250; tile (0, 0) pixel (27, 27) = 200;
     * tile (0, 1) pixel (3, 0) = 7 */
    tiles[(1 * cols + 2) * S * S + 0 * S + 5] = 250;
    tiles[(0 * cols + 0) * S * S + 27 * S + 27] = 200;
    tiles[(0 * cols + 1) * S * S + 3 * S + 0] = 7;
    const char *labels[2] = {"references", "intlora-mul w4a8 NF4 (merged)"};
    qa_error err = {0, ""};
    cr_assert_eq(qa_plot_image_grid(base, tiles, rows, cols, labels, "sample", "a title", &err), 0, "plot_image_grid: %s", err.msg);

    snprintf(p, sizeof p, "%s.dat", base);
    char *dat = slurp(p);
    int n_lines, n_vals, ragged;
    int *v = parse_dat(dat, &n_lines, &n_vals, &ragged);
    const int H = rows * G, W = cols * G;
    cr_expect_eq(n_lines, H, "lines: %d, want rows*(28+2) = %d", n_lines, H);
    cr_expect_eq(n_vals, W, "values per line: %d, want cols*(28+2) = %d", n_vals, W);
    cr_expect_eq(ragged, 0, "every line has the same number of values");
    if (n_lines == H && n_vals == W && !ragged) {
        /* picture row Y (0 = top) is data line H-1-Y */
#define AT(Y, X) v[(size_t)(H - 1 - (Y)) * W + (X)]
        cr_expect_eq(AT(1 * G + 0, 2 * G + 5), 250, "marker of tile (1,2)");
        cr_expect_eq(AT(0 * G + 27, 0 * G + 27), 200, "marker of tile (0,0)");
        cr_expect_eq(AT(0 * G + 3, 1 * G + 0), 7, "marker of tile (0,1)");
        cr_expect_eq(v[0], 96, "first data line is the bottom gutter of the picture: %d", v[0]);
        /* the last tile row's bottom pixel row is data line 2 (after 2 gutter lines) */
        cr_expect_eq(v[(size_t)2 * W + 0], 10 + (rows - 1) * cols, "bottom pixel row of tile (1,0): %d", v[(size_t)2 * W]);
        /* top-left pixel of the picture (last data line) is tile (0,0) */
        cr_expect_eq(v[(size_t)(H - 1) * W + 0], 10, "top-left: %d", v[(size_t)(H - 1) * W]);
        int bad = 0;
        for (int Y = 0; Y < H; Y++)
            for (int X = 0; X < W; X++) {
                int r = Y / G, py = Y % G, c = X / G, px = X % G;
                int want = (py >= S || px >= S) ? 96 : tiles[((size_t)r * cols + c) * S * S + py * S + px];
                if (AT(Y, X) != want) bad++;
            }
        cr_expect_eq(bad, 0, "%d values differ from the tile layout", bad);
#undef AT
    }
    /* the labels block: each row's middle in pixels from the bottom (the top row is the higher) */
    cr_expect(strstr(dat, "\n\n\n# row middle") != NULL, "labels block after the matrix:\n%.200s", dat + strlen(dat) - 150);
    cr_expect(strstr(dat, "\n46 \"references\"\n16 \"intlora-mul w4a8 NF4 (merged)\"\n") != NULL, "labels:\n%s",
              strstr(dat, "# row middle") ? strstr(dat, "# row middle") : "(none)");
    free(v);
    free(dat);

    /* the script calls the template with the numbers the layout needs */
    snprintf(p, sizeof p, "%s.gp", base);
    char *gp = slurp(p), want[800];
    snprintf(want, sizeof want, "call 'samples.gp' '%s' 'a title' '2' '3' '29' 'sample'\n", base);
    cr_expect(strstr(gp, want) != NULL, "script lacks %s:\n%s", want, gp);
    free(gp);
    /* as rendered: the title and every label, none cut */
    char *txt = render_text(base);
    cr_expect(strstr(txt, "a title") && strstr(txt, "references") && strstr(txt, "intlora-mul w4a8 NF4 (merged)"), "%s", txt);
    free(txt);
    free(tiles);

    snprintf(p, sizeof p, "%s.png", base);
    FILE *f = fopen(p, "rb");
    cr_assert(f != NULL, "no %s", p);
    unsigned char sig[8] = {0};
    size_t got = fread(sig, 1, 8, f);
    fclose(f);
    const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    cr_expect(got == 8 && memcmp(sig, png, 8) == 0, "not a PNG file");
    snprintf(p, sizeof p, "%s.svg", base);
    char *svg = slurp(p);
    cr_expect(strstr(svg, "<svg") != NULL, "not an SVG file");
    free(svg);
    rm_rf_dir(dir);
}

Test(plot, grid_without_labels_or_title) {
    char dir[256], base[512], p[600];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(base, sizeof base, "%s/one", dir);
    uint8_t tile[784];
    for (int i = 0; i < 784; i++) tile[i] = (uint8_t)(i % 251);
    qa_error err = {0, ""};
    cr_expect_eq(qa_plot_image_grid(base, tile, 1, 1, NULL, NULL, NULL, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s.dat", base);
    char *dat = slurp(p);
    int n_lines, n_vals, ragged;
    int *v = parse_dat(dat, &n_lines, &n_vals, &ragged);
    cr_expect_eq(n_lines, 30);
    cr_expect_eq(n_vals, 30);
    /* pixel (y, x) of the single tile is data line 29 - y, value x */
    if (n_lines == 30 && n_vals == 30) {
        cr_expect_eq(v[(29 - 0) * 30 + 0], tile[0]);
        cr_expect_eq(v[(29 - 10) * 30 + 20], tile[10 * 28 + 20]);
        cr_expect_eq(v[(29 - 27) * 30 + 27], tile[27 * 28 + 27]);
        cr_expect_eq(v[(29 - 27) * 30 + 28], 96, "right gutter");
    }
    cr_expect(strstr(dat, "\n16 \"\"\n") != NULL, "one empty label: %s", strstr(dat, "# row") ? strstr(dat, "# row") : "(none)");
    free(v);
    free(dat);
    snprintf(p, sizeof p, "%s.gp", base);
    char *gp = slurp(p), want[700];
    snprintf(want, sizeof want, "call 'samples.gp' '%s' '' '1' '1' '0' ''\n", base);
    cr_expect(strstr(gp, want) != NULL, "no title, no label width:\n%s", gp);
    free(gp);
    rm_rf_dir(dir);
}

Test(plot, quote_in_script_path_is_rejected) {
    qa_error err = {0, ""};
    cr_expect_eq(qa_plot_run_script("/tmp/it's.gp", NULL, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "quote") != NULL, "message: %s", err.msg);
    /* through plot_image_grid: the script it writes is refused before gnuplot runs */
    char dir[256], base[512];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(base, sizeof base, "%s/o'brien", dir);
    uint8_t tile[784] = {0};
    err.code = 0;
    cr_expect_eq(qa_plot_image_grid(base, tile, 1, 1, NULL, NULL, "t", &err), QA_ERR_INPUT, "%s", err.msg);
    char p[600];
    snprintf(p, sizeof p, "%s.png", base);
    cr_expect(access(p, F_OK) != 0, "no PNG may be rendered from a quoted path");
    rm_rf_dir(dir);
}

Test(plot, failing_script_is_reported_with_its_path) {
    char dir[256], p[512];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(p, sizeof p, "%s/bad.gp", dir);
    write_text_file(p, "this is not gnuplot\n");
    qa_error err = {0, ""};
    cr_expect_eq(qa_plot_run_script(p, NULL, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, p) != NULL, "message names the script: %s", err.msg);
    cr_expect(strstr(err.msg, "line 1") != NULL, "and gnuplot's reason: %s", err.msg);
    snprintf(p, sizeof p, "%s/good.gp", dir);
    write_text_file(p, "set terminal dumb\nset output '/dev/null'\nplot x\n");
    cr_expect_eq(qa_plot_run_script(p, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_plot_run_script(p, "png; system", &err), QA_ERR_INPUT, "formats are words only");
    rm_rf_dir(dir);
}

Test(plot, write_error_names_the_file_and_cause) {
    FILE *f = fopen("/dev/full", "w");
    cr_assert(f != NULL);
    for (int i = 0; i < 100000; i++) fprintf(f, "%d\n", i);
    qa_error err = {0, ""};
    cr_expect_eq(qa_plot_close_dat(f, "/dev/full-figure", &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "/dev/full-figure.dat") && strstr(err.msg, strerror(ENOSPC)), "%s", err.msg);
}

/* The templates: found through QA_PLOTS_DIR when set (an error naming it when the template is
 * missing there), else from the source tree whatever the working directory. */
Test(plot, templates_found_from_elsewhere_or_through_the_environment) {
    char dir[256], empty[300], base[400];
    make_tmpdir(dir, sizeof dir, "plot-templates");
    snprintf(empty, sizeof empty, "%s/empty", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_mkdir_p(empty, &err), 0);
    snprintf(base, sizeof base, "%s/grid", dir);
    uint8_t tile[784] = {0};
    cr_assert_eq(chdir(dir), 0);
    unsetenv("QA_PLOTS_DIR");
    cr_expect_eq(qa_plot_image_grid(base, tile, 1, 1, NULL, NULL, "t", &err), 0, "from %s (no plots/ here): %s", dir, err.msg);
    setenv("QA_PLOTS_DIR", empty, 1);
    cr_expect_eq(qa_plot_image_grid(base, tile, 1, 1, NULL, NULL, "t", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "samples.gp") && strstr(err.msg, empty), "names the template and the folder: %s", err.msg);
    rm_rf_dir(dir);
}

/* Restyling: an edited copy of the templates, named by QA_PLOTS_DIR, draws every figure of the
 * kind; the figure's script stays the same call. */
Test(plot, an_edited_template_restyles_its_figures) {
    const char *src = QA_TEST_SOURCE_ROOT; /* compiled in by tests/meson.build */
    char dir[256], tdir[300], cmd[1200], edited[400];
    make_tmpdir(dir, sizeof dir, "plot-restyle");
    snprintf(tdir, sizeof tdir, "%s/templates", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/plots/*.gp '%s'/ && sed -i \"s/set xlabel 'weight \\/ activation bits'/set xlabel 'RESTYLED AXIS'/\" '%s/bars.gp'",
             tdir, src, tdir, tdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(edited, sizeof edited, "%s/bars.gp", tdir);
    char *t = slurp(edited);
    cr_assert(strstr(t, "RESTYLED AXIS") != NULL, "the edit took");
    free(t);
    setenv("QA_PLOTS_DIR", tdir, 1);
    for (int s = 0; s < 2; s++) {
        char id[32];
        snprintf(id, sizeof id, "lora-w8a8-r4-s%d", s);
        run_def d = {id, "lora", "w8a8", "done", "int", 8, 8, 4, 0, s, 0.1, 0.8, 0.7, 8};
        write_run(dir, &d);
    }
    plot_folder_statistics(dir);
    char out[400];
    snprintf(out, sizeof out, "%s/plots/bars_subject_fidelity", dir);
    t = render_text(out);
    cr_expect(strstr(t, "RESTYLED AXIS") != NULL, "the bar chart drawn by the edited template:\n%s", t);
    free(t);
    rm_rf_dir(dir);
}

/* The statistics figures of a folder with known values: lora and intlora-mul at w8a8 and
 * w4a8, ranks 2 and 4, two seeds. subject = 0.5 + 0.1 m + 0.01 [w8] + 0.001 r + 0.002 s, so a
 * cell's mean is its seed-0 value + 0.001 and its 95% CI is t(0.975, 1) * 0.002 / 2 = 0.0127062.
 * Training memory (frozen only) = 1 + 2 m + 0.1 r + 0.05 [w8] MiB. */
static char *slurp_rel(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/plots/%s", dir, name);
    return slurp(p);
}

Test(plot, statistics_figures_from_known_cells) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-stats");
    const char *methods[2] = {"lora", "intlora-mul"}, *bits[2] = {"w8a8", "w4a8"};
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < 2; b++)
            for (int r = 2; r <= 4; r += 2)
                for (int s = 0; s < 2; s++) {
                    char id[64];
                    snprintf(id, sizeof id, "%s-%s-r%d-s%d", methods[m], bits[b], r, s);
                    double subj = 0.5 + 0.1 * m + 0.01 * (b == 0) + 0.001 * r + 0.002 * s;
                    run_def d = {id, methods[m], bits[b], "done", "int", b ? 4 : 8, 8, r, 0, s, 0.1, subj, 0.6, 8};
                    write_run(dir, &d);
                    set_run_f64(dir, id, "memory", "frozen_bytes", (1 + 2 * m + 0.1 * r + 0.05 * (b == 0)) * 1048576.0);
                }
    plot_folder_statistics(dir);

    /* bars: groups w8a8 then w4a8; series in first-seen order of the cells (runs sorted by id):
     * intlora-mul r2, intlora-mul r4, lora r2, lora r4; per series mean, low, high */
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    cr_expect(strstr(t, "\nbits \"intlora-mul r2\" low high \"intlora-mul r4\" low high \"lora r2\" low high \"lora r4\" low high\n"),
              "bars header:\n%s", t);
    cr_expect(strstr(t, "\nw8a8 0.613 0.6002938 0.6257062 0.615 0.6022938 0.6277062 0.513 0.5002938 0.5257062 0.515 0.5022938 0.5277062\n"),
              "bars:\n%s", t);
    cr_expect(strstr(t, "\nw4a8 0.603 0.5902938 0.6157062 0.605") != NULL, "bars:\n%s", t);
    free(t);
    /* the bit sweep: intlora-mul r4 at 4 and 8 bits, nudged by -0.05, the second of four series */
    t = slurp_rel(dir, "bits_subject_fidelity.dat");
    cr_expect(strstr(t, "\"intlora-mul r4\"\n3.95 w4a8 0.605 0.5922938 0.6177062 2\n7.95 w8a8 0.615 0.6022938 0.6277062 2\n") != NULL,
              "sweep:\n%s", t);
    free(t);
    /* heatmap of intlora-mul: rank index, bits index (w8a8 first), mean */
    t = slurp_rel(dir, "heatmap_subject_fidelity_intlora-mul.dat");
    cr_expect(strstr(t, "\n1 0 0.615 0.012706205 4 w8a8\n") != NULL, "heatmap:\n%s", t);
    cr_expect(strstr(t, "\n0 1 0.603 0.012706205 2 w4a8\n") != NULL, "heatmap:\n%s", t);
    free(t);
    /* Pareto front by memory: 1.2 .503, 1.25 .513, (1.4 .505 dominated), 1.45 .515, 3.2 .603,
     * 3.25 .613, (3.4 .605 dominated), 3.45 .615; a block per cell before it */
    t = slurp_rel(dir, "pareto_training_memory_subject_fidelity.dat");
    const char *front = strstr(t, "# Pareto front");
    cr_assert(front != NULL, "pareto:\n%s", t);
    cr_expect(strstr(front, "\n1.2 0.503\n1.25 0.513\n1.45 0.515\n3.2 0.603\n3.25 0.613\n3.45 0.615\n") != NULL, "front:\n%s", front);
    cr_expect(strstr(t, "\"lora w4a8 r2\"\n1.2 0.503 0.4902938 0.5157062\n") != NULL, "a cell's block:\n%s", t);
    free(t);
    /* its script: 8 cells (w4a8 r2, w4a8 r4, w8a8 r2, w8a8 r4 of each method), a colour per
     * method and rank (the ranks vary), a shape per bits */
    t = slurp_rel(dir, "pareto_training_memory_subject_fidelity.gp");
    cr_expect(strstr(t, "'8' '1 2 1 2 3 4 3 4' '1 1 2 2 1 1 2 2'\n") != NULL, "colours and shapes:\n%s", t);
    cr_expect(strstr(t, "mean and 95% CI over 2 seeds") != NULL, "title:\n%s", t);
    free(t);
    /* loss bands: every run's loss is 1.0, 0.9, 0.8 -> running means 1, 0.95, 0.9, no spread */
    t = slurp_rel(dir, "loss_curves_w8a8.dat");
    cr_expect(strstr(t, "\"lora r2\"\n0 1 1 1\n1 0.95 0.95 0.95\n2 0.9 0.9 0.9\n") != NULL, "loss:\n%s", t);
    free(t);
    /* as drawn: each kind renders, with its series named */
    char out[400];
    const char *figures[5] = {"bars_subject_fidelity", "bits_subject_fidelity", "heatmap_subject_fidelity_intlora-mul",
                              "pareto_training_memory_subject_fidelity", "loss_curves_w4a8"};
    const char *named[5] = {"lora r4", "intlora-mul r2", "0.615", "lora w8a8 r4", "intlora-mul r4"};
    for (int k = 0; k < 5; k++) {
        snprintf(out, sizeof out, "%s/plots/%s", dir, figures[k]);
        t = render_text(out);
        cr_expect(strstr(t, named[k]) != NULL, "%s lacks '%s':\n%s", figures[k], named[k], t);
        free(t);
    }
    rm_rf_dir(dir);
}

/* Bounded metrics get bounded intervals: a subject fidelity of 0.99 and 0.5 over two seeds has a
 * CI of +-3.1 around 0.745, drawn as [0, 1]; a loss band stops at 0. */
Test(plot, intervals_are_clipped_to_the_metric_range) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-clip");
    const double subj[2] = {0.99, 0.5}, late_loss[2] = {0.0, 5.0};
    for (int s = 0; s < 2; s++) {
        char id[32], path[400], table[200];
        snprintf(id, sizeof id, "lora-w8a8-r4-s%d", s);
        run_def d = {id, "lora", "w8a8", "done", "int", 8, 8, 4, 0, s, 0.1, subj[s], 0.7, 8};
        write_run(dir, &d);
        /* step 3: the seeds' losses far apart, so that mean - CI < 0 */
        snprintf(path, sizeof path, "%s/%s.h5", dir, id);
        snprintf(table, sizeof table, "/runs/%s/train", id);
        double row[5] = {3, late_loss[s], 1e-3, 1, 0.4};
        qa_h5 *f;
        qa_error err = {0, ""};
        cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_table_append(f, table, row, 1, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_close(f, &err), 0);
    }
    plot_folder_statistics(dir);
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    cr_expect(strstr(t, "\nw8a8 0.745 0 1\n") != NULL, "clipped to [0, 1]:\n%s", t);
    free(t);
    /* step 3: moving means (2.7 + 0) / 4 and (2.7 + 5) / 4: mean 1.3, CI 12.7062 * 0.625 */
    t = slurp_rel(dir, "loss_curves_w8a8.dat");
    cr_expect(strstr(t, "\n3 1.3 0 9.241378\n") != NULL, "band clipped at 0:\n%s", t);
    free(t);
    rm_rf_dir(dir);
}

/* A folder with one bit setting and one cost (an ablation) has no bit sweep and no Pareto
 * figure; its other figures are drawn. */
Test(plot, no_sweep_with_one_bit_setting) {
    char dir[256], pdir[300];
    make_tmpdir(dir, sizeof dir, "plot-onebits");
    const char *axes[2] = {"a1", "a2"};
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 2; s++) {
            char id[48];
            snprintf(id, sizeof id, "intlora-mul-w4a8-r4-%s-s%d", axes[k], s);
            run_def d = {id, "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, s, 0.1, 0.8 + 0.01 * k, 0.7, 4};
            write_run(dir, &d);
        }
    plot_folder_statistics(dir);
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    cr_expect(exists_in(pdir, "bars_subject_fidelity.png"), "bars drawn");
    cr_expect(!exists_in(pdir, "bits_subject_fidelity.dat") && !exists_in(pdir, "bits_subject_fidelity.gp") &&
                  !exists_in(pdir, "bits_subject_fidelity.png"),
              "no one-point sweep, and no file of one");
    cr_expect(!exists_in(pdir, "pareto_storage_subject_fidelity.dat") && !exists_in(pdir, "pareto_training_memory_subject_fidelity.gp"),
              "no trade-off figure where every cell costs the same");
    rm_rf_dir(dir);
}

/* The sweep's series: LoRA at 4 and 8 bits as a line, a 4-bit-only NF4 series as one point (no
 * line to fp), and the full-precision run as its own point at the 'fp' tic (8 + 2). */
Test(plot, bit_sweep_draws_fp_runs_apart) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-sweep");
    for (int s = 0; s < 2; s++) {
        char id[48];
        run_def d[4] = {{"", "lora", "fp", "done", "fp", 0, 0, 4, 0, s, 0.1, 0.9, 0.7, 32},
                        {"", "lora", "w4a8", "done", "int", 4, 8, 4, 1, s, 0.1, 0.8, 0.7, 4},
                        {"", "lora", "w8a8", "done", "int", 8, 8, 4, 1, s, 0.1, 0.85, 0.7, 8},
                        {"", "qlora", "w4a8", "done", "nf4", 4, 8, 4, 1, s, 0.1, 0.7, 0.7, 4.1}};
        for (int k = 0; k < 4; k++) {
            snprintf(id, sizeof id, "%s-%s-r4-s%d", d[k].method, d[k].bits, s);
            d[k].id = id;
            write_run(dir, &d[k]);
        }
    }
    plot_folder_statistics(dir);
    char *t = slurp_rel(dir, "bits_subject_fidelity.dat");
    cr_expect(strstr(t, "\"lora INT (+PTQ)\"\n3.95 w4a8 0.8 0.8 0.8 2\n7.95 w8a8 0.85 0.85 0.85 2\n\n\n") != NULL, "lora line:\n%s", t);
    cr_expect(strstr(t, "\"qlora NF4 (merged, re-quantized)\"\n4.05 w4a8 0.7 0.7 0.7 2\n\n\n") != NULL, "one NF4 point:\n%s", t);
    cr_expect(strstr(t, "\"lora fp\"\n10 fp 0.9 0.9 0.9 2\n") != NULL, "the fp point, last:\n%s", t);
    free(t);
    t = slurp_rel(dir, "bits_subject_fidelity.gp");
    cr_expect(strstr(t, "'[3:11]' '(4, 8, ''fp'' 10)' '2' '1'\n") != NULL, "range, tics, 2 lines and 1 point:\n%s", t);
    free(t);
    char out[400];
    snprintf(out, sizeof out, "%s/plots/bits_subject_fidelity", dir);
    t = render_text(out);
    cr_expect(strstr(t, "lora fp") && strstr(t, "qlora NF4") && strstr(t, "lora INT (+PTQ)"), "every series in the key:\n%s", t);
    free(t);
    rm_rf_dir(dir);
}

/* One run per cell: the titles say there is no interval instead of promising a CI. */
Test(plot, titles_say_when_there_is_one_run_per_cell) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-n1");
    run_def d[2] = {{"lora-w8a8-r4-s0", "lora", "w8a8", "done", "int", 8, 8, 4, 0, 0, 0.1, 0.8, 0.7, 8},
                    {"qlora-w4a8-r4-s0", "qlora", "w4a8", "done", "int", 4, 8, 4, 0, 0, 0.1, 0.7, 0.6, 4}};
    for (int k = 0; k < 2; k++) {
        write_run(dir, &d[k]);
        set_run_f64(dir, d[k].id, "memory", "frozen_bytes", (1 + k) * 1048576.0);
    }
    plot_folder_statistics(dir);
    const char *scripts[3] = {"bars_subject_fidelity.gp", "pareto_training_memory_subject_fidelity.gp", "loss_curves_w8a8.gp"};
    const char *says[3] = {"one run per cell, no interval", "one run per cell, no interval", "one run per curve, no band"};
    for (int k = 0; k < 3; k++) {
        char *t = slurp_rel(dir, scripts[k]);
        cr_expect(strstr(t, says[k]) && !strstr(t, "95% CI"), "%s:\n%s", scripts[k], t);
        free(t);
    }
    rm_rf_dir(dir);
}

/* The forest: each cell minus the baseline. intlora-mul - lora fp per seed: 0.01, 0.03, 0.02
 * (mean 0.02, sd 0.01, CI t(0.975, 2) 0.01 / sqrt 3 = 0.0248414); qlora's seeds 0, 1, 5 are not
 * all the baseline's: Welch's interval, an open point. */
Test(plot, forest_of_paired_differences) {
    char dir[256], pdir[300];
    make_tmpdir(dir, sizeof dir, "plot-forest");
    const double base_subj[3] = {0.80, 0.70, 0.75}, mul_subj[3] = {0.81, 0.73, 0.77}, q_subj[3] = {0.6, 0.65, 0.5};
    const long q_seeds[3] = {0, 1, 5};
    for (int s = 0; s < 3; s++) {
        char id[3][48];
        snprintf(id[0], 48, "intlora-mul-w8a8-r4-s%d", s);
        snprintf(id[1], 48, "lora-fp-r4-s%d", s);
        snprintf(id[2], 48, "qlora-w8a8-r4-s%ld", q_seeds[s]);
        run_def d[3] = {{id[0], "intlora-mul", "w8a8", "done", "int", 8, 8, 4, 0, s, 0.1, mul_subj[s], 0.7, 8},
                        {id[1], "lora", "fp", "done", "fp", 0, 0, 4, 0, s, 0.1, base_subj[s], 0.7, 32},
                        {id[2], "qlora", "w8a8", "done", "int", 8, 8, 4, 0, q_seeds[s], 0.1, q_subj[s], 0.7, 8}};
        for (int k = 0; k < 3; k++) write_run(dir, &d[k]);
    }
    qa_run_record *runs;
    int nr, nc;
    qa_cell *cells = load_cells(dir, &runs, &nr, &nc);
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_mkdir_p(pdir, &err), 0);
    const qa_cell *base = NULL;
    for (int i = 0; i < nc; i++) if (cells[i].w_bits == 0) base = &cells[i];
    cr_assert(base != NULL);
    cr_assert_eq(qa_plot_forest(pdir, cells, nc, base, &err), 0, "%s", err.msg);
    double welch = qa_stats_welch_ci95(q_subj, 3, base_subj, 3), q_mean = (0.6 + 0.65 + 0.5) / 3 - 0.75;
    qa_free(cells);
    qa_runs_free(runs, nr);

    char *t = slurp_rel(dir, "forest.dat"), want[200];
    /* rows top (first cell) to bottom: intlora-mul at row 1, qlora at row 0 */
    cr_expect(strstr(t, "# subject_fidelity: row mean low high paired label\n1 0.02 -0.0048413771 0.044841377 1 \"intlora-mul w8a8\"\n"),
              "paired row:\n%s", t);
    snprintf(want, sizeof want, "\n0 %.8g %.8g %.8g 0 \"qlora w8a8\"\n", q_mean, q_mean - welch, q_mean + welch);
    cr_expect(strstr(t, want) != NULL, "Welch row %s in:\n%s", want, t);
    cr_expect(strstr(t, "# heldout_loss:") != NULL, "a panel per metric:\n%s", t);
    free(t);
    t = slurp_rel(dir, "forest.gp");
    cr_expect(strstr(t, "Each cell minus lora fp: mean and 95% CI of the differences paired by seed (n = 3); open points: Welch, not paired") != NULL,
              "title:\n%s", t);
    cr_expect(strstr(t, "'3' '\"subject fidelity: higher is better\" \"prompt fidelity: higher is better\" \"held-out loss: lower is better\"' '2' '16'") != NULL,
              "panels, rows, label width:\n%s", t);
    free(t);
    char out[400];
    snprintf(out, sizeof out, "%s/forest", pdir);
    t = render_text(out);
    cr_expect(strstr(t, "intlora-mul w8a8") && strstr(t, "qlora w8a8") && strstr(t, "held-out loss: lower is better"), "%s", t);
    free(t);
    rm_rf_dir(dir);
}

/* plot_results: the forest against the named baseline (a bad name is an input error before any
 * figure), and the side-by-side grid: the NF4 deploy named as such, the references row only
 * where the task has references, the title by task. */
Test(plot, results_folder_grids_and_baseline) {
    char dir[256], pdir[300];
    make_tmpdir(dir, sizeof dir, "plot-results");
    run_def d[2] = {{"lora-fp-r4-s0", "lora", "fp", "done", "fp", 0, 0, 4, 0, 0, 0.1, 0.8, 0.7, 32},
                    {"qlora-w4a8-r4-s0", "qlora", "w4a8", "done", "nf4", 4, 8, 4, 1, 0, 0.1, 0.7, 0.6, 4}};
    for (int k = 0; k < 2; k++) {
        write_run(dir, &d[k]);
        add_samples(dir, d[k].id, d[k].variant, 8, (uint8_t)(100 + k));
        add_samples(dir, d[k].id, "references", 5, 255);
    }
    /* a foreign file is left out with a warning (as report does), not a refusal of the folder */
    char junk[400];
    snprintf(junk, sizeof junk, "%s/notes.h5", dir);
    FILE *jf = fopen(junk, "w");
    cr_assert_not_null(jf);
    fputs("not an HDF5 file\n", jf);
    fclose(jf);
    qa_error err = {0, ""};
    cr_expect_eq(qa_plot_results(dir, "qlora:w9a9", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "qlora:w9a9") != NULL, "%s", err.msg);
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    cr_expect(!exists_in(pdir, "forest.dat"), "nothing drawn for a bad baseline");
    cr_assert_eq(qa_plot_results(dir, "qlora:w4a8:nf4", &err), 0, "%s", err.msg);
    char *t = slurp_rel(dir, "forest.gp");
    cr_expect(strstr(t, "Each cell minus qlora w4a8 NF4 (merged, re-quantized): one run per cell") != NULL, "%s", t);
    free(t);
    t = slurp_rel(dir, "compare_seed0.dat");
    cr_expect(strstr(t, "\"references\"\n") && strstr(t, "\"lora fp\"\n") && strstr(t, "\"qlora w4a8 NF4 (merged, re-quantized)\"\n"),
              "%s", strstr(t, "# row") ? strstr(t, "# row") : "(no labels)");
    cr_expect(strstr(t, "INT deploy") == NULL, "the NF4 deploy is not called INT");
    free(t);
    /* its picture: the references row's 5 images (255), then 3 places without one in the flat
     * padding grey (128, not black like an image's background); each run row full (8 samples) */
    t = slurp_rel(dir, "compare_seed0.dat");
    int n_lines, n_vals, ragged;
    int *v = parse_dat(t, &n_lines, &n_vals, &ragged);
    cr_assert(n_lines == 3 * 30 && n_vals == 8 * 30 && !ragged, "3 rows of 8 tiles: %d x %d", n_lines, n_vals);
#define AT(Y, X) v[(size_t)(n_lines - 1 - (Y)) * n_vals + (X)]
    for (int c = 0; c < 8; c++) {
        cr_expect_eq(AT(14, c * 30 + 14), c < 5 ? 255 : 128, "references row, place %d: %d", c, AT(14, c * 30 + 14));
        cr_expect_eq(AT(30 + 14, c * 30 + 14), 100, "lora fp row, sample %d: %d", c, AT(30 + 14, c * 30 + 14));
        cr_expect_eq(AT(29, c * 30 + 14), 96, "the gutter below the references");
    }
#undef AT
    free(v);
    free(t);
    /* the columns numbered, as samples */
    t = slurp_rel(dir, "compare_seed0.gp");
    cr_expect(strstr(t, "Item bound to a spare class slot, seed 0") != NULL, "%s", t);
    cr_expect(strstr(t, "'3' '8' '37' 'sample'\n") != NULL, "rows, columns, label width, column heading:\n%s", t);
    free(t);
    cr_expect(exists_in(pdir, "qlora-w4a8-r4-s0_nf4_samples.png"), "a grid per run and deploy");

    /* the domain task: no references, its own title */
    char domain[400];
    snprintf(domain, sizeof domain, "%s/domain", dir);
    cr_assert_eq(qa_mkdir_p(domain, &err), 0);
    for (int k = 0; k < 2; k++) {
        write_run(domain, &d[k]);
        add_samples(domain, d[k].id, d[k].variant, 8, (uint8_t)(100 + k));
        set_run_str(domain, d[k].id, "task", "domain");
    }
    cr_assert_eq(qa_plot_results(domain, NULL, &err), 0, "%s", err.msg);
    t = slurp_rel(domain, "compare_seed0.dat");
    cr_expect(strstr(t, "\"references\"") == NULL, "no empty references row:\n%s", strstr(t, "# row") ? strstr(t, "# row") : "");
    free(t);
    t = slurp_rel(domain, "compare_seed0.gp");
    cr_expect(strstr(t, "Domain task") && !strstr(t, "Bound slot"), "%s", t);
    free(t);
    rm_rf_dir(dir);
}

/* More cells than a Pareto figure's markers can name: an error naming the figure, not a key
 * with markers silently cut off. Cells built in memory: 400 methods at one bit setting. */
Test(plot, too_many_cells_for_one_pareto_figure) {
    char dir[256], pdir[300];
    make_tmpdir(dir, sizeof dir, "plot-many");
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_mkdir_p(pdir, &err), 0);
    const int nc = 400;
    qa_run_record run;
    memset(&run, 0, sizeof run);
    qa_cell *cells = calloc(nc, sizeof *cells);
    char (*names)[8] = calloc(nc, sizeof *names); /* the cells point at their names, as at runs' */
    for (int i = 0; i < nc; i++) {
        qa_cell *c = &cells[i];
        snprintf(names[i], sizeof names[i], "m%d", i);
        c->method = names[i];
        c->variant = "int";
        c->bits = "w8a8";
        c->axes = "";
        c->w_bits = 8;
        c->rank = 4;
        c->n = 1;
        c->runs[0] = &run;
        c->sum[MET_LOSS] = (qa_summary){1, 0.1, 0, 0};
        c->train_mb = (qa_summary){1, 1.0 + i, 0, 0};
    }
    cr_expect_eq(qa_plot_statistics(pdir, cells, nc, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "pareto_training_memory_heldout_loss") && strstr(err.msg, "400 cells"), "%s", err.msg);
    free(names);
    free(cells);
    rm_rf_dir(dir);
}
