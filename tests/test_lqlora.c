/* LQ-LoRA (methods/lqlora.c): the truncated SVD against the eigenvalues of E^T E (GSL's
 * symmetric eigensolver, independent of the SVD routine); the alternating loops against their
 * definitions; the literature's claim that the initialisation error falls below QLoRA's at 3 and
 * 2 bits; the bit allocation against brute force; gradients by finite differences; merge =
 * training forward and both deploys with their bits; bad input; and a tiny synthetic recipe with
 * method = [lq-lora, ir-qlora] that runs, merges and reports. */
#include <criterion/criterion.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_sort_vector.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "harness/adapt.h"
#include "harness/backend.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/model.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/report.h"
#include "harness/rng.h"
#include "harness/runs.h"
#include "methods/lqlora.h"
#include "tests/common.h"
#include "tests/method_check.h"

/* sum of the smallest (n - r) eigenvalues of E^T E [in,in] (E [out,in]): the squared
 * Frobenius error of the best rank-r approximation (Eckart-Young) */
static double discarded_energy(const float *E, int out, int in, int r) {
    gsl_matrix *G = gsl_matrix_calloc((size_t)in, (size_t)in);
    for (int a = 0; a < in; a++)
        for (int b = 0; b < in; b++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += (double)E[o * in + a] * E[o * in + b];
            gsl_matrix_set(G, (size_t)a, (size_t)b, s);
        }
    gsl_vector *ev = gsl_vector_alloc((size_t)in);
    gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc((size_t)in);
    gsl_eigen_symm(G, ev, w);
    gsl_sort_vector(ev); /* ascending */
    double s = 0; /* E^T E has in - min(in, out) zero eigenvalues; they add nothing */
    for (int k = 0; k < in - r; k++) s += fmax(gsl_vector_get(ev, (size_t)k), 0.0);
    gsl_eigen_symm_free(w);
    gsl_vector_free(ev);
    gsl_matrix_free(G);
    return s;
}

static double frob2_residual(const float *W, const float *Q, const float *L1, const float *L2, int out, int in, int r) {
    double s = 0;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double lr = 0;
            for (int k = 0; k < r; k++) lr += (double)L1[o * r + k] * L2[k * in + i];
            double e = (double)W[o * in + i] - (Q ? Q[o * in + i] : 0) - lr;
            s += e * e;
        }
    return s;
}

Test(lqlora_svd, a_rank_one_matrix_is_reproduced_exactly) {
    const float E[6] = {1, 2, 3, 2, 4, 6}; /* [2,3] = (1,2)^T (1,2,3) */
    float L1[2], L2[3];
    qa_lqlora_svd_rank(E, 2, 3, 1, L1, L2);
    cr_expect(frob2_residual(E, NULL, L1, L2, 2, 3, 1) < 1e-10);
    /* the singular value sqrt(5 * 14) is split evenly: |L1| = |L2| = 70^(1/4) */
    double n1 = hypot(L1[0], L1[1]), n2 = sqrt((double)L2[0] * L2[0] + L2[1] * L2[1] + L2[2] * L2[2]);
    cr_expect(fabs(n1 - pow(70.0, 0.25)) < 1e-5 && fabs(n2 - pow(70.0, 0.25)) < 1e-5, "%g %g", n1, n2);
}

static void check_truncation(int out, int in, int r) {
    trng t = trng_new((uint64_t)(out * 100 + in));
    float *E = malloc(sizeof(float) * out * in), *L1 = malloc(sizeof(float) * out * r), *L2 = malloc(sizeof(float) * r * in);
    fill_normal(&t, E, (size_t)out * in, 1.0);
    qa_lqlora_svd_rank(E, out, in, r, L1, L2);
    double got = frob2_residual(E, NULL, L1, L2, out, in, r), want = discarded_energy(E, out, in, r);
    cr_expect(fabs(got - want) < 1e-4 * (1 + want), "%dx%d rank %d: residual %g, Eckart-Young %g", out, in, r, got, want);
    free(E); free(L1); free(L2);
}

Test(lqlora_svd, truncation_error_is_the_discarded_spectrum_tall_and_wide) {
    check_truncation(12, 7, 3);
    check_truncation(7, 12, 3);
    check_truncation(16, 16, 5);
}

/* The reference's randomized SVD: exact on a matrix of rank r, and close to the best rank-r
 * error (the discarded spectrum) on a full-rank one. */
Test(lqlora_svd, randomized_is_exact_at_full_rank_and_close_otherwise) {
    enum { O = 40, I = 30 };
    static float E[O * I], L1[O * 3], L2[3 * I], u[O * 3], v[3 * I];
    trng t = trng_new(12);
    fill_normal(&t, u, O * 3, 1.0);
    fill_normal(&t, v, 3 * I, 1.0);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += (double)u[o * 3 + k] * v[k * I + i];
            E[o * I + i] = (float)s;
        }
    double energy = frob2_residual(E, NULL, L1, L2, O, I, 0);
    qa_lqlora_svd_rank_randomized(E, O, I, 3, 99, L1, L2);
    cr_expect(frob2_residual(E, NULL, L1, L2, O, I, 3) < 1e-9 * energy, "rank-3 matrix: residual %g of %g",
              frob2_residual(E, NULL, L1, L2, O, I, 3), energy);
    fill_normal(&t, E, O * I, 1.0);
    qa_lqlora_svd_rank_randomized(E, O, I, 3, 99, L1, L2);
    double got = frob2_residual(E, NULL, L1, L2, O, I, 3), best = discarded_energy(E, O, I, 3);
    cr_expect(got >= best * (1 - 1e-6) && got < 1.02 * best, "randomized %g vs the best %g", got, best);
}

/* ---- the decomposition ---- */

#define DO 32
#define DI 24

static void random_layer(float *W, uint64_t seed) {
    trng t = trng_new(seed);
    fill_normal(&t, W, DO * DI, 0.1);
    /* a low-rank component and a few outliers, as trained weights have */
    float u[DO], v[DI];
    fill_normal(&t, u, DO, 1.0);
    fill_normal(&t, v, DI, 0.3);
    for (int o = 0; o < DO; o++)
        for (int i = 0; i < DI; i++) W[o * DI + i] += u[o] * v[i];
    W[3 * DI + 5] = 2.5f;
    W[17 * DI + 11] = -2.0f;
}

Test(lqlora_init, one_lqlora_iteration_is_svd_then_quantize) {
    float W[DO * DI], Q[DO * DI], L1[DO * 4], L2[4 * DI], E[DO * DI], Qref[DO * DI], delta[DO], zero[DO];
    random_layer(W, 1);
    lqlora_cfg cfg = {.rank = 4, .bits = 3, .init = LQ_INIT_LQLORA, .quant = LQ_QUANT_AUTO, .iters = 1};
    lqlora_stats st;
    qa_error err;
    cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.iterations, 1);
    cr_expect_eq(st.quant, LQ_QUANT_INT);
    /* L1 L2 = svd_r(W): its error is the discarded spectrum of W */
    cr_expect(fabs(frob2_residual(W, NULL, L1, L2, DO, DI, 4) - discarded_energy(W, DO, DI, 4)) < 1e-4);
    /* Q = the section-0 quantizer of W - L1 L2 */
    for (int o = 0; o < DO; o++)
        for (int i = 0; i < DI; i++) {
            double lr = 0;
            for (int k = 0; k < 4; k++) lr += (double)L1[o * 4 + k] * L2[k * DI + i];
            E[o * DI + i] = W[o * DI + i] - (float)lr;
        }
    qa_quant_search_rows(E, DO, DI, 3, delta, zero);
    qa_quant_fake_rows(Qref, E, DO, DI, 3, delta, zero);
    for (int k = 0; k < DO * DI; k++) cr_expect(fabsf(Q[k] - Qref[k]) < 1e-5f, "Q[%d] %g vs %g", k, Q[k], Qref[k]);
    cr_expect(fabs(st.error - sqrt(frob2_residual(W, Q, L1, L2, DO, DI, 4))) < 1e-4, "reported error %g", st.error);
}

Test(lqlora_init, loftq_ends_with_the_best_low_rank_fit_of_its_last_q) {
    float W[DO * DI], Q[DO * DI], L1[DO * 4], L2[4 * DI], E[DO * DI];
    random_layer(W, 2);
    lqlora_cfg cfg = {.rank = 4, .bits = 4, .init = LQ_INIT_LOFTQ, .quant = LQ_QUANT_AUTO, .iters = 0};
    lqlora_stats st;
    qa_error err;
    cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &st, &err), 0, "%s", err.msg);
    cr_expect_eq(st.iterations, 5, "LoftQ's default T = 5, no early stop");
    cr_expect_eq(st.quant, LQ_QUANT_NF4);
    for (int k = 0; k < DO * DI; k++) E[k] = W[k] - Q[k];
    double got = frob2_residual(W, Q, L1, L2, DO, DI, 4), want = discarded_energy(E, DO, DI, 4);
    cr_expect(fabs(got - want) < 1e-4 * (1 + want), "residual %g, best rank-4 fit of W - Q %g", got, want);
}

Test(lqlora_init, keep_best_is_never_worse_than_the_reference_stop) {
    float W[DO * DI], Q[DO * DI], L1[DO * 2], L2[2 * DI];
    qa_error err;
    for (int bits = 2; bits <= 3; bits++) {
        random_layer(W, 3 + (uint64_t)bits);
        lqlora_cfg cfg = {.rank = 2, .bits = bits, .init = LQ_INIT_LQLORA, .quant = LQ_QUANT_INT, .iters = 30};
        lqlora_stats ref, best, one;
        cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &ref, &err), 0);
        cfg.keep_best = 1;
        cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &best, &err), 0);
        cr_expect(fabs(best.error - sqrt(frob2_residual(W, Q, L1, L2, DO, DI, 2))) < 1e-4);
        cfg.iters = 1;
        cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &one, &err), 0);
        cr_expect(best.error <= ref.error + 1e-9 && best.error <= one.error + 1e-9, "W%d: best %g, reference %g, T=1 %g",
                  bits, best.error, ref.error, one.error);
    }
}

/* The literature's checkable claim (LQ-LoRA, section 3; LoftQ likewise): at 3 and 2 bits the
 * low-rank plus quantized initialisation approximates W better than quantizing W alone, as
 * QLoRA does. Both layers are built through the registry; the errors are computed here from
 * what each layer holds. */
Test(lqlora_claim, initialisation_error_below_qlora_at_3_and_2_bits) {
    enum { O = 64, I = 64, RK = 8 };
    static float W[O * I], b[O];
    trng t = trng_new(2024);
    fill_normal(&t, W, O * I, 0.05);
    const qa_method *lq = qa_method_find("lq-lora"), *ql = qa_method_find("qlora");
    cr_assert(lq && ql);
    for (int bits = 3; bits >= 2; bits--) {
        qa_method_cfg cfg = {.w_bits = bits, .rank = RK, .lora_scale = 1.0f};
        double err_lq = 0, err_ql = 0;
        for (int k = 0; k < 2; k++) {
            const qa_method *m = k ? ql : lq;
            qa_rng *r = qa_rng_new(5);
            qa_layer_init li = {I, O, W, b, &cfg, r, "claim.layer", NULL, NULL};
            void *s = qa_alloc(m->state_size);
            qa_error err;
            cr_assert_eq(m->init(s, &li, &err), 0, "%s", err.msg);
            qa_rng_free(r);
            qa_named_tensor nt[8];
            int n = m->inspect(s, nt, 8);
            const float *W_dq = NULL;
            for (int j = 0; j < n; j++)
                if (!strcmp(nt[j].name, "W_dq")) W_dq = nt[j].f32;
            cr_assert_not_null(W_dq);
            qa_param ps[2];
            m->params(s, ps, 2);
            /* ||W - W_dq - s B A||_F (QLoRA's B = 0) */
            double e2 = frob2_residual(W, W_dq, ps[1].data, ps[0].data, O, I, RK);
            if (k) err_ql = sqrt(e2);
            else err_lq = sqrt(e2);
            m->destroy(s);
            qa_free(s);
        }
        cr_expect(err_lq < err_ql, "W%d: LQ-LoRA's ||W - Q - L1 L2|| %g is not below QLoRA's ||W - Q|| %g", bits, err_lq, err_ql);
        cr_log_info("W%d: LQ-LoRA %g, QLoRA %g", bits, err_lq, err_ql);
    }
}

/* ---- the bit allocation ---- */

static double brute_force(int L, int C, const double *cost, const int64_t *m, int64_t budget, int l, int64_t used) {
    if (l == L) return 0;
    double best = INFINITY;
    for (int c = 0; c < C; c++) {
        int64_t s = m[l * C + c];
        if (s < 0 || used + s > budget) continue;
        double rest = brute_force(L, C, cost, m, budget, l + 1, used + s);
        if (cost[l * C + c] + rest < best) best = cost[l * C + c] + rest;
    }
    return best;
}

Test(qa_lqlora_allocate, equals_brute_force_on_random_small_cases) {
    trng t = trng_new(77);
    for (int trial = 0; trial < 300; trial++) {
        int L = 1 + (int)(trng_next(&t) % 5), C = 1 + (int)(trng_next(&t) % 4);
        double cost[20];
        int64_t m[20], cheapest = 0, dearest = 0;
        for (int l = 0; l < L; l++) {
            int64_t lo = INT64_MAX, hi = 0;
            for (int c = 0; c < C; c++) {
                cost[l * C + c] = trng_unif(&t, 0, 10);
                m[l * C + c] = 8 * (1 + (int64_t)(trng_next(&t) % 12)); /* a common factor: the gcd path */
                if (c > 0 && trng_next(&t) % 6 == 0) m[l * C + c] = -1; /* unavailable */
                if (m[l * C + c] >= 0) { lo = m[l * C + c] < lo ? m[l * C + c] : lo; hi = m[l * C + c] > hi ? m[l * C + c] : hi; }
            }
            cheapest += lo;
            dearest += hi;
        }
        int64_t budget = cheapest + (int64_t)(trng_next(&t) % (uint64_t)(dearest - cheapest + 9));
        int choice[5];
        double total;
        qa_error err;
        cr_assert_eq(qa_lqlora_allocate(L, C, cost, m, budget, choice, &total, &err), 0, "%s", err.msg);
        double want = brute_force(L, C, cost, m, budget, 0, 0), sum = 0;
        int64_t used = 0;
        for (int l = 0; l < L; l++) {
            cr_assert(choice[l] >= 0 && choice[l] < C && m[l * C + choice[l]] >= 0);
            sum += cost[l * C + choice[l]];
            used += m[l * C + choice[l]];
        }
        cr_expect(used <= budget, "trial %d: storage %lld over the budget %lld", trial, (long long)used, (long long)budget);
        cr_expect(fabs(sum - total) < 1e-9 && fabs(total - want) < 1e-9, "trial %d: DP %g (choice %g), brute force %g", trial,
                  total, sum, want);
    }
}

Test(qa_lqlora_allocate, a_budget_below_the_cheapest_configuration_is_bad_input) {
    const double cost[4] = {1, 2, 3, 4};
    const int64_t m[4] = {10, 20, 30, 40};
    int choice[2];
    double total;
    qa_error err;
    cr_expect_eq(qa_lqlora_allocate(2, 2, cost, m, 39, choice, &total, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "39") && strstr(err.msg, "cheapest") && strstr(err.msg, "40"), "%s", err.msg);
    cr_expect_eq(qa_lqlora_allocate(2, 2, cost, m, 40, choice, &total, &err), 0);
    cr_expect(choice[0] == 0 && choice[1] == 0 && total == 4.0, "choice %d %d, cost %g", choice[0], choice[1], total);
}

/* Costs from the decomposition itself (bits 2, 3, 4, 8 on three layers) at an average budget of
 * 3 bits per weight plus the INT side information: the DP is at least as good as 3 bits
 * everywhere, and within the budget. */
Test(qa_lqlora_allocate, real_layers_at_three_bits_on_average) {
    const int bits[4] = {2, 3, 4, 8};
    double cost[12];
    int64_t m[12], budget = 0;
    float W[DO * DI], Q[DO * DI], L1[DO * 2], L2[2 * DI];
    for (int l = 0; l < 3; l++) {
        random_layer(W, 40 + (uint64_t)l);
        for (int i = 0; i < DO * DI; i++) W[i] *= (float)(1 + l); /* layers differ in scale */
        for (int c = 0; c < 4; c++) {
            lqlora_cfg cfg = {.rank = 2, .bits = bits[c], .init = LQ_INIT_LQLORA, .quant = LQ_QUANT_INT, .iters = 10};
            lqlora_stats st;
            qa_error err;
            cr_assert_eq(qa_lqlora_decompose(W, DO, DI, &cfg, Q, L1, L2, &st, &err), 0);
            cost[l * 4 + c] = st.error * st.error;
            m[l * 4 + c] = qa_lqlora_storage_bits(DO, DI, bits[c], LQ_QUANT_INT);
        }
        budget += m[l * 4 + 1];
    }
    cr_expect_eq(m[1], (int64_t)DO * DI * 3 + 64 * DO);
    int choice[3];
    double total;
    qa_error err;
    cr_assert_eq(qa_lqlora_allocate(3, 4, cost, m, budget, choice, &total, &err), 0, "%s", err.msg);
    double uniform = cost[1] + cost[5] + cost[9];
    cr_expect(total <= uniform + 1e-12, "DP %g vs uniform 3 bits %g", total, uniform);
    cr_expect(fabs(total - brute_force(3, 4, cost, m, budget, 0, 0)) < 1e-9);
}

/* ---- the layer ---- */

#define IN 16
#define OUT 12
#define R 3
#define M 5

/* A layer at lq_init = init and lq_stop = stop. */
static int setup_stop(mc_layer *f, int w_bits, float scale, const char *init, const char *stop, int rank, qa_error *err) {
    mc_layer_new(f, qa_method_find("lq-lora"), IN, OUT, 9);
    mc_layer_option(f, "lq_init", init);
    mc_layer_option(f, "lq_stop", stop);
    f->cfg.w_bits = w_bits;
    f->cfg.rank = rank;
    f->cfg.lora_scale = scale;
    return mc_layer_init_seeded(f, 9, "test.layer", NULL, err);
}

static int setup(mc_layer *f, int w_bits, float scale, const char *init, int rank, qa_error *err) {
    return setup_stop(f, w_bits, scale, init, "reference", rank, err);
}

static const float *W_dq_of(mc_layer *f) { return mc_inspect(f->m, f->state, "W_dq")->f32; }

/* The quantized part the layer holds as stored (NF4 + DQ at 4 bits, packed or byte codes with a
 * scale and zero per row otherwise) decodes to exactly the W_dq its products read, for both
 * inits and both stopping rules; bytes() counts that storage as frozen, W_dq as workspace. */
Test(lqlora, held_quantized_part_decodes_to_the_products_operand) {
    const int bits[] = {4, 3, 2, 5, 8};
    const char *inits[] = {"lq-lora", "loftq"}, *stops[] = {"reference", "best"};
    for (int k = 0; k < 5; k++)
        for (int c = 0; c < 3; c++) {
            mc_layer f;
            qa_error err;
            const char *init = inits[c == 2], *stop = stops[c == 1];
            cr_assert_eq(setup_stop(&f, bits[k], 1.0f, init, stop, R, &err), 0, "%s", err.msg);
            float Q[IN * OUT];
            qa_lqlora_stored_decode(f.state, Q);
            const float *W_dq = W_dq_of(&f);
            for (int i = 0; i < IN * OUT; i++)
                cr_expect_eq(Q[i], W_dq[i], "W%d %s/%s: Q[%d] %g vs W_dq %g", bits[k], init, stop, i, Q[i], W_dq[i]);
            qa_bytes b;
            f.m->bytes(f.state, &b);
            /* 192 weights: NF4 = 96 packed bytes + 3 q8 + one FP32 absmax2 + FP32 offset = 107 */
            size_t codes = bits[k] == 4 ? 107 : (bits[k] <= 4 ? (IN * OUT * bits[k] + 7) / 8 + 2 * OUT * 4
                                                              : IN * OUT + 2 * OUT * 4);
            cr_expect_eq(b.frozen, codes + OUT * 4, "W%d: frozen %zu", bits[k], b.frozen);
            cr_expect_eq(b.workspace, IN * OUT * 4, "W_dq in float");
            mc_layer_free(&f);
        }
}

Test(lqlora, starts_at_q_plus_the_low_rank_part) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, 3, 0.5f, "lq-lora", R, &err), 0, "%s", err.msg);
    trng t = trng_new(3);
    float x[M * IN], y[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    f.m->forward(f.state, x, y, M);
    qa_param ps[2];
    cr_assert_eq(f.m->params(f.state, ps, 2), 2);
    const float *Q = W_dq_of(&f);
    double e_init = 0, e_q = 0;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            double yq = f.b[o], yr = f.b[o], lr = 0;
            for (int i = 0; i < IN; i++) {
                double ba = 0;
                for (int k = 0; k < R; k++) ba += (double)ps[1].data[o * R + k] * ps[0].data[k * IN + i];
                yq += (double)x[m * IN + i] * Q[o * IN + i];
                yr += (double)x[m * IN + i] * f.W[o * IN + i];
                lr += 0.5 * ba * x[m * IN + i];
            }
            cr_expect(fabs(y[m * OUT + o] - (yq + lr)) < 1e-4, "y = x (Q + s B A)^T + b");
            e_init += (y[m * OUT + o] - yr) * (y[m * OUT + o] - yr);
            e_q += (yq - yr) * (yq - yr);
        }
    cr_expect(e_init < e_q, "the initial layer is closer to the FP layer (%g) than Q alone (%g)", e_init, e_q);
    mc_layer_free(&f);
}

static void check_grads(int w_bits, float scale, const char *init) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, w_bits, scale, init, R, &err), 0, "%s", err.msg);
    trng t = trng_new(5);
    float x[M * IN], w[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    fill_normal(&t, w, M * OUT, 1.0);
    char what[32];
    snprintf(what, sizeof what, "%s W%d", init, w_bits);
    mc_check_grads(&f, x, w, M, 2, &(mc_fd_plan){.param_stride = 2, .x_stride = 2, .h = 1e-2, .tol = 2e-3}, what);
    mc_layer_free(&f);
}

Test(lqlora, gradients_lqlora_int3) { check_grads(3, 0.5f, "lq-lora"); }
Test(lqlora, gradients_loftq_nf4) { check_grads(4, 1.0f, "loftq"); }

static void check_merge(int w_bits, const char *init) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, w_bits, 0.75f, init, R, &err), 0, "%s", err.msg);
    qa_param ps[2];
    f.m->params(f.state, ps, 2);
    trng t = trng_new(8);
    for (size_t i = 0; i < ps[1].n; i++) ps[1].data[i] += 0.05f * (float)trng_normal(&t); /* "trained" */
    float x[M * IN], y[M * OUT], y2[M * OUT];
    fill_normal(&t, x, M * IN, 1.0);
    qa_deployed d;
    mc_check_merge(&f, x, M, y, &d, 1e-4f, init);
    cr_expect_eq(d.needs_ptq, 1);
    cr_expect_eq(d.merge, QA_MERGE_FLOAT_ADD_PTQ);
    cr_expect_eq(d.bits_per_weight, w_bits);
    /* "q+lr": Q plus FP16 factors, within FP16 rounding of the forward; its stored bits */
    cr_assert_geq(d.n_extra, 1);
    cr_expect_str_eq(d.extra_name[0], "q+lr");
    qa_matmul(M, OUT, IN, x, 0, d.extra_w[0], 1, y2, 0, f.b);
    for (int i = 0; i < M * OUT; i++) cr_expect(fabsf(y[i] - y2[i]) < 2e-3f * (1 + fabsf(y[i])), "q+lr: y[%d] %g vs %g", i, y[i], y2[i]);
    double q_bits = w_bits == 4 ? (double)qa_lqlora_storage_bits(OUT, IN, 4, LQ_QUANT_NF4) / (IN * OUT) : w_bits + 64.0 / IN;
    cr_expect(fabs(d.extra_bits[0] - (q_bits + 16.0 * R * (IN + OUT) / (IN * OUT))) < 1e-12, "q+lr bits %g", d.extra_bits[0]);
    cr_expect(d.extra_bits[0] < 16, "bits per weight bounded: %g", d.extra_bits[0]);
    if (w_bits == 4) {
        cr_assert_eq(d.n_extra, 2);
        cr_expect_str_eq(d.extra_name[1], "nf4");
    } else {
        cr_expect_eq(d.n_extra, 1);
    }
    qa_deployed_free(&d);
    mc_layer_free(&f);
}

Test(lqlora, merge_reproduces_the_forward_int3) { check_merge(3, "lq-lora"); }
Test(lqlora, merge_reproduces_the_forward_nf4_loftq) { check_merge(4, "loftq"); }

Test(lqlora, bad_input_is_refused_naming_what_is_allowed) {
    mc_layer f;
    qa_error err;
    cr_expect_eq(setup(&f, 3, 1.0f, "lq-lora", OUT + 1, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "rank 13") && strstr(err.msg, "test.layer"), "%s", err.msg);
    mc_layer_free(&f);
    cr_expect_eq(setup(&f, 0, 1.0f, "lq-lora", R, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "1..8"), "%s", err.msg);
    mc_layer_free(&f);
    const qa_method *m = qa_method_find("lq-lora");
    char o[64];
    qa_method_options_defaults(m, o);
    cr_expect_eq(qa_method_option_set(m, o, "lq_bits", "9", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "0..8"), "%s", err.msg);
    cr_expect_eq(qa_method_option_set(m, o, "lq_init", "svd", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "lq-lora|loftq"), "%s", err.msg);
    /* nf4 at 3 bits */
    qa_method_options_defaults(m, o);
    cr_assert_eq(qa_method_option_set(m, o, "lq_quant", "nf4", &err), 0);
    qa_method_cfg cfg = {.w_bits = 3, .rank = R, .lora_scale = 1.0f, .options = o};
    float W[IN * OUT] = {0}, b[OUT] = {0};
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {IN, OUT, W, b, &cfg, r, "test.layer", NULL, NULL};
    void *s = qa_alloc(m->state_size);
    cr_expect_eq(m->init(s, &li, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "nf4") && strstr(err.msg, "auto, int"), "%s", err.msg);
    qa_free(s);
    qa_rng_free(r);
}

/* ---- end to end ---- */

static char dir[256];

static void make_checkpoints(void) {
    snprintf(dir, sizeof dir, "/tmp/qa-test-lqir-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    qa_dit m;
    mc_tiny_dit(&m, 1);
    /* every weight non-zero (the attention projections start at zero), as in test_adapt.c */
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.01f * (float)((i * 2654435761u) % 1000) / 1000.0f;
    mc_save_tiny_models(dir, &m);
    qa_dit_free(&m);
}

static void remove_checkpoints(void) { rm_rf_dir(dir); }

Test(lqlora_e2e, a_recipe_with_lq_lora_and_ir_qlora_runs_merges_and_reports, .init = make_checkpoints,
     .fini = remove_checkpoints, .timeout = 240) {
    char text[2048];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = [lq-lora, ir-qlora]\nbits = w4a8\nrank = 2\nseed = 0\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 3\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\n",
             dir, dir);
    char out[512];
    snprintf(out, sizeof out, "%s/sweep", dir);
    int n;
    qa_run_record *runs = mc_sweep(text, out, &n);
    cr_assert_eq(n, 2);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(runs[i].status, "done");
        /* lq-lora: fp, int, q+lr, nf4; ir-qlora: fp, int, icq */
        int want = strncmp(runs[i].id, "lq-lora", 7) == 0 ? 4 : 3;
        cr_expect_eq(runs[i].n_eval, want, "%s: %d deploys", runs[i].id, runs[i].n_eval);
        for (int v = 0; v < runs[i].n_eval; v++)
            cr_expect(runs[i].eval[v].heldout_loss > 0 && runs[i].eval[v].heldout_loss < 100, "%s: loss %g", runs[i].id,
                      runs[i].eval[v].heldout_loss);
    }
    qa_runs_free(runs, n);
    char *buf = mc_report(out);
    cr_expect(strstr(buf, "| lq-lora |") && strstr(buf, "| ir-qlora |"), "report:\n%s", buf);
    free(buf);
}

/* The merge's "init_error" stat (literature.claims L3) against the start computed here: LQ-LoRA's
 * ||W - Q - s B A||^2 / ||W||^2 from W_dq and the initial factors, QLoRA's ||W - W_dq||^2 / ||W||^2
 * on the same weights; at 3 bits LQ-LoRA's start is the closer one. */
static double stat_of(const qa_deployed *d, const char *name) {
    for (int k = 0; k < d->n_stats; k++)
        if (!strcmp(d->stat_name[k], name)) return d->stat_num[k] / d->stat_den[k];
    cr_assert_fail("no stat %s", name);
    return 0;
}

Test(lqlora, init_error_stat_is_the_start_distance_and_below_qlora_at_3_bits) {
    mc_layer f;
    qa_error err;
    cr_assert_eq(setup(&f, 3, 0.5f, "lq-lora", R, &err), 0, "%s", err.msg);
    qa_param ps[2];
    cr_assert_eq(f.m->params(f.state, ps, 2), 2);
    const float *Q = W_dq_of(&f);
    double e2 = 0, w2 = 0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double ba = 0;
            for (int k = 0; k < R; k++) ba += (double)ps[1].data[o * R + k] * ps[0].data[k * IN + i];
            double e = f.W[o * IN + i] - Q[o * IN + i] - 0.5 * ba;
            e2 += e * e;
            w2 += (double)f.W[o * IN + i] * f.W[o * IN + i];
        }
    qa_deployed d;
    cr_assert_eq(f.m->merge(f.state, &d, &err), 0, "%s", err.msg);
    double lq = stat_of(&d, "init_error");
    cr_expect(fabs(lq - e2 / w2) <= 1e-5 * (e2 / w2), "lq-lora init_error %g, here %g", lq, e2 / w2);
    qa_deployed_free(&d);
    /* QLoRA on the same W at 3 bits: its start is its INT base */
    const qa_method *qm = qa_method_find("qlora");
    char qopts[64];
    cr_assert(qm->options_size <= sizeof qopts);
    qa_method_options_defaults(qm, qopts);
    qa_method_cfg qc = {.w_bits = 3, .rank = R, .lora_scale = 0.5f, .options = qopts};
    qa_rng *r = qa_rng_new(9);
    qa_layer_init li = {IN, OUT, f.W, f.b, &qc, r, "test.layer", NULL, NULL};
    void *qs = qa_alloc(qm->state_size);
    cr_assert_eq(qm->init(qs, &li, &err), 0, "%s", err.msg);
    const float *qdq = mc_inspect(qm, qs, "W_dq")->f32;
    double q2 = 0;
    for (int i = 0; i < IN * OUT; i++) q2 += ((double)f.W[i] - qdq[i]) * ((double)f.W[i] - qdq[i]);
    cr_assert_eq(qm->merge(qs, &d, &err), 0, "%s", err.msg);
    double ql = stat_of(&d, "init_error");
    cr_expect(fabs(ql - q2 / w2) <= 1e-9 * (q2 / w2), "qlora init_error %g, here %g", ql, q2 / w2);
    cr_expect_lt(lq, ql, "lq-lora starts closer (%g) than qlora (%g)", lq, ql);
    qa_deployed_free(&d);
    qm->destroy(qs);
    qa_free(qs);
    qa_rng_free(r);
    mc_layer_free(&f);
}
