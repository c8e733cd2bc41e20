#include "tests/method_check.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/adapt.h"
#include "harness/backend.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/recipe.h"
#include "harness/report.h"
#include "harness/util.h"

static void layer_alloc(mc_layer *L, const qa_method *m, int in, int out) {
    cr_assert_not_null(m, "method not registered");
    memset(L, 0, sizeof *L);
    L->m = m;
    L->in = in;
    L->out = out;
    L->W = qa_alloc(sizeof(float) * (size_t)in * out);
    L->b = qa_alloc(sizeof(float) * (size_t)out);
    cr_assert(m->options_size <= sizeof L->opts, "%s: options struct of %zu bytes", m->name, m->options_size);
    qa_method_options_defaults(m, L->opts);
    L->cfg.options = L->opts;
}

void mc_layer_new(mc_layer *L, const qa_method *m, int in, int out, uint64_t seed) {
    layer_alloc(L, m, in, out);
    L->data = trng_new(seed);
    fill_normal(&L->data, L->W, (size_t)in * out, 0.3);
    fill_normal(&L->data, L->b, (size_t)out, 0.1);
}

void mc_layer_new_rng(mc_layer *L, const qa_method *m, int in, int out, qa_rng *r) {
    layer_alloc(L, m, in, out);
    qa_rng_fill_normal(r, L->W, (size_t)in * out, 0.3f);
    qa_rng_fill_normal(r, L->b, (size_t)out, 0.1f);
}

void mc_layer_option(mc_layer *L, const char *name, const char *value) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_method_option_set(L->m, L->opts, name, value, &err), 0, "%s = %s: %s", name, value, err.msg);
}

int mc_layer_init(mc_layer *L, qa_rng *r, const char *name, const qa_step_ctx *step, qa_error *err) {
    qa_layer_init li = {L->in, L->out, L->W, L->b, &L->cfg, r, name, NULL, step};
    L->state = qa_alloc(L->m->state_size);
    int rc = L->m->init(L->state, &li, err);
    L->live = rc == 0;
    return rc;
}

int mc_layer_init_seeded(mc_layer *L, uint64_t rng_seed, const char *name, const qa_step_ctx *step, qa_error *err) {
    qa_rng *r = qa_rng_new(rng_seed);
    int rc = mc_layer_init(L, r, name, step, err);
    qa_rng_free(r);
    return rc;
}

void mc_layer_free(mc_layer *L) {
    if (L->live) L->m->destroy(L->state);
    qa_free(L->state);
    qa_free(L->W);
    qa_free(L->b);
    memset(L, 0, sizeof *L);
}

const qa_named_tensor *mc_find_tensor(const qa_named_tensor *ts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    cr_assert_fail("inspect() has no tensor %s", name);
    return NULL;
}

const qa_named_tensor *mc_inspect(const qa_method *m, void *state, const char *name) {
    static qa_named_tensor all[32], kept[8]; /* a ring: a result outlives the next 7 calls */
    static int next;
    int n = m->inspect(state, all, 32);
    qa_named_tensor *t = &kept[next++ % 8];
    *t = *mc_find_tensor(all, n, name);
    return t;
}

qa_param *mc_find_param(qa_param *ps, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ps[i].name, name) == 0) return &ps[i];
    cr_assert_fail("params() has no tensor %s", name);
    return NULL;
}

const qa_stored_tensor *mc_find_stored(const qa_deployed *d, const char *name) {
    for (int k = 0; k < d->n_stored; k++)
        if (strcmp(d->stored[k].name, name) == 0) return &d->stored[k];
    cr_assert_fail("merge() stores no %s", name);
    return NULL;
}

static double objective(const qa_method *m, void *state, const float *x, const float *w, int M, int out, float *y) {
    m->forward(state, x, y, M);
    return dot_fd(y, w, (size_t)M * out);
}

double mc_central_difference(const qa_method *m, void *state, const float *x, const float *w, int M, int out, float *v,
                             double h) {
    float *y = qa_alloc(sizeof(float) * (size_t)M * out);
    const float old = *v;
    *v = old + (float)h;
    double lp = objective(m, state, x, w, M, out, y);
    *v = old - (float)h;
    double lm = objective(m, state, x, w, M, out, y);
    *v = old;
    qa_free(y);
    return (lp - lm) / (2 * h);
}

void mc_check_grads(const mc_layer *L, float *x, const float *w, int M, int want_params, const mc_fd_plan *plan,
                    const char *what) {
    qa_param ps[8];
    int np = L->m->params(L->state, ps, 8);
    cr_assert_eq(np, want_params, "%s: %d trainable tensors, want %d", what, np, want_params);
    for (int p = 0; p < np; p++) memset(ps[p].grad, 0, sizeof(float) * ps[p].n);
    float *y = qa_alloc(sizeof(float) * (size_t)M * L->out), *dx = qa_alloc(sizeof(float) * (size_t)M * L->in);
    L->m->forward(L->state, x, y, M);
    L->m->backward(L->state, w, dx, M); /* dL/dy = w for L = sum(y w) */
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < ps[p].n; i += plan->param_stride) {
            double num = mc_central_difference(L->m, L->state, x, w, M, L->out, &ps[p].data[i], plan->h);
            cr_expect(fabs(num - ps[p].grad[i]) < plan->tol * (1 + fabs(num)), "%s: %s[%zu]: numeric %g analytic %g", what,
                      ps[p].name, i, num, ps[p].grad[i]);
        }
    for (int i = 0; i < M * L->in; i += plan->x_stride) {
        double num = mc_central_difference(L->m, L->state, x, w, M, L->out, &x[i], plan->h);
        cr_expect(fabs(num - dx[i]) < plan->tol * (1 + fabs(num)), "%s: dx[%d]: numeric %g analytic %g", what, i, num, dx[i]);
    }
    qa_free(y);
    qa_free(dx);
}

void mc_check_merge(const mc_layer *L, const float *x, int M, float *y, qa_deployed *d, float tol, const char *what) {
    const int in = L->in, out = L->out;
    L->m->forward(L->state, x, y, M);
    qa_error err = {0, ""};
    cr_assert_eq(L->m->merge(L->state, d, &err), 0, "%s: %s", what, err.msg);
    float *Wd = qa_alloc(sizeof(float) * (size_t)in * out), *y2 = qa_alloc(sizeof(float) * (size_t)M * out);
    qa_deployed_weights(d, Wd);
    qa_matmul(M, out, in, x, 0, Wd, 1, y2, 0, L->b);
    for (int i = 0; i < M * out; i++)
        cr_expect(fabsf(y[i] - y2[i]) < tol, "%s: y[%d] %g vs merged %g", what, i, y[i], y2[i]);
    qa_free(Wd);
    qa_free(y2);
}

/* x W^T + b [M, out] in double */
static double *affine_ref(const float *x, const float *W, const float *b, int M, int in, int out) {
    double *ref = qa_alloc(sizeof(double) * (size_t)M * out);
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double s = b[o];
            for (int i = 0; i < in; i++) s += (double)x[(size_t)m * in + i] * W[(size_t)o * in + i];
            ref[(size_t)m * out + o] = s;
        }
    return ref;
}

void mc_expect_affine(const float *x, const float *W, const float *b, const float *y, int M, int in, int out, double tol,
                      const char *what) {
    double *ref = affine_ref(x, W, b, M, in, out);
    for (int k = 0; k < M * out; k++)
        cr_expect(fabs(ref[k] - y[k]) < tol, "%s: y[%d,%d] %g vs x W^T + b %g", what, k / out, k % out, y[k], ref[k]);
    qa_free(ref);
}

void mc_expect_affine_rel(const float *x, const float *W, const float *b, const float *y, int M, int in, int out, double rel,
                          double abs_tol, const char *what) {
    double *ref = affine_ref(x, W, b, M, in, out);
    for (int k = 0; k < M * out; k++)
        cr_expect(close_rel(y[k], ref[k], rel, abs_tol), "%s: y[%d,%d] %g vs x W^T + b %g", what, k / out, k % out, y[k],
                  ref[k]);
    qa_free(ref);
}

void mc_expect_lora_start(const qa_param *A, const qa_param *B, int in) {
    float bound = 1.0f / sqrtf((float)in), mx = 0;
    for (size_t i = 0; i < A->n; i++) mx = fabsf(A->data[i]) > mx ? fabsf(A->data[i]) : mx;
    cr_expect(mx <= bound && mx > 0.5f * bound, "A range %g vs kaiming bound %g", mx, bound);
    for (size_t i = 0; i < B->n; i++) cr_expect_eq(B->data[i], 0.0f, "B must start at zero");
}

void mc_tiny_dit(qa_dit *m, uint64_t seed) {
    qa_error err = {0, ""};
    qa_dit_config c = {28, 7, 16, 1, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(m, &c, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(m, seed);
}

void mc_save_tiny_models(const char *dir, const qa_dit *m) {
    qa_error err = {0, ""};
    char p[512];
    snprintf(p, sizeof p, "%s/dit.h5", dir);
    qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(p, m, NULL, &meta, &err), 0, "%s", err.msg);
    qa_classifier clf;
    cr_assert_eq(qa_clf_create(&clf, 8, &err), 0, "%s", err.msg);
    qa_clf_init_weights(&clf, 2);
    snprintf(p, sizeof p, "%s/evaluator.h5", dir);
    cr_assert_eq(qa_clf_save(p, &clf, 0.5, "test", 0, 0, &err), 0, "%s", err.msg);
    qa_clf_free(&clf);
}

qa_run_record *mc_sweep(const char *text, const char *out, int *n) {
    qa_error err = {0, ""};
    qa_recipe *r;
    cr_assert_eq(qa_recipe_parse("tiny.recipe", text, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    qa_recipe_free(r);
    qa_run_record *runs;
    cr_assert_eq(qa_runs_load(out, &runs, n, &err), 0, "%s", err.msg);
    return runs;
}

char *mc_report(const char *out) {
    qa_error err = {0, ""};
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    return buf;
}
