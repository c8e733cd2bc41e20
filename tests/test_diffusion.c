/* DDPM schedule, noising, the MSE loss, and DDIM sampling on a tiny model. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/diffusion.h"

Test(diffusion, linear_schedule_by_hand) {
    static qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    cr_assert_eq(s.T, 1000);
    cr_assert_float_eq(s.abar[0], 1.0 - 1e-4, 1e-7, "abar[0] = 1 - beta_start: %.9g", s.abar[0]);
    double abar = 1.0;
    for (int i = 0; i < 1000; i++) {
        abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
        cr_assert_float_eq(s.abar[i], abar, 1e-6 * abar + 1e-9, "abar[%d] = %.9g, want %.9g", i, s.abar[i], abar);
        if (i) cr_assert(s.abar[i] < s.abar[i - 1], "abar must decrease strictly at %d", i);
    }
    cr_assert(s.abar[999] > 0 && s.abar[999] < 1e-4, "abar[T-1] = %g (DDPM: ~4e-5)", s.abar[999]);
    /* beta_end is reached at the last step: abar[T-1] / abar[T-2] = 1 - beta_end */
    cr_assert_float_eq(s.abar[999] / s.abar[998], 1 - 0.02, 1e-4);
}

Test(diffusion, noise_at_formula) {
    static qa_schedule s;
    qa_schedule_linear(&s, 100, 1e-3f, 0.05f);
    enum { B = 3, D = 5 };
    float x0[B * D], eps[B * D], x[B * D], t[B] = {0.f, 37.f, 99.f};
    trng r = trng_new(3);
    fill_unif(&r, x0, B * D, -1, 1);
    fill_normal(&r, eps, B * D, 1);
    qa_diffusion_noise_at(&s, x0, eps, t, B, D, x);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < D; j++) {
            double a = s.abar[(int)t[b]];
            double want = sqrt(a) * x0[b * D + j] + sqrt(1 - a) * eps[b * D + j];
            cr_assert_float_eq(x[b * D + j], want, 1e-6, "x_t[%d,%d]", b, j);
        }
}

Test(diffusion, noise_draws_t_in_range_and_is_consistent) {
    static qa_schedule s;
    qa_schedule_linear(&s, 50, 1e-4f, 0.02f);
    enum { B = 64, D = 4 };
    float x0[B * D], x[B * D], eps[B * D], t[B], x2[B * D];
    trng r0 = trng_new(4);
    fill_unif(&r0, x0, B * D, -1, 1);
    qa_rng *r = qa_rng_new(11);
    qa_diffusion_noise(&s, r, x0, B, D, x, eps, t);
    qa_rng_free(r);
    int seen_low = 0, seen_high = 0;
    double m = 0, v = 0;
    for (int b = 0; b < B; b++) {
        cr_assert(t[b] >= 0 && t[b] < 50 && t[b] == floorf(t[b]), "t[%d] = %g", b, t[b]);
        seen_low |= t[b] < 25;
        seen_high |= t[b] >= 25;
    }
    for (int i = 0; i < B * D; i++) { m += eps[i]; v += (double)eps[i] * eps[i]; }
    m /= B * D;
    v = v / (B * D) - m * m;
    cr_assert(seen_low && seen_high, "t is not spread over [0, T)");
    cr_assert(fabs(m) < 0.25 && v > 0.6 && v < 1.5, "eps mean %g var %g not ~N(0,1)", m, v);
    qa_diffusion_noise_at(&s, x0, eps, t, B, D, x2);
    cr_assert_eq(memcmp(x, x2, sizeof x), 0, "diffusion_noise disagrees with diffusion_noise_at");
}

Test(diffusion, mse_loss_value_and_gradient) {
    enum { N = 11 };
    float p[N], y[N], d[N];
    trng r = trng_new(5);
    fill_normal(&r, p, N, 1);
    fill_normal(&r, y, N, 1);
    float L = qa_mse_loss(p, y, N, d);
    double ref = 0;
    for (int i = 0; i < N; i++) ref += ((double)p[i] - y[i]) * ((double)p[i] - y[i]);
    ref /= N;
    cr_assert_float_eq(L, ref, 1e-6 * ref, "loss %g vs %g", L, ref);
    cr_assert_float_eq(qa_mse_loss(p, y, N, NULL), L, 0, "dpred NULL gives the same loss");
    for (int k = 0; k < 3; k++) {
        double h = 1e-3, an = 0;
        float pp[N], pm[N];
        for (int i = 0; i < N; i++) {
            double u = trng_normal(&r);
            pp[i] = (float)(p[i] + h * u);
            pm[i] = (float)(p[i] - h * u);
            an += (double)d[i] * ((double)pp[i] - pm[i]);
        }
        double fd = ((double)qa_mse_loss(pp, y, N, NULL) - qa_mse_loss(pm, y, N, NULL)) / (2 * h);
        an /= 2 * h;
        cr_assert(close_rel(fd, an, 1e-2, 1e-5), "mse directional derivative: analytic %g vs fd %g", an, fd);
    }
    /* by hand: pred {1, 3}, target {0, 0}: loss 5, grad {1, 3} */
    float a[2] = {1, 3}, z[2] = {0, 0}, g[2];
    cr_assert_float_eq(qa_mse_loss(a, z, 2, g), 5.0f, 1e-6);
    cr_assert_float_eq(g[0], 1.0f, 1e-6);
    cr_assert_float_eq(g[1], 3.0f, 1e-6);
}

static void tiny_model(qa_dit *m) {
    static const qa_dit_config cfg = {28, 4, 16, 2, 2, 2, 10, 2};
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(m, &cfg, 4, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(m, 2);
    trng r = trng_new(6);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (float)(0.05 * trng_normal(&r));
}

Test(diffusion, ddim_sample_deterministic_and_bounded) {
    static qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    qa_dit m;
    tiny_model(&m);
    enum { B = 2, D = 784 };
    static float a[B * D], b[B * D], c[B * D], g[B * D];
    int y[B] = {3, 11};
    qa_ddim_sample(&m, &s, y, B, 5, 1.0f, 42, a);
    qa_ddim_sample(&m, &s, y, B, 5, 1.0f, 42, b);
    qa_ddim_sample(&m, &s, y, B, 5, 1.0f, 43, c);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed, different samples");
    cr_assert_neq(memcmp(a, c, sizeof a), 0, "different seeds, same samples");
    double spread = 0;
    for (int i = 0; i < B * D; i++) {
        cr_assert(isfinite(a[i]), "sample[%d] = %g", i, a[i]);
        /* the last step has abar_prev = 1: the output is the clipped x0 estimate */
        cr_assert(a[i] >= -1.0f && a[i] <= 1.0f, "sample[%d] = %g outside [-1, 1]", i, a[i]);
        spread += fabs(a[i] - c[i]);
    }
    cr_assert(spread > 1.0, "samples barely depend on the noise");
    /* guidance 3 needs 2B rows (max_batch 4) and changes the result */
    qa_ddim_sample(&m, &s, y, B, 5, 3.0f, 42, g);
    for (int i = 0; i < B * D; i++) cr_assert(isfinite(g[i]) && g[i] >= -1.0f && g[i] <= 1.0f, "guided sample[%d] %g", i, g[i]);
    cr_assert_neq(memcmp(a, g, sizeof a), 0, "guidance had no effect");
    /* one step: t = 0 only */
    qa_ddim_sample(&m, &s, y, 1, 1, 1.0f, 42, g);
    for (int i = 0; i < D; i++) cr_assert(isfinite(g[i]) && fabsf(g[i]) <= 1.0f);
    qa_dit_free(&m);
}

Test(diffusion, ddim_with_zero_model_recovers_clipped_noise_formula) {
    /* at init (adaLN-zero) eps_hat = 0, so each step gives x0_hat = clip(x_t / sqrt(abar_t)) and
     * x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t);
     * the output of 2 steps is computable by hand from the initial noise. */
    static qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    static const qa_dit_config cfg = {28, 4, 16, 1, 2, 2, 10, 2};
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &cfg, 2, &err), QA_OK);
    qa_dit_init_weights(&m, 1);
    enum { D = 784 };
    static float out[D], z[D];
    int y[1] = {0};
    qa_ddim_sample(&m, &s, y, 1, 2, 1.0f, 9, out);
    qa_rng *r = qa_rng_new(qa_seed_for(9, "ddim-noise"));
    qa_rng_fill_normal(r, z, D, 1.0f);
    qa_rng_free(r);
    int stride = 1000 / 2;
    for (int j = 0; j < D; j++) {
        double x = z[j];
        for (int i = 1; i >= 0; i--) {
            double ab = s.abar[i * stride], abp = i > 0 ? s.abar[(i - 1) * stride] : 1.0;
            double x0 = x / sqrt(ab);
            x0 = x0 < -1 ? -1 : (x0 > 1 ? 1 : x0);
            double e2 = (x - sqrt(ab) * x0) / sqrt(1 - ab);
            x = sqrt(abp) * x0 + sqrt(1 - abp) * e2;
        }
        cr_assert_float_eq(out[j], x, 1e-5, "pixel %d: %g vs hand %g", j, out[j], x);
    }
    qa_dit_free(&m);
}
