/* qadapt verify on results folders written by hand (fake_runs.h), with per-seed values chosen so
 * that every number is computed here by hand: 3 seeds, so each paired t has 2 degrees of freedom,
 * where P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2 in closed form and t_{0.95, 2} = 2.919985580.
 * One test kind per claim; the family (7 testable claims) is adjusted by Holm by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <sys/stat.h>

#include "common.h"
#include "fake_runs.h"
#include "harness/verify.h"

TestSuite(verify, .timeout = 60);

static double upper_tail_df2(double t) { return 0.5 * (1.0 - t / sqrt(t * t + 2.0)); }
static const double T95_DF2 = 2.919985580353726;

typedef struct {
    const char *method, *bits;
    int w_bits;
    double subj[3], loss[3];
} fake_cell;

/* DIR = <tmp>/table_x; the trend and interaction cells live in the sibling <tmp>/sweep_y. */
static const fake_cell table_cells[] = {
    {"alpha", "w8a8", 8, {0.90, 0.85, 0.80}, {0.10, 0.12, 0.11}},
    {"beta", "w8a8", 8, {0.80, 0.78, 0.70}, {0.13, 0.16, 0.14}},
    {"gamma", "w8a8", 8, {0.905, 0.845, 0.81}, {0.10, 0.12, 0.11}},
};
static const fake_cell sweep_cells[] = {
    {"delta", "w8a8", 8, {0.90, 0.80, 0.85}, {0.1, 0.1, 0.1}},
    {"delta", "w6a8", 6, {0.85, 0.76, 0.79}, {0.1, 0.1, 0.1}},
    {"delta", "w4a8", 4, {0.70, 0.65, 0.66}, {0.1, 0.1, 0.1}},
    {"eps", "w8a8", 8, {0.90, 0.80, 0.85}, {0.1, 0.1, 0.1}},
    {"eps", "w4a8", 4, {0.88, 0.79, 0.82}, {0.1, 0.1, 0.1}},
};

static const char claims_text[] =
    "# one claim per test kind\n"
    "[claim S]\npaper = alpha beats beta\nfolder = table_x\nmetric = subject_fidelity\ntest = superiority\ncells = alpha:w8a8 beta:w8a8\n"
    "[claim L]\npaper = alpha has the lower loss\nfolder = table_x\nmetric = heldout_loss\ntest = superiority\ncells = alpha:w8a8 beta:w8a8\n"
    "[claim E]\npaper = gamma about equals alpha\nfolder = table_x\nmetric = subject_fidelity\ntest = equivalence\n"
    "cells = gamma:w8a8 alpha:w8a8\nmargin = 0.04\n"
    "[claim T]\npaper = delta degrades monotonically\nfolder = sweep_y\nmetric = subject_fidelity\ntest = trend\n"
    "cells = delta:w8a8 delta:w6a8 delta:w4a8\ndirection = worse\n"
    "[claim I]\npaper = delta loses more than eps from 8 to 4 bits\nfolder = sweep_y\nmetric = subject_fidelity\n"
    "test = interaction\ncells = delta:w4a8 delta:w8a8 eps:w4a8 eps:w8a8\ndirection = worse\n"
    "[claim X]\npaper = gamma beats alpha\nfolder = table_x\nmetric = subject_fidelity\ntest = superiority\ncells = gamma:w8a8 alpha:w8a8\n"
    "[claim R]\npaper = beta beats alpha\nfolder = table_x\nmetric = subject_fidelity\ntest = superiority\ncells = beta:w8a8 alpha:w8a8\n"
    "[claim M]\npaper = a cell nobody ran\nfolder = table_x\nmetric = subject_fidelity\ntest = superiority\ncells = alpha:w8a8 zeta:w8a8\n"
    "[claim F]\npaper = a folder nobody ran\nfolder = nowhere\nmetric = subject_fidelity\ntest = superiority\ncells = alpha:w8a8 beta:w8a8\n"
    "[claim N]\npaper = alpha no worse than gamma\nfolder = table_x\nmetric = subject_fidelity\ntest = non-inferiority\n"
    "cells = alpha:w8a8 gamma:w8a8\nmargin = 0.04\n";
enum { C_S, C_L, C_E, C_T, C_I, C_X, C_R, C_M, C_F, C_N, N_CLAIMS };

static char root[256], table_dir[300], claims_path[300];

static void write_cells(const char *dir, const fake_cell *cells, int n) {
    for (int c = 0; c < n; c++)
        for (int s = 0; s < 3; s++) {
            char id[96];
            snprintf(id, sizeof id, "%s-%s-r4-s%d", cells[c].method, cells[c].bits, s);
            run_def d = {id, cells[c].method, cells[c].bits, "done", "int", cells[c].w_bits, 8, 4, 0, s,
                         cells[c].loss[s], cells[c].subj[s], 0.5, (double)cells[c].w_bits};
            write_run(dir, &d);
        }
}

static void build(void) {
    make_tmpdir(root, sizeof root, "verify");
    char sweep[300];
    snprintf(table_dir, sizeof table_dir, "%s/table_x", root);
    snprintf(sweep, sizeof sweep, "%s/sweep_y", root);
    cr_assert_eq(mkdir(table_dir, 0755), 0);
    cr_assert_eq(mkdir(sweep, 0755), 0);
    write_cells(table_dir, table_cells, 3);
    write_cells(sweep, sweep_cells, 5);
    snprintf(claims_path, sizeof claims_path, "%s/test.claims", root);
    write_text_file(claims_path, claims_text);
}

static void drop(void) { rm_rf_dir(root); }

static void judge(qa_claim **claims, qa_claim_result *res) {
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_claims_load(claims_path, claims, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, N_CLAIMS);
    cr_assert_eq(qa_verify_judge(table_dir, *claims, n, res, &err), 0, "%s", err.msg);
}

static void expect_close(double got, double want, double tol, const char *what) {
    cr_expect(fabs(got - want) <= tol, "%s: %.10g, by hand %.10g", what, got, want);
}

Test(verify, each_test_kind_against_hand_computed_numbers, .init = build, .fini = drop) {
    qa_claim *claims;
    qa_claim_result res[N_CLAIMS];
    judge(&claims, res);
    /* S: d = alpha - beta = {0.10, 0.07, 0.10}: mean 0.09, sd sqrt(0.0006 / 2), se 0.01, t = 9 */
    expect_close(res[C_S].effect, 0.09, 1e-12, "S effect");
    expect_close(res[C_S].ci_hi - res[C_S].effect, T95_DF2 * 0.01, 1e-10, "S 90% CI half-width");
    expect_close(res[C_S].p, upper_tail_df2(9.0), 1e-10, "S p");
    expect_close(res[C_S].p_against, 1 - upper_tail_df2(9.0), 1e-10, "S p against");
    /* L: loss is lower-better: d = alpha - beta = {-0.03, -0.04, -0.03}, oriented mean 0.0333, se 0.00333, t = 10 */
    expect_close(res[C_L].effect, -0.1 / 3, 1e-12, "L effect (raw A - B)");
    expect_close(res[C_L].p, upper_tail_df2(10.0), 1e-9, "L p");
    /* E: d = gamma - alpha = {0.005, -0.005, 0.01}: mean 1/300, sd 0.0076376, se 0.0044096; TOST at
     * 0.04: the upper test decides, t = (0.04 - 1/300) / se = 8.315 */
    double se_e = sqrt((pow(0.005 - 1.0 / 300, 2) + pow(-0.005 - 1.0 / 300, 2) + pow(0.01 - 1.0 / 300, 2)) / 2) / sqrt(3.0);
    expect_close(se_e, 0.0044095855, 1e-9, "E se by hand");
    expect_close(res[C_E].p, upper_tail_df2((0.04 - 1.0 / 300) / se_e), 1e-9, "E TOST p");
    /* T: steps w6 - w8 = {-0.05, -0.04, -0.06} (t = 0.05 / (0.01 / sqrt 3) = 8.660) and w4 - w6 =
     * {-0.15, -0.11, -0.13} (t = 11.26): the first step decides */
    expect_close(res[C_T].effect, -0.05, 1e-12, "T weakest step");
    expect_close(res[C_T].p, upper_tail_df2(0.05 / (0.01 / sqrt(3.0))), 1e-9, "T p (intersection-union: the largest)");
    cr_expect_str_eq(res[C_T].decisive, "delta:w6a8 - delta:w8a8");
    /* I: (delta4 - delta8) - (eps4 - eps8) = {-0.18, -0.14, -0.16}: mean -0.16, sd 0.02, t = 13.86 */
    expect_close(res[C_I].effect, -0.16, 1e-12, "I difference in differences");
    expect_close(res[C_I].p, upper_tail_df2(0.16 / (0.02 / sqrt(3.0))), 1e-9, "I p");
    /* N: alpha - gamma = -d_E, H1: mean > -0.04: t = (-1/300 + 0.04) / se */
    expect_close(res[C_N].p, upper_tail_df2((0.04 - 1.0 / 300) / se_e), 1e-9, "N p");
    free(claims);
}

Test(verify, holm_over_the_file_and_the_verdicts, .init = build, .fini = drop) {
    qa_claim *claims;
    qa_claim_result res[N_CLAIMS];
    judge(&claims, res);
    /* the family: the 8 testable claims (M and F are not testable). Raw p ascending:
     * I 0.0025840, L 0.0049259, S 0.0060608, T 0.0065357, E = N 0.0071, X 0.264, R 0.994; Holm: 8 p, 7 p,
     * ... each at least the one before: the first six fall below 0.05 (the largest, 6 pS = 0.036) */
    double pI = upper_tail_df2(0.16 / (0.02 / sqrt(3.0))), pL = upper_tail_df2(10), pS = upper_tail_df2(9);
    double pT = upper_tail_df2(0.05 / (0.01 / sqrt(3.0)));
    expect_close(res[C_I].p_holm, 8 * pI, 1e-9, "I Holm: 8 p");
    expect_close(res[C_L].p_holm, 7 * pL, 1e-9, "L Holm: 7 p");
    expect_close(res[C_S].p_holm, fmax(6 * pS, 7 * pL), 1e-9, "S Holm: max(6 p, the step before)");
    expect_close(res[C_T].p_holm, fmax(5 * pT, fmax(6 * pS, 7 * pL)), 1e-9, "T Holm");
    const int want[N_CLAIMS] = {
        [C_S] = QA_VERDICT_REPLICATED, [C_L] = QA_VERDICT_REPLICATED, [C_E] = QA_VERDICT_EQUIVALENT,
        [C_T] = QA_VERDICT_REPLICATED, [C_I] = QA_VERDICT_REPLICATED, [C_X] = QA_VERDICT_INCONCLUSIVE,
        [C_R] = QA_VERDICT_NOT_REPLICATED, [C_M] = QA_VERDICT_NOT_TESTABLE, [C_F] = QA_VERDICT_NOT_TESTABLE,
        [C_N] = QA_VERDICT_REPLICATED,
    };
    for (int i = 0; i < N_CLAIMS; i++)
        cr_expect_eq(res[i].verdict, want[i], "claim %s: %s, want %s (p %g, Holm %g, against Holm %g)", claims[i].id,
                     qa_verdict_words[res[i].verdict], qa_verdict_words[want[i]], res[i].p, res[i].p_holm, res[i].p_against_holm);
    /* R: the data show beta below alpha: p against = that of S, Holm-adjusted over 8 as the smallest */
    expect_close(res[C_R].p_against_holm, 8 * pS, 1e-9, "R against, Holm");
    /* X: d = {0.005, -0.005, 0.01}, gap 1/300, sd 0.0076376; at alpha / 8, z = 2.497705, z_0.8 =
     * 0.841621: n = (3.339326 * 0.0076376 * 300)^2 + 2.497705^2 / 2 = 58.48 + 3.12 -> 62 */
    cr_expect_eq(res[C_X].seeds_needed, 62, "X seeds needed: %d", res[C_X].seeds_needed);
    cr_expect(strstr(res[C_M].reason, "zeta") != NULL, "%s", res[C_M].reason);
    cr_expect(strstr(res[C_F].reason, "nowhere") != NULL, "%s", res[C_F].reason);
    cr_expect(isnan(res[C_M].p_holm) && isnan(res[C_F].p_holm), "not testable claims are outside the family");
    free(claims);
}

Test(verify, writes_claims_md_and_csv_in_dir, .init = build, .fini = drop) {
    qa_error err = {0, ""};
    char out_path[400];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", root);
    FILE *out = fopen(out_path, "w");
    cr_assert_eq(qa_verify(table_dir, claims_path, out, &err), 0, "%s", err.msg);
    fclose(out);
    char path[400], *md, *csv, *printed;
    snprintf(path, sizeof path, "%s/test.claims.md", table_dir);
    cr_assert_eq(qa_read_file(path, &md, NULL, &err), 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/test.claims.csv", table_dir);
    cr_assert_eq(qa_read_file(path, &csv, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_read_file(out_path, &printed, NULL, &err), 0, "%s", err.msg);
    cr_expect_str_eq(printed, md, "the printed table is test.claims.md");
    cr_expect(strstr(md, "Holm-Bonferroni") && strstr(md, "over the 8 testable claims"), "%s", md);
    cr_expect(strstr(md, "| S | alpha beats beta | superiority, alpha 0.05 |") != NULL, "%s", md);
    cr_expect(strstr(md, "**not replicated**") && strstr(md, "**equivalent**") && strstr(md, "inconclusive (62 seeds"), "%s", md);
    cr_expect(strstr(md, "Verdicts: 5 replicated, 1 not replicated, 1 equivalent, 1 inconclusive, 2 not testable."), "%s", md);
    cr_expect(strncmp(csv, "id,test,folder,metric,cells,margin,alpha,direction,n,effect,", 60) == 0, "%s", csv);
    cr_expect(strstr(csv, "\nT,trend,") && strstr(csv, "/sweep_y,"), "the trend claim is judged in the sibling folder: %s", csv);
    int lines = 0;
    for (const char *c = csv; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 1 + N_CLAIMS);
    snprintf(path, sizeof path, "%s/test.claims.md.tmp", table_dir);
    cr_expect(access(path, F_OK) != 0, "no temporary file left");
    free(md);
    free(csv);
    free(printed);
}

Test(verify, a_damaged_run_file_is_a_run_error, .init = build, .fini = drop) {
    char path[400];
    snprintf(path, sizeof path, "%s/alpha-w8a8-r4-s9.h5", table_dir);
    write_text_file(path, "not an HDF5 file");
    qa_error err = {0, ""};
    cr_expect_eq(qa_verify(table_dir, claims_path, NULL, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "alpha-w8a8-r4-s9.h5") != NULL, "%s", err.msg);
}

Test(verify, a_relative_margin_is_a_share_of_cell_b, .init = build, .fini = drop) {
    write_text_file(claims_path, "[claim P]\npaper = p\nfolder = table_x\nmetric = subject_fidelity\ntest = equivalence\n"
                                 "cells = gamma:w8a8 alpha:w8a8\nmargin = 10%\n");
    qa_claim *claims;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_claims_load(claims_path, &claims, &n, &err), 0, "%s", err.msg);
    qa_claim_result r;
    cr_assert_eq(qa_verify_judge(table_dir, claims, n, &r, &err), 0, "%s", err.msg);
    expect_close(r.margin, 0.1 * 0.85, 1e-12, "10% of alpha's mean 0.85");
    free(claims);
}

/* The cost and initialisation metrics read what the run files hold: trainable and optimizer bytes
 * (memory group) and the method's "init_error" stat; a run without the stat has no value. alpha's
 * costs are below beta's by the same amount in every seed: a paired sd of 0, so p is exactly 0. */
Test(verify, trainable_optimizer_and_init_error_metrics, .init = build, .fini = drop) {
    for (int s = 0; s < 3; s++) {
        char a[96], b[96];
        snprintf(a, sizeof a, "alpha-w8a8-r4-s%d", s);
        snprintf(b, sizeof b, "beta-w8a8-r4-s%d", s);
        set_run_f64(table_dir, a, "memory", "trainable_bytes", 1 * 1048576.0);
        set_run_f64(table_dir, b, "memory", "trainable_bytes", 3 * 1048576.0);
        set_run_f64(table_dir, a, "memory", "optimizer_bytes", 2 * 1048576.0);
        set_run_f64(table_dir, b, "memory", "optimizer_bytes", 6 * 1048576.0);
        set_run_f64(table_dir, a, "method_stats", "init_error", 0.01 + 0.001 * s);
        set_run_f64(table_dir, b, "method_stats", "init_error", 0.02 + 0.002 * s);
    }
    write_text_file(claims_path,
                    "[claim P]\npaper = alpha trains fewer parameters\nfolder = table_x\nmetric = trainable_mib\n"
                    "test = superiority\ncells = alpha:w8a8 beta:w8a8\n"
                    "[claim O]\npaper = alpha holds less optimizer state\nfolder = table_x\nmetric = optimizer_mib\n"
                    "test = superiority\ncells = alpha:w8a8 beta:w8a8\n"
                    "[claim Q]\npaper = alpha starts closer to W\nfolder = table_x\nmetric = init_error\n"
                    "test = superiority\ncells = alpha:w8a8 beta:w8a8\n"
                    "[claim G]\npaper = gamma records no init error\nfolder = table_x\nmetric = init_error\n"
                    "test = superiority\ncells = alpha:w8a8 gamma:w8a8\n");
    qa_claim *claims;
    qa_claim_result res[4];
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_claims_load(claims_path, &claims, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4);
    cr_assert_eq(qa_verify_judge(table_dir, claims, n, res, &err), 0, "%s", err.msg);
    expect_close(res[0].effect, -2.0, 1e-12, "P effect (MiB, raw A - B)");
    expect_close(res[1].effect, -4.0, 1e-12, "O effect (MiB)");
    cr_expect(res[0].p == 0 && res[1].p == 0, "a constant paired difference is exact: p %g %g", res[0].p, res[1].p);
    /* d = {-0.01, -0.011, -0.012}: mean -0.011, sd 0.001, se 0.001 / sqrt 3, t = 19.05 */
    expect_close(res[2].effect, -0.011, 1e-12, "Q effect");
    expect_close(res[2].p, upper_tail_df2(0.011 / (0.001 / sqrt(3.0))), 1e-9, "Q p");
    cr_expect_eq(res[3].verdict, QA_VERDICT_NOT_TESTABLE, "gamma has no init_error: %s", qa_verdict_words[res[3].verdict]);
    free(claims);
}
