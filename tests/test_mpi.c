/* Sharded and MPI sweeps through the qadapt command (QADAPT_BIN): `run --dry-run --shard`, the
 * shard environment, the MPI driver and gradient sum under `mpirun -np 2` (MPIRUN; the test
 * binary itself never initialises MPI; QADAPT_HAS_MPI says whether the build has MPI), and
 * scripts/slurm-sweep.sbatch with a stand-in sbatch (no Slurm daemon needed). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

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

Test(shard_cli, a_real_run_of_a_shard_is_refused_until_the_sweep_takes_it) {
    char args[1024];
    snprintf(args, sizeof args, "run %s --out /tmp/qa-never-written --shard 0/2", recipe());
    cr_expect_eq(run_env("", args), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "the sweep does not take a shard yet") != NULL, "%s", out_buf);
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

Test(mpi, a_sweep_under_mpirun_is_refused_until_the_sweep_takes_ranks, .timeout = 60) {
    char args[1024];
    snprintf(args, sizeof args, "run %s --out /tmp/qa-never-written", recipe());
    cr_expect_eq(mpirun2(args), 2, "%s", out_buf);
    cr_expect(strstr(out_buf, "2 MPI rank(s)") != NULL, "%s", out_buf);
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
