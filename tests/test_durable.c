/* A file marked finished by a rename must be on disk first, and the rename itself too: this
 * suite defines fsync and rename itself (the program's calls resolve to these, which log each
 * call and pass it on to the kernel), then checks their order for a checkpoint, a sweep's run
 * file, and the folder at the end of a sweep; and that a failed sync is an error naming the file
 * and the reason. */
#define _GNU_SOURCE /* syscall */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common.h"
#include "harness/adapt.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/lock.h"
#include "harness/results.h"

enum { MAX_EVENTS = 1024 };
static char events[MAX_EVENTS][4200]; /* "fsync PATH" or "rename FROM -> TO" */
static int n_events;
static char fail_fsync_of[700]; /* a path whose fsync reports ENOSPC ("" = none) */

int fsync(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
    if (n_events < MAX_EVENTS) snprintf(events[n_events++], sizeof events[0], "fsync %s", path);
    if (fail_fsync_of[0] && strcmp(path, fail_fsync_of) == 0) { errno = ENOSPC; return -1; }
    return (int)syscall(SYS_fsync, fd);
}

int rename(const char *from, const char *to) {
    if (n_events < MAX_EVENTS) snprintf(events[n_events++], sizeof events[0], "rename %s -> %s", from, to);
    return renameat(AT_FDCWD, from, AT_FDCWD, to);
}

/* Index of the first event at or after `from` equal to `want`, or -1. */
static int find_event(int from, const char *want) {
    for (int i = from; i < n_events; i++)
        if (strcmp(events[i], want) == 0) return i;
    return -1;
}

static void dump_events(void) {
    for (int i = 0; i < n_events; i++) cr_log_info("%d: %s", i, events[i]);
}

static char dir[256];
static void setup(void) {
    make_tmpdir(dir, sizeof dir, "durable");
    n_events = 0;
    fail_fsync_of[0] = 0;
}
static void teardown(void) { rm_rf_dir(dir); }

static void save_tiny_checkpoint(const char *path) {
    const qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &cfg, 4, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(path, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    qa_dit_free(&m);
}

/* checks: fsync(file.partial) < rename(file.partial -> file) < fsync(folder) */
static void expect_durable_rename(const char *final_path, const char *folder) {
    char partial[700], want[1600];
    snprintf(partial, sizeof partial, "%s.partial", final_path);
    snprintf(want, sizeof want, "fsync %s", partial);
    int synced = find_event(0, want);
    snprintf(want, sizeof want, "rename %s -> %s", partial, final_path);
    int renamed = find_event(synced < 0 ? 0 : synced, want);
    snprintf(want, sizeof want, "fsync %s", folder);
    int folder_synced = find_event(renamed < 0 ? 0 : renamed, want);
    if (synced < 0 || renamed < 0 || folder_synced < 0) dump_events();
    cr_expect(synced >= 0, "%s was not synced before its rename", partial);
    cr_expect(renamed >= 0, "no rename of %s after its sync", partial);
    cr_expect(folder_synced >= 0, "%s was not synced after the rename", folder);
}

Test(durable, checkpoint_is_synced_before_and_after_its_rename, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/dit.h5", dir);
    save_tiny_checkpoint(path);
    expect_durable_rename(path, dir);
}

Test(durable, a_sweeps_run_file_is_synced_before_its_rename, .init = setup, .fini = teardown, .timeout = 120) {
    char ckpt[512], evaluator[512], out[512];
    snprintf(ckpt, sizeof ckpt, "%s/dit.h5", dir);
    snprintf(evaluator, sizeof evaluator, "%s/evaluator.h5", dir);
    snprintf(out, sizeof out, "%s/runs", dir);
    save_tiny_checkpoint(ckpt);
    qa_classifier clf;
    qa_error err = {0, ""};
    qa_clf_create(&clf, 8, &err);
    qa_clf_init_weights(&clf, 2);
    cr_assert_eq(qa_clf_save(evaluator, &clf, 0.5, "test", 0, 0, &err), QA_OK, "%s", err.msg);
    qa_clf_free(&clf);
    char text[2048];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s\nevaluator = %s\n"
             "[adapt]\nmethod = lora\nbits = fp\nrank = 2\nseed = 0\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 2\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 0\n",
             ckpt, evaluator);
    qa_recipe *r;
    cr_assert_eq(qa_recipe_parse("tiny.recipe", text, &r, &err), QA_OK, "%s", err.msg);
    n_events = 0;
    cr_assert_eq(qa_adapt_sweep(r, out, &err), QA_OK, "%s", err.msg);
    qa_recipe_free(r);
    char run_path[700];
    snprintf(run_path, sizeof run_path, "%s/lora-fp-r2-s0.h5", out);
    expect_durable_rename(run_path, out);
}

/* ENOSPC from fsync (a full disk) was invisible: the close "succeeded". */
Test(durable, a_failed_sync_names_the_file_and_the_reason, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/dit.h5", dir);
    snprintf(fail_fsync_of, sizeof fail_fsync_of, "%s.partial", path);
    const qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &cfg, 1, &err), QA_OK, "%s", err.msg);
    qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
    int rc = qa_dit_save(path, &m, NULL, &meta, &err);
    qa_dit_free(&m);
    cr_expect_eq(rc, QA_ERR_RUN);
    cr_expect(strstr(err.msg, fail_fsync_of) && strstr(err.msg, strerror(ENOSPC)), "%s", err.msg);
    cr_expect(!qa_file_exists(path), "a checkpoint that did not reach the disk is not renamed finished");
    cr_expect(!qa_file_exists(fail_fsync_of), "the partial file is removed");
}

Test(durable, releasing_the_folder_lock_syncs_the_folder, .init = setup, .fini = teardown) {
    qa_lock *lock;
    qa_error err = {0, ""};
    cr_assert_eq(qa_lock_acquire(dir, 0, &lock, &err), QA_OK, "%s", err.msg);
    n_events = 0;
    qa_lock_release(lock);
    char want[300];
    snprintf(want, sizeof want, "fsync %s", dir);
    cr_expect(find_event(0, want) >= 0, "the folder was not synced");
}

/* The file's name was kept in 1024 bytes: a longer path was cut, and the sync after closing
 * then opened the cut name. Six 200-character folders make a 1,200-character path. */
Test(durable, a_file_with_a_long_path_closes_and_syncs, .init = setup, .fini = teardown) {
    char path[2048], part[201];
    memset(part, 'd', 200);
    part[200] = 0;
    size_t n = (size_t)snprintf(path, sizeof path, "%s", dir);
    for (int i = 0; i < 6; i++) {
        n += (size_t)snprintf(path + n, sizeof path - n, "/%s", part);
        cr_assert_eq(mkdir(path, 0755), 0, "mkdir: %s", strerror(errno));
    }
    snprintf(path + n, sizeof path - n, "/run.h5");
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(path, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_str_eq(qa_h5_path(f), path);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", "x", 1.0, &err), QA_OK, "%s", err.msg);
    n_events = 0;
    cr_expect_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
    char want[2100];
    snprintf(want, sizeof want, "fsync %s", path);
    cr_expect(find_event(0, want) >= 0, "the file was not synced under its full name");
}
