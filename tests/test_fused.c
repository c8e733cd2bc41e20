/* The deployed model's fused operations, and the inference forward's one-pass layer norm and
 * grouped softmax, against the unfused operations they replace. The fused ones process rows in
 * groups whose in-order float sums run side by side (nn.c, QA_ROW_GROUP): each row must still get
 * exactly the floats of the one-row-at-a-time code, including the rows of a last, partial group. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/diffusion.h"
#include "harness/int8.h"
#include "harness/model.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/rng.h"

static int count_differing(const float *a, const float *b, size_t n) {
    int d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

/* 3 x 3 heads x 7 queries = 63 softmax rows: seven whole groups of 8 and a partial one. */
Test(fused, deployed_attention_equals_attention_bit_for_bit) {
    enum { B = 3, T = 7, C = 12, H = 3, N = B * T * C, P = B * H * T * T };
    qa_rng *r = qa_rng_new(21);
    float q[N], k[N], v[N], out[N], ref[N], probs[P], probs_ref[P];
    qa_rng_fill_normal(r, q, N, 2.0f);
    qa_rng_fill_normal(r, k, N, 2.0f);
    qa_rng_fill_normal(r, v, N, 1.0f);
    qa_attention_forward(ref, probs_ref, q, k, v, B, T, C, H);
    qa_attention_forward_inference(out, probs, q, k, v, B, T, C, H);
    cr_expect_eq(count_differing(out, ref, N), 0, "outputs differ");
    cr_expect_eq(count_differing(probs, probs_ref, P), 0, "probabilities differ");
    /* the probabilities are a softmax: each row sums to 1 (checked in double) */
    for (int row = 0; row < B * H * T; row++) {
        double s = 0;
        for (int j = 0; j < T; j++) s += probs[row * T + j];
        cr_expect(fabs(s - 1.0) < 1e-5, "row %d sums to %g", row, s);
    }
    qa_rng_free(r);
}

/* 5 x 13 = 65 rows of the model's width 128 (eight whole groups and one row), against layer
 * norm, modulation and the layer's own quantization run one after the other. Odd rows sit far
 * from zero with a small spread, where one ulp of the mean moves h by a fifth of a code step:
 * statistics summed in any other order than the unfused layer's would change codes. */
Test(fused, grouped_layernorm_codes_equal_unfused) {
    enum { B = 5, T = 13, C = 128, M = B * T, O = 4 };
    qa_rng *r = qa_rng_new(22);
    float *x = qa_alloc(sizeof(float) * M * C), *ln = qa_alloc(sizeof(float) * M * C), *h = qa_alloc(sizeof(float) * M * C);
    float *hq = qa_alloc(sizeof(float) * M * C), mod[B * 2 * C], mean[M], rstd[M], W[O * C], dl[O], z[O];
    qa_rng_fill_normal(r, x, (size_t)M * C, 1.5f);
    for (int i = 0; i < M * C; i++)
        x[i] = (i / C) % 2 ? 300.0f + 0.01f * x[i] : x[i] + 0.1f * (float)(i / C);
    qa_rng_fill_normal(r, mod, B * 2 * C, 0.4f);
    qa_rng_fill_normal(r, W, O * C, 0.1f);
    qa_quant_search_rows(W, O, C, 8, dl, z);
    qa_quant_fake_rows(W, W, O, C, 8, dl, z);
    qa_layernorm_forward(ln, mean, rstd, x, M, C);
    qa_modulate_forward(h, ln, mod, mod + C, 2 * C, B, T, C);
    qa_actq aq = {8, 0, 0, 0};
    qa_actq_forward(&aq, hq, h, (size_t)M * C); /* calibrates */
    qa_int8_linear ref, fused;
    cr_assert_eq(qa_int8_linear_init(&ref, W, dl, z, C, O, NULL), 0);
    cr_assert_eq(qa_int8_linear_init(&fused, W, dl, z, C, O, NULL), 0);
    qa_int8_linear_quantize(&ref, &aq, h, M);
    qa_layernorm_modulate_quantize(&fused, &aq, x, mod, mod + C, 2 * C, B, T, C);
    int bad = 0;
    for (int i = 0; i < M * C; i++) bad += ref.xq[i] != fused.xq[i];
    cr_expect_eq(bad, 0, "%d of %d codes differ", bad, M * C);
    cr_expect_eq(memcmp(ref.xsum, fused.xsum, sizeof(int32_t) * M), 0, "code sums differ");
    /* the codes are those of the section-0 quantizer of h, written out here */
    for (int i = 0; i < M * C; i += 37) {
        float c = nearbyintf(h[i] / aq.delta) + aq.zero;
        c = c < 0.f ? 0.f : (c > 255.f ? 255.f : c);
        cr_expect_eq(fused.xq[i], (uint8_t)c, "code %d: %d, want %g", i, fused.xq[i], (double)c);
    }
    qa_int8_linear_free(&ref); qa_int8_linear_free(&fused);
    qa_free(x); qa_free(ln); qa_free(h); qa_free(hq);
    qa_rng_free(r);
}

/* Layer norm and modulation in one pass (an inference forward) against the two layers run one
 * after the other: 5 x 13 = 65 rows of width 128 (eight whole groups and one row), odd rows far
 * from zero with a small spread, where statistics summed in another order would differ. */
Test(fused, layernorm_modulate_forward_equals_layernorm_then_modulate) {
    enum { B = 5, T = 13, C = 128, M = B * T };
    qa_rng *r = qa_rng_new(27);
    float *x = qa_alloc(sizeof(float) * M * C), *ln = qa_alloc(sizeof(float) * M * C);
    float *ref = qa_alloc(sizeof(float) * M * C), *h = qa_alloc(sizeof(float) * M * C), mod[B * 3 * C], mean[M], rstd[M];
    qa_rng_fill_normal(r, x, (size_t)M * C, 1.5f);
    for (int i = 0; i < M * C; i++)
        x[i] = (i / C) % 2 ? -200.0f + 0.01f * x[i] : x[i] + 0.1f * (float)(i / C);
    qa_rng_fill_normal(r, mod, B * 3 * C, 0.4f);
    qa_layernorm_forward(ln, mean, rstd, x, M, C);
    qa_modulate_forward(ref, ln, mod + C, mod + 2 * C, 3 * C, B, T, C);
    qa_layernorm_modulate_forward(h, x, mod + C, mod + 2 * C, 3 * C, B, T, C);
    cr_expect_eq(count_differing(h, ref, (size_t)M * C), 0, "values differ");
    /* and the values are the layer's: row 2 (near zero, where float error is small), element 5,
     * written out in double */
    const float *x2 = x + 2 * C;
    double mu = 0, var = 0;
    for (int c = 0; c < C; c++) mu += x2[c];
    mu /= C;
    for (int c = 0; c < C; c++) var += (x2[c] - mu) * (x2[c] - mu);
    var /= C;
    double want = (x2[5] - mu) / sqrt(var + 1e-6) * (1.0 + mod[2 * C + 5]) + mod[C + 5];
    cr_expect(fabs(h[2 * C + 5] - want) < 1e-5 * (1.0 + fabs(want)), "h = %g, want %g", (double)h[2 * C + 5], want);
    qa_free(x); qa_free(ln); qa_free(ref); qa_free(h);
    qa_rng_free(r);
}

/* A model of the real model's token count (patch 4: 50 tokens) with 3 heads and capacity for B
 * inputs, its weights moved off their init (adaLN-zero would make the modulation trivial). */
static void perturbed_model(qa_dit *m, int B) {
    const qa_dit_config cfg = {.img = 28, .patch = 4, .dim = 48, .depth = 2, .heads = 3, .mlp_ratio = 2,
                               .n_classes = 10, .n_spare = 1};
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(m, &cfg, B, &err), 0);
    qa_dit_init_weights(m, 23);
    qa_rng *r = qa_rng_new(24);
    float *noise = qa_alloc(sizeof(float) * m->n_params);
    qa_rng_fill_normal(r, noise, m->n_params, 0.05f);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += noise[i];
    qa_free(noise);
    qa_rng_free(r);
}

/* B noisy inputs at spread timesteps and labels (the null slot included). */
static void model_inputs(int B, uint64_t seed, float *x, float *t, int *y) {
    qa_rng *r = qa_rng_new(seed);
    qa_rng_fill_normal(r, x, (size_t)B * 784, 1.0f);
    for (int i = 0; i < B; i++) { t[i] = (float)(i * 170 % 1000); y[i] = i % 12; }
    qa_rng_free(r);
}

/* A W8A8 model (perturbed_model) with every linear on the integer kernel after calibrating on B inputs. */
static void deployed_model(qa_dit *m, int B) {
    perturbed_model(m, B);
    float *x = qa_alloc(sizeof(float) * (size_t)B * 784), *e = qa_alloc(sizeof(float) * (size_t)B * 784);
    float *t = qa_alloc(sizeof(float) * B);
    int *y = qa_alloc(sizeof(int) * B);
    model_inputs(B, 25, x, t, y);
    qa_dit_quantize_base(m, 8, 8, 0);
    qa_dit_forward(m, x, t, y, B, e); /* calibrates */
    cr_assert_eq(qa_dit_enable_int8(m), m->n_lin);
    qa_free(x); qa_free(e); qa_free(t); qa_free(y);
}

/* The inference forward's eps against the training forward's, memcmp, at batches 1, 3 and 8 (50,
 * 150, 400 token rows; 150, 450, 1200 softmax rows: partial row groups at 1 and 3), the inference
 * forward run first and again after the training forward (neither leaves state the other reads). */
static void expect_inference_equals_training(qa_dit *m, const char *what) {
    static const int batches[3] = {1, 3, 8};
    for (int i = 0; i < 3; i++) {
        const int B = batches[i];
        float *x = qa_alloc(sizeof(float) * (size_t)B * 784), *t = qa_alloc(sizeof(float) * B);
        float *ref = qa_alloc(sizeof(float) * (size_t)B * 784), *e1 = qa_alloc(sizeof(float) * (size_t)B * 784);
        float *e2 = qa_alloc(sizeof(float) * (size_t)B * 784);
        int *y = qa_alloc(sizeof(int) * B);
        model_inputs(B, 30 + (uint64_t)i, x, t, y);
        qa_dit_forward_inference(m, x, t, y, B, e1);
        cr_expect(m->inference, "%s: the model knows its last forward kept nothing", what);
        qa_dit_forward(m, x, t, y, B, ref);
        cr_expect(!m->inference, "%s: a training forward clears the flag", what);
        qa_dit_forward_inference(m, x, t, y, B, e2);
        cr_expect_eq(count_differing(e1, ref, (size_t)B * 784), 0, "%s, batch %d: eps differs", what, B);
        cr_expect_eq(count_differing(e2, ref, (size_t)B * 784), 0, "%s, batch %d: eps differs (second)", what, B);
        double norm = 0;
        for (int j = 0; j < B * 784; j++) norm += (double)ref[j] * ref[j];
        cr_expect(norm > 1e-3 * B * 784, "%s: eps is not all zeros (%g)", what, norm);
        qa_free(x); qa_free(t); qa_free(ref); qa_free(e1); qa_free(e2); qa_free(y);
    }
}

/* f32, and bf16 matmuls (whose inference forward keeps the bf16 attention). */
Test(fused, f32_inference_forward_equals_training_forward) {
    qa_dit m;
    perturbed_model(&m, 8);
    expect_inference_equals_training(&m, "f32");
    qa_dit_set_dtype(&m, QA_DTYPE_BF16);
    expect_inference_equals_training(&m, "bf16");
    qa_dit_free(&m);
}

/* The fake-quantized W8A8 model (the deployed model's float reference) and the integer model with
 * its fusion off run the same norm and attention code as the f32 model. */
Test(fused, w8a8_inference_forward_equals_training_forward) {
    qa_dit m;
    perturbed_model(&m, 8);
    float x[8 * 784], t[8], e[8 * 784];
    int y[8];
    model_inputs(8, 29, x, t, y);
    qa_dit_quantize_base(&m, 8, 8, 0);
    qa_dit_forward(&m, x, t, y, 8, e); /* calibrates */
    expect_inference_equals_training(&m, "W8A8 fake-quantized");
    cr_assert_eq(qa_dit_enable_int8(&m), m.n_lin);
    m.int8_unfused = 1;
    expect_inference_equals_training(&m, "W8A8 integer, unfused");
    qa_dit_free(&m);
}

/* A training step's gradients are the same whether or not an inference forward (of another
 * batch size) ran just before its forward: the inference forward skips buffers the backward
 * reads, and the training forward fills them again. */
Test(fused, inference_forward_leaves_training_gradients_unchanged) {
    enum { B = 3 };
    qa_dit m;
    perturbed_model(&m, 8);
    float x[B * 784], t[B], e[B * 784], de[B * 784], other[8 * 784], ot[8], oe[8 * 784];
    int y[B], oy[8];
    model_inputs(B, 31, x, t, y);
    model_inputs(8, 32, other, ot, oy);
    float *g[2] = {qa_alloc(sizeof(float) * m.n_params), qa_alloc(sizeof(float) * m.n_params)};
    for (int pass = 0; pass < 2; pass++) {
        qa_dit_zero_grads(&m);
        if (pass) qa_dit_forward_inference(&m, other, ot, oy, 8, oe);
        qa_dit_forward(&m, x, t, y, B, e);
        for (int i = 0; i < B * 784; i++) de[i] = 2.0f * e[i] / (B * 784);
        qa_dit_backward(&m, de);
        memcpy(g[pass], m.grads, sizeof(float) * m.n_params);
    }
    cr_expect_eq(count_differing(g[1], g[0], m.n_params), 0, "gradients differ");
    double norm = 0;
    for (size_t i = 0; i < m.n_params; i++) norm += (double)g[0][i] * g[0][i];
    cr_expect(norm > 0, "the gradients are not all zeros");
    qa_free(g[0]); qa_free(g[1]);
    qa_dit_free(&m);
}

/* Guided DDIM samples of labels[3] from the unfused and the fused forward of the same model. */
static void sample_unfused_and_fused(qa_dit *m, const int *labels, int steps, uint64_t seed, float *unfused,
                                     float *fused) {
    qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    m->int8_unfused = 1;
    qa_ddim_sample(m, &s, labels, 3, steps, 3.0f, seed, unfused);
    m->int8_unfused = 0;
    qa_ddim_sample(m, &s, labels, 3, steps, 3.0f, seed, fused);
}

/* Guided DDIM sampling with the fused forward gives the unfused model's samples exactly. */
Test(fused, fused_sampling_equals_unfused_samples) {
    qa_dit m;
    deployed_model(&m, 6);
    const int labels[3] = {1, 4, 7};
    float *fused = qa_alloc(sizeof(float) * 3 * 784), *unfused = qa_alloc(sizeof(float) * 3 * 784);
    sample_unfused_and_fused(&m, labels, 4, 25, unfused, fused);
    cr_expect_eq(count_differing(fused, unfused, 3 * 784), 0, "samples differ");
    double norm = 0;
    for (int i = 0; i < 3 * 784; i++) norm += (double)fused[i] * fused[i];
    cr_expect(norm > 1.0, "the samples are not all zeros (%g)", norm);
    qa_free(fused); qa_free(unfused);
    qa_dit_free(&m);
}

/* With integer attention, the fused forward codes q, k, v straight from the stacked layer's
 * accumulator and the attention output straight for the output projection: the same codes as the
 * unfused integer layers and attention, so the same samples. */
Test(fused, fused_integer_attention_sampling_equals_unfused) {
    qa_dit m;
    deployed_model(&m, 6);
    const int labels[3] = {2, 5, 8};
    float *fused = qa_alloc(sizeof(float) * 3 * 784), *unfused = qa_alloc(sizeof(float) * 3 * 784);
    float *float_att = qa_alloc(sizeof(float) * 3 * 784);
    sample_unfused_and_fused(&m, labels, 3, 26, unfused, float_att);
    qa_dit_set_attention_quant(&m, QA_ATTN_INT8);
    qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    qa_ddim_sample(&m, &s, labels, 3, 1, 3.0f, 26, fused); /* the first forward calibrates on the reference */
    for (int l = 0; l < m.cfg.depth; l++) cr_assert(qa_int8_attention_ready(&m.att_q[l]), "block %d", l);
    sample_unfused_and_fused(&m, labels, 3, 26, unfused, fused);
    cr_expect_eq(count_differing(fused, unfused, 3 * 784), 0, "samples differ");
    cr_expect(count_differing(fused, float_att, 3 * 784) > 0, "integer attention changes the samples");
    qa_free(fused); qa_free(unfused); qa_free(float_att);
    qa_dit_free(&m);
}
