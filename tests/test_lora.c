/* LoRA plugin: gradients by finite differences, merge == forward, init, bytes, errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/registry.h"
#include "harness/rng.h"

enum { IN = 12, OUT = 9, M = 5, R = 3 };

typedef struct {
    const qa_method *m;
    void *state;
    float W[OUT * IN], b[OUT];
    qa_method_cfg cfg;
} fixture;

static void setup_layer(fixture *f, float scale) {
    f->m = qa_method_find("lora");
    cr_assert_not_null(f->m);
    qa_rng *r = qa_rng_new(11);
    qa_rng_fill_normal(r, f->W, OUT * IN, 0.3f);
    qa_rng_fill_normal(r, f->b, OUT, 0.1f);
    f->cfg = (qa_method_cfg){.w_bits = 8, .a_bits = 8, .rank = R, .lora_scale = scale};
    qa_layer_init li = {IN, OUT, f->W, f->b, &f->cfg, r, "test.layer", NULL, NULL};
    f->state = qa_alloc(f->m->state_size);
    qa_error err;
    cr_assert_eq(f->m->init(f->state, &li, &err), 0);
    /* give B non-zero values so every gradient path is exercised */
    qa_param ps[4];
    int np = f->m->params(f->state, ps, 4);
    cr_assert_eq(np, 2);
    qa_rng_fill_normal(r, ps[1].data, ps[1].n, 0.2f);
    qa_rng_free(r);
}

static void teardown_layer(fixture *f) {
    f->m->destroy(f->state);
    qa_free(f->state);
}

static double objective(fixture *f, const float *x, const float *w) {
    float y[M * OUT];
    f->m->forward(f->state, x, y, M);
    double s = 0;
    for (int i = 0; i < M * OUT; i++) s += (double)y[i] * w[i];
    return s;
}

static void check_grads(float scale) {
    fixture f;
    setup_layer(&f, scale);
    qa_rng *r = qa_rng_new(5);
    float x[M * IN], w[M * OUT], dx[M * IN] = {0};
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    qa_rng_fill_normal(r, w, M * OUT, 1.0f);
    qa_param ps[2];
    f.m->params(f.state, ps, 2);
    for (int i = 0; i < 2; i++) memset(ps[i].grad, 0, sizeof(float) * ps[i].n);
    float y[M * OUT];
    f.m->forward(f.state, x, y, M);
    f.m->backward(f.state, w, dx, M); /* dL/dy = w for L = sum(y w) */
    const double h = 1e-2;
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < ps[p].n; i += 3) {
            float old = ps[p].data[i];
            ps[p].data[i] = old + (float)h;
            double lp = objective(&f, x, w);
            ps[p].data[i] = old - (float)h;
            double lm = objective(&f, x, w);
            ps[p].data[i] = old;
            double num = (lp - lm) / (2 * h);
            cr_expect(fabs(num - ps[p].grad[i]) < 2e-3 * (1 + fabs(num)), "%s[%zu]: numeric %g analytic %g (scale %g)",
                      ps[p].name, i, num, ps[p].grad[i], scale);
        }
    }
    for (int i = 0; i < M * IN; i += 2) {
        float old = x[i];
        x[i] = old + (float)h;
        double lp = objective(&f, x, w);
        x[i] = old - (float)h;
        double lm = objective(&f, x, w);
        x[i] = old;
        double num = (lp - lm) / (2 * h);
        cr_expect(fabs(num - dx[i]) < 2e-3 * (1 + fabs(num)), "dx[%d]: numeric %g analytic %g", i, num, dx[i]);
    }
    qa_rng_free(r);
    teardown_layer(&f);
}

Test(lora, gradients_match_finite_differences) { check_grads(1.0f); }
Test(lora, gradients_with_scale) { check_grads(0.5f); }

Test(lora, starts_as_the_base_layer) {
    fixture f;
    f.m = qa_method_find("lora");
    qa_rng *r = qa_rng_new(3);
    qa_rng_fill_normal(r, f.W, OUT * IN, 0.3f);
    qa_rng_fill_normal(r, f.b, OUT, 0.1f);
    f.cfg = (qa_method_cfg){.w_bits = 0, .a_bits = 0, .rank = R, .lora_scale = 1.0f};
    qa_layer_init li = {IN, OUT, f.W, f.b, &f.cfg, r, "t", NULL, NULL};
    f.state = qa_alloc(f.m->state_size);
    qa_error err;
    cr_assert_eq(f.m->init(f.state, &li, &err), 0);
    float x[M * IN], y[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    f.m->forward(f.state, x, y, M);
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OUT; o++) {
            double ref = f.b[o];
            for (int k = 0; k < IN; k++) ref += (double)x[i * IN + k] * f.W[o * IN + k];
            cr_expect(fabs(ref - y[i * OUT + o]) < 1e-4, "B = 0 at init: y must equal x W^T + b");
        }
    /* A is kaiming-uniform with bound 1/sqrt(in) */
    qa_param ps[2];
    f.m->params(f.state, ps, 2);
    float bound = 1.0f / sqrtf((float)IN), mx = 0;
    for (size_t i = 0; i < ps[0].n; i++) mx = fabsf(ps[0].data[i]) > mx ? fabsf(ps[0].data[i]) : mx;
    cr_expect(mx <= bound && mx > 0.5f * bound, "A range %g vs bound %g", mx, bound);
    for (size_t i = 0; i < ps[1].n; i++) cr_expect_eq(ps[1].data[i], 0.0f, "B must start at zero");
    qa_rng_free(r);
    teardown_layer(&f);
}

Test(lora, merged_weight_reproduces_the_forward) {
    fixture f;
    setup_layer(&f, 0.75f);
    qa_rng *r = qa_rng_new(8);
    float x[M * IN], y[M * OUT], y2[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    f.m->forward(f.state, x, y, M);
    qa_deployed d;
    qa_error err;
    cr_assert_eq(f.m->merge(f.state, &d, &err), 0);
    cr_expect_eq(d.needs_ptq, 1, "8-bit LoRA needs the PTQ pass");
    cr_expect_eq(d.merge, QA_MERGE_FLOAT_ADD_PTQ);
    float Wd[OUT * IN];
    qa_deployed_weights(&d, Wd);
    qa_matmul(M, OUT, IN, x, 0, Wd, 1, y2, 0, f.b);
    for (int i = 0; i < M * OUT; i++) cr_expect(fabsf(y[i] - y2[i]) < 1e-4f, "y[%d] %g vs merged %g", i, y[i], y2[i]);
    qa_deployed_free(&d);
    qa_rng_free(r);
    teardown_layer(&f);
}

Test(lora, bytes_by_category) {
    fixture f;
    setup_layer(&f, 1.0f);
    qa_bytes b;
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.trainable, (size_t)R * (IN + OUT) * 4);
    cr_expect_eq(b.gradients, b.trainable);
    cr_expect_eq(b.optimizer, 2 * b.trainable);
    cr_expect_eq(b.frozen, (size_t)(IN * OUT + OUT) * 4);
    cr_expect_eq(b.deployed, (size_t)IN * OUT + 2 * OUT * 4 + OUT * 4, "8-bit codes + scale/zero + bias");
    teardown_layer(&f);
}

Test(lora, rejects_a_rank_larger_than_the_layer) {
    const qa_method *m = qa_method_find("lora");
    float W[4 * 3] = {0}, b[4] = {0};
    qa_method_cfg cfg = {.w_bits = 0, .a_bits = 0, .rank = 5, .lora_scale = 1.0f};
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {3, 4, W, b, &cfg, r, "blocks.0.attn.q", NULL, NULL};
    void *st = qa_alloc(m->state_size);
    qa_error err = {0, ""};
    cr_expect_eq(m->init(st, &li, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "rank 5") && strstr(err.msg, "blocks.0.attn.q"), "message: %s", err.msg);
    qa_free(st);
    qa_rng_free(r);
}

Test(registry, finds_methods_by_name) {
    cr_expect_not_null(qa_method_find("lora"));
    cr_expect_null(qa_method_find("no-such-method"));
    int n = 0;
    for (const qa_method *const *m = qa_methods(); *m; m++) {
        n++;
        cr_expect((*m)->name && (*m)->summary && (*m)->init && (*m)->forward && (*m)->backward && (*m)->params &&
                  (*m)->merge && (*m)->bytes && (*m)->destroy, "method %s must fill every slot", (*m)->name);
    }
    cr_expect_geq(n, 1);
}
