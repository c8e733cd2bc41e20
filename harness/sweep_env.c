#include "harness/sweep_env.h"

#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/classifier.h"
#include "harness/checkpoint.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/model.h"

void qa_sweep_env_unload(qa_sweep_env *e) {
    qa_free(e->base_params);
    qa_free(e->fid_ref_feat);
    qa_free(e->fid_ref_feat_val);
    if (e->have_heldout) qa_heldout_free(&e->heldout);
    if (e->have_heldout_val) qa_heldout_free(&e->heldout_val);
    if (e->have_teacher) qa_dit_free(&e->teacher);
    if (e->have_train) qa_images_free(&e->train);
    if (e->have_test) qa_images_free(&e->test);
    if (e->have_clf) qa_clf_free(&e->clf);
    if (e->have_model) qa_dit_free(&e->model);
    memset(e, 0, sizeof *e);
}

int qa_sweep_env_load(const qa_sweep_settings *s, qa_sweep_env *e, qa_error *err) {
    memset(e, 0, sizeof *e);
    int B = s->train.batch, max_batch = B > 64 ? B : 64;
    int rc = qa_dit_load(s->checkpoint, &e->model, max_batch, err);
    if (rc) {
        if (err->code == QA_ERR_INPUT && !qa_file_exists(s->checkpoint))
            return qa_fail(err, QA_ERR_INPUT, "%s: pre-trained checkpoint not found (make it with: "
                           "build/qadapt run experiments/pretrain.recipe)", s->checkpoint);
        return rc;
    }
    e->have_model = 1;
    rc = qa_clf_load(s->evaluator, &e->clf, 128, err);
    e->have_clf = rc == 0;
    if (!rc) rc = qa_load_images(&s->data, "train", &e->train, err);
    e->have_train = e->have_clf && rc == 0;
    if (!rc) rc = qa_load_images(&s->data, "t10k", &e->test, err);
    e->have_test = e->have_train && rc == 0;
    if (!rc) rc = qa_heldout_init(&e->heldout, &e->test, s->eval.loss_images, s->eval.loss_draws, err);
    e->have_heldout = e->have_test && rc == 0;
    if (!rc && s->validation_split) {
        rc = qa_heldout_init_split(&e->heldout_val, &e->test, s->eval.loss_images, s->eval.loss_draws, 1, err);
        e->have_heldout_val = rc == 0;
    }
    if (!rc && s->distill) {
        rc = qa_dit_load(s->checkpoint, &e->teacher, max_batch, err);
        e->have_teacher = rc == 0;
    }
    if (!rc && s->task.kind == QA_TASK_DOMAIN) { /* computed once per sweep */
        e->env.refs.n_fid_ref = s->eval.fid_reference;
        e->fid_ref_feat = qa_task_fid_reference(&e->test, &e->clf, &e->env.refs.n_fid_ref);
        if (s->validation_split) { /* the next fid_reference test images */
            e->env_val.refs.n_fid_ref = s->eval.fid_reference;
            e->fid_ref_feat_val = qa_task_fid_reference_from(&e->test, &e->clf, e->env.refs.n_fid_ref, &e->env_val.refs.n_fid_ref);
            if (e->env_val.refs.n_fid_ref < e->env.refs.n_fid_ref)
                rc = qa_fail(err, QA_ERR_INPUT, "%s: a tuned recipe takes its tuning runs' FID against other test images "
                             "than the reported reference, so [eval] fid_reference = %d needs %d test images (there are "
                             "%d): set it to at most %d", s->recipe_path, s->eval.fid_reference, 2 * s->eval.fid_reference,
                             e->test.n, e->test.n / 2);
        }
    }
    if (rc) { qa_sweep_env_unload(e); return rc; }
    e->base_params = qa_alloc(sizeof(float) * e->model.n_params);
    memcpy(e->base_params, e->model.params, sizeof(float) * e->model.n_params);
    e->env.model = &e->model;
    e->env.base_params = e->base_params;
    e->env.teacher = e->have_teacher ? &e->teacher : NULL;
    e->env.train = &e->train;
    qa_schedule_default(&e->env.sched);
    e->env.refs.clf = &e->clf;
    e->env.refs.heldout = &e->heldout;
    e->env.refs.sched = &e->env.sched;
    e->env.refs.fid_ref_feat = e->fid_ref_feat;
    const int n_fid_val = e->env_val.refs.n_fid_ref;
    e->env_val = e->env;
    if (s->validation_split) {
        e->env_val.refs.heldout = &e->heldout_val;
        e->env_val.refs.fid_ref_feat = e->fid_ref_feat_val;
        e->env_val.refs.n_fid_ref = n_fid_val;
    }
    return QA_OK;
}

/* The task of a seed, built once and shared by every run of that seed (checked before the
 * sweep's first run by qa_sweep_env_check_tasks). */
const qa_task *qa_sweep_env_task(qa_sweep_env *e, const qa_sweep_settings *s, long seed, qa_task *tasks, int *n_tasks,
                              qa_error *err) {
    for (int j = 0; j < *n_tasks; j++) if (tasks[j].seed == seed) return &tasks[j];
    qa_dit_reset_slots(&e->model);
    memcpy(e->model.params, e->base_params, sizeof(float) * e->model.n_params);
    qa_task *t = &tasks[*n_tasks];
    if (qa_task_build(t, &s->task, seed, &e->model, &e->clf, &e->train, s->eval.ddim_steps, s->eval.guidance, err)) return NULL;
    (*n_tasks)++;
    return t;
}

/* Every seed's task can be made from the base and the training images, before any run trains:
 * a base without a spare slot is an error naming the checkpoint, too few images of a class one
 * naming the recipe and its train_limit. */
int qa_sweep_env_check_tasks(const qa_recipe *r, const qa_sweep_plan *plan, const qa_sweep_env *e, qa_error *err) {
    const qa_sweep_settings *s = &plan->settings;
    for (int i = 0; i < plan->n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = plan->runs[j].seed == plan->runs[i].seed;
        qa_error why = {0, ""};
        if (seen || qa_task_check(&s->task, plan->runs[i].seed, &e->model.cfg, &e->train, &why) == QA_OK) continue;
        if (s->task.kind != QA_TASK_DOMAIN && e->model.cfg.n_spare < 1)
            return qa_fail(err, QA_ERR_INPUT, "%s: %s: %s", qa_recipe_path(r), s->checkpoint, why.msg);
        if (s->data.train_limit > 0)
            return qa_fail(err, QA_ERR_INPUT, "%s: %s ([data] train_limit = %ld keeps only the first %ld training images: "
                           "raise it, or 0 for all)", qa_recipe_path(r), why.msg, s->data.train_limit, s->data.train_limit);
        return qa_fail(err, QA_ERR_INPUT, "%s: %s", qa_recipe_path(r), why.msg);
    }
    return QA_OK;
}
