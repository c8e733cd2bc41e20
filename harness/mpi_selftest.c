/* `qadapt mpi-selftest N [--fail K]`: the MPI sweep driver, the gradient sum and a data-parallel
 * gradient of a tiny denoiser, exercised through the command (the only place MPI may be
 * initialised). Not listed in the usage text: it checks the build and the launcher. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/diffusion.h"
#include "harness/model.h"
#include "harness/mpi_sweep.h"

#define SELFTEST_USAGE "usage: qadapt mpi-selftest N [--fail K]   (N runs, 1..10000; run K fails on purpose)"

typedef struct {
    int fail_index; /* -1: none */
} selftest_ctx;

/* A run of unequal length (20, 40 or 60 ms), so that ranks finish at different times. */
static int selftest_run(void *ctx, int index, qa_error *err) {
    const selftest_ctx *c = ctx;
    struct timespec ts = {0, (long)(index % 3 + 1) * 20000000L};
    nanosleep(&ts, NULL);
    if (index == c->fail_index) return qa_fail(err, QA_ERR_RUN, "selftest run %d fails on purpose", index);
    return QA_OK;
}

static int parse_selftest(int argc, char **argv, int *n_runs, int *fail_index, qa_error *err) {
    char *end = NULL;
    *fail_index = -1;
    long n = argc >= 1 ? strtol(argv[0], &end, 10) : 0;
    if (argc < 1 || !end || *end || n < 1 || n > 10000)
        return qa_fail(err, QA_ERR_INPUT, "mpi-selftest: N must be 1..10000\n" SELFTEST_USAGE);
    *n_runs = (int)n;
    if (argc == 1) return QA_OK;
    long k = argc == 3 && !strcmp(argv[1], "--fail") ? strtol(argv[2], &end, 10) : -1;
    if (argc != 3 || *end || k < 0 || k >= n)
        return qa_fail(err, QA_ERR_INPUT, "mpi-selftest: bad arguments\n" SELFTEST_USAGE);
    *fail_index = (int)k;
    return QA_OK;
}

/* Each rank contributes (rank + 1) * (i mod 7) to element i: small integers, so the sum over the
 * ranks is exact in float whatever the reduction order. Returns 1 when every element is right. */
static int check_gradient_sum(const qa_mpi_world *world, const qa_grad_reducer *reducer, size_t n, qa_error *err,
                              int *rc) {
    float *values = qa_alloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) values[i] = (float)((world->rank + 1) * (int)(i % 7));
    *rc = reducer->sum(reducer->ctx, values, n, err);
    int exact = 1;
    const int rank_sum = world->size * (world->size + 1) / 2;
    for (size_t i = 0; i < n && !*rc; i++)
        if (values[i] != (float)(rank_sum * (int)(i % 7))) exact = 0;
    qa_free(values);
    return exact;
}

/* Data parallel on a tiny denoiser: this rank's slice of a global batch, its loss gradient scaled
 * to the global mean, summed over the ranks by the reducer, against the whole batch's gradient in
 * one process. The batch is made from fixed seeds, the same on every rank. Returns the largest
 * difference relative to the largest gradient entry, or a negative value on an error. */
static double data_parallel_difference(const qa_mpi_world *world, const qa_grad_reducer *reducer, qa_error *err) {
    enum { GLOBAL_BATCH = 8, PIXELS = 28 * 28 };
    const qa_dit_config tiny = {28, 4, 32, 2, 2, 2, 10, 2};
    qa_dit m;
    if (qa_dit_create(&m, &tiny, GLOBAL_BATCH, err)) return -1;
    qa_dit_init_weights(&m, 3);
    qa_rng *r = qa_rng_new(17);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.05f * (float)qa_rng_normal(r);
    float *x = qa_alloc(sizeof(float) * GLOBAL_BATCH * PIXELS), *target = qa_alloc(sizeof(float) * GLOBAL_BATCH * PIXELS);
    float *pred = qa_alloc(sizeof(float) * GLOBAL_BATCH * PIXELS), *deps = qa_alloc(sizeof(float) * GLOBAL_BATCH * PIXELS);
    float *whole = qa_alloc(sizeof(float) * m.n_params), t[GLOBAL_BATCH];
    int y[GLOBAL_BATCH];
    qa_rng_fill_normal(r, x, GLOBAL_BATCH * PIXELS, 1.0f);
    qa_rng_fill_normal(r, target, GLOBAL_BATCH * PIXELS, 1.0f);
    for (int b = 0; b < GLOBAL_BATCH; b++) { t[b] = (float)(b * 125 + 7); y[b] = b % 10; }
    /* pass 0: the whole batch here; pass 1: this rank's slice, then the sum over the ranks */
    int lo = world->rank * GLOBAL_BATCH / world->size, hi = (world->rank + 1) * GLOBAL_BATCH / world->size;
    int rc = QA_OK;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        int first = pass ? lo : 0, count = pass ? hi - lo : GLOBAL_BATCH;
        size_t n = (size_t)count * PIXELS;
        qa_dit_zero_grads(&m);
        qa_dit_forward(&m, x + (size_t)first * PIXELS, t + first, y + first, count, pred);
        qa_mse_loss(pred, target + (size_t)first * PIXELS, n, deps);
        qa_vec_scale(deps, (float)count / GLOBAL_BATCH, n); /* d(global mean) = (count / global) d(slice mean) */
        qa_dit_backward(&m, deps);
        if (pass) rc = reducer->sum(reducer->ctx, m.grads, m.n_params, err);
        else memcpy(whole, m.grads, sizeof(float) * m.n_params);
    }
    double largest = 0, diff = 0;
    for (size_t i = 0; i < m.n_params && !rc; i++) {
        largest = fmax(largest, fabs(whole[i]));
        diff = fmax(diff, fabs((double)whole[i] - m.grads[i]));
    }
    qa_free(x); qa_free(target); qa_free(pred); qa_free(deps); qa_free(whole);
    qa_rng_free(r);
    qa_dit_free(&m);
    return rc ? -1 : diff / largest;
}

static void print_outcomes(const qa_mpi_world *world, const qa_run_outcome *outcomes, int n_runs, FILE *out) {
    fprintf(out, "mpi-selftest: %d runs over %d rank%s (MPI: %s)\n", n_runs, world->size, world->size > 1 ? "s" : "",
            world->library);
    int *per_rank = qa_alloc(sizeof(int) * (size_t)world->size);
    for (int i = 0; i < n_runs; i++) {
        const qa_run_outcome *o = &outcomes[i];
        fprintf(out, "run %d: rank %d %s\n", i, o->rank,
                o->status == QA_RUN_OK ? "ok" : (o->status == QA_RUN_FAILED ? "FAILED" : "not run"));
        if (o->status != QA_RUN_NOT_RUN) per_rank[o->rank]++;
    }
    for (int r = 0; r < world->size; r++) fprintf(out, "rank %d ran %d\n", r, per_rank[r]);
    qa_free(per_rank);
}

int qa_mpi_selftest(const qa_mpi_world *world, int argc, char **argv, FILE *out, qa_error *err) {
    int n_runs = 0, fail_index = -1;
    int rc = parse_selftest(argc, argv, &n_runs, &fail_index, err);
    if (rc) return rc;
    selftest_ctx ctx = {fail_index};
    qa_run_outcome *outcomes = qa_alloc(sizeof(qa_run_outcome) * (size_t)n_runs);
    rc = qa_mpi_share_runs(world, n_runs, selftest_run, &ctx, outcomes, err);
    if (world->rank == 0) print_outcomes(world, outcomes, n_runs, out);
    qa_free(outcomes);
    qa_grad_reducer reducer;
    const qa_grad_reducer *reduce = qa_mpi_grad_reducer(world, &reducer);
    if (reduce && rc != QA_ERR_INPUT) {
        qa_error sum_err = {0, ""};
        int sum_rc = QA_OK;
        const size_t n = 1000003; /* not a multiple of any vector width */
        int exact = check_gradient_sum(world, reduce, n, &sum_err, &sum_rc);
        if (!sum_rc && world->rank == 0)
            fprintf(out, "gradient sum: %zu floats over %d ranks: %s\n", n, world->size, exact ? "exact" : "WRONG");
        if (!rc && (sum_rc || !exact))
            rc = sum_rc ? qa_fail(err, sum_rc, "%s", sum_err.msg) : qa_fail(err, QA_ERR_RUN, "gradient sum is wrong");
        /* float sums in another order: a few ulps of the largest entry */
        const double tolerance = 1e-5;
        double dp = data_parallel_difference(world, reduce, &sum_err);
        if (dp >= 0 && world->rank == 0)
            fprintf(out, "data-parallel gradient: %d ranks' slices of a batch of 8, summed, against the whole batch in one "
                         "process: largest difference %.2e of the largest entry (tolerance %.0e)\n", world->size, dp,
                    tolerance);
        if (!rc && (dp < 0 || dp > tolerance))
            rc = dp < 0 ? qa_fail(err, QA_ERR_RUN, "%s", sum_err.msg)
                        : qa_fail(err, QA_ERR_RUN, "data-parallel gradient differs by %.2e", dp);
    } else if (world->rank == 0) {
        fprintf(out, "gradient sum: not under MPI with several ranks (the training loop gets no reducer)\n");
    }
    return rc;
}
