/* What the runs of a sweep share and load once (the base denoiser, evaluator, data, held-out
 * set, teacher, FID reference), the tasks built from it (one per seed), and the check, before any
 * run trains, that every seed's task can be made. Used by the sweep (adapt.c). */
#ifndef QA_SWEEP_ENV_H
#define QA_SWEEP_ENV_H

#include "harness/adapt.h"

/* What the runs of a sweep load once: base denoiser, evaluator, data, held-out set, the FP
 * teacher (distillation) and the FID reference (domain). */
typedef struct {
    qa_dit model, teacher;
    int have_model, have_teacher, have_clf, have_train, have_test, have_heldout, have_heldout_val;
    qa_classifier clf;
    qa_images train, test;
    qa_heldout heldout, heldout_val;
    float *base_params, *fid_ref_feat, *fid_ref_feat_val;
    qa_run_env env;
    qa_run_env env_val;  /* a tuned recipe's tuning runs: env with the validation split's
                          * held-out set and FID reference (settings.validation_split) */
} qa_sweep_env;

int qa_sweep_env_load(const qa_sweep_settings *s, qa_sweep_env *e, qa_error *err);
void qa_sweep_env_unload(qa_sweep_env *e);
/* The task of a seed, built once into tasks[] (of which *n_tasks are built) and shared by every
 * run of that seed; NULL with err when it cannot be made. */
const qa_task *qa_sweep_env_task(qa_sweep_env *e, const qa_sweep_settings *s, long seed, qa_task *tasks, int *n_tasks,
                                 qa_error *err);
/* Every seed's task of the plan can be made from the base and the training images: a base
 * without a spare slot is an error naming the checkpoint, too few images of a class one naming
 * the recipe and its train_limit. */
int qa_sweep_env_check_tasks(const qa_recipe *r, const qa_sweep_plan *plan, const qa_sweep_env *e, qa_error *err);

#endif
