/* The sweep's plan: the recipe read once into typed run specs. The settings every run shares,
 * the grid (method x bits x rank x seed, and any method option given as a list, an axis with
 * its tag in the run id), and the tuning stage's runs ([tune]). Declared in adapt.h. */
#include "harness/adapt.h"

#include <stdlib.h>
#include <string.h>

#include "harness/registry.h"

/* [train] dtype (validated by the recipe parser). */
static qa_dtype train_dtype(const qa_recipe *r) {
    qa_dtype d = QA_DTYPE_F32;
    int rc = qa_dtype_parse(qa_recipe_str(r, "train", "dtype"), &d);
    QA_ASSERT(rc == QA_OK);
    return d;
}

/* The settings every run of the recipe shares: the recipe is read here, once. */
static void sweep_settings(const qa_recipe *r, qa_sweep_settings *s) {
    memset(s, 0, sizeof *s);
    s->data = (qa_data_spec){(int)qa_recipe_int(r, "data", "synthetic"), qa_recipe_str(r, "data", "dir"), qa_recipe_int(r, "data", "train_limit")};
    s->checkpoint = qa_recipe_str(r, "model", "checkpoint");
    s->evaluator = qa_recipe_str(r, "model", "evaluator");
    const char *task = qa_recipe_str(r, "adapt", "task");
    for (int k = 0; k < QA_TASK_COUNT; k++) if (!strcmp(task, qa_task_names[k])) s->task.kind = (qa_task_kind)k;
    s->task.images = (int)qa_recipe_int(r, "adapt", "images");
    s->task.prior_images = (int)qa_recipe_int(r, "adapt", "prior_images");
    s->task.prior_weight = (float)qa_recipe_float(r, "adapt", "prior_weight");
    s->train = (qa_train_spec){.steps = qa_recipe_int(r, "train", "steps"), .warmup = qa_recipe_int(r, "train", "warmup"),
                               .batch = (int)qa_recipe_int(r, "train", "batch"), .lr = (float)qa_recipe_float(r, "train", "lr"),
                               .weight_decay = (float)qa_recipe_float(r, "train", "weight_decay"),
                               .clip = (float)qa_recipe_float(r, "train", "clip"),
                               .cosine = strcmp(qa_recipe_str(r, "train", "schedule"), "cosine") == 0,
                               .inject_nan_step = qa_recipe_int(r, "train", "inject_nan_step"),
                               .dtype = train_dtype(r)};
    s->distill = strcmp(qa_recipe_str(r, "train", "objective"), "distill") == 0;
    s->eval = (qa_eval_spec){.samples = (int)qa_recipe_int(r, "eval", "samples"), .ddim_steps = (int)qa_recipe_int(r, "eval", "ddim_steps"),
                             .guidance = (float)qa_recipe_float(r, "eval", "guidance"),
                             .prior_samples = (int)qa_recipe_int(r, "eval", "prior_samples"),
                             .fid_samples = (int)qa_recipe_int(r, "eval", "fid_samples"),
                             .fid_reference = (int)qa_recipe_int(r, "eval", "fid_reference"),
                             .loss_images = (int)qa_recipe_int(r, "eval", "loss_images"),
                             .loss_draws = (int)qa_recipe_int(r, "eval", "loss_draws"),
                             .artifact = (int)qa_recipe_int(r, "eval", "artifact"),
                             .group_kernel = strcmp(qa_recipe_str(r, "eval", "group_kernel"), "u8s8") == 0};
    s->lora_scale = (float)qa_recipe_float(r, "adapt", "lora_scale");
    s->recipe_text = qa_recipe_text(r);
    s->recipe_path = qa_recipe_path(r);
}

/* The values a recipe gives option i of method m: its list, else the method's default. */
static int option_values(const qa_recipe *r, const qa_method *m, int i, const char *const **vals) {
    int n = qa_recipe_option_values(r, m->options[i].name, vals);
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
        qa_parse_bits(bits, &x->w_bits, &x->a_bits);
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

int qa_adapt_plan_first_of_cell(const qa_sweep_plan *plan, int i) {
    for (int j = 0; j < i; j++)
        if (plan->runs[j].role == QA_RUN_FINAL && !strcmp(plan->runs[j].cell, plan->runs[i].cell)) return 0;
    return 1;
}

/* A tuning run of final run f's cell: rate `multiplier` on tuning seed t. */
static void plan_tuning_run(qa_sweep_plan *plan, int f, double multiplier, int t, int *cap) {
    qa_run_spec *x = plan_append(plan, cap);
    const qa_run_spec *final = &plan->runs[f]; /* after the append: runs may have moved */
    *x = *final;
    x->role = QA_RUN_TUNING;
    x->seed = plan->tune.seeds[t];
    x->lr_multiplier = multiplier;
    x->train.lr = (float)(multiplier * final->method->reference_lr);
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
        if (!qa_adapt_plan_first_of_cell(plan, f)) continue;
        for (int k = 0; k < plan->tune.n_rates; k++)
            for (int t = 0; t < plan->tune.n_seeds; t++) plan_tuning_run(plan, f, plan->tune.rates[k], t, cap);
    }
}

void qa_adapt_plan_add_tuning(qa_sweep_plan *plan, int f, double multiplier) {
    for (int t = 0; t < plan->tune.n_seeds; t++) plan_tuning_run(plan, f, multiplier, t, &plan->cap);
}



static int cmp_rate(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* [tune] lr_grid: positive multipliers, each once, sorted ascending. */
static int read_tune_rates(const qa_recipe *r, qa_tune_spec *t, qa_error *err) {
    const char *const *vals;
    t->n_rates = qa_recipe_values(r, "tune", "lr_grid", &vals);
    if (t->n_rates > QA_MAX_TUNE_RATES)
        return qa_recipe_key_fail(r, "tune", "lr_grid", err, "%d rates, at most %d", t->n_rates, QA_MAX_TUNE_RATES);
    for (int i = 0; i < t->n_rates; i++) {
        t->rates[i] = strtod(vals[i], NULL);
        if (!(t->rates[i] > 0))
            return qa_recipe_key_fail(r, "tune", "lr_grid", err,
                                    "'%s': the rates must be positive (multiples of each method's reference rate)", vals[i]);
    }
    qsort(t->rates, (size_t)t->n_rates, sizeof(double), cmp_rate); /* distinct: the parser refuses repeats */
    return QA_OK;
}

/* [tune] seeds: given, and none of them an evaluation seed. */
static int read_tune_seeds(const qa_recipe *r, qa_tune_spec *t, qa_error *err) {
    const char *const *vals, *const *eval_seeds;
    t->n_seeds = qa_recipe_values(r, "tune", "seeds", &vals);
    if (t->n_seeds == 0)
        return qa_recipe_key_fail(r, "tune", "lr_grid", err, "a tuning stage needs its seeds ([tune] seeds = [...], "
                                "disjoint from [adapt] seed)");
    if (t->n_seeds > QA_MAX_TUNE_SEEDS)
        return qa_recipe_key_fail(r, "tune", "seeds", err, "%d seeds, at most %d", t->n_seeds, QA_MAX_TUNE_SEEDS);
    int n_eval = qa_recipe_values(r, "adapt", "seed", &eval_seeds);
    for (int i = 0; i < t->n_seeds; i++) {
        t->seeds[i] = atol(vals[i]);
        for (int j = 0; j < n_eval; j++)
            if (t->seeds[i] == atol(eval_seeds[j]))
                return qa_recipe_key_fail(r, "tune", "seeds", err,
                                        "seed %ld is also an evaluation seed ([adapt] seed): a validation item must "
                                        "never be a reported item", t->seeds[i]);
    }
    return QA_OK;
}

/* [tune] metric: one the task measures. */
static int read_tune_metric(const qa_recipe *r, qa_tune_spec *t, qa_task_kind task, qa_error *err) {
    const char *name = qa_recipe_str(r, "tune", "metric");
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
        return qa_recipe_key_fail(r, "tune", "metric", err, "the %s task does not measure %s", qa_task_names[task], name);
    return QA_OK;
}

/* The tuning stage of the recipe, checked (t->n_rates = 0: none). */
static int read_tune(const qa_recipe *r, const qa_sweep_settings *s, qa_tune_spec *t, qa_error *err) {
    memset(t, 0, sizeof *t);
    const char *other[] = {"seeds", "metric", "steps", "extend", "within"};
    if (!qa_recipe_has(r, "tune", "lr_grid")) {
        for (int i = 0; i < 5; i++)
            if (qa_recipe_has(r, "tune", other[i]))
                return qa_recipe_key_fail(r, "tune", other[i], err, "set without a tuning grid ([tune] lr_grid)");
        return QA_OK;
    }
    if (qa_recipe_has(r, "train", "lr"))
        return qa_recipe_key_fail(r, "train", "lr", err, "the recipe tunes the rate of each cell ([tune] lr_grid): "
                                "remove [train] lr");
    int rc = read_tune_rates(r, t, err);
    if (!rc) rc = read_tune_seeds(r, t, err);
    if (!rc) rc = read_tune_metric(r, t, s->task.kind, err);
    t->steps = qa_recipe_int(r, "tune", "steps") > 0 ? qa_recipe_int(r, "tune", "steps") : s->train.steps;
    t->extend = (int)qa_recipe_int(r, "tune", "extend");
    t->within = qa_recipe_float(r, "tune", "within");
    if (!rc && t->extend > 0 && t->n_rates < 2)
        rc = qa_recipe_key_fail(r, "tune", "extend", err, "the extension steps by the grid's spacing: it needs at least "
                                "2 rates in [tune] lr_grid (there is %d)", t->n_rates);
    if (!rc && t->n_rates + t->extend > QA_MAX_TUNE_RATES)
        rc = qa_recipe_key_fail(r, "tune", "extend", err, "%d grid rates + %d extension rates: at most %d in all",
                                t->n_rates, t->extend, QA_MAX_TUNE_RATES);
    return rc;
}

/* Every method of a tuned recipe declares its reference rate. */
static int check_tunable(const qa_recipe *r, const char *const *methods, int nm, qa_error *err) {
    for (int m = 0; m < nm; m++) {
        const qa_method *meth = qa_method_find(methods[m]);
        if (meth && !(meth->reference_lr > 0))
            return qa_recipe_key_fail(r, "adapt", "method", err, "%s declares no reference learning rate "
                                    "(qa_method.reference_lr), so [tune] cannot place its grid", meth->name);
    }
    return QA_OK;
}

int qa_adapt_plan(const qa_recipe *r, qa_sweep_plan *plan, qa_error *err) {
    memset(plan, 0, sizeof *plan);
    const char *const *methods, *const *bits, *const *ranks, *const *seeds;
    int nm = qa_recipe_values(r, "adapt", "method", &methods);
    int nb = qa_recipe_values(r, "adapt", "bits", &bits);
    int nr = qa_recipe_values(r, "adapt", "rank", &ranks);
    int ns = qa_recipe_values(r, "adapt", "seed", &seeds);
    if (nm * nb * nr * ns == 0) return qa_fail(err, QA_ERR_INPUT, "%s: the grid is empty", qa_recipe_path(r));
    sweep_settings(r, &plan->settings);
    int rc = read_tune(r, &plan->settings, &plan->tune, err);
    if (!rc && plan->tune.n_rates) rc = check_tunable(r, methods, nm, err);
    if (rc) return rc;
    plan->settings.validation_split = plan->tune.n_rates > 0;
    int cap = 0;
    for (int s = 0; s < ns; s++)
        for (int m = 0; m < nm; m++)
            for (int b = 0; b < nb; b++)
                for (int q = 0; q < nr; q++) {
                    const qa_method *meth = qa_method_find(methods[m]);
                    QA_ASSERT(meth); /* validated by the recipe parser */
                    int w_bits, a_bits;
                    qa_parse_bits(bits[b], &w_bits, &a_bits);
                    if (meth->needs_weight_bits && w_bits == 0) {
                        if (s == 0 && q == 0)
                            fprintf(stderr, "%s: %s at bits %s left out (it needs integer weights)\n", qa_recipe_path(r),
                                    meth->name, bits[b]);
                        continue;
                    }
                    plan_method(r, plan, meth, bits[b], atoi(ranks[q]), atol(seeds[s]), &cap);
                }
    if (plan->n == 0) {
        qa_adapt_plan_free(plan);
        return qa_fail(err, QA_ERR_INPUT, "%s: no run left in the grid (every method needs integer weights)", qa_recipe_path(r));
    }
    if (plan->tune.n_rates) plan_tuning(plan, &cap);
    plan->cap = cap;
    return plan->n;
}

void qa_adapt_plan_free(qa_sweep_plan *plan) {
    for (int i = 0; i < plan->n; i++) {
        qa_free(plan->runs[i].id);
        qa_free(plan->runs[i].cell);
        qa_free(plan->runs[i].options);
    }
    free(plan->runs);
    memset(plan, 0, sizeof *plan);
}

void qa_adapt_plan_print(const qa_sweep_plan *plan, const char *recipe_path, const qa_shard *shard, FILE *out) {
    const qa_tune_spec *t = &plan->tune;
    int n_final = plan->n - plan->n_tuning;
    fprintf(out, "%s: %d runs: %d final", recipe_path, plan->n, n_final);
    if (t->n_rates) {
        fprintf(out, " (each at its cell's tuned rate), %d tuning (%d cells x %d rates x %d seeds, %ld steps, chosen by %s",
                plan->n_tuning, plan->n_tuning / (t->n_rates * t->n_seeds), t->n_rates, t->n_seeds, t->steps,
                qa_tune_metric_names[t->metric]);
        if (t->within > 0) fprintf(out, ": the smallest rate within %g of the best", t->within);
        fputc(')', out);
    }
    if (t->extend)
        fprintf(out, ", then up to %d x %d x %d extension runs (a rate past the grid's end, per round, for each cell "
                "whose best rate is at the end of those it tried)", t->extend, plan->n_tuning / (t->n_rates * t->n_seeds),
                t->n_seeds);
    if (shard && shard->count > 1)
        fprintf(out, "; %d in shard %d/%d (%s)", qa_shard_size(shard, plan->n), shard->rank, shard->count, shard->source);
    fprintf(out, "\n");
    for (int i = 0; i < plan->n; i++)
        if (!shard || qa_shard_owns(shard, i))
            fprintf(out, "  %s%s\n", plan->runs[i].role == QA_RUN_TUNING ? "tune/" : "", plan->runs[i].id);
}
