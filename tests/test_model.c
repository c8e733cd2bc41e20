/* The DiT denoiser on a tiny config: full-model gradient checks per parameter tensor against
 * finite differences, the quantized base, an independent forward of the non-block path,
 * FLOP count, and checkpoint round trips. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/checkpoint.h"
#include "harness/diffusion.h"
#include "harness/model.h"

static const qa_dit_config CFG = {28, 4, 16, 2, 2, 2, 10, 2};
enum { B = 3, D = 28 * 28 };

static float x_t[B * D], target[B * D], tt[B] = {5.f, 300.f, 870.f};
static const int yy[B] = {1, 7, 12}; /* 12 = the null slot (10 classes + 2 spare + 1) */

static void make_model(qa_dit *m, float noise) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(m, &CFG, B, &err), QA_OK, "%s", err.msg);
    qa_dit_init_weights(m, 1);
    trng r = trng_new(99);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (float)(noise * trng_normal(&r));
    trng ri = trng_new(7);
    fill_normal(&ri, x_t, B * D, 1.0);
    fill_normal(&ri, target, B * D, 1.0);
}

static double loss_d(qa_dit *m) {
    static float eps[B * D];
    qa_dit_forward(m, x_t, tt, yy, B, eps);
    double s = 0;
    for (int i = 0; i < B * D; i++) s += ((double)eps[i] - target[i]) * ((double)eps[i] - target[i]);
    return s / (B * D);
}

static void compute_grads(qa_dit *m) {
    static float eps[B * D], deps[B * D];
    qa_dit_zero_grads(m);
    qa_dit_forward(m, x_t, tt, yy, B, eps);
    qa_mse_loss(eps, target, B * D, deps);
    qa_dit_backward(m, deps);
}

/* directional derivative along a unit-norm random u: finite difference vs the gradient */
/* along_grad: u = g / |g| (the strongest signal), else a random unit direction */
static void dir_check_u(qa_dit *m, const qa_tensor_info *t, uint64_t seed, int along_grad, double *fd_out,
                        double *an_out) {
    const double h = 1e-2;
    float *p = m->params + t->offset, *g = m->grads + t->offset;
    float *p0 = malloc(sizeof(float) * t->n), *pp = malloc(sizeof(float) * t->n), *pm = malloc(sizeof(float) * t->n);
    double *u = malloc(sizeof(double) * t->n), nrm = 0;
    trng r = trng_new(seed);
    for (size_t j = 0; j < t->n; j++) {
        u[j] = along_grad ? g[j] : trng_normal(&r);
        nrm += u[j] * u[j];
    }
    nrm = sqrt(nrm);
    memcpy(p0, p, sizeof(float) * t->n);
    for (size_t j = 0; j < t->n; j++) {
        pp[j] = (float)(p0[j] + h * u[j] / nrm);
        pm[j] = (float)(p0[j] - h * u[j] / nrm);
    }
    memcpy(p, pp, sizeof(float) * t->n);
    double Lp = loss_d(m);
    memcpy(p, pm, sizeof(float) * t->n);
    double Lm = loss_d(m);
    memcpy(p, p0, sizeof(float) * t->n);
    double an = 0;
    for (size_t j = 0; j < t->n; j++) an += (double)g[j] * ((double)pp[j] - pm[j]);
    *fd_out = (Lp - Lm) / (2 * h);
    *an_out = an / (2 * h);
    free(p0); free(pp); free(pm); free(u);
}

static void dir_check(qa_dit *m, const qa_tensor_info *t, uint64_t seed, double *fd_out, double *an_out) {
    dir_check_u(m, t, seed, 0, fd_out, an_out);
}

static double tensor_grad_norm(const qa_dit *m, const qa_tensor_info *t) {
    double s = 0;
    for (size_t j = 0; j < t->n; j++) s += (double)m->grads[t->offset + j] * m->grads[t->offset + j];
    return sqrt(s);
}

/* FD noise of the double-accumulated float loss is ~1e-8..1e-7 at h = 1e-2 (measured) */
#define FD_ABS 2e-7
#define FD_REL 3e-2

/* both a random direction and the gradient's own direction (where the gradient is not zero) */
static void check_tensor(qa_dit *m, const qa_tensor_info *t, uint64_t seed, const char *tag) {
    double fd, an;
    dir_check_u(m, t, seed, 0, &fd, &an);
    cr_log_info("%s %-26s random dir: analytic %+.6e  fd %+.6e", tag, t->name, an, fd);
    cr_expect(close_rel(fd, an, FD_REL, FD_ABS), "%s %s: random direction: analytic %.6e vs finite diff %.6e", tag,
              t->name, an, fd);
    double gn = tensor_grad_norm(m, t);
    if (gn < 1e-9) return;
    dir_check_u(m, t, seed, 1, &fd, &an);
    cr_log_info("%s %-26s grad dir:   analytic %+.6e  fd %+.6e", tag, t->name, an, fd);
    cr_expect(close_rel(fd, an, FD_REL, FD_ABS), "%s %s: gradient direction: |g| %.6e vs finite diff %.6e", tag,
              t->name, an, fd);
}

static int is_attn_tensor(const char *name) { return strstr(name, ".attn.") != NULL; }

Test(model, gradients_match_finite_differences_per_tensor) {
    qa_dit m;
    make_model(&m, 0.05f);
    cr_assert_eq(m.n_tensors, 2 * (3 + 7 * CFG.depth + 2) + 2, "tensor table size");
    compute_grads(&m);
    int nonzero = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const qa_tensor_info *t = &m.tensors[i];
        check_tensor(&m, t, 500 + i, "fp");
        double gn = tensor_grad_norm(&m, t);
        if (strstr(t->name, "attn.k.bias"))
            /* softmax is invariant to q.b_k (the same shift for every key of a row): exactly no gradient */
            cr_expect(gn < 1e-8, "%s: |g| = %g, want ~0 (softmax shift invariance)", t->name, gn);
        else
            nonzero += gn > 1e-6;
    }
    cr_assert_eq(nonzero, m.n_tensors - CFG.depth, "only %d of %d tensors had a non-negligible gradient", nonzero,
                 m.n_tensors - CFG.depth);
    /* all parameters jointly */
    qa_tensor_info all = {"all", 0, m.n_params, 1, {(int)m.n_params, 1}};
    double fd, an;
    dir_check(&m, &all, 4242, &fd, &an);
    cr_assert(close_rel(fd, an, FD_REL, FD_ABS), "all params jointly: analytic %.6e vs fd %.6e", an, fd);
    qa_dit_free(&m);
}

Test(model, backward_accumulates_grads) {
    qa_dit m;
    make_model(&m, 0.05f);
    compute_grads(&m);
    float *g1 = malloc(sizeof(float) * m.n_params);
    memcpy(g1, m.grads, sizeof(float) * m.n_params);
    static float eps[B * D], deps[B * D];
    qa_dit_forward(&m, x_t, tt, yy, B, eps);
    qa_mse_loss(eps, target, B * D, deps);
    qa_dit_backward(&m, deps); /* no zeroing: grads add up */
    for (size_t i = 0; i < m.n_params; i++)
        cr_assert_float_eq(m.grads[i], 2 * g1[i], 1e-5 + 1e-4 * fabsf(g1[i]), "grad[%zu] %g vs 2 x %g", i, m.grads[i],
                           g1[i]);
    free(g1);
    qa_dit_free(&m);
}

Test(model, train_base_off_leaves_base_grads_untouched) {
    qa_dit m;
    make_model(&m, 0.05f);
    m.train_base = 0;
    compute_grads(&m);
    for (size_t i = 0; i < m.n_params; i++) cr_assert_eq(m.grads[i], 0.0f, "grad[%zu] = %g with train_base 0", i, m.grads[i]);
    qa_dit_free(&m);
}

Test(model, init_is_adaln_zero_and_deterministic) {
    qa_error err = {0, ""};
    qa_dit a, b;
    cr_assert_eq(qa_dit_create(&a, &CFG, B, &err), QA_OK);
    cr_assert_eq(qa_dit_create(&b, &CFG, B, &err), QA_OK);
    qa_dit_init_weights(&a, 3);
    qa_dit_init_weights(&b, 3);
    cr_assert_eq(memcmp(a.params, b.params, sizeof(float) * a.n_params), 0, "same seed, different weights");
    qa_dit_init_weights(&b, 4);
    cr_assert_neq(memcmp(a.params, b.params, sizeof(float) * a.n_params), 0, "seed ignored");
    for (int i = 0; i < a.n_tensors; i++) {
        const qa_tensor_info *t = &a.tensors[i];
        int must_zero = strstr(t->name, "adaln") || strncmp(t->name, "final.linear", 12) == 0 || strstr(t->name, ".bias");
        double s = 0;
        for (size_t j = 0; j < t->n; j++) s += fabs(a.params[t->offset + j]);
        if (must_zero) cr_assert_eq(s, 0.0, "%s must start at zero", t->name);
        else cr_assert(s > 0, "%s must be initialised", t->name);
    }
    /* adaLN-zero: the initial model outputs exactly zero */
    float x[B * D], eps[B * D];
    trng r = trng_new(1);
    fill_normal(&r, x, B * D, 1);
    qa_dit_forward(&a, x, tt, yy, B, eps);
    for (int i = 0; i < B * D; i++) cr_assert_eq(eps[i], 0.0f, "eps[%d] = %g at init", i, eps[i]);
    qa_dit_free(&a);
    qa_dit_free(&b);
}

Test(model, create_rejects_bad_configs) {
    qa_dit m;
    qa_error err = {0, ""};
    qa_dit_config c = CFG;
    c.patch = 5; /* 28 % 5 != 0 */
    cr_assert_eq(qa_dit_create(&m, &c, 2, &err), QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "patch") != NULL, "%s", err.msg);
    c = CFG;
    c.heads = 3; /* 16 % 3 != 0 */
    cr_assert_eq(qa_dit_create(&m, &c, 2, &err), QA_ERR_INPUT);
    c = CFG;
    c.depth = 0;
    cr_assert_eq(qa_dit_create(&m, &c, 2, &err), QA_ERR_INPUT);
}

static float *P(qa_dit *m, const char *name) {
    qa_tensor_info *t = qa_dit_find_tensor(m, name);
    cr_assert_not_null(t, "tensor %s", name);
    return m->params + t->offset;
}

static double silu_d(double v) { return v / (1 + exp(-v)); }

/* With every block's adaLN at zero the blocks are the identity, so eps can be computed here from
 * the spec alone: conditioning MLP, class table, patchify, patch embedding, pos, final adaLN, LN,
 * final linear, unpatchify. */
Test(model, forward_of_non_block_path_matches_independent_reference) {
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &CFG, B, &err), QA_OK);
    qa_dit_init_weights(&m, 5);
    trng r = trng_new(17);
    const int d = CFG.dim, p = CFG.patch, G = 28 / p, pd = p * p;
    /* make biases and the final layers non-zero; keep block adaLN at zero */
    for (int i = 0; i < m.n_tensors; i++) {
        qa_tensor_info *t = &m.tensors[i];
        if (strncmp(t->name, "blocks.", 7) == 0 && strstr(t->name, "adaln")) continue;
        if (strstr(t->name, ".bias") || strncmp(t->name, "final.", 6) == 0)
            fill_normal(&r, m.params + t->offset, t->n, 0.1);
    }
    float x[B * D], eps[B * D];
    fill_normal(&r, x, B * D, 1);
    qa_dit_forward(&m, x, tt, yy, B, eps);

    const float *W1 = P(&m, "t_embed.fc1.weight"), *b1 = P(&m, "t_embed.fc1.bias");
    const float *W2 = P(&m, "t_embed.fc2.weight"), *b2 = P(&m, "t_embed.fc2.bias");
    const float *Wp = P(&m, "patch_embed.weight"), *bp = P(&m, "patch_embed.bias");
    const float *Wa = P(&m, "final.adaln.weight"), *ba = P(&m, "final.adaln.bias");
    const float *Wf = P(&m, "final.linear.weight"), *bf = P(&m, "final.linear.bias");
    const float *pos = P(&m, "pos_embed"), *cls = P(&m, "class_embed");
    double maxerr = 0, maxval = 0;
    for (int b = 0; b < B; b++) {
        double f[64], h1[64], c[64], mod[128];
        for (int i = 0; i < d / 2; i++) {
            double fr = exp(-log(10000.0) * i / (d / 2));
            f[i] = cos(tt[b] * fr);
            f[d / 2 + i] = sin(tt[b] * fr);
        }
        for (int o = 0; o < d; o++) {
            double s = b1[o];
            for (int i = 0; i < d; i++) s += W1[o * d + i] * f[i];
            h1[o] = silu_d(s);
        }
        for (int o = 0; o < d; o++) {
            double s = b2[o];
            for (int i = 0; i < d; i++) s += W2[o * d + i] * h1[i];
            c[o] = s + cls[yy[b] * d + o];
        }
        for (int o = 0; o < 2 * d; o++) {
            double s = ba[o];
            for (int i = 0; i < d; i++) s += Wa[o * d + i] * silu_d(c[i]);
            mod[o] = s;
        }
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                int tok = 1 + gy * G + gx;
                double patch[64], e[64], mu = 0, var = 0;
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++) patch[py * p + px] = x[b * D + (gy * p + py) * 28 + gx * p + px];
                for (int o = 0; o < d; o++) {
                    double s = bp[o];
                    for (int i = 0; i < pd; i++) s += Wp[o * pd + i] * patch[i];
                    e[o] = s + pos[tok * d + o];
                    mu += e[o];
                }
                mu /= d;
                for (int o = 0; o < d; o++) var += (e[o] - mu) * (e[o] - mu);
                var /= d;
                for (int o = 0; o < d; o++) e[o] = (e[o] - mu) / sqrt(var + 1e-6) * (1 + mod[d + o]) + mod[o];
                for (int k = 0; k < pd; k++) {
                    double s = bf[k];
                    for (int i = 0; i < d; i++) s += Wf[k * d + i] * e[i];
                    int py = k / p, px = k % p;
                    double got = eps[b * D + (gy * p + py) * 28 + gx * p + px];
                    maxerr = fmax(maxerr, fabs(got - s));
                    maxval = fmax(maxval, fabs(s));
                    cr_assert(fabs(got - s) <= 1e-4 + 1e-4 * fabs(s), "eps[b=%d, patch (%d,%d), pixel %d] = %g, want %g",
                              b, gy, gx, k, got, s);
                }
            }
    }
    cr_log_info("non-block forward: max |err| %g over max |eps| %g", maxerr, maxval);
    cr_assert(maxval > 0.1, "reference output too small to be a meaningful check");
    qa_dit_free(&m);
}

Test(model, forward_flops_by_hand) {
    qa_dit m;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&m, &CFG, B, &err), QA_OK);
    const double d = 16, T = 50, NP = 49, pd = 16, hid = 32, L = 2;
    for (int Bb = 1; Bb <= 3; Bb++) {
        double f = 2 * Bb * NP * pd * d          /* patch embed */
                   + 2 * 2 * Bb * d * d          /* t_embed fc1, fc2 */
                   + L * (2 * Bb * d * 6 * d     /* block adaLN */
                          + 4 * 2 * Bb * T * d * d /* q k v out */
                          + 2 * 2 * Bb * T * d * hid /* mlp fc1, fc2 */
                          + 2 * 2 * Bb * T * T * d)  /* q k^T and P v */
                   + 2 * Bb * d * 2 * d          /* final adaLN */
                   + 2 * Bb * T * d * pd;        /* final linear */
        double got = qa_dit_forward_flops(&m, Bb);
        cr_assert(got > 0);
        cr_assert_float_eq(got, f, 1e-9 * f, "B=%d: %.0f FLOPs, want %.0f", Bb, got, f);
    }
    qa_dit_free(&m);
}

Test(model, quantized_base_keeps_fp_grad_path_for_attention) {
    qa_dit fp, m;
    make_model(&fp, 0.05f);
    make_model(&m, 0.05f);
    static float e_fp[B * D], e_q[B * D];
    qa_dit_forward(&fp, x_t, tt, yy, B, e_fp);
    qa_dit_quantize_base(&m, 8, 0, 1);
    for (int i = 0; i < m.n_lin; i++) {
        qa_linear *s = &m.lin[i];
        if (s->role == QA_ROLE_ATTN) cr_assert_null(s->W_frozen, "%s is adapted: stays FP", s->name);
        else cr_assert_not_null(s->W_frozen, "%s must be frozen-quantized", s->name);
        cr_assert_eq(s->actq.bits, 0, "a_bits 0: no input quantizer on %s", s->name);
    }
    qa_dit_forward(&m, x_t, tt, yy, B, e_q);
    double diff = 0, ref = 0;
    for (int i = 0; i < B * D; i++) { diff += fabs(e_q[i] - e_fp[i]); ref += fabs(e_fp[i]); }
    cr_assert(diff > 0, "8-bit weights changed nothing");
    cr_assert(diff < 0.05 * ref, "8-bit weights changed the output too much: %g vs %g", diff, ref);

    compute_grads(&m);
    for (int i = 0; i < m.n_tensors; i++) {
        const qa_tensor_info *t = &m.tensors[i];
        int frozen = !is_attn_tensor(t->name) && strcmp(t->name, "pos_embed") && strcmp(t->name, "class_embed");
        double gs = 0;
        for (size_t j = 0; j < t->n; j++) gs += fabs(m.grads[t->offset + j]);
        if (frozen) {
            double fd, an;
            dir_check(&m, t, 900 + i, &fd, &an);
            cr_assert_eq(gs, 0.0, "%s is frozen: no gradient expected (got |g| %g)", t->name, gs);
            if (strstr(t->name, ".weight"))
                cr_assert_eq(fd, 0.0, "%s: the FP weight must be unused once quantized (fd %g)", t->name, fd);
        } else {
            /* blocks.0 attention sees its gradient only through blocks.1's quantized layers */
            if (!strstr(t->name, "attn.k.bias")) cr_assert(gs > 0, "%s: no gradient reached it", t->name);
            check_tensor(&m, t, 900 + i, "w8");
        }
    }
    /* reset restores the FP model exactly */
    qa_dit_reset_slots(&m);
    qa_dit_forward(&m, x_t, tt, yy, B, e_q);
    cr_assert_eq(memcmp(e_q, e_fp, sizeof e_q), 0, "dit_reset_slots must restore FP outputs");
    qa_dit_free(&fp);
    qa_dit_free(&m);
}

Test(model, w8a8_base_calibrates_once_and_grads_stay_close_to_fp) {
    qa_dit fp, m;
    make_model(&fp, 0.05f);
    make_model(&m, 0.05f);
    compute_grads(&fp);
    qa_dit_quantize_base(&m, 8, 8, 1);
    compute_grads(&m); /* first forward calibrates every input quantizer */
    float *d0 = malloc(sizeof(float) * m.n_lin);
    for (int i = 0; i < m.n_lin; i++) {
        cr_assert_eq(m.lin[i].actq.bits, 8);
        cr_assert_eq(m.lin[i].actq.calibrated, 1, "%s not calibrated", m.lin[i].name);
        cr_assert(m.lin[i].actq.delta > 0 && isfinite(m.lin[i].actq.delta));
        d0[i] = m.lin[i].actq.delta;
    }
    double dot = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const qa_tensor_info *t = &m.tensors[i];
        if (!is_attn_tensor(t->name)) continue;
        for (size_t j = 0; j < t->n; j++) {
            double a = fp.grads[t->offset + j], b = m.grads[t->offset + j];
            cr_assert(isfinite(b));
            dot += a * b; n1 += a * a; n2 += b * b;
        }
    }
    double cosine = dot / sqrt(n1 * n2);
    cr_log_info("W8A8 vs FP attention grads: cosine %.5f", cosine);
    cr_assert(cosine > 0.95, "straight-through grads of the W8A8 base drift from FP: cosine %g", cosine);
    cr_assert(cosine < 1.0 - 1e-9, "activation quantization had no effect on the grads");
    /* a second batch with a wider range keeps the calibration */
    static float x2[B * D], e2[B * D];
    for (int i = 0; i < B * D; i++) x2[i] = 3.0f * x_t[i];
    qa_dit_forward(&m, x2, tt, yy, B, e2);
    for (int i = 0; i < m.n_lin; i++) cr_assert_eq(m.lin[i].actq.delta, d0[i], "%s: recalibrated", m.lin[i].name);
    free(d0);
    qa_dit_free(&fp);
    qa_dit_free(&m);
}

Test(model, checkpoint_round_trip_gives_identical_outputs) {
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "ckpt");
    snprintf(path, sizeof path, "%s/dit.h5", dir);
    qa_dit m, m2;
    make_model(&m, 0.05f);
    qa_error err = {0, ""};
    qa_ckpt_meta meta = {"dit", "[job]\nkind = pretrain\n", 0.5, 12.0, 100, 1.5, -1};
    cr_assert_eq(qa_dit_save(path, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", path);
    cr_assert(!qa_file_exists(partial), "the .partial file must be renamed away");
    cr_assert_eq(qa_dit_load(path, &m2, 2, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(memcmp(&m2.cfg, &m.cfg, sizeof m.cfg), 0, "config differs");
    cr_assert_eq(m2.n_params, m.n_params);
    cr_assert_eq(m2.max_batch, 2);
    cr_assert_eq(memcmp(m2.params, m.params, sizeof(float) * m.n_params), 0, "parameters differ");
    static float e1[2 * D], e2[2 * D];
    qa_dit_forward(&m, x_t, tt, yy, 2, e1);
    qa_dit_forward(&m2, x_t, tt, yy, 2, e2);
    cr_assert_eq(memcmp(e1, e2, sizeof e1), 0, "outputs differ after the round trip");
    /* provenance attributes */
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), QA_OK, "%s", err.msg);
    char buf[256];
    double v;
    cr_assert_eq(qa_h5_attr_get_str(f, "/", "kind", buf, sizeof buf, &err), QA_OK);
    cr_assert_str_eq(buf, "dit");
    cr_assert_eq(qa_h5_attr_get_str(f, "/", "recipe", buf, sizeof buf, &err), QA_OK);
    cr_assert_str_eq(buf, meta.recipe_text);
    cr_assert_eq(qa_h5_attr_get_f64(f, "/", "steps", &v, &err), QA_OK);
    cr_assert_eq(v, 100.0);
    cr_assert(!qa_h5_has_attr(f, "/", "test_accuracy"), "negative test_accuracy means not set");
    qa_h5_close(f, &err);
    /* explicit params (e.g. EMA weights) are saved instead of m.params */
    float *ema = malloc(sizeof(float) * m.n_params);
    for (size_t i = 0; i < m.n_params; i++) ema[i] = 0.5f * m.params[i];
    cr_assert_eq(qa_dit_save(path, &m, ema, &meta, &err), QA_OK, "%s", err.msg);
    qa_dit_free(&m2);
    cr_assert_eq(qa_dit_load(path, &m2, 2, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(memcmp(m2.params, ema, sizeof(float) * m.n_params), 0, "EMA params not the ones saved");
    free(ema);
    qa_dit_free(&m2);
    /* missing file */
    snprintf(path, sizeof path, "%s/none.h5", dir);
    cr_assert_eq(qa_dit_load(path, &m2, 2, &err), QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "none.h5") != NULL, "%s", err.msg);
    qa_dit_free(&m);
    rm_rf_dir(dir);
}

Test(model, load_rejects_checkpoint_with_missing_tensor) {
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "ckpt2");
    snprintf(path, sizeof path, "%s/dit.h5", dir);
    qa_dit m, m2;
    make_model(&m, 0.0f);
    qa_error err = {0, ""};
    qa_ckpt_meta meta = {"dit", "", 0, 0, 0, 0, -1};
    /* save all but the last tensor (class_embed) */
    const char *keys[] = {"img", "patch", "dim", "depth", "heads", "mlp_ratio", "n_classes", "n_spare"};
    double vals[] = {28, 4, 16, 2, 2, 2, 10, 2};
    cr_assert_eq(qa_ckpt_save_tensors(path, m.tensors, m.n_tensors - 1, m.params, keys, vals, 8, &meta, &err), QA_OK,
                 "%s", err.msg);
    int rc = qa_dit_load(path, &m2, 2, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "rc %d", rc);
    cr_assert(strstr(err.msg, "class_embed") != NULL, "message names the tensor: %s", err.msg);
    qa_dit_free(&m);
    rm_rf_dir(dir);
}

/* Every activation buffer holds a whole batch, so the count doubles exactly with max_batch;
 * activation fake-quantization adds x_hat and dx_hat, [max_rows, in] each, to every slot. */
Test(model, activation_bytes_scale_with_batch_and_count_act_quant) {
    qa_dit a, b;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(&a, &CFG, 3, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_dit_create(&b, &CFG, 6, &err), QA_OK, "%s", err.msg);
    size_t na = qa_dit_activation_bytes(&a), nb = qa_dit_activation_bytes(&b);
    cr_expect(na > 0);
    cr_expect_eq(nb, 2 * na, "%zu vs 2 x %zu", nb, na);
    size_t extra = 0;
    for (int i = 0; i < a.n_lin; i++) extra += 2 * sizeof(float) * (size_t)(3 * a.T) * a.lin[i].in;
    qa_dit_quantize_base(&a, 8, 8, 0);
    cr_expect_eq(qa_dit_activation_bytes(&a), na + extra);
    qa_dit_free(&a);
    qa_dit_free(&b);
}
