/* The qadapt command on hostile input, each a clear exit 2 naming the file and what is wrong:
 * damaged checkpoints, misread recipe values, and a second sweep on a folder that another
 * process holds. Runs the binary at $QADAPT_BIN with an argv (no shell), output captured. */
#include <criterion/criterion.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "source_root.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/lock.h"

static char tmpdir[256], out_text[65536];

static void setup(void) { make_tmpdir(tmpdir, sizeof tmpdir, "cli-input"); }
static void teardown(void) { rm_rf_dir(tmpdir); }

/* Start qadapt with args (NULL-terminated); its stdout and stderr go to the returned fd. */
static pid_t start_qadapt(const char *const args[], int *out_fd) {
    const char *bin = getenv("QADAPT_BIN");
    cr_assert_not_null(bin, "QADAPT_BIN not set");
    const char *argv[32] = {bin};
    int n = 1;
    for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    *out_fd = fds[0];
    return pid;
}

/* Wait for a started qadapt; its output goes to out_text; returns its exit status (-1: signal). */
static int finish_qadapt(pid_t pid, int fd) {
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof out_text && (got = read(fd, out_text + n, sizeof out_text - 1 - n)) > 0) n += (size_t)got;
    out_text[n] = 0;
    close(fd);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int qadapt(const char *const args[]) {
    int fd;
    pid_t pid = start_qadapt(args, &fd);
    return finish_qadapt(pid, fd);
}

static void expect_text(const char *const needles[]) {
    for (int i = 0; needles[i]; i++)
        cr_expect(strstr(out_text, needles[i]) != NULL, "output lacks '%s':\n%s", needles[i], out_text);
}

static void path_in_tmp(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", tmpdir, name); }

/* patch = 0 was a SIGFPE with no message. */
Test(cli_input, checkpoint_with_patch_zero_exits_2, .init = setup, .fini = teardown) {
    const qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &cfg, 1, &err), QA_OK, "%s", err.msg);
    char ckpt[512];
    path_in_tmp(ckpt, sizeof ckpt, "dit.h5");
    qa_ckpt_meta meta = {"dit", "", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(ckpt, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    qa_dit_free(&m);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(ckpt, 1, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", "patch", 0, &err), QA_OK, "%s", err.msg);
    qa_h5_close(f, &err);
    cr_expect_eq(qadapt((const char *const[]){"basecheck", "--checkpoint", ckpt, "--samples", "1", NULL}), 2, "%s",
                 out_text);
    expect_text((const char *const[]){ckpt, "patch = 0", NULL});
}

Test(cli_input, checkpoint_upgrade_adds_checksums, .init = setup, .fini = teardown) {
    const char *root = test_source_root();
    cr_assert_not_null(root);
    char in[1024], out[512];
    snprintf(in, sizeof in, "%s/results/pretrained/evaluator.h5", root);
    path_in_tmp(out, sizeof out, "evaluator.h5");
    cr_expect_eq(qadapt((const char *const[]){"checkpoint-upgrade", in, out, NULL}), 0, "%s", out_text);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(out, 0, &f, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(qa_h5_checksummed(f, "/params/conv1.weight"), 1);
    qa_h5_close(f, &err);
    cr_expect_eq(qadapt((const char *const[]){"checkpoint-upgrade", "/nonexistent.h5", out, NULL}), 2);
    expect_text((const char *const[]){"/nonexistent.h5", NULL});
    cr_expect_eq(qadapt((const char *const[]){"checkpoint-upgrade", in, NULL}), 2);
    expect_text((const char *const[]){"usage: qadapt checkpoint-upgrade", NULL});
}

static void write_bytes(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Each value was silently misread; now exit 2 with file:line and the key. */
Test(cli_input, misread_recipe_values_exit_2_naming_file_line_and_key, .init = setup, .fini = teardown) {
    static const struct { const char *line, *key, *needle; } cases[] = {
        {"rank = 1e1", "rank", "integer"},        {"seed = 1e3", "seed", "integer"},
        {"rank = 0x10", "rank", "integer"},       {"seed = [0, 0]", "seed", "repeated"},
        {"vmc_alpha = [1.5, 1.50]", "vmc_alpha", "repeated"},
    };
    char recipe[512], location[600];
    path_in_tmp(recipe, sizeof recipe, "bad.recipe");
    snprintf(location, sizeof location, "%s:4:", recipe); /* every bad value sits on line 4 */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[job]\nkind = adapt\n[adapt]\n%s\n", cases[i].line);
        write_text_file(recipe, text);
        cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--dry-run", NULL}), 2, "%s: %s", cases[i].line, out_text);
        expect_text((const char *const[]){location, cases[i].key, cases[i].needle, NULL});
    }
    write_text_file(recipe, "[job]\nkind = adapt\n[train]\nlr = [1e-4, 3e-4]\n");
    cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--dry-run", NULL}), 2, "%s", out_text);
    expect_text((const char *const[]){location, "lr", "single value", NULL});
    static const char with_nul[] = "[job]\nkind = adapt\n[adapt]\nseed = 0\0rank = 1e1\n";
    write_bytes(recipe, with_nul, sizeof with_nul - 1);
    cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--dry-run", NULL}), 2, "%s", out_text);
    expect_text((const char *const[]){location, "NUL", NULL});
}

/* A sweep that gets past the folder lock stops at once at its missing checkpoint (exit 2). */
static void write_lock_recipe(char *recipe, size_t len) {
    path_in_tmp(recipe, len, "lock.recipe");
    write_text_file(recipe, "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = /nonexistent/dit.h5\n");
}

/* A second sweep on a folder truncated the first one's files; now it is refused, naming the
 * lock file and the holder's PID (here this test process holds it). */
Test(cli_input, second_sweep_on_a_held_folder_exits_2_naming_the_holder, .init = setup, .fini = teardown) {
    char recipe[512], out[512], lock_path[600], holder[64];
    write_lock_recipe(recipe, sizeof recipe);
    path_in_tmp(out, sizeof out, "runs");
    snprintf(lock_path, sizeof lock_path, "%s/.lock", out);
    snprintf(holder, sizeof holder, "PID %ld", (long)getpid());
    qa_lock *lock;
    qa_error err = {0, ""};
    cr_assert_eq(qa_lock_acquire(out, 0, &lock, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--out", out, NULL}), 2, "%s", out_text);
    expect_text((const char *const[]){lock_path, holder, "--wait", NULL});
    cr_expect(strstr(out_text, "checkpoint") == NULL, "it went past the lock: %s", out_text);
    qa_lock_release(lock);
    /* free again: the same command gets past the lock */
    cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--out", out, NULL}), 2, "%s", out_text);
    expect_text((const char *const[]){"/nonexistent/dit.h5", NULL});
}

Test(cli_input, wait_queues_behind_the_holder, .init = setup, .fini = teardown) {
    char recipe[512], out[512];
    write_lock_recipe(recipe, sizeof recipe);
    path_in_tmp(out, sizeof out, "runs");
    qa_lock *lock;
    qa_error err = {0, ""};
    cr_assert_eq(qa_lock_acquire(out, 0, &lock, &err), QA_OK, "%s", err.msg);
    int fd;
    pid_t pid = start_qadapt((const char *const[]){"run", recipe, "--out", out, "--wait", NULL}, &fd);
    nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
    int st;
    cr_expect_eq(waitpid(pid, &st, WNOHANG), 0, "qadapt --wait did not wait for the held folder");
    qa_lock_release(lock);
    cr_expect_eq(finish_qadapt(pid, fd), 2, "%s", out_text);
    expect_text((const char *const[]){"waiting for", "/.lock", "/nonexistent/dit.h5", NULL});
}

/* A small train_limit read out of bounds (subject task), aborted in GSL or looped for ever
 * (style task); now exit 2 naming the task, the class and the train_limit. */
Test(cli_input, small_train_limit_exits_2_naming_task_class_and_limit, .init = setup, .fini = teardown) {
    const qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_dit m;
    qa_error err = {0, ""};
    char ckpt[512], eval[512], recipe[512], out[512], text[2048];
    cr_assert_eq(qa_dit_create(&m, &cfg, 4, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    path_in_tmp(ckpt, sizeof ckpt, "dit.h5");
    qa_ckpt_meta meta = {"dit", "", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(ckpt, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    qa_dit_free(&m);
    qa_classifier clf;
    cr_assert_eq(qa_clf_create(&clf, 8, &err), QA_OK, "%s", err.msg);
    qa_clf_init_weights(&clf, 2);
    path_in_tmp(eval, sizeof eval, "evaluator.h5");
    cr_assert_eq(qa_clf_save(eval, &clf, 0.5, "test", 0, 0, &err), QA_OK, "%s", err.msg);
    qa_clf_free(&clf);
    path_in_tmp(recipe, sizeof recipe, "limit.recipe");
    path_in_tmp(out, sizeof out, "runs");
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\ntrain_limit = 2\n[model]\ncheckpoint = %s\nevaluator = %s\n"
             "[adapt]\nmethod = lora\nbits = fp\nrank = 2\nseed = 0\nimages = 3\nprior_images = 2\n"
             "[train]\nsteps = 2\nbatch = 4\n[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\n",
             ckpt, eval);
    write_text_file(recipe, text);
    cr_expect_eq(qadapt((const char *const[]){"run", recipe, "--out", out, NULL}), 2, "%s", out_text);
    expect_text((const char *const[]){recipe, "subject task of seed 0 needs 3 images", "train_limit = 2", NULL});
}
