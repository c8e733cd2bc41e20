/* The report on a results folder built by hand with the HDF5 API in the layout runs.c reads:
 * three cells with known metric values (a full-precision baseline, a quantized method paired by
 * seed, a method on other seeds so the difference is Welch's) and one diverged run. Every number
 * the report prints is recomputed here in double (t quantiles from tables, p closed-form where
 * the df is an integer). */
#include <criterion/criterion.h>
#include <gsl/gsl_cdf.h>
#include <hdf5.h>
#include <sys/stat.h>

#include "common.h"
#include "harness/report.h"
#include "harness/runs.h"
#include "harness/results.h"
#include "fake_runs.h"

TestSuite(report, .timeout = 60);

/* cell A: lora fp (baseline), seeds 0-2; cell B: qalora w4a8 (INT deploy), seeds 0-2, plus a
 * diverged seed 3; cell C: qlora w4a16 (NF4 deploy), seeds 5-6 (no baseline pair -> Welch) */
static const run_def defs[] = {
    {"lora-fp-r2-s0", "lora", "fp", "done", "fp", 0, 0, 2, 0, 0, 0.10, 0.80, 0.60, 32},
    {"lora-fp-r2-s1", "lora", "fp", "done", "fp", 0, 0, 2, 0, 1, 0.12, 0.82, 0.62, 32},
    {"lora-fp-r2-s2", "lora", "fp", "done", "fp", 0, 0, 2, 0, 2, 0.11, 0.78, 0.64, 32},
    {"qalora-w4a8-r2-s0", "qalora", "w4a8", "done", "int", 4, 8, 2, 0, 0, 0.13, 0.85, 0.55, 4.25},
    {"qalora-w4a8-r2-s1", "qalora", "w4a8", "done", "int", 4, 8, 2, 0, 1, 0.16, 0.86, 0.57, 4.25},
    {"qalora-w4a8-r2-s2", "qalora", "w4a8", "done", "int", 4, 8, 2, 0, 2, 0.14, 0.87, 0.53, 4.25},
    {"qalora-w4a8-r2-s3", "qalora", "w4a8", "diverged", NULL, 4, 8, 2, 0, 3, 0, 0, 0, 0},
    {"qlora-w4a16-r2-s5", "qlora", "w4a16", "done", "nf4", 4, 16, 2, 0, 5, 0.20, 0.70, 0.90, 4.5},
    {"qlora-w4a16-r2-s6", "qlora", "w4a16", "done", "nf4", 4, 16, 2, 0, 6, 0.24, 0.72, 0.92, 4.5},
};
#define N_DEFS ((int)(sizeof defs / sizeof defs[0]))

static char dir[256];

static void build_folder(void) {
    make_tmpdir(dir, sizeof dir, "report");
    for (int i = 0; i < N_DEFS; i++) write_run(dir, &defs[i]);
    /* a .partial of an unfinished run is never read */
    char p[512];
    snprintf(p, sizeof p, "%s/lora-fp-r2-s9.h5.partial", dir);
    write_text_file(p, "half a file");
}

static void drop_folder(void) { rm_rf_dir(dir); }

/* ---------- reference numbers ---------- */

typedef struct { int n; double mean, sd, ci; } ref_sum;

static double t975(int df) { /* tables */
    switch (df) {
    case 1: return 12.706204736174707;
    case 2: return 4.302652729749464;
    default: cr_assert_fail("no table value for df %d", df); return 0;
    }
}

static ref_sum ref_summary(const double *x, int n) {
    ref_sum s = {n, 0, 0, 0};
    for (int i = 0; i < n; i++) s.mean += x[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = sqrt(s.sd / (n - 1));
    s.ci = t975(n - 1) * s.sd / sqrt((double)n);
    return s;
}

/* metric m (0 loss, 1 subject, 2 prompt) of the finished runs of a method */
static int metric_of(const char *method, int m, double *out, long *seeds) {
    int k = 0;
    for (int i = 0; i < N_DEFS; i++) {
        if (strcmp(defs[i].method, method) || strcmp(defs[i].status, "done")) continue;
        out[k] = m == 0 ? defs[i].loss : m == 1 ? defs[i].subj : defs[i].prompt;
        if (seeds) seeds[k] = defs[i].seed;
        k++;
    }
    return k;
}

static void cell_text(char *buf, size_t len, const char *method, int m, int bold) {
    double x[8];
    int n = metric_of(method, m, x, NULL);
    ref_sum s = ref_summary(x, n);
    int digits = m == 0 ? 5 : 4;
    char tmp[96];
    /* the metrics' ranges: loss >= 0, subject fidelity (a cosine) in [-1, 1], prompt fidelity (a
     * probability) in [0, 1]; an interval reaching past its range is shown clipped, in brackets */
    const double lo_of[3] = {0, -1, 0}, hi_of[3] = {HUGE_VAL, 1, 1};
    double lo = s.mean - s.ci, hi = s.mean + s.ci;
    if (lo >= lo_of[m] && hi <= hi_of[m]) snprintf(tmp, sizeof tmp, "%.*f ± %.*f", digits, s.mean, digits, s.ci);
    else snprintf(tmp, sizeof tmp, "%.*f [%.*f, %.*f]", digits, s.mean, digits, lo < lo_of[m] ? lo_of[m] : lo, digits,
                  hi > hi_of[m] ? hi_of[m] : hi);
    snprintf(buf, len, bold ? "**%s**" : "%s", tmp);
}

static char *run_report(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    qa_error err = {0, ""};
    int rc = qa_report_write(dir, mem, &err);
    fclose(mem);
    cr_assert_eq(rc, 0, "report_write: %s", err.msg);
    return buf;
}

/* ---------- tests ---------- */

Test(report, cells_show_mean_and_ci, .init = build_folder, .fini = drop_folder) {
    char *md = run_report();
    /* best: loss -> lora (lowest), subject -> qalora (highest), prompt -> qlora (highest) */
    char a0[128], a1[128], a2[128], b0[128], b1[128], b2[128], c0[128], c1[128], c2[128];
    cell_text(a0, sizeof a0, "lora", 0, 1);
    cell_text(a1, sizeof a1, "lora", 1, 0);
    cell_text(a2, sizeof a2, "lora", 2, 0);
    cell_text(b0, sizeof b0, "qalora", 0, 0);
    cell_text(b1, sizeof b1, "qalora", 1, 1);
    cell_text(b2, sizeof b2, "qalora", 2, 0);
    cell_text(c0, sizeof c0, "qlora", 0, 0);
    cell_text(c1, sizeof c1, "qlora", 1, 0);
    cell_text(c2, sizeof c2, "qlora", 2, 1);
    cr_expect(strstr(a0, "0.11000 ± 0.02484") != NULL, "hand check of the reference itself: %s", a0);

    char row[1024];
    snprintf(row, sizeof row, "| lora | FP | fp | 2 | 3 | %s | (baseline) | %s | %s | 32 | 0.0000 ± 0.0000 | - |\n", a0, a1, a2);
    cr_expect(strstr(md, row) != NULL, "baseline row\n  want: %s\nreport:\n%s", row, md);

    /* B: paired by seed with the baseline */
    double la[8], lb[8], d[8];
    long sa[8], sb[8];
    int na = metric_of("lora", 0, la, sa), nb = metric_of("qalora", 0, lb, sb);
    cr_assert_eq(na, 3);
    cr_assert_eq(nb, 3);
    for (int i = 0; i < 3; i++) { cr_assert_eq(sa[i], sb[i]); d[i] = lb[i] - la[i]; }
    ref_sum ds = ref_summary(d, 3);
    double t = ds.mean / (ds.sd / sqrt(3.0));
    double p = 1.0 - fabs(t) / sqrt(2.0 + t * t); /* Student t, 2 df, two-sided, closed form */
    char delta[160];
    snprintf(delta, sizeof delta, "%+.5f ± %.5f (p=%.3g)", ds.mean, ds.ci, p);
    cr_expect(strstr(delta, "+0.03333 ± ") != NULL, "hand check: mean difference 0.1/3: %s", delta);
    snprintf(row, sizeof row, "| qalora | INT | w4a8 | 2 | 3 (+1 diverged) | %s | %s | %s | %s | 4.25 | 0.0000 ± 0.0000 | - |\n", b0, delta, b1, b2);
    cr_expect(strstr(md, row) != NULL, "paired row\n  want: %s\nreport:\n%s", row, md);

    /* C: seeds 5, 6 have no baseline pair -> Welch on the cell values */
    double lc[8];
    int nc = metric_of("qlora", 0, lc, NULL);
    cr_assert_eq(nc, 2);
    ref_sum sa_ = ref_summary(la, 3), sc_ = ref_summary(lc, 2);
    double va = sa_.sd * sa_.sd / 3, vc = sc_.sd * sc_.sd / 2;
    double tw = (sc_.mean - sa_.mean) / sqrt(va + vc);
    double dfw = (va + vc) * (va + vc) / (va * va / 2 + vc * vc / 1);
    double pw = 2 * gsl_cdf_tdist_Q(fabs(tw), dfw);
    snprintf(delta, sizeof delta, "%+.5f (p=%.3g)", sc_.mean - sa_.mean, pw);
    snprintf(row, sizeof row, "| qlora | NF4 (merged, re-quantized) | w4a16 | 2 | 2 | %s | %s | %s | %s | 4.5 | 0.0000 ± 0.0000 | - |\n", c0, delta, c1, c2);
    cr_expect(strstr(md, row) != NULL, "Welch row\n  want: %s\nreport:\n%s", row, md);

    cr_expect(strstr(md, "Δ loss vs lora fp (p)") != NULL, "header names the baseline:\n%s", md);
    /* exactly three bold cells, one per metric column */
    int bolds = 0;
    for (const char *q = md; (q = strstr(q, "**")) != NULL; q += 2) bolds++;
    cr_expect_eq(bolds, 6, "three bold cells (6 markers), got %d markers:\n%s", bolds, md);
    free(md);
}

Test(report, diverged_run_is_listed, .init = build_folder, .fini = drop_folder) {
    char *md = run_report();
    const char *ne = strstr(md, "\nNot evaluated:\n");
    cr_assert(ne != NULL, "no 'Not evaluated' section:\n%s", md);
    cr_expect(strstr(ne, "- run qalora-w4a8-r2-s3: diverged loss is NaN at step 3\n") != NULL, "diverged run line:\n%s", md);
    /* only that one run */
    int runs = 0;
    for (const char *q = ne; (q = strstr(q, "- run ")) != NULL; q += 6) runs++;
    cr_expect_eq(runs, 1);
    free(md);
}

Test(report, files_written_and_markdown_equals_stream, .init = build_folder, .fini = drop_folder) {
    char *md = run_report();
    char p[512];
    const char *files[] = {"report.md", "report.tex", "report.csv", "summary.h5"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_expect(access(p, F_OK) == 0, "missing %s", p);
    }
    char *text;
    size_t len;
    qa_error err;
    snprintf(p, sizeof p, "%s/report.md", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    cr_expect_str_eq(text, md, "report.md differs from the stream");
    free(text);

    /* tex: the cells with $\pm$, best in \textbf */
    snprintf(p, sizeof p, "%s/report.tex", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    double la[8];
    metric_of("lora", 0, la, NULL);
    ref_sum s = ref_summary(la, 3);
    char want[256];
    snprintf(want, sizeof want, "\\textbf{%.5f $\\pm$ %.5f}", s.mean, s.ci);
    cr_expect(strstr(text, want) != NULL, "tex lacks %s:\n%s", want, text);
    cr_expect(strstr(text, "\\begin{tabular}") && strstr(text, "\\end{tabular}"), "tex:\n%s", text);
    free(text);

    /* diversity (0 in every run written here: a tie) and prior preservation (not measured) are
     * columns too, unmarked: a tie has no best, a missing metric shows '-' */
    /* csv: one header + three cells; check the baseline's numbers by parsing */
    snprintf(p, sizeof p, "%s/report.csv", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    int lines = 0;
    for (const char *q = text; *q; q++) lines += *q == '\n';
    cr_expect_eq(lines, 4, "csv lines:\n%s", text);
    const char *row = strstr(text, "\nlora,FP,fp,2,3,0,");
    cr_assert(row != NULL, "csv:\n%s", text);
    double mean, ci;
    cr_assert_eq(sscanf(row + strlen("\nlora,FP,fp,2,3,0,"), "%lf,%lf", &mean, &ci), 2);
    cr_expect(fabs(mean - s.mean) < 1e-7 && fabs(ci - s.ci) < 1e-7, "csv loss %g ± %g, want %g ± %g", mean, ci, s.mean, s.ci);
    cr_expect(strstr(text, "\nqalora,INT,w4a8,2,3,1,") != NULL, "the diverged seed is counted in n_diverged:\n%s", text);
    cr_expect(strstr(text, "\nqlora,\"NF4 (merged, re-quantized)\",w4a16,2,") != NULL, "a field with a comma is quoted:\n%s", text);
    free(text);
    snprintf(p, sizeof p, "%s/efficiency.csv", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    cr_expect(strstr(text, "\nqlora,w4a16,2,,\"NF4 (merged, re-quantized)\",") != NULL, "efficiency.csv quotes it too:\n%s", text);
    free(text);

    /* summary.h5 */
    snprintf(p, sizeof p, "%s/summary.h5", dir);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(p, 0, &f, &err), 0, "%s", err.msg);
    const char *methods[3] = {"lora", "qalora", "qlora"};
    const char *groups[3] = {"/summary/lora-fp-fp-r2", "/summary/qalora-int-w4a8-r2", "/summary/qlora-nf4-w4a16-r2"};
    const char *names[3] = {"heldout_loss", "subject_fidelity", "prompt_fidelity"};
    for (int c = 0; c < 3; c++) {
        double v;
        cr_assert_eq(qa_h5_attr_get_f64(f, groups[c], "n", &v, &err), 0, "%s: %s", groups[c], err.msg);
        double x[8];
        int n = metric_of(methods[c], 0, x, NULL);
        cr_expect_eq((int)v, n, "%s n = %g", groups[c], v);
        cr_assert_eq(qa_h5_attr_get_f64(f, groups[c], "n_diverged", &v, &err), 0, "%s", err.msg);
        cr_expect_eq((int)v, c == 1 ? 1 : 0, "%s n_diverged = %g", groups[c], v);
        for (int m = 0; m < 3; m++) {
            n = metric_of(methods[c], m, x, NULL);
            ref_sum rs = ref_summary(x, n);
            char nm[64];
            snprintf(nm, sizeof nm, "%s_mean", names[m]);
            cr_assert_eq(qa_h5_attr_get_f64(f, groups[c], nm, &v, &err), 0, "%s", err.msg);
            cr_expect(fabs(v - rs.mean) < 1e-12, "%s %s = %.12g, want %.12g", groups[c], nm, v, rs.mean);
            snprintf(nm, sizeof nm, "%s_ci95", names[m]);
            cr_assert_eq(qa_h5_attr_get_f64(f, groups[c], nm, &v, &err), 0, "%s", err.msg);
            cr_expect(fabs(v - rs.ci) < 1e-9, "%s %s = %.12g, want %.12g", groups[c], nm, v, rs.ci);
        }
    }
    qa_h5_close(f, &err);
    free(md);
}

Test(report, null_stream_and_report_twice, .init = build_folder, .fini = drop_folder) {
    qa_error err = {0, ""};
    cr_expect_eq(qa_report_write(dir, NULL, &err), 0, "out may be NULL: %s", err.msg);
    /* summary.h5 in the folder is not taken for a run on the second pass */
    char *md = run_report();
    cr_expect(strstr(md, "| lora | FP | fp | 2 | 3 |") != NULL, "%s", md);
    free(md);
}

Test(report, empty_or_missing_folder_is_bad_input) {
    char d[256];
    make_tmpdir(d, sizeof d, "report-empty");
    qa_error err = {0, ""};
    cr_expect_eq(qa_report_write(d, NULL, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, d) != NULL, "message names the folder: %s", err.msg);
    rm_rf_dir(d);
    cr_expect_eq(qa_report_write("/nonexistent/qa-results", NULL, &err), QA_ERR_INPUT);
}

/* An ablation folder: the extra grid axis in the run names (a1.5 / a2) keeps cells apart, the
 * method's own measurements are summarized per cell, and the efficiency table adds up the
 * memory categories. */
Test(report, ablation_axes_method_stats_and_efficiency) {
    make_tmpdir(dir, sizeof dir, "report-ablate");
    const double share[2][2] = {{0.10, 0.12}, {0.20, 0.26}};
    for (int a = 0; a < 2; a++)
        for (int s = 0; s < 2; s++) {
            char id[64];
            snprintf(id, sizeof id, "intlora-mul-w4a8-r4-%s-s%d", a ? "a2" : "a1.5", s);
            run_def d = {id, "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, s, 0.1 + 0.01 * a, 0.5 + 0.1 * a, 0.6, 8.75};
            write_run(dir, &d);
            set_run_f64(dir, id, "method_stats", "w_int_zero_share", share[a][s]);
            const char *cat[4] = {"frozen_bytes", "trainable_bytes", "gradient_bytes", "optimizer_bytes"};
            for (int k = 0; k < 4; k++) set_run_f64(dir, id, "memory", cat[k], (k + 1) * 1048576.0);
            set_run_f64(dir, id, "memory", "activation_bytes", 5 * 1048576.0);
            set_run_f64(dir, id, "memory", "artifact_file_bytes", 2048);
            set_run_f64(dir, id, "memory", "artifact_payload_bytes", 1000);
            set_run_f64(dir, id, "memory", "artifact_weights", 1000);
            set_run_f64(dir, id, "timing", "train_step_median_ms", 10 + 20 * s + 5 * a); /* repeats 10, 30 (a1.5) */
        }
    char *md = run_report();
    cr_expect(strstr(md, "| rank | setting | n |") != NULL, "a setting column:\n%s", md);
    /* the separator row has as many columns as the header */
    const char *nl = strchr(md, '\n');
    int bars_h = 0, bars_s = 0;
    for (const char *q = md; q < nl; q++) bars_h += *q == '|';
    for (const char *q = nl + 1; *q && *q != '\n'; q++) bars_s += *q == '|';
    cr_expect_eq(bars_h, bars_s, "header %d bars, separator %d:\n%s", bars_h, bars_s, md);
    cr_expect(strstr(md, "| intlora-mul | INT | w4a8 | 4 | a1.5 | 2 |") != NULL, "a1.5 row:\n%s", md);
    cr_expect(strstr(md, "| intlora-mul | INT | w4a8 | 4 | a2 | 2 |") != NULL, "a2 row:\n%s", md);
    /* a2: shares 0.20, 0.26 -> mean 0.23, sd 0.0424264, CI = 12.706205 * 0.0424264 / sqrt(2) = 0.38119 */
    cr_expect(strstr(md, "| intlora-mul | w4a8 | 4 | a2 | 2 | w_int_zero_share | 0.2300 ± 0.3812 |") != NULL,
              "method measurement row:\n%s", md);
    free(md);
    char p[512], *text;
    size_t len;
    qa_error err = {0, ""};
    snprintf(p, sizeof p, "%s/efficiency.csv", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    /* 1 + 2 + 3 + 4 MiB, the activations, the training step's median of 15 and 35 ms with its
     * interval (the range at 2 repeats), no other timings, 8.75 bits/weight, a 2 KiB artifact of 8
     * bits/weight; no kernel recorded in these files ("-") */
    cr_expect(strstr(text, "\nintlora-mul,w4a8,4,a2,INT,-,2,1,2,3,4,10,5,0,25,15,35,0,0,0,0,0,0,0,8.75,2,8,0\n") != NULL,
              "efficiency.csv:\n%s", text);
    free(text);
    snprintf(p, sizeof p, "%s/efficiency.md", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    cr_expect(strstr(text, "| intlora-mul (a1.5) | w4a8 | 4 | INT | - |") != NULL, "kernel column:\n%s", text);
    cr_expect(strstr(text, "| 20.0 [10.0, 30.0] |") != NULL, "median [interval] of the step:\n%s", text);
    free(text);
    rm_rf_dir(dir);
}

/* compare: qalora w4a8 (INT) against lora fp, paired by seeds 0-2: the loss differences are
 * 0.03, 0.04, 0.03 (mean 0.03333, as the report's Δ); qlora (seeds 5, 6) against lora is Welch;
 * a cell that is not there is bad input naming it. */
Test(report, compare_pairs_by_seed_or_falls_back_to_welch, .init = build_folder, .fini = drop_folder) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    qa_error err = {0, ""};
    cr_assert_eq(qa_report_compare(dir, "qalora:w4a8", "lora:fp", mem, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_report_compare(dir, "qlora:w4a16:nf4", "lora:fp:fp", mem, &err), 0, "%s", err.msg);
    fclose(mem);
    double d[3] = {0.03, 0.04, 0.03};
    ref_sum s = ref_summary(d, 3);
    char want[160];
    snprintf(want, sizeof want, "| held-out loss ↓ | 0.14333 ± %.5f | 0.11000 ± 0.02484 | %+.5f ± %.5f | paired t |", ref_summary((double[]){0.13, 0.16, 0.14}, 3).ci,
             s.mean, s.ci);
    cr_expect(strstr(buf, want) != NULL, "want %s in:\n%s", want, buf);
    cr_expect(strstr(buf, "| Welch t |") != NULL, "qlora (other seeds) is compared by Welch:\n%s", buf);
    free(buf);
    mem = open_memstream(&buf, &len);
    cr_expect_eq(qa_report_compare(dir, "intlora-mul:w4a8", "lora:fp", mem, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "intlora-mul:w4a8") != NULL, "%s", err.msg);
    cr_expect_eq(qa_report_compare(dir, "lora", "lora:fp", mem, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "method:bits") != NULL, "%s", err.msg);
    fclose(mem);
    free(buf);
}

/* A named baseline: the Δ column is against it (lora fp vs qalora w4a8: -0.03333, paired), the
 * header names it, and an unknown cell is bad input. */
Test(report, named_baseline, .init = build_folder, .fini = drop_folder) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    qa_error err = {0, ""};
    cr_assert_eq(qa_report_write_baseline(dir, "qalora:w4a8", mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "Δ loss vs qalora w4a8 INT (p)") != NULL, "%s", buf);
    cr_expect(strstr(buf, "| (baseline) |") != NULL && strstr(buf, "| -0.03333 ± ") != NULL, "%s", buf);
    free(buf);
    cr_expect_eq(qa_report_write_baseline(dir, "qalora:w2a8", NULL, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "qalora:w2a8") != NULL, "%s", err.msg);
}

/* Rows follow the run names in natural order: rank 2 before rank 16, seed 9 before seed 10. */
Test(report, rows_in_natural_order) {
    make_tmpdir(dir, sizeof dir, "report-natural");
    run_def d16 = {"lora-fp-r16-s0", "lora", "fp", "done", "fp", 0, 0, 16, 0, 0, 0.1, 0.5, 0.5, 32};
    run_def d2 = {"lora-fp-r2-s10", "lora", "fp", "done", "fp", 0, 0, 2, 0, 10, 0.1, 0.5, 0.5, 32};
    run_def d2b = {"lora-fp-r2-s9", "lora", "fp", "done", "fp", 0, 0, 2, 0, 9, 0.1, 0.5, 0.5, 32};
    write_run(dir, &d16);
    write_run(dir, &d2);
    write_run(dir, &d2b);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(dir, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(runs[0].id, "lora-fp-r2-s9");
    cr_expect_str_eq(runs[1].id, "lora-fp-r2-s10");
    cr_expect_str_eq(runs[2].id, "lora-fp-r16-s0");
    qa_runs_free(runs, n);
    char *md = run_report();
    const char *r2 = strstr(md, "| lora | FP | fp | 2 |"), *r16 = strstr(md, "| lora | FP | fp | 16 |");
    cr_expect(r2 && r16 && r2 < r16, "rank 2 before rank 16:\n%s", md);
    free(md);
    rm_rf_dir(dir);
}

/* ---------- foreign and damaged files in a results folder ---------- */

/* An HDF5 file that is not a run file: groups named in `groups` (under /runs when runs_group),
 * and when array_attr, each run group's "method" is an array of 1000 strings. */
static void write_foreign_h5(const char *name, const char *const *groups, int n_groups, int array_attr) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(file, 0);
    for (int g = 0; g < n_groups; g++) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t grp = H5Gcreate2(file, groups[g], lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        cr_assert_geq(grp, 0, "%s", groups[g]);
        if (array_attr) {
            hsize_t n = 1000;
            static char texts[1000][16];
            hid_t space = H5Screate_simple(1, &n, NULL), text = H5Tcopy(H5T_C_S1);
            H5Tset_size(text, 16);
            hid_t a = H5Acreate2(grp, "method", text, space, H5P_DEFAULT, H5P_DEFAULT);
            cr_assert_geq(H5Awrite(a, text, texts), 0);
            H5Aclose(a);
            H5Tclose(text);
            H5Sclose(space);
        }
        H5Gclose(grp);
    }
    H5Fclose(file);
}

/* The first half of a real run file's bytes, as a crash or a full disk may leave it. */
static void write_truncated_copy(const char *from_id, const char *name) {
    char from[512], to[512], *bytes;
    size_t len;
    qa_error err = {0, ""};
    snprintf(from, sizeof from, "%s/%s.h5", dir, from_id);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    cr_assert_eq(qa_read_file(from, &bytes, &len, &err), 0, "%s", err.msg);
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, len / 2, f), len / 2);
    fclose(f);
    free(bytes);
}

static const char *const foreign_files[] = {"not-hdf5.h5", "no-runs.h5", "two-runs.h5", "array-attrs.h5", "truncated.h5"};

static void add_foreign_files(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, foreign_files[0]);
    write_text_file(p, "a text file with an .h5 name\n");
    const char *other[] = {"/images/train"}, *two[] = {"/runs/a", "/runs/b"}, *one[] = {"/runs/lora-fp-r2-s7"};
    write_foreign_h5(foreign_files[1], other, 1, 0);
    write_foreign_h5(foreign_files[2], two, 2, 0);
    write_foreign_h5(foreign_files[3], one, 1, 1);
    write_truncated_copy(defs[0].id, foreign_files[4]);
}

/* Issue: one foreign or damaged .h5 refused the whole folder (or, with array-valued attributes,
 * overran a buffer). The report leaves each out with its reason and lists it; the table is the
 * one of the folder without them. */
Test(report, foreign_and_damaged_files_are_left_out_and_listed, .init = build_folder, .fini = drop_folder) {
    char *clean = run_report();
    add_foreign_files();
    char *md = run_report();
    for (size_t k = 0; k < sizeof foreign_files / sizeof foreign_files[0]; k++)
        cr_expect(strstr(md, foreign_files[k]) != NULL, "%s is listed:\n%s", foreign_files[k], md);
    cr_expect(strstr(md, "Files left out") && strstr(md, "no /runs group") && strstr(md, "found 2") &&
              strstr(md, "1000 values") && strstr(md, "not an HDF5 file"), "with their reasons:\n%s", md);
    size_t table = strstr(clean, "\nNot evaluated") - clean;
    cr_expect_eq(strncmp(clean, md, table), 0, "the same table:\n%s\n---\n%s", clean, md);
    free(clean);
    free(md);
    /* compare reads the folder the same way */
    char *cmp = NULL;
    size_t cmp_len = 0;
    FILE *mem = open_memstream(&cmp, &cmp_len);
    qa_error cerr = {0, ""};
    cr_expect_eq(qa_report_compare(dir, "qalora:w4a8", "lora:fp", mem, &cerr), 0, "%s", cerr.msg);
    fclose(mem);
    cr_expect(strstr(cmp, "held-out loss") != NULL, "%s", cmp);
    free(cmp);
    /* the strict reader used by verify still refuses the folder, naming a file */
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_expect_neq(qa_runs_load(dir, &runs, &n, &err), 0);
    int named = 0;
    for (size_t k = 0; k < sizeof foreign_files / sizeof foreign_files[0]; k++) named |= strstr(err.msg, foreign_files[k]) != NULL;
    cr_expect(named, "%s", err.msg);
}

/* Issue: report read ids into 96-byte fields (and axes into 48), so a valid recipe's long run
 * names were cut, and two settings sharing a long prefix fell into one cell. */
Test(report, long_run_ids_keep_their_whole_setting) {
    make_tmpdir(dir, sizeof dir, "report-long");
    char axes[2][160], id[400], zeros[121];
    memset(zeros, '0', 120);
    zeros[120] = 0;
    for (int a = 0; a < 2; a++) {
        snprintf(axes[a], sizeof axes[a], "a1.%s%d", zeros, a + 1);
        for (int s = 0; s < 2; s++) {
            snprintf(id, sizeof id, "intlora-mul-w4a8-r4-%s-s%d", axes[a], s);
            run_def d = {id, "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, s, 0.1 + 0.01 * a, 0.5, 0.6, 8.75};
            write_run(dir, &d);
        }
    }
    char *md = run_report();
    for (int a = 0; a < 2; a++) {
        char row[256];
        snprintf(row, sizeof row, "| intlora-mul | INT | w4a8 | 4 | %s | 2 |", axes[a]);
        cr_expect(strstr(md, row) != NULL, "setting %d whole, in its own cell:\n%s", a, md);
    }
    free(md);
    rm_rf_dir(dir);
}

/* Tables and summary are written to temporary names and renamed only when all are complete: a
 * failure leaves the previous report as it was and no temporary file. */
Test(report, a_failed_write_leaves_the_previous_report, .init = build_folder, .fini = drop_folder) {
    char *before = run_report();
    char p[512], *text;
    size_t len;
    qa_error err = {0, ""};
    snprintf(p, sizeof p, "%s/report.md", dir);
    cr_assert_eq(qa_read_file(p, &text, &len, &err), 0, "%s", err.msg);
    run_def extra = {"lora-fp-r8-s0", "lora", "fp", "done", "fp", 0, 0, 8, 0, 0, 0.3, 0.3, 0.3, 32};
    write_run(dir, &extra);
    snprintf(p, sizeof p, "%s/report.tex.tmp", dir);
    cr_assert_eq(mkdir(p, 0700), 0, "a directory where the LaTeX table's temporary file goes");
    cr_expect_eq(qa_report_write(dir, NULL, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "report.tex.tmp") != NULL, "%s", err.msg);
    char *after;
    snprintf(p, sizeof p, "%s/report.md", dir);
    cr_assert_eq(qa_read_file(p, &after, &len, &err), 0, "%s", err.msg);
    cr_expect_str_eq(after, text, "report.md unchanged");
    const char *names[] = {"report.md.tmp", "report.csv.tmp", "summary.h5.tmp", "efficiency.md.tmp"};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        cr_expect(!qa_file_exists(p), "%s left behind", names[k]);
    }
    free(before);
    free(text);
    free(after);
}

/* ---------- the protocol's views: storage-matched groups, new metrics, rates, tuning ---------- */

/* IntLoRA-MUL at W4 stores 8.75 b/w, LoRA + PTQ at W8 8.5: one storage group (within 1 b/w of
 * its smallest), paired by seed; LoRA at W4 (4.5) and EfficientDM at W8 (9.6) have no partner. */
static const run_def storage_defs[] = {
    {"intlora-mul-w4a8-r4-s0", "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, 0, 0.10, 0.80, 0.6, 8.75},
    {"intlora-mul-w4a8-r4-s1", "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, 1, 0.11, 0.82, 0.6, 8.75},
    {"intlora-mul-w4a8-r4-s2", "intlora-mul", "w4a8", "done", "int", 4, 8, 4, 0, 2, 0.12, 0.84, 0.6, 8.75},
    {"lora-w8a8-r4-s0", "lora", "w8a8", "done", "int", 8, 8, 4, 1, 0, 0.09, 0.90, 0.7, 8.5},
    {"lora-w8a8-r4-s1", "lora", "w8a8", "done", "int", 8, 8, 4, 1, 1, 0.10, 0.91, 0.7, 8.5},
    {"lora-w8a8-r4-s2", "lora", "w8a8", "done", "int", 8, 8, 4, 1, 2, 0.10, 0.95, 0.7, 8.5},
    {"lora-w4a8-r4-s0", "lora", "w4a8", "done", "int", 4, 8, 4, 1, 0, 0.12, 0.85, 0.7, 4.5},
    {"efficientdm-w8a8-r4-s0", "efficientdm", "w8a8", "done", "int", 8, 8, 4, 0, 0, 0.09, 0.50, 0.7, 9.6},
};
#define N_STORAGE_DEFS ((int)(sizeof storage_defs / sizeof storage_defs[0]))

static void set_run_attr(const char *folder, const char *id, const char *name, double value) {
    char path[512], grp[200];
    snprintf(path, sizeof path, "%s/%s.h5", folder, id);
    snprintf(grp, sizeof grp, "/runs/%s", id);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, name, value, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), 0, "%s", err.msg);
}

static char *report_of(const char *folder) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    qa_error err = {0, ""};
    cr_assert_eq(qa_report_write(folder, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    return buf;
}

Test(report, storage_matched_groups_pair_methods_at_the_same_stored_bits) {
    char folder[256];
    make_tmpdir(folder, sizeof folder, "report-storage");
    for (int i = 0; i < N_STORAGE_DEFS; i++) write_run(folder, &storage_defs[i]);
    char *md = report_of(folder);
    cr_expect(strstr(md, "Storage-matched comparison") != NULL, "%s", md);
    cr_expect(strstr(md, "\n8.5 to 8.75 b/w:\n") != NULL, "one group at 8.5-8.75 b/w:\n%s", md);
    cr_expect(strstr(md, "4.5 to") == NULL && strstr(md, "9.6 to") == NULL, "no group of one:\n%s", md);
    /* intlora-mul - lora w8a8 per seed: -0.10, -0.09, -0.11 (subject); +0.01, +0.01, +0.02 (loss) */
    double ds[3] = {-0.10, -0.09, -0.11}, dl[3] = {0.01, 0.01, 0.02}, xs[3] = {0.80, 0.82, 0.84}, ys[3] = {0.90, 0.91, 0.95};
    double xl[3] = {0.10, 0.11, 0.12}, yl[3] = {0.09, 0.10, 0.10};
    ref_sum ss = ref_summary(ds, 3), sl = ref_summary(dl, 3), sx = ref_summary(xs, 3), sy = ref_summary(ys, 3);
    ref_sum sxl = ref_summary(xl, 3), syl = ref_summary(yl, 3);
    double ps = 2 * gsl_cdf_tdist_Q(fabs(ss.mean / (ss.sd / sqrt(3.0))), 2), pl = 2 * gsl_cdf_tdist_Q(fabs(sl.mean / (sl.sd / sqrt(3.0))), 2);
    char ref_row[512], row[512], ysub[64], xsub[64];
    cr_assert(sy.mean + sy.ci < 1 && sx.mean + sx.ci < 1, "intervals within the range here");
    snprintf(ysub, sizeof ysub, "%.4f ± %.4f", sy.mean, sy.ci);
    snprintf(xsub, sizeof xsub, "%.4f ± %.4f", sx.mean, sx.ci);
    snprintf(ref_row, sizeof ref_row, "| lora | w8a8 | INT (+PTQ) | 4 | 8.5 | 3 | %s | (reference) | %.5f ± %.5f | (reference) |\n", ysub,
             syl.mean, syl.ci);
    snprintf(row, sizeof row, "| intlora-mul | w4a8 | INT | 4 | 8.75 | 3 | %s | %+.4f ± %.4f (paired, p=%.3g) | %.5f ± %.5f | %+.5f ± %.5f (paired, p=%.3g) |\n",
             xsub, ss.mean, ss.ci, ps, sxl.mean, sxl.ci, sl.mean, sl.ci, pl);
    const char *at_ref = strstr(md, ref_row), *at_row = strstr(md, row);
    cr_expect(at_ref != NULL, "reference row\n  want: %s\nreport:\n%s", ref_row, md);
    cr_expect(at_row != NULL && at_row > at_ref, "paired row after it\n  want: %s\nreport:\n%s", row, md);
    cr_expect(strstr(md, "Δ subject fidelity vs lora w8a8") != NULL);
    /* no run records the protocol's metrics or a rate: no column for them, no tuning table */
    cr_expect(strstr(md, "subject floor") == NULL && strstr(md, "identification") == NULL && strstr(md, "learning rate") == NULL, "%s", md);
    cr_expect(strstr(md, "Learning-rate tuning") == NULL);
    free(md);
    rm_rf_dir(folder);
}

/* Several cells store the group's least bits: the named baseline cell is the reference, even
 * beside another cell of its method that the report lists first (qalora g8 before g32), and the
 * header names it as the rows do, setting included. */
Test(report, a_storage_group_takes_the_baseline_cell_as_reference_among_equals) {
    char folder[256];
    make_tmpdir(folder, sizeof folder, "report-storage-ties");
    const char *cells[5][2] = {{"qlora", ""}, {"lora", ""}, {"efficientdm", ""}, {"qalora", "-g32"}, {"qalora", "-g8"}};
    for (int c = 0; c < 5; c++)
        for (int seed = 0; seed < 2; seed++) {
            char id[64];
            snprintf(id, sizeof id, "%s-w8a8-r4%s-s%d", cells[c][0], cells[c][1], seed);
            run_def d = {id, cells[c][0], "w8a8", "done", "int", 8, 8, 4, 1, seed, 0.1, 0.5 + 0.1 * c + 0.01 * seed, 0.6, 8.5};
            write_run(folder, &d);
        }
    const char *named[] = {"qlora:w8a8:int", "qalora:w8a8:int:g32", "lora:w8a8:int"};
    const char *ref[] = {"qlora w8a8", "qalora (g32) w8a8", "lora w8a8"};
    for (int k = 0; k < 3; k++) {
        char *buf = NULL, want[64];
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        qa_error err = {0, ""};
        cr_assert_eq(qa_report_write_baseline(folder, named[k], mem, &err), 0, "%s", err.msg);
        fclose(mem);
        snprintf(want, sizeof want, "Δ subject fidelity vs %s |", ref[k]);
        cr_expect(strstr(buf, want) != NULL, "baseline %s: want \"%s\" in\n%s", named[k], want, buf);
        free(buf);
    }
    rm_rf_dir(folder);
}

/* A CSV text field is written as is, or quoted with its quotes doubled when it holds a comma, a
 * quote or a line break (RFC 4180). */
Test(report, csv_fields_are_quoted_only_when_they_must_be) {
    const char *in[] = {"INT (+PTQ)", "NF4 (merged, re-quantized)", "a \"b\"", "two\nlines", ""};
    const char *out[] = {"INT (+PTQ)", "\"NF4 (merged, re-quantized)\"", "\"a \"\"b\"\"\"", "\"two\nlines\"", ""};
    for (int k = 0; k < 5; k++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        qa_csv_field(mem, in[k]);
        fclose(mem);
        cr_expect_str_eq(buf, out[k], "field %d", k);
        free(buf);
    }
}

Test(report, new_metrics_rates_and_tuning_show_when_recorded) {
    char folder[256], p[512];
    make_tmpdir(folder, sizeof folder, "report-protocol");
    for (int i = 0; i < N_STORAGE_DEFS; i++) write_run(folder, &storage_defs[i]);
    const double ident[3] = {0.9, 1.0, 1.0}, lr[3] = {1e-3, 2e-3, 1e-3};
    for (int s = 0; s < 3; s++) {
        char id[64];
        snprintf(id, sizeof id, "intlora-mul-w4a8-r4-s%d", s);
        set_run_f64(folder, id, "eval/int", "subject_floor", 0.5);
        set_run_f64(folder, id, "eval/int", "subject_gain", storage_defs[s].subj - 0.5);
        set_run_f64(folder, id, "eval/int", "identification", ident[s]);
        set_run_attr(folder, id, "learning_rate", 3e-3);
        snprintf(id, sizeof id, "lora-w8a8-r4-s%d", s);
        set_run_attr(folder, id, "learning_rate", lr[s]);
    }
    snprintf(p, sizeof p, "%s/tune", folder);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/tune/rates.csv", folder);
    write_text_file(p, "cell,metric,lr_multiplier,learning_rate,seeds,mean_score,chosen\n"
                       "lora-w8a8-r4,subject_fidelity,0.1,0.0001,2,0.5,0\n"
                       "lora-w8a8-r4,subject_fidelity,1,0.001,2,0.9,1\n"
                       "lora-w8a8-r4,subject_fidelity,10,0.01,2,nan,0\n"
                       "intlora-mul-w4a8-r4,subject_fidelity,1,0.003,2,0.8,0\n"
                       "intlora-mul-w4a8-r4,subject_fidelity,0.1,0.0003,2,0.85,1\n");
    char *md = report_of(folder);
    cr_expect(strstr(md, " subject floor | gain over floor ↑ | identification ↑ |") != NULL, "%s", md);
    cr_expect(strstr(md, "prior distance") == NULL, "no run has it: no column\n%s", md);
    /* identification 0.9, 1, 1: its interval is clipped at 1 (not bold: one cell has it) */
    ref_sum si = ref_summary(ident, 3);
    char want[160];
    snprintf(want, sizeof want, "| 0.5000 ± 0.0000 | %.4f ± %.4f | %.3f [%.3f, 1.000] | 0.6000 ± 0.0000 | 8.75 | 0.003 |", 0.82 - 0.5, ref_summary((double[]){0.3, 0.32, 0.34}, 3).ci,
             si.mean, si.mean - si.ci);
    cr_expect(strstr(md, want) != NULL, "intlora-mul's floor, gain, identification, rate\n  want: %s\nreport:\n%s", want, md);
    cr_expect(strstr(md, "| 8.5 | 0.001–0.002 |") != NULL, "rates that differ by seed show their range\n%s", md);
    cr_expect(strstr(md, "| 4.5 | - |") != NULL, "no rate recorded: -\n%s", md);
    cr_expect(strstr(md, "| cell | metric | seeds | ×0.1 | ×1 | ×10 | chosen lr |") != NULL, "%s", md);
    cr_expect(strstr(md, "| lora-w8a8-r4 | subject_fidelity | 2 | 0.5 | **0.9** | nan | 0.001 |") != NULL, "%s", md);
    cr_expect(strstr(md, "| intlora-mul-w4a8-r4 | subject_fidelity | 2 | **0.85** | 0.8 | - | 0.0003 |") != NULL, "%s", md);
    free(md);
    rm_rf_dir(folder);
}

/* A byte copy of file `from` at `to` (a run copied as `qadapt run --reuse` copies it). */
static void copy_bytes(const char *from, const char *to) {
    char *bytes = NULL;
    size_t len = 0;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(from, &bytes, &len, &err), 0, "%s", err.msg);
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(bytes);
}

/* The run time line: every run file's training, merge and evaluation seconds, the tuning runs'
 * (tune/) included, summed here from what the test wrote. Then the commits the files record:
 * files 0-1 (and their tuning copies) "aaa", file 2 "bbb-dirty", the rest none. */
Test(report, run_time_sums_every_run_file_tuning_included, .init = build_folder, .fini = drop_folder) {
    double want = 0, want_tuning = 0;
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.h5", dir, defs[i].id);
        qa_h5 *h;
        qa_error err = {0, ""};
        cr_assert_eq(qa_h5_open(path, 1, &h, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_str(h, "/", "git_commit", i < 2 ? "aaa" : "bbb-dirty", &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_close(h, &err), 0, "%s", err.msg);
    }
    for (int i = 0; i < N_DEFS; i++) {
        double train = 10.0 + i, merge = 0.5 * i;
        set_run_f64(dir, defs[i].id, "timing", "train_seconds", train);
        set_run_f64(dir, defs[i].id, "timing", "merge_seconds", merge);
        want += train + merge;
        if (defs[i].variant) {
            char sub[64];
            snprintf(sub, sizeof sub, "eval/%s", defs[i].variant);
            set_run_f64(dir, defs[i].id, sub, "eval_seconds", 100.0 * (i + 1));
            want += 100.0 * (i + 1);
        }
    }
    /* two of them again as tuning runs */
    char tune[300], from[600], to[600];
    snprintf(tune, sizeof tune, "%s/tune", dir);
    cr_assert_eq(mkdir(tune, 0755), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s.h5", dir, defs[i].id);
        snprintf(to, sizeof to, "%s/%s.h5", tune, defs[i].id);
        copy_bytes(from, to);
        want_tuning += 10.0 + i + 0.5 * i + 100.0 * (i + 1);
    }
    char *md = run_report();
    char line[200];
    snprintf(line, sizeof line, "Run time: %.2f hours over %d run files (2 tuning runs: %.2f hours)",
             (want + want_tuning) / 3600.0, N_DEFS + 2, want_tuning / 3600.0);
    cr_expect(strstr(md, line) != NULL, "want: %s\nreport:\n%s", line, md);
    cr_assert_gt(N_DEFS - 3, 4, "the files without a commit are the most");
    snprintf(line, sizeof line, "was configured at): not recorded %d, aaa 4, bbb-dirty 1.\n", N_DEFS - 3);
    cr_expect(strstr(md, line) != NULL, "want: %s\nreport:\n%s", line, md);
    cr_expect(strstr(md, "Run files by the recipe") == NULL, "one recipe (none recorded): no such line\n%s", md);
    free(md);
}

/* A folder holding runs of several recipes (copies made with --reuse) names each recipe's files
 * and their run time, by the [job] name its files record, read as a recipe is (comments, CRLF,
 * spaces around the key and the value but not inside it; a key that only starts with "name" or a
 * name in another section is not it; no name: "run"). */
Test(report, runs_of_another_recipe_are_named_with_their_time, .init = build_folder, .fini = drop_folder) {
    const char *recipe[] = {"[job]\nkind = adapt  # a sweep\nname = fig_bits\n[adapt]\nmethod = lora\n",
                            "# copied\r\n[job]\r\n name =  table subject # the lender\r\nname_like = 1\r\n[train]\r\n"
                            "name = not_the_job\r\n",
                            "[job]\nkind = adapt\n"};
    double want[3] = {0, 0, 0};
    int count[3] = {0, 0, 0};
    for (int i = 0; i < N_DEFS; i++) {
        int which = i < 2 ? 1 : i == 2 ? 2 : 0;
        char path[512];
        snprintf(path, sizeof path, "%s/%s.h5", dir, defs[i].id);
        qa_h5 *h;
        qa_error err = {0, ""};
        cr_assert_eq(qa_h5_open(path, 1, &h, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_str(h, "/", "recipe", recipe[which], &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_close(h, &err), 0, "%s", err.msg);
        set_run_f64(dir, defs[i].id, "timing", "train_seconds", 3600.0 * (i + 1));
        set_run_f64(dir, defs[i].id, "timing", "merge_seconds", 0);
        if (defs[i].variant) {
            char sub[64];
            snprintf(sub, sizeof sub, "eval/%s", defs[i].variant);
            set_run_f64(dir, defs[i].id, sub, "eval_seconds", 0);
        }
        want[which] += i + 1;
        count[which]++;
    }
    char *md = run_report();
    char line[400];
    cr_assert_gt(count[0], 2, "fig_bits has the most files");
    snprintf(line, sizeof line, "renamed): fig_bits %d (%.2f hours), table subject 2 (%.2f hours), run 1 (%.2f hours).\n",
             count[0], want[0], want[1], want[2]);
    cr_expect(strstr(md, "Run files by the [job] name of the recipe that made them (") != NULL, "report:\n%s", md);
    cr_expect(strstr(md, line) != NULL, "want: %s\nreport:\n%s", line, md);
    free(md);
}

/* qadapt runtime over two folders: the second holds a byte copy of one of the first's runs (a
 * --reuse copy: the same id, creation time and commit), counted once; a run of the same id made
 * at another time is another run; a tuning run of the second counts as its own. The run times
 * are set here, so the sums are known. */
Test(report, runtime_counts_a_copied_run_once) {
    char a[300], b[300], tune[320], from[600], to[600];
    make_tmpdir(a, sizeof a, "runtime_a");
    make_tmpdir(b, sizeof b, "runtime_b");
    snprintf(tune, sizeof tune, "%s/tune", b);
    cr_assert_eq(mkdir(tune, 0755), 0);
    const char *created[3] = {"2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-02-01T00:00:00Z"};
    for (int i = 0; i < 3; i++) { /* a: defs 0..2, each (i + 1) hours */
        write_run(a, &defs[i]);
        set_run_f64(a, defs[i].id, "timing", "train_seconds", 3600.0 * (i + 1));
        char path[600];
        snprintf(path, sizeof path, "%s/%s.h5", a, defs[i].id);
        qa_h5 *h;
        qa_error err = {0, ""};
        cr_assert_eq(qa_h5_open(path, 1, &h, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_str(h, "/", "created", created[i < 2 ? i : 0], &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_close(h, &err), 0, "%s", err.msg);
    }
    /* b: a byte copy of a's run 0; run 1's id made anew (another creation time, 10 hours); a
     * tuning run (defs 3, no creation time: never taken for a copy, 0.5 hours) */
    snprintf(from, sizeof from, "%s/%s.h5", a, defs[0].id);
    snprintf(to, sizeof to, "%s/%s.h5", b, defs[0].id);
    copy_bytes(from, to);
    qa_error err = {0, ""};
    write_run(b, &defs[1]);
    set_run_f64(b, defs[1].id, "timing", "train_seconds", 36000.0);
    snprintf(to, sizeof to, "%s/%s.h5", b, defs[1].id);
    qa_h5 *h;
    cr_assert_eq(qa_h5_open(to, 1, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(h, "/", "created", created[2], &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(h, &err), 0, "%s", err.msg);
    write_run(tune, &defs[3]);
    set_run_f64(tune, defs[3].id, "timing", "train_seconds", 1800.0);

    const char *dirs[2] = {a, b};
    char *text = NULL;
    size_t text_len = 0;
    FILE *out = open_memstream(&text, &text_len);
    cr_assert_eq(qa_report_runtime(dirs, 2, out, &err), 0, "%s", err.msg);
    fclose(out);
    char row[700];
    snprintf(row, sizeof row, "| %s | 3 | 0 | 6.00 | 0 | 6.00 |\n", a); /* 1 + 2 + 3 hours */
    cr_expect(strstr(text, row) != NULL, "want %s in\n%s", row, text);
    snprintf(row, sizeof row, "| %s | 3 | 1 | 11.50 | 1 | 10.50 |\n", b); /* 1 (the copy) + 10 + 0.5 */
    cr_expect(strstr(text, row) != NULL, "want %s in\n%s", row, text);
    cr_expect(strstr(text, "| total | 6 | 1 | 17.50 | 1 | 16.50 |\n") != NULL, "%s", text);
    cr_expect(strstr(text, "16.50 hours of run time over 5 distinct run files") != NULL, "%s", text);
    free(text);

    /* the folders in the other order: the copy counts in b, the first that holds it */
    const char *other[2] = {b, a};
    out = open_memstream(&text, &text_len);
    cr_assert_eq(qa_report_runtime(other, 2, out, &err), 0, "%s", err.msg);
    fclose(out);
    snprintf(row, sizeof row, "| %s | 3 | 0 | 6.00 | 1 | 5.00 |\n", a);
    cr_expect(strstr(text, row) != NULL, "want %s in\n%s", row, text);
    free(text);

    /* a folder that is not there: bad input, naming it */
    const char *missing[2] = {a, "/nonexistent/results"};
    out = open_memstream(&text, &text_len);
    cr_expect_eq(qa_report_runtime(missing, 2, out, &err), QA_ERR_INPUT);
    fclose(out);
    free(text);
    cr_expect(strstr(err.msg, "/nonexistent/results") != NULL, "%s", err.msg);
    rm_rf_dir(a);
    rm_rf_dir(b);
}
