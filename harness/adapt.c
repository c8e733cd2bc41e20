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
                return recipe_key_fail(r, "tune", "seeds", err, "the validation item of tuning seed %ld shares training "
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
        if (!rc) rc = qa_tune_apply(&plan, out_dir, err);
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
