/* mpi_sweep.h in a build without MPI: one process, every run in plan order. */
#include "harness/mpi_sweep.h"

int qa_mpi_start(int *argc, char ***argv, qa_mpi_world *world, qa_error *err) {
    (void)argc;
    (void)argv;
    world->rank = 0;
    world->size = 1;
    world->under_mpi = 0;
    snprintf(world->library, sizeof world->library, "none (built without MPI)");
    /* started by mpirun or srun as one of several ranks: each copy would run the whole plan */
    qa_shard launcher;
    int rc = qa_shard_from_env(QA_SHARD_ENV_LAUNCHER, &launcher, err);
    if (rc) return rc;
    if (launcher.count > 1)
        return qa_fail(err, QA_ERR_INPUT, "started as rank %d of %d (%s), but this qadapt was built without MPI: "
                       "install libopenmpi-dev and rebuild (meson finds it), or run the processes with --shard r/n",
                       launcher.rank, launcher.count, launcher.source);
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
