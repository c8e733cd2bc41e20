/* Adaptation sweeps: plan and schedule. The recipe is read once, here: its grid (method x bits
 * x rank x seed, and any method option given as a list) becomes typed run specs; each run not
 * finished yet goes through the run pipeline (run.h) into one HDF5 file (<out>/<run>.h5,
 * written as .partial and renamed when complete). */
#ifndef QA_ADAPT_H
#define QA_ADAPT_H

#include "harness/recipe.h"
#include "harness/run.h"

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
/* The same for shard k of n (0 <= k < n): only the k-th of n contiguous blocks of the plan
 * (positions [k P / n, (k + 1) P / n) of its P runs; the plan is seed-major, so a block holds
 * whole seeds and each process builds few tasks), so that n processes can share one sweep folder
 * without running a run twice. Each run file is what the unsharded sweep writes. Not for timing
 * recipes: their methods must interleave within one process. */
int adapt_sweep_shard(const qa_recipe *r, const char *out_dir, int shard, int n_shards, qa_error *err);

#endif
