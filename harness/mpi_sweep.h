/* Running a sweep's runs over the ranks of an MPI job (the qadapt command only: no test binary
 * and no library unit calls MPI).
 *
 * Built with MPI (meson finds libopenmpi-dev), mpi_sweep.c shares the plan dynamically: rank 0
 * hands out run indices to whichever rank asks for work, so runs of unequal length balance, and
 * rank 0 works through the plan itself on a second thread while its main thread hands out the
 * rest. Each rank runs its index with the caller's run_index, reports success or failure, and
 * asks again; at the end rank 0 holds every run's outcome. Built without MPI, mpi_sweep_serial.c
 * runs every index in this process, in plan order; a process such a build starts under mpirun is
 * a static shard of the plan (shard.h reads the launcher's rank and size), not a shared-plan rank. */
#ifndef QA_MPI_SWEEP_H
#define QA_MPI_SWEEP_H

#include "harness/shard.h"
#include "harness/util.h"

typedef struct {
    int rank, size;      /* 0 and 1 when not under MPI */
    int under_mpi;       /* 1 when MPI_Init ran (an MPI build, launched by mpirun or as a singleton) */
    char library[128];   /* "Open MPI v4.1.4, ..." or "none (built without MPI)" */
} qa_mpi_world;

/* Start MPI (MPI_Init_thread, funneled: only the main thread calls MPI) when this build has it
 * and a launcher started the process (OMPI_COMM_WORLD_SIZE or PMI_SIZE is set; a plain start
 * stays a single process without MPI). Call once, first thing in main; qa_mpi_stop at the end. */
int qa_mpi_start(int *argc, char ***argv, qa_mpi_world *world, qa_error *err);
/* Wait for every rank without spinning a core, then MPI_Finalize; nothing without MPI. */
void qa_mpi_stop(const qa_mpi_world *world);

/* Every rank calls it with the same n_runs. Runs indices 0..n_runs-1 across the ranks, each once
 * (run_index, qa_run_index_fn of shard.h, runs on rank 0's second thread there; not under MPI,
 * every index runs in this process in plan order, as qa_shard_run of the whole plan).
 * outcomes[n_runs]: on rank 0, every run's outcome at return; on other ranks, their own runs'.
 * Returns on rank 0: QA_OK when every run succeeded, QA_ERR_RUN when some failed (err lists the
 * first few: index, rank and message); on other ranks QA_OK (rank 0 reports their failures).
 * An MPI failure returns QA_ERR_RUN with the MPI error string. */
int qa_mpi_share_runs(const qa_mpi_world *world, int n_runs, qa_run_index_fn run_index, void *ctx,
                      qa_run_outcome *outcomes, qa_error *err);

/* A collective every rank calls: returns rank 0's status on every rank (MPI_Bcast), so that the
 * ranks start a shared loop together or not at all. Not under MPI: status itself. */
int qa_mpi_agree(const qa_mpi_world *world, int status);

/* Data-parallel training: fill *reducer with an MPI_Allreduce (sum, in place, over every rank)
 * and return it, or return NULL when this process is not one of several MPI ranks; the training
 * loop calls reducer->sum once per step on its flat gradient buffer. */
const qa_grad_reducer *qa_mpi_grad_reducer(const qa_mpi_world *world, qa_grad_reducer *reducer);

/* `qadapt mpi-selftest N [--fail K]`: hand out N runs that sleep a little (run K fails on purpose)
 * and sum a buffer over the ranks; rank 0 prints which rank ran each run and whether the sum is
 * exact. Exercises this unit through the command, where MPI may be initialised. */
int qa_mpi_selftest(const qa_mpi_world *world, int argc, char **argv, FILE *out, qa_error *err);

#endif
