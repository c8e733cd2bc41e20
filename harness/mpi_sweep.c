/* The MPI build of mpi_sweep.h: dynamic sharing of a plan over the ranks, and the gradient sum. */
#include "harness/mpi_sweep.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

enum { TAG_REPORT = 1, TAG_WORK = 2 };
enum { NO_MORE_RUNS = -1, FIRST_REQUEST = -1 };

/* What a rank sends rank 0 after each run (and, with index FIRST_REQUEST, to ask for its first). */
typedef struct {
    int index, status;
    char msg[256];
} run_report;

/* MPI calls return their status (the world communicator is set to MPI_ERRORS_RETURN). */
#define MPI_TRY(call)                                                                     \
    do {                                                                                  \
        int mpi_rc_ = (call);                                                             \
        if (mpi_rc_ != MPI_SUCCESS) return mpi_fail(err, mpi_rc_, #call);                 \
    } while (0)

static int mpi_fail(qa_error *err, int code, const char *call) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return qa_fail(err, QA_ERR_RUN, "MPI: %s failed: %s", call, text);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int qa_mpi_start(int *argc, char ***argv, qa_mpi_world *world, qa_error *err) {
    int provided = 0, len = 0;
    qa_shard launcher;
    *world = (qa_mpi_world){0, 1, 0, "not started by an MPI launcher"};
    int rc = qa_shard_from_env(QA_SHARD_ENV_LAUNCHER, &launcher, err);
    if (rc || !strcmp(launcher.source, "none")) return rc;
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    if (provided < MPI_THREAD_FUNNELED)
        return qa_fail(err, QA_ERR_RUN, "MPI: this library does not let a second thread run beside MPI (thread level %d)",
                       provided);
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &world->rank));
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &world->size));
    MPI_TRY(MPI_Get_library_version(version, &len));
    char *newline = strchr(version, '\n');
    if (newline) *newline = 0;
    snprintf(world->library, sizeof world->library, "%.120s", version);
    world->under_mpi = 1;
    return QA_OK;
}

void qa_mpi_stop(const qa_mpi_world *world) {
    if (!world->under_mpi) return;
    /* a rank done early waits here for the others without spinning a core (MPI_Finalize may spin) */
    MPI_Request barrier;
    int done = 0;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &barrier) == MPI_SUCCESS)
        while (!done && MPI_Test(&barrier, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS)
            if (!done) nap_ms(5);
    MPI_Finalize();
}

/* ---- rank 0: the dispatcher (main thread) and its own worker (second thread) ---- */

typedef struct {
    pthread_mutex_t lock;
    int next, n_runs, local_done;
    qa_run_outcome *outcomes;
    qa_run_index_fn run_index;
    void *ctx;
} dispatch;

static int take_index(dispatch *d) {
    pthread_mutex_lock(&d->lock);
    int i = d->next < d->n_runs ? d->next++ : NO_MORE_RUNS;
    pthread_mutex_unlock(&d->lock);
    return i;
}

static void record(dispatch *d, int index, int rank, int status, const char *msg) {
    pthread_mutex_lock(&d->lock);
    qa_run_outcome *o = &d->outcomes[index];
    o->status = status;
    o->rank = rank;
    snprintf(o->msg, sizeof o->msg, "%s", status == QA_RUN_FAILED ? msg : "");
    pthread_mutex_unlock(&d->lock);
}

static void *local_worker(void *arg) {
    dispatch *d = arg;
    for (int i = take_index(d); i != NO_MORE_RUNS; i = take_index(d)) {
        qa_error run_err = {0, ""};
        int rc = d->run_index(d->ctx, i, &run_err);
        record(d, i, 0, rc ? QA_RUN_FAILED : QA_RUN_OK, run_err.msg);
    }
    pthread_mutex_lock(&d->lock);
    d->local_done = 1;
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static int local_worker_done(dispatch *d) {
    pthread_mutex_lock(&d->lock);
    int done = d->local_done;
    pthread_mutex_unlock(&d->lock);
    return done;
}

/* Answer reports until every other rank has been told there is no more work and the local
 * worker has finished. Polls with a short sleep: a blocking receive would spin a core that
 * the runs need. */
static int dispatch_loop(dispatch *d, int size, qa_error *err) {
    int ranks_working = size - 1;
    while (ranks_working > 0 || !local_worker_done(d)) {
        int waiting = 0;
        MPI_Status st;
        MPI_TRY(MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPORT, MPI_COMM_WORLD, &waiting, &st));
        if (!waiting) { nap_ms(2); continue; }
        run_report rep;
        MPI_TRY(MPI_Recv(&rep, (int)sizeof rep, MPI_BYTE, st.MPI_SOURCE, TAG_REPORT, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        if (rep.index != FIRST_REQUEST) {
            rep.msg[sizeof rep.msg - 1] = 0;
            record(d, rep.index, st.MPI_SOURCE, rep.status, rep.msg);
        }
        int next = take_index(d);
        MPI_TRY(MPI_Send(&next, 1, MPI_INT, st.MPI_SOURCE, TAG_WORK, MPI_COMM_WORLD));
        if (next == NO_MORE_RUNS) ranks_working--;
    }
    return QA_OK;
}

static int run_dispatcher(const qa_mpi_world *world, dispatch *d, qa_error *err) {
    pthread_t worker;
    if (pthread_create(&worker, NULL, local_worker, d) != 0)
        return qa_fail(err, QA_ERR_RUN, "MPI sweep: cannot start rank 0's worker thread");
    int rc = dispatch_loop(d, world->size, err);
    if (rc) { /* no rank will be answered: the job cannot finish its plan */
        fprintf(stderr, "qadapt: rank 0: %s\n", err->msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    pthread_join(worker, NULL);
    return rc;
}

/* ---- other ranks: ask, run, report ---- */

static int run_worker(const qa_mpi_world *world, dispatch *d, qa_error *err) {
    run_report rep = {FIRST_REQUEST, 0, ""};
    for (;;) {
        int index;
        MPI_TRY(MPI_Send(&rep, (int)sizeof rep, MPI_BYTE, 0, TAG_REPORT, MPI_COMM_WORLD));
        MPI_TRY(MPI_Recv(&index, 1, MPI_INT, 0, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        if (index == NO_MORE_RUNS) return QA_OK;
        QA_ASSERT(index >= 0 && index < d->n_runs);
        qa_error run_err = {0, ""};
        int rc = d->run_index(d->ctx, index, &run_err);
        record(d, index, world->rank, rc ? QA_RUN_FAILED : QA_RUN_OK, run_err.msg);
        memset(&rep, 0, sizeof rep);
        rep.index = index;
        rep.status = rc ? QA_RUN_FAILED : QA_RUN_OK;
        snprintf(rep.msg, sizeof rep.msg, "%s", rc ? run_err.msg : "");
    }
}

int qa_mpi_share_runs(const qa_mpi_world *world, int n_runs, qa_run_index_fn run_index, void *ctx,
                      qa_run_outcome *outcomes, qa_error *err) {
    if (!world->under_mpi) {
        qa_shard whole = qa_shard_whole();
        return qa_shard_run(&whole, n_runs, run_index, ctx, outcomes, err);
    }
    memset(outcomes, 0, sizeof *outcomes * (size_t)n_runs);
    dispatch d = {.next = 0, .n_runs = n_runs, .outcomes = outcomes, .run_index = run_index, .ctx = ctx};
    pthread_mutex_init(&d.lock, NULL);
    int rc = world->rank == 0 ? run_dispatcher(world, &d, err) : run_worker(world, &d, err);
    pthread_mutex_destroy(&d.lock);
    if (rc || world->rank != 0) return rc;
    return qa_run_failures(outcomes, n_runs, err);
}

int qa_mpi_agree(const qa_mpi_world *world, int status) {
    if (!world->under_mpi) return status;
    /* a failed broadcast leaves the ranks disagreeing: the job cannot go on */
    if (MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) MPI_Abort(MPI_COMM_WORLD, 1);
    return status;
}

/* ---- data-parallel training ---- */

static int allreduce_sum(void *ctx, float *values, size_t n, qa_error *err) {
    (void)ctx;
    for (size_t done = 0; done < n;) { /* MPI counts are ints */
        int chunk = n - done > (size_t)INT_MAX ? INT_MAX : (int)(n - done);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, values + done, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        done += (size_t)chunk;
    }
    return QA_OK;
}

const qa_grad_reducer *qa_mpi_grad_reducer(const qa_mpi_world *world, qa_grad_reducer *reducer) {
    if (!world->under_mpi || world->size < 2) return NULL;
    reducer->rank = world->rank;
    reducer->size = world->size;
    reducer->ctx = NULL;
    reducer->sum = allreduce_sum;
    return reducer;
}
