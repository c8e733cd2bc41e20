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
#include "harness/rng.h"

float lr_at(float peak, long step, long warmup, long total, int cosine) {
    if (warmup > 0 && step < warmup) return peak * (float)(step + 1) / (float)warmup;
    if (!cosine || total <= warmup) return peak;
    double p = (double)(step - warmup) / (double)(total - warmup);
    return (float)(peak * (0.1 + 0.9 * 0.5 * (1.0 + cos(3.14159265358979323846 * p))));
}

int load_training_images(const qa_recipe *r, const char *split, qa_images *im, qa_error *err) {
    if (recipe_int(r, "data", "synthetic")) {
        synthetic_images(im, strcmp(split, "train") == 0 ? 2000 : 500, 28, 10,
                         strcmp(split, "train") == 0 ? 1 : 2);
        return QA_OK;
    }
    const char *dir = recipe_str(r, "data", "dir");
    int rc = fmnist_load(*dir ? dir : NULL, split, im, err);
    if (rc) return rc;
    long lim = recipe_int(r, "data", "train_limit");
    if (lim > 0 && lim < im->n) im->n = (int)lim;
    return QA_OK;
}

qa_dit_config dit_config_from_recipe(const qa_recipe *r) {
    qa_dit_config c = {28, (int)recipe_int(r, "model", "patch"), (int)recipe_int(r, "model", "dim"),
                       (int)recipe_int(r, "model", "depth"), (int)recipe_int(r, "model", "heads"),
                       (int)recipe_int(r, "model", "mlp_ratio"), 10, (int)recipe_int(r, "model", "spare_slots")};
    return c;
}

int pretrain_dit(const qa_recipe *r, const char *out_path, qa_error *err) {
    qa_images data;
    int rc = load_training_images(r, "train", &data, err);
    if (rc) return rc;
    qa_dit_config cfg = dit_config_from_recipe(r);
    int B = (int)recipe_int(r, "train", "batch");
    long steps = recipe_int(r, "train", "steps"), warmup = recipe_int(r, "train", "warmup");
    double max_sec = 60.0 * recipe_float(r, "train", "max_minutes");
    float lr = (float)recipe_float(r, "train", "lr"), ema_decay = (float)recipe_float(r, "train", "ema");
    float drop = (float)recipe_float(r, "train", "label_dropout");
    int cosine = strcmp(recipe_str(r, "train", "schedule"), "cosine") == 0;
    uint64_t seed = (uint64_t)recipe_int(r, "train", "seed");
    long log_every = recipe_int(r, "train", "log_every");

    qa_dit m;
    rc = dit_create(&m, &cfg, B, err);
    if (rc) { qa_images_free(&data); return rc; }
    dit_init_weights(&m, seed);
    qa_param p = {"dit", m.params, m.grads, m.n_params, 1.0f};
    qa_adamw opt;
    adamw_init(&opt, &p, 1, (float)recipe_float(r, "train", "weight_decay"), (float)recipe_float(r, "train", "clip"));
    float *ema = qa_alloc(sizeof(float) * m.n_params);
    memcpy(ema, m.params, sizeof(float) * m.n_params);

    const int D = 28 * 28;
    float *x0 = qa_alloc(sizeof(float) * B * D), *xt = qa_alloc(sizeof(float) * B * D);
    float *eps = qa_alloc(sizeof(float) * B * D), *pred = qa_alloc(sizeof(float) * B * D);
    float *deps = qa_alloc(sizeof(float) * B * D), *tt = qa_alloc(sizeof(float) * B);
    int *labels = qa_alloc(sizeof(int) * B), *order = qa_alloc(sizeof(int) * data.n), *idx = qa_alloc(sizeof(int) * B);
    for (int i = 0; i < data.n; i++) order[i] = i;
    qa_rng *rng = qa_rng_new(qa_seed_for(seed, "pretrain-data"));
    qa_rng_shuffle(rng, order, (size_t)data.n);
    qa_schedule sched;
    schedule_linear(&sched, 1000, 1e-4f, 0.02f);

    fprintf(stderr, "pretrain: %zu parameters, batch %d, up to %ld steps%s\n", m.n_params, B, steps,
            max_sec > 0 ? " (or the time limit)" : "");
    double t0 = qa_now(), last_save = t0, loss_acc = 0, recent = 0;
    long pos = 0, step, n_acc = 0;
    double flops_step = 3.0 * dit_forward_flops(&m, B);
    qa_progress prog;
    progress_begin(&prog, "pretrain", steps);
    for (step = 0; step < steps; step++) {
        if (max_sec > 0 && qa_now() - t0 > max_sec) break;
        for (int b = 0; b < B; b++) {
            if (pos == data.n) { qa_rng_shuffle(rng, order, (size_t)data.n); pos = 0; }
            idx[b] = order[pos++];
            labels[b] = qa_rng_uniform(rng) < drop ? m.null_class : data.labels[idx[b]];
        }
        qa_images_to_float(&data, idx, B, x0);
        diffusion_noise(&sched, rng, x0, B, D, xt, eps, tt);
        dit_zero_grads(&m);
        dit_forward(&m, xt, tt, labels, B, pred);
        float loss = mse_loss(pred, eps, (size_t)B * D, deps);
        if (!isfinite(loss)) {
            rc = qa_fail(err, QA_ERR_RUN, "pretrain diverged at step %ld (loss %g)", step, loss);
            break;
        }
        dit_backward(&m, deps);
        float cur_lr = lr_at(lr, step, warmup, steps, cosine);
        float gn = adamw_step(&opt, &p, 1, cur_lr);
        if (ema_decay > 0) {
            float d = step < 1000 ? fminf(ema_decay, (1.0f + step) / (10.0f + step)) : ema_decay;
            for (size_t i = 0; i < m.n_params; i++) ema[i] = d * ema[i] + (1.0f - d) * m.params[i];
        } else {
            memcpy(ema, m.params, sizeof(float) * m.n_params);
        }
        loss_acc += loss;
        n_acc++;
        recent = recent == 0 ? loss : 0.99 * recent + 0.01 * loss;
        if ((step + 1) % log_every == 0) {
            double el = qa_now() - t0;
            progress_log(&prog, step + 1, "loss %.4f (ema %.4f) lr %.2e |g| %.3f  %.1f img/s  %.0f GFLOP/s  epoch %.2f",
                         loss_acc / n_acc, recent, cur_lr, gn, (step + 1) * B / el,
                         flops_step * (step + 1) / el * 1e-9, (double)(step + 1) * B / data.n);
            loss_acc = 0; n_acc = 0;
        }
        if (qa_now() - last_save > 600) { /* snapshot every 10 minutes */
            qa_ckpt_meta meta = {"dit", recipe_text(r), recent, qa_now() - t0, step + 1,
                                 (double)(step + 1) * B / data.n, -1};
            qa_error serr;
            if (dit_save(out_path, &m, ema, &meta, &serr)) fprintf(stderr, "warning: %s\n", serr.msg);
            last_save = qa_now();
        }
    }
    progress_end(&prog);
    if (rc == 0) {
        qa_ckpt_meta meta = {"dit", recipe_text(r), recent, qa_now() - t0, step, (double)step * B / data.n, -1};
        rc = dit_save(out_path, &m, ema, &meta, err);
        if (rc == 0)
            fprintf(stderr, "pretrain: %ld steps (%.2f epochs) in %.1f min, loss %.4f -> %s\n", step,
                    meta.epochs, meta.wall_seconds / 60, recent, out_path);
    }
    qa_rng_free(rng);
    qa_free(x0); qa_free(xt); qa_free(eps); qa_free(pred); qa_free(deps); qa_free(tt);
    qa_free(labels); qa_free(order); qa_free(idx); qa_free(ema);
    adamw_free(&opt);
    dit_free(&m);
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

double evaluator_accuracy(qa_classifier *c, const qa_images *test, double *per_class) {
    float *x = qa_alloc(sizeof(float) * (size_t)c->max_batch * 784);
    float *probs = qa_alloc(sizeof(float) * (size_t)c->max_batch * QA_CLF_CLASSES);
    int *idx = qa_alloc(sizeof(int) * c->max_batch);
    long correct = 0, n_class[QA_CLF_CLASSES] = {0}, ok_class[QA_CLF_CLASSES] = {0};
    for (int s = 0; s < test->n; s += c->max_batch) {
        int B = test->n - s < c->max_batch ? test->n - s : c->max_batch;
        for (int b = 0; b < B; b++) idx[b] = s + b;
        qa_images_to_float(test, idx, B, x);
        clf_embed(c, x, B, NULL, probs);
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int k = 1; k < QA_CLF_CLASSES; k++) if (probs[b * QA_CLF_CLASSES + k] > probs[b * QA_CLF_CLASSES + best]) best = k;
            int y = test->labels[s + b];
            n_class[y]++;
            if (best == y) { correct++; ok_class[y]++; }
        }
    }
    if (per_class)
        for (int k = 0; k < QA_CLF_CLASSES; k++) per_class[k] = n_class[k] ? (double)ok_class[k] / n_class[k] : 0;
    qa_free(x); qa_free(probs); qa_free(idx);
    return (double)correct / test->n;
}

int pretrain_evaluator(const qa_recipe *r, const char *out_path, qa_error *err) {
    qa_images train, test;
    int rc = load_training_images(r, "train", &train, err);
    if (rc) return rc;
    rc = load_training_images(r, "t10k", &test, err);
    if (rc) { qa_images_free(&train); return rc; }
    int B = (int)recipe_int(r, "train", "batch");
    long steps = recipe_int(r, "train", "steps"), warmup = recipe_int(r, "train", "warmup");
    float lr = (float)recipe_float(r, "train", "lr");
    int cosine = strcmp(recipe_str(r, "train", "schedule"), "cosine") == 0;
    uint64_t seed = (uint64_t)recipe_int(r, "train", "seed");
    qa_classifier c;
    clf_create(&c, B, err);
    clf_init_weights(&c, seed);
    qa_param p = {"evaluator", c.params, c.grads, c.n_params, 1.0f};
    qa_adamw opt;
    adamw_init(&opt, &p, 1, (float)recipe_float(r, "train", "weight_decay"), (float)recipe_float(r, "train", "clip"));
    float *x = qa_alloc(sizeof(float) * (size_t)B * 784);
    int *labels = qa_alloc(sizeof(int) * B), *order = qa_alloc(sizeof(int) * train.n), *idx = qa_alloc(sizeof(int) * B);
    for (int i = 0; i < train.n; i++) order[i] = i;
    qa_rng *rng = qa_rng_new(qa_seed_for(seed, "evaluator-data"));
    qa_rng_shuffle(rng, order, (size_t)train.n);
    long pos = 0, log_every = recipe_int(r, "train", "log_every");
    double t0 = qa_now(), loss_acc = 0;
    qa_progress prog;
    progress_begin(&prog, "evaluator", steps);
    for (long step = 0; step < steps; step++) {
        for (int b = 0; b < B; b++) {
            if (pos == train.n) { qa_rng_shuffle(rng, order, (size_t)train.n); pos = 0; }
            idx[b] = order[pos++];
            labels[b] = train.labels[idx[b]];
        }
        qa_images_to_float(&train, idx, B, x);
        for (int b = 0; b < B; b++) augment(x + (size_t)b * 784, rng);
        memset(c.grads, 0, sizeof(float) * c.n_params);
        clf_forward(&c, x, B);
        loss_acc += clf_backward(&c, labels);
        adamw_step(&opt, &p, 1, lr_at(lr, step, warmup, steps, cosine));
        if ((step + 1) % log_every == 0) {
            progress_log(&prog, step + 1, "loss %.4f", loss_acc / log_every);
            loss_acc = 0;
        }
    }
    progress_end(&prog);
    double per_class[QA_CLF_CLASSES];
    double acc = evaluator_accuracy(&c, &test, per_class);
    double wall = qa_now() - t0;
    fprintf(stderr, "evaluator: test accuracy %.4f after %ld steps (%.1f min)\n", acc, steps, wall / 60);
    rc = clf_save(out_path, &c, acc, recipe_text(r), wall, steps, err);
    if (rc == 0) {
        qa_h5 *f;
        rc = h5_open(out_path, 1, &f, err);
        if (rc == 0) {
            int64_t dims[1] = {QA_CLF_CLASSES};
            rc = h5_write(f, "/test/per_class_accuracy", QA_H5_F64, per_class, 1, dims, err);
            qa_error e2;
            int crc = h5_close(f, &e2);
            if (rc == 0 && crc) { *err = e2; rc = crc; }
        }
    }
    qa_rng_free(rng);
    qa_free(x); qa_free(labels); qa_free(order); qa_free(idx);
    adamw_free(&opt);
    clf_free(&c);
    qa_images_free(&train);
    qa_images_free(&test);
    return rc;
}
