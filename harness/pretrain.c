#include "harness/pretrain.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/model.h"
#include "harness/optim.h"
#include "harness/progress.h"
#include "harness/results.h"
#include "harness/rng.h"
#include "harness/task.h"
#include "harness/train.h"

/* A single-run training job, as its recipe sets it (read once, here). */
typedef struct {
    qa_data_spec data;
    qa_dit_config model;
    qa_train_spec train;
    float ema_decay, label_dropout;
    uint64_t seed;
    long log_every;
    const char *recipe_text;
} pretrain_spec;

static pretrain_spec pretrain_spec_from_recipe(const qa_recipe *r) {
    pretrain_spec p;
    memset(&p, 0, sizeof p);
    p.data = (qa_data_spec){(int)qa_recipe_int(r, "data", "synthetic"), qa_recipe_str(r, "data", "dir"), qa_recipe_int(r, "data", "train_limit")};
    p.model = (qa_dit_config){QA_IMAGE_SIDE, (int)qa_recipe_int(r, "model", "patch"), (int)qa_recipe_int(r, "model", "dim"),
                              (int)qa_recipe_int(r, "model", "depth"), (int)qa_recipe_int(r, "model", "heads"),
                              (int)qa_recipe_int(r, "model", "mlp_ratio"), 10, (int)qa_recipe_int(r, "model", "spare_slots")};
    p.train = (qa_train_spec){.steps = qa_recipe_int(r, "train", "steps"), .warmup = qa_recipe_int(r, "train", "warmup"),
                              .batch = (int)qa_recipe_int(r, "train", "batch"), .lr = (float)qa_recipe_float(r, "train", "lr"),
                              .weight_decay = (float)qa_recipe_float(r, "train", "weight_decay"),
                              .clip = (float)qa_recipe_float(r, "train", "clip"),
                              .cosine = strcmp(qa_recipe_str(r, "train", "schedule"), "cosine") == 0,
                              .max_seconds = 60.0 * qa_recipe_float(r, "train", "max_minutes"),
                              .inject_nan_step = qa_recipe_int(r, "train", "inject_nan_step")};
    int rc = qa_dtype_parse(qa_recipe_str(r, "train", "dtype"), &p.train.dtype);
    QA_ASSERT(rc == QA_OK); /* validated by the recipe parser */
    p.ema_decay = (float)qa_recipe_float(r, "train", "ema");
    p.label_dropout = (float)qa_recipe_float(r, "train", "label_dropout");
    p.seed = (uint64_t)qa_recipe_int(r, "train", "seed");
    p.log_every = qa_recipe_int(r, "train", "log_every");
    p.recipe_text = qa_recipe_text(r);
    return p;
}

/* Pre-training's side of the shared loop: epochs of shuffled images with label dropout; the
 * EMA of the weights, log lines and a snapshot every 10 minutes. */
typedef struct {
    const pretrain_spec *spec;
    qa_dit *m;
    const qa_images *data;
    const qa_schedule *sched;
    qa_rng *rng;
    int *order, *idx;
    float *x0, *ema;
    long pos, n_acc;
    double t0, last_save, loss_acc, recent, flops_step;
    qa_progress *prog;
    const char *out_path;
    int writer;                 /* 1: this process logs and saves (rank 0, or alone) */
} pretrain_ctx;

static void pretrain_batch(void *ctx, long step, qa_train_batch *b) {
    pretrain_ctx *c = ctx;
    (void)step;
    for (int i = 0; i < b->B; i++) {
        if (c->pos == c->data->n) { qa_rng_shuffle(c->rng, c->order, (size_t)c->data->n); c->pos = 0; }
        c->idx[i] = c->order[c->pos++];
        b->labels[i] = qa_rng_uniform(c->rng) < c->spec->label_dropout ? c->m->null_class : c->data->labels[c->idx[i]];
    }
    qa_images_to_float(c->data, c->idx, b->B, c->x0);
    qa_diffusion_noise(c->sched, c->rng, c->x0, b->B, QA_IMAGE_PIXELS, b->xt, b->target, b->tt);
}

static int pretrain_after_step(void *ctx, long step, float loss, float lr, float gn, qa_error *err) {
    pretrain_ctx *c = ctx;
    qa_dit *m = c->m;
    const float ema_decay = c->spec->ema_decay;
    const int B = c->spec->train.batch;
    (void)err;
    if (ema_decay > 0) {
        float d = step < 1000 ? fminf(ema_decay, (1.0f + step) / (10.0f + step)) : ema_decay;
        for (size_t i = 0; i < m->n_params; i++) c->ema[i] = d * c->ema[i] + (1.0f - d) * m->params[i];
    } else {
        memcpy(c->ema, m->params, sizeof(float) * m->n_params);
    }
    c->loss_acc += loss;
    c->n_acc++;
    c->recent = c->recent == 0 ? loss : 0.99 * c->recent + 0.01 * loss;
    if (c->writer && (step + 1) % c->spec->log_every == 0) {
        double el = qa_now() - c->t0;
        qa_progress_log(c->prog, step + 1, "loss %.4f (ema %.4f) lr %.2e |g| %.3f  %.1f img/s  %.0f GFLOP/s  epoch %.2f",
                     c->loss_acc / c->n_acc, c->recent, lr, gn, (step + 1) * B / el,
                     c->flops_step * (step + 1) / el * 1e-9, (double)(step + 1) * B / c->data->n);
        c->loss_acc = 0;
        c->n_acc = 0;
    }
    if (c->writer && qa_now() - c->last_save > 600) { /* snapshot every 10 minutes */
        qa_ckpt_meta meta = {"dit", c->spec->recipe_text, c->recent, qa_now() - c->t0, step + 1,
                             (double)(step + 1) * B / c->data->n, -1};
        qa_error serr;
        if (qa_dit_save(c->out_path, m, c->ema, &meta, &serr)) fprintf(stderr, "warning: %s\n", serr.msg);
        c->last_save = qa_now();
    }
    return QA_OK;
}

int qa_pretrain_dit(const qa_recipe *r, const char *out_path, const qa_grad_reducer *reduce, qa_error *err) {
    pretrain_spec spec = pretrain_spec_from_recipe(r);
    spec.train.reduce = reduce;
    qa_images data;
    int rc = qa_load_images(&spec.data, "train", &data, err);
    if (rc) return rc;
    const int B = spec.train.batch;
    qa_dit m;
    rc = qa_dit_create(&m, &spec.model, B, err);
    if (rc) { qa_images_free(&data); return rc; }
    qa_dit_init_weights(&m, spec.seed);
    qa_param p = {"dit", m.params, m.grads, m.n_params, 1.0f};
    qa_schedule sched;
    qa_schedule_default(&sched);
    qa_progress prog;
    const int writer = !reduce || reduce->rank == 0;
    pretrain_ctx c = {.spec = &spec, .m = &m, .data = &data, .sched = &sched, .prog = &prog, .out_path = out_path,
                      .writer = writer};
    c.ema = qa_alloc(sizeof(float) * m.n_params);
    memcpy(c.ema, m.params, sizeof(float) * m.n_params);
    c.x0 = qa_alloc(sizeof(float) * (size_t)B * QA_IMAGE_PIXELS);
    c.order = qa_alloc(sizeof(int) * data.n);
    c.idx = qa_alloc(sizeof(int) * B);
    for (int i = 0; i < data.n; i++) c.order[i] = i;
    c.rng = qa_rng_new(qa_seed_for(spec.seed, "pretrain-data"));
    qa_rng_shuffle(c.rng, c.order, (size_t)data.n);
    c.flops_step = 3.0 * qa_dit_forward_flops(&m, B);

    if (writer)
        fprintf(stderr, "pretrain: %zu parameters, batch %d%s, up to %ld steps%s\n", m.n_params, B,
                reduce ? " (data parallel: each rank a slice)" : "", spec.train.steps,
                spec.train.max_seconds > 0 ? " (or the time limit)" : "");
    c.t0 = c.last_save = qa_now();
    qa_progress_begin(&prog, "pretrain", spec.train.steps);
    if (reduce) {
        char who[64];
        snprintf(who, sizeof who, " over %d ranks", reduce->size);
        qa_progress_share(&prog, who, 1); /* the steps are the job's: every rank takes each */
    }
    qa_train_hooks hooks = {&c, pretrain_batch, pretrain_after_step};
    qa_train_result res;
    rc = qa_train(&m, &p, 1, &spec.train, &hooks, &res, err);
    qa_progress_end(&prog);
    if (!rc && res.diverged) rc = qa_fail(err, QA_ERR_RUN, "pretrain diverged: %s", res.fail_reason);
    if (rc == 0 && writer) {
        long step = res.steps_done;
        qa_ckpt_meta meta = {"dit", spec.recipe_text, c.recent, qa_now() - c.t0, step, (double)step * B / data.n, -1};
        rc = qa_dit_save(out_path, &m, c.ema, &meta, err);
        if (rc == 0)
            fprintf(stderr, "pretrain: %ld steps (%.2f epochs) in %.1f min, loss %.4f -> %s\n", step,
                    meta.epochs, meta.wall_seconds / 60, c.recent, out_path);
    }
    qa_rng_free(c.rng);
    qa_free(c.x0); qa_free(c.order); qa_free(c.idx); qa_free(c.ema);
    qa_dit_free(&m);
    qa_images_free(&data);
    return rc;
}

/* Augmentation for the evaluator: random shift by up to 2 pixels (background filled with -1)
 * and a horizontal flip with probability 1/2 (garments and shoes stay what they are). */
static void augment(float *x, qa_rng *r) {
    float tmp[784];
    int sx = (int)qa_rng_below(r, 5) - 2, sy = (int)qa_rng_below(r, 5) - 2, flip = qa_rng_uniform(r) < 0.5;
    for (int y = 0; y < 28; y++)
        for (int xx = 0; xx < 28; xx++) {
            int srcx = xx - sx, srcy = y - sy;
            if (flip) srcx = 27 - srcx;
            tmp[y * 28 + xx] = (srcx < 0 || srcx > 27 || srcy < 0 || srcy > 27) ? -1.0f : x[srcy * 28 + srcx];
        }
    memcpy(x, tmp, sizeof tmp);
}


int qa_pretrain_evaluator(const qa_recipe *r, const char *out_path, qa_error *err) {
    const pretrain_spec spec = pretrain_spec_from_recipe(r);
    qa_images train, test;
    int rc = qa_load_images(&spec.data, "train", &train, err);
    if (rc) return rc;
    rc = qa_load_images(&spec.data, "t10k", &test, err);
    if (rc) { qa_images_free(&train); return rc; }
    const int B = spec.train.batch;
    const long steps = spec.train.steps, warmup = spec.train.warmup;
    const float lr = spec.train.lr;
    const int cosine = spec.train.cosine;
    const uint64_t seed = spec.seed;
    qa_classifier c;
    qa_clf_create(&c, B, err);
    qa_clf_init_weights(&c, seed);
    qa_param p = {"evaluator", c.params, c.grads, c.n_params, 1.0f};
    qa_adamw opt;
    qa_adamw_init(&opt, &p, 1, spec.train.weight_decay, spec.train.clip);
    float *x = qa_alloc(sizeof(float) * (size_t)B * 784);
    int *labels = qa_alloc(sizeof(int) * B), *order = qa_alloc(sizeof(int) * train.n), *idx = qa_alloc(sizeof(int) * B);
    for (int i = 0; i < train.n; i++) order[i] = i;
    qa_rng *rng = qa_rng_new(qa_seed_for(seed, "evaluator-data"));
    qa_rng_shuffle(rng, order, (size_t)train.n);
    long pos = 0, log_every = spec.log_every;
    double t0 = qa_now(), loss_acc = 0;
    qa_progress prog;
    qa_progress_begin(&prog, "evaluator", steps);
    for (long step = 0; step < steps; step++) {
        for (int b = 0; b < B; b++) {
            if (pos == train.n) { qa_rng_shuffle(rng, order, (size_t)train.n); pos = 0; }
            idx[b] = order[pos++];
            labels[b] = train.labels[idx[b]];
        }
        qa_images_to_float(&train, idx, B, x);
        for (int b = 0; b < B; b++) augment(x + (size_t)b * 784, rng);
        memset(c.grads, 0, sizeof(float) * c.n_params);
        qa_clf_forward(&c, x, B);
        loss_acc += qa_clf_backward(&c, labels);
        qa_adamw_step(&opt, &p, 1, qa_lr_at(lr, step, warmup, steps, cosine));
        if ((step + 1) % log_every == 0) {
            qa_progress_log(&prog, step + 1, "loss %.4f", loss_acc / log_every);
            loss_acc = 0;
        }
    }
    qa_progress_end(&prog);
    double per_class[QA_CLF_CLASSES];
    double acc = qa_evaluator_accuracy(&c, &test, per_class);
    double wall = qa_now() - t0;
    fprintf(stderr, "evaluator: test accuracy %.4f after %ld steps (%.1f min)\n", acc, steps, wall / 60);
    rc = qa_clf_save(out_path, &c, acc, spec.recipe_text, wall, steps, err);
    if (rc == 0) {
        qa_h5 *f;
        rc = qa_h5_open(out_path, 1, &f, err);
        if (rc == 0) {
            int64_t dims[1] = {QA_CLF_CLASSES};
            rc = qa_h5_write(f, "/test/per_class_accuracy", QA_H5_F64, per_class, 1, dims, err);
            qa_error e2;
            int crc = qa_h5_close(f, &e2);
            if (rc == 0 && crc) { *err = e2; rc = crc; }
        }
    }
    qa_rng_free(rng);
    qa_free(x); qa_free(labels); qa_free(order); qa_free(idx);
    qa_adamw_free(&opt);
    qa_clf_free(&c);
    qa_images_free(&train);
    qa_images_free(&test);
    return rc;
}
