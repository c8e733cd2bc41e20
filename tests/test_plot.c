/* Figures: the .dat matrix of an image grid (dimensions, gutters, known pixels at the expected
 * place with the first line the bottom of the picture), the gnuplot script's outputs, the
 * rendered files when gnuplot is installed, and paths gnuplot cannot be given safely. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/plot.h"
#include "harness/runs.h"
#include "fake_runs.h"

TestSuite(plot, .timeout = 60);

static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

static char *slurp(const char *path) {
    char *text;
    size_t len;
    qa_error err;
    cr_assert_eq(qa_read_file(path, &text, &len, &err), 0, "%s", err.msg);
    return text;
}

/* parse the .dat matrix: lines[n_lines][n_vals] */
static int *parse_dat(const char *text, int *n_lines, int *n_vals_first, int *ragged) {
    size_t cap = 1 << 16, n = 0;
    int *v = malloc(sizeof(int) * cap);
    int lines = 0, first = -1, cur = 0;
    *ragged = 0;
    const char *q = text;
    while (*q) {
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
    const char *labels[2] = {"references", "samples"};
    qa_error err = {0, ""};
    int rc = plot_image_grid(base, tiles, rows, cols, labels, "a title", &err);
    int gp_ok = have_gnuplot();
    if (gp_ok) cr_expect_eq(rc, 0, "plot_image_grid: %s", err.msg);
    else cr_expect_eq(rc, QA_ERR_RUN, "without gnuplot: a run error");

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
        /* first line = bottom row of the picture = gutter rows under the last tile row */
        cr_expect_eq(AT(H - 1, 0), 96);
        /* the last tile row's bottom pixel row is data line 2 (after 2 gutter lines) */
        cr_expect_eq(v[(size_t)2 * W + 0], 10 + (rows - 1) * cols, "bottom pixel row of tile (1,0): %d", v[(size_t)2 * W]);
        /* top-left pixel of the picture (last data line) is tile (0,0) */
        cr_expect_eq(v[(size_t)(H - 1) * W + 0], 10, "top-left: %d", v[(size_t)(H - 1) * W]);
        /* every value against the layout */
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
    free(v);
    free(dat);

    /* the script names both outputs, the data file and the labels */
    snprintf(p, sizeof p, "%s.gp", base);
    char *gp = slurp(p);
    char want[700];
    snprintf(want, sizeof want, "set output '%s.png'", base);
    cr_expect(strstr(gp, want) != NULL, "script lacks %s:\n%s", want, gp);
    snprintf(want, sizeof want, "set output '%s.svg'", base);
    cr_expect(strstr(gp, want) != NULL, "script lacks %s:\n%s", want, gp);
    cr_expect(strstr(gp, "set terminal pngcairo") && strstr(gp, "set terminal svg"), "terminals:\n%s", gp);
    snprintf(want, sizeof want, "plot '%s.dat' matrix with image", base);
    cr_expect(strstr(gp, want) != NULL, "script lacks %s:\n%s", want, gp);
    cr_expect(strstr(gp, "\"references\"") && strstr(gp, "\"samples\"") && strstr(gp, "\"a title\""), "labels:\n%s", gp);
    snprintf(want, sizeof want, "set xrange [-0.5:%d.5]", W - 1);
    cr_expect(strstr(gp, want) != NULL, "x range of the whole matrix:\n%s", gp);
    free(gp);
    free(tiles);

    if (!gp_ok) {
        rm_rf_dir(dir);
        cr_skip_test("gnuplot is not installed: PNG/SVG rendering not checked");
    }
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
    int rc = plot_image_grid(base, tile, 1, 1, NULL, NULL, &err);
    if (have_gnuplot()) cr_expect_eq(rc, 0, "%s", err.msg);
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
    free(v);
    free(dat);
    snprintf(p, sizeof p, "%s.gp", base);
    char *gp = slurp(p);
    cr_expect(strstr(gp, "set label") == NULL, "no row labels were given:\n%s", gp);
    free(gp);
    rm_rf_dir(dir);
}

Test(plot, quote_in_script_path_is_rejected) {
    qa_error err = {0, ""};
    cr_expect_eq(plot_run_gnuplot("/tmp/it's.gp", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "quote") != NULL, "message: %s", err.msg);
    /* through plot_image_grid: the script it writes is refused before gnuplot runs */
    char dir[256], base[512];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(base, sizeof base, "%s/o'brien", dir);
    uint8_t tile[784] = {0};
    err.code = 0;
    cr_expect_eq(plot_image_grid(base, tile, 1, 1, NULL, "t", &err), QA_ERR_INPUT, "%s", err.msg);
    char p[600];
    snprintf(p, sizeof p, "%s.png", base);
    cr_expect(access(p, F_OK) != 0, "no PNG may be rendered from a quoted path");
    rm_rf_dir(dir);
}

Test(plot, failing_script_is_reported_with_its_path) {
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    char dir[256], p[512];
    make_tmpdir(dir, sizeof dir, "plot");
    snprintf(p, sizeof p, "%s/bad.gp", dir);
    write_text_file(p, "this is not gnuplot\n");
    qa_error err = {0, ""};
    cr_expect_eq(plot_run_gnuplot(p, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, p) != NULL, "message names the script: %s", err.msg);
    snprintf(p, sizeof p, "%s/good.gp", dir);
    write_text_file(p, "set terminal dumb\nset output '/dev/null'\nplot x\n");
    cr_expect_eq(plot_run_gnuplot(p, &err), 0, "%s", err.msg);
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
    char dir[256], pdir[300];
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
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(runs_load(dir, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 16);
    snprintf(pdir, sizeof pdir, "%s/plots", dir);
    cr_assert_eq(qa_mkdir_p(pdir, &err), 0);
    int rc = plot_statistics(pdir, runs, n, &err);
    if (have_gnuplot()) cr_assert_eq(rc, 0, "%s", err.msg);
    runs_free(runs, n);

    /* bars: groups w8a8 then w4a8; series in first-seen order of the cells (runs sorted by id):
     * intlora-mul r2, intlora-mul r4, lora r2, lora r4 */
    char *t = slurp_rel(dir, "bars_subject_fidelity.dat");
    cr_expect(strstr(t, "\nw8a8 0.613 0.012706205 0.615 0.012706205 0.513 0.012706205 0.515 0.012706205\n") != NULL, "bars:\n%s", t);
    cr_expect(strstr(t, "\nw4a8 0.603 0.012706205 0.605 0.012706205 0.503 0.012706205 0.505 0.012706205\n") != NULL, "bars:\n%s", t);
    free(t);
    /* the bit sweep: intlora-mul r4 at 4 and 8 bits */
    t = slurp_rel(dir, "bits_subject_fidelity.dat");
    cr_expect(strstr(t, "# intlora-mul r4: bits mean ci95 n\n4 0.605 0.012706205 2\n8 0.615 0.012706205 2\n") != NULL, "sweep:\n%s", t);
    free(t);
    /* heatmap of intlora-mul: rank index, bits index (w8a8 first), mean */
    t = slurp_rel(dir, "heatmap_subject_fidelity_intlora-mul.dat");
    cr_expect(strstr(t, "\n1 0 0.615 0.012706205 4 w8a8\n") != NULL, "heatmap:\n%s", t);
    cr_expect(strstr(t, "\n0 1 0.603 0.012706205 2 w4a8\n") != NULL, "heatmap:\n%s", t);
    free(t);
    /* Pareto front by memory: 1.2 .503, 1.25 .513, (1.4 .505 dominated), 1.45 .515, 3.2 .603,
     * 3.25 .613, (3.4 .605 dominated), 3.45 .615 */
    t = slurp_rel(dir, "pareto_training_memory_subject_fidelity.dat");
    const char *front = strstr(t, "# Pareto front");
    cr_assert(front != NULL, "pareto:\n%s", t);
    cr_expect(strstr(front, "\n1.2 0.503\n1.25 0.513\n1.45 0.515\n3.2 0.603\n3.25 0.613\n3.45 0.615\n") != NULL, "front:\n%s", front);
    free(t);
    /* loss bands: every run's loss is 1.0, 0.9, 0.8 -> running means 1, 0.95, 0.9, no spread */
    t = slurp_rel(dir, "loss_curves_w8a8.dat");
    cr_expect(strstr(t, "# lora r2: step mean lo hi (n = 2)\n0 1 1 1\n1 0.95 0.95 0.95\n2 0.9 0.9 0.9\n") != NULL, "loss:\n%s", t);
    free(t);
    if (have_gnuplot()) {
        char p[600];
        snprintf(p, sizeof p, "%s/heatmap_subject_fidelity_intlora-mul.png", pdir);
        cr_expect(access(p, F_OK) == 0, "no %s", p);
        snprintf(p, sizeof p, "%s/pareto_storage_subject_fidelity.svg", pdir);
        cr_expect(access(p, F_OK) == 0, "no %s", p);
    }
    rm_rf_dir(dir);
}
