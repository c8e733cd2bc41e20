#include "harness/adapt.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/lock.h"
#include "harness/model.h"
#include "harness/progress.h"
#include "harness/record.h"
#include "harness/registry.h"
#include "harness/results.h"
#include "harness/runs.h"

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

const char *const qa_tune_metric_names[QA_TUNE_METRIC_COUNT] = {
    [QA_TUNE_HELDOUT_LOSS] = "heldout_loss",
    [QA_TUNE_SUBJECT_FIDELITY] = "subject_fidelity",
    [QA_TUNE_STYLE_SCORE] = "style_score",
    [QA_TUNE_FID] = "fid",
};
_Static_assert(sizeof qa_tune_metric_names / sizeof qa_tune_metric_names[0] == QA_TUNE_METRIC_COUNT, "metric names");

/* <method>-<bits>-r<rank>[-<tag><value> for each option that is an axis]: the cell, allocated */
static char *cell_id(const qa_method *m, const char *bits, int rank, const char *const *opt_value, const int *n_values) {
    size_t len = strlen(m->name) + strlen(bits) + 32;
    for (int i = 0; i < m->n_options; i++) len += strlen(m->options[i].id_tag) + strlen(opt_value[i]) + 2;
    char *id = qa_alloc(len);
    size_t off = (size_t)snprintf(id, len, "%s-%s-r%d", m->name, bits, rank);
    for (int i = 0; i < m->n_options; i++)
        if (n_values[i] > 1) off += (size_t)snprintf(id + off, len - off, "-%s%s", m->options[i].id_tag, opt_value[i]);
    return id;
}

/* <cell>[-lrx<multiplier> (a tuning run)]-s<seed>, allocated */
static char *run_id(const char *cell, const qa_run_spec *x) {
    size_t len = strlen(cell) + 80;
    char *id = qa_alloc(len);
    if (x->role == QA_RUN_TUNING) snprintf(id, len, "%s-lrx%g-s%ld", cell, x->lr_multiplier, x->seed);
    else snprintf(id, len, "%s-s%ld", cell, x->seed);
    return id;
}

/* A zeroed run spec at the end of the plan. */
static qa_run_spec *plan_append(qa_sweep_plan *plan, int *cap) {
    if (plan->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        plan->runs = realloc(plan->runs, sizeof(qa_run_spec) * (size_t)*cap);
    }
    qa_run_spec *x = &plan->runs[plan->n++];
    memset(x, 0, sizeof *x);
    return x;
}

/* Append one final run per combination of the method's option values (the first option
 * outermost): the sweep's budget, at [train] lr unless the recipe tunes it. */
static void plan_method(const qa_recipe *r, qa_sweep_plan *plan, const qa_method *m, const char *bits, int rank, long seed,
                        int *cap) {
    const char *const *vals[QA_MAX_METHOD_OPTIONS];
    const char *chosen[QA_MAX_METHOD_OPTIONS];
    int n_values[QA_MAX_METHOD_OPTIONS], at[QA_MAX_METHOD_OPTIONS] = {0};
    QA_ASSERT(m->n_options <= QA_MAX_METHOD_OPTIONS);
    for (int i = 0; i < m->n_options; i++) n_values[i] = option_values(r, m, i, &vals[i]);
    for (;;) {
        qa_run_spec *x = plan_append(plan, cap);
        x->settings = &plan->settings;
        x->method = m;
        x->bits = bits;
        parse_bits(bits, &x->w_bits, &x->a_bits);
        x->rank = rank;
        x->seed = seed;
        x->role = QA_RUN_FINAL;
        x->train = plan->settings.train;
        if (plan->tune.n_rates) x->train.lr = 0; /* chosen by the tuning stage */
        x->options = m->options_size ? qa_alloc(m->options_size) : NULL;
        if (x->options) qa_method_options_defaults(m, x->options);
        for (int i = 0; i < m->n_options; i++) {
            chosen[i] = vals[i][at[i]];
            qa_error e;
            int rc = qa_method_option_set(m, x->options, m->options[i].name, chosen[i], &e);
            QA_ASSERT(rc == 0); /* validated by the recipe parser */
        }
        x->cell = cell_id(m, bits, rank, chosen, n_values);
        x->id = run_id(x->cell, x);
        int i = m->n_options - 1; /* the next combination: the last option turns fastest */
        while (i >= 0 && ++at[i] == n_values[i]) at[i--] = 0;
        if (i < 0) return;
    }
}

/* The first final run of its cell (runs [0, i) hold no other). */
static int first_of_cell(const qa_sweep_plan *plan, int i) {
    for (int j = 0; j < i; j++)
        if (plan->runs[j].role == QA_RUN_FINAL && !strcmp(plan->runs[j].cell, plan->runs[i].cell)) return 0;
    return 1;
}

/* A tuning run of final run f's cell: rate k of the grid on tuning seed t. */
static void plan_tuning_run(qa_sweep_plan *plan, int f, int k, int t, int *cap) {
    qa_run_spec *x = plan_append(plan, cap);
    const qa_run_spec *final = &plan->runs[f]; /* after the append: runs may have moved */
    *x = *final;
    x->role = QA_RUN_TUNING;
    x->seed = plan->tune.seeds[t];
    x->lr_multiplier = plan->tune.rates[k];
    x->train.lr = (float)(plan->tune.rates[k] * final->method->reference_lr);
    x->train.steps = plan->tune.steps;
    x->cell = qa_alloc(strlen(final->cell) + 1);
    strcpy(x->cell, final->cell);
    x->id = run_id(x->cell, x);
    x->options = NULL;
    if (final->method->options_size) {
        x->options = qa_alloc(final->method->options_size);
        memcpy(x->options, final->options, final->method->options_size);
    }
    plan->n_tuning++;
}

/* Every cell's tuning runs, after the final runs: rate outer, tuning seed inner. */
static void plan_tuning(qa_sweep_plan *plan, int *cap) {
    const int n_final = plan->n;
    for (int f = 0; f < n_final; f++) {
        if (!first_of_cell(plan, f)) continue;
        for (int k = 0; k < plan->tune.n_rates; k++)
            for (int t = 0; t < plan->tune.n_seeds; t++) plan_tuning_run(plan, f, k, t, cap);
    }
}

/* A recipe error at the line of [section] key: "<file>:<line>: [section] key: <what>". */
static int recipe_key_error(const qa_recipe *r, const char *section, const char *key, qa_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int recipe_key_error(const qa_recipe *r, const char *section, const char *key, qa_error *err, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qa_fail(err, QA_ERR_INPUT, "%s:%d: [%s] %s: %s", recipe_path(r), recipe_line(r, section, key), section, key, what);
}

static int cmp_rate(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* [tune] lr_grid: positive multipliers, each once, sorted ascending. */
static int read_tune_rates(const qa_recipe *r, qa_tune_spec *t, qa_error *err) {
    const char *const *vals;
    t->n_rates = recipe_values(r, "tune", "lr_grid", &vals);
    if (t->n_rates > QA_MAX_TUNE_RATES)
        return recipe_key_error(r, "tune", "lr_grid", err, "%d rates, at most %d", t->n_rates, QA_MAX_TUNE_RATES);
    for (int i = 0; i < t->n_rates; i++) {
        t->rates[i] = strtod(vals[i], NULL);
        if (!(t->rates[i] > 0))
            return recipe_key_error(r, "tune", "lr_grid", err,
                                    "'%s': the rates must be positive (multiples of each method's reference rate)", vals[i]);
    }
    qsort(t->rates, (size_t)t->n_rates, sizeof(double), cmp_rate); /* distinct: the parser refuses repeats */
    return QA_OK;
}

/* [tune] seeds: given, and none of them an evaluation seed. */
static int read_tune_seeds(const qa_recipe *r, qa_tune_spec *t, qa_error *err) {
    const char *const *vals, *const *eval_seeds;
    t->n_seeds = recipe_values(r, "tune", "seeds", &vals);
    if (t->n_seeds == 0)
        return recipe_key_error(r, "tune", "lr_grid", err, "a tuning stage needs its seeds ([tune] seeds = [...], "
                                "disjoint from [adapt] seed)");
    if (t->n_seeds > QA_MAX_TUNE_SEEDS)
        return recipe_key_error(r, "tune", "seeds", err, "%d seeds, at most %d", t->n_seeds, QA_MAX_TUNE_SEEDS);
    int n_eval = recipe_values(r, "adapt", "seed", &eval_seeds);
    for (int i = 0; i < t->n_seeds; i++) {
        t->seeds[i] = atol(vals[i]);
        for (int j = 0; j < n_eval; j++)
            if (t->seeds[i] == atol(eval_seeds[j]))
                return recipe_key_error(r, "tune", "seeds", err,
                                        "seed %ld is also an evaluation seed ([adapt] seed): a validation item must "
                                        "never be a reported item", t->seeds[i]);
    }
    return QA_OK;
}

/* [tune] metric: one the task measures. */
static int read_tune_metric(const qa_recipe *r, qa_tune_spec *t, qa_task_kind task, qa_error *err) {
    const char *name = recipe_str(r, "tune", "metric");
    for (int k = 0; k < QA_TUNE_METRIC_COUNT; k++) if (!strcmp(name, qa_tune_metric_names[k])) t->metric = (qa_tune_metric)k;
    /* which tasks score each metric: subject fidelity needs item references, the style score a
     * style to learn, FID the domain task's reference set */
    static const unsigned measured_by[QA_TUNE_METRIC_COUNT] = {
        [QA_TUNE_HELDOUT_LOSS] = 1u << QA_TASK_SUBJECT | 1u << QA_TASK_STYLE | 1u << QA_TASK_DOMAIN,
        [QA_TUNE_SUBJECT_FIDELITY] = 1u << QA_TASK_SUBJECT | 1u << QA_TASK_STYLE,
        [QA_TUNE_STYLE_SCORE] = 1u << QA_TASK_STYLE | 1u << QA_TASK_DOMAIN,
        [QA_TUNE_FID] = 1u << QA_TASK_DOMAIN,
    };
    if (!(measured_by[t->metric] & 1u << task))
        return recipe_key_error(r, "tune", "metric", err, "the %s task does not measure %s", qa_task_names[task], name);
    return QA_OK;
}

/* The tuning stage of the recipe, checked (t->n_rates = 0: none). */
static int read_tune(const qa_recipe *r, const qa_sweep_settings *s, qa_tune_spec *t, qa_error *err) {
    memset(t, 0, sizeof *t);
    const char *other[] = {"seeds", "metric", "steps"};
    if (!recipe_has(r, "tune", "lr_grid")) {
        for (int i = 0; i < 3; i++)
            if (recipe_has(r, "tune", other[i]))
                return recipe_key_error(r, "tune", other[i], err, "set without a tuning grid ([tune] lr_grid)");
        return QA_OK;
    }
    if (recipe_has(r, "train", "lr"))
        return recipe_key_error(r, "train", "lr", err, "the recipe tunes the rate of each cell ([tune] lr_grid): "
                                "remove [train] lr");
    int rc = read_tune_rates(r, t, err);
    if (!rc) rc = read_tune_seeds(r, t, err);
    if (!rc) rc = read_tune_metric(r, t, s->task.kind, err);
    t->steps = recipe_int(r, "tune", "steps") > 0 ? recipe_int(r, "tune", "steps") : s->train.steps;
    return rc;
}

/* Every method of a tuned recipe declares its reference rate. */
static int check_tunable(const qa_recipe *r, const char *const *methods, int nm, qa_error *err) {
    for (int m = 0; m < nm; m++) {
        const qa_method *meth = qa_method_find(methods[m]);
        if (meth && !(meth->reference_lr > 0))
            return recipe_key_error(r, "adapt", "method", err, "%s declares no reference learning rate "
                                    "(qa_method.reference_lr), so [tune] cannot place its grid", meth->name);
    }
    return QA_OK;
}

int adapt_plan(const qa_recipe *r, qa_sweep_plan *plan, qa_error *err) {
    memset(plan, 0, sizeof *plan);
    const char *const *methods, *const *bits, *const *ranks, *const *seeds;
    int nm = recipe_values(r, "adapt", "method", &methods);
    int nb = recipe_values(r, "adapt", "bits", &bits);
    int nr = recipe_values(r, "adapt", "rank", &ranks);
    int ns = recipe_values(r, "adapt", "seed", &seeds);
    if (nm * nb * nr * ns == 0) return qa_fail(err, QA_ERR_INPUT, "%s: the grid is empty", recipe_path(r));
    sweep_settings(r, &plan->settings);
    int rc = read_tune(r, &plan->settings, &plan->tune, err);
    if (!rc && plan->tune.n_rates) rc = check_tunable(r, methods, nm, err);
    if (rc) return rc;
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
    if (plan->n == 0) {
        adapt_plan_free(plan);
        return qa_fail(err, QA_ERR_INPUT, "%s: no run left in the grid (every method needs integer weights)", recipe_path(r));
    }
    if (plan->tune.n_rates) plan_tuning(plan, &cap);
    return plan->n;
}

void adapt_plan_free(qa_sweep_plan *plan) {
    for (int i = 0; i < plan->n; i++) {
        qa_free(plan->runs[i].id);
        qa_free(plan->runs[i].cell);
        qa_free(plan->runs[i].options);
    }
    free(plan->runs);
    memset(plan, 0, sizeof *plan);
}

void adapt_plan_print(const qa_sweep_plan *plan, const char *recipe_path, const qa_shard *shard, FILE *out) {
    const qa_tune_spec *t = &plan->tune;
    int n_final = plan->n - plan->n_tuning;
    fprintf(out, "%s: %d runs: %d final", recipe_path, plan->n, n_final);
    if (t->n_rates)
        fprintf(out, " (each at its cell's tuned rate), %d tuning (%d cells x %d rates x %d seeds, %ld steps, chosen by %s)",
                plan->n_tuning, plan->n_tuning / (t->n_rates * t->n_seeds), t->n_rates, t->n_seeds, t->steps,
                qa_tune_metric_names[t->metric]);
    if (shard && shard->count > 1)
        fprintf(out, "; %d in shard %d/%d (%s)", qa_shard_size(shard, plan->n), shard->rank, shard->count, shard->source);
    fprintf(out, "\n");
    for (int i = 0; i < plan->n; i++)
        if (!shard || qa_shard_owns(shard, i))
            fprintf(out, "  %s%s\n", plan->runs[i].role == QA_RUN_TUNING ? "tune/" : "", plan->runs[i].id);
}

int adapt_choose_rate(const double *mean_score, int n, int lower_is_better) {
    int best = -1;
    for (int k = 0; k < n; k++) {
        if (isnan(mean_score[k])) continue;
        double gain = best < 0 ? 1 : (lower_is_better ? mean_score[best] - mean_score[k] : mean_score[k] - mean_score[best]);
        if (gain > 0) best = k; /* strictly better: a tie keeps the smaller rate */
    }
    return best;
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

/* Where a run's file goes: out_dir for a final run, out_dir/tune for a tuning run; allocated. */
static char *run_folder(const char *out_dir, const qa_run_spec *run) {
    size_t len = strlen(out_dir) + 8;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s%s", out_dir, run->role == QA_RUN_TUNING ? "/tune" : "");
    return p;
}

/* <folder>/<id>.h5, allocated */
static char *run_file(const char *out_dir, const qa_run_spec *run) {
    char *folder = run_folder(out_dir, run);
    size_t len = strlen(folder) + strlen(run->id) + 8;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/%s.h5", folder, run->id);
    qa_free(folder);
    return p;
}

/* A finished run's file that cannot be read back (not HDF5, cut short, a checksum that does not
 * match, a missing field) is renamed <file>.damaged (.damaged.2, ... when taken), kept for a
 * look, and its run is redone: said on stderr with the reason. */
static int set_aside_damaged(const char *path, const qa_error *why, qa_error *err) {
    size_t len = strlen(path) + 32;
    char *aside = qa_alloc(len);
    snprintf(aside, len, "%s.damaged", path);
    for (int k = 2; qa_file_exists(aside) && k < 1000; k++) snprintf(aside, len, "%s.damaged.%d", path, k);
    int rc = h5_rename_durable(path, aside, err);
    if (!rc) fprintf(stderr, "warning: %s is damaged (%s): moved aside to %s; its run is done again\n", path, why->msg, aside);
    qa_free(aside);
    return rc;
}

/* Runs still to do (*pending): those without a file, and those whose file is damaged (set
 * aside); a finished run made by another recipe, or by a newer harness, is an error. */
static int count_pending(const qa_recipe *r, const qa_sweep_plan *plan, const char *out_dir, int *pending, qa_error *err) {
    *pending = 0;
    for (int i = 0; i < plan->n; i++) {
        char *p = run_file(out_dir, &plan->runs[i]);
        int rc = QA_OK, damaged = 0;
        qa_error why = {0, ""};
        if (!qa_file_exists(p)) (*pending)++;
        else if (runs_check_file(p, &damaged, &why) == QA_OK) rc = check_same_recipe(r, p, err);
        else if (damaged) { rc = set_aside_damaged(p, &why, err); if (!rc) (*pending)++; }
        else { *err = why; rc = why.code; }
        qa_free(p);
        if (rc) return rc;
    }
    return QA_OK;
}

/* The task of a seed, built once and shared by every run of that seed (checked before the
 * sweep's first run by check_tasks). */
static const qa_task *task_of(sweep_env *e, const qa_sweep_settings *s, long seed, qa_task *tasks, int *n_tasks,
                              qa_error *err) {
    for (int j = 0; j < *n_tasks; j++) if (tasks[j].seed == seed) return &tasks[j];
    dit_reset_slots(&e->model);
    memcpy(e->model.params, e->base_params, sizeof(float) * e->model.n_params);
    qa_task *t = &tasks[*n_tasks];
    if (qa_task_build(t, &s->task, seed, &e->model, &e->clf, &e->train, s->eval.ddim_steps, s->eval.guidance, err)) return NULL;
    (*n_tasks)++;
    return t;
}

/* Every seed's task can be made from the base and the training images, before any run trains:
 * a base without a spare slot is an error naming the checkpoint, too few images of a class one
 * naming the recipe and its train_limit. */
static int check_tasks(const qa_recipe *r, const qa_sweep_plan *plan, const sweep_env *e, qa_error *err) {
    const qa_sweep_settings *s = &plan->settings;
    for (int i = 0; i < plan->n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = plan->runs[j].seed == plan->runs[i].seed;
        qa_error why = {0, ""};
        if (seen || qa_task_check(&s->task, plan->runs[i].seed, &e->model.cfg, &e->train, &why) == QA_OK) continue;
        if (s->task.kind != QA_TASK_DOMAIN && e->model.cfg.n_spare < 1)
            return qa_fail(err, QA_ERR_INPUT, "%s: %s: %s", recipe_path(r), s->checkpoint, why.msg);
        if (s->data.train_limit > 0)
            return qa_fail(err, QA_ERR_INPUT, "%s: %s ([data] train_limit = %ld keeps only the first %ld training images: "
                           "raise it, or 0 for all)", recipe_path(r), why.msg, s->data.train_limit, s->data.train_limit);
        return qa_fail(err, QA_ERR_INPUT, "%s: %s", recipe_path(r), why.msg);
    }
    return QA_OK;
}

/* What the scheduler carries from run to run. */
typedef struct {
    sweep_env env;
    qa_task *tasks;
    int n_tasks, done, failed;
    qa_progress prog;
} sweep_state;

/* Run every unfinished run of the role; a bad-input failure stops the sweep, any other is counted. */
static int run_role(const qa_sweep_plan *plan, qa_run_role role, const char *out_dir, sweep_state *st, qa_error *err) {
    for (int i = 0; i < plan->n; i++) {
        const qa_run_spec *run = &plan->runs[i];
        if (run->role != role) continue;
        char *p = run_file(out_dir, run), *folder = run_folder(out_dir, run);
        int finished = qa_file_exists(p);
        qa_free(p);
        if (finished) { qa_free(folder); continue; }
        const qa_task *t = task_of(&st->env, &plan->settings, run->seed, st->tasks, &st->n_tasks, err);
        if (!t) return err->code;
        int diverged = 0;
        double t0 = qa_now();
        qa_error run_err = {0, ""};
        int rrc = qa_run_one(&st->env.env, run, t, folder, &diverged, &run_err);
        qa_free(folder);
        st->done++;
        if (rrc) {
            st->failed++;
            fprintf(stderr, "run %s failed: %s\n", run->id, run_err.msg);
            if (rrc == QA_ERR_INPUT) { *err = run_err; return rrc; }
        } else {
            progress_log(&st->prog, st->done, "%s%s %s in %.0fs", role == QA_RUN_TUNING ? "tune/" : "", run->id,
                         diverged ? "diverged" : "done", qa_now() - t0);
        }
    }
    return QA_OK;
}

/* A tuning run's validation score: the metric of its deployed model (the INT deploy at W bits >
 * 0, else the FP one); NAN when it diverged or was not scored. */
static double validation_score(const qa_run_record *rec, qa_tune_metric metric) {
    if (strcmp(rec->status, "done") != 0) return NAN;
    const char *variant = rec->w_bits > 0 ? "int" : "fp";
    for (int v = 0; v < rec->n_eval; v++) {
        const qa_run_eval *e = &rec->eval[v];
        if (strcmp(e->variant, variant) != 0) continue;
        const double by_metric[QA_TUNE_METRIC_COUNT] = {e->heldout_loss, e->subject_fidelity, e->style_score, e->fid};
        return by_metric[metric] >= 0 && isfinite(by_metric[metric]) ? by_metric[metric] : NAN;
    }
    return NAN;
}

/* Mean validation score of each rate of cell f over the tuning seeds (NAN: a rate with a
 * diverged or unscored run). A tuning run without a file is an error. */
static int cell_scores(const qa_sweep_plan *plan, int f, const qa_run_record *recs, int n_recs, double *mean, qa_error *err) {
    const qa_tune_spec *t = &plan->tune;
    for (int k = 0; k < t->n_rates; k++) mean[k] = 0;
    for (int i = 0; i < plan->n; i++) {
        const qa_run_spec *x = &plan->runs[i];
        if (x->role != QA_RUN_TUNING || strcmp(x->cell, plan->runs[f].cell) != 0) continue;
        int k = 0, j = 0;
        while (t->rates[k] != x->lr_multiplier) k++;
        while (j < n_recs && strcmp(recs[j].id, x->id) != 0) j++;
        if (j == n_recs) return qa_fail(err, QA_ERR_RUN, "tuning run tune/%s has no result: its cell's rate cannot be chosen", x->id);
        mean[k] += validation_score(&recs[j], t->metric) / t->n_seeds;
    }
    return QA_OK;
}

/* One line of <out>/tune/rates.csv per rate of the cell. */
static void write_cell_rates(FILE *csv, const qa_sweep_plan *plan, int f, const double *mean, int best) {
    const qa_run_spec *x = &plan->runs[f];
    for (int k = 0; k < plan->tune.n_rates; k++)
        fprintf(csv, "%s,%s,%g,%g,%d,%.9g,%d\n", x->cell, qa_tune_metric_names[plan->tune.metric], plan->tune.rates[k],
                plan->tune.rates[k] * x->method->reference_lr, plan->tune.n_seeds, mean[k], k == best);
}

/* Choose each cell's rate from its tuning runs and give it to the cell's final runs. */
static int choose_rates(qa_sweep_plan *plan, const qa_run_record *recs, int n_recs, FILE *csv, qa_error *err) {
    const qa_tune_spec *t = &plan->tune;
    const int lower_is_better = t->metric == QA_TUNE_HELDOUT_LOSS || t->metric == QA_TUNE_FID;
    double mean[QA_MAX_TUNE_RATES];
    for (int f = 0; f < plan->n; f++) {
        if (plan->runs[f].role != QA_RUN_FINAL || !first_of_cell(plan, f)) continue;
        int rc = cell_scores(plan, f, recs, n_recs, mean, err);
        if (rc) return rc;
        int best = adapt_choose_rate(mean, t->n_rates, lower_is_better);
        write_cell_rates(csv, plan, f, mean, best);
        if (best < 0) return qa_fail(err, QA_ERR_RUN, "%s: every rate of the tuning grid diverged", plan->runs[f].cell);
        const double lr = t->rates[best] * plan->runs[f].method->reference_lr;
        fprintf(stderr, "tuned %s: lr %g (x%g of its reference; %s %.4g)%s\n", plan->runs[f].cell, lr, t->rates[best],
                qa_tune_metric_names[t->metric], mean[best],
                t->n_rates > 2 && (best == 0 || best == t->n_rates - 1) ? " -- at the edge of the grid: widen it" : "");
        for (int i = f; i < plan->n; i++)
            if (plan->runs[i].role == QA_RUN_FINAL && !strcmp(plan->runs[i].cell, plan->runs[f].cell)) {
                plan->runs[i].train.lr = (float)lr;
                plan->runs[i].lr_multiplier = t->rates[best];
            }
    }
    return QA_OK;
}

/* The tuning stage's choice, from the tuning runs' files (so a resumed sweep chooses the same);
 * every rate's mean score and the choice go to <out>/tune/rates.csv. */
static int apply_tuned_rates(qa_sweep_plan *plan, const char *out_dir, qa_error *err) {
    size_t len = strlen(out_dir) + 32;
    char *dir = qa_alloc(len), *csv_path = qa_alloc(len), *tmp = qa_alloc(len + 8);
    snprintf(dir, len, "%s/tune", out_dir);
    snprintf(csv_path, len, "%s/rates.csv", dir);
    snprintf(tmp, len + 8, "%s.partial", csv_path);
    qa_run_record *recs = NULL;
    int n_recs = 0, rc = runs_load(dir, &recs, &n_recs, err);
    FILE *csv = rc ? NULL : fopen(tmp, "w");
    if (!rc && !csv) rc = qa_fail(err, QA_ERR_RUN, "cannot write %s", tmp);
    if (!rc) {
        fprintf(csv, "cell,metric,lr_multiplier,learning_rate,seeds,mean_score,chosen\n");
        rc = choose_rates(plan, recs, n_recs, csv, err);
        if (fclose(csv) != 0 && !rc) rc = qa_fail(err, QA_ERR_RUN, "cannot write %s", tmp);
        if (!rc && rename(tmp, csv_path) != 0) rc = qa_fail(err, QA_ERR_RUN, "cannot rename %s", tmp);
    }
    runs_free(recs, n_recs);
    qa_free(dir); qa_free(csv_path); qa_free(tmp);
    return rc;
}

/* The first image two items share (-1: none). */
static int shared_image(const qa_task *a, const qa_task *b) {
    for (int i = 0; i < a->k; i++)
        for (int j = 0; j < b->k; j++)
            if (a->item_idx[i] == b->item_idx[j]) return a->item_idx[i];
    return -1;
}

/* A validation item (a tuning seed's) shares no training image with a reported item (an
 * evaluation seed's): the seeds differ, but two items of one class could still overlap. */
static int check_validation_items(const qa_recipe *r, const qa_sweep_plan *plan, sweep_state *st, qa_error *err) {
    for (int i = 0; i < plan->n; i++) {
        if (plan->runs[i].role != QA_RUN_TUNING) continue;
        const qa_task *v = task_of(&st->env, &plan->settings, plan->runs[i].seed, st->tasks, &st->n_tasks, err);
        if (!v) return err->code;
        for (int j = 0; j < plan->n; j++) {
            if (plan->runs[j].role != QA_RUN_FINAL) continue;
            const qa_task *e = task_of(&st->env, &plan->settings, plan->runs[j].seed, st->tasks, &st->n_tasks, err);
            if (!e) return err->code;
            int image = shared_image(v, e);
            if (image >= 0)
                return recipe_key_error(r, "tune", "seeds", err, "the validation item of tuning seed %ld shares training "
                                        "image %d with the item of evaluation seed %ld: choose another tuning seed",
                                        v->seed, image, e->seed);
        }
    }
    return QA_OK;
}

/* The results folder and, for a tuned recipe, its tune/ folder. */
static int make_folders(const qa_sweep_plan *plan, const char *out_dir, qa_error *err) {
    int rc = qa_mkdir_p(out_dir, err);
    if (rc || !plan->tune.n_rates) return rc;
    size_t len = strlen(out_dir) + 8;
    char *dir = qa_alloc(len);
    snprintf(dir, len, "%s/tune", out_dir);
    rc = qa_mkdir_p(dir, err);
    qa_free(dir);
    return rc;
}

static int sweep_locked(const qa_recipe *r, const char *out_dir, qa_error *err);

/* One sweep per folder (a second one truncated this one's files): the lock is held around the
 * whole sweep, and its release syncs the folder, where the finished runs were renamed. */
int adapt_sweep_wait(const qa_recipe *r, const char *out_dir, int wait, qa_error *err) {
    qa_lock *lock;
    int rc = qa_lock_acquire(out_dir, wait, &lock, err);
    if (rc == 0) { rc = sweep_locked(r, out_dir, err); qa_lock_release(lock); }
    return rc;
}

int adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err) { return adapt_sweep_wait(r, out_dir, 0, err); }

static int sweep_locked(const qa_recipe *r, const char *out_dir, qa_error *err) {
    qa_sweep_plan plan;
    int n = adapt_plan(r, &plan, err);
    if (n < 0) return n;
    int pending = 0, rc = make_folders(&plan, out_dir, err);
    if (!rc) rc = count_pending(r, &plan, out_dir, &pending, err);
    if (rc) { adapt_plan_free(&plan); return rc; }
    fprintf(stderr, "%s: %d runs (%d tuning), %d finished already, %d to do -> %s\n", recipe_path(r), n, plan.n_tuning,
            n - pending, pending, out_dir);
    if (pending == 0) { adapt_plan_free(&plan); return QA_OK; }
    sweep_state st;
    memset(&st, 0, sizeof st);
    rc = sweep_load(&plan.settings, &st.env, err);
    if (rc) { adapt_plan_free(&plan); return rc; }
    rc = check_tasks(r, &plan, &st.env, err);
    if (rc) { sweep_unload(&st.env); adapt_plan_free(&plan); return rc; }
    st.tasks = qa_alloc(sizeof(qa_task) * (size_t)n);
    progress_begin(&st.prog, "sweep", pending);
    if (plan.tune.n_rates) {
        rc = check_validation_items(r, &plan, &st, err);
        if (!rc) rc = run_role(&plan, QA_RUN_TUNING, out_dir, &st, err);
        if (!rc) rc = apply_tuned_rates(&plan, out_dir, err);
    }
    if (!rc) rc = run_role(&plan, QA_RUN_FINAL, out_dir, &st, err);
    progress_end(&st.prog);
    for (int j = 0; j < st.n_tasks; j++) qa_task_free(&st.tasks[j]);
    qa_free(st.tasks);
    sweep_unload(&st.env);
    adapt_plan_free(&plan);
    if (!rc && st.failed) rc = qa_fail(err, QA_ERR_RUN, "%d of %d runs failed (see the messages above)", st.failed, pending);
    return rc;
}
