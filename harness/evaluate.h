/* Scoring a deployed model, the evaluate step of a run: the paired held-out loss, samples of
 * the task's prompt (the bound slot; every class in turn for the domain task), subject and
 * prompt fidelity with their standard errors, style, diversity, FID (domain), prior
 * preservation and distance, and (subject) fidelity's floor, the gain over it, identification. The metrics themselves are in eval.h. */
#ifndef QA_EVALUATE_H
#define QA_EVALUATE_H

#include "harness/eval.h"
#include "harness/record.h"
#include "harness/task.h"

typedef struct {
    int samples;           /* generated samples per deployed model */
    int ddim_steps;
    float guidance;
    int prior_samples;     /* class-prompt samples for prior preservation (0: skip) */
    int fid_samples;       /* domain task: generated samples for FID */
    int fid_reference;     /* domain task: styled test images for the FID reference */
    int loss_images, loss_draws; /* the paired held-out loss */
    int artifact;          /* 1: write the deployed artifact and record its size */
    int group_kernel;      /* qa_group_kernel (deploy.h): the kernel of group-wise codes at A8 */
} qa_eval_spec;

/* What scoring compares against, shared by every run of a sweep. */
typedef struct {
    qa_classifier *clf;
    const qa_heldout *heldout;
    const qa_schedule *sched;
    const float *fid_ref_feat;   /* [n_fid_ref, F] (domain task), else NULL */
    int n_fid_ref;
} qa_eval_refs;

/* Score m as it is deployed now into out (variant and bits_per_weight are the caller's); the
 * sampler noise depends on the seed only, so every method draws from the same noise. out owns
 * its heldout_per_image and samples: free them with qa_evaluate_free. */
void qa_evaluate(qa_dit *m, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed,
                 qa_record_eval *out);
void qa_evaluate_free(qa_record_eval *ev);
/* Score the FP base's own samples once per task (a no-op when t->base is NULL or already
 * filled): the item's class under the eval-samples noise (the floor of subject fidelity) and
 * the class prompts of prior preservation (what the prior distance compares against). base is
 * the FP base model; the task's metrics with a floor need this before qa_evaluate. */
void qa_evaluate_base(qa_dit *base, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed);
/* One line on stderr: the run, the variant and its scores. */
void qa_evaluate_log(const char *run_id, const qa_record_eval *ev);

#endif
