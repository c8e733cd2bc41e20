/* The qadapt command: exit codes (0 ok, 1 run failed, 2 bad input) and one-line messages that
 * name the file, line and key. QADAPT_BIN is set by meson to the built binary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static char out_buf[65536];

/* Run a shell command line with qadapt at $QADAPT_BIN; capture stdout+stderr; return exit code. */
static int run(const char *fmt, const char *arg) {
    const char *bin = getenv("QADAPT_BIN");
    cr_assert_not_null(bin, "QADAPT_BIN not set");
    char args[2048], cmd[4096];
    snprintf(args, sizeof args, fmt, arg ? arg : "");
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    return capture_command(cmd, out_buf, sizeof out_buf);
}

static char tmpdir[128];

static void mk(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qa-test-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void write_file(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

TestSuite(cli, .init = mk);

Test(cli, help_and_list) {
    cr_expect_eq(run("--help", NULL), 0);
    cr_expect(strstr(out_buf, "run RECIPE") && strstr(out_buf, "report DIR") && strstr(out_buf, "plot DIR") &&
              strstr(out_buf, "verify DIR CLAIMS"), "%s", out_buf);
    cr_expect_eq(run("list", NULL), 0);
    cr_expect(strstr(out_buf, "lora ") != NULL, "%s", out_buf);
}

Test(cli, unknown_command_and_missing_arguments_exit_2) {
    cr_expect_eq(run("frobnicate", NULL), 2);
    cr_expect(strstr(out_buf, "unknown command 'frobnicate'") != NULL, "%s", out_buf);
    cr_expect_eq(run("run", NULL), 2);
    cr_expect_eq(run("report", NULL), 2);
    cr_expect_eq(run("run /nonexistent.recipe", NULL), 2);
    cr_expect(strstr(out_buf, "/nonexistent.recipe") != NULL, "%s", out_buf);
}

Test(cli, recipe_errors_name_file_line_and_key) {
    write_file("bad.recipe", "[job]\nkind = adapt\n\n[train]\nstepz = 10\n");
    char p[256];
    snprintf(p, sizeof p, "%s/bad.recipe", tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "bad.recipe:5:") && strstr(out_buf, "stepz") && strstr(out_buf, "allowed: steps"),
              "%s", out_buf);
    write_file("bad2.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = [lora, dora]\n");
    snprintf(p, sizeof p, "%s/bad2.recipe", tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "bad2.recipe:4:") && strstr(out_buf, "dora") && strstr(out_buf, "allowed: lora"), "%s", out_buf);
}

Test(cli, missing_dataset_names_the_package) {
    write_file("ev.recipe", "[job]\nkind = evaluator\n[data]\ndir = /nonexistent-fmnist\n[train]\nsteps = 1\n");
    char p[256];
    snprintf(p, sizeof p, "%s/ev.recipe", tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "dataset-fashion-mnist") && strstr(out_buf, "/nonexistent-fmnist/train-images"), "%s", out_buf);
}

Test(cli, report_of_an_empty_folder_is_bad_input) {
    cr_expect_eq(run("report %s", tmpdir), 2);
    cr_expect(strstr(out_buf, "no finished runs") != NULL, "%s", out_buf);
    cr_expect_eq(run("report /nonexistent-dir", NULL), 2);
}

Test(cli, basecheck_rejects_bad_options) {
    cr_expect_eq(run("basecheck --samples 0", NULL), 2);
    cr_expect_eq(run("basecheck --bogus", NULL), 2);
}

Test(cli, bench_layer_prints_one_json_object_per_line) {
    cr_expect_eq(run("bench-layer --method intlora-mul --tokens 12 --in 32 --out 16 --rank 2 --bits 8 --repeats 2 --json", NULL), 0);
    const char *keys[] = {"\"method\": \"intlora-mul\"", "\"tokens\": 12", "\"in\": 32", "\"out\": 16", "\"rank\": 2",
                          "\"bits\": 8", "\"ms_fwd_bwd\": "};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) cr_expect(strstr(out_buf, keys[i]) != NULL, "missing %s in %s", keys[i], out_buf);
    cr_expect_eq(run("bench-layer --method linear --tokens 8 --in 16 --out 16 --repeats 2 --json", NULL), 0);
    cr_expect(strstr(out_buf, "\"method\": \"linear\"") != NULL, "%s", out_buf);
}

/* --dtype bf16: the frozen base product of every method (and each product of the plain linear)
 * with bf16 operands; every method runs and says so. */
Test(cli, bench_layer_takes_a_dtype_for_every_method) {
    const char *methods[] = {"linear", "lora", "qlora", "qalora", "efficientdm", "intlora-mul", "intlora-shift", "peqa",
                             "lr-qat"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "bench-layer --method %s --tokens 12 --in 64 --out 32 --rank 2 --bits 4 --repeats 2 "
                 "--json --dtype bf16", methods[i]);
        cr_expect_eq(run(cmd, NULL), 0, "%s: %s", methods[i], out_buf);
        cr_expect(strstr(out_buf, "\"dtype\": \"bf16\"") != NULL, "%s: %s", methods[i], out_buf);
    }
    cr_expect_eq(run("bench-layer --method lora --dtype f16", NULL), 2);
    cr_expect(strstr(out_buf, "--dtype f32|bf16") != NULL, "%s", out_buf);
}

Test(cli, bench_layer_bad_arguments_exit_2_with_usage) {
    cr_expect_eq(run("bench-layer --tokens -5", NULL), 2);
    cr_expect(strstr(out_buf, "usage: qadapt bench-layer") != NULL, "%s", out_buf);
    cr_expect_eq(run("bench-layer --method dora", NULL), 2);
    cr_expect(strstr(out_buf, "unknown method 'dora'") != NULL, "%s", out_buf);
    cr_expect_eq(run("bench-layer --bits 12", NULL), 2);
}

Test(cli, dry_run_prints_the_plan_and_runs_nothing) {
    write_file("plan.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = [lora, intlora-mul]\nbits = [fp, w4a8]\nseed = [0, 1]\n");
    char p[512];
    snprintf(p, sizeof p, "%s/plan.recipe --out %s/never --dry-run", tmpdir, tmpdir);
    cr_expect_eq(run("run %s", p), 0);
    cr_expect(strstr(out_buf, "6 runs") && strstr(out_buf, "lora-fp-r4-s0") && strstr(out_buf, "intlora-mul-w4a8-r4-s1"),
              "%s", out_buf);
    cr_expect(strstr(out_buf, "intlora-mul at bits fp left out") != NULL, "%s", out_buf);
    snprintf(p, sizeof p, "%s/never", tmpdir);
    cr_expect(access(p, F_OK) != 0, "a dry run creates nothing");
}

/* --reuse names a folder of finished runs: a missing one, or the --out folder itself, is a usage
 * error before anything runs. */
Test(cli, reuse_needs_an_existing_folder_other_than_out) {
    write_file("reuse.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = lora\n");
    char p[640];
    snprintf(p, sizeof p, "%s/reuse.recipe --out %s/r --reuse %s/nowhere", tmpdir, tmpdir, tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "--reuse") && strstr(out_buf, "nowhere") && strstr(out_buf, "no such folder"), "%s", out_buf);
    snprintf(p, sizeof p, "%s/reuse.recipe --out %s --reuse %s/.", tmpdir, tmpdir, tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "is the --out folder itself") != NULL, "%s", out_buf);
    snprintf(p, sizeof p, "%s/r", tmpdir);
    cr_expect(access(p, F_OK) != 0, "nothing was made");
    cr_expect_eq(run("run %s --reuse", "x.recipe"), 2, "--reuse needs its folder");
    write_file("pre.recipe", "[job]\nkind = pretrain\n");
    snprintf(p, sizeof p, "%s/pre.recipe --out %s/r/dit.h5 --reuse %s", tmpdir, tmpdir, tmpdir);
    cr_expect_eq(run("run %s", p), 2);
    cr_expect(strstr(out_buf, "--reuse copies the runs of an adapt sweep") != NULL, "%s", out_buf);
    cr_expect_eq(run("run %s --dry-run", p), 2, "a dry run too");
    cr_expect(strstr(out_buf, "--reuse copies the runs of an adapt sweep") != NULL, "%s", out_buf);
}

Test(cli, dry_run_of_a_tuned_recipe_counts_the_tuning_runs) {
    write_file("tuned.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = [lora, qalora]\nbits = [fp, w4a8]\nseed = [0, 1]\n"
                               "[tune]\nlr_grid = [0.1, 1, 10]\nseeds = [100, 101]\nmetric = subject_fidelity\n");
    char p[512];
    snprintf(p, sizeof p, "%s/tuned.recipe --out %s/never --dry-run", tmpdir, tmpdir);
    cr_expect_eq(run("run %s", p), 0, "%s", out_buf);
    /* 3 cells (lora fp, lora w4a8, qalora w4a8) x 2 seeds; 3 cells x 3 rates x 2 tuning seeds */
    cr_expect(strstr(out_buf, "24 runs: 6 final") && strstr(out_buf, "18 tuning (3 cells x 3 rates x 2 seeds") &&
                  strstr(out_buf, "chosen by subject_fidelity") && strstr(out_buf, "tune/qalora-w4a8-r4-lrx10-s101"),
              "%s", out_buf);
    write_file("overlap.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = lora\nseed = [0, 1]\n"
                                 "[tune]\nlr_grid = [0.1, 1, 10]\nseeds = [1, 2]\n");
    snprintf(p, sizeof p, "%s/overlap.recipe --dry-run", tmpdir);
    cr_expect_eq(run("run %s", p), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "overlap.recipe:8: [tune] seeds") != NULL, "%s", out_buf);
}

Test(cli, bench_model_bad_arguments_exit_2) {
    cr_expect_eq(run("bench-model --batch 0", NULL), 2);
    cr_expect(strstr(out_buf, "usage: qadapt bench-model") != NULL, "%s", out_buf);
    cr_expect_eq(run("bench-model --checkpoint /nonexistent.h5", NULL), 2);
    cr_expect(strstr(out_buf, "/nonexistent.h5") != NULL, "%s", out_buf);
}

Test(cli, project_sd_bad_arguments_exit_2) {
    cr_expect_eq(run("project-sd --bits 1", NULL), 2);
    cr_expect(strstr(out_buf, "usage: qadapt project-sd") != NULL, "%s", out_buf);
    cr_expect_eq(run("project-sd --methods lora,dora --rank 1", NULL), 2);
    cr_expect(strstr(out_buf, "unknown method 'dora'") != NULL, "%s", out_buf);
}

Test(cli, verify_a_malformed_claims_file_exits_2_naming_file_line_and_allowed) {
    write_file("bad.claims", "[claim C1]\npaper = p\nfolder = table_subject\nmetric = subject_fidelity\ntest = betterness\n");
    char p[512];
    snprintf(p, sizeof p, "%s %s/bad.claims", tmpdir, tmpdir);
    cr_expect_eq(run("verify %s", p), 2);
    cr_expect(strstr(out_buf, "bad.claims:5:") && strstr(out_buf, "betterness") &&
                  strstr(out_buf, "allowed: superiority non-inferiority equivalence trend interaction"),
              "%s", out_buf);
    cr_expect_eq(run("verify %s", tmpdir), 2);
    cr_expect(strstr(out_buf, "usage: qadapt verify DIR CLAIMS") != NULL, "%s", out_buf);
}

Test(cli, verify_without_runs_judges_not_testable_and_exits_0) {
    write_file("ok.claims", "[claim C1]\npaper = p\nfolder = elsewhere\nmetric = fid\ntest = superiority\ncells = a:w8a8 b:w8a8\n");
    char p[512];
    snprintf(p, sizeof p, "%s %s/ok.claims", tmpdir, tmpdir);
    cr_expect_eq(run("verify %s", p), 0);
    cr_expect(strstr(out_buf, "Holm-Bonferroni") && strstr(out_buf, "not testable: no runs in") && strstr(out_buf, "/elsewhere"),
              "%s", out_buf);
    snprintf(p, sizeof p, "%s/ok.claims.md", tmpdir);
    cr_expect(access(p, F_OK) == 0, "ok.claims.md written in DIR");
    snprintf(p, sizeof p, "%s/ok.claims.csv", tmpdir);
    cr_expect(access(p, F_OK) == 0, "ok.claims.csv written in DIR");
}

Test(cli, method_option_errors_exit_2_with_file_line_and_key) {
    write_file("opt.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = lora\nvmc_alpha = 2\n");
    char path[256];
    snprintf(path, sizeof path, "%s/opt.recipe", tmpdir);
    cr_expect_eq(run("run %s --dry-run", path), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "opt.recipe:5:") && strstr(out_buf, "vmc_alpha") && strstr(out_buf, "intlora-mul"), "%s", out_buf);
    write_file("val.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = intlora-shift\n\naux_dist = [laplace, cauchy]\n");
    snprintf(path, sizeof path, "%s/val.recipe", tmpdir);
    cr_expect_eq(run("run %s --dry-run", path), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "val.recipe:6:") && strstr(out_buf, "aux_dist") && strstr(out_buf, "laplace|gaussian|uniform|zero"),
              "%s", out_buf);
}

Test(cli, list_and_help_print_each_methods_options) {
    cr_expect_eq(run("list", NULL), 0);
    cr_expect(strstr(out_buf, "group_size") && strstr(out_buf, "qlora_base") && strstr(out_buf, "vmc_stat"), "%s", out_buf);
    cr_expect_eq(run("help intlora-shift", NULL), 0);
    cr_expect(strstr(out_buf, "vmc_alpha") && strstr(out_buf, "default 1.5"), "%s", out_buf);
    cr_expect(strstr(out_buf, "lora_bits") == NULL, "SHIFT has no update quantizer: %s", out_buf);
    cr_expect_eq(run("help lora", NULL), 0);
    cr_expect(strstr(out_buf, "no options of its own") != NULL, "%s", out_buf);
    cr_expect(strstr(out_buf, "reference learning rate: 0.001") != NULL, "%s", out_buf);
    cr_expect_eq(run("help no-such-method", NULL), 2);
}

/* The options table of experiments/README.md is what the methods' tables say. */
Test(cli, readme_options_table_matches_the_method_tables) {
    /* QA_TEST_SOURCE_ROOT is compiled in by tests/meson.build. */
    const char *path = QA_TEST_SOURCE_ROOT "/experiments/README.md";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    static char readme[65536];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = 0;
    fclose(f);
    const char *begin_mark = "<!-- method options: begin -->\n", *end_mark = "<!-- method options: end -->";
    char *begin = strstr(readme, begin_mark), *end = begin ? strstr(begin, end_mark) : NULL;
    cr_assert(begin && end, "%s lacks the marked options table", path);
    begin += strlen(begin_mark);
    *end = 0;
    cr_assert_eq(run("list --markdown", NULL), 0);
    cr_expect_str_eq(begin, out_buf, "experiments/README.md's options table differs from `qadapt list --markdown`");
}

Test(cli, plot_arguments_and_an_empty_folder_exit_2) {
    cr_expect_eq(run("plot %s --baseline", tmpdir), 2);
    cr_expect(strstr(out_buf, "usage: qadapt plot DIR [--baseline") != NULL, "%s", out_buf);
    cr_expect_eq(run("plot %s --colour red", tmpdir), 2);
    cr_expect_eq(run("plot %s --baseline lora:w8a8", tmpdir), 2);
    cr_expect(strstr(out_buf, "no finished runs") != NULL, "%s", out_buf);
}

/* runtime: no folder is a usage error, a folder that is not there bad input naming it; an empty
 * folder is a table of zeros. */
Test(cli, runtime_arguments_and_a_missing_folder_exit_2) {
    cr_expect_eq(run("runtime%s", ""), 2);
    cr_expect(strstr(out_buf, "usage: qadapt runtime DIR") != NULL, "%s", out_buf);
    cr_expect_eq(run("runtime %s/not_there", tmpdir), 2);
    cr_expect(strstr(out_buf, "not_there: no such results folder") != NULL, "%s", out_buf);
    cr_expect_eq(run("runtime %s", tmpdir), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "| total | 0 | 0 | 0.00 | 0 | 0.00 |") != NULL, "%s", out_buf);
}

/* project-sd --weights: a malformed safetensors file is bad input (exit 2, the file named), not a crash. */
Test(cli, project_sd_malformed_weights_exit_2) {
    char p[256];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    const char *hdr = "{\"w\": {\"dtype\": \"F16\", \"shape\": [4, 4], \"data_offsets\": [0, 32]}}";
    unsigned char le[8] = {(unsigned char)strlen(hdr), 0, 0, 0, 0, 0, 0, 0};
    fwrite(le, 1, 8, f);
    fputs(hdr, f); /* no data: the offsets run past the end of the file */
    fclose(f);
    cr_expect_eq(run("project-sd --weights %s", p), 2);
    cr_expect(strstr(out_buf, "bad.safetensors") && strstr(out_buf, "past the end"), "%s", out_buf);
    snprintf(p, sizeof p, "%s/notjson.safetensors", tmpdir);
    f = fopen(p, "wb");
    cr_assert_not_null(f);
    le[0] = 5;
    fwrite(le, 1, 8, f);
    fputs("{{{{{", f);
    fclose(f);
    cr_expect_eq(run("project-sd --weights %s", p), 2);
    cr_expect(strstr(out_buf, "not valid JSON") != NULL, "%s", out_buf);
}
