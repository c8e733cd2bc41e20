/* A finished (or diverged) run file written by hand with the HDF5 API, in the layout
 * harness/runs.c reads: the report and plot suites build results folders from these, with
 * metric values they know. For Criterion suites only (it asserts). */
#ifndef QA_TEST_FAKE_RUNS_H
#define QA_TEST_FAKE_RUNS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness/results.h"

typedef struct {
    const char *id, *method, *bits, *status, *variant;
    int w_bits, a_bits, rank, needs_ptq;
    long seed;
    double loss, subj, prompt, bpw;
} run_def;

static inline void write_run(const char *dir, const run_def *d) {
    char path[512], grp[160], p[300];
    snprintf(path, sizeof path, "%s/%s.h5", dir, d->id);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(path, &f, &err), 0, "%s", err.msg);
    snprintf(grp, sizeof grp, "/runs/%s", d->id);
    cr_assert_eq(qa_h5_attr_set_str(f, grp, "method", d->method, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, grp, "bits", d->bits, &err), 0);
    cr_assert_eq(qa_h5_attr_set_str(f, grp, "status", d->status, &err), 0);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, "rank", d->rank, &err), 0);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, "seed", (double)d->seed, &err), 0);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, "w_bits", d->w_bits, &err), 0);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, "a_bits", d->a_bits, &err), 0);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, "needs_ptq", d->needs_ptq, &err), 0);
    snprintf(p, sizeof p, "%s/train", grp);
    cr_assert_eq(qa_h5_table_create(f, p, 5, "step,loss,lr,grad_norm,seconds", &err), 0, "%s", err.msg);
    double rows[3 * 5] = {0, 1.0, 1e-3, 1, 0.1, 1, 0.9, 1e-3, 1, 0.2, 2, 0.8, 1e-3, 1, 0.3};
    cr_assert_eq(qa_h5_table_append(f, p, rows, 3, &err), 0, "%s", err.msg);
    if (strcmp(d->status, "done") == 0) {
        snprintf(p, sizeof p, "%s/eval/%s", grp, d->variant);
        cr_assert_eq(qa_h5_attr_set_f64(f, p, "heldout_loss", d->loss, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_f64(f, p, "subject_fidelity", d->subj, &err), 0);
        cr_assert_eq(qa_h5_attr_set_f64(f, p, "prompt_fidelity", d->prompt, &err), 0);
        cr_assert_eq(qa_h5_attr_set_f64(f, p, "bits_per_weight", d->bpw, &err), 0);
        char q[400];
        snprintf(q, sizeof q, "%s/heldout_per_image", p);
        double per[2] = {d->loss - 0.01, d->loss + 0.01};
        int64_t dims[1] = {2};
        cr_assert_eq(qa_h5_write(f, q, QA_H5_F64, per, 1, dims, &err), 0, "%s", err.msg);
    } else {
        cr_assert_eq(qa_h5_attr_set_str(f, grp, "fail_reason", "loss is NaN at step 3", &err), 0);
    }
    cr_assert_eq(qa_h5_close(f, &err), 0, "%s", err.msg);
}

/* One more f64 attribute on /runs/<id>/<sub> of a run file already written. */
static inline void set_run_f64(const char *dir, const char *id, const char *sub, const char *name, double value) {
    char path[512], grp[200];
    snprintf(path, sizeof path, "%s/%s.h5", dir, id);
    snprintf(grp, sizeof grp, "/runs/%s/%s", id, sub);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, name, value, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), 0, "%s", err.msg);
}

#endif
