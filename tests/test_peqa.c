/* PEQA plugin (methods/peqa.c): the frozen codes against the section-0 search applied by hand
 * (per channel and per group), a hand-computed layer, gradients of the scales and the input by
 * central differences, the deploy (same codes, new scales) against the training forward, the
 * stored tensors decoded by their formula, bits per weight and bytes, and bad options; the
 * written artifact of PEQA and of LR-QAT decoded exactly; and a tiny recipe with
 * method = [peqa, lr-qat] end to end (train, merge, artifact, report). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <unistd.h>

#include "harness/adapt.h"
#include "harness/artifact.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/model.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/report.h"
#include "harness/results.h"
#include "harness/rng.h"
#include "harness/runs.h"
#include "tests/common.h"
#include "tests/method_check.h"

/* A [out, in] layer with random W, b; group = "0" per channel. */
static int make_layer(mc_layer *L, int in, int out, const char *group, int bits, uint64_t seed, qa_error *err) {
    mc_layer_new(L, qa_method_find("peqa"), in, out, seed);
    mc_layer_option(L, "peqa_group", group);
    L->cfg.w_bits = bits;
    L->cfg.a_bits = 8;
    L->cfg.rank = 2;
    L->cfg.lora_scale = 1.0f;
    return mc_layer_init_seeded(L, seed + 7, "blocks.0.attn.q", NULL, err);
}

static qa_param the_scale(mc_layer *L) {
    qa_param p[4];
    cr_assert_eq(L->m->params(L->state, p, 4), 1, "PEQA trains the scales alone");
    cr_assert_str_eq(p[0].name, "scale");
    return p[0];
}

/* The held codes, as merge() unpacks them into the stored "codes". */
static void held_codes(mc_layer *L, int32_t *q) {
    qa_deployed d;
    qa_error err;
    cr_assert_eq(L->m->merge(L->state, &d, &err), 0, "%s", err.msg);
    const qa_stored_tensor *sq = mc_find_stored(&d, "codes");
    memcpy(q, sq->i32, sizeof(int32_t) * (size_t)sq->rows * sq->cols);
    qa_deployed_free(&d);
}

/* ---- init: the section-0 search per row or per group, codes frozen --------------------------- */

static void check_codes(int in, int out, const char *group, int g, int bits) {
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, in, out, group, bits, 3, &err), 0, "%s", err.msg);
    qa_named_tensor ts[8];
    int nt = L.m->inspect(L.state, ts, 8);
    int32_t *q = qa_alloc(sizeof(int32_t) * (size_t)in * out);
    held_codes(&L, q);
    const float *scale = mc_find_tensor(ts, nt, "scale")->f32, *zero = mc_find_tensor(ts, nt, "zero_point")->f32;
    const int G = in / g;
    cr_expect_eq(mc_find_tensor(ts, nt, "scale")->dims[0], G);
    const float lmax = (float)((1 << bits) - 1);
    int bad = 0;
    for (int o = 0; o < out; o++)
        for (int j = 0; j < G; j++) {
            float delta, z;
            qa_quant_search(L.W + (size_t)o * in + (size_t)j * g, (size_t)g, bits, &delta, &z);
            cr_expect_eq(scale[(size_t)j * out + o], delta);
            cr_expect_eq(zero[(size_t)j * out + o], z);
            for (int k = 0; k < g; k++) {
                size_t at = (size_t)o * in + (size_t)j * g + k;
                float v = nearbyintf(L.W[at] / delta) + z;
                v = v < 0 ? 0 : (v > lmax ? lmax : v);
                bad += q[at] != (int32_t)v;
            }
        }
    cr_expect_eq(bad, 0, "%d codes differ from the search applied by hand", bad);
    /* starts as the RTN weight: y = x (s0 (q - z0))^T + b */
    int M = 3;
    float *x = qa_alloc(sizeof(float) * M * in), *y = qa_alloc(sizeof(float) * M * out);
    trng t = trng_new(5);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    L.m->forward(L.state, x, y, M);
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double ref = L.b[o];
            for (int i = 0; i < in; i++) {
                size_t at = (size_t)(i / g) * out + o;
                ref += (double)x[m * in + i] * scale[at] * (q[(size_t)o * in + i] - zero[at]);
            }
            cr_expect(close_rel(y[m * out + o], ref, 1e-5, 1e-5), "y[%d,%d] %g vs %g", m, o, y[m * out + o], ref);
        }
    qa_free(x);
    qa_free(y);
    qa_free(q);
    mc_layer_free(&L);
}

Test(peqa, codes_are_the_section0_search_per_channel) { check_codes(24, 5, "0", 24, 4); }
Test(peqa, codes_are_the_section0_search_per_group) { check_codes(24, 5, "8", 8, 3); }
Test(peqa, codes_at_8_bits) { check_codes(16, 3, "0", 16, 8); }
Test(peqa, codes_at_other_widths) { /* 3-bit codes straddle bytes; 11 bits take two */
    check_codes(21, 3, "7", 7, 3);
    check_codes(21, 3, "0", 21, 1);
    check_codes(12, 2, "0", 12, 11);
}

/* ---- a layer by hand ------------------------------------------------------------------------- */

Test(peqa, a_two_bit_layer_by_hand) {
    /* row 0 = 0 1 2 3: the first candidate (delta 1, z 0) is exact; row 1 = -2 0 2 4: delta 2,
     * z = round(1) = 1, codes 0 1 2 3, exact. Then the scales are set to 2 and 0.5. */
    float W[8] = {0, 1, 2, 3, -2, 0, 2, 4}, b[2] = {0.5f, -1};
    const qa_method *m = qa_method_find("peqa");
    qa_method_cfg cfg = {.w_bits = 2, .rank = 1, .lora_scale = 1};
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {4, 2, W, b, &cfg, r, "t", NULL, NULL};
    void *st = qa_alloc(m->state_size);
    qa_error err;
    cr_assert_eq(m->init(st, &li, &err), 0, "%s", err.msg);
    qa_param p;
    cr_assert_eq(m->params(st, &p, 1), 1);
    cr_expect_eq(p.data[0], 1.0f);
    cr_expect_eq(p.data[1], 2.0f);
    p.data[0] = 2.0f;
    p.data[1] = 0.5f;
    float x[4] = {1, 1, 1, 1}, y[2], dy[2] = {1, 2}, dx[4] = {0};
    m->forward(st, x, y, 1);
    /* row 0: 2 (0 + 1 + 2 + 3) + 0.5 = 12.5; row 1: 0.5 (-1 + 0 + 1 + 2) - 1 = 0 */
    cr_expect_float_eq(y[0], 12.5f, 1e-6);
    cr_expect_float_eq(y[1], 0.0f, 1e-6);
    memset(p.grad, 0, sizeof(float) * 2);
    m->backward(st, dy, dx, 1);
    /* ds_o = dy_o * x . (q - z0)_o: 1 * 6 = 6, 2 * 2 = 4 */
    cr_expect_float_eq(p.grad[0], 6.0f, 1e-6);
    cr_expect_float_eq(p.grad[1], 4.0f, 1e-6);
    /* dx_i = sum_o dy_o s_o (q - z0)_oi = 2 (0 1 2 3) + 2 * 0.5 (-1 0 1 2) */
    float want[4] = {-1, 2, 5, 8};
    for (int i = 0; i < 4; i++) cr_expect_float_eq(dx[i], want[i], 1e-6, "dx[%d]", i);
    qa_deployed d;
    cr_assert_eq(m->merge(st, &d, &err), 0);
    cr_assert_not_null(d.w_int, "per channel it deploys integer rows");
    int32_t wint[8] = {0, 1, 2, 3, -1, 0, 1, 2};
    for (int k = 0; k < 8; k++) cr_expect_eq(d.w_int[k], wint[k]);
    cr_expect_eq(d.row_scale[0], 2.0f);
    cr_expect_eq(d.row_scale[1], 0.5f);
    cr_expect_float_eq(d.bits_per_weight, 2 + 64.0 / 4, 1e-12);
    qa_deployed_free(&d);
    m->destroy(st);
    qa_free(st);
    qa_rng_free(r);
}

/* ---- gradients: central differences of L = sum(y . dy) (the layer is linear in s and x) ---- */

static void check_grads(const char *group, int bits) {
    mc_layer L;
    qa_error err;
    const int in = 16, out = 6, M = 5;
    cr_assert_eq(make_layer(&L, in, out, group, bits, 11, &err), 0, "%s", err.msg);
    qa_param p = the_scale(&L);
    trng t = trng_new(12);
    for (size_t k = 0; k < p.n; k++) p.data[k] *= (float)trng_unif(&t, 0.5, 1.5); /* away from s0 */
    float *x = qa_alloc(sizeof(float) * M * in), *y = qa_alloc(sizeof(float) * M * out);
    float *dy = qa_alloc(sizeof(float) * M * out), *dx = qa_alloc(sizeof(float) * M * in);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    fill_normal(&t, dy, (size_t)M * out, 1.0);
    L.m->forward(L.state, x, y, M);
    memset(p.grad, 0, sizeof(float) * p.n);
    L.m->backward(L.state, dy, dx, M);
    for (size_t k = 0; k < p.n; k++) { /* a step relative to the scale */
        double fd = mc_central_difference(L.m, L.state, x, dy, M, out, &p.data[k], 1e-2f * fabsf(p.data[k]) + 1e-4f);
        cr_expect(close_rel(p.grad[k], fd, 2e-3, 2e-3), "d scale[%zu]: %g vs finite difference %g", k, p.grad[k], fd);
    }
    for (int k = 0; k < M * in; k += 7) {
        double fd = mc_central_difference(L.m, L.state, x, dy, M, out, &x[k], 1e-2f);
        cr_expect(close_rel(dx[k], fd, 2e-3, 2e-3), "dx[%d]: %g vs finite difference %g", k, dx[k], fd);
    }
    qa_free(x); qa_free(y); qa_free(dy); qa_free(dx);
    mc_layer_free(&L);
}

Test(peqa, gradients_per_channel_match_finite_differences) { check_grads("0", 4); }
Test(peqa, gradients_per_group_match_finite_differences) { check_grads("4", 3); }

/* ---- deploy: the same codes with the new scales; equals the training forward ------------------ */

static void check_deploy(const char *group, int g, int bits) {
    mc_layer L;
    qa_error err;
    const int in = 32, out = 7, M = 4;
    cr_assert_eq(make_layer(&L, in, out, group, bits, 21, &err), 0, "%s", err.msg);
    int32_t *codes0 = qa_alloc(sizeof(int32_t) * (size_t)in * out);
    held_codes(&L, codes0);
    qa_param p = the_scale(&L);
    trng t = trng_new(22);
    for (size_t k = 0; k < p.n; k++) p.data[k] *= (float)trng_unif(&t, 0.7, 1.3); /* "trained" scales */
    float *x = qa_alloc(sizeof(float) * M * in), *y = qa_alloc(sizeof(float) * M * out);
    fill_normal(&t, x, (size_t)M * in, 1.0);
    L.m->forward(L.state, x, y, M);
    qa_deployed d;
    cr_assert_eq(L.m->merge(L.state, &d, &err), 0, "%s", err.msg);
    cr_expect_eq(d.needs_ptq, 0, "PEQA deploys without PTQ");
    cr_expect_eq(d.merge, QA_MERGE_QAT_CODES);
    cr_expect_eq(d.w_int != NULL, g == in, "integer rows exactly when per channel");
    float *Wd = qa_alloc(sizeof(float) * (size_t)in * out);
    qa_deployed_weights(&d, Wd);
    /* the deployed forward equals the training forward */
    mc_expect_affine_rel(x, Wd, L.b, y, M, in, out, 1e-5, 1e-5, "deployed weights against the training forward");
    /* stored: codes (N bits, the init codes), scale and zero [G, out]; decoded by the formula */
    const int G = in / g;
    const qa_stored_tensor *sq = mc_find_stored(&d, "codes"), *sc = mc_find_stored(&d, "scale"), *sz = mc_find_stored(&d, "zero");
    cr_expect_eq(sq->bits, bits);
    cr_expect_eq(sc->rows, G);
    cr_expect_eq(sz->cols, out);
    int moved = 0;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            size_t at = (size_t)o * in + i, gs = (size_t)(i / g) * out + o;
            cr_expect(sq->i32[at] >= 0 && sq->i32[at] < (1 << bits));
            moved += sq->i32[at] != codes0[at];
            float dec = sc->f32[gs] * ((float)sq->i32[at] - sz->f32[gs]);
            cr_expect_eq(dec, Wd[at], "decoded W[%d,%d] %g vs deployed %g", o, i, dec, Wd[at]);
        }
    cr_expect_eq(moved, 0, "the deployed codes are the frozen init codes");
    cr_expect_float_eq(d.bits_per_weight, bits + 64.0 / g, 1e-12);
    cr_expect(d.bits_per_weight <= bits + 64.0 / g + 1e-12);
    qa_deployed_free(&d);
    qa_free(Wd); qa_free(x); qa_free(y); qa_free(codes0);
    mc_layer_free(&L);
}

Test(peqa, deploy_per_channel_is_the_codes_with_the_trained_scales) { check_deploy("0", 32, 4); }
Test(peqa, deploy_per_group_is_the_codes_with_the_trained_scales) { check_deploy("8", 8, 3); }

Test(peqa, fewest_trainable_parameters_and_bytes) {
    mc_layer L;
    qa_error err;
    cr_assert_eq(make_layer(&L, 64, 16, "0", 4, 31, &err), 0, "%s", err.msg);
    qa_param p = the_scale(&L);
    cr_expect_eq(p.n, 16u, "one scale per output channel");
    cr_expect_float_eq(p.lr_scale, 0.01f, 1e-9, "the default scale_lr");
    qa_bytes b;
    L.m->bytes(L.state, &b);
    cr_expect_eq(b.trainable, 16 * sizeof(float));
    cr_expect_eq(b.optimizer, 2 * 16 * sizeof(float));
    /* 4-bit codes packed + FP32 zero point and bias per row (frozen); + the scale (deployed) */
    cr_expect_eq(b.frozen, 64 * 16 / 2 + 2 * 16 * sizeof(float));
    cr_expect_eq(b.workspace, 64 * 16 * sizeof(float), "C in float, the product's operand");
    cr_expect_eq(b.deployed, 64 * 16 / 2 + 3 * 16 * sizeof(float));
    /* fewer trainable values than a rank-1 LoRA of the same layer (64 + 16) */
    cr_expect_lt(p.n, 64u + 16u);
    mc_layer_free(&L);
    cr_assert_eq(make_layer(&L, 64, 16, "16", 4, 31, &err), 0, "%s", err.msg);
    cr_expect_eq(the_scale(&L).n, 4u * 16u, "one scale per (group, row)");
    mc_layer_free(&L);
}

/* ---- bad input ------------------------------------------------------------------------------- */

Test(peqa, bad_options_name_the_key_and_the_allowed_values) {
    const qa_method *m = qa_method_find("peqa");
    double opts[8];
    qa_method_options_defaults(m, opts);
    qa_error err;
    cr_expect_eq(qa_method_option_set(m, opts, "peqa_group", "-1", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "peqa_group") && strstr(err.msg, "0..4096"), "%s", err.msg);
    cr_expect_eq(qa_method_option_set(m, opts, "scale_lr", "0", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "scale_lr") && strstr(err.msg, "1e-06..100"), "%s", err.msg);
    mc_layer L;
    cr_expect_eq(make_layer(&L, 24, 4, "5", 4, 1, &err), QA_ERR_INPUT, "a group that does not divide d_in");
    cr_expect(strstr(err.msg, "peqa_group = 5") && strstr(err.msg, "24") && strstr(err.msg, "0 = per output channel"), "%s",
              err.msg);
    m->destroy(L.state); /* what a failed init allocated */
    mc_layer_free(&L);
    cr_expect_eq(make_layer(&L, 24, 4, "0", 0, 1, &err), QA_ERR_INPUT, "full precision has no codes");
    cr_expect(strstr(err.msg, "integer weights"), "%s", err.msg);
    m->destroy(L.state); /* what a failed init allocated */
    mc_layer_free(&L);
}

Test(peqa, method_entry) {
    const qa_method *m = qa_method_find("peqa");
    cr_assert_not_null(m);
    cr_expect_eq(m->needs_weight_bits, 1);
    cr_expect(m->flags & QA_METHOD_ROW_CODES_DEPLOY);
    cr_expect_not_null(qa_method_option(m, "peqa_group"));
    cr_expect_not_null(qa_method_option(m, "scale_lr"));
}

/* ---- the artifact: what is written decodes to the deployed weights, at the stated bits ------ */

/* The deployed layer of method (options as "key=value" or NULL) on a trained-looking layer is
 * written with artifact_write (a model of one adapted linear), read back, decoded here with the
 * formula of its encoding and compared exactly; the payload stays within the method's bits per
 * weight (plus HDF5's rounding to whole bytes). */
static void artifact_decodes_exactly(const char *method, const char *option, const char *value, int bits) {
    const qa_method *m = qa_method_find(method);
    cr_assert_not_null(m, "%s not registered", method);
    const int in = 32, out = 8;
    float W[32 * 8], b[8];
    trng t = trng_new(81);
    fill_normal(&t, W, sizeof W / sizeof W[0], 0.3);
    fill_normal(&t, b, 8, 0.1);
    double opts[8];
    cr_assert(m->options_size <= sizeof opts);
    qa_method_options_defaults(m, opts);
    qa_error err = {0, ""};
    if (option) cr_assert_eq(qa_method_option_set(m, opts, option, value, &err), 0, "%s", err.msg);
    qa_method_cfg cfg = {.w_bits = bits, .a_bits = 8, .rank = 2, .lora_scale = 1.0f, .options = opts};
    qa_rng *r = qa_rng_new(82);
    qa_layer_init li = {in, out, W, b, &cfg, r, "blocks.0.attn.q", NULL, NULL};
    void *state = qa_alloc(m->state_size);
    cr_assert_eq(m->init(state, &li, &err), 0, "%s", err.msg);
    qa_param ps[4];
    int np = m->params(state, ps, 4);
    for (int k = 0; k < np; k++) /* "trained": the scales moved, the low-rank factors non-zero */
        for (size_t j = 0; j < ps[k].n; j++)
            ps[k].data[j] = strcmp(ps[k].name, "scale") ? (float)trng_normal(&t) : ps[k].data[j] * (float)trng_unif(&t, 0.8, 1.2);
    float x[32], y[8];
    fill_normal(&t, x, 32, 1.0);
    m->forward(state, x, y, 1);
    qa_deployed d;
    cr_assert_eq(m->merge(state, &d, &err), 0, "%s", err.msg);
    qa_linear lin = {.in = in, .out = out, .method = m, .state = state};
    snprintf(lin.name, sizeof lin.name, "blocks.0.attn.q");
    qa_dit model = {.lin = &lin, .n_lin = 1};
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir, "artifact-peqa");
    snprintf(path, sizeof path, "%s/a.h5", dir);
    qa_artifact_size size;
    cr_assert_eq(qa_artifact_write(path, &model, &d, 0, &size, &err), 0, "%s", err.msg);
    cr_expect_eq(size.float_layers, 0);
    cr_expect(size.payload_bytes * 8 / size.weights <= d.bits_per_weight + 0.5, "%s: %.3f stored bits per weight, stated %.3f",
              method, size.payload_bytes * 8 / size.weights, d.bits_per_weight);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), 0, "%s", err.msg);
    const char *grp = "/layers/blocks.0.attn.q";
    char enc[32];
    cr_assert_eq(qa_h5_attr_get_str(f, grp, "encoding", enc, sizeof enc, &err), 0, "%s", err.msg);
    const char *names[3] = {"codes", "scale", "zero"};
    if (!strcmp(enc, "int_codes")) names[1] = "row_scale";
    float *data[3] = {NULL, NULL, NULL};
    int64_t dims[3][4];
    for (int k = 0; k < (strcmp(enc, "int_codes") ? 3 : 2); k++) {
        char p[200];
        snprintf(p, sizeof p, "%s/%s", grp, names[k]);
        int nd;
        cr_assert_eq(qa_h5_read(f, p, QA_H5_F32, (void **)&data[k], 0, &nd, dims[k], &err), 0, "%s: %s", p, err.msg);
    }
    qa_h5_close(f, &err);
    float want[32 * 8];
    qa_deployed_weights(&d, want);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            float got;
            if (!strcmp(enc, "int_codes")) { /* W = row_scale * code */
                got = data[1][o] * data[0][o * in + i];
            } else { /* W = scale[j,o] (q - zero[j,o]), groups of in / G inputs */
                cr_assert_str_eq(enc, "method");
                int G = (int)dims[1][0], j = i / (in / G);
                got = data[1][j * out + o] * (data[0][o * in + i] - data[2][j * out + o]);
            }
            cr_expect_eq(got, want[o * in + i], "%s: decoded W[%d,%d] %g vs deployed %g", method, o, i, got, want[o * in + i]);
        }
    for (int k = 0; k < 3; k++) free(data[k]);
    qa_deployed_free(&d);
    m->destroy(state);
    qa_free(state);
    qa_rng_free(r);
    rm_rf_dir(dir);
}

Test(peqa, artifact_per_channel_decodes_exactly) { artifact_decodes_exactly("peqa", NULL, NULL, 4); }
Test(peqa, artifact_per_group_decodes_exactly) { artifact_decodes_exactly("peqa", "peqa_group", "8", 3); }
Test(peqa, artifact_of_lr_qat_decodes_exactly) { artifact_decodes_exactly("lr-qat", NULL, NULL, 4); }

/* ---- end to end: a tiny recipe trains, merges, writes the artifact and reports ------------- */

Test(peqa, a_tiny_recipe_runs_merges_and_reports, .timeout = 240) {
    char dir[256], p[700];
    make_tmpdir(dir, sizeof dir, "peqa-e2e");
    qa_error err = {0, ""};
    qa_dit m;
    mc_tiny_dit(&m, 5);
    qa_rng *r = qa_rng_new(6);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.05f * (float)qa_rng_normal(r);
    qa_rng_free(r);
    mc_save_tiny_models(dir, &m);
    char text[2048];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = [peqa, lr-qat]\nbits = [w4a8, w8a8]\nrank = 2\nseed = 0\nimages = 3\nprior_images = 0\n"
             "[train]\nsteps = 3\nbatch = 4\nlr = 1e-2\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\nartifact = 1\n", dir, dir);
    char out[400];
    snprintf(out, sizeof out, "%s/runs", dir);
    int n;
    qa_run_record *runs = mc_sweep(text, out, &n);
    cr_assert_eq(n, 4);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(runs[i].status, "done", "%s", runs[i].id);
        cr_expect_eq(runs[i].needs_ptq, 0, "%s deploys without PTQ", runs[i].id);
        cr_assert_eq(runs[i].n_eval, 1, "%s: the integer deploy alone", runs[i].id);
        cr_expect_str_eq(runs[i].eval[0].variant, "int");
        cr_expect(runs[i].eval[0].heldout_loss > 0 && runs[i].eval[0].heldout_loss < 100, "%s loss %g", runs[i].id,
                  runs[i].eval[0].heldout_loss);
        const int w = runs[i].w_bits; /* codes + at most two FP32 values per row of 16 */
        cr_expect(runs[i].eval[0].bits_per_weight > w && runs[i].eval[0].bits_per_weight <= w + 64.0 / 16 + 1e-9,
                  "%s: %g bits per weight", runs[i].id, runs[i].eval[0].bits_per_weight);
        snprintf(p, sizeof p, "%s/artifacts/%s.h5", out, runs[i].id);
        cr_expect(access(p, F_OK) == 0, "missing artifact %s", p);
    }
    /* PEQA's artifact: the codes are the frozen RTN codes of the checkpoint's weights */
    snprintf(p, sizeof p, "%s/artifacts/peqa-w4a8-r2-s0.h5", out);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(p, 0, &f, &err), 0, "%s", err.msg);
    int checked = 0;
    for (int i = 0; i < m.n_lin; i++) {
        char grp[200];
        snprintf(grp, sizeof grp, "/layers/%s/codes", m.lin[i].name);
        if (!qa_h5_exists(f, grp)) continue;
        void *codes = NULL;
        int nd;
        int64_t dims[4];
        cr_assert_eq(qa_h5_read(f, grp, QA_H5_I32, &codes, 0, &nd, dims, &err), 0, "%s", err.msg);
        const int in = m.lin[i].in, nout = m.lin[i].out;
        cr_assert_eq(dims[0] * dims[1], (int64_t)in * nout);
        int differ = 0;
        for (int o = 0; o < nout; o++) {
            float delta, z;
            qa_quant_search(m.lin[i].W + (size_t)o * in, (size_t)in, 4, &delta, &z);
            for (int k = 0; k < in; k++) {
                float v = nearbyintf(m.lin[i].W[(size_t)o * in + k] / delta) + z;
                v = v < 0 ? 0 : (v > 15 ? 15 : v);
                differ += ((int32_t *)codes)[(size_t)o * in + k] != (int32_t)v;
            }
        }
        cr_expect_eq(differ, 0, "%s: %d stored codes differ from the frozen RTN codes", grp, differ);
        qa_free(codes);
        checked++;
    }
    cr_expect_gt(checked, 0, "the artifact stores the adapted layers' codes");
    qa_h5_close(f, &err);
    /* LR-QAT's artifact: integer rows of 4-bit signed codes and a scale per row */
    snprintf(p, sizeof p, "%s/artifacts/lr-qat-w4a8-r2-s0.h5", out);
    cr_assert_eq(qa_h5_open(p, 0, &f, &err), 0, "%s", err.msg);
    checked = 0;
    for (int i = 0; i < m.n_lin; i++) {
        char grp[200], enc[32], codes_path[240];
        snprintf(grp, sizeof grp, "/layers/%s", m.lin[i].name);
        snprintf(codes_path, sizeof codes_path, "%s/codes", grp);
        if (!qa_h5_exists(f, codes_path)) continue;
        cr_assert_eq(qa_h5_attr_get_str(f, grp, "encoding", enc, sizeof enc, &err), 0, "%s", err.msg);
        cr_expect_str_eq(enc, "int_codes");
        void *codes = NULL;
        int nd;
        int64_t dims[4];
        cr_assert_eq(qa_h5_read(f, codes_path, QA_H5_I32, &codes, 0, &nd, dims, &err), 0, "%s", err.msg);
        int outside = 0;
        for (int64_t k = 0; k < dims[0] * dims[1]; k++) outside += ((int32_t *)codes)[k] < -8 || ((int32_t *)codes)[k] > 7;
        cr_expect_eq(outside, 0, "%s: %d codes outside the signed 4-bit grid", grp, outside);
        qa_free(codes);
        checked++;
    }
    cr_expect_gt(checked, 0);
    qa_h5_close(f, &err);
    qa_runs_free(runs, n);
    char *buf = mc_report(out);
    cr_expect(strstr(buf, "| peqa |") && strstr(buf, "| lr-qat |"), "report:\n%s", buf);
    free(buf);
    qa_dit_free(&m);
    rm_rf_dir(dir);
}
