#include "harness/train.h"

#include <math.h>
#include <string.h>

#include "harness/nn.h"
#include "harness/optim.h"
#include "harness/task.h"

#define D_IMG QA_IMAGE_PIXELS

float qa_lr_at(float peak, long step, long warmup, long total, int cosine) {
    if (warmup > 0 && step < warmup) return peak * (float)(step + 1) / (float)warmup;
    if (!cosine || total <= warmup) return peak;
    double p = (double)(step - warmup) / (double)(total - warmup);
    return (float)(peak * (0.1 + 0.9 * 0.5 * (1.0 + cos(3.14159265358979323846 * p))));
}

/* The rows [lo, hi) of a batch of B that rank `rank` of `size` computes. */
static void slice_of(int B, int rank, int size, int *lo, int *hi) {
    *lo = (int)((long)B * rank / size);
    *hi = (int)((long)B * (rank + 1) / size);
}

/* The loss of rows [lo, hi) of a term whose rows are [t_lo, t_hi) of the batch, as this slice's
 * share of the term's mean (deps of those rows scaled alike by weight); 0 when they do not meet. */
static float term_share(const float *pred, const float *target, float *deps, int lo, int hi, int t_lo, int t_hi,
                        float weight) {
    int a = lo > t_lo ? lo : t_lo, b = hi < t_hi ? hi : t_hi;
    if (b <= a) return 0.f;
    const size_t off = (size_t)(a - lo) * D_IMG, n = (size_t)(b - a) * D_IMG;
    float l = qa_mse_loss(pred + off, target + (size_t)a * D_IMG, n, deps + off);
    float share = (float)(b - a) / (float)(t_hi - t_lo); /* 1 exactly when the slice holds the whole term */
    if (share * weight != 1.0f) qa_vec_scale(deps + off, share * weight, n);
    return l * share;
}

int qa_train(qa_dit *m, qa_param *params, int np, const qa_train_spec *spec, const qa_train_hooks *hooks,
             qa_train_result *res, qa_error *err) {
    const int B = spec->batch;
    const qa_grad_reducer *red = spec->reduce;
    const int rank = red ? red->rank : 0, size = red ? red->size : 1;
    memset(res, 0, sizeof *res);
    if (B < size) return qa_fail(err, QA_ERR_INPUT, "batch %d is smaller than the %d ranks that share it", B, size);
    int lo, hi;
    slice_of(B, rank, size, &lo, &hi);
    qa_adamw opt;
    qa_adamw_init(&opt, params, np, spec->weight_decay, spec->clip);
    float *xt = qa_alloc(sizeof(float) * (size_t)B * D_IMG), *target = qa_alloc(sizeof(float) * (size_t)B * D_IMG);
    float *pred = qa_alloc(sizeof(float) * (size_t)B * D_IMG), *deps = qa_alloc(sizeof(float) * (size_t)B * D_IMG);
    float *tt = qa_alloc(sizeof(float) * B);
    int *labels = qa_alloc(sizeof(int) * B);
    /* data parallel: every gradient, then the loss and the time-limit flag, in one flat buffer */
    size_t n_grads = 0;
    for (int i = 0; i < np; i++) n_grads += params[i].n;
    float *flat = red ? qa_alloc(sizeof(float) * (n_grads + 2)) : NULL;
    double t0 = qa_now();
    int rc = QA_OK, time_up = 0;
    qa_dit_set_dtype(m, spec->dtype);
    long step;
    for (step = 0; step < spec->steps && !rc && !time_up; step++) {
        /* alone, stop before the step; ranks agree through the reduction below */
        if (!red && spec->max_seconds > 0 && qa_now() - t0 > spec->max_seconds) break;
        qa_train_batch b = {B, B, 1.0f, xt, tt, target, labels};
        hooks->batch(hooks->ctx, step, &b);
        for (int i = 0; i < np; i++) memset(params[i].grad, 0, sizeof(float) * params[i].n);
        qa_dit_forward(m, xt + (size_t)lo * D_IMG, tt + lo, labels + lo, hi - lo, pred);
        float l_main = term_share(pred, target, deps, lo, hi, 0, b.B_main, 1.0f);
        float l_prior = term_share(pred, target, deps, lo, hi, b.B_main, B, b.prior_weight);
        float loss = l_main + b.prior_weight * l_prior;
        if (red) { /* backward first: the loss travels with the gradient */
            qa_dit_backward(m, deps);
            size_t at = 0;
            for (int i = 0; i < np; i++) {
                memcpy(flat + at, params[i].grad, sizeof(float) * params[i].n);
                at += params[i].n;
            }
            flat[at] = loss;
            flat[at + 1] = spec->max_seconds > 0 && qa_now() - t0 > spec->max_seconds ? 1.f : 0.f;
            rc = red->sum(red->ctx, flat, n_grads + 2, err);
            if (rc) break;
            at = 0;
            for (int i = 0; i < np; i++) {
                memcpy(params[i].grad, flat + at, sizeof(float) * params[i].n);
                at += params[i].n;
            }
            loss = flat[at];
            time_up = flat[at + 1] > 0;
        }
        if (spec->inject_nan_step && step + 1 == spec->inject_nan_step) loss = NAN; /* fault injection (tests) */
        if (!isfinite(loss)) {
            res->diverged = 1;
            snprintf(res->fail_reason, sizeof res->fail_reason, "non-finite loss (%g) at step %ld", loss, step);
            break;
        }
        if (!red) qa_dit_backward(m, deps);
        float cur_lr = qa_lr_at(spec->lr, step, spec->warmup, spec->steps, spec->cosine);
        float gn = qa_adamw_step(&opt, params, np, cur_lr);
        if (!isfinite(gn)) {
            res->diverged = 1;
            snprintf(res->fail_reason, sizeof res->fail_reason, "non-finite gradient norm at step %ld", step);
            break;
        }
        if (hooks->after_step) rc = hooks->after_step(hooks->ctx, step, loss, cur_lr, gn, err);
    }
    res->steps_done = step;
    qa_dit_set_dtype(m, QA_DTYPE_F32); /* evaluation and deployment compute in f32 */
    qa_free(xt); qa_free(target); qa_free(pred); qa_free(deps); qa_free(tt); qa_free(labels); qa_free(flat);
    qa_adamw_free(&opt);
    return rc;
}

void qa_distill_init(qa_distill *d, qa_dit *teacher, const qa_schedule *sched, int ddim_steps, int n_classes, int B) {
    memset(d, 0, sizeof *d);
    d->teacher = teacher;
    d->sched = sched;
    d->ddim_steps = ddim_steps;
    d->n_classes = n_classes;
    d->B = B;
    d->x = qa_alloc(sizeof(float) * (size_t)B * D_IMG);
    d->eps_teacher = qa_alloc(sizeof(float) * (size_t)B * D_IMG);
}

void qa_distill_free(qa_distill *d) {
    qa_free(d->x);
    qa_free(d->eps_teacher);
    memset(d, 0, sizeof *d);
}

void qa_distill_batch(qa_distill *d, qa_rng *rng, qa_train_batch *b) {
    const int B = d->B, stride = d->sched->T / d->ddim_steps;
    if (d->remaining == 0) { /* a new trajectory */
        qa_rng_fill_normal(rng, d->x, (size_t)B * D_IMG, 1.0f);
        for (int i = 0; i < B; i++) b->labels[i] = (int)qa_rng_below(rng, (unsigned long)d->n_classes);
        d->remaining = d->ddim_steps;
    }
    d->remaining--;
    d->t_cur = d->remaining * stride;
    for (int i = 0; i < B; i++) b->tt[i] = (float)d->t_cur;
    memcpy(b->xt, d->x, sizeof(float) * (size_t)B * D_IMG);
    /* nothing backpropagates through the teacher */
    qa_dit_forward_inference(d->teacher, b->xt, b->tt, b->labels, B, d->eps_teacher);
    memcpy(b->target, d->eps_teacher, sizeof(float) * (size_t)B * D_IMG);
    b->B_main = B;
}

void qa_distill_advance(qa_distill *d) {
    const int stride = d->sched->T / d->ddim_steps;
    float abar = d->sched->abar[d->t_cur], abar_prev = d->remaining > 0 ? d->sched->abar[(d->remaining - 1) * stride] : 1.0f;
    float sa = sqrtf(abar), ss = sqrtf(1.0f - abar), sap = sqrtf(abar_prev), ssp = sqrtf(1.0f - abar_prev);
    for (size_t j = 0; j < (size_t)d->B * D_IMG; j++) {
        float x0j = (d->x[j] - ss * d->eps_teacher[j]) / sa;
        x0j = x0j < -1.f ? -1.f : (x0j > 1.f ? 1.f : x0j);
        d->x[j] = sap * x0j + ssp * (d->x[j] - sa * x0j) / ss;
    }
}
