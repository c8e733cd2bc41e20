/* Adaptation sweeps: expand a recipe's grid (method x bits x rank x seed) into runs, and for
 * each run not finished yet: quantize the frozen base, wrap the attention projections with the
 * method, fine-tune on the task, merge, evaluate the deployed model, and write one HDF5 file
 * (<out>/<run>.h5, written as .partial and renamed when complete). */
#ifndef QA_ADAPT_H
#define QA_ADAPT_H

#include "harness/recipe.h"

typedef struct {
    char id[96];
    const char *method;
    const char *bits;
    int w_bits, a_bits, rank;
    long seed;
    float vmc_alpha;
    int aux_dist, vmc_stat;
} qa_run_spec;

/* Expand the grid; returns the number of runs (allocated into *runs, caller frees). A method
 * that needs integer weights is not run at bits = fp: that combination is left out, and said. */
int adapt_plan(const qa_recipe *r, qa_run_spec **runs, qa_error *err);
/* Run every unfinished run of the recipe into out_dir. Returns 0 when all runs finished (a run
 * recorded as diverged counts as finished), QA_ERR_RUN when any run could not be completed. */
int adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err);

#endif
