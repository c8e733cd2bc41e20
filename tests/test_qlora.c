/* QLoRA plugin (methods/qlora.c): NF4 and double-quantization formats checked against
 * hand-computed values and test-side references; the layer's base, gradients by finite
 * differences, deploy variants, bytes and errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "methods/qlora.h"
#include "tests/common.h"
#include "tests/method_check.h"

/* The NF4 table (bitsandbytes' constants), typed in again (doubles), so the module's copy is checked. */
static const double NF4_REF[16] = {
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
};

/* Reference NF4 encoder: the nearest code by distance (a tie goes to the lower code). */
static int nf4_nearest_ref(double v) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabs(v - (double)(float)NF4_REF[k]) < fabs(v - (double)(float)NF4_REF[best])) best = k;
    return best;
}

static float nf4_midpoint(int k) { return (float)(0.5 * (NF4_REF[k] + NF4_REF[k + 1])); }

/* ---- NF4 ---- */

Test(qlora_nf4, code_table_is_the_spec) {
    for (int k = 0; k < 16; k++) cr_expect_eq(qlora_nf4_code[k], (float)NF4_REF[k], "NF4[%d]", k);
}

Test(qlora_nf4, hand_checked_values) {
    cr_expect_eq(qa_qlora_nf4_index(1.0f), 15);
    cr_expect_eq(qa_qlora_nf4_index(-1.0f), 0);
    cr_expect_eq(qa_qlora_nf4_index(0.0f), 7);
    /* 0.5 lies between code 12 (0.4407) and 13 (0.5626); their midpoint is 0.50166 > 0.5 -> 12 */
    cr_expect_eq(qa_qlora_nf4_index(0.5f), 12);
    cr_expect_eq(qa_qlora_nf4_index(0.51f), 13);
    /* -0.3: between 3 (-0.3949) and 4 (-0.2844), midpoint -0.33968 < -0.3 -> 4 */
    cr_expect_eq(qa_qlora_nf4_index(-0.3f), 4);
    /* 0.04: midpoint of 7 and 8 is 0.0397901 < 0.04 -> 8; 0.0397 -> 7 */
    cr_expect_eq(qa_qlora_nf4_index(0.04f), 8);
    cr_expect_eq(qa_qlora_nf4_index(0.0397f), 7);
}

Test(qlora_nf4, a_value_on_a_midpoint_takes_the_lower_code) {
    /* absmax = 1 (first element), so v = w exactly; then every midpoint and its float neighbours */
    float w[1 + 3 * 15];
    w[0] = 1.0f;
    for (int k = 0; k < 15; k++) {
        float m = nf4_midpoint(k);
        w[1 + 3 * k] = m;
        w[2 + 3 * k] = nextafterf(m, 2.0f);
        w[3 + 3 * k] = nextafterf(m, -2.0f);
    }
    uint8_t packed[32];
    float absmax = qa_qlora_nf4_encode_block(w, 46, packed);
    cr_assert_eq(absmax, 1.0f);
    for (int k = 0; k < 15; k++) {
        int i = 1 + 3 * k;
        int on = i % 2 ? packed[i / 2] & 15 : packed[i / 2] >> 4;
        int above = (i + 1) % 2 ? packed[(i + 1) / 2] & 15 : packed[(i + 1) / 2] >> 4;
        int below = (i + 2) % 2 ? packed[(i + 2) / 2] & 15 : packed[(i + 2) / 2] >> 4;
        cr_expect_eq(on, k, "exactly on midpoint %d (%.9g): code %d, want the lower %d", k, (double)w[i], on, k);
        cr_expect_eq(above, k + 1, "just above midpoint %d: code %d", k, above);
        cr_expect_eq(below, k, "just below midpoint %d: code %d", k, below);
    }
}

Test(qlora_nf4, first_element_in_the_high_nibble) {
    /* absmax 2: 2 -> v 1 -> 15; 1 -> 0.5 -> 12; -2 -> 0; 0 -> 7; 0.3 -> 0.15 -> 9
     * (0.15 lies between the midpoints 0.12026 of 8|9 and 0.20352 of 9|10); odd pad -> 7 */
    const float w[5] = {2.0f, 1.0f, -2.0f, 0.0f, 0.3f};
    uint8_t packed[3] = {0xAA, 0xAA, 0xAA};
    cr_assert_eq(qa_qlora_nf4_encode_block(w, 5, packed), 2.0f);
    cr_expect_eq(packed[0], 0xFC, "packed[0] = %#x", packed[0]);
    cr_expect_eq(packed[1], 0x07, "packed[1] = %#x", packed[1]);
    cr_expect_eq(packed[2], 0x97, "packed[2] = %#x", packed[2]);
    float back[5], absmax = 2.0f;
    qa_qlora_nf4_decode(packed, &absmax, 5, back);
    const float want[5] = {2.0f, 2.0f * (float)NF4_REF[12], -2.0f, 0.0f, 2.0f * (float)NF4_REF[9]};
    for (int i = 0; i < 5; i++) cr_expect_eq(back[i], want[i], "decoded[%d] %g vs %g", i, back[i], want[i]);
}

Test(qlora_nf4, zero_block_is_all_code_7) {
    float w[7] = {0};
    uint8_t packed[4];
    cr_assert_eq(qa_qlora_nf4_encode_block(w, 7, packed), 0.0f);
    for (int i = 0; i < 4; i++) cr_expect_eq(packed[i], 0x77);
}

Test(qlora_nf4, round_trip_within_half_the_largest_gap_and_equal_to_the_nearest_code) {
    double max_gap = 0;
    for (int k = 0; k < 15; k++) max_gap = fmax(max_gap, NF4_REF[k + 1] - NF4_REF[k]);
    cr_assert(fabs(max_gap - (1.0 - 0.6961928009986877)) < 1e-12, "the largest gap is between codes 0 and 1");
    enum { N = 64 * 5 + 13 };
    trng r = trng_new(21);
    float w[N], back[N], absmax[6];
    uint8_t packed[(N + 1) / 2];
    fill_normal(&r, w, N, 0.7);
    for (int b = 0; b * 64 < N; b++) {
        int len = N - b * 64 < 64 ? N - b * 64 : 64;
        absmax[b] = qa_qlora_nf4_encode_block(w + b * 64, len, packed + b * 32);
        float ref = 0;
        for (int i = 0; i < len; i++) ref = fmaxf(ref, fabsf(w[b * 64 + i]));
        cr_expect_eq(absmax[b], ref, "block %d absmax", b);
    }
    qa_qlora_nf4_decode(packed, absmax, N, back);
    for (int i = 0; i < N; i++) {
        float a = absmax[i / 64];
        cr_expect(fabs((double)w[i] - back[i]) <= 0.5 * max_gap * a * (1 + 1e-6), "w[%d] %g -> %g (absmax %g)", i,
                  w[i], back[i], a);
        int ref = nf4_nearest_ref((double)(w[i] / a));
        cr_expect_eq(back[i], (float)NF4_REF[ref] * a, "w[%d] = %g: nearest code %d", i, w[i], ref);
    }
}

/* ---- double quantization ---- */

Test(qlora_dq, dynamic_code_table_by_hand) {
    float code[256];
    qa_qlora_dynamic_code_table(code);
    for (int j = 1; j < 256; j++) cr_expect(code[j - 1] < code[j], "sorted strictly: code[%d] %g, code[%d] %g", j - 1,
                                            code[j - 1], j, code[j]);
    cr_expect_eq(code[127], 0.0f, "127 negatives, then 0");
    cr_expect_eq(code[255], 1.0f, "1.0 is the largest entry");
    /* i = 6: 64 midpoints of linspace(0.1, 1, 65), step 0.9/64; the extreme one is 1 - 0.9/128 */
    cr_expect(fabs(code[0] - -0.99296875) < 1e-7, "code[0] = %.9g", code[0]);
    cr_expect(fabs(code[254] - 0.99296875) < 1e-7, "code[254] = %.9g", code[254]);
    /* i = 0: one midpoint of linspace(0.1, 1, 2) = 0.55, times 1e-6 */
    cr_expect(fabs(code[128] - 5.5e-7) < 1e-13, "code[128] = %.9g", code[128]);
    cr_expect(fabs(code[126] + 5.5e-7) < 1e-13, "code[126] = %.9g", code[126]);
    /* i = 1: linspace(0.1, 1, 3) = 0.1, 0.55, 1 -> 0.325, 0.775, times 1e-5 */
    cr_expect(fabs(code[129] - 3.25e-6) < 1e-12, "code[129] = %.9g", code[129]);
    cr_expect(fabs(code[130] - 7.75e-6) < 1e-12, "code[130] = %.9g", code[130]);
    /* i = 2: linspace(0.1, 1, 5) -> 0.2125, 0.4375, 0.6625, 0.8875, times 1e-4 */
    const double i2[4] = {0.2125e-4, 0.4375e-4, 0.6625e-4, 0.8875e-4};
    for (int j = 0; j < 4; j++) cr_expect(fabs(code[131 + j] - i2[j]) < 1e-11, "code[%d] = %.9g", 131 + j, code[131 + j]);
    /* i = 6 has 64 entries in [0.1, 1) on each side; the rest are symmetric */
    int top_decade = 0;
    for (int j = 0; j < 256; j++) top_decade += code[j] >= 0.1f && code[j] < 1.0f;
    cr_expect_eq(top_decade, 64);
    for (int j = 0; j < 127; j++) cr_expect_eq(code[126 - j], -code[128 + j], "symmetry at %d", j);
}

Test(qlora_dq, absmax_round_trip_within_the_code_resolution) {
    enum { NB = 600 }; /* three 256-blocks, the last partial */
    trng r = trng_new(4);
    float absmax[NB], back[NB], absmax2[3], offset, code[256];
    uint8_t q8[NB];
    fill_unif(&r, absmax, NB, 0.01, 2.0);
    absmax[300] = 9.0f; /* one outlier in the second 256-block */
    qa_qlora_dq_encode(absmax, NB, q8, absmax2, &offset);
    qa_qlora_dq_decode(q8, absmax2, offset, NB, back);
    qa_qlora_dynamic_code_table(code);
    double mean = 0;
    for (int b = 0; b < NB; b++) mean += absmax[b];
    mean /= NB;
    cr_expect(fabs(offset - mean) < 1e-6 * mean, "offset %g = mean %g", offset, mean);
    for (int b2 = 0; b2 < 3; b2++) {
        float m = 0;
        for (int b = b2 * 256; b < NB && b < (b2 + 1) * 256; b++) m = fmaxf(m, fabsf(absmax[b] - offset));
        cr_expect_eq(absmax2[b2], m, "absmax2[%d]", b2);
    }
    /* the coarsest step of the code is 0.9/64 (top decade), so the error is at most 0.9/128 absmax2 */
    for (int b = 0; b < NB; b++) {
        double a2 = absmax2[b / 256], v = (absmax[b] - offset) / a2;
        cr_expect(fabs(back[b] - absmax[b]) <= 0.9 / 128 * a2 * (1 + 1e-5) + 1e-6, "absmax[%d] %g -> %g (absmax2 %g)",
                  b, absmax[b], back[b], a2);
        cr_expect_eq(back[b], code[q8[b]] * absmax2[b / 256] + offset, "decode formula at %d", b);
        for (int j = 0; j < 256; j++)
            cr_expect(fabs(v - code[q8[b]]) <= fabs(v - code[j]) + 1e-7, "absmax[%d]: code %d is nearer than %d", b,
                      j, q8[b]);
    }
}

Test(qlora_dq, equal_absmax_values_decode_exactly) {
    float absmax[5] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f}, back[5], absmax2, offset;
    uint8_t q8[5];
    qa_qlora_dq_encode(absmax, 5, q8, &absmax2, &offset);
    qa_qlora_dq_decode(q8, &absmax2, offset, 5, back);
    cr_expect_eq(absmax2, 0.0f);
    for (int i = 0; i < 5; i++) cr_expect_eq(back[i], 0.25f);
}

Test(qlora_dq, bits_per_weight) {
    /* a DiT-XL-sized projection: 4 + 8/64 + 32/(64*256) + 32/n = 4.127 */
    double bits = qa_qlora_nf4_bits_per_weight((size_t)1152 * 1152);
    cr_expect(fabs(bits - 4.127) < 5e-4, "bits/weight %.6f", bits);
    size_t n = (size_t)64 * 256 * 16;
    cr_expect(fabs(qa_qlora_nf4_bits_per_weight(n) - (4 + 8.0 / 64 + 32.0 / (64 * 256) + 32.0 / n)) < 1e-12);
    /* a tiny odd tensor: 117 weights -> 59 packed bytes, 2 q8, 1 absmax2, 1 offset = 59 + 2 + 4 + 4 = 69 bytes */
    cr_expect_eq(qa_qlora_nf4_tensor_bytes(117), (size_t)69);
    cr_expect(fabs(qa_qlora_nf4_bits_per_weight(117) - 8.0 * 69 / 117) < 1e-12);
}

Test(qlora_dq, whole_tensor_over_several_absmax2_blocks) {
    /* 300 NF4 blocks + a partial one: two absmax2 blocks; decode = nearest code x DQ'd absmax */
    enum { N = 64 * 300 + 5, NB = 301 };
    static float w[N], back[N];
    float absmax[NB], absmax_dq[NB], absmax2[2], offset;
    uint8_t q8[NB];
    trng r = trng_new(9);
    fill_normal(&r, w, N, 0.05);
    for (int i = 64 * 200; i < 64 * 201; i++) w[i] *= 8; /* one loud block */
    qlora_nf4_tensor t;
    qa_qlora_nf4_tensor_encode(&t, w, N);
    cr_assert_eq(t.n_blocks, (size_t)NB);
    cr_assert_eq(t.n_blocks2, (size_t)2);
    qa_qlora_nf4_tensor_decode(&t, back);
    for (int b = 0; b < NB; b++) {
        absmax[b] = 0;
        for (int i = b * 64; i < N && i < (b + 1) * 64; i++) absmax[b] = fmaxf(absmax[b], fabsf(w[i]));
    }
    qa_qlora_dq_encode(absmax, NB, q8, absmax2, &offset);
    qa_qlora_dq_decode(q8, absmax2, offset, NB, absmax_dq);
    cr_expect_eq(t.offset, offset);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float want = (float)NF4_REF[nf4_nearest_ref((double)(w[i] / absmax[i / 64]))] * absmax_dq[i / 64];
        bad += back[i] != want;
    }
    cr_expect_eq(bad, 0, "%d of %d weights differ from the reference", bad, N);
    qa_qlora_nf4_tensor_free(&t);
}

/* ---- the layer ---- */

enum { IN = 13, OUT = 9, M = 5, R = 3, NW = IN * OUT }; /* 117 weights: a partial block, an odd count */

static void setup_layer(mc_layer *f, int w_bits, float scale, int random_B) {
    mc_layer_new(f, &qa_method_qlora, IN, OUT, 11);
    f->cfg.w_bits = w_bits;
    f->cfg.a_bits = 8;
    f->cfg.rank = R;
    f->cfg.lora_scale = scale;
    qa_error err;
    cr_assert_eq(mc_layer_init_seeded(f, 11, "test.layer", NULL, &err), 0);
    qa_param ps[4];
    cr_assert_eq(f->m->params(f->state, ps, 4), 2);
    if (random_B) fill_normal(&f->data, ps[1].data, ps[1].n, 0.2); /* every gradient path exercised */
}

static const float *W_dq_of(mc_layer *f) { return mc_inspect(f->m, f->state, "W_dq")->f32; }

static void check_grads(int w_bits, float scale) {
    mc_layer f;
    setup_layer(&f, w_bits, scale, 1);
    trng t = trng_new(5);
    float x[M * IN], w[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    fill_normal(&t, w, M * OUT, 1.0);
    char what[32];
    snprintf(what, sizeof what, "W%d s %g", w_bits, scale);
    mc_check_grads(&f, x, w, M, 2, &(mc_fd_plan){.param_stride = 2, .x_stride = 2, .h = 1e-2, .tol = 2e-3}, what);
    mc_layer_free(&f);
}

Test(qlora, gradients_nf4_base) { check_grads(4, 1.0f); }
Test(qlora, gradients_int8_base_with_scale) { check_grads(8, 0.5f); }
Test(qlora, gradients_fp_base) { check_grads(0, 2.0f); }

Test(qlora, base_kind_follows_the_weight_bits) {
    const int bits[3] = {4, 8, 0}, want[3] = {QLORA_BASE_NF4, QLORA_BASE_INT, QLORA_BASE_FP};
    for (int k = 0; k < 3; k++) {
        mc_layer f;
        setup_layer(&f, bits[k], 1.0f, 0);
        const qa_named_tensor *t = mc_inspect(f.m, f.state, "base_kind");
        cr_expect_eq(t->i32[0], want[k], "W%d: base %d (%s)", bits[k], t->i32[0], qlora_base_names[t->i32[0]]);
        mc_layer_free(&f);
    }
}

Test(qlora, nf4_base_is_the_nearest_code_times_the_double_quantized_absmax) {
    mc_layer f;
    setup_layer(&f, 4, 1.0f, 0);
    const float *W_dq = W_dq_of(&f);
    /* test-side: exact block absmax, its DQ round trip, the nearest NF4 code of w / absmax */
    float absmax[2], absmax_dq[2], absmax2, offset;
    uint8_t q8[2];
    for (int b = 0; b < 2; b++) {
        absmax[b] = 0;
        for (int i = b * 64; i < NW && i < (b + 1) * 64; i++) absmax[b] = fmaxf(absmax[b], fabsf(f.W[i]));
    }
    qa_qlora_dq_encode(absmax, 2, q8, &absmax2, &offset);
    qa_qlora_dq_decode(q8, &absmax2, offset, 2, absmax_dq);
    for (int i = 0; i < NW; i++) {
        int code = nf4_nearest_ref((double)(f.W[i] / absmax[i / 64]));
        cr_expect_eq(W_dq[i], (float)NF4_REF[code] * absmax_dq[i / 64], "W_dq[%d] %g vs ref %g", i, W_dq[i],
                     (float)NF4_REF[code] * absmax_dq[i / 64]);
        cr_expect(fabsf(W_dq[i] - f.W[i]) < 0.16f * absmax[i / 64], "W_dq[%d] %g far from W %g", i, W_dq[i], f.W[i]);
    }
    mc_layer_free(&f);
}

Test(qlora, int_base_is_the_section0_quantizer) {
    const int bits[5] = {8, 3, 2, 5, 1}; /* held as bytes at 5..8, packed (a 3-bit code may straddle) below */
    for (int k = 0; k < 5; k++) {
        mc_layer f;
        setup_layer(&f, bits[k], 1.0f, 0);
        float delta[OUT], zero[OUT], Wq[NW];
        qa_quant_search_rows(f.W, OUT, IN, bits[k], delta, zero);
        qa_quant_fake_rows(Wq, f.W, OUT, IN, bits[k], delta, zero);
        const float *W_dq = W_dq_of(&f);
        for (int i = 0; i < NW; i++) cr_expect_eq(W_dq[i], Wq[i], "W%d: W_dq[%d] %g vs quant_fake_rows %g", bits[k], i, W_dq[i], Wq[i]);
        /* and it stays so after a forward (the base is re-dequantized from its codes) */
        float x[M * IN] = {0}, y[M * OUT];
        f.m->forward(f.state, x, y, M);
        W_dq = W_dq_of(&f);
        for (int i = 0; i < NW; i++) cr_expect_eq(W_dq[i], Wq[i]);
        mc_layer_free(&f);
    }
}

Test(qlora, starts_as_the_quantized_base_layer) {
    mc_layer f;
    setup_layer(&f, 4, 1.0f, 0);
    float W_dq[NW];
    memcpy(W_dq, W_dq_of(&f), sizeof W_dq);
    trng t = trng_new(3);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    f.m->forward(f.state, x, y, M);
    mc_expect_affine(x, W_dq, f.b, y, M, IN, OUT, 1e-4, "B = 0 at init: y must equal x W_dq^T + b");
    qa_param ps[2];
    f.m->params(f.state, ps, 2);
    mc_expect_lora_start(&ps[0], &ps[1], IN);
    mc_layer_free(&f);
}

static void check_merge_reproduces_forward(int w_bits) {
    mc_layer f;
    setup_layer(&f, w_bits, 0.75f, 1);
    trng t = trng_new(8);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    qa_deployed d;
    char what[16];
    snprintf(what, sizeof what, "W%d", w_bits);
    mc_check_merge(&f, x, M, y, &d, 1e-4f, what);
    cr_expect_eq(d.needs_ptq, w_bits > 0, "W%d: needs_ptq %d", w_bits, d.needs_ptq);
    cr_expect_eq(d.merge, QA_MERGE_FLOAT_ADD_PTQ);
    cr_expect_eq(d.bits_per_weight, w_bits > 0 ? w_bits : 32);
    cr_assert_not_null(d.w_fp);
    qa_deployed_free(&d);
    mc_layer_free(&f);
}

Test(qlora, merged_weight_reproduces_the_forward_nf4) { check_merge_reproduces_forward(4); }
Test(qlora, merged_weight_reproduces_the_forward_int8) { check_merge_reproduces_forward(8); }
Test(qlora, merged_weight_reproduces_the_forward_fp) { check_merge_reproduces_forward(0); }

Test(qlora, nf4_variant_only_over_an_nf4_base) {
    mc_layer f;
    setup_layer(&f, 4, 1.0f, 1);
    qa_deployed d;
    qa_error err;
    cr_assert_eq(f.m->merge(f.state, &d, &err), 0);
    cr_assert_eq(d.n_extra, 1);
    cr_expect_str_eq(d.extra_name[0], "nf4");
    cr_expect(fabs(d.extra_bits[0] - 8.0 * 69 / NW) < 1e-12, "extra_bits %g: the storage of 117 weights", d.extra_bits[0]);
    /* D2 = NF4 + DQ re-quantization of the merged FP weight */
    qlora_nf4_tensor t;
    qa_qlora_nf4_tensor_encode(&t, d.w_fp, NW);
    float requant[NW];
    qa_qlora_nf4_tensor_decode(&t, requant);
    qa_qlora_nf4_tensor_free(&t);
    int changed = 0;
    for (int i = 0; i < NW; i++) {
        cr_expect_eq(d.extra_w[0][i], requant[i], "extra_w[%d]", i);
        changed += d.extra_w[0][i] != d.w_fp[i];
    }
    cr_expect_gt(changed, NW / 2, "re-quantization must move most merged weights (%d of %d)", changed, NW);
    qa_deployed_free(&d);
    mc_layer_free(&f);

    setup_layer(&f, 8, 1.0f, 1);
    cr_assert_eq(f.m->merge(f.state, &d, &err), 0);
    cr_expect_eq(d.n_extra, 1, "no NF4 variant over an INT8 base");
    cr_expect_str_eq(d.extra_name[0], "basegrid");
    qa_deployed_free(&d);
    mc_layer_free(&f);
}

Test(qlora, nf4_variant_of_an_untrained_adapter_is_the_base_up_to_dq) {
    /* B = 0: re-quantizing W_dq keeps every NF4 code; only the DQ'd absmax may move a little */
    mc_layer f;
    setup_layer(&f, 4, 1.0f, 0);
    const float *W_dq = W_dq_of(&f);
    qa_deployed d;
    qa_error err;
    cr_assert_eq(f.m->merge(f.state, &d, &err), 0);
    for (int b = 0; b < 2; b++) {
        float a = 0;
        for (int i = b * 64; i < NW && i < (b + 1) * 64; i++) a = fmaxf(a, fabsf(W_dq[i]));
        for (int i = b * 64; i < NW && i < (b + 1) * 64; i++)
            cr_expect(fabsf(d.extra_w[0][i] - W_dq[i]) <= 0.01f * a, "nf4[%d] %g vs base %g", i, d.extra_w[0][i], W_dq[i]);
    }
    qa_deployed_free(&d);
    mc_layer_free(&f);
}

Test(qlora, bytes_by_category) {
    const size_t lr = (size_t)R * (IN + OUT) * 4, bias = OUT * 4;
    mc_layer f;
    setup_layer(&f, 4, 1.0f, 0);
    qa_bytes b;
    f.m->bytes(f.state, &b);
    /* 59 packed bytes + 2 q8 + one FP32 absmax2 + FP32 offset, then the bias */
    cr_expect_eq(b.frozen, (size_t)(59 + 2 + 4 + 4) + bias, "nf4 frozen %zu", b.frozen);
    cr_expect_eq(b.workspace, (size_t)NW * 4, "the f32 W_dq refilled from the codes");
    cr_expect_eq(b.trainable, lr);
    cr_expect_eq(b.gradients, lr);
    cr_expect_eq(b.optimizer, 2 * lr);
    cr_expect_eq(b.deployed, (size_t)(NW * 4 + 7) / 8 + 2 * OUT * 4 + bias, "INT4 deploy");
    mc_layer_free(&f);

    setup_layer(&f, 8, 1.0f, 0);
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.frozen, (size_t)NW + 2 * OUT * 4 + bias, "int8 frozen: codes + scale/zero per row + bias");
    cr_expect_eq(b.deployed, (size_t)NW + 2 * OUT * 4 + bias);
    cr_expect_eq(b.workspace, (size_t)NW * 4, "the f32 W_dq refilled from the codes");
    mc_layer_free(&f);

    setup_layer(&f, 3, 1.0f, 0);
    f.m->bytes(f.state, &b);
    /* 117 3-bit codes packed: ceil(351 / 8) = 44 bytes */
    cr_expect_eq(b.frozen, (size_t)44 + 2 * OUT * 4 + bias, "int3 frozen: packed codes + scale/zero per row + bias");
    cr_expect_eq(b.workspace, (size_t)NW * 4);
    mc_layer_free(&f);

    setup_layer(&f, 0, 1.0f, 0);
    f.m->bytes(f.state, &b);
    cr_expect_eq(b.frozen, (size_t)NW * 4 + bias);
    cr_expect_eq(b.deployed, (size_t)NW * 4 + bias);
    cr_expect_eq(b.workspace, 0, "at fp W_dq is the frozen base itself");
    mc_layer_free(&f);
}

Test(qlora, rejects_bad_ranks_and_widths) {
    float W[4 * 3] = {0}, b[4] = {0};
    qa_rng *r = qa_rng_new(1);
    qa_method_cfg cfg = {.w_bits = 4, .a_bits = 0, .rank = 5, .lora_scale = 1.0f};
    qa_layer_init li = {3, 4, W, b, &cfg, r, "blocks.0.attn.q", NULL, NULL};
    void *st = qa_alloc(qa_method_qlora.state_size);
    qa_error err = {0, ""};
    cr_expect_eq(qa_method_qlora.init(st, &li, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "rank 5") && strstr(err.msg, "blocks.0.attn.q"), "message: %s", err.msg);
    cfg.rank = 1;
    cfg.w_bits = 12;
    cr_expect_eq(qa_method_qlora.init(st, &li, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "12") != NULL, "message: %s", err.msg);
    qa_free(st);
    qa_rng_free(r);
}

Test(qlora, base_option_int_at_4_bits_and_nf4_only_at_4) {
    float W[8 * 64], b[8] = {0};
    qa_rng *r = qa_rng_new(5);
    qa_rng_fill_normal(r, W, 8 * 64, 0.1f);
    qa_error err = {0, ""};
    /* int at 4 bits: the uniform section-0 base, no nf4 variant at merge */
    double opts[8]; /* any options struct: aligned, 64 bytes */
    cr_assert(qa_method_qlora.options_size <= sizeof opts);
    qa_method_options_defaults(&qa_method_qlora, opts);
    cr_assert_eq(qa_method_option_set(&qa_method_qlora, opts, "qlora_base", "int", &err), 0, "%s", err.msg);
    qa_method_cfg cfg = {.w_bits = 4, .rank = 2, .lora_scale = 1.0f, .options = opts};
    qa_layer_init li = {64, 8, W, b, &cfg, r, "t", NULL, NULL};
    void *st = qa_alloc(qa_method_qlora.state_size);
    cr_assert_eq(qa_method_qlora.init(st, &li, &err), 0, "%s", err.msg);
    qa_deployed d;
    cr_assert_eq(qa_method_qlora.merge(st, &d, &err), 0);
    cr_expect_eq(d.n_extra, 1, "no nf4 re-quantization over an INT base: only the merge on its grid");
    cr_expect_str_eq(d.extra_name[0], "basegrid");
    cr_expect(strstr(d.note, "base int") && strstr(d.note, "double rounding"), "note: %s", d.note);
    qa_deployed_free(&d);
    qa_method_qlora.destroy(st);
    qa_free(st);
    /* nf4 at 8 bits does not exist */
    cr_assert_eq(qa_method_option_set(&qa_method_qlora, opts, "qlora_base", "nf4", &err), 0, "%s", err.msg);
    cfg = (qa_method_cfg){.w_bits = 8, .rank = 2, .lora_scale = 1.0f, .options = opts};
    st = qa_alloc(qa_method_qlora.state_size);
    cr_expect_eq(qa_method_qlora.init(st, &li, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "nf4 exists only at 4 bits") != NULL, "%s", err.msg);
    qa_free(st);
    qa_rng_free(r);
}

/* The single-rounding deploy by hand: one row of 8 weights over a 2-bit INT base; the update is
 * set to u_i grid steps, so the merge on the base's grid moves code i by round(u_i), clamped to
 * the 2-bit range, and every deployed weight stays on the base's grid. */
Test(qlora, basegrid_merge_moves_the_base_codes_by_the_rounded_update) {
    enum { N_IN = 8, BITS = 2 };
    float W[N_IN] = {-0.9f, -0.4f, -0.1f, 0.05f, 0.2f, 0.45f, 0.7f, 1.0f}, b[1] = {0};
    const float u[N_IN] = {0.4f, 1.6f, -0.7f, 5.0f, -5.0f, 0.49f, -1.51f, 0.0f};
    const int shift[N_IN] = {0, 2, -1, 5, -5, 0, -2, 0}; /* round(u), by hand */
    qa_rng *r = qa_rng_new(3);
    qa_method_cfg cfg = {.w_bits = BITS, .rank = 1, .lora_scale = 1.0f};
    qa_layer_init li = {N_IN, 1, W, b, &cfg, r, "t", NULL, NULL};
    void *st = qa_alloc(qa_method_qlora.state_size);
    qa_error err = {0, ""};
    cr_assert_eq(qa_method_qlora.init(st, &li, &err), 0, "%s", err.msg);
    /* the base's grid (section 0 on the row) and its codes c = q - z */
    float delta, zero;
    int32_t code[N_IN];
    qa_quant_search_rows(W, 1, N_IN, BITS, &delta, &zero);
    qa_quant_codes_rows(code, W, 1, N_IN, BITS, &delta, &zero);
    qa_param ps[2];
    cr_assert_eq(qa_method_qlora.params(st, ps, 2), 2);
    ps[1].data[0] = 1.0f;                                     /* B = 1 */
    for (int i = 0; i < N_IN; i++) ps[0].data[i] = u[i] * delta; /* s B A = u delta */
    qa_deployed d;
    cr_assert_eq(qa_method_qlora.merge(st, &d, &err), 0, "%s", err.msg);
    cr_assert_eq(d.n_extra, 1);
    cr_expect_str_eq(d.extra_name[0], "basegrid");
    cr_expect_eq(d.extra_bits[0], BITS);
    cr_expect_eq(d.needs_ptq, 1, "the INT deploy is still the second PTQ");
    for (int i = 0; i < N_IN; i++) {
        int q = code[i] + (int)zero + shift[i];
        q = q < 0 ? 0 : (q > 3 ? 3 : q);
        float want = delta * ((float)q - zero);
        cr_expect(fabsf(d.extra_w[0][i] - want) <= 1e-6f * delta, "w[%d] = %g, want delta (%d - %g) = %g", i,
                  d.extra_w[0][i], q, zero, want);
        float steps = d.extra_w[0][i] / delta + zero; /* on the base's grid: a whole code in 0..3 */
        cr_expect(fabsf(steps - nearbyintf(steps)) < 1e-4f && steps > -0.5f && steps < 3.5f, "w[%d] off the grid: %g", i, steps);
    }
    /* the INT deploy's PTQ searches a grid of its own for the merged row: a second rounding */
    float delta_ptq, zero_ptq;
    qa_quant_search_rows(d.w_fp, 1, N_IN, BITS, &delta_ptq, &zero_ptq);
    cr_expect(delta_ptq != delta || zero_ptq != zero, "PTQ grid (%g, %g) vs the base's (%g, %g)", delta_ptq, zero_ptq, delta,
              zero);
    qa_deployed_free(&d);
    qa_method_qlora.destroy(st);
    qa_free(st);
    qa_rng_free(r);
}
