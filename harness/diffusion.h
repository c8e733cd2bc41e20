/* Epsilon-prediction DDPM training and DDIM sampling with classifier-free guidance.
 *   x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,   loss = mean (eps_theta(x_t, t, y) - eps)^2
 *   DDIM (eta = 0): x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t), clipped to [-1, 1];
 *   x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps_hat' (eps_hat' consistent with the clip)
 *   CFG: eps_hat = eps_null + w (eps_cond - eps_null). */
#ifndef QA_DIFFUSION_H
#define QA_DIFFUSION_H

#include "harness/model.h"
#include "harness/rng.h"

typedef struct {
    int T;
    float abar[4096];
} qa_schedule;

/* Linear betas from beta_start to beta_end over T steps (DDPM: 1e-4, 0.02, 1000). */
void qa_schedule_linear(qa_schedule *s, int T, float beta_start, float beta_end);
/* The schedule the denoiser is pre-trained, adapted and evaluated with: DDPM's linear betas,
 * 1e-4 to 0.02 over 1000 steps. */
void qa_schedule_default(qa_schedule *s);

/* Noise a batch: t uniform in [0, T), eps ~ N(0, I). x0, x_t, eps are [B, D]. */
void qa_diffusion_noise(const qa_schedule *s, qa_rng *r, const float *x0, int B, int D, float *x_t,
                     float *eps, float *t);
/* Same, with t and eps given (paired evaluation). */
void qa_diffusion_noise_at(const qa_schedule *s, const float *x0, const float *eps, const float *t,
                        int B, int D, float *x_t);
/* loss = mean (pred - target)^2 over n; deps = dloss/dpred (if not NULL). */
float qa_mse_loss(const float *pred, const float *target, size_t n, float *dpred);

/* Sample B images for classes y with DDIM (steps) and guidance w (w = 1: no guidance; the
 * model's max_batch must be >= 2B when w != 1). Initial noise from seed. out is [B, D] in [-1,1]. */
void qa_ddim_sample(qa_dit *m, const qa_schedule *s, const int *y, int B, int steps, float guidance,
                 uint64_t seed, float *out);

#endif
