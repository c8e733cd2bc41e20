/* Adaptation sweeps: plan and schedule. The recipe is read once, here: its grid (method x bits
 * x rank x seed, and any method option given as a list) becomes typed run specs; each run not
 * finished yet goes through the run pipeline (run.h) into one HDF5 file (<out>/<run>.h5,
 * written as .partial and renamed when complete). */
#ifndef QA_ADAPT_H
#define QA_ADAPT_H

#include "harness/recipe.h"
#include "harness/run.h"
#include "harness/shard.h"

typedef struct {
    qa_sweep_settings settings;  /* shared by every run; runs[i].settings points here */
    qa_run_spec *runs;           /* [n] */
    int n;
} qa_sweep_plan;

/* Expand the grid; returns the number of runs (or a negative status). A method that needs
 * integer weights is not run at bits = fp: that combination is left out, and said. Free the
 * plan with adapt_plan_free. */
int adapt_plan(const qa_recipe *r, qa_sweep_plan *plan, qa_error *err);
void adapt_plan_free(qa_sweep_plan *plan);
/* Run every unfinished run of the recipe into out_dir. Returns 0 when all runs finished (a run
 * recorded as diverged counts as finished), QA_ERR_RUN when any run could not be completed. */
int adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err);
/* The same; with wait, a folder another sweep holds is waited for instead of refused. */
int adapt_sweep_wait(const qa_recipe *r, const char *out_dir, int wait, qa_error *err);

/* How the runs of a sweep are divided between processes. This unit never calls MPI: the
 * command passes the functions that do (qa_mpi_share_runs, a broadcast of rank 0's status).
 *
 * shard: the static part of the plan this process (or this group of ranks) owns: plan index i
 * with i mod shard.count == shard.rank (`--shard r/n`, a Slurm array task, or a launcher's
 * rank in a build without MPI). Within the shard, `share` divides the owned runs between
 * `size` ranks dynamically; NULL (and size 1) runs them all here, in plan order.
 *
 * Under share, rank 0 alone locks the folder and checks what is finished; `agree` then gives
 * every rank rank 0's status (a collective every rank calls; NULL when size is 1), so that all
 * ranks start the shared loop or none does. */
typedef struct {
    qa_shard shard;
    int rank, size;
    void *ctx;
    /* qa_mpi_share_runs' contract: every rank calls it with the same n_runs; each index runs
     * once on some rank; on rank 0 outcomes[] holds every run's outcome at return and the
     * status says whether any failed; on other ranks QA_OK and their own runs' outcomes. */
    int (*share)(void *ctx, int n_runs, qa_run_index_fn run_index, void *run_ctx, qa_run_outcome *outcomes,
                 qa_error *err);
    int (*agree)(void *ctx, int rank0_status);
} qa_sweep_sched;

/* adapt_sweep_wait for this process's part of the sweep (sched NULL: the whole plan here).
 * The folder lock is qa_lock_acquire_shard's (lock.h): shards of one sweep share the folder,
 * two processes of the same shard do not. Returns QA_ERR_RUN when a run of this shard (on any
 * rank, as rank 0 reports it) failed, naming the run and its rank; the other runs finish. */
int adapt_sweep_sched(const qa_recipe *r, const char *out_dir, int wait, const qa_sweep_sched *sched, qa_error *err);

#endif
