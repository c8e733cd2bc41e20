/* One adaptation run as a pipeline of small steps:
 *   prepare   a fresh copy of the pre-trained base, the task's slot bound, the frozen base
 *             quantized, the attention projections wrapped with the method
 *   train     the shared training loop (train.h) on the task's batches, or distillation
 *   deploy    merge every adapted layer (deploy.h), PTQ where the merge ends in float
 *   evaluate  each deployed variant (evaluate.h)
 *   record    everything into <out>/<run>.h5 (record.h)
 * The run's settings arrive as typed specs; this unit never reads the recipe. */
#ifndef QA_RUN_H
#define QA_RUN_H

#include "harness/evaluate.h"
#include "harness/record.h"
#include "harness/registry.h"
#include "harness/task.h"
#include "harness/train.h"

/* What every run of a sweep shares, from the recipe. */
typedef struct {
    qa_data_spec data;
    const char *checkpoint;  /* the pre-trained denoiser */
    const char *evaluator;   /* the evaluator classifier */
    qa_task_spec task;
    qa_train_spec train;
    int distill;             /* objective: 0 the task's loss, 1 distillation from the FP base */
    qa_eval_spec eval;
    float lora_scale;
    int validation_split;    /* 1 (a tuned recipe): tuning runs score the held-out loss and FID
                              * on validation test images, disjoint from the reported ones */
    const char *recipe_text, *recipe_path;
} qa_sweep_settings;

/* What a run is for: a final run is reported; a tuning run only chooses the learning rate of its
 * cell (on tuning seeds, scored by the validation metric) and is kept apart (tune/ in the
 * results folder). Append-only; names checked against COUNT. */
typedef enum { QA_RUN_FINAL = 0, QA_RUN_TUNING, QA_RUN_ROLE_COUNT } qa_run_role;
extern const char *const qa_run_role_names[QA_RUN_ROLE_COUNT];

/* One run of the grid. */
typedef struct {
    char *id;                /* <method>-<bits>-r<rank>[-<option axes>][-lr<rate> (tuning)]-s<seed>, owned */
    char *cell;              /* the id without its seed (and rate): the runs one tuned rate serves, owned */
    const qa_method *method;
    const char *bits;        /* "fp", "w8a8", ... */
    int w_bits, a_bits, rank;
    long seed;
    void *options;           /* the method's options struct (method->options_size bytes), owned */
    qa_run_role role;
    /* The run's budget and peak rate: the sweep's [train], with train.lr = lr_multiplier x the
     * method's reference rate when the recipe tunes (a grid point for a tuning run, the cell's
     * chosen rate for a final run: 0 until the tuning stage has chosen), else the recipe's lr;
     * a tuning run's steps may be [tune] steps. */
    qa_train_spec train;
    double lr_multiplier;    /* 0: the recipe's lr, not tuned */
    const qa_sweep_settings *settings;
} qa_run_spec;

/* Options of one method at most (the run id and the grid walk them). */
#define QA_MAX_METHOD_OPTIONS 16

/* What the runs of a sweep use and load once: the model (reset by every run from base_params),
 * the FP teacher (distillation, else NULL), the training images, the references of scoring. */
typedef struct {
    qa_dit *model;
    const float *base_params;
    qa_dit *teacher;
    const qa_images *train;
    qa_schedule sched;
    qa_eval_refs refs;
} qa_run_env;

/* The run's rate and role as numeric run attributes (written beside the method's options):
 * learning_rate (the peak rate it trained at), lr_multiplier (of the method's reference rate; 0:
 * the recipe's lr, untuned), lr_reference (the method's reference rate), tuning_run (1: a tuning
 * run). Fills out[QA_RUN_RATE_ATTRS]; returns QA_RUN_RATE_ATTRS. */
#define QA_RUN_RATE_ATTRS 5
int qa_run_rate_attrs(const qa_run_spec *run, qa_record_attr *out);

/* Run one run into out_dir/<id>.h5. *diverged: the run stopped on a non-finite loss or gradient
 * (recorded, not evaluated). */
int qa_run_one(qa_run_env *env, const qa_run_spec *run, const qa_task *t, const char *out_dir, int *diverged,
               qa_error *err);

#endif
