/* Sharded and MPI sweeps through the qadapt command (QADAPT_BIN): `run --shard` (the plan, and
 * real sweeps of two concurrent shards against one process), the shard environment, the folder
 * lock of shards, the MPI driver, gradient sum and a sweep under `mpirun -np 2` (MPIRUN; the test
 * binary itself never initialises MPI; QADAPT_HAS_MPI says whether the build has MPI), and
 * scripts/slurm-sweep.sbatch with a stand-in sbatch (no Slurm daemon needed). The run files are
 * compared with the runs reader (the library, which never touches MPI). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "harness/checkpoint.h"
#include "harness/lock.h"
#include "harness/runs.h"

static char out_buf[65536];

/* Run `ENV QADAPT ARGS` through the shell; capture stdout+stderr; return the exit status. */
static int run_env(const char *env, const char *args) {
    const char *bin = getenv("QADAPT_BIN");
    cr_assert_not_null(bin, "QADAPT_BIN not set");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env %s %s %s 2>&1", env, bin, args);
    return capture_command(cmd, out_buf, sizeof out_buf);
}

static const char *recipe(void) { return QA_TEST_SOURCE_ROOT "/experiments/quickstart.recipe"; }

static int count_lines_starting(const char *prefix) {
    int n = 0;
    for (const char *line = out_buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, prefix, strlen(prefix))) n++;
    return n;
}

Test(shard_cli, dry_run_lists_each_shards_runs_once) {
    char args[1024];
    snprintf(args, sizeof args, "run %s --dry-run", recipe());
    cr_assert_eq(run_env("", args), 0, "%s", out_buf);
    int total = count_lines_starting("  ");
    cr_assert_gt(total, 3, "%s", out_buf);
    static char all[sizeof out_buf];
    memcpy(all, out_buf, sizeof all);
    int listed = 0;
    for (int r = 0; r < 3; r++) {
        snprintf(args, sizeof args, "run %s --dry-run --shard %d/3", recipe(), r);
        cr_assert_eq(run_env("", args), 0, "%s", out_buf);
        char head[64];
        snprintf(head, sizeof head, "in shard %d/3 (--shard)", r);
        cr_expect(strstr(out_buf, head) != NULL, "%s", out_buf);
        listed += count_lines_starting("  ");
        /* every run this shard lists is a run of the whole plan */
        for (char *line = strstr(out_buf, "\n  "); line; line = strstr(line + 1, "\n  ")) {
            char id[128];
            cr_assert_eq(sscanf(line + 3, "%127s", id), 1);
            cr_expect(strstr(all, id) != NULL, "shard %d lists %s, not in the plan", r, id);
        }
    }
    cr_expect_eq(listed, total, "3 shards list %d runs, the plan has %d", listed, total);
}

Test(shard_cli, bad_shard_exits_2_with_usage) {
    const char *bad[] = {"2/2", "0/0", "x/3", "1", "-1/2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, "run %s --dry-run --shard %s", recipe(), bad[i]);
        cr_expect_eq(run_env("", args), 2, "--shard %s: %s", bad[i], out_buf);
        cr_expect(strstr(out_buf, "--shard r/n") && strstr(out_buf, "usage: qadapt run"), "--shard %s: %s", bad[i], out_buf);
    }
}

Test(shard_cli, environment_shard_and_its_disagreement) {
    char args[1024];
    snprintf(args, sizeof args, "run %s --dry-run", recipe());
    cr_assert_eq(run_env("SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2", args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "in shard 1/2 (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)") != NULL, "%s", out_buf);
    snprintf(args, sizeof args, "run %s --dry-run --shard 0/2", recipe());
    cr_expect_eq(run_env("SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2", args), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "disagrees with the environment") != NULL, "%s", out_buf);
}

/* ---- real sweeps of a tiny synthetic recipe: a checkpoint and an evaluator made by the command ---- */

static char sweep_dir[128];

static int run_in(const char *env, const char *fmt, const char *arg) {
    char args[1024];
    snprintf(args, sizeof args, fmt, sweep_dir, sweep_dir, arg);
    return run_env(env, args);
}

/* sweep_dir/{dit,ev}.h5 from tiny synthetic recipes, and the 8-run adapt recipe sweep_dir/ad.recipe. */
static void make_tiny_sweep(void) {
    make_tmpdir(sweep_dir, sizeof sweep_dir, "sweep");
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/pre.recipe", sweep_dir);
    write_text_file(path, "[job]\nkind = pretrain\n[data]\nsynthetic = 1\n[model]\ndim = 16\ndepth = 1\nheads = 2\n"
                          "patch = 7\nmlp_ratio = 2\n[train]\nsteps = 10\nbatch = 8\nlr = 1e-3\nlog_every = 5\n");
    snprintf(path, sizeof path, "%s/ev.recipe", sweep_dir);
    write_text_file(path, "[job]\nkind = evaluator\n[data]\nsynthetic = 1\n[train]\nsteps = 2\nbatch = 8\nlog_every = 1\n");
    snprintf(path, sizeof path, "%s/ad.recipe", sweep_dir);
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/ev.h5\n"
             "[adapt]\nmethod = [lora, qlora]\nbits = [fp, w8a8]\nrank = 2\nseed = [0, 1]\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 3\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 0\n",
             sweep_dir, sweep_dir);
    write_text_file(path, text);
    cr_assert_eq(run_in("", "run %s/pre.recipe --out %s/dit.h5%s", ""), 0, "%s", out_buf);
    cr_assert_eq(run_in("", "run %s/ev.recipe --out %s/ev.h5%s", ""), 0, "%s", out_buf);
}

static void remove_tiny_sweep(void) { rm_rf_dir(sweep_dir); }

/* The run files of folders a and b carry the same runs and the same numbers: every evaluated
 * metric, the held-out loss per image, and the training curve's step, loss, lr and gradient norm,
 * bit for bit (timings, creation time, host and kernel lists aside). */
static void expect_same_runs(const char *a, const char *b) {
    qa_run_record *ra, *rb;
    int na, nb;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(a, &ra, &na, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_runs_load(b, &rb, &nb, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(na, nb, "%s has %d runs, %s %d", a, na, b, nb);
    for (int i = 0; i < na; i++) {
        const qa_run_record *x = &ra[i], *y = &rb[i];
        cr_assert_str_eq(x->id, y->id);
        cr_expect_str_eq(x->status, y->status, "%s", x->id);
        cr_assert_eq(x->n_eval, y->n_eval, "%s", x->id);
        cr_assert_eq(x->n_train, y->n_train, "%s", x->id);
        for (int s = 0; s < x->n_train; s++)
            for (int c = 0; c < 4; c++) /* column 4 is the wall time */
                cr_expect_eq(x->train[s * 5 + c], y->train[s * 5 + c], "%s: train row %d column %d", x->id, s, c);
        for (int v = 0; v < x->n_eval; v++) {
            const qa_run_eval *ex = &x->eval[v], *ey = &y->eval[v];
            cr_expect_str_eq(ex->variant, ey->variant);
            cr_expect_eq(ex->heldout_loss, ey->heldout_loss, "%s %s", x->id, ex->variant);
            cr_expect_eq(ex->subject_fidelity, ey->subject_fidelity, "%s %s", x->id, ex->variant);
            cr_expect_eq(ex->prompt_fidelity, ey->prompt_fidelity, "%s %s", x->id, ex->variant);
            cr_expect_eq(ex->diversity, ey->diversity, "%s %s", x->id, ex->variant);
            cr_expect_eq(ex->style_score, ey->style_score, "%s %s", x->id, ex->variant);
            cr_expect_eq(ex->bits_per_weight, ey->bits_per_weight, "%s %s", x->id, ex->variant);
            cr_assert_eq(ex->n_images, ey->n_images);
            for (int k = 0; k < ex->n_images; k++)
                cr_expect_eq(ex->heldout_per_image[k], ey->heldout_per_image[k], "%s %s image %d", x->id, ex->variant, k);
        }
    }
    qa_runs_free(ra, na);
    qa_runs_free(rb, nb);
}

TestSuite(shard_sweep, .init = make_tiny_sweep, .fini = remove_tiny_sweep);

Test(shard_sweep, two_concurrent_shards_write_the_files_and_numbers_of_one_process, .timeout = 120) {
    cr_assert_eq(run_in("", "run %s/ad.recipe --out %s/one%s", ""), 0, "%s", out_buf);
    /* both shards at once, into one folder: each runs its half; the lock lets both in */
    char cmd[4096];
    const char *bin = getenv("QADAPT_BIN");
    snprintf(cmd, sizeof cmd,
             "cd %s || exit 9; (%s run ad.recipe --out two --shard 0/2 > s0.log 2>&1; echo \"rc $?\" >> s0.log) & "
             "(%s run ad.recipe --out two --shard 1/2 > s1.log 2>&1; echo \"rc $?\" >> s1.log) & wait; "
             "cat s0.log s1.log", sweep_dir, bin, bin);
    capture_command(cmd, out_buf, sizeof out_buf);
    cr_expect(strstr(out_buf, "8 runs (0 tuning), 4 in shard 0/2 (--shard), 0 finished already, 4 to do") &&
              strstr(out_buf, "8 runs (0 tuning), 4 in shard 1/2 (--shard), 0 finished already, 4 to do"), "%s", out_buf);
    cr_expect_eq(count_lines_starting("rc 0"), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "sweep shard 1/2 4/4") != NULL, "the progress line names the shard:\n%s", out_buf);
    char one[256], two[256];
    snprintf(one, sizeof one, "%s/one", sweep_dir);
    snprintf(two, sizeof two, "%s/two", sweep_dir);
    expect_same_runs(one, two);
    /* the folder reads as one sweep: a rerun of either shard finds its runs finished */
    cr_expect_eq(run_in("", "run %s/ad.recipe --out %s/two --shard %s", "1/2"), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "4 finished already, 0 to do") != NULL, "%s", out_buf);
    char args[600];
    snprintf(args, sizeof args, "report %s", two);
    cr_expect_eq(run_env("", args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "qlora") != NULL, "%s", out_buf);
}

Test(shard_sweep, the_same_shard_twice_is_refused_another_shard_is_let_in, .timeout = 120) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/locked", sweep_dir);
    qa_lock *lock;
    qa_error err = {0, ""};
    /* this test process holds shard 0/2 of the folder, as a running `run --shard 0/2` would */
    cr_assert_eq(qa_lock_acquire_shard(dir, 0, 2, 0, &lock, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(run_in("", "run %s/ad.recipe --out %s/locked --shard %s", "0/2"), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, ".lock.0-of-2 is held by") && strstr(out_buf, "(shard 0/2)"), "%s", out_buf);
    cr_expect_eq(run_in("", "run %s/ad.recipe --out %s/locked%s", ""), 2, "a whole-plan sweep waits for no shard: %s",
                 out_buf);
    cr_expect(strstr(out_buf, "/.lock is held by") != NULL, "%s", out_buf);
    cr_expect_eq(run_in("", "run %s/ad.recipe --out %s/locked --shard %s", "1/2"), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "4 in shard 1/2") != NULL, "%s", out_buf);
    qa_lock_release(lock);
    /* and the other way round: a whole-plan sweep keeps every shard out */
    cr_assert_eq(qa_lock_acquire(dir, 0, &lock, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(run_in("", "run %s/ad.recipe --out %s/locked --shard %s", "0/2"), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "/.lock is held by") != NULL, "%s", out_buf);
    qa_lock_release(lock);
}

/* ---- [train] dtype = bf16 through the command ---- */

/* sweep_dir/<name>.recipe: the tiny recipe's LoRA and QLoRA at w4a8, one seed, 30 steps at lr 1e-2. */
static void write_lora_recipe(const char *name, const char *dtype) {
    char path[256], text[2048];
    snprintf(path, sizeof path, "%s/%s.recipe", sweep_dir, name);
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/ev.h5\n"
             "[adapt]\nmethod = [lora, qlora]\nbits = w4a8\nrank = 2\nseed = 0\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 30\nbatch = 4\nlr = 1e-2\ndtype = %s\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\nprior_samples = 0\n",
             sweep_dir, sweep_dir, dtype);
    write_text_file(path, text);
}

TestSuite(bf16_sweep, .init = make_tiny_sweep, .fini = remove_tiny_sweep);

/* bf16 operands round to 8 significant bits, so the runs are not the f32 runs; on this tiny
 * recipe the held-out loss of every deploy lands within 2e-5 of the f32 run's (measured); the
 * test allows 0.5% of the loss. The run files and the report say which dtype trained. */
Test(bf16_sweep, a_bf16_lora_run_reaches_the_f32_held_out_loss, .timeout = 150) {
    write_lora_recipe("f32", "f32");
    write_lora_recipe("bf16", "bf16");
    cr_assert_eq(run_in("", "run %s/f32.recipe --out %s/f32%s", ""), 0, "%s", out_buf);
    cr_assert_eq(run_in("", "run %s/bf16.recipe --out %s/bf16%s", ""), 0, "%s", out_buf);
    char a_dir[256], b_dir[256];
    snprintf(a_dir, sizeof a_dir, "%s/f32", sweep_dir);
    snprintf(b_dir, sizeof b_dir, "%s/bf16", sweep_dir);
    qa_run_record *ra, *rb;
    int na, nb;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(a_dir, &ra, &na, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_runs_load(b_dir, &rb, &nb, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(na, 2);
    cr_assert_eq(nb, 2);
    for (int i = 0; i < na; i++) {
        cr_expect_str_eq(ra[i].dtype, "f32");
        cr_expect_str_eq(rb[i].dtype, "bf16");
        int curve_differs = 0;
        for (int s = 0; s < ra[i].n_train; s++) curve_differs |= ra[i].train[s * 5 + 1] != rb[i].train[s * 5 + 1];
        cr_expect(curve_differs, "%s: the bf16 run's loss curve is the f32 one bit for bit: bf16 was not used", ra[i].id);
        cr_assert_eq(ra[i].n_eval, rb[i].n_eval);
        for (int v = 0; v < ra[i].n_eval; v++) {
            double f = ra[i].eval[v].heldout_loss, b = rb[i].eval[v].heldout_loss;
            cr_expect(fabs(f - b) <= 0.005 * f, "%s %s: held-out loss f32 %.6f, bf16 %.6f", ra[i].id, ra[i].eval[v].variant,
                      f, b);
        }
    }
    qa_runs_free(ra, na);
    qa_runs_free(rb, nb);
    char args[600];
    snprintf(args, sizeof args, "report %s", b_dir);
    cr_expect_eq(run_env("", args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "Training dtype: bf16 matmuls") != NULL, "%s", out_buf);
}

/* ---- MPI ---- */

static const char *mpirun_or_skip(void) {
    const char *mpirun = getenv("MPIRUN");
    int has_mpi = getenv("QADAPT_HAS_MPI") && !strcmp(getenv("QADAPT_HAS_MPI"), "1");
    int has_mpirun = mpirun && *mpirun;
    if (!has_mpi && !has_mpirun)
        cr_skip_test("no mpirun and a build without MPI: scripts/install-deps.sh installs openmpi-bin and "
                     "libopenmpi-dev, then `meson setup --reconfigure` finds them");
    cr_assert(has_mpirun, "this build has MPI but mpirun was not found: install openmpi-bin");
    cr_assert(has_mpi, "mpirun is installed but this build has no MPI: install libopenmpi-dev and reconfigure");
    return mpirun;
}

/* `mpirun -np 2 qadapt ARGS` as root on two cores. An ASan build must not report the MPI
 * library's own allocations at exit as our leaks: its components stay loaded (no dlclose), so
 * their frames have names the suppressions in tests/mpi.supp match. */
static int mpirun2(const char *args) {
    const char *mpirun = mpirun_or_skip();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
             "OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mca_base_component_disable_dlclose=1 "
             "LSAN_OPTIONS=suppressions=%s/tests/mpi.supp:fast_unwind_on_malloc=0 "
             "%s --oversubscribe -np 2 %s %s 2>&1", QA_TEST_SOURCE_ROOT, mpirun, getenv("QADAPT_BIN"), args);
    return capture_command(cmd, out_buf, sizeof out_buf);
}

/* "run i: rank r STATUS" lines: each index exactly once; per-rank counts returned. */
static void expect_every_run_once(int n_runs, int *ran_by_rank, int *failed) {
    *failed = 0;
    ran_by_rank[0] = ran_by_rank[1] = 0;
    for (int i = 0; i < n_runs; i++) {
        char key[32];
        snprintf(key, sizeof key, "run %d: rank ", i);
        const char *at = strstr(out_buf, key);
        cr_assert_not_null(at, "run %d missing:\n%s", i, out_buf);
        cr_expect_null(strstr(at + 1, key), "run %d listed twice:\n%s", i, out_buf);
        int rank = -1;
        char status[16] = "";
        cr_assert_eq(sscanf(at + strlen(key), "%d %15s", &rank, status), 2);
        cr_assert(rank == 0 || rank == 1, "run %d on rank %d", i, rank);
        ran_by_rank[rank]++;
        if (!strcmp(status, "FAILED")) (*failed)++;
        else cr_expect_str_eq(status, "ok", "run %d", i);
    }
}

Test(mpi, two_ranks_share_the_plan_and_sum_gradients, .timeout = 60) {
    int rc = mpirun2("mpi-selftest 8");
    cr_assert_eq(rc, 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "8 runs over 2 ranks (MPI: Open MPI") != NULL, "%s", out_buf);
    int per_rank[2], failed;
    expect_every_run_once(8, per_rank, &failed);
    cr_expect_eq(failed, 0);
    /* dynamic sharing: the runs sleep 20-60 ms, so both ranks get some */
    cr_expect(per_rank[0] > 0 && per_rank[1] > 0, "rank 0 ran %d, rank 1 ran %d", per_rank[0], per_rank[1]);
    cr_expect(strstr(out_buf, "gradient sum: 1000003 floats over 2 ranks: exact") != NULL, "%s", out_buf);
    /* data parallel: two half batches, summed, against the whole batch within reduction-order rounding */
    const char *dp = strstr(out_buf, "data-parallel gradient: 2 ranks' slices of a batch of 8");
    cr_assert_not_null(dp, "%s", out_buf);
    double difference = 1;
    cr_assert_eq(sscanf(strstr(dp, "largest difference"), "largest difference %lf", &difference), 1, "%s", dp);
    cr_expect(difference < 1e-5, "relative difference %g", difference);
}

Test(mpi, a_failed_run_is_named_the_others_finish_and_the_status_says_so, .timeout = 60) {
    int rc = mpirun2("mpi-selftest 6 --fail 3");
    cr_expect_eq(rc, 1, "%s", out_buf);
    int per_rank[2], failed;
    expect_every_run_once(6, per_rank, &failed);
    cr_expect_eq(failed, 1, "%s", out_buf);
    cr_expect(strstr(out_buf, "1 of 6 runs failed: run 3 (rank ") && strstr(out_buf, "selftest run 3 fails on purpose"),
              "%s", out_buf);
}

TestSuite(mpi_sweep, .init = make_tiny_sweep, .fini = remove_tiny_sweep);

Test(mpi_sweep, two_ranks_write_the_files_and_numbers_of_one_process, .timeout = 150) {
    mpirun_or_skip();
    cr_assert_eq(run_in("", "run %s/ad.recipe --out %s/one%s", ""), 0, "%s", out_buf);
    char args[1024];
    snprintf(args, sizeof args, "run %s/ad.recipe --out %s/mpi", sweep_dir, sweep_dir);
    cr_assert_eq(mpirun2(args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "8 runs (0 tuning), 0 finished already, 8 to do over the ranks") != NULL, "%s", out_buf);
    cr_expect(strstr(out_buf, "sweep rank 0/2") && strstr(out_buf, "overall ETA"), "%s", out_buf);
    char one[256], mpi[256];
    snprintf(one, sizeof one, "%s/one", sweep_dir);
    snprintf(mpi, sizeof mpi, "%s/mpi", sweep_dir);
    expect_same_runs(one, mpi);

    /* a resumed sweep: every rank counts only what is left (3 of 8 runs) in its progress line */
    int removed = 0;
    DIR *dir = opendir(mpi);
    cr_assert_not_null(dir);
    for (struct dirent *e; (e = readdir(dir)) && removed < 3;) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5")) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", mpi, e->d_name);
        cr_assert_eq(unlink(path), 0, "%s", path);
        removed++;
    }
    closedir(dir);
    cr_assert_eq(removed, 3);
    cr_assert_eq(mpirun2(args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "5 finished already, 3 to do over the ranks") != NULL, "%s", out_buf);
    cr_expect(strstr(out_buf, "sweep rank 1/2") != NULL, "%s", out_buf);
    for (const char *at = strstr(out_buf, "sweep rank "); at; at = strstr(at + 1, "sweep rank "))
        cr_expect(strstr(at, "/3 overall") && strstr(at, "/3 overall") < strchr(at, ']'), "%.120s", at);
    expect_same_runs(one, mpi);
}

/* The loss column of the "pretrain ... N/M  loss X" log lines, in order, into loss[]; their count. */
static int logged_losses(double *loss, int cap) {
    int n = 0;
    for (const char *at = strstr(out_buf, "  loss "); at && n < cap; at = strstr(at + 1, "  loss "))
        if (sscanf(at, "  loss %lf", &loss[n]) == 1) n++;
    return n;
}

/* Data-parallel pre-training: 2 ranks, each half of every batch of 8, one gradient sum per step,
 * against one process. The same batches, so the same loss curve and weights up to reduction
 * order: measured here, the weights after 10 AdamW steps differ by < 1e-7 and the final loss
 * by ~1e-9; the test allows 1e-5 (absolute, weights of order 0.1-1) and the log's 4 decimals. */
Test(mpi_sweep, two_ranks_pretrain_the_one_process_loss_curve_and_weights, .timeout = 120) {
    mpirun_or_skip();
    double one[8], two[8];
    cr_assert_eq(run_in("", "run %s/pre.recipe --out %s/p1.h5%s", ""), 0, "%s", out_buf);
    int n_one = logged_losses(one, 8);
    char args[1024];
    snprintf(args, sizeof args, "run %s/pre.recipe --out %s/p2.h5", sweep_dir, sweep_dir);
    cr_assert_eq(mpirun2(args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "pretrain over 2 ranks 10/10") != NULL, "%s", out_buf);
    int n_two = logged_losses(two, 8);
    cr_assert_eq(n_one, 2, "%s", out_buf);
    cr_assert_eq(n_two, n_one, "rank 0 alone logs:\n%s", out_buf);
    for (int i = 0; i < n_one; i++) cr_expect(fabs(one[i] - two[i]) <= 1e-4, "log line %d: %g vs %g", i, one[i], two[i]);
    qa_dit a, b;
    qa_error err = {0, ""};
    char path[512];
    snprintf(path, sizeof path, "%s/p1.h5", sweep_dir);
    cr_assert_eq(qa_dit_load(path, &a, 8, &err), QA_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/p2.h5", sweep_dir);
    cr_assert_eq(qa_dit_load(path, &b, 8, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(a.n_params, b.n_params);
    double worst = 0, changed = 0;
    for (size_t i = 0; i < a.n_params; i++) worst = fmax(worst, fabs((double)a.params[i] - b.params[i]));
    snprintf(path, sizeof path, "%s/dit.h5", sweep_dir); /* the fixture's: the same recipe, one process */
    qa_dit c;
    cr_assert_eq(qa_dit_load(path, &c, 8, &err), QA_OK, "%s", err.msg);
    for (size_t i = 0; i < a.n_params; i++) changed = fmax(changed, fabs((double)a.params[i] - c.params[i]));
    cr_expect(worst <= 1e-5, "largest weight difference %g", worst);
    cr_expect_eq(changed, 0.0, "one process is deterministic");
    qa_dit_free(&a);
    qa_dit_free(&b);
    qa_dit_free(&c);
}

Test(mpi_sweep, a_failed_run_is_named_the_others_finish_and_the_status_says_so, .timeout = 150) {
    mpirun_or_skip();
    /* a folder where one run's partial file cannot be created */
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/bad/lora-w8a8-r2-s0.h5.partial", sweep_dir);
    char mk[600];
    snprintf(mk, sizeof mk, "mkdir -p %s", path);
    cr_assert_eq(system(mk), 0);
    snprintf(args, sizeof args, "run %s/ad.recipe --out %s/bad", sweep_dir, sweep_dir);
    cr_expect_eq(mpirun2(args), 1, "%s", out_buf);
    cr_expect(strstr(out_buf, "1 of 8 runs failed") && strstr(out_buf, "lora-w8a8-r2-s0") && strstr(out_buf, "on rank "),
              "%s", out_buf);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    snprintf(path, sizeof path, "%s/bad", sweep_dir);
    cr_assert_eq(qa_runs_load(path, &runs, &n, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(n, 7, "the other runs finished:\n%s", out_buf);
    qa_runs_free(runs, n);
}

/* Rank 0 loads what the runs share before any rank starts: a missing checkpoint is bad input,
 * said once, and no rank runs anything. */
Test(mpi, a_sweep_without_its_checkpoint_is_bad_input_on_every_rank, .timeout = 60) {
    mpirun_or_skip();
    char dir[128], path[256], args[600];
    make_tmpdir(dir, sizeof dir, "mpi-nockpt");
    snprintf(path, sizeof path, "%s/x.recipe", dir);
    write_text_file(path, "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = /nonexistent/dit.h5\n");
    snprintf(args, sizeof args, "run %s --out %s/out", path, dir);
    cr_expect_eq(mpirun2(args), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "/nonexistent/dit.h5") && strstr(out_buf, "pretrain.recipe"), "%s", out_buf);
    cr_expect(strstr(out_buf, "failed") == NULL, "no run was tried:\n%s", out_buf);
    rm_rf_dir(dir);
}

Test(mpi, without_a_launcher_the_selftest_runs_in_one_process) {
    cr_assert_eq(run_env("", "mpi-selftest 3"), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "3 runs over 1 rank") && strstr(out_buf, "rank 0 ran 3"), "%s", out_buf);
    cr_expect_eq(run_env("", "mpi-selftest 0"), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "usage: qadapt mpi-selftest") != NULL, "%s", out_buf);
}

/* ---- scripts/slurm-sweep.sbatch, with a stand-in sbatch that logs its arguments ---- */

static char slurm_dir[128];

static void make_fake_sbatch(void) {
    make_tmpdir(slurm_dir, sizeof slurm_dir, "slurm");
    char path[256], text[512];
    snprintf(path, sizeof path, "%s/sbatch", slurm_dir);
    snprintf(text, sizeof text,
             "#!/bin/sh\n# stand-in: log the arguments, answer a job id as --parsable does\n"
             "echo \"$*\" >> %s/sbatch.log\nn=$(wc -l < %s/sbatch.log)\necho $((1000 + n))\n",
             slurm_dir, slurm_dir);
    write_text_file(path, text);
    cr_assert_eq(chmod(path, 0755), 0);
}

static void remove_fake_sbatch(void) { rm_rf_dir(slurm_dir); }

TestSuite(slurm, .init = make_fake_sbatch, .fini = remove_fake_sbatch);

static int run_script(const char *env, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env PATH=%s:$PATH QADAPT=%s %s %s/scripts/slurm-sweep.sbatch %s 2>&1", slurm_dir,
             getenv("QADAPT_BIN"), env, QA_TEST_SOURCE_ROOT, args);
    return capture_command(cmd, out_buf, sizeof out_buf);
}

Test(slurm, submits_an_array_and_a_report_job_after_it) {
    char args[1024], log_path[256];
    snprintf(args, sizeof args, "%s /tmp/qa-sweep-out 4", recipe());
    cr_assert_eq(run_script("", args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "array job 1001 (4 tasks), report job 1002 after it") != NULL, "%s", out_buf);
    snprintf(log_path, sizeof log_path, "cat %s/sbatch.log", slurm_dir);
    cr_assert_eq(capture_command(log_path, out_buf, sizeof out_buf), 0);
    const char *second = strchr(out_buf, '\n');
    cr_assert_not_null(second, "%s", out_buf);
    cr_expect(strstr(out_buf, "--array=0-3 ") && strstr(out_buf, "slurm-sweep.sbatch") &&
              strstr(out_buf, "/tmp/qa-sweep-out 4") && strstr(out_buf, "--array") < second, "%s", out_buf);
    cr_expect(strstr(second, "--dependency=afterany:1001") && strstr(second, "report") &&
              strstr(second, "/tmp/qa-sweep-out"), "%s", out_buf);
}

Test(slurm, an_array_task_takes_its_shard_from_the_environment) {
    char args[1024];
    snprintf(args, sizeof args, "%s /tmp/qa-sweep-out 4 --dry-run", recipe());
    cr_assert_eq(run_script("SLURM_JOB_ID=7 SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=4", args), 0, "%s", out_buf);
    cr_expect(strstr(out_buf, "in shard 2/4 (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)") != NULL, "%s", out_buf);
}

Test(slurm, bad_arguments_exit_2_before_anything_is_queued) {
    char args[1024];
    snprintf(args, sizeof args, "%s /tmp/qa-sweep-out 0", recipe());
    cr_expect_eq(run_script("", args), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "usage:") != NULL, "%s", out_buf);
    cr_expect_eq(run_script("", "/nonexistent.recipe /tmp/qa-sweep-out 2"), 2, "%s", out_buf);
    char log_path[256];
    snprintf(log_path, sizeof log_path, "%s/sbatch.log", slurm_dir);
    cr_expect_not(access(log_path, F_OK) == 0, "sbatch was called");
}

/* sweep_dir/<name>.recipe (a tuning stage on one tuning seed, 2 final runs), swept by one
 * process into sweep_dir/<name>-one. */
static void write_tuned_recipe_and_run_it_alone_as(const char *name, const char *tune_lines) {
    char path[256], text[2048], args[600];
    snprintf(path, sizeof path, "%s/%s.recipe", sweep_dir, name);
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/ev.h5\n"
             "[adapt]\nmethod = lora\nbits = w8a8\nrank = 2\nseed = [0, 1]\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 3\nbatch = 4\n[tune]\n%sseeds = [100]\nmetric = heldout_loss\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 0\n",
             sweep_dir, sweep_dir, tune_lines);
    write_text_file(path, text);
    snprintf(args, sizeof args, "run %s/%s.recipe --out %s/%s-one", sweep_dir, name, sweep_dir, name);
    cr_assert_eq(run_env("", args), 0, "%s", out_buf);
}

/* sweep_dir/tuned.recipe: 3 rates; swept alone into sweep_dir/tuned-one. */
static void write_tuned_recipe_and_run_it_alone(void) {
    write_tuned_recipe_and_run_it_alone_as("tuned", "lr_grid = [0.1, 1, 10]\n");
}

/* sweep_dir/<folder> holds the final and the tuning runs of sweep_dir/<name>-one, number for number. */
static void expect_same_tuned_sweeps_as(const char *name, const char *folder) {
    char one[256], two[256];
    snprintf(one, sizeof one, "%s/%s-one", sweep_dir, name);
    snprintf(two, sizeof two, "%s/%s", sweep_dir, folder);
    expect_same_runs(one, two);
    snprintf(one, sizeof one, "%s/%s-one/tune", sweep_dir, name);
    snprintf(two, sizeof two, "%s/%s/tune", sweep_dir, folder);
    expect_same_runs(one, two);
}

static void expect_same_tuned_sweeps(const char *folder) { expect_same_tuned_sweeps_as("tuned", folder); }

/* A tuned recipe over two shards run one after the other: shard 0 runs its tuning runs and stops
 * (the rates come from every shard's tuning runs), shard 1 runs its tuning runs, chooses the rates
 * and its final runs, and shard 0 run again does its final runs: together the final runs of one
 * process, at the rates one process chooses. */
Test(shard_sweep, a_tuned_recipe_over_two_shards_waits_for_every_tuning_run, .timeout = 150) {
    write_tuned_recipe_and_run_it_alone();
    cr_expect_eq(run_in("", "run %s/tuned.recipe --out %s/ttwo --shard %s", "0/2"), 1, "%s", out_buf);
    cr_expect(strstr(out_buf, "tuning runs of other shards are not") && strstr(out_buf, "run this shard again"), "%s", out_buf);
    cr_expect_eq(run_in("", "run %s/tuned.recipe --out %s/ttwo --shard %s", "1/2"), 0, "%s", out_buf);
    cr_expect_eq(run_in("", "run %s/tuned.recipe --out %s/ttwo --shard %s", "0/2"), 0, "%s", out_buf);
    expect_same_tuned_sweeps("ttwo");
}

/* A tuned recipe under mpirun: the ranks share the tuning runs, wait for each other (the rates come
 * from all of them), then share the final runs: the files and numbers of one process. */
Test(mpi_sweep, a_tuned_recipe_over_two_ranks_is_one_process_sweep, .timeout = 180) {
    mpirun_or_skip();
    write_tuned_recipe_and_run_it_alone();
    char args[1024];
    snprintf(args, sizeof args, "run %s/tuned.recipe --out %s/tmpi", sweep_dir, sweep_dir);
    cr_assert_eq(mpirun2(args), 0, "%s", out_buf);
    expect_same_tuned_sweeps("tmpi");
}

/* sweep_dir/extended.recipe: a grid of 2 rates (its best is always at an end) and one round of
 * the extension: the plan's tuning runs are indices 2-3 and the extension's run index 4. */
static void write_extended_recipe_and_run_it_alone(void) {
    write_tuned_recipe_and_run_it_alone_as("extended", "lr_grid = [0.1, 1]\nextend = 1\n");
    char tune[256];
    snprintf(tune, sizeof tune, "%s/extended-one/tune", sweep_dir);
    qa_run_record *recs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(tune, &recs, &n, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(n, 3, "the grid's 2 tuning runs and the extension's");
    qa_runs_free(recs, n);
}

/* Over two shards the extension's run (index 4) belongs to shard 0: shard 0 runs its grid run and
 * stops; shard 1 runs its grid run, extends, and stops, the extension's run being shard 0's;
 * shard 0 runs it, chooses and runs its final run; shard 1 its final run. */
Test(shard_sweep, the_extension_over_two_shards_waits_for_every_round, .timeout = 150) {
    write_extended_recipe_and_run_it_alone();
    const char *cmd = "run %s/extended.recipe --out %s/extended-two --shard %s";
    cr_expect_eq(run_in("", cmd, "0/2"), 1, "%s", out_buf);
    cr_expect(strstr(out_buf, "run this shard again") != NULL, "%s", out_buf);
    cr_expect_eq(run_in("", cmd, "1/2"), 1, "%s", out_buf);
    cr_expect(strstr(out_buf, "extending lora-w8a8-r2") && strstr(out_buf, "1 tuning runs of other shards are not"), "%s",
              out_buf);
    cr_expect_eq(run_in("", cmd, "0/2"), 0, "%s", out_buf);
    cr_expect_eq(run_in("", cmd, "1/2"), 0, "%s", out_buf);
    expect_same_tuned_sweeps_as("extended", "extended-two");
}

/* Under mpirun the ranks extend together (every rank reads the same files) and share the
 * extension's runs: the files and numbers of one process; rank 0 alone says what it extends. */
Test(mpi_sweep, the_extension_over_two_ranks_is_one_process_sweep, .timeout = 180) {
    mpirun_or_skip();
    write_extended_recipe_and_run_it_alone();
    char args[1024];
    snprintf(args, sizeof args, "run %s/extended.recipe --out %s/extended-mpi", sweep_dir, sweep_dir);
    cr_assert_eq(mpirun2(args), 0, "%s", out_buf);
    const char *said = strstr(out_buf, "extending lora-w8a8-r2");
    cr_expect(said != NULL, "%s", out_buf);
    cr_expect(said == NULL || strstr(said + 1, "extending lora-w8a8-r2") == NULL, "one line, not one per rank: %s", out_buf);
    expect_same_tuned_sweeps_as("extended", "extended-mpi");
}
