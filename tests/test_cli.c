/* The qadapt command: exit codes (0 ok, 1 run failed, 2 bad input) and one-line messages that
 * name the file, line and key. QADAPT_BIN is set by meson to the built binary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[65536];

/* Run a shell command line with qadapt at $QADAPT_BIN; capture stdout+stderr; return exit code. */
static int run(const char *fmt, const char *arg) {
    const char *bin = getenv("QADAPT_BIN");
    cr_assert_not_null(bin, "QADAPT_BIN not set");
    char args[2048], cmd[4096];
    snprintf(args, sizeof args, fmt, arg ? arg : "");
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
    cr_expect(strstr(out_buf, "run RECIPE") && strstr(out_buf, "report DIR") && strstr(out_buf, "plot DIR"), "%s", out_buf);
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
