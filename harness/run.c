#include "harness/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/deploy.h"
#include "harness/record.h"

#define MAX_PARAMS 256

const char *const qa_run_role_names[QA_RUN_ROLE_COUNT] = {
    [QA_RUN_FINAL] = "final",
    [QA_RUN_TUNING] = "tuning",
};
_Static_assert(sizeof qa_run_role_names / sizeof qa_run_role_names[0] == QA_RUN_ROLE_COUNT, "qa_run_role_names");

/* The adapted model's trainable tensors and its memory by category. */
typedef struct {
    qa_param params[MAX_PARAMS];
    int n_params;
    qa_bytes mem;
} run_model;

/* A fresh copy of the pre-trained base with the task's slot bound; the frozen base quantized;
 * the attention projections wrapped with the method. */
static int run_prepare(qa_run_env *env, const qa_run_spec *run, const qa_task *t, const qa_method *method,
                       const qa_method_cfg *mcfg, run_model *rm, qa_error *err) {
    qa_dit *m = env->model;
    qa_dit_reset_slots(m);
    memcpy(m->params, env->base_params, sizeof(float) * m->n_params);
    qa_evaluate_base(m, &env->refs, &run->settings->eval, t, run->seed); /* once per task: the FP base's samples */
    qa_task_bind_identifier(t, m->params, m);
    m->train_base = 0;
    qa_dit_quantize_base(m, run->w_bits, run->a_bits, 1);
    int rc = qa_dit_attach_method(m, method, mcfg, qa_seed_for((uint64_t)run->seed, "method-init"), err);
    if (rc) return rc;
    memset(rm, 0, sizeof *rm);
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        if (!s->method) continue;
        rm->n_params += s->method->params(s->state, rm->params + rm->n_params, MAX_PARAMS - rm->n_params);
        qa_bytes b = {0};
        s->method->bytes(s->state, &b);
        rm->mem.frozen += b.frozen; rm->mem.trainable += b.trainable; rm->mem.gradients += b.gradients;
        rm->mem.optimizer += b.optimizer; rm->mem.deployed += b.deployed;
    }
    return QA_OK;
}

/* Adaptation's side of the shared training loop: the task's batches (or distillation), and
 * each step's row of the training table and its time. */
typedef struct {
    const qa_task *task;
    const qa_images *train;
    const qa_schedule *sched;
    float prior_weight;
    qa_distill *distill;       /* NULL: the task's loss */
    qa_rng *rng;
    float *x0;                 /* [B, D] */
    qa_record *rec;
    double *rows;              /* [256, 5]: step, loss, lr, grad norm, seconds */
    int n_rows;
    double *step_times;        /* [steps] */
    double t_start, t_step;
} run_train_ctx;

static void run_batch(void *ctx, long step, qa_train_batch *b) {
    run_train_ctx *c = ctx;
    (void)step;
    c->t_step = qa_now();
    b->prior_weight = c->prior_weight;
    if (c->distill) { qa_distill_batch(c->distill, c->rng, b); return; }
    qa_task_batch(c->task, c->train, c->rng, b->B, c->x0, b->labels, &b->B_main);
    qa_diffusion_noise(c->sched, c->rng, c->x0, b->B, QA_IMAGE_PIXELS, b->xt, b->target, b->tt);
}

static int run_after_step(void *ctx, long step, float loss, float lr, float gn, qa_error *err) {
    run_train_ctx *c = ctx;
    if (c->distill) qa_distill_advance(c->distill);
    c->step_times[step] = qa_now() - c->t_step;
    double *row = c->rows + 5 * c->n_rows++;
    row[0] = (double)step; row[1] = loss; row[2] = lr; row[3] = gn; row[4] = qa_now() - c->t_start;
    if (c->n_rows < 256) return QA_OK;
    c->n_rows = 0;
    return qa_record_train_rows(c->rec, c->rows, 256, err);
}

/* Train; the training table goes to rec, each step's seconds to step_times [steps]. */
static int run_train(qa_run_env *env, const qa_run_spec *run, const qa_task *t, run_model *rm, qa_record *rec,
                     double *step_times, qa_train_result *res, double *train_seconds, qa_error *err) {
    const qa_sweep_settings *st = run->settings;
    qa_distill distill;
    if (env->teacher) qa_distill_init(&distill, env->teacher, &env->sched, st->eval.ddim_steps, env->model->cfg.n_classes, run->train.batch);
    run_train_ctx c = {.task = t, .train = env->train, .sched = &env->sched, .prior_weight = st->task.prior_weight,
                       .distill = env->teacher ? &distill : NULL, .rec = rec, .step_times = step_times};
    c.rng = qa_rng_new(qa_seed_for((uint64_t)run->seed, "adapt-data"));
    c.x0 = qa_alloc(sizeof(float) * (size_t)run->train.batch * QA_IMAGE_PIXELS);
    c.rows = qa_alloc(sizeof(double) * 5 * 256);
    c.t_start = qa_now();
    qa_train_hooks hooks = {&c, run_batch, run_after_step};
    int rc = qa_train(env->model, rm->params, rm->n_params, &run->train, &hooks, res, err);
    if (!rc) rc = qa_record_train_rows(rec, c.rows, c.n_rows, err);
    *train_seconds = qa_now() - c.t_start;
    qa_free(c.x0); qa_free(c.rows);
    qa_rng_free(c.rng);
    if (env->teacher) qa_distill_free(&distill);
    return rc;
}

/* Score the variant deployed now and record it. */
static int run_score(qa_run_env *env, const qa_run_spec *run, const qa_task *t, qa_record *rec, const char *variant,
                     double bits_pw, qa_error *err) {
    qa_record_eval ev = {.variant = variant, .bits_per_weight = bits_pw};
    qa_evaluate(env->model, &env->refs, &run->settings->eval, t, run->seed, &ev);
    int rc = qa_record_variant(rec, &ev, err);
    qa_evaluate_log(run->id, &ev);
    qa_evaluate_free(&ev);
    return rc;
}

/* Merge, then score every deployed variant: the FP deploy before PTQ and the INT deploy after
 * it for float merges, the integer deploy otherwise, and the method's extra variants. */
static int run_deploy(qa_run_env *env, const qa_run_spec *run, const qa_task *t, qa_record *rec, const char *out_dir,
                      double *merge_seconds, qa_error *err) {
    qa_dit *m = env->model;
    qa_deploy d;
    int rc = qa_deploy_merge(m, &d, err);
    if (rc) return rc;
    *merge_seconds = d.merge_seconds;
    qa_record_merge rm = {qa_deploy_merge_name(&d), d.needs_ptq, qa_deploy_note(&d), d.notes,
                          d.n_stats, d.stat_name, d.stat_value};
    rc = qa_record_merge_info(rec, &rm, err);
    const int n_ad = d.n_layers, ptq_bits = d.needs_ptq ? run->w_bits : 0;
    if (!rc && (d.needs_ptq || run->w_bits == 0)) {
        qa_deploy_set(m, &d, 0, -1);
        rc = run_score(env, run, t, rec, "fp", 32, err);
    }
    if (!rc && run->w_bits > 0) {
        double tp = qa_now();
        qa_deploy_set(m, &d, ptq_bits, -1);
        *merge_seconds += qa_now() - tp;
        /* A8: every layer with an integer form runs on the u8 x s8 kernels (per-row codes of
         * <= 8 bits, planes, groups); which kernel is recorded */
        qa_deploy_kernels kern;
        qa_deploy_enable_int8(m, &d, (qa_group_kernel)run->settings->eval.group_kernel, &kern);
        rc = qa_record_int8_layers(rec, kern.int8_layers, kern.text, err);
        if (!rc) rc = run_score(env, run, t, rec, "int", d.needs_ptq ? run->w_bits : d.bits_per_weight, err);
    }
    for (int e = 0; !rc && n_ad > 0 && e < d.layers[0].n_extra; e++) {
        qa_deploy_set(m, &d, 0, e);
        rc = run_score(env, run, t, rec, d.layers[0].extra_name[e], d.layers[0].extra_bits[e], err);
    }
    /* storage as shipped: the artifact's real size on disk */
    if (!rc && n_ad && run->settings->eval.artifact) {
        size_t len = strlen(out_dir) + strlen(run->id) + 32;
        char *adir = qa_alloc(len), *apath = qa_alloc(len);
        snprintf(adir, len, "%s/artifacts", out_dir);
        snprintf(apath, len, "%s/%s.h5", adir, run->id);
        qa_artifact_size as;
        rc = qa_mkdir_p(adir, err);
        if (!rc) rc = qa_deploy_artifact(apath, m, &d, ptq_bits, &as, err);
        if (!rc) rc = qa_record_artifact(rec, &as, err);
        qa_free(adir);
        qa_free(apath);
    }
    qa_deploy_free(&d);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Memory by category, the measured peak, and the median training step after a warm-up. */
static qa_record_costs run_costs(const qa_dit *m, const run_model *rm, int rss_reset, double *step_times, long steps,
                                 double train_seconds, double merge_seconds) {
    long warm = steps > 10 ? 5 : 0;
    qsort(step_times + warm, (size_t)(steps - warm), sizeof(double), cmp_double);
    return (qa_record_costs){
        .frozen_bytes = (double)rm->mem.frozen, .trainable_bytes = (double)rm->mem.trainable,
        .gradient_bytes = (double)rm->mem.gradients, .optimizer_bytes = (double)rm->mem.optimizer,
        .deployed_bytes = (double)rm->mem.deployed, .activation_bytes = (double)qa_dit_activation_bytes(m),
        .activation_batch = (double)m->max_batch, .peak_rss_bytes = (double)qa_peak_rss(),
        .peak_rss_scope = rss_reset ? "this run" : "the sweep process so far",
        .train_step_median_ms = 1e3 * step_times[warm + (steps - warm) / 2],
        .train_seconds = train_seconds, .merge_seconds = merge_seconds};
}

int qa_run_rate_attrs(const qa_run_spec *run, qa_record_attr *out) {
    out[0] = (qa_record_attr){"learning_rate", run->train.lr};
    out[1] = (qa_record_attr){"lr_multiplier", run->lr_multiplier};
    out[2] = (qa_record_attr){"lr_reference", run->method->reference_lr};
    out[3] = (qa_record_attr){"tuning_run", run->role == QA_RUN_TUNING};
    /* 1: its held-out loss and FID were taken on the validation split (a tuning run of a recipe
     * with a tuning stage); absent in files that predate the split, which scored every run on
     * the reported images */
    out[4] = (qa_record_attr){"validation_split", run->role == QA_RUN_TUNING && run->settings->validation_split};
    return QA_RUN_RATE_ATTRS;
}

int qa_run_one(qa_run_env *env, const qa_run_spec *run, const qa_task *t, const char *out_dir, int *diverged,
               qa_error *err) {
    const qa_sweep_settings *st = run->settings;
    const qa_method *method = run->method;
    int rss_reset = qa_reset_peak_rss() == 0;
    qa_method_cfg mcfg = {.w_bits = run->w_bits, .a_bits = run->a_bits, .rank = run->rank, .lora_scale = st->lora_scale,
                          .base_lr = run->train.lr, .sampling_steps = st->eval.ddim_steps, .options = run->options};
    run_model rm;
    int rc = run_prepare(env, run, t, method, &mcfg, &rm, err);
    if (rc) return rc;
    /* the method's option values, as numbers (an enum: its index), then the run's rate and role */
    qa_record_attr options[QA_MAX_METHOD_OPTIONS + QA_RUN_RATE_ATTRS];
    for (int i = 0; i < method->n_options; i++)
        options[i] = (qa_record_attr){method->options[i].name, qa_option_number(&method->options[i], run->options)};
    int n_attrs = method->n_options + qa_run_rate_attrs(run, options + method->n_options);
    qa_record_run rec_run = {.id = run->id, .method = method->name, .bits = run->bits,
                             .task = qa_task_names[st->task.kind], .objective = st->distill ? "distill" : "task",
                             .dtype = qa_dtype_name(st->train.dtype),
                             .w_bits = run->w_bits, .a_bits = run->a_bits, .rank = run->rank, .seed = run->seed,
                             .item_class = t->item_class, .slot = t->slot, .method_version = method->version,
                             .options = options, .n_options = n_attrs, .recipe_text = st->recipe_text,
                             .recipe_path = st->recipe_path, .references = t->item_x, .n_references = t->k};
    size_t plen = strlen(out_dir) + strlen(run->id) + 8;
    char *final_path = qa_alloc(plen);
    snprintf(final_path, plen, "%s/%s.h5", out_dir, run->id);
    qa_record *rec;
    rc = qa_record_begin(final_path, &rec_run, &rec, err);
    qa_free(final_path);
    if (rc) return rc;
    const long steps = run->train.steps;
    double *step_times = qa_alloc(sizeof(double) * (size_t)steps), train_seconds = 0, merge_seconds = 0;
    qa_train_result res;
    rc = run_train(env, run, t, &rm, rec, step_times, &res, &train_seconds, err);
    *diverged = res.diverged;
    if (!rc && res.diverged) {
        rc = qa_record_diverged(rec, res.fail_reason, res.steps_done, err);
        fprintf(stderr, "  %s: diverged: %s (recorded, not evaluated)\n", run->id, res.fail_reason);
    } else if (!rc) {
        rc = run_deploy(env, run, t, rec, out_dir, &merge_seconds, err);
        qa_record_costs costs = run_costs(env->model, &rm, rss_reset, step_times, steps, train_seconds, merge_seconds);
        if (!rc) rc = qa_record_finish(rec, &costs, err);
    }
    qa_free(step_times);
    rc = qa_record_end(rec, rc, err);
    qa_dit_reset_slots(env->model);
    return rc;
}
