#include "harness/adapt.h"

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

/* [train] dtype (validated by the recipe parser). */
static qa_dtype train_dtype(const qa_recipe *r) {
    qa_dtype d = QA_DTYPE_F32;
    int rc = qa_dtype_parse(recipe_str(r, "train", "dtype"), &d);
    QA_ASSERT(rc == QA_OK);
    return d;
}

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
                               .inject_nan_step = recipe_int(r, "train", "inject_nan_step"),
                               .dtype = train_dtype(r)};
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

/* Runs of the shard still to do (*pending); a finished run made by another recipe is an error. */
static int count_pending(const qa_recipe *r, const qa_sweep_plan *plan, const qa_shard *shard, const char *out_dir,
                         int *pending, qa_error *err) {
    *pending = 0;
    for (int i = 0; i < plan->n; i++) {
        if (!qa_shard_owns(shard, i)) continue;
        char *p = run_file(out_dir, &plan->runs[i]);
        int rc = QA_OK;
        if (qa_file_exists(p)) rc = check_same_recipe(r, p, err);
        else (*pending)++;
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

/* One process's side of a sweep: its plan, what it loaded (on its first unfinished run), and
 * its progress. Under a shared plan, rank 0 calls run_owned from its second thread while the
 * main thread only talks to the other ranks: one thread at a time touches this. */
typedef struct {
    const qa_recipe *r;
    const char *out_dir;
    qa_sweep_plan plan;
    const qa_shard *shard;
    sweep_env e;
    int loaded, load_rc;
    qa_error load_err;
    qa_task *tasks;
    int n_tasks, done, skipped, input_failed;
    qa_progress prog;
} sweep_state;

/* qa_run_index_fn over the shard's runs: local index k is plan index shard.rank + k * shard.count.
 * A run finished already (a resumed sweep) is skipped; a run that fails does not stop the
 * others, except that after a bad-input failure (the same for every run) the rest are not tried. */
static int run_owned(void *ctx, int k, qa_error *err) {
    sweep_state *st = ctx;
    const qa_run_spec *run = &st->plan.runs[st->shard->rank + k * st->shard->count];
    char *p = run_file(st->out_dir, run);
    int finished = qa_file_exists(p);
    qa_free(p);
    if (finished) { st->skipped++; return QA_OK; }
    if (st->input_failed) return qa_fail(err, QA_ERR_INPUT, "%s not run: an earlier run failed on bad input", run->id);
    if (!st->loaded) {
        st->loaded = 1;
        st->load_rc = sweep_load(&st->plan.settings, &st->e, &st->load_err);
        st->tasks = qa_alloc(sizeof(qa_task) * (size_t)st->plan.n);
    }
    if (st->load_rc) {
        st->input_failed = st->load_rc == QA_ERR_INPUT;
        return qa_fail(err, st->load_rc, "%s", st->load_err.msg);
    }
    const qa_task *t = task_of(&st->e, &st->plan.settings, run->seed, st->tasks, &st->n_tasks);
    int diverged = 0;
    double t0 = qa_now();
    int rc = qa_run_one(&st->e.env, run, t, st->out_dir, &diverged, err);
    st->done++;
    if (rc) {
        fprintf(stderr, "run %s failed%s%s: %s\n", run->id, st->prog.who[0] ? " on" : "", st->prog.who, err->msg);
        st->input_failed = rc == QA_ERR_INPUT;
        /* the message that travels to rank 0 names the run */
        qa_error named = *err;
        snprintf(err->msg, sizeof err->msg, "%s: %.*s", run->id, (int)sizeof err->msg - 200, named.msg);
    } else {
        progress_log(&st->prog, st->done, "%s %s in %.0fs", run->id, diverged ? "diverged" : "done", qa_now() - t0);
    }
    return rc;
}

static void sweep_state_free(sweep_state *st) {
    if (st->loaded) {
        for (int j = 0; j < st->n_tasks; j++) qa_task_free(&st->tasks[j]);
        qa_free(st->tasks);
        if (!st->load_rc) sweep_unload(&st->e);
    }
    adapt_plan_free(&st->plan);
}

/* The first failure's code in the outcomes (bad input before a failed run), or QA_OK. */
static int failure_code(const qa_run_outcome *outcomes, int n, int input_failed) {
    for (int k = 0; k < n; k++)
        if (outcomes[k].status == QA_RUN_FAILED) return input_failed ? QA_ERR_INPUT : QA_ERR_RUN;
    return QA_OK;
}

int adapt_sweep_sched(const qa_recipe *r, const char *out_dir, int wait, const qa_sweep_sched *sched, qa_error *err) {
    qa_sweep_sched alone = {.shard = qa_shard_whole(), .rank = 0, .size = 1};
    if (!sched) sched = &alone;
    const int shared = sched->share && sched->size > 1;
    sweep_state st;
    memset(&st, 0, sizeof st);
    st.r = r;
    st.out_dir = out_dir;
    st.shard = &sched->shard;
    int n = adapt_plan(r, &st.plan, err);
    if (n < 0) return n;
    const int n_owned = qa_shard_size(&sched->shard, n);
    /* rank 0 (or the one process) locks the folder and counts what is left; every rank then
     * hears whether it may start */
    qa_lock *lock = NULL;
    int pending = 0, rc = QA_OK;
    if (sched->rank == 0) {
        rc = qa_lock_acquire_shard(out_dir, sched->shard.rank, sched->shard.count, wait, &lock, err);
        if (!rc) rc = count_pending(r, &st.plan, &sched->shard, out_dir, &pending, err);
        if (!rc && pending > 0) { /* a missing checkpoint is bad input, said once, before any run */
            st.loaded = 1;
            st.load_rc = sweep_load(&st.plan.settings, &st.e, &st.load_err);
            st.tasks = qa_alloc(sizeof(qa_task) * (size_t)n);
            if (st.load_rc) { *err = st.load_err; rc = st.load_rc; }
        }
    }
    if (shared) {
        int rank0 = sched->agree(sched->ctx, rc);
        if (rank0 && sched->rank != 0)
            rc = qa_fail(err, rank0, "rank %d: rank 0 could not start the sweep (its message says why)", sched->rank);
    }
    if (rc) { sweep_state_free(&st); qa_lock_release(lock); return rc; }
    char who[64] = "";
    if (sched->shard.count > 1) snprintf(who, sizeof who, " shard %d/%d", sched->shard.rank, sched->shard.count);
    if (shared) snprintf(who + strlen(who), sizeof who - strlen(who), " rank %d/%d", sched->rank, sched->size);
    if (sched->rank == 0) {
        fprintf(stderr, "%s: %d runs", recipe_path(r), n);
        if (sched->shard.count > 1) fprintf(stderr, ", %d in shard %d/%d (%s)", n_owned, sched->shard.rank,
                                            sched->shard.count, sched->shard.source);
        fprintf(stderr, ", %d finished already, %d to do%s -> %s\n", n_owned - pending, pending,
                shared ? " over the ranks" : "", out_dir);
    }
    if (!shared && pending == 0) { sweep_state_free(&st); qa_lock_release(lock); return QA_OK; }
    /* under a shared plan every rank's count is its own; the ETA assumes the ranks keep pace */
    progress_begin(&st.prog, "sweep", pending > 0 ? pending : n_owned);
    progress_share(&st.prog, who, shared ? sched->size : 1);
    qa_run_outcome *outcomes = qa_alloc(sizeof(qa_run_outcome) * (size_t)(n_owned > 0 ? n_owned : 1));
    if (shared) {
        rc = sched->share(sched->ctx, n_owned, run_owned, &st, outcomes, err);
    } else {
        qa_shard whole = qa_shard_whole();
        rc = qa_shard_run(&whole, n_owned, run_owned, &st, outcomes, err);
    }
    progress_end(&st.prog);
    /* outcome indices are the shard's: say them as plan indices and run ids */
    if (rc == QA_ERR_RUN && sched->rank == 0) {
        int failed = 0;
        for (int k = 0; k < n_owned; k++) failed += outcomes[k].status == QA_RUN_FAILED;
        if (failed) {
            int code = failure_code(outcomes, n_owned, st.input_failed);
            char list[768] = "";
            size_t used = 0;
            for (int k = 0, named = 0; k < n_owned && named < 3; k++) {
                if (outcomes[k].status != QA_RUN_FAILED) continue;
                named++;
                char where[32] = "";
                if (shared) snprintf(where, sizeof where, " on rank %d", outcomes[k].rank);
                used += (size_t)snprintf(list + used, sizeof list - used, "%s run %d%s, %.300s", named > 1 ? ";" : "",
                                         sched->shard.rank + k * sched->shard.count, where, outcomes[k].msg);
                if (used >= sizeof list) break;
            }
            qa_fail(err, code, "%d of %d runs failed (see the messages above):%s%s", failed, pending, list,
                    failed > 3 ? "; ..." : "");
            rc = code;
        }
    }
    qa_free(outcomes);
    sweep_state_free(&st);
    qa_lock_release(lock);
    return rc;
}

/* One sweep per folder (a second one truncated this one's files): the lock is held around the
 * whole sweep, and its release syncs the folder, where the finished runs were renamed. */
int adapt_sweep_wait(const qa_recipe *r, const char *out_dir, int wait, qa_error *err) {
    return adapt_sweep_sched(r, out_dir, wait, NULL, err);
}

int adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err) { return adapt_sweep_wait(r, out_dir, 0, err); }
