/* LoRA plugin: gradients by finite differences, merge == forward, init, bytes, errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/registry.h"
#include "harness/rng.h"
#include "tests/method_check.h"

enum { IN = 12, OUT = 9, M = 5, R = 3 };

/* A rank-R layer whose W, b and then A are drawn from one generator (seed 11), B made non-zero from
 * it too, so that every gradient path is exercised. */
static void setup_layer(mc_layer *f, float scale) {
    qa_rng *r = qa_rng_new(11);
    mc_layer_new_rng(f, qa_method_find("lora"), IN, OUT, r);
    f->cfg.w_bits = 8;
    f->cfg.a_bits = 8;
    f->cfg.rank = R;
    f->cfg.lora_scale = scale;
    qa_error err;
    cr_assert_eq(mc_layer_init(f, r, "test.layer", NULL, &err), 0);
    qa_param ps[4];
    int np = f->m->params(f->state, ps, 4);
    cr_assert_eq(np, 2);
    qa_rng_fill_normal(r, ps[1].data, ps[1].n, 0.2f);
    qa_rng_free(r);
}

static void check_grads(float scale) {
    mc_layer f;
    setup_layer(&f, scale);
    qa_rng *r = qa_rng_new(5);
    float x[M * IN], w[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    qa_rng_fill_normal(r, w, M * OUT, 1.0f);
    char what[32];
    snprintf(what, sizeof what, "scale %g", scale);
    mc_check_grads(&f, x, w, M, 2, &(mc_fd_plan){.param_stride = 3, .x_stride = 2, .h = 1e-2, .tol = 2e-3}, what);
    qa_rng_free(r);
    mc_layer_free(&f);
}

Test(lora, gradients_match_finite_differences) { check_grads(1.0f); }
Test(lora, gradients_with_scale) { check_grads(0.5f); }

Test(lora, starts_as_the_base_layer) {
    mc_layer f;
    qa_rng *r = qa_rng_new(3);
    mc_layer_new_rng(&f, qa_method_find("lora"), IN, OUT, r);
    f.cfg.rank = R;
    f.cfg.lora_scale = 1.0f;
    qa_error err;
    cr_assert_eq(mc_layer_init(&f, r, "t", NULL, &err), 0);
    float x[M * IN], y[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    f.m->forward(f.state, x, y, M);
    mc_expect_affine(x, f.W, f.b, y, M, IN, OUT, 1e-4, "B = 0 at init: y must equal x W^T + b");
    /* A is kaiming-uniform with bound 1/sqrt(in) */
    qa_param ps[2];
    f.m->params(f.state, ps, 2);
    mc_expect_lora_start(&ps[0], &ps[1], IN);
    qa_rng_free(r);
    mc_layer_free(&f);
}

Test(lora, merged_weight_reproduces_the_forward) {
    mc_layer f;
    setup_layer(&f, 0.75f);
    qa_rng *r = qa_rng_new(8);
    float x[M * IN], y[M * OUT];
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    qa_deployed d;
    mc_check_merge(&f, x, M, y, &d, 1e-4f, "lora");
    cr_expect_eq(d.needs_ptq, 1, "8-bit LoRA needs the PTQ pass");
    cr_expect_eq(d.merge, QA_MERGE_FLOAT_ADD_PTQ);
    qa_deployed_free(&d);
    qa_rng_free(r);
    mc_layer_free(&f);
}

Test(lora, bytes_by_category) {
    mc_layer f;
    setup_layer(&f, 1.0f);
    qa_bytes b;
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.trainable, (size_t)R * (IN + OUT) * 4);
    cr_expect_eq(b.gradients, b.trainable);
    cr_expect_eq(b.optimizer, 2 * b.trainable);
    cr_expect_eq(b.frozen, (size_t)(IN * OUT + OUT) * 4);
    cr_expect_eq(b.deployed, (size_t)IN * OUT + 2 * OUT * 4 + OUT * 4, "8-bit codes + scale/zero + bias");
    mc_layer_free(&f);
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
