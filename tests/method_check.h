/* Checks shared by the method suites (tests/test_<method>.c): a layer under test built from seeded
 * random weights, lookups of what a layer exposes, and the checks every adapter gets in the same
 * form: its gradients against central finite differences of L = sum(y . w), its merged weight
 * against its training forward, its output against x W^T + b computed here in double, and the
 * LoRA start (A kaiming-uniform, B = 0). Each check is a Criterion expectation that names the
 * entry it fails on, prefixed by the caller's `what`. */
#ifndef QA_TEST_METHOD_CHECK_H
#define QA_TEST_METHOD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "harness/runs.h"
#include "tests/common.h"

/* A layer under test: the method, its state and the FP layer it was built from. */
typedef struct {
    const qa_method *m;
    void *state;       /* allocated by mc_layer_init; live says whether init succeeded */
    int live;
    int in, out;
    float *W, *b;      /* [out, in], [out] */
    trng data;         /* the stream W and b were drawn from, left for the suite's further draws */
    double opts[8];    /* the method's options struct (aligned, 64 bytes at most): defaults, then mc_layer_option */
    qa_method_cfg cfg; /* .options = opts; the suite sets the bits, rank, scale, ... */
} mc_layer;

/* L for method m at [out, in]: W = 0.3 N(0, 1), then b = 0.1 N(0, 1), drawn from trng(seed)
 * (mc_layer_new) or from the harness's generator r (mc_layer_new_rng, which leaves L->data
 * unset); the method's default options; cfg zero but for .options. */
void mc_layer_new(mc_layer *L, const qa_method *m, int in, int out, uint64_t seed);
void mc_layer_new_rng(mc_layer *L, const qa_method *m, int in, int out, qa_rng *r);
/* One option of L (asserted to be accepted). */
void mc_layer_option(mc_layer *L, const char *name, const char *value);
/* m->init on L's weights with L->cfg, the generator r and the layer name; returns init's status
 * (on failure L->state stays allocated and not live: mc_layer_free frees it without destroy). */
int mc_layer_init(mc_layer *L, qa_rng *r, const char *name, const qa_step_ctx *step, qa_error *err);
/* The same with a generator of its own, qa_rng_new(rng_seed), freed after init. */
int mc_layer_init_seeded(mc_layer *L, uint64_t rng_seed, const char *name, const qa_step_ctx *step, qa_error *err);
/* destroy() when live, then the state, W and b. */
void mc_layer_free(mc_layer *L);

/* Lookups, asserted to find name. mc_inspect's result stays valid for the next 7 calls. */
const qa_named_tensor *mc_find_tensor(const qa_named_tensor *ts, int n, const char *name);
const qa_named_tensor *mc_inspect(const qa_method *m, void *state, const char *name);
qa_param *mc_find_param(qa_param *ps, int n, const char *name);
const qa_stored_tensor *mc_find_stored(const qa_deployed *d, const char *name);

/* (L(v + h) - L(v - h)) / (2 h) for L = sum(y . w), y [M, out] the forward of x [M, in]; v is one
 * entry of a parameter or of x itself, and is restored. */
double mc_central_difference(const qa_method *m, void *state, const float *x, const float *w, int M, int out, float *v,
                             double h);

/* Which entries a gradient check visits, and how close it must be. */
typedef struct {
    size_t param_stride; /* every param_stride-th entry of each trainable tensor */
    int x_stride;        /* every x_stride-th entry of x */
    double h;            /* the central difference's step */
    double tol;          /* |numeric - analytic| < tol (1 + |numeric|) */
} mc_fd_plan;

/* The layer's gradients with dL/dy = w for L = sum(y . w): params() gives want_params tensors
 * (asserted), their gradients are zeroed, one forward of x [M, in] and one backward, then every
 * visited entry of each parameter and of dx against mc_central_difference. */
void mc_check_grads(const mc_layer *L, float *x, const float *w, int M, int want_params, const mc_fd_plan *plan,
                    const char *what);

/* The forward of x [M, in] into y [M, out], merge() into d (asserted), and the deployed weights
 * against that forward: |y - (x W_d^T + b)| < tol entrywise. d is the caller's to check further
 * and to free. */
void mc_check_merge(const mc_layer *L, const float *x, int M, float *y, qa_deployed *d, float tol, const char *what);

/* y [M, out] against x W^T + b [M, out] computed in double: |ref - y| < tol (mc_expect_affine),
 * or close_rel(y, ref, rel, abs_tol) (mc_expect_affine_rel). */
void mc_expect_affine(const float *x, const float *W, const float *b, const float *y, int M, int in, int out, double tol,
                      const char *what);
void mc_expect_affine_rel(const float *x, const float *W, const float *b, const float *y, int M, int in, int out, double rel,
                          double abs_tol, const char *what);

/* The LoRA start: A kaiming-uniform over in inputs (max |A| in (0.5 bound, bound], bound =
 * 1 / sqrt(in)), B = 0. */
void mc_expect_lora_start(const qa_param *A, const qa_param *B, int in);

/* ---- end to end: a tiny model, a recipe's sweep over it, its report ---- */

/* The tiny DiT of the end-to-end tests (as test_adapt.c's), weights from qa_dit_init_weights(seed). */
void mc_tiny_dit(qa_dit *m, uint64_t seed);
/* dir/dit.h5 from m and dir/evaluator.h5, an evaluator of 8 classes with weights of seed 2. */
void mc_save_tiny_models(const char *dir, const qa_dit *m);
/* The recipe text parsed, its sweep run into out and its run records loaded (*n of them; the
 * caller frees them with qa_runs_free); each step asserted. */
qa_run_record *mc_sweep(const char *text, const char *out, int *n);
/* The report of out as text (the caller frees it). */
char *mc_report(const char *out);

#endif
