/* The training loop of the denoiser, one for pre-training and adaptation: per step, a batch
 * from the caller (noisy inputs, timesteps, labels and the regression target), the epsilon
 * loss (main term + weight x prior term), backward, AdamW at the scheduled rate; a non-finite
 * loss or gradient norm stops the run as diverged. What differs between jobs (where the batch
 * comes from, EMA, logging, snapshots, recording) lives in the caller's two hooks. */
#ifndef QA_TRAIN_H
#define QA_TRAIN_H

#include "harness/diffusion.h"
#include "harness/model.h"
#include "harness/registry.h"
#include "harness/shard.h"

typedef struct {
    long steps, warmup;
    int batch;
    float lr, weight_decay, clip;
    int cosine;               /* 1: cosine decay to 10% after the warm-up; 0: constant */
    double max_seconds;       /* stop after this wall time (0: no limit) */
    long inject_nan_step;     /* fault injection for tests: the loss is NaN at this step (0: off) */
    /* Data parallel (NULL: one process). Every rank fills the same global batch of `batch`
     * rows (the same random streams, so sample j has the same image, label, t and noise for
     * any number of ranks) and computes rows [rank*B/size, (rank+1)*B/size) only; its loss and
     * gradient are scaled to the global mean, and one reducer->sum per step adds the flat
     * buffer of every gradient, the loss and a time-limit flag over the ranks. Every rank then
     * takes the same optimizer step. Differences from one process are reduction order only. */
    const qa_grad_reducer *reduce;
    /* The arithmetic of the matmuls while training ([train] dtype): qa_train sets it on the model
     * (dit_set_dtype: every plain slot and every method's frozen base product) for the loop, and
     * sets f32 back when the loop ends, before the caller deploys or evaluates. */
    qa_dtype dtype;
} qa_train_spec;

/* Learning rate at a step: linear warm-up, then constant or cosine to 10% at total. */
float qa_lr_at(float peak, long step, long warmup, long total, int cosine);

/* One step's batch, filled by the caller: rows [0, B_main) are the main term, [B_main, B) the
 * prior term, weighted by prior_weight. */
typedef struct {
    int B, B_main;
    float prior_weight;
    float *xt, *tt, *target;  /* [B, D], [B], [B, D] */
    int *labels;              /* [B] */
} qa_train_batch;

typedef struct {
    void *ctx;
    /* Fill the batch of this step (B and the buffers are set; B_main defaults to B). */
    void (*batch)(void *ctx, long step, qa_train_batch *b);
    /* After the optimizer step; a nonzero return stops the loop with that status. May be NULL. */
    int (*after_step)(void *ctx, long step, float loss, float lr, float qa_grad_norm, qa_error *err);
} qa_train_hooks;

typedef struct {
    long steps_done;          /* steps completed; at divergence, the step that failed */
    int diverged;
    char fail_reason[256];
} qa_train_result;

/* Train the params of m (the tensors the optimizer updates; their grads are zeroed each step). */
int qa_train(qa_dit *m, qa_param *params, int np, const qa_train_spec *spec, const qa_train_hooks *hooks,
             qa_train_result *res, qa_error *err);

/* Data-free distillation (objective = distill): x_T ~ N(0, I) with random classes; along the FP
 * teacher's DDIM trajectory the student and the teacher see the same x_t, the target is the
 * teacher's eps, one optimizer step per denoising step; the teacher's eps moves x_t on. */
typedef struct {
    qa_dit *teacher;
    const qa_schedule *sched;
    int ddim_steps, n_classes, B;
    int remaining, t_cur;     /* denoising steps left on the current trajectory; its timestep */
    float *x, *eps_teacher;   /* [B, D] */
} qa_distill;

void qa_distill_init(qa_distill *d, qa_dit *teacher, const qa_schedule *sched, int ddim_steps, int n_classes, int B);
void qa_distill_free(qa_distill *d);
/* The batch of the next denoising step (draws a new trajectory when the last one ended). */
void qa_distill_batch(qa_distill *d, qa_rng *rng, qa_train_batch *b);
/* Move the trajectory on by the teacher's DDIM step (eta = 0, x0 clipped). */
void qa_distill_advance(qa_distill *d);

#endif
