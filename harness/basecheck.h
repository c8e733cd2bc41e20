/* How good is the pre-trained base? For each of the 10 classes, sample n images with guidance
 * and ask the evaluator which class each one shows. The bar (the foundation issue): the share
 * classified as the class asked for reaches 85% of the evaluator's own accuracy on real test
 * images, and no class falls below half of its real-image accuracy. Writes a markdown table to
 * `out`, out_dir/basecheck.{h5,md} and a sample grid out_dir/base_samples.{png,svg}. */
#ifndef QA_BASECHECK_H
#define QA_BASECHECK_H

#include <stdio.h>

#include "harness/util.h"

typedef struct {
    const char *checkpoint, *evaluator, *out_dir;
    int samples_per_class, ddim_steps;
    float guidance;
    unsigned long seed;
} qa_basecheck_opts;

/* Returns 0 when computed (whether or not the bar is met: *passed says), an error otherwise. */
int qa_base_check(const qa_basecheck_opts *o, FILE *out, int *passed, qa_error *err);

#endif
