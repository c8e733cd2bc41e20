#include "harness/diffusion.h"

#include <math.h>
#include <string.h>

void qa_schedule_linear(qa_schedule *s, int T, float beta_start, float beta_end) {
    QA_ASSERT(T > 1 && T <= 4096);
    s->T = T;
    double abar = 1.0;
    for (int i = 0; i < T; i++) {
        double beta = beta_start + (beta_end - beta_start) * (double)i / (double)(T - 1);
        abar *= 1.0 - beta;
        s->abar[i] = (float)abar;
    }
}

void qa_schedule_default(qa_schedule *s) { qa_schedule_linear(s, 1000, 1e-4f, 0.02f); }

void qa_diffusion_noise_at(const qa_schedule *s, const float *x0, const float *eps, const float *t,
                        int B, int D, float *x_t) {
    for (int b = 0; b < B; b++) {
        int ti = (int)t[b];
        float a = sqrtf(s->abar[ti]), sig = sqrtf(1.0f - s->abar[ti]);
        for (int j = 0; j < D; j++)
            x_t[(size_t)b * D + j] = a * x0[(size_t)b * D + j] + sig * eps[(size_t)b * D + j];
    }
}

void qa_diffusion_noise(const qa_schedule *s, qa_rng *r, const float *x0, int B, int D, float *x_t,
                     float *eps, float *t) {
    for (int b = 0; b < B; b++) t[b] = (float)qa_rng_below(r, (unsigned long)s->T);
    qa_rng_fill_normal(r, eps, (size_t)B * D, 1.0f);
    qa_diffusion_noise_at(s, x0, eps, t, B, D, x_t);
}

float qa_mse_loss(const float *pred, const float *target, size_t n, float *dpred) {
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        float e = pred[i] - target[i];
        acc += (double)e * e;
        if (dpred) dpred[i] = 2.0f * e / (float)n;
    }
    return (float)(acc / (double)n);
}

void qa_ddim_sample(qa_dit *m, const qa_schedule *s, const int *y, int B, int steps, float guidance,
                 uint64_t seed, float *out) {
    const int D = m->cfg.img * m->cfg.img;
    int guided = guidance != 1.0f;
    int NB = guided ? 2 * B : B;
    QA_ASSERT(NB <= m->max_batch && steps >= 1 && steps <= s->T);
    float *xin = qa_alloc(sizeof(float) * (size_t)NB * D);
    float *eps = qa_alloc(sizeof(float) * (size_t)NB * D);
    float *tt = qa_alloc(sizeof(float) * NB);
    int *yy = qa_alloc(sizeof(int) * NB);
    for (int b = 0; b < B; b++) {
        yy[b] = y[b];
        if (guided) yy[B + b] = m->null_class;
    }
    qa_rng *r = qa_rng_new(qa_seed_for(seed, "ddim-noise"));
    qa_rng_fill_normal(r, out, (size_t)B * D, 1.0f);
    qa_rng_free(r);
    int stride = s->T / steps;
    for (int i = steps - 1; i >= 0; i--) {
        int t = i * stride;
        float abar = s->abar[t], abar_prev = i > 0 ? s->abar[(i - 1) * stride] : 1.0f;
        memcpy(xin, out, sizeof(float) * (size_t)B * D);
        if (guided) memcpy(xin + (size_t)B * D, out, sizeof(float) * (size_t)B * D);
        for (int b = 0; b < NB; b++) tt[b] = (float)t;
        qa_dit_forward_inference(m, xin, tt, yy, NB, eps);
        float sa = sqrtf(abar), ss = sqrtf(1.0f - abar);
        float sap = sqrtf(abar_prev), ssp = sqrtf(1.0f - abar_prev);
        for (size_t j = 0; j < (size_t)B * D; j++) {
            float e = guided ? eps[(size_t)B * D + j] + guidance * (eps[j] - eps[(size_t)B * D + j]) : eps[j];
            float x0 = (out[j] - ss * e) / sa;
            x0 = x0 < -1.f ? -1.f : (x0 > 1.f ? 1.f : x0);
            float e2 = (out[j] - sa * x0) / ss;
            out[j] = sap * x0 + ssp * e2;
        }
    }
    qa_free(xin); qa_free(eps); qa_free(tt); qa_free(yy);
}
