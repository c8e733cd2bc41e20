/* Figures: the .dat of an image grid (dimensions, gutters, known pixels at the expected place
 * with the first line the bottom of the picture, the row labels), the call of each figure's
 * template and its text rendering (gnuplot's dumb terminal), the statistics figures of folders
 * with known values (clipped intervals, the bit sweep's series, the paired differences), where
 * the templates are found, and the errors: paths gnuplot cannot be given, a failing script, a
 * write error. */
#include <criterion/criterion.h>
#include <dirent.h>
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
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/plots/*.gp '%s'/ && sed -i \"s/set xlabel 'series (method, deploy); a bar per bit setting'/set xlabel 'RESTYLED AXIS'/\" '%s/bars.gp'",
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

/* The k-th argument of a figure script's template call (0: OUT), its doubled quotes undone;
 * 0 when the script has no such argument. */
static int gp_arg(const char *script, int k, char *buf, size_t len) {
    const char *q = strstr(script, "\ncall '");
    if (!q) return 0;
    q += 6;
    for (int t = 0;; t++) { /* token 0 is the template's name */
        while (*q == ' ') q++;
        if (*q != '\'') return 0;
        size_t n = 0;
        for (q++;; q++) {
            if (!*q) return 0;
            if (*q == '\'' && q[1] != '\'') break;
            if (*q == '\'') q++;
            if (n + 1 < len) buf[n++] = *q;
        }
        q++;
        buf[n] = 0;
        if (t == k + 1) return 1;
    }
}

/* Argument k of plots/<name>.gp of a folder. */
static void figure_arg(const char *dir, const char *name, int k, char *buf, size_t len) {
    char *t = slurp_rel(dir, name);
    cr_assert(gp_arg(t, k, buf, len), "%s has no argument %d:\n%s", name, k, t);
    free(t);
}

/* Looks as a template reads them ('C:M', or '-' for a key heading): each well-formed (colour
 * 0-8, mark 0-15) and none twice. Returns how many looks. */
static int expect_unique_looks(const char *looks, const char *what) {
    char tok[64][8];
    int n = 0;
    const char *q = looks;
    while (*q) {
        while (*q == ' ') q++;
        if (!*q) break;
        size_t len = strcspn(q, " ");
        if (!(len == 1 && *q == '-')) {
            cr_assert(n < 64 && len < 8, "%s: too many or too long looks: %s", what, looks);
            memcpy(tok[n], q, len);
            tok[n][len] = 0;
            int c = -1, m = -1;
            cr_expect(sscanf(tok[n], "%d:%d", &c, &m) == 2 && c >= 0 && c <= 8 && m >= 0 && m <= 15, "%s: bad look '%s'", what, tok[n]);
            for (int j = 0; j < n; j++) cr_expect(strcmp(tok[j], tok[n]) != 0, "%s: look %s twice in '%s'", what, tok[n], looks);
            n++;
        }
        q += len;
    }
    return n;
}

/* A figure's script redrawn by hand (gnuplot with the source's templates, text output) says
 * nothing: no warning from a template. */
static void expect_quiet_redraw(const char *dir, const char *name) {
    char cmd[1400], said[600] = "";
    snprintf(cmd, sizeof cmd, "GNUPLOT_LIB='%s/plots' gnuplot -e \"formats='dumb'\" '%s/plots/%s' 2>&1", QA_TEST_SOURCE_ROOT, dir, name);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "%s", cmd);
    size_t n = fread(said, 1, sizeof said - 1, p);
    said[n] = 0;
    cr_expect_eq(pclose(p), 0, "%s failed: %s", name, said);
    cr_expect_eq(n, 0, "%s says:\n%s", name, said);
}

/* Every figure script of a folder whose value axis starts above 0 says so in the axis label. */
static void expect_truncated_axes_say_so(const char *dir) {
    /* per template: the argument of the value-axis label and of its range */
    const struct { const char *prefix; int label, range; } kinds[4] = {
        {"bars_", 2, 3}, {"bits_", 2, 3}, {"loss_curves_", 2, 3}, {"pareto_", 3, 6}};
    char pdir[400];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    DIR *d = opendir(pdir);
    cr_assert(d != NULL, "%s", pdir);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".gp")) continue;
        for (int k = 0; k < 4; k++) {
            if (strncmp(e->d_name, kinds[k].prefix, strlen(kinds[k].prefix))) continue;
            char label[400], range[64];
            figure_arg(dir, e->d_name, kinds[k].label, label, sizeof label);
            figure_arg(dir, e->d_name, kinds[k].range, range, sizeof range);
            double from = 0;
            cr_expect(sscanf(range, "[%lf:", &from) == 1 || !strncmp(range, "[0:", 3), "%s: range %s", e->d_name, range);
            if (from > 0) {
                char says[80];
                snprintf(says, sizeof says, "(axis from %g, not 0)", from);
                cr_expect(strstr(label, says) != NULL, "%s: the axis starts at %g and its label '%s' does not say so", e->d_name, from, label);
            } else {
                cr_expect(strstr(label, "not 0") == NULL, "%s: the axis starts at 0 but its label says '%s'", e->d_name, label);
            }
            checked++;
        }
    }
    closedir(d);
    cr_expect(checked > 0, "no figure script in %s", pdir);
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

    /* bars: a group per series in first-seen order of the cells (runs sorted by id): intlora-mul
     * r2, intlora-mul r4, lora r2, lora r4; in each a bar per bit setting, w4a8 (1) before w8a8 (2)
     * as in the bit sweep; groups 0.6 apart within a method, 1.2 between methods */
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    cr_expect(strstr(t, "\n0.6 0.603 0.5902938 0.6157062 1 \"intlora-mul r2\"\n1.6 0.613 0.6002938 0.6257062 2 \"intlora-mul r2\"\n"
                        "3.2 0.605 0.5922938 0.6177062 1 \"intlora-mul r4\"\n4.2 0.615 0.6022938 0.6277062 2 \"intlora-mul r4\"\n"
                        "6.4 0.503 0.4902938 0.5157062 1 \"lora r2\"\n7.4 0.513 0.5002938 0.5257062 2 \"lora r2\"\n"),
              "bars:\n%s", t);
    cr_expect(strstr(t, "# the groups: x of the middle, series\n1.1 \"intlora-mul r2\"\n3.7 \"intlora-mul r4\"\n6.9 \"lora r2\"\n9.5 \"lora r4\"\n"),
              "groups:\n%s", t);
    free(t);
    t = slurp_rel(dir, "bars_subject_fidelity.gp");
    cr_expect(strstr(t, "'[0:1.05]' 'w4a8 w8a8' '1:1 2:1' '14'\n") != NULL, "bit settings, their looks, longest name:\n%s", t);
    free(t);
    /* the bit sweep: intlora-mul r4 at 4 and 8 bits, nudged by -0.05, the second of four series */
    t = slurp_rel(dir, "bits_subject_fidelity.dat");
    cr_expect(strstr(t, "\"intlora-mul r4\"\n3.95 w4a8 0.605 0.5922938 0.6177062 2\n7.95 w8a8 0.615 0.6022938 0.6277062 2\n") != NULL,
              "sweep:\n%s", t);
    free(t);
    /* heatmap of intlora-mul: rank index, bits index (w4a8 first, as in every figure), mean */
    t = slurp_rel(dir, "heatmap_subject_fidelity_intlora-mul.dat");
    cr_expect(strstr(t, "\n1 1 0.615 0.012706205 4 w8a8\n") != NULL, "heatmap:\n%s", t);
    cr_expect(strstr(t, "\n0 0 0.603 0.012706205 2 w4a8\n") != NULL, "heatmap:\n%s", t);
    free(t);
    /* Pareto front by memory: 1.2 .503, 1.25 .513, (1.4 .505 dominated), 1.45 .515, 3.2 .603,
     * 3.25 .613, (3.4 .605 dominated), 3.45 .615; a block per cell before it (cost, x, mean, low,
     * high; no two costs equal, so x is the cost), a linear axis (the costs span less than two octaves) */
    t = slurp_rel(dir, "pareto_training_memory_subject_fidelity.dat");
    const char *front = strstr(t, "# Pareto front");
    cr_assert(front != NULL, "pareto:\n%s", t);
    cr_expect(strstr(front, "\n1.2 1.2 0.503 \"lora w4a8 r2\"\n1.25 1.25 0.513 \"lora w8a8 r2\"\n1.45 1.45 0.515 \"lora w8a8 r4\"\n"
                            "3.2 3.2 0.603 \"intlora-mul w4a8 r2\"\n3.25 3.25 0.613 \"intlora-mul w8a8 r2\"\n"
                            "3.45 3.45 0.615 \"intlora-mul w8a8 r4\"\n") != NULL,
              "front:\n%s", front);
    cr_expect(strstr(t, "\"lora w4a8 r2\"\n1.2 1.2 0.503 0.4902938 0.5157062\n") != NULL, "a cell's block:\n%s", t);
    free(t);
    /* its script: 8 cells (w4a8 r2, w4a8 r4, w8a8 r2, w8a8 r4 of each method), a mark per method
     * and rank (the ranks vary), a colour per bits (the bars' colours); the key names the marks
     * and the colours apart, under a heading each ('-') */
    t = slurp_rel(dir, "pareto_training_memory_subject_fidelity.gp");
    /* the value axis tight around the intervals [0.4903, 0.6277], padded by 6% to the hundredth */
    cr_expect(strstr(t, "(axis from 0.48, not 0)' '[1.065:3.585]' 'linear' '[0.48:0.64]' '1:1 1:2 2:1 2:2 1:3 1:4 2:3 2:4' "
                        "'- 0:1 0:2 0:3 0:4 - 1:0 2:0'\n") != NULL,
              "axes, looks and key:\n%s", t);
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
    const char *named[5] = {"lora r4", "intlora-mul r2", "0.615", "lora r4", "intlora-mul r4"};
    for (int k = 0; k < 5; k++) {
        snprintf(out, sizeof out, "%s/plots/%s", dir, figures[k]);
        t = render_text(out);
        cr_expect(strstr(t, named[k]) != NULL, "%s lacks '%s':\n%s", figures[k], named[k], t);
        free(t);
        /* a sweep of one panel and no full-precision points, a linear Pareto axis: no warning */
        char script[200];
        snprintf(script, sizeof script, "%s.gp", figures[k]);
        expect_quiet_redraw(dir, script);
    }
    rm_rf_dir(dir);
}

/* One more training step of a run file already written: its step and loss. */
static void append_train_row(const char *dir, const char *id, int step, double loss) {
    char path[400], table[200];
    snprintf(path, sizeof path, "%s/%s.h5", dir, id);
    snprintf(table, sizeof table, "/runs/%s/train", id);
    double row[5] = {step, loss, 1e-3, 1, 0.4};
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_table_append(f, table, row, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), 0);
}

/* Bounded metrics get bounded intervals: a subject fidelity of 0.99 and 0.5 over two seeds has a
 * CI of +-3.1 around 0.745, drawn as [0, 1]; a loss band stops at 0. */
Test(plot, intervals_are_clipped_to_the_metric_range) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-clip");
    const double subj[2] = {0.99, 0.5}, late_loss[2] = {0.0, 5.0};
    for (int s = 0; s < 2; s++) {
        char id[32];
        snprintf(id, sizeof id, "lora-w8a8-r4-s%d", s);
        run_def d = {id, "lora", "w8a8", "done", "int", 8, 8, 4, 0, s, 0.1, subj[s], 0.7, 8};
        write_run(dir, &d);
        /* step 3: the seeds' losses far apart, so that mean - CI < 0 */
        append_train_row(dir, id, 3, late_loss[s]);
    }
    plot_folder_statistics(dir);
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    cr_expect(strstr(t, "\n0.6 0.745 0 1 1 \"lora\"\n") != NULL, "clipped to [0, 1]:\n%s", t);
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
    /* one panel of two lines and a point; a colour per method, lora's two series told apart by their marks */
    cr_expect(strstr(t, "'[3:11]' '(4, 8, ''fp'' 10)' '1:1 2:1 1:2' '2:1:'\n") != NULL, "range, tics, looks, panel:\n%s", t);
    free(t);
    /* every loss is 0.1: the axis pads by 6% of 0.1 out to the hundredth, [0.09:0.11], and says
     * that it does not start at 0 */
    t = slurp_rel(dir, "bits_heldout_loss.gp");
    cr_expect(strstr(t, "'held-out denoising loss of the deployed model\\n(lower is better)\\n(axis from 0.09, not 0)' '[0.09:0.11]'") != NULL,
              "a truncated axis says so:\n%s", t);
    free(t);
    expect_truncated_axes_say_so(dir);
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
    /* the third: a plain integer deploy, named as in the other figures ('qlora w8a8', no 'INT') */
    run_def d[3] = {{"lora-fp-r4-s0", "lora", "fp", "done", "fp", 0, 0, 4, 0, 0, 0.1, 0.8, 0.7, 32},
                    {"qlora-w4a8-r4-s0", "qlora", "w4a8", "done", "nf4", 4, 8, 4, 1, 0, 0.1, 0.7, 0.6, 4},
                    {"qlora-w8a8-r4-s0", "qlora", "w8a8", "done", "int", 8, 8, 4, 0, 0, 0.1, 0.75, 0.65, 8}};
    for (int k = 0; k < 3; k++) {
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
    cr_expect(strstr(t, "\"references\"\n") && strstr(t, "\"lora fp\"\n") && strstr(t, "\"qlora w4a8 NF4 (merged, re-quantized)\"\n") &&
                  strstr(t, "\"qlora w8a8\"\n"),
              "%s", strstr(t, "# row") ? strstr(t, "# row") : "(no labels)");
    cr_expect(strstr(t, "INT deploy") == NULL, "the NF4 deploy is not called INT");
    free(t);
    /* its picture: the references row's 5 images (255), then 3 places without one in the flat
     * padding grey (128, not black like an image's background); each run row full (8 samples) */
    t = slurp_rel(dir, "compare_seed0.dat");
    int n_lines, n_vals, ragged;
    int *v = parse_dat(t, &n_lines, &n_vals, &ragged);
    cr_assert(n_lines == 4 * 30 && n_vals == 8 * 30 && !ragged, "4 rows of 8 tiles: %d x %d", n_lines, n_vals);
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
    cr_expect(strstr(t, "'4' '8' '37' 'sample'\n") != NULL, "rows, columns, label width, column heading:\n%s", t);
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

/* ---- figures of many series: cells built in memory (one run stands for every seed; no loss curves) ---- */

typedef struct {
    const char *method, *bits, *variant;
    int w_bits, needs_ptq;
    double subj, loss, bpw, mb;
} mem_cell;

/* Cells of three seeds each (subject CI 0.12, loss CI 0.0025), in the given order. */
static qa_cell *mem_cells(const mem_cell *spec, int n, const qa_run_record *run) {
    qa_cell *cells = calloc(n, sizeof *cells);
    for (int i = 0; i < n; i++) {
        qa_cell *c = &cells[i];
        c->method = spec[i].method;
        c->bits = spec[i].bits;
        c->variant = spec[i].variant;
        c->axes = "";
        c->w_bits = spec[i].w_bits;
        c->needs_ptq = spec[i].needs_ptq;
        c->rank = 4;
        c->n = 3;
        for (int s = 0; s < 3; s++) c->runs[s] = run;
        c->sum[MET_SUBJECT] = (qa_summary){3, spec[i].subj, 0.05, 0.12};
        c->sum[MET_LOSS] = (qa_summary){3, spec[i].loss, 0.001, 0.0025};
        c->bits_pw = spec[i].bpw;
        c->train_mb = (qa_summary){3, spec[i].mb, 0, 0};
    }
    return cells;
}

static void plot_mem_cells(const char *dir, const mem_cell *spec, int n) {
    char pdir[300];
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_mkdir_p(pdir, &err), 0);
    qa_run_record run;
    memset(&run, 0, sizeof run);
    qa_cell *cells = mem_cells(spec, n, &run);
    cr_assert_eq(qa_plot_statistics(pdir, cells, n, &err), 0, "%s", err.msg);
    free(cells);
}

/* the names of a figure's blocks: each line that is a quoted name alone */
static int block_names(const char *dat, char names[][128], int max) {
    int n = 0;
    for (const char *q = dat; *q && n < max; q += strcspn(q, "\n"), q += *q == '\n') {
        if (*q != '"') continue;
        size_t len = strcspn(q + 1, "\"\n");
        if (q[1 + len] == '"' && q[2 + len] == '\n') snprintf(names[n++], 128, "%.*s", (int)len, q + 1);
    }
    return n;
}

/* Ten methods as in the efficiency table: each at w4a8 and w8a8; lora, qlora and ir-qlora also at
 * fp and with their float model before PTQ; qlora and lq-lora also with an NF4 deploy: 18 series,
 * 27 deployed cells. Every figure gives each series (or cell) a look of its own, orders the bit
 * settings the same way and names the series the same way. */
Test(plot, ten_methods_each_series_has_its_own_look) {
    const char *methods[10] = {"efficientdm", "intlora-mul", "intlora-shift", "ir-qlora", "lora",
                               "lq-lora", "lr-qat", "peqa", "qalora", "qlora"};
    mem_cell spec[64];
    int n = 0;
    for (int m = 0; m < 10; m++) {
        const char *me = methods[m];
        int ptq = !strcmp(me, "lora") || !strcmp(me, "qlora") || !strcmp(me, "ir-qlora");
        int nf4 = !strcmp(me, "qlora") || !strcmp(me, "lq-lora");
        if (ptq) spec[n++] = (mem_cell){me, "fp", "fp", 0, 0, 0.8, 0.047, 32, 1.9};
        for (int b = 0; b < 2; b++) {
            int w = b ? 8 : 4;
            const char *bits = b ? "w8a8" : "w4a8";
            double q = 0.7 + 0.01 * m + 0.05 * b, loss = 0.051 - 0.003 * b + 0.0002 * m;
            if (ptq) spec[n++] = (mem_cell){me, bits, "fp", w, 1, q + 0.01, loss, 32, 0.6 + 0.2 * b};
            spec[n++] = (mem_cell){me, bits, "int", w, ptq, q, loss, w + 0.5 * (m % 3), 0.6 + 0.2 * b + 0.01 * m};
            if (nf4) spec[n++] = (mem_cell){me, bits, "nf4", w, ptq, q - 0.02, loss + 0.001, w + 0.13, 0.6 + 0.2 * b};
        }
    }
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-ten");
    plot_mem_cells(dir, spec, n);

    /* bars: a group per series, a bar per bit setting in rising bits, fp last, each its look */
    char bits_arg[64], looks[1400], names_bars[64][128], names_bits[64][128];
    figure_arg(dir, "bars_subject_fidelity.gp", 4, bits_arg, sizeof bits_arg);
    cr_expect_str_eq(bits_arg, "w4a8 w8a8 fp");
    figure_arg(dir, "bars_subject_fidelity.gp", 5, looks, sizeof looks);
    cr_expect_eq(expect_unique_looks(looks, "bars"), 3, "a look per bit setting: %s", looks);
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    const char *groups = strstr(t, "# the groups");
    cr_assert(groups != NULL, "%s", t);
    int n_bars = 0;
    for (const char *q = strchr(groups, '\n'); q && q[1] && n_bars < 64; q = strchr(q + 1, '\n')) {
        const char *name = strchr(q + 1, '"');
        cr_assert(name != NULL, "a group line without its series: %s", q);
        snprintf(names_bars[n_bars++], 128, "%.*s", (int)strcspn(name + 1, "\""), name + 1);
    }
    cr_expect_eq(n_bars, 18, "a group per series: %d", n_bars);
    for (int i = 0; i < n_bars; i++)
        for (int j = i + 1; j < n_bars; j++) cr_expect(strcmp(names_bars[i], names_bars[j]), "group %s twice", names_bars[i]);
    free(t);

    /* the bit sweep: 18 series, more than one panel holds: a panel per method, rising bits */
    figure_arg(dir, "bits_subject_fidelity.gp", 6, looks, sizeof looks);
    cr_expect_eq(expect_unique_looks(looks, "bit sweep"), 18, "a look per series: %s", looks);
    char xtics[128], panels[1400];
    figure_arg(dir, "bits_subject_fidelity.gp", 5, xtics, sizeof xtics);
    cr_expect_str_eq(xtics, "(4, 8, 'fp' 10)");
    figure_arg(dir, "bits_subject_fidelity.gp", 7, panels, sizeof panels);
    cr_expect(strstr(panels, "1:0:efficientdm ") == panels && strstr(panels, " 2:1:lora ") && strstr(panels, " 2:0:lq-lora ") && strstr(panels, " 3:1:qlora"),
              "a panel per method, its lines and points: %s", panels);
    t = slurp_rel(dir, "bits_subject_fidelity.dat");
    int n_sweep = block_names(t, names_bits, 64);
    free(t);
    /* the same names in both figures: each of the sweep's series is one of the bars' groups */
    cr_expect_eq(n_sweep, n_bars);
    for (int i = 0; i < n_sweep; i++) {
        int found = 0;
        for (int j = 0; j < n_bars; j++) found |= !strcmp(names_bits[i], names_bars[j]);
        cr_expect(found, "sweep series '%s' is no group of the bars", names_bits[i]);
    }
    int fp_named = 0;
    for (int j = 0; j < n_bars; j++) fp_named += !strcmp(names_bars[j], "lora fp") || !strcmp(names_bars[j], "qlora fp");
    cr_expect_eq(fp_named, 2, "full-precision series are named 'method fp' in the bars too");

    /* Pareto: 27 deployed cells, each its look; a mark per method (10) and a colour per kind
     * (w4a8, w8a8, fp, w4a8 NF4, w8a8 NF4), so the key names the two apart */
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "pareto_storage_subject_fidelity.gp" : "pareto_training_memory_subject_fidelity.gp";
        char key[1400];
        figure_arg(dir, name, 7, looks, sizeof looks);
        cr_expect_eq(expect_unique_looks(looks, name), 27, "a look per cell: %s", looks);
        figure_arg(dir, name, 8, key, sizeof key);
        cr_expect_eq(expect_unique_looks(key, name), 15, "10 methods and 5 kinds in the key: %s", key);
    }
    /* the storage axis spans 4 to 32 bits: log2, tics at the powers of 2 */
    figure_arg(dir, "pareto_storage_subject_fidelity.gp", 5, xtics, sizeof xtics);
    cr_expect_str_eq(xtics, "log2 (4, 8, 16, 32)");
    expect_truncated_axes_say_so(dir);
    const char *scripts[4] = {"bars_subject_fidelity.gp", "bits_subject_fidelity.gp", "pareto_storage_subject_fidelity.gp",
                              "pareto_training_memory_subject_fidelity.gp"};
    for (int k = 0; k < 4; k++) expect_quiet_redraw(dir, scripts[k]);
    rm_rf_dir(dir);
}

/* The front holds the points no other point beats (cheaper or as cheap, and better or as good):
 * a: 4 bits 0.70 (beaten by b), b: 4 0.75, c: 4 0.75 (b's twin: b, the first, is kept), d: 8 0.74
 * (beaten by b), e: 8 0.80, f: 16 0.80 (beaten by e), g: 32 0.90. Points of equal cost are drawn
 * apart along x, and the title says so and what the front and whiskers are. */
Test(plot, pareto_front_holds_only_points_nothing_beats) {
    const mem_cell spec[7] = {{"m-a", "w4a8", "int", 4, 0, 0.70, 0.05, 4, 1}, {"m-b", "w4a8", "int", 4, 0, 0.75, 0.05, 4, 1},
                              {"m-c", "w4a8", "int", 4, 0, 0.75, 0.05, 4, 1}, {"m-d", "w8a8", "int", 8, 0, 0.74, 0.05, 8, 1},
                              {"m-e", "w8a8", "int", 8, 0, 0.80, 0.05, 8, 1}, {"m-f", "w8a8", "int", 8, 0, 0.80, 0.05, 16, 1},
                              {"m-g", "fp", "fp", 0, 0, 0.90, 0.05, 32, 1}};
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-front");
    plot_mem_cells(dir, spec, 7);
    char *t = slurp_rel(dir, "pareto_storage_subject_fidelity.dat");
    const char *front = strstr(t, "# Pareto front");
    cr_assert(front != NULL, "%s", t);
    /* the points: name, cost, drawn x, mean */
    char label[7][128];
    double cost[7], x[7], mean[7];
    const char *q = t;
    for (int k = 0; k < 7; k++) {
        q = strstr(q, "\n\"") + 2;
        size_t len = strcspn(q, "\"");
        snprintf(label[k], sizeof label[k], "%.*s", (int)len, q);
        cr_assert_eq(sscanf(q + len + 2, "%lf %lf %lf", &cost[k], &x[k], &mean[k]), 3, "block %d:\n%s", k, t);
    }
    /* the reference: a point is kept unless another costs no more and scores no less, strictly on
     * one, or is its exact twin listed before it */
    char want[1000] = "";
    for (int i = 0; i < 7; i++) {
        int beaten = 0;
        for (int j = 0; j < 7; j++) {
            if (j == i) continue;
            int no_worse = cost[j] <= cost[i] && mean[j] >= mean[i];
            beaten |= no_worse && (cost[j] < cost[i] || mean[j] > mean[i] || j < i);
        }
        if (!beaten) snprintf(want + strlen(want), sizeof want - strlen(want), "%s ", label[i]);
    }
    cr_expect_str_eq(want, "m-b w4a8 m-e w8a8 m-g fp ");
    char got[1000] = "";
    for (q = strchr(front, '\n') + 1; *q && *q != '\n'; q = strchr(q, '\n') + 1) {
        const char *name = strchr(q, '"');
        cr_assert(name != NULL && name < strchr(q, '\n'), "front line without a cell: %s", front);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s ", (int)strcspn(name + 1, "\""), name + 1);
    }
    cr_expect_str_eq(got, want, "front:\n%s", front);
    /* equal costs drawn apart: a, b, c at 4 and d, e at 8 each at an x of their own, near the cost */
    for (int i = 0; i < 7; i++) {
        cr_expect(fabs(log2(x[i] / cost[i])) < 0.1, "%s drawn at %g for a cost of %g", label[i], x[i], cost[i]);
        for (int j = 0; j < i; j++) cr_expect(x[i] != x[j], "%s and %s drawn at the same x %g", label[i], label[j], x[i]);
    }
    cr_expect(x[5] == cost[5] && x[6] == cost[6], "a point alone at its cost stays at it");
    free(t);
    char title[800];
    figure_arg(dir, "pareto_storage_subject_fidelity.gp", 1, title, sizeof title);
    /* the CIs' upper half-widths: 0.12, but g's clipped at 1 (0.1): median 0.12; the front's
     * steps 0.75 -> 0.80 -> 0.90 */
    cr_expect(strstr(title, "Pareto front through the means") &&
                  strstr(title, "whiskers: 95% CI, median +-0.12; the front's steps: 0.05-0.1; 5 points of equal cost spread along x"),
              "title: %s", title);
    rm_rf_dir(dir);
}

/* More kinds than colours: the looks still differ, each method keeps its mark, and the key names
 * every point instead of marks and colours apart. */
Test(plot, pareto_key_names_every_point_when_kinds_outnumber_colours) {
    /* two methods, each with eight deploys of its own at w4a8: nine kinds with the bit setting */
    const char *variants[8] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"};
    mem_cell spec[16];
    for (int k = 0; k < 8; k++) {
        spec[k] = (mem_cell){"m-a", "w4a8", variants[k], 4, 0, 0.6 + 0.01 * k, 0.05, 4 + 0.1 * k, 1};
        spec[8 + k] = (mem_cell){"m-b", "w4a8", variants[k], 4, 0, 0.5 + 0.01 * k, 0.05, 5 + 0.1 * k, 1};
    }
    char dir[256], looks[1400], key[1400];
    make_tmpdir(dir, sizeof dir, "plot-kinds");
    plot_mem_cells(dir, spec, 16);
    figure_arg(dir, "pareto_storage_subject_fidelity.gp", 7, looks, sizeof looks);
    figure_arg(dir, "pareto_storage_subject_fidelity.gp", 8, key, sizeof key);
    cr_expect_eq(expect_unique_looks(looks, "cells"), 16);
    cr_expect_str_eq(key, looks, "the key: every point in its look");
    /* the marks: 1 for m-a's eight points, 2 for m-b's */
    int c, m;
    const char *q = looks;
    for (int k = 0; k < 16; k++, q += strcspn(q, " "), q += *q == ' ') {
        cr_assert_eq(sscanf(q, "%d:%d", &c, &m), 2);
        cr_expect_eq(m, k < 8 ? 1 : 2, "point %d: mark %d", k, m);
    }
    rm_rf_dir(dir);
}

/* Looks, by hand: each series its preferred pair unless taken, then the next free mark of its
 * colour (or, keeping the mark, the next free colour); more series than pairs: -1. */
Test(plot, looks_are_unique_and_preferred_where_free) {
    const int pc[5] = {0, 0, 1, 0, 9}, pm[5] = {0, 0, 0, 16, 0};
    int c[5], m[5];
    cr_assert_eq(qa_plot_assign_looks(5, pc, pm, 0, c, m), 0);
    /* 1:1; taken -> 1:2; 2:1; mark 16 = 1 (mod 15) on colour 1: 1:1, 1:2 taken -> 1:3; colour 9 = 1 (mod 8): 2:1 taken -> 2:2 */
    const int wc[5] = {1, 1, 2, 1, 2}, wm[5] = {1, 2, 1, 3, 2};
    for (int k = 0; k < 5; k++) cr_expect(c[k] == wc[k] && m[k] == wm[k], "series %d: %d:%d, want %d:%d", k, c[k], m[k], wc[k], wm[k]);
    cr_assert_eq(qa_plot_assign_looks(5, pc, pm, 1, c, m), 0);
    /* keeping marks: 1:1; taken -> 2:1; taken -> 3:1; 1:2 free; 2:1, 3:1 taken -> 4:1 */
    const int kc[5] = {1, 2, 3, 1, 4}, km[5] = {1, 1, 1, 2, 1};
    for (int k = 0; k < 5; k++) cr_expect(c[k] == kc[k] && m[k] == km[k], "keeping marks, series %d: %d:%d", k, c[k], m[k]);
    int many = QA_PLOT_COLOURS * QA_PLOT_MARKS + 1;
    int *zero = calloc(many, sizeof(int)), *oc = calloc(many, sizeof(int)), *om = calloc(many, sizeof(int));
    cr_expect_eq(qa_plot_assign_looks(many - 1, zero, zero, 0, oc, om), 0, "every pair once");
    cr_expect_eq(qa_plot_assign_looks(many, zero, zero, 0, oc, om), -1, "one series more than pairs");
    free(zero);
    free(oc);
    free(om);
}

/* The value axis, by hand: a loss on [0.0435, 0.0602] pads by 6% of its span (0.001002) out to
 * the thousandth: [0.042:0.062], and the label says it does not start at 0; data reaching down
 * near 0 for their span start at 0; a bounded score keeps [0:1.05], or drawn tight its data's range, never past
 * 1.05; a long label breaks before its parenthesis. */
Test(plot, value_axis_says_where_it_does_not_start_at_zero) {
    char range[64], label[256];
    qa_plot_value_axis(INFINITY, 0, "loss", 0.0435, 0.0602, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0.042:0.062]");
    cr_expect_str_eq(label, "loss\\n(axis from 0.042, not 0)");
    qa_plot_value_axis(INFINITY, 0, "loss", 0.001, 1.0, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0:1.1]");
    cr_expect_str_eq(label, "loss");
    /* 10 is within a quarter of the span 50 of 0: the axis starts at 0 rather than at 7 */
    qa_plot_value_axis(INFINITY, 0, "FID", 10, 60, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0:63]");
    cr_expect_str_eq(label, "FID");
    qa_plot_value_axis(1.0, 0, "score", 0.6, 0.7, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0:1.05]");
    cr_expect_str_eq(label, "score");
    /* tight: 0.6 - 0.006 and 0.7 + 0.006 out to the hundredth; near 1, no further than 1.05 */
    qa_plot_value_axis(1.0, 1, "score", 0.6, 0.7, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0.59:0.71]");
    cr_expect_str_eq(label, "score\\n(axis from 0.59, not 0)");
    qa_plot_value_axis(1.0, 1, "score", 0.505, 1.0, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0.47:1.03]");
    qa_plot_value_axis(1.0, 1, "score", 0.0, 1.0, range, sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0:1.05]", "1 + 6%% rounds out to 1.1, stopped at 1.05");
    cr_expect_str_eq(label, "score");
    qa_plot_value_axis(INFINITY, 0, "held-out denoising loss of the deployed model (lower is better)", NAN, NAN, range,
                       sizeof range, label, sizeof label);
    cr_expect_str_eq(range, "[0:*]");
    cr_expect_str_eq(label, "held-out denoising loss of the deployed model\\n(lower is better)");
}

/* Loss curves named as coinciding from their numbers, bands only where the curves are few. Every
 * run trains 1.0, 0.9, 0.8, then a step 3 of its own: lora and qlora 0.5 (the same curve), peqa,
 * qalora and lr-qat 2.0, 3.0 and 4.0 (step 3's moving means 0.8, 1.175, 1.425, 1.675: apart by
 * far more than 1% of the means' span, 0.0095). Three seeds each, their losses equal: no spread.
 * At w8a8 all five: four groups, no bands; at w4a8 lora, peqa, qlora: two groups, a band each. */
Test(plot, loss_curves_say_which_coincide) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-coincide");
    const char *methods[5] = {"lora", "qlora", "peqa", "qalora", "lr-qat"};
    const double step3[5] = {0.5, 0.5, 2.0, 3.0, 4.0};
    for (int m = 0; m < 5; m++)
        for (int b = 0; b < 2; b++)
            for (int s = 0; s < 3; s++) {
                if (b == 1 && m > 2) continue;
                char id[64];
                const char *bits = b ? "w4a8" : "w8a8";
                snprintf(id, sizeof id, "%s-%s-r4-s%d", methods[m], bits, s);
                run_def d = {id, methods[m], bits, "done", "int", b ? 4 : 8, 8, 4, 0, s, 0.1, 0.8, 0.7, 8};
                write_run(dir, &d);
                append_train_row(dir, id, 3, step3[m]);
            }
    plot_folder_statistics(dir);
    /* curves in the cells' order (runs sorted by id): lora, lr-qat, peqa, qalora, qlora */
    char title[600], bands[64], looks[200];
    figure_arg(dir, "loss_curves_w8a8.gp", 1, title, sizeof title);
    cr_expect(strstr(title, "5 curves, so no CI bands") != NULL, "title: %s", title);
    cr_expect(strstr(title, "\\nlora and qlora coincide (largest gap 0)") != NULL, "title: %s", title);
    cr_expect(strstr(title, "peqa") == NULL && strstr(title, "qalora") == NULL && strstr(title, "lr-qat") == NULL,
              "only the curves that coincide are named: %s", title);
    figure_arg(dir, "loss_curves_w8a8.gp", 5, bands, sizeof bands);
    cr_expect_str_eq(bands, "0 0 0 0 0");
    figure_arg(dir, "loss_curves_w8a8.gp", 4, looks, sizeof looks);
    cr_expect_eq(expect_unique_looks(looks, "loss curves"), 5);
    /* three curves in two groups: a band for lora's group (not again for qlora) and for peqa */
    figure_arg(dir, "loss_curves_w4a8.gp", 1, title, sizeof title);
    cr_expect(strstr(title, "(band)\\nlora and qlora coincide (largest gap 0)") != NULL, "title: %s", title);
    figure_arg(dir, "loss_curves_w4a8.gp", 5, bands, sizeof bands);
    cr_expect_str_eq(bands, "1 1 0");
    expect_truncated_axes_say_so(dir);
    rm_rf_dir(dir);
}

/* lora and peqa at w8a8 with seeds_lora and seeds_peqa runs, the step-3 loss of seed s 0.3 s
 * apart (and peqa's 1 above lora's), then the folder's statistics figures. */
static void write_lora_peqa_curves(const char *dir, int seeds_lora, int seeds_peqa) {
    const char *methods[2] = {"lora", "peqa"};
    const int seeds[2] = {seeds_lora, seeds_peqa};
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < seeds[m]; s++) {
            char id[64];
            snprintf(id, sizeof id, "%s-w8a8-r4-s%d", methods[m], s);
            run_def d = {id, methods[m], "w8a8", "done", "int", 8, 8, 4, 0, s, 0.1, 0.8, 0.7, 8};
            write_run(dir, &d);
            append_train_row(dir, id, 3, 0.5 + 0.3 * s + m);
        }
    plot_folder_statistics(dir);
}

/* Curves of 3 seeds keep their band beside a curve of 2 (a seed missing or diverged): the
 * bands are decided per curve, and the title says where they are. */
Test(plot, loss_curves_band_each_curve_with_enough_seeds) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-mixed-seeds");
    write_lora_peqa_curves(dir, 3, 2);
    char title[600], bands[64];
    figure_arg(dir, "loss_curves_w8a8.gp", 1, title, sizeof title);
    cr_expect(strstr(title, "mean and 95% CI over 2-3 seeds (band where a curve has 3 seeds or more)") != NULL, "title: %s", title);
    figure_arg(dir, "loss_curves_w8a8.gp", 5, bands, sizeof bands);
    cr_expect_str_eq(bands, "1 0");
    rm_rf_dir(dir);
}

/* Two seeds a curve (their step-3 losses 0.3 apart): the 95% CI's t has 1 degree of freedom, so
 * no band is drawn, and the title says why and how wide the interval is. */
Test(plot, loss_curves_of_two_seeds_draw_no_band) {
    char dir[256];
    make_tmpdir(dir, sizeof dir, "plot-two-seeds");
    write_lora_peqa_curves(dir, 2, 2);
    char title[600], bands[64];
    figure_arg(dir, "loss_curves_w8a8.gp", 1, title, sizeof title);
    cr_expect(strstr(title, "mean over 2 seeds; no CI bands below 3 seeds (median 95% CI: +-") != NULL, "title: %s", title);
    figure_arg(dir, "loss_curves_w8a8.gp", 5, bands, sizeof bands);
    cr_expect_str_eq(bands, "0 0");
    rm_rf_dir(dir);
}

/* The style task's figures show its style score (it has no FID, unlike the domain task); the
 * subject task's do not, though its runs record one. Cells in memory. */
Test(plot, the_style_task_plots_its_style_score) {
    const char *tasks[] = {"style", "subject"};
    for (int t = 0; t < 2; t++) {
        qa_cell cells[2];
        memset(cells, 0, sizeof cells);
        for (int i = 0; i < 2; i++) {
            cells[i].task = tasks[t];
            cells[i].sum[MET_SUBJECT].n = cells[i].sum[MET_PROMPT].n = cells[i].sum[MET_STYLE].n = 3;
            cells[i].sum[MET_LOSS].n = 3;
        }
        int mets[8], n = qa_plot_folder_metrics(cells, 2, mets), has_style = 0;
        for (int k = 0; k < n; k++) has_style |= mets[k] == MET_STYLE;
        cr_expect_eq(has_style, t == 0, "%s task: style score %s", tasks[t], t == 0 ? "shown" : "not shown");
        cr_expect_eq(n, t == 0 ? 4 : 3, "%s task: %d figures' metrics", tasks[t], n);
        cr_expect_eq(mets[0], t == 0 ? MET_STYLE : MET_SUBJECT, "%s task: the first (the Pareto figures') metric", tasks[t]);
    }
}
