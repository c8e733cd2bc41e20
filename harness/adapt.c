#include "harness/adapt.h"

#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/model.h"
#include "harness/progress.h"
#include "harness/record.h"
#include "harness/registry.h"

/* The settings every run of the recipe shares: the recipe is read here, once. */
static void sweep_settings(const qa_recipe *r, qa_sweep_settings *s) {
    memset(s, 0, sizeof *s);
    s->data = (qa_data_spec){(int)recipe_int(r, "data", "synthetic"), recipe_str(r, "data", "dir"), recipe_int(r, "data", "train_limit")};
    s->checkpoint = recipe_str(r, "model", "checkpoint");
    s->evaluator = recipe_str(r, "model", "evaluator");
    const char *task = recipe_str(r, "adapt", "task");
    for (int k = 0; k < QA_TASK_COUNT; k++) if (!strcmp(task, qa_task_names[k])) s->task.kind = (qa_task_kind)k;
    s->task.images = (int)recipe_int(r, "adapt", "images");
    s->task.prior_images = (int)recipe_int(r, "adapt", "prior_images");
    s->task.prior_weight = (float)recipe_float(r, "adapt", "prior_weight");
    s->train = (qa_train_spec){.steps = recipe_int(r, "train", "steps"), .warmup = recipe_int(r, "train", "warmup"),
                               .batch = (int)recipe_int(r, "train", "batch"), .lr = (float)recipe_float(r, "train", "lr"),
                               .weight_decay = (float)recipe_float(r, "train", "weight_decay"),
                               .clip = (float)recipe_float(r, "train", "clip"),
                               .cosine = strcmp(recipe_str(r, "train", "schedule"), "cosine") == 0,
                               .inject_nan_step = recipe_int(r, "train", "inject_nan_step")};
    s->distill = strcmp(recipe_str(r, "train", "objective"), "distill") == 0;
    s->eval = (qa_eval_spec){.samples = (int)recipe_int(r, "eval", "samples"), .ddim_steps = (int)recipe_int(r, "eval", "ddim_steps"),
                             .guidance = (float)recipe_float(r, "eval", "guidance"),
                             .prior_samples = (int)recipe_int(r, "eval", "prior_samples"),
                             .fid_samples = (int)recipe_int(r, "eval", "fid_samples"),
                             .fid_reference = (int)recipe_int(r, "eval", "fid_reference"),
                             .loss_images = (int)recipe_int(r, "eval", "loss_images"),
                             .loss_draws = (int)recipe_int(r, "eval", "loss_draws"),
                             .artifact = (int)recipe_int(r, "eval", "artifact")};
    s->lora_scale = (float)recipe_float(r, "adapt", "lora_scale");
    s->recipe_text = recipe_text(r);
    s->recipe_path = recipe_path(r);
}

/* The values a recipe gives option i of method m: its list, else the method's default. */
static int option_values(const qa_recipe *r, const qa_method *m, int i, const char *const **vals) {
    int n = recipe_option_values(r, m->options[i].name, vals);
    if (n > 0) return n;
    *vals = &m->options[i].def;
    return 1;
}

/* <method>-<bits>-r<rank>[-<tag><value> for each option that is an axis]-s<seed>, allocated */
static char *run_id(const qa_method *m, const char *bits, int rank, long seed, const char *const *opt_value,
                    const int *n_values) {
    size_t len = strlen(m->name) + strlen(bits) + 64;
    for (int i = 0; i < m->n_options; i++) len += strlen(m->options[i].id_tag) + strlen(opt_value[i]) + 2;
    char *id = qa_alloc(len);
    size_t off = (size_t)snprintf(id, len, "%s-%s-r%d", m->name, bits, rank);
    for (int i = 0; i < m->n_options; i++)
        if (n_values[i] > 1) off += (size_t)snprintf(id + off, len - off, "-%s%s", m->options[i].id_tag, opt_value[i]);
    snprintf(id + off, len - off, "-s%ld", seed);
    return id;
}

/* Append one run per combination of the method's option values (the first option outermost). */
static void plan_method(const qa_recipe *r, qa_sweep_plan *plan, const qa_method *m, const char *bits, int rank, long seed,
                        int *cap) {
    const char *const *vals[QA_MAX_METHOD_OPTIONS];
    const char *chosen[QA_MAX_METHOD_OPTIONS];
    int n_values[QA_MAX_METHOD_OPTIONS], at[QA_MAX_METHOD_OPTIONS] = {0};
    QA_ASSERT(m->n_options <= QA_MAX_METHOD_OPTIONS);
    for (int i = 0; i < m->n_options; i++) n_values[i] = option_values(r, m, i, &vals[i]);
    for (;;) {
        if (plan->n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            plan->runs = realloc(plan->runs, sizeof(qa_run_spec) * (size_t)*cap);
        }
        qa_run_spec *x = &plan->runs[plan->n++];
        memset(x, 0, sizeof *x);
        x->settings = &plan->settings;
        x->method = m;
        x->bits = bits;
        parse_bits(bits, &x->w_bits, &x->a_bits);
        x->rank = rank;
        x->seed = seed;
        x->options = m->options_size ? qa_alloc(m->options_size) : NULL;
        if (x->options) qa_method_options_defaults(m, x->options);
        for (int i = 0; i < m->n_options; i++) {
            chosen[i] = vals[i][at[i]];
            qa_error e;
            int rc = qa_method_option_set(m, x->options, m->options[i].name, chosen[i], &e);
            QA_ASSERT(rc == 0); /* validated by the recipe parser */
        }
        x->id = run_id(m, bits, rank, seed, chosen, n_values);
        int i = m->n_options - 1; /* the next combination: the last option turns fastest */
        while (i >= 0 && ++at[i] == n_values[i]) at[i--] = 0;
        if (i < 0) return;
    }
}

int adapt_plan(const qa_recipe *r, qa_sweep_plan *plan, qa_error *err) {
    memset(plan, 0, sizeof *plan);
    const char *const *methods, *const *bits, *const *ranks, *const *seeds;
    int nm = recipe_values(r, "adapt", "method", &methods);
    int nb = recipe_values(r, "adapt", "bits", &bits);
    int nr = recipe_values(r, "adapt", "rank", &ranks);
    int ns = recipe_values(r, "adapt", "seed", &seeds);
    if (nm * nb * nr * ns == 0) return qa_fail(err, QA_ERR_INPUT, "%s: the grid is empty", recipe_path(r));
    int cap = 0;
    for (int s = 0; s < ns; s++)
        for (int m = 0; m < nm; m++)
            for (int b = 0; b < nb; b++)
                for (int q = 0; q < nr; q++) {
                    const qa_method *meth = qa_method_find(methods[m]);
                    QA_ASSERT(meth); /* validated by the recipe parser */
                    int w_bits, a_bits;
                    parse_bits(bits[b], &w_bits, &a_bits);
                    if (meth->needs_weight_bits && w_bits == 0) {
                        if (s == 0 && q == 0)
                            fprintf(stderr, "%s: %s at bits %s left out (it needs integer weights)\n", recipe_path(r),
                                    meth->name, bits[b]);
                        continue;
                    }
                    plan_method(r, plan, meth, bits[b], atoi(ranks[q]), atol(seeds[s]), &cap);
                }
    sweep_settings(r, &plan->settings);
    if (plan->n == 0) {
        adapt_plan_free(plan);
        return qa_fail(err, QA_ERR_INPUT, "%s: no run left in the grid (every method needs integer weights)", recipe_path(r));
    }
    return plan->n;
}

void adapt_plan_free(qa_sweep_plan *plan) {
    for (int i = 0; i < plan->n; i++) {
        qa_free(plan->runs[i].id);
        qa_free(plan->runs[i].options);
    }
    free(plan->runs);
    memset(plan, 0, sizeof *plan);
}

/* A recipe's text without comments, blank lines and spaces: what decides the runs. */
static char *recipe_substance(const char *text) {
    size_t n = strlen(text);
    char *out = qa_alloc(n + 1), *o = out;
    int in_comment = 0;
    for (const char *q = text; *q; q++) {
        if (*q == '#') in_comment = 1;
        if (*q == '\n') { in_comment = 0; if (o > out && o[-1] != '\n') *o++ = '\n'; continue; }
        if (in_comment || *q == ' ' || *q == '\t' || *q == '\r') continue;
        *o++ = *q;
    }
    *o = 0;
    return out;
}

/* A finished run is reused only if the same recipe produced it (comments aside): a folder of
 * an edited recipe would otherwise mix old and new runs in one table. */
static int check_same_recipe(const qa_recipe *r, const char *path, qa_error *err) {
    char *old;
    int rc = qa_record_read_recipe(path, strlen(recipe_text(r)) * 2 + 4095, &old, err);
    if (rc) return rc;
    char *a = recipe_substance(old), *b = recipe_substance(recipe_text(r));
    if (strcmp(a, b) != 0)
        rc = qa_fail(err, QA_ERR_INPUT,
                     "%s was made by a different recipe than %s (settings differ, not just comments): "
                     "write to another --out folder, or remove the old runs to redo them",
                     path, recipe_path(r));
    qa_free(a); qa_free(b); qa_free(old);
    return rc;
}

/* What the runs of a sweep load once: base denoiser, evaluator, data, held-out set, the FP
 * teacher (distillation) and the FID reference (domain). */
typedef struct {
    qa_dit model, teacher;
    int have_model, have_teacher, have_clf, have_train, have_test, have_heldout;
    qa_classifier clf;
    qa_images train, test;
    qa_heldout heldout;
    float *base_params, *fid_ref_feat;
    qa_run_env env;
} sweep_env;

static void sweep_unload(sweep_env *e) {
    qa_free(e->base_params);
    qa_free(e->fid_ref_feat);
    if (e->have_heldout) heldout_free(&e->heldout);
    if (e->have_teacher) dit_free(&e->teacher);
    if (e->have_train) qa_images_free(&e->train);
    if (e->have_test) qa_images_free(&e->test);
    if (e->have_clf) clf_free(&e->clf);
    if (e->have_model) dit_free(&e->model);
    memset(e, 0, sizeof *e);
}

static int sweep_load(const qa_sweep_settings *s, sweep_env *e, qa_error *err) {
    memset(e, 0, sizeof *e);
    int B = s->train.batch, max_batch = B > 64 ? B : 64;
    int rc = dit_load(s->checkpoint, &e->model, max_batch, err);
    if (rc) {
        if (err->code == QA_ERR_INPUT && !qa_file_exists(s->checkpoint))
            return qa_fail(err, QA_ERR_INPUT, "%s: pre-trained checkpoint not found (make it with: "
                           "build/qadapt run experiments/pretrain.recipe)", s->checkpoint);
        return rc;
    }
    e->have_model = 1;
    rc = clf_load(s->evaluator, &e->clf, 128, err);
    e->have_clf = rc == 0;
    if (!rc) rc = qa_load_images(&s->data, "train", &e->train, err);
    e->have_train = e->have_clf && rc == 0;
    if (!rc) rc = qa_load_images(&s->data, "t10k", &e->test, err);
    e->have_test = e->have_train && rc == 0;
    if (!rc) rc = heldout_init(&e->heldout, &e->test, s->eval.loss_images, s->eval.loss_draws, err);
    e->have_heldout = e->have_test && rc == 0;
    if (!rc && s->distill) {
        rc = dit_load(s->checkpoint, &e->teacher, max_batch, err);
        e->have_teacher = rc == 0;
    }
    if (!rc && s->task.kind == QA_TASK_DOMAIN) { /* computed once per sweep */
        e->env.refs.n_fid_ref = s->eval.fid_reference;
        e->fid_ref_feat = qa_task_fid_reference(&e->test, &e->clf, &e->env.refs.n_fid_ref);
    }
    if (rc) { sweep_unload(e); return rc; }
    e->base_params = qa_alloc(sizeof(float) * e->model.n_params);
    memcpy(e->base_params, e->model.params, sizeof(float) * e->model.n_params);
    e->env.model = &e->model;
    e->env.base_params = e->base_params;
    e->env.teacher = e->have_teacher ? &e->teacher : NULL;
    e->env.train = &e->train;
    schedule_default(&e->env.sched);
    e->env.refs.clf = &e->clf;
    e->env.refs.heldout = &e->heldout;
    e->env.refs.sched = &e->env.sched;
    e->env.refs.fid_ref_feat = e->fid_ref_feat;
    return QA_OK;
}

/* <out>/<id>.h5, allocated */
static char *run_file(const char *out_dir, const qa_run_spec *run) {
    size_t len = strlen(out_dir) + strlen(run->id) + 8;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/%s.h5", out_dir, run->id);
    return p;
}

/* Plan position i of n falls in block `shard` of n_shards contiguous blocks. */
static int in_shard(int i, int n, int shard, int n_shards) {
    return (long)i * n_shards / n == shard;
}

/* Runs of this shard still to do (*pending); a finished run made by another recipe is an error. */
static int count_pending(const qa_recipe *r, const qa_sweep_plan *plan, const char *out_dir, int shard, int n_shards, int *pending,
                         qa_error *err) {
    *pending = 0;
    for (int i = 0; i < plan->n; i++) {
        char *p = run_file(out_dir, &plan->runs[i]);
        int rc = QA_OK;
        if (qa_file_exists(p)) rc = check_same_recipe(r, p, err);
        else if (in_shard(i, plan->n, shard, n_shards)) (*pending)++;
        qa_free(p);
        if (rc) return rc;
    }
    return QA_OK;
}

/* The task of a seed, built once and shared by every run of that seed. */
static const qa_task *task_of(sweep_env *e, const qa_sweep_settings *s, long seed, qa_task *tasks, int *n_tasks) {
    for (int j = 0; j < *n_tasks; j++) if (tasks[j].seed == seed) return &tasks[j];
    dit_reset_slots(&e->model);
    memcpy(e->model.params, e->base_params, sizeof(float) * e->model.n_params);
    qa_task *t = &tasks[(*n_tasks)++];
    qa_task_build(t, &s->task, seed, &e->model, &e->clf, &e->train, s->eval.ddim_steps, s->eval.guidance);
    return t;
}

int adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err) { return adapt_sweep_shard(r, out_dir, 0, 1, err); }

int adapt_sweep_shard(const qa_recipe *r, const char *out_dir, int shard, int n_shards, qa_error *err) {
    QA_ASSERT(n_shards >= 1 && shard >= 0 && shard < n_shards);
    qa_sweep_plan plan;
    int n = adapt_plan(r, &plan, err);
    if (n < 0) return n;
    int pending = 0, rc = qa_mkdir_p(out_dir, err);
    if (!rc) rc = count_pending(r, &plan, out_dir, shard, n_shards, &pending, err);
    if (rc) { adapt_plan_free(&plan); return rc; }
    if (n_shards > 1)
        fprintf(stderr, "%s: shard %d/%d: %d to do -> %s\n", recipe_path(r), shard + 1, n_shards, pending, out_dir);
    else
        fprintf(stderr, "%s: %d runs, %d finished already, %d to do -> %s\n", recipe_path(r), n, n - pending, pending, out_dir);
    if (pending == 0) { adapt_plan_free(&plan); return QA_OK; }
    sweep_env e;
    rc = sweep_load(&plan.settings, &e, err);
    if (rc) { adapt_plan_free(&plan); return rc; }
    qa_task *tasks = qa_alloc(sizeof(qa_task) * (size_t)n);
    int n_tasks = 0, failed = 0, done = 0;
    qa_progress prog;
    progress_begin(&prog, "sweep", pending);
    for (int i = 0; i < n && !rc; i++) {
        if (!in_shard(i, n, shard, n_shards)) continue;
        const qa_run_spec *run = &plan.runs[i];
        char *p = run_file(out_dir, run);
        int finished = qa_file_exists(p);
        qa_free(p);
        if (finished) continue;
        const qa_task *t = task_of(&e, &plan.settings, run->seed, tasks, &n_tasks);
        int diverged = 0;
        double t0 = qa_now();
        qa_error run_err = {0, ""};
        int rrc = qa_run_one(&e.env, run, t, out_dir, &diverged, &run_err);
        done++;
        if (rrc) {
            failed++;
            fprintf(stderr, "run %s failed: %s\n", run->id, run_err.msg);
            if (rrc == QA_ERR_INPUT) { *err = run_err; rc = rrc; }
        } else {
            progress_log(&prog, done, "%s %s in %.0fs", run->id, diverged ? "diverged" : "done", qa_now() - t0);
        }
    }
    progress_end(&prog);
    for (int j = 0; j < n_tasks; j++) qa_task_free(&tasks[j]);
    qa_free(tasks);
    sweep_unload(&e);
    adapt_plan_free(&plan);
    if (!rc && failed) rc = qa_fail(err, QA_ERR_RUN, "%d of %d runs failed (see the messages above)", failed, pending);
    return rc;
}
