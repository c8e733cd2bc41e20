/* Adaptation sweeps: plan and schedule. The recipe is read once, here: its grid (method x bits
 * x rank x seed, and any method option given as a list) becomes typed run specs; each run not
 * finished yet goes through the run pipeline (run.h) into one HDF5 file (<out>/<run>.h5,
 * written as .partial and renamed when complete). */
#ifndef QA_ADAPT_H
#define QA_ADAPT_H

#include <stdio.h>

#include "harness/recipe.h"
#include "harness/shard.h"
#include "harness/run.h"
#include "harness/shard.h"

/* The tuning stage ([tune]): for every cell of the grid (method x bits x rank x option setting),
 * each rate of a grid (multiples of the method's reference rate, qa_method.reference_lr) is
 * trained on each tuning seed; a tuning seed's item (chosen by the same seed scheme as the
 * evaluation seeds, which it never equals) is a validation item, never reported. The rate whose
 * mean validation score over the tuning seeds is best (ties: the smaller rate; a rate with a
 * diverged run is never chosen) is the rate of every final run of the cell. Tuning runs are
 * written to <out>/tune/ (so the report of <out> never mixes them in), with the scores of every
 * rate and the choice in <out>/tune/rates.csv; like final runs they resume.
 *
 * The extension ([tune] extend = K): a grid's end is only a bound when the curve has turned
 * before it. After the grid's runs, a cell whose best rate is the highest it tried gets one
 * more rate a log step above (the grid's own spacing at that end: x3.16 for the protocol's
 * grid, rounded to 3 significant digits), the lowest one a step below, trained on every tuning
 * seed; then the choice is made again, up to K rounds. A diverged rate is never best, so a
 * cell stops extending where training breaks down. Run ids carry the multiplier, so the grid's
 * runs of a folder made without the extension stay valid. */
typedef enum {
    QA_TUNE_HELDOUT_LOSS = 0, QA_TUNE_SUBJECT_FIDELITY, QA_TUNE_STYLE_SCORE, QA_TUNE_FID, QA_TUNE_METRIC_COUNT
} qa_tune_metric;
extern const char *const qa_tune_metric_names[QA_TUNE_METRIC_COUNT];

#define QA_MAX_TUNE_RATES 32
#define QA_MAX_TUNE_SEEDS 64

typedef struct {
    int n_rates;                       /* 0: no tuning stage (every run trains at [train] lr) */
    double rates[QA_MAX_TUNE_RATES];   /* multiples of the method's reference rate, ascending */
    int n_seeds;
    long seeds[QA_MAX_TUNE_SEEDS];     /* disjoint from the evaluation seeds */
    qa_tune_metric metric;             /* scored on the deployed model (INT deploy at W bits > 0) */
    long steps;                        /* of a tuning run: [tune] steps, else [train] steps */
    int extend;                        /* [tune] extend: rounds of rates past the grid's ends */
    double within;                     /* [tune] within: the choice's tolerance (0: the best) */
} qa_tune_spec;

typedef struct {
    qa_sweep_settings settings;  /* shared by every run; runs[i].settings points here */
    qa_tune_spec tune;
    qa_run_spec *runs;           /* [n]: the final runs, then the n_tuning tuning runs (the
                                  * grid's, then any the extension added) */
    int n, n_tuning, cap;
} qa_sweep_plan;

/* Expand the grid; returns the number of runs, tuning runs included (or a negative status). A
 * method that needs integer weights is not run at bits = fp: that combination is left out, and
 * said. With a tuning stage the final runs' rate is 0 until adapt_sweep has chosen it. Errors of
 * the tuning stage (an empty or non-positive grid, tuning seeds that are evaluation seeds, a
 * validation metric the task does not measure) are QA_ERR_INPUT naming the file, line and key.
 * Free the plan with adapt_plan_free. */
int qa_adapt_plan(const qa_recipe *r, qa_sweep_plan *plan, qa_error *err);
void qa_adapt_plan_free(qa_sweep_plan *plan);
/* Append one tuning run per tuning seed of final run f's cell at rate `multiplier` (x the
 * method's reference rate). */
void qa_adapt_plan_add_tuning(qa_sweep_plan *plan, int f, double multiplier);
/* One round of the extension: for every cell whose best rate (from the tuning runs' files in
 * out_dir/tune) is the highest or lowest it tried, append the tuning runs of the next rate past
 * that end; *added says how many runs were appended (0: every cell is bracketed, or has
 * diverged past its end). Each extended cell gets a line on `say` (NULL: none, as on every
 * mpirun rank but rank 0, so a line is printed once). */
int qa_tune_extend(qa_sweep_plan *plan, const char *out_dir, FILE *say, int *added, qa_error *err);
/* 1 when final run i is the first final run of its cell (runs [0, i) hold no other). */
int qa_adapt_plan_first_of_cell(const qa_sweep_plan *plan, int i);
/* What a dry run prints: the counts by role, then every run (tuning runs as tune/<id>); with a
 * shard (NULL: all), only the runs it owns. */
void qa_adapt_plan_print(const qa_sweep_plan *plan, const char *recipe_path, const qa_shard *shard, FILE *out);
/* The best of n rates (ascending) by their mean validation scores; NAN marks a rate that is never
 * chosen (a diverged or unscored tuning run); an exact tie goes to the smaller rate. Returns its
 * index, or -1 when every score is NAN. */
int qa_adapt_choose_rate(const double *mean_score, int n, int lower_is_better);
/* The chosen rate: the smallest whose mean score is within `within` of the best's (the best when
 * within = 0); -1 when every score is NAN. A rate above a NAN one is still eligible. */
int qa_adapt_choose_rate_within(const double *mean_score, int n, int lower_is_better, double within);
/* Choose each cell's rate from the tuning runs' files in out_dir/tune (so a resumed sweep
 * chooses the same) and give it to the cell's final runs; with write_csv, also write (and say)
 * the scores and choices, out_dir/tune/rates.csv (under mpirun rank 0 alone does). */
int qa_tune_apply(qa_sweep_plan *plan, const char *out_dir, int write_csv, qa_error *err);
/* Run every unfinished run of the recipe into out_dir. Returns 0 when all runs finished (a run
 * recorded as diverged counts as finished), QA_ERR_RUN when any run could not be completed. */
int qa_adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err);
/* The same; with wait, a folder another sweep holds is waited for instead of refused. */
int qa_adapt_sweep_wait(const qa_recipe *r, const char *out_dir, int wait, qa_error *err);

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

/* What the command line adds to a sweep. wait: a folder another sweep holds is waited for
 * instead of refused (--wait). reuse: folders whose finished runs may be copied in instead of
 * made again (--reuse DIR, in the order given): a run whose file (DIR/<id>.h5, a tuning run's
 * DIR/tune/<id>.h5) was made by a recipe that makes the same runs (equal but for comments, the
 * job's name, the grid's lists of methods, bits, ranks and seeds, and [tune] extend and within)
 * at this run's rate, role, method version and validation split is copied, not trained; such a
 * file keeps what it records (its recipe, commit, times). */
#define QA_MAX_REUSE 8
typedef struct {
    int wait;
    int n_reuse;
    const char *reuse[QA_MAX_REUSE];
} qa_sweep_opts;

/* adapt_sweep_wait for this process's part of the sweep (sched NULL: the whole plan here).
 * The folder lock is qa_lock_acquire_shard's (lock.h): shards of one sweep share the folder,
 * two processes of the same shard do not. Returns QA_ERR_RUN when a run of this shard (on any
 * rank, as rank 0 reports it) failed, naming the run and its rank; the other runs finish. */
int qa_adapt_sweep_sched(const qa_recipe *r, const char *out_dir, const qa_sweep_opts *opts, const qa_sweep_sched *sched,
                         qa_error *err);

#endif
