/* Evaluation: mean_cosine against hand values and naive loops, the pixel mapping, the held-out
 * set (deterministic, stratified timesteps, images and labels from the test set), the held-out
 * loss against a per-item reference computed here (x_t in double, one forward per item, MSE in
 * double), and the sampler's determinism. */
#include <criterion/criterion.h>

#include "common.h"
#include "datasets/dataset.h"
#include "harness/eval.h"

TestSuite(eval, .timeout = 120);

/* ---------- mean_cosine ---------- */

Test(eval, cosine_hand_values) {
    const float e1[3] = {1, 0, 0}, e2[3] = {0, 1, 0}, m1[3] = {-1, 0, 0}, s1[3] = {3.5f, 0, 0};
    cr_expect(fabs(qa_mean_cosine(e1, 1, e1, 1, 3) - 1.0) < 1e-12, "identical -> 1");
    cr_expect(fabs(qa_mean_cosine(e1, 1, s1, 1, 3) - 1.0) < 1e-12, "scaled -> 1");
    cr_expect(fabs(qa_mean_cosine(e1, 1, e2, 1, 3)) < 1e-12, "orthogonal -> 0");
    cr_expect(fabs(qa_mean_cosine(e1, 1, m1, 1, 3) + 1.0) < 1e-12, "opposite -> -1");
    const float v[3] = {1, 2, 2}, w[3] = {2, -1, 0}; /* cos = 0 */
    cr_expect(fabs(qa_mean_cosine(v, 1, w, 1, 3)) < 1e-12);
    const float p[3] = {1, 2, 2}, q[3] = {0, 0, 3}; /* cos = 6 / (3 * 3) = 2/3 */
    cr_expect(fabs(qa_mean_cosine(p, 1, q, 1, 3) - 2.0 / 3.0) < 1e-12, "%g", qa_mean_cosine(p, 1, q, 1, 3));
}

Test(eval, cosine_mean_over_pairs) {
    /* a = {e1, e2}, b = {e1, (1,1,0)}: cosines 1, 1/sqrt2, 0, 1/sqrt2 -> mean (1 + sqrt2) / 4 */
    const float a[6] = {1, 0, 0, 0, 1, 0}, b[6] = {1, 0, 0, 1, 1, 0};
    double want = (1.0 + sqrt(2.0)) / 4.0;
    cr_expect(fabs(qa_mean_cosine(a, 2, b, 2, 3) - want) < 1e-7, "%.9g want %.9g", qa_mean_cosine(a, 2, b, 2, 3), want);
    /* 2 x 3: a = {e1, -e1}, b = {e1, e2, e1}: 1 + 0 + 1 - 1 + 0 - 1 = 0 */
    const float a2[6] = {1, 0, 0, -1, 0, 0}, b2[9] = {1, 0, 0, 0, 1, 0, 1, 0, 0};
    cr_expect(fabs(qa_mean_cosine(a2, 2, b2, 3, 3)) < 1e-12);
    cr_expect(fabs(qa_mean_cosine(b2, 3, b2, 3, 3) - 5.0 / 9.0) < 1e-7, "self-similarity of {e1, e2, e1}: 5/9");
}

Test(eval, cosine_against_naive_loops) {
    enum { NA = 5, NB = 7, F = 128 };
    float a[NA * F], b[NB * F];
    trng r = trng_new(17);
    fill_unif(&r, a, NA * F, 0, 1); /* nonnegative, like ReLU features */
    fill_normal(&r, b, NB * F, 1);
    double acc = 0;
    for (int i = 0; i < NA; i++)
        for (int j = 0; j < NB; j++) {
            double d = dot_fd(a + i * F, b + j * F, F), na = dot_fd(a + i * F, a + i * F, F), nb = dot_fd(b + j * F, b + j * F, F);
            acc += d / sqrt(na * nb);
        }
    acc /= NA * NB;
    double got = qa_mean_cosine(a, NA, b, NB, F);
    cr_expect(fabs(got - acc) < 1e-9, "%.12g want %.12g", got, acc);
    cr_expect(fabs(qa_mean_cosine(b, NB, a, NA, F) - acc) < 1e-9, "symmetric in its arguments");
}

Test(eval, cosine_zero_vector_counts_as_zero) {
    const float z[3] = {0, 0, 0}, e1[3] = {1, 0, 0};
    double c = qa_mean_cosine(z, 1, e1, 1, 3);
    cr_expect(c == 0.0 && !isnan(c), "cos with a zero vector: %g (not NaN)", c);
    const float a[6] = {1, 0, 0, 0, 0, 0};
    cr_expect(fabs(qa_mean_cosine(a, 2, e1, 1, 3) - 0.5) < 1e-12, "the zero row still counts in the mean");
}

/* ---------- to_pixels ---------- */

Test(eval, to_pixels_mapping) {
    const float x[9] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, 0.5f, -0.5f, -0.999f, 0.999f};
    uint8_t p[9];
    qa_to_pixels(x, 9, p);
    cr_expect_eq(p[0], 0, "-1 -> 0");
    cr_expect_eq(p[1], 255, "1 -> 255");
    cr_expect_eq(p[2], 128, "0 -> 127.5 -> 128 (round half to even)");
    cr_expect_eq(p[3], 0, "clamped below");
    cr_expect_eq(p[4], 255, "clamped above");
    cr_expect_eq(p[5], 191, "0.5 -> 191.25 -> 191");
    cr_expect_eq(p[6], 64, "-0.5 -> 63.75 -> 64");
    cr_expect_eq(p[7], 0, "-0.999 -> 0.1275 -> 0");
    cr_expect_eq(p[8], 255, "0.999 -> 254.87 -> 255");
}

Test(eval, to_pixels_inverts_images_to_float) {
    qa_images im = {256, 16, 16, NULL, NULL};
    im.pixels = malloc(256 * 256);
    for (int i = 0; i < 256 * 256; i++) im.pixels[i] = (uint8_t)(i % 256);
    int idx = 0;
    float *x = malloc(sizeof(float) * 256);
    uint8_t back[256];
    qa_images_to_float(&im, &idx, 1, x);
    qa_to_pixels(x, 256, back);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += back[i] != (uint8_t)i;
    cr_expect_eq(bad, 0, "%d of the 256 pixel values do not survive uint8 -> float -> uint8", bad);
    free(x);
    free(im.pixels);
}

/* ---------- held-out set ---------- */

static void image_float(const qa_images *im, int j, float *x) {
    for (int i = 0; i < im->rows * im->cols; i++) x[i] = (float)(im->pixels[(size_t)j * im->rows * im->cols + i] / 127.5 - 1.0);
}

Test(eval, heldout_is_deterministic_and_stratified) {
    qa_images im;
    qa_synthetic_images(&im, 12, 28, 10, 3);
    qa_heldout h1, h2;
    qa_error err = {0, ""};
    const int NI = 5, DR = 4, D = 784;
    cr_assert_eq(qa_heldout_init(&h1, &im, NI, DR, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_heldout_init(&h2, &im, NI, DR, &err), 0, "%s", err.msg);
    size_t n = (size_t)NI * DR;
    cr_expect_eq(h1.n_images, NI);
    cr_expect_eq(h1.draws, DR);
    cr_expect(memcmp(h1.t, h2.t, sizeof(float) * n) == 0, "t differs between two inits");
    cr_expect(memcmp(h1.eps, h2.eps, sizeof(float) * n * D) == 0, "eps differs between two inits");
    cr_expect(memcmp(h1.x0, h2.x0, sizeof(float) * n * D) == 0, "x0 differs between two inits");
    cr_expect(memcmp(h1.y, h2.y, sizeof(int) * n) == 0, "y differs between two inits");
    /* stratified: draw d in [d T/draws, (d+1) T/draws), T = 1000 */
    cr_expect_eq(h1.sched.T, 1000);
    for (size_t k = 0; k < n; k++) {
        int d = (int)(k % DR);
        cr_expect(h1.t[k] == floorf(h1.t[k]), "t[%zu] = %g is not an integer step", k, h1.t[k]);
        cr_expect(h1.t[k] >= d * 1000.0 / DR && h1.t[k] < (d + 1) * 1000.0 / DR, "t[%zu] = %g not in stratum %d", k, h1.t[k], d);
    }
    /* each image i: all draws share x0 and y, x0 is a test image with that label, images distinct */
    int used[12] = {0};
    float *ref = malloc(sizeof(float) * D);
    for (int i = 0; i < NI; i++) {
        int found = -1;
        for (int j = 0; j < im.n && found < 0; j++) {
            image_float(&im, j, ref);
            int same = 1;
            for (int q = 0; q < D && same; q++) same = fabsf(ref[q] - h1.x0[(size_t)i * DR * D + q]) < 1e-6f;
            if (same) found = j;
        }
        cr_assert(found >= 0, "x0 of image %d is not a test image", i);
        cr_expect_eq(used[found], 0, "test image %d is used twice", found);
        used[found] = 1;
        for (int d = 0; d < DR; d++) {
            size_t k = (size_t)i * DR + d;
            cr_expect_eq(h1.y[k], im.labels[found], "label of item %zu", k);
            cr_expect(memcmp(h1.x0 + k * D, h1.x0 + (size_t)i * DR * D, sizeof(float) * D) == 0, "draw %d of image %d has another x0", d, i);
        }
    }
    /* eps ~ N(0, 1) */
    double m = 0, v = 0;
    for (size_t q = 0; q < n * D; q++) { m += h1.eps[q]; v += (double)h1.eps[q] * h1.eps[q]; }
    m /= (double)(n * D);
    v = v / (double)(n * D) - m * m;
    cr_expect(fabs(m) < 0.05 && fabs(v - 1) < 0.06, "eps mean %g var %g", m, v);
    free(ref);
    qa_heldout_free(&h1);
    qa_heldout_free(&h2);
    qa_images_free(&im);
}

/* The test image whose pixels x (one image, [D]) holds, -1: none. */
static int test_image_of(const qa_images *im, const float *x) {
    const int D = im->rows * im->cols;
    float *ref = malloc(sizeof(float) * (size_t)D);
    int found = -1;
    for (int j = 0; j < im->n && found < 0; j++) {
        image_float(im, j, ref);
        int same = 1;
        for (int q = 0; q < D && same; q++) same = fabsf(ref[q] - x[q]) < 1e-6f;
        if (same) found = j;
    }
    free(ref);
    return found;
}

/* The validation split (a tuning run's held-out set) takes other test images than the reported
 * split, with the same (t, noise) draws; a test set too small for both is bad input. */
Test(eval, the_validation_split_holds_other_images_with_the_same_draws) {
    qa_images im;
    qa_synthetic_images(&im, 12, 28, 10, 3);
    qa_heldout rep, val;
    qa_error err = {0, ""};
    const int NI = 5, DR = 2, D = 784;
    cr_assert_eq(qa_heldout_init_split(&rep, &im, NI, DR, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_heldout_init_split(&val, &im, NI, DR, 1, &err), 0, "%s", err.msg);
    size_t n = (size_t)NI * DR;
    cr_expect(memcmp(rep.t, val.t, sizeof(float) * n) == 0, "the same t draws");
    cr_expect(memcmp(rep.eps, val.eps, sizeof(float) * n * D) == 0, "the same noise draws");
    int used[12] = {0};
    for (int i = 0; i < NI; i++) {
        int a = test_image_of(&im, rep.x0 + (size_t)i * DR * D), b = test_image_of(&im, val.x0 + (size_t)i * DR * D);
        cr_assert(a >= 0 && b >= 0, "image %d: not a test image", i);
        cr_expect_eq(val.y[(size_t)i * DR], im.labels[b]);
        used[a] |= 1;
        used[b] |= 2;
    }
    for (int j = 0; j < 12; j++) cr_expect_neq(used[j], 3, "test image %d is in both splits", j);
    qa_heldout split0;
    cr_assert_eq(qa_heldout_init(&split0, &im, NI, DR, &err), 0, "%s", err.msg);
    cr_expect(memcmp(split0.x0, rep.x0, sizeof(float) * n * D) == 0, "split 0 is qa_heldout_init's set");
    qa_heldout_free(&split0);
    qa_heldout none;
    cr_expect_eq(qa_heldout_init_split(&none, &im, 7, DR, 1, &err), QA_ERR_INPUT, "7 + 7 > 12 test images");
    cr_expect(strstr(err.msg, "loss_images = 7") && strstr(err.msg, "twice"), "%s", err.msg);
    qa_heldout_free(&rep);
    qa_heldout_free(&val);
    qa_images_free(&im);
}

Test(eval, heldout_other_draw_counts_stay_in_strata) {
    qa_images im;
    qa_synthetic_images(&im, 4, 28, 4, 8);
    qa_heldout h;
    qa_error err = {0, ""};
    const int draws[3] = {1, 5, 8};
    for (int c = 0; c < 3; c++) {
        int DR = draws[c];
        cr_assert_eq(qa_heldout_init(&h, &im, 4, DR, &err), 0, "%s", err.msg);
        int lo_seen = 0;
        for (int k = 0; k < 4 * DR; k++) {
            int d = k % DR;
            cr_expect(h.t[k] >= d * 1000.0 / DR && h.t[k] < (d + 1) * 1000.0 / DR && h.t[k] < 1000,
                      "draws %d: t[%d] = %g not in stratum %d", DR, k, h.t[k], d);
            lo_seen |= h.t[k] < 1000.0 / DR;
        }
        cr_expect(lo_seen, "draws %d: the first stratum is used", DR);
        qa_heldout_free(&h);
    }
    qa_images_free(&im);
}

/* Regression (fixed): the stratum width was the integer 1000 / draws, so when draws did not divide
 * T the strata did not cover [0, T) as documented: with draws = 400 no timestep above 799 was
 * ever evaluated. The strata are now [d T / draws, (d + 1) T / draws). */
Test(eval, heldout_strata_cover_T_when_draws_do_not_divide_it) {
    qa_images im;
    qa_synthetic_images(&im, 1, 28, 1, 9);
    qa_heldout h;
    qa_error err = {0, ""};
    const int DR = 400;
    cr_assert_eq(qa_heldout_init(&h, &im, 1, DR, &err), 0, "%s", err.msg);
    int outside = 0, first = -1;
    float tmax = 0;
    for (int d = 0; d < DR; d++) {
        if (!(h.t[d] >= d * 1000.0 / DR && h.t[d] < (d + 1) * 1000.0 / DR)) { outside++; if (first < 0) first = d; }
        if (h.t[d] > tmax) tmax = h.t[d];
    }
    cr_expect_eq(outside, 0, "%d of %d draws lie outside their stratum [d T/draws, (d+1) T/draws) (first: draw %d at t = %g); "
                 "largest t = %g of T = 1000", outside, DR, first, first >= 0 ? h.t[first] : 0.0, tmax);
    qa_heldout_free(&h);
    qa_images_free(&im);
}

Test(eval, heldout_too_many_images_is_bad_input) {
    qa_images im;
    qa_synthetic_images(&im, 3, 28, 3, 1);
    qa_heldout h;
    qa_error err = {0, ""};
    cr_expect_eq(qa_heldout_init(&h, &im, 4, 2, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "3") != NULL, "message: %s", err.msg);
    qa_images_free(&im);
}

/* ---------- a tiny model ---------- */

static void tiny_model(qa_dit *m, uint64_t seed) {
    qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(m, &cfg, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(m, seed);
    /* adaLN-zero would predict eps = 0 everywhere: perturb every parameter */
    trng r = trng_new(seed + 1);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (float)(0.05 * trng_normal(&r));
}

Test(eval, heldout_loss_matches_per_item_reference) {
    qa_dit m;
    tiny_model(&m, 3);
    qa_images im;
    qa_synthetic_images(&im, 10, 28, 10, 4);
    qa_heldout h;
    qa_error err = {0, ""};
    const int NI = 3, DR = 3, D = 784; /* 9 items in batches of 4, 4, 1 */
    cr_assert_eq(qa_heldout_init(&h, &im, NI, DR, &err), 0, "%s", err.msg);
    /* the schedule, in double */
    double abar[1000], prod = 1;
    for (int i = 0; i < 1000; i++) { prod *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0); abar[i] = prod; }
    for (int i = 0; i < 1000; i += 111) cr_expect(fabs(h.sched.abar[i] - abar[i]) < 1e-6, "abar[%d]", i);

    double per[3], per_ref[3] = {0, 0, 0}, total_ref = 0;
    double total = qa_heldout_loss(&m, &h, per);
    float *xt = malloc(sizeof(float) * D), *pred = malloc(sizeof(float) * D);
    for (int k = 0; k < NI * DR; k++) {
        int ti = (int)h.t[k];
        for (int j = 0; j < D; j++)
            xt[j] = (float)(sqrt(abar[ti]) * h.x0[(size_t)k * D + j] + sqrt(1 - abar[ti]) * h.eps[(size_t)k * D + j]);
        qa_dit_forward(&m, xt, &h.t[k], &h.y[k], 1, pred);
        double l = 0;
        for (int j = 0; j < D; j++) {
            double e = (double)pred[j] - h.eps[(size_t)k * D + j];
            l += e * e;
        }
        l /= D;
        total_ref += l;
        per_ref[k / DR] += l / DR;
    }
    total_ref /= NI * DR;
    cr_expect(total > 0.1 && total < 100, "loss %g", total);
    cr_expect(close_rel(total, total_ref, 1e-4, 1e-7), "held-out loss %.9g, per-item reference %.9g", total, total_ref);
    double mean_per = 0;
    for (int i = 0; i < NI; i++) {
        cr_expect(close_rel(per[i], per_ref[i], 1e-4, 1e-7), "per_image[%d] %.9g, reference %.9g", i, per[i], per_ref[i]);
        mean_per += per[i] / NI;
    }
    cr_expect(fabs(mean_per - total) < 1e-9 * total, "per-image values average to the total: %.12g vs %.12g", mean_per, total);
    double again = qa_heldout_loss(&m, &h, NULL);
    cr_expect(again == total, "per_image may be NULL; same value: %.12g vs %.12g", again, total);
    free(xt); free(pred);
    qa_heldout_free(&h);
    qa_images_free(&im);
    qa_dit_free(&m);
}

Test(eval, heldout_loss_of_a_zero_predictor_is_mean_eps_squared) {
    /* adaLN-zero init: the output layer is zero, so eps_theta = 0 and L = mean eps^2 */
    qa_dit m;
    qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &cfg, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    qa_images im;
    qa_synthetic_images(&im, 6, 28, 6, 2);
    qa_heldout h;
    cr_assert_eq(qa_heldout_init(&h, &im, 2, 3, &err), 0, "%s", err.msg);
    double per[2];
    double total = qa_heldout_loss(&m, &h, per);
    double want = 0, pw[2] = {0, 0};
    for (int k = 0; k < 6; k++) {
        double s = 0;
        for (int j = 0; j < 784; j++) s += (double)h.eps[(size_t)k * 784 + j] * h.eps[(size_t)k * 784 + j];
        want += s / 784 / 6;
        pw[k / 3] += s / 784 / 3;
    }
    cr_expect(fabs(total - want) < 1e-6 * want, "%.9g want %.9g", total, want);
    cr_expect(fabs(per[0] - pw[0]) < 1e-6 * pw[0] && fabs(per[1] - pw[1]) < 1e-6 * pw[1], "per-image %g %g want %g %g", per[0],
              per[1], pw[0], pw[1]);
    qa_heldout_free(&h);
    qa_images_free(&im);
    qa_dit_free(&m);
}

Test(eval, sample_images_deterministic_per_seed) {
    qa_dit m;
    tiny_model(&m, 5);
    qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    const int n = 3, D = 784, steps = 3; /* guidance != 1: chunks of max_batch / 2 = 2 -> 2 + 1 */
    float *a = malloc(sizeof(float) * n * D), *b = malloc(sizeof(float) * n * D), *c = malloc(sizeof(float) * n * D);
    qa_sample_images(&m, &s, 4, n, steps, 2.0f, 77, a);
    qa_sample_images(&m, &s, 4, n, steps, 2.0f, 77, b);
    qa_sample_images(&m, &s, 4, n, steps, 2.0f, 78, c);
    cr_expect(memcmp(a, b, sizeof(float) * n * D) == 0, "same seed, different samples");
    size_t diff = 0;
    for (int i = 0; i < n * D; i++) diff += a[i] != c[i];
    cr_expect(diff > (size_t)(n * D) / 2, "another seed changes the samples (%zu of %d values differ)", diff, n * D);
    int in_range = 1;
    for (int i = 0; i < n * D; i++) in_range &= a[i] >= -1.0f && a[i] <= 1.0f && !isnan(a[i]);
    cr_expect(in_range, "samples in [-1, 1]");
    /* the images of one call differ from each other (each chunk, each image its own noise) */
    cr_expect(memcmp(a, a + D, sizeof(float) * D) != 0 && memcmp(a + D, a + 2 * D, sizeof(float) * D) != 0,
              "two images of one call are identical");
    /* chunking: chunk c is ddim_sample with seed qa_seed_for(seed, "samples-c") */
    float *r0 = malloc(sizeof(float) * 2 * D), *r1 = malloc(sizeof(float) * D);
    int ys[2] = {4, 4};
    qa_ddim_sample(&m, &s, ys, 2, steps, 2.0f, qa_seed_for(77, "samples-0"), r0);
    qa_ddim_sample(&m, &s, ys, 1, steps, 2.0f, qa_seed_for(77, "samples-1"), r1);
    cr_expect(memcmp(a, r0, sizeof(float) * 2 * D) == 0, "first chunk differs from ddim_sample");
    cr_expect(memcmp(a + 2 * D, r1, sizeof(float) * D) == 0, "second chunk differs from ddim_sample");
    /* another class changes the samples */
    qa_sample_images(&m, &s, 7, n, steps, 2.0f, 77, c);
    cr_expect(memcmp(a, c, sizeof(float) * n * D) != 0, "the class has no effect");
    free(a); free(b); free(c); free(r0); free(r1);
    qa_dit_free(&m);
}

/* ---------- FID and diversity (issue: sanity checks that can fail) ---------- */

Test(eval, frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_noise) {
    enum { N = 300, F = 16 };
    static float a[N * F], b[N * F];
    qa_rng *r = qa_rng_new(77);
    qa_rng_fill_normal(r, a, N * F, 1.0f);
    for (int i = 0; i < N * F; i++) a[i] += (float)(i % F) * 0.1f; /* a mean that is not zero */
    double self = qa_frechet_distance(a, N, a, N, F);
    cr_expect(self < 1e-6, "FID(set, set) = %g", self);
    double prev = self;
    for (int level = 1; level <= 3; level++) {
        for (int i = 0; i < N * F; i++) b[i] = a[i] + 0.5f * level * (float)qa_rng_normal(r);
        double d = qa_frechet_distance(a, N, b, N, F);
        cr_expect(d > prev, "FID must grow with the noise: level %d gives %g after %g", level, d, prev);
        prev = d;
    }
    qa_rng_free(r);
}

Test(eval, frechet_distance_hand_case) {
    /* 1-D sets {0, 2} and {1, 5}: mu 1 vs 3, var 2 vs 8 (n - 1 in the denominator);
     * FD = (1 - 3)^2 + 2 + 8 - 2 sqrt(2 * 8) = 4 + 10 - 8 = 6 */
    float a[2] = {0, 2}, b[2] = {1, 5};
    cr_expect_float_eq(qa_frechet_distance(a, 2, b, 2, 1), 6.0, 1e-9);
    /* 2-D, correlated: points (0,0),(2,4) vs (1,1),(5,3): means (1,2) and (3,2); covariances
     * S1 = [[2,4],[4,8]], S2 = [[8,4],[4,2]]; for 2x2 PSD matrices
     * tr sqrt(S1^1/2 S2 S1^1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) */
    float a2[4] = {0, 0, 2, 4}, b2[4] = {1, 1, 5, 3};
    double S1[2][2] = {{2, 4}, {4, 8}}, S2[2][2] = {{8, 4}, {4, 2}};
    /* tr sqrt(S1^(1/2) S2 S1^(1/2)) = sqrt(tr(S1 S2) + 2 sqrt(det(S1 S2))) for 2x2 PSD */
    double p00 = S1[0][0] * S2[0][0] + S1[0][1] * S2[1][0], p11 = S1[1][0] * S2[0][1] + S1[1][1] * S2[1][1];
    double det = (S1[0][0] * S1[1][1] - S1[0][1] * S1[1][0]) * (S2[0][0] * S2[1][1] - S2[0][1] * S2[1][0]);
    double trsq = sqrt(p00 + p11 + 2 * sqrt(det > 0 ? det : 0));
    double want = (1 - 3) * (1 - 3) + (2 - 2) * (2 - 2) + (2 + 8) + (8 + 2) - 2 * trsq;
    cr_expect_float_eq(qa_frechet_distance(a2, 2, b2, 2, 2), want, 1e-6);
}

Test(eval, diversity_by_hand) {
    /* three 2-d vectors: e1, e1, e2 -> pairs (e1,e1) 0, (e1,e2) 1, (e1,e2) 1 -> mean 2/3 */
    float a[6] = {1, 0, 1, 0, 0, 1};
    cr_expect_float_eq(qa_mean_pairwise_distance(a, 3, 2), 2.0 / 3.0, 1e-9);
    cr_expect_float_eq(qa_mean_pairwise_distance(a, 1, 2), 0.0, 0.0);
    /* references against themselves have subject fidelity 1 */
    float refs[4] = {0.3f, 0.4f, 0.3f, 0.4f};
    cr_expect_float_eq(qa_mean_cosine(refs, 2, refs, 2, 2), 1.0, 1e-6);
}

/* ---------- the style of the style and domain tasks ---------- */

Test(eval, stripes_style_score_separates_styled_from_plain) {
    qa_images im;
    qa_synthetic_images(&im, 1, 28, 1, 3);
    float x[784], y[784];
    int idx = 0;
    qa_images_to_float(&im, &idx, 1, x);
    /* a plain, filled image: rows equally bright -> contrast 0 */
    for (int i = 0; i < 784; i++) y[i] = 0.6f;
    cr_expect(qa_style_score(y, 28) < 1e-6, "flat image: %g", qa_style_score(y, 28));
    qa_style_stripes(y, 1, 28);
    /* p = 0.8 on bright rows, 0.28 on dark ones: contrast 1 - 0.35 = 0.65 -> score 1 */
    cr_expect_float_eq(qa_style_score(y, 28), 1.0, 1e-5, "styled flat image: %g", qa_style_score(y, 28));
    cr_expect_float_eq(y[0], 0.6f, 1e-6, "row 0 is a bright row, unchanged");
    cr_expect_float_eq(y[2 * 28], 2 * 0.8f * 0.35f - 1, 1e-6, "row 2 is darkened to 35%%");
    /* a filled ellipse (a garment-like shape): plain near 0, styled near 1 */
    for (int r = 0; r < 28; r++)
        for (int q = 0; q < 28; q++) {
            double dy = (r - 13.5) / 12.0, dx = (q - 13.5) / 8.0;
            x[r * 28 + q] = dy * dy + dx * dx <= 1.0 ? 0.7f : -1.0f;
        }
    double plain = qa_style_score(x, 28);
    memcpy(y, x, sizeof x);
    qa_style_stripes(y, 1, 28);
    double styled = qa_style_score(y, 28);
    cr_expect(styled > 0.9 && plain < 0.2, "plain %g vs styled %g", plain, styled);
    for (int i = 0; i < 784; i++) y[i] = -1.0f; /* background only: no style */
    cr_expect_float_eq(qa_style_score(y, 28), 0.0, 0.0);
    qa_images_free(&im);
}

Test(eval, stripes_style_score_on_real_fashion_mnist) {
    qa_images im;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fmnist_load(NULL, "t10k", &im, &err), QA_OK, "%s", err.msg); /* names the file and package */
    /* measured: plain mean 0.18, styled mean 0.995 over the first 1000 test images */
    double plain = 0, styled = 0;
    const int n = 500;
    float x[784];
    for (int i = 0; i < n; i++) {
        qa_images_to_float(&im, &i, 1, x);
        plain += qa_style_score(x, 28);
        qa_style_stripes(x, 1, 28);
        styled += qa_style_score(x, 28);
    }
    plain /= n;
    styled /= n;
    cr_expect(plain < 0.3 && styled > 0.9, "plain %g, styled %g", plain, styled);
    qa_images_free(&im);
}

/* ---------- identification score and paired feature distance ---------- */

Test(eval, identification_score_by_hand) {
    /* own reference e1, one other item's reference e2: (1, .1) is closer to e1 (hit), (.1, 1) to
     * e2 (miss), (1, 1) ties (a miss: not strictly closer), (2, 0) is e1 itself (hit): 2 of 4 */
    const float own[2] = {1, 0}, other[2] = {0, 1};
    const float x[8] = {1, 0.1f, 0.1f, 1, 1, 1, 2, 0};
    cr_expect(fabs(qa_identification_score(x, 4, own, 1, other, 1, 2) - 0.5) < 1e-12, "%g", qa_identification_score(x, 4, own, 1, other, 1, 2));
    /* no other item: every sample identifies its item */
    cr_expect(fabs(qa_identification_score(x, 4, own, 1, NULL, 0, 2) - 1.0) < 1e-12);
    /* two references per item, two other items: own {e1, e1}, others {e2, e2} and {-e1, -e1};
     * (.1, 1) beats -e1 (cos .0995 > -.0995) but not e2: a miss; (1, .1) beats both: 1 of 2 */
    const float own2[4] = {1, 0, 1, 0}, others2[8] = {0, 1, 0, 1, -1, 0, -1, 0};
    cr_expect(fabs(qa_identification_score(x, 2, own2, 2, others2, 2, 2) - 0.5) < 1e-12);
    cr_expect(qa_identification_score(x, 0, own, 1, other, 1, 2) < 0, "no samples: not measured");
}

Test(eval, mean_paired_distance_by_hand) {
    /* pairs (e1, e1): 0, (e2, e1): 1 -> 0.5; (e1, -e1): 2; pairs are by row, not all against all */
    const float a[4] = {1, 0, 0, 1}, b[4] = {1, 0, 1, 0}, c[2] = {-3, 0};
    cr_expect(fabs(qa_mean_paired_distance(a, b, 2, 2) - 0.5) < 1e-12);
    cr_expect(fabs(qa_mean_paired_distance(a, c, 1, 2) - 2.0) < 1e-12);
    cr_expect(fabs(qa_mean_paired_distance(a, a, 2, 2)) < 1e-12, "identical samples: 0");
    cr_expect(qa_mean_paired_distance(a, b, 0, 2) < 0);
}
