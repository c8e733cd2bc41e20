/* mpi_sweep.h in a build without MPI: one process, every run in plan order. Started by a launcher
 * as one of several ranks, the process is a static shard (`qadapt run` reads OMPI_COMM_WORLD_* or
 * PMI_* through qa_shard_resolve), not a rank of a shared plan. */
#include "harness/mpi_sweep.h"

int qa_mpi_start(int *argc, char ***argv, qa_mpi_world *world, qa_error *err) {
    (void)argc;
    (void)argv;
    (void)err;
    *world = (qa_mpi_world){0, 1, 0, "none (built without MPI)"};
    return QA_OK;
}

void qa_mpi_stop(const qa_mpi_world *world) { (void)world; }

int qa_mpi_share_runs(const qa_mpi_world *world, int n_runs, qa_run_index_fn run_index, void *ctx,
                      qa_run_outcome *outcomes, qa_error *err) {
    (void)world;
    qa_shard whole = qa_shard_whole();
    return qa_shard_run(&whole, n_runs, run_index, ctx, outcomes, err);
}

const qa_grad_reducer *qa_mpi_grad_reducer(const qa_mpi_world *world, qa_grad_reducer *reducer) {
    (void)world;
    (void)reducer;
    return NULL;
}

int qa_mpi_agree(const qa_mpi_world *world, int status) {
    (void)world;
    return status;
}
