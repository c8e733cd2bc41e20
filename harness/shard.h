/* Dividing work between processes that share nothing but a results folder.
 *
 * A sweep's plan is a deterministic list of runs; shard r of n owns the runs whose index i has
 * i mod n == r, so n processes started with r = 0..n-1 cover the plan exactly once and never
 * write the same run file. The shard comes from `--shard r/n`, or from the environment a
 * launcher sets:
 *   Open MPI       OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE
 *   MPICH / PMI    PMI_RANK, PMI_SIZE
 *   Slurm arrays   SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT, or with
 *                  SLURM_ARRAY_TASK_MIN / _MAX (and SLURM_ARRAY_TASK_STEP when the array has one)
 * An MPI launcher inside a Slurm array task divides that task's shard further: array task a of
 * A with rank p of P is shard a*P + p of A*P. Nothing here links MPI.
 *
 * Data-parallel training divides a batch instead of a plan: qa_grad_reducer is the one call the
 * training loop makes per step to sum the flat gradient buffer over the ranks. */
#ifndef QA_SHARD_H
#define QA_SHARD_H

#include <stddef.h>

#include "harness/util.h"

#define QA_SHARD_USAGE                                                                       \
    "--shard r/n: run the runs whose plan index i has i mod n == r (0 <= r < n, n >= 1); "    \
    "without it the shard comes from OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/PMI_SIZE or "         \
    "SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX)"

typedef struct {
    int rank;          /* 0 <= rank < count */
    int count;         /* 1: the whole plan */
    char source[160];  /* where it came from: "--shard", the variables read, or "none" */
} qa_shard;

/* Which environment variables qa_shard_from_env reads. A process whose MPI build shares the
 * plan dynamically over the ranks reads only the Slurm array (the ranks are not static shards). */
enum {
    QA_SHARD_ENV_LAUNCHER = 1 << 0,    /* OMPI_COMM_WORLD_*, PMI_* */
    QA_SHARD_ENV_SLURM_ARRAY = 1 << 1, /* SLURM_ARRAY_TASK_* */
    QA_SHARD_ENV_ALL = QA_SHARD_ENV_LAUNCHER | QA_SHARD_ENV_SLURM_ARRAY,
};

/* The whole plan: shard 0 of 1. */
qa_shard qa_shard_whole(void);

/* Parse "r/n" strictly (decimal digits only, 0 <= r < n, 1 <= n <= 1000000). QA_ERR_INPUT with
 * the usage text otherwise. */
int qa_shard_parse(const char *text, qa_shard *shard, qa_error *err);

/* The shard the environment describes (the whole plan when no variable is set). A variable that
 * is not a number, a rank outside its size, or two launchers that disagree: QA_ERR_INPUT naming
 * the variables. */
int qa_shard_from_env(unsigned sources, qa_shard *shard, qa_error *err);

/* The shard of this process: --shard when given (flag_text != NULL), else the environment. Both
 * given and different: QA_ERR_INPUT naming both (a job script and its launcher disagree). */
int qa_shard_resolve(const char *flag_text, unsigned env_sources, qa_shard *shard, qa_error *err);

/* 1 when plan index `index` belongs to the shard (index mod count == rank). */
int qa_shard_owns(const qa_shard *shard, int index);

/* How many of the indices 0..n_runs-1 the shard owns. */
int qa_shard_size(const qa_shard *shard, int n_runs);

/* What became of one run of a plan, wherever it ran. */
enum { QA_RUN_NOT_RUN = 0, QA_RUN_OK = 1, QA_RUN_FAILED = 2 };

typedef struct {
    int status;      /* QA_RUN_* */
    int rank;        /* the rank (or shard) that ran it */
    char msg[256];   /* the failure's message */
} qa_run_outcome;

/* QA_OK when none of the n_runs outcomes is QA_RUN_FAILED; else QA_ERR_RUN with a message that
 * counts the failed runs and names the first three (index, rank, message). */
int qa_run_failures(const qa_run_outcome *outcomes, int n_runs, qa_error *err);

/* Run one run of the plan; QA_OK, or an error code with err filled (the run failed). Called on
 * one thread at a time per process. */
typedef int (*qa_run_index_fn)(void *ctx, int index, qa_error *err);

/* Run, in plan order, every index 0..n_runs-1 the shard owns; a failed run does not stop the
 * others. outcomes[n_runs] is reset first (runs of other shards stay QA_RUN_NOT_RUN; rank = the
 * shard's rank). Returns qa_run_failures of the outcomes. */
int qa_shard_run(const qa_shard *shard, int n_runs, qa_run_index_fn run_index, void *ctx,
                 qa_run_outcome *outcomes, qa_error *err);

/* Data-parallel training: sum a flat float buffer over every rank, in place, once per step.
 * The training loop holds a `const qa_grad_reducer *`, NULL when the process is not one of
 * several ranks; rank and size tell it which slice of the global batch is its own. */
typedef struct qa_grad_reducer {
    int rank, size;
    void *ctx;
    int (*sum)(void *ctx, float *values, size_t n, qa_error *err);
} qa_grad_reducer;

#endif
