/* Sharding a plan: `--shard r/n` parsing, the shard from the launchers' environment variables
 * (set in this test process with setenv), their disagreements, and the ownership rule. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness/shard.h"

static const char *const SHARD_VARS[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
};

/* every test starts from an environment with no launcher in it */
static void clear_env(void) {
    for (size_t i = 0; i < sizeof SHARD_VARS / sizeof SHARD_VARS[0]; i++) unsetenv(SHARD_VARS[i]);
}

TestSuite(shard, .init = clear_env);

static void expect_parse_error(const char *text, const char *needle) {
    qa_shard s = {7, 9, "untouched"};
    qa_error err = {0, ""};
    cr_expect_eq(qa_shard_parse(text, &s, &err), QA_ERR_INPUT, "'%s' was accepted", text);
    cr_expect(strstr(err.msg, needle) != NULL, "'%s': message '%s' lacks '%s'", text, err.msg, needle);
    cr_expect(strstr(err.msg, "--shard r/n") != NULL, "'%s': no usage in '%s'", text, err.msg);
}

Test(shard, parse_accepts_r_of_n) {
    qa_shard s;
    qa_error err = {0, ""};
    cr_assert_eq(qa_shard_parse("3/8", &s, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(s.rank, 3);
    cr_expect_eq(s.count, 8);
    cr_expect_str_eq(s.source, "--shard");
    cr_assert_eq(qa_shard_parse("0/1", &s, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(s.rank, 0);
    cr_expect_eq(s.count, 1);
}

Test(shard, parse_rejects_out_of_range_and_malformed) {
    expect_parse_error("2/2", "r must be below n");
    expect_parse_error("5/3", "r must be below n");
    expect_parse_error("0/0", "n must be at least 1");
    expect_parse_error("-1/4", "decimal integers");
    expect_parse_error("1/+4", "decimal integers");
    expect_parse_error(" 1/4", "decimal integers");
    expect_parse_error("1/4x", "decimal integers");
    expect_parse_error("1/", "decimal integers");
    expect_parse_error("/4", "decimal integers");
    expect_parse_error("1.0/4", "decimal integers");
    expect_parse_error("14", "expected r/n");
    expect_parse_error("", "expected r/n");
    expect_parse_error("1/99999999999999999999", "decimal integers");
}

Test(shard, ownership_is_index_mod_n) {
    qa_shard s = {1, 3, "test"};
    int owned[10], n = 0;
    for (int i = 0; i < 10; i++)
        if (qa_shard_owns(&s, i)) owned[n++] = i;
    cr_assert_eq(n, 3);
    cr_expect(owned[0] == 1 && owned[1] == 4 && owned[2] == 7);
    cr_expect_eq(qa_shard_size(&s, 10), 3);
    cr_expect_eq(qa_shard_size(&s, 1), 0);
    cr_expect_not(qa_shard_owns(&s, -2));
}

Test(shard, shards_cover_a_plan_exactly_once) {
    for (int count = 1; count <= 7; count++) {
        int hits[23] = {0}, sizes = 0;
        for (int r = 0; r < count; r++) {
            qa_shard s = {r, count, "test"};
            for (int i = 0; i < 23; i++) hits[i] += qa_shard_owns(&s, i);
            sizes += qa_shard_size(&s, 23);
        }
        for (int i = 0; i < 23; i++) cr_expect_eq(hits[i], 1, "n=%d: index %d owned %d times", count, i, hits[i]);
        cr_expect_eq(sizes, 23, "n=%d: sizes sum to %d", count, sizes);
    }
}

static qa_shard env_shard_ok(unsigned sources) {
    qa_shard s;
    qa_error err = {0, ""};
    cr_assert_eq(qa_shard_from_env(sources, &s, &err), QA_OK, "%s", err.msg);
    return s;
}

static void expect_env_error(const char *needle) {
    qa_shard s;
    qa_error err = {0, ""};
    cr_expect_eq(qa_shard_from_env(QA_SHARD_ENV_ALL, &s, &err), QA_ERR_INPUT, "accepted");
    cr_expect(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

Test(shard, no_environment_is_the_whole_plan) {
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect_eq(s.rank, 0);
    cr_expect_eq(s.count, 1);
    cr_expect_str_eq(s.source, "none");
}

Test(shard, open_mpi_variables) {
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 1 && s.count == 4, "%d/%d", s.rank, s.count);
    cr_expect(strstr(s.source, "OMPI_COMM_WORLD_RANK") != NULL, "%s", s.source);
}

Test(shard, pmi_variables) {
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "3", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 2 && s.count == 3, "%d/%d", s.rank, s.count);
    cr_expect(strstr(s.source, "PMI_RANK") != NULL, "%s", s.source);
}

Test(shard, open_mpi_and_pmi_must_agree) {
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("PMI_RANK", "1", 1);
    setenv("PMI_SIZE", "2", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 1 && s.count == 2);
    setenv("PMI_RANK", "0", 1);
    expect_env_error("Open MPI says rank 1 of 2, PMI says rank 0 of 2");
}

Test(shard, slurm_array_with_count) {
    setenv("SLURM_ARRAY_TASK_ID", "5", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "8", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 5 && s.count == 8, "%d/%d", s.rank, s.count);
    cr_expect(strstr(s.source, "SLURM_ARRAY_TASK_COUNT") != NULL, "%s", s.source);
}

Test(shard, slurm_array_with_min_max_starting_at_one) {
    setenv("SLURM_ARRAY_TASK_ID", "4", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "4", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 3 && s.count == 4, "%d/%d", s.rank, s.count);
}

Test(shard, slurm_array_with_a_step) {
    setenv("SLURM_ARRAY_TASK_ID", "12", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "12", 1);
    setenv("SLURM_ARRAY_TASK_STEP", "4", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 3 && s.count == 4, "%d/%d", s.rank, s.count);
    setenv("SLURM_ARRAY_TASK_ID", "6", 1);
    expect_env_error("SLURM_ARRAY_TASK_ID=6 is not task 0..3");
}

Test(shard, slurm_array_needs_its_size) {
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    expect_env_error("neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/_MAX");
    setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
    expect_env_error("SLURM_ARRAY_TASK_ID=2 is not task 0..1");
}

Test(shard, bad_environment_values_name_the_variable) {
    setenv("OMPI_COMM_WORLD_RANK", "one", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    expect_env_error("OMPI_COMM_WORLD_RANK='one' is not a non-negative integer");
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    expect_env_error("OMPI_COMM_WORLD_RANK=2 is not a rank of OMPI_COMM_WORLD_SIZE=2");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    expect_env_error("OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
}

Test(shard, mpi_ranks_inside_an_array_task_divide_its_shard) {
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    qa_shard s = env_shard_ok(QA_SHARD_ENV_ALL);
    cr_expect(s.rank == 3 && s.count == 6, "%d/%d", s.rank, s.count);
    /* a process whose MPI build shares the plan over the ranks reads the array alone */
    s = env_shard_ok(QA_SHARD_ENV_SLURM_ARRAY);
    cr_expect(s.rank == 1 && s.count == 3, "%d/%d", s.rank, s.count);
    s = env_shard_ok(QA_SHARD_ENV_LAUNCHER);
    cr_expect(s.rank == 1 && s.count == 2, "%d/%d", s.rank, s.count);
}

Test(shard, flag_and_environment_must_agree) {
    qa_shard s;
    qa_error err = {0, ""};
    cr_assert_eq(qa_shard_resolve("1/4", QA_SHARD_ENV_ALL, &s, &err), QA_OK, "%s", err.msg);
    cr_expect(s.rank == 1 && s.count == 4 && !strcmp(s.source, "--shard"));
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    cr_assert_eq(qa_shard_resolve("1/4", QA_SHARD_ENV_ALL, &s, &err), QA_OK, "%s", err.msg);
    cr_expect(s.rank == 1 && s.count == 4);
    cr_assert_eq(qa_shard_resolve(NULL, QA_SHARD_ENV_ALL, &s, &err), QA_OK, "%s", err.msg);
    cr_expect(s.rank == 1 && s.count == 4 && strstr(s.source, "SLURM"));
    cr_expect_eq(qa_shard_resolve("2/4", QA_SHARD_ENV_ALL, &s, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "--shard 2/4 disagrees with the environment") && strstr(err.msg, "shard 1/4"), "%s",
              err.msg);
    cr_expect_eq(qa_shard_resolve("1/x", QA_SHARD_ENV_ALL, &s, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "decimal integers") != NULL, "%s", err.msg);
}

/* a run that records its index and fails on every multiple of 4 */
typedef struct { int ran[16], n_ran; } run_log;

static int logged_run(void *ctx, int index, qa_error *err) {
    run_log *log = ctx;
    log->ran[log->n_ran++] = index;
    if (index % 4 == 0) return qa_fail(err, QA_ERR_RUN, "index %d is a multiple of 4", index);
    return QA_OK;
}

Test(shard, shard_run_runs_its_indices_in_order_and_reports_failures) {
    qa_shard s = {1, 3, "test"};
    run_log log = {{0}, 0};
    qa_run_outcome outcomes[10];
    qa_error err = {0, ""};
    cr_expect_eq(qa_shard_run(&s, 10, logged_run, &log, outcomes, &err), QA_ERR_RUN);
    cr_assert_eq(log.n_ran, 3);
    cr_expect(log.ran[0] == 1 && log.ran[1] == 4 && log.ran[2] == 7);
    for (int i = 0; i < 10; i++) {
        int want = i % 3 != 1 ? QA_RUN_NOT_RUN : (i % 4 == 0 ? QA_RUN_FAILED : QA_RUN_OK);
        cr_expect_eq(outcomes[i].status, want, "outcome %d", i);
    }
    cr_expect_str_eq(err.msg, "1 of 10 runs failed: run 4 (rank 1): index 4 is a multiple of 4");
}

Test(shard, failures_name_the_first_three) {
    qa_shard whole = qa_shard_whole();
    run_log log = {{0}, 0};
    qa_run_outcome outcomes[16];
    qa_error err = {0, ""};
    cr_expect_eq(qa_shard_run(&whole, 16, logged_run, &log, outcomes, &err), QA_ERR_RUN);
    cr_expect_eq(log.n_ran, 16);
    cr_expect(strstr(err.msg, "4 of 16 runs failed: run 0 (rank 0)") && strstr(err.msg, "; run 8 (rank 0)") &&
              !strstr(err.msg, "run 12 (") && strstr(err.msg, "; ..."), "%s", err.msg);
    qa_shard s = {1, 4, "test"}; /* indices 1, 5, 9, 13: none fails */
    log.n_ran = 0;
    cr_expect_eq(qa_shard_run(&s, 16, logged_run, &log, outcomes, &err), QA_OK);
}
