/* The run-file format version and foreign files through the qadapt command: a file of a newer
 * version stops `qadapt report` with exit 2 and a message naming the file and both versions; a
 * foreign .h5 is left out with a warning naming it (exit 0). QADAPT_BIN is set by meson. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common.h"
#include "harness/results.h"
#include "harness/schema.h"
#include "fake_runs.h"

TestSuite(schema_cli, .timeout = 60);

static char dir[256], output[65536];

static void setup(void) { make_tmpdir(dir, sizeof dir, "schema-cli"); }
static void teardown(void) { rm_rf_dir(dir); }

/* qadapt with args, its stdout and stderr kept in output; the exit status */
static int qadapt(const char *args) {
    const char *bin = getenv("QADAPT_BIN");
    cr_assert_not_null(bin, "QADAPT_BIN not set");
    char cmd[1400], log[300];
    snprintf(log, sizeof log, "%s/qadapt.log", dir);
    snprintf(cmd, sizeof cmd, "%s %s > %s 2>&1", bin, args, log);
    int status = system(cmd);
    char *text;
    size_t len;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(log, &text, &len, &err), QA_OK, "%s", err.msg);
    snprintf(output, sizeof output, "%s", text);
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const run_def one_run = {"lora-fp-r2-s0", "lora", "fp", "done", "fp", 0, 0, 2, 0, 0, 0.10, 0.80, 0.60, 32};

Test(schema_cli, a_newer_run_file_is_exit_2_with_both_versions, .init = setup, .fini = teardown) {
    write_run(dir, &one_run);
    char path[512], args[600];
    snprintf(path, sizeof path, "%s/%s.h5", dir, one_run.id);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", QA_RUN_FORMAT_ATTR, QA_RUN_FORMAT_VERSION + 7, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
    snprintf(args, sizeof args, "report %s", dir);
    cr_expect_eq(qadapt(args), 2, "%s", output);
    char newer[16], ours[16];
    snprintf(newer, sizeof newer, "%d", QA_RUN_FORMAT_VERSION + 7);
    snprintf(ours, sizeof ours, "%d", QA_RUN_FORMAT_VERSION);
    cr_expect(strstr(output, path) && strstr(output, newer) && strstr(output, ours), "%s", output);
}

Test(schema_cli, a_foreign_file_is_left_out_with_a_warning, .init = setup, .fini = teardown) {
    write_run(dir, &one_run);
    char path[512], args[600];
    snprintf(path, sizeof path, "%s/notes.h5", dir);
    write_text_file(path, "not a run file\n");
    snprintf(args, sizeof args, "report %s", dir);
    cr_expect_eq(qadapt(args), 0, "%s", output);
    cr_expect(strstr(output, "warning") && strstr(output, path), "%s", output);
    cr_expect(strstr(output, "| lora | FP | fp | 2 | 1 |") != NULL, "the run is reported:\n%s", output);
}
