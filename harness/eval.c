#include "harness/eval.h"

#include <math.h>
#include <string.h>

#include "harness/rng.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>

#define HELDOUT_SEED 20241028u /* fixed: the same test images, t and noise for every run */

int qa_heldout_init(qa_heldout *h, const qa_images *test, int n_images, int draws, qa_error *err) {
    return qa_heldout_init_split(h, test, n_images, draws, 0, err);
}

int qa_heldout_init_split(qa_heldout *h, const qa_images *test, int n_images, int draws, int split, qa_error *err) {
    memset(h, 0, sizeof *h);
    const int first = split * n_images;
    if (first + n_images > test->n)
        return qa_fail(err, QA_ERR_INPUT, "eval: loss_images = %d but the test set has %d images%s", n_images, test->n,
                       split ? " (a tuned recipe needs twice that: its tuning runs are scored on other images than "
                               "the reported ones)" : "");
    const int D = test->rows * test->cols;
    h->n_images = n_images;
    h->draws = draws;
    size_t n = (size_t)n_images * draws;
    h->x0 = qa_alloc(sizeof(float) * n * D);
    h->eps = qa_alloc(sizeof(float) * n * D);
    h->t = qa_alloc(sizeof(float) * n);
    h->y = qa_alloc(sizeof(int) * n);
    qa_schedule_default(&h->sched);
    qa_rng *r = qa_rng_new(qa_seed_for(HELDOUT_SEED, "heldout"));
    int *idx = qa_alloc(sizeof(int) * test->n);
    for (int i = 0; i < test->n; i++) idx[i] = i;
    qa_rng_shuffle(r, idx, (size_t)test->n);
    for (int i = 0; i < n_images; i++)
        for (int d = 0; d < draws; d++) {
            size_t k = (size_t)i * draws + d;
            qa_images_to_float(test, &idx[first + i], 1, h->x0 + k * D);
            h->y[k] = test->labels[idx[first + i]];
            /* stratified timesteps: draw d takes an integer t in [d T/draws, (d+1) T/draws), i.e. in
             * [ceil(d T/draws), ceil((d+1) T/draws)); the strata tile 0..T-1 whatever draws is */
            int lo = (int)(((long)d * 1000 + draws - 1) / draws), hi = (int)(((long)(d + 1) * 1000 + draws - 1) / draws);
            h->t[k] = (float)(lo + (hi > lo ? (int)qa_rng_below(r, (unsigned long)(hi - lo)) : 0));
        }
    qa_rng_fill_normal(r, h->eps, n * D, 1.0f);
    qa_free(idx);
    qa_rng_free(r);
    return QA_OK;
}

void qa_heldout_free(qa_heldout *h) {
    qa_free(h->x0); qa_free(h->eps); qa_free(h->t); qa_free(h->y);
    memset(h, 0, sizeof *h);
}

double qa_heldout_loss(qa_dit *m, const qa_heldout *h, double *per_image) {
    const int D = m->cfg.img * m->cfg.img, B = m->max_batch;
    size_t n = (size_t)h->n_images * h->draws;
    float *xt = qa_alloc(sizeof(float) * (size_t)B * D), *pred = qa_alloc(sizeof(float) * (size_t)B * D);
    double total = 0;
    if (per_image) memset(per_image, 0, sizeof(double) * h->n_images);
    for (size_t s = 0; s < n; s += (size_t)B) {
        int nb = (int)(n - s < (size_t)B ? n - s : (size_t)B);
        qa_diffusion_noise_at(&h->sched, h->x0 + s * D, h->eps + s * D, h->t + s, nb, D, xt);
        qa_dit_forward_inference(m, xt, h->t + s, h->y + s, nb, pred);
        for (int b = 0; b < nb; b++) {
            double l = qa_mse_loss(pred + (size_t)b * D, h->eps + (s + b) * D, (size_t)D, NULL);
            total += l;
            if (per_image) per_image[(s + b) / h->draws] += l / h->draws;
        }
    }
    qa_free(xt);
    qa_free(pred);
    return total / (double)n;
}

double qa_mean_cosine(const float *a, int na, const float *b, int nb, int F) {
    double acc = 0;
    for (int i = 0; i < na; i++) {
        const float *x = a + (size_t)i * F;
        double nx = 0;
        for (int k = 0; k < F; k++) nx += (double)x[k] * x[k];
        for (int j = 0; j < nb; j++) {
            const float *y = b + (size_t)j * F;
            double ny = 0, dot = 0;
            for (int k = 0; k < F; k++) { ny += (double)y[k] * y[k]; dot += (double)x[k] * y[k]; }
            acc += (nx > 0 && ny > 0) ? dot / sqrt(nx * ny) : 0.0;
        }
    }
    return acc / ((double)na * nb);
}

double qa_mean_pairwise_distance(const float *a, int n, int F) {
    if (n < 2) return 0;
    double acc = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) acc += 1.0 - qa_mean_cosine(a + (size_t)i * F, 1, a + (size_t)j * F, 1, F);
    return acc / (0.5 * n * (n - 1));
}

double qa_identification_score(const float *samples, int n, const float *refs, int k, const float *other, int n_other, int F) {
    if (n < 1 || k < 1) return -1;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *x = samples + (size_t)i * F;
        double own = qa_mean_cosine(x, 1, refs, k, F);
        int closer = 1;
        for (int j = 0; j < n_other && closer; j++) closer = own > qa_mean_cosine(x, 1, other + (size_t)j * k * F, k, F);
        hits += closer;
    }
    return (double)hits / n;
}

double qa_mean_paired_distance(const float *a, const float *b, int n, int F) {
    if (n < 1) return -1;
    double acc = 0;
    for (int i = 0; i < n; i++) acc += 1.0 - qa_mean_cosine(a + (size_t)i * F, 1, b + (size_t)i * F, 1, F);
    return acc / n;
}

static void mean_cov(const float *x, int n, int F, double *mu, gsl_matrix *S) {
    for (int k = 0; k < F; k++) {
        double m = 0;
        for (int i = 0; i < n; i++) m += x[(size_t)i * F + k];
        mu[k] = m / n;
    }
    for (int p = 0; p < F; p++)
        for (int q = p; q < F; q++) {
            double c = 0;
            for (int i = 0; i < n; i++) c += (x[(size_t)i * F + p] - mu[p]) * (x[(size_t)i * F + q] - mu[q]);
            c /= (n - 1);
            gsl_matrix_set(S, p, q, c);
            gsl_matrix_set(S, q, p, c);
        }
}

double qa_frechet_distance(const float *a, int na, const float *b, int nb, int F) {
    QA_ASSERT(na >= 2 && nb >= 2);
    double *m1 = qa_alloc(sizeof(double) * F), *m2 = qa_alloc(sizeof(double) * F);
    gsl_matrix *S1 = gsl_matrix_alloc(F, F), *S2 = gsl_matrix_alloc(F, F), *V = gsl_matrix_alloc(F, F);
    gsl_matrix *R = gsl_matrix_alloc(F, F), *T = gsl_matrix_alloc(F, F), *P = gsl_matrix_alloc(F, F);
    gsl_vector *ev = gsl_vector_alloc(F);
    mean_cov(a, na, F, m1, S1);
    mean_cov(b, nb, F, m2, S2);
    double d2 = 0, tr = 0;
    for (int k = 0; k < F; k++) {
        d2 += (m1[k] - m2[k]) * (m1[k] - m2[k]);
        tr += gsl_matrix_get(S1, k, k) + gsl_matrix_get(S2, k, k);
    }
    /* sqrt(S1) = V diag(sqrt(max(l, 0))) V^T  (the eigen routine destroys its input: use a copy) */
    gsl_matrix_memcpy(T, S1);
    gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(F);
    gsl_eigen_symmv(T, ev, V, w);
    gsl_eigen_symmv_free(w);
    gsl_matrix_memcpy(T, V);
    for (int k = 0; k < F; k++) {
        double l = gsl_vector_get(ev, k);
        gsl_vector_view col = gsl_matrix_column(T, k);
        gsl_vector_scale(&col.vector, sqrt(l > 0 ? l : 0));
    }
    gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, T, V, 0.0, R);   /* R = sqrt(S1) */
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, R, S2, 0.0, T); /* T = R S2 */
    gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1.0, T, R, 0.0, P);  /* P = R S2 R (symmetric) */
    gsl_eigen_symm_workspace *w2 = gsl_eigen_symm_alloc(F);
    gsl_eigen_symm(P, ev, w2);
    gsl_eigen_symm_free(w2);
    double trsqrt = 0;
    for (int k = 0; k < F; k++) {
        double l = gsl_vector_get(ev, k);
        trsqrt += sqrt(l > 0 ? l : 0);
    }
    gsl_matrix_free(S1); gsl_matrix_free(S2); gsl_matrix_free(V); gsl_matrix_free(R); gsl_matrix_free(T);
    gsl_matrix_free(P); gsl_vector_free(ev);
    qa_free(m1); qa_free(m2);
    double fd = d2 + tr - 2 * trsqrt;
    return fd > 0 ? fd : 0;
}

void qa_sample_images(qa_dit *m, const qa_schedule *s, int y, int n, int steps, float guidance,
                   uint64_t seed, float *out) {
    const int D = m->cfg.img * m->cfg.img;
    int chunk = guidance != 1.0f ? m->max_batch / 2 : m->max_batch;
    int *ys = qa_alloc(sizeof(int) * chunk);
    for (int i = 0; i < chunk; i++) ys[i] = y;
    for (int s0 = 0, c = 0; s0 < n; s0 += chunk, c++) {
        int nb = n - s0 < chunk ? n - s0 : chunk;
        char purpose[32];
        snprintf(purpose, sizeof purpose, "samples-%d", c);
        qa_ddim_sample(m, s, ys, nb, steps, guidance, qa_seed_for(seed, purpose), out + (size_t)s0 * D);
    }
    qa_free(ys);
}

void qa_to_pixels(const float *x, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] + 1.0f) * 127.5f;
        v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
        out[i] = (uint8_t)nearbyintf(v);
    }
}
