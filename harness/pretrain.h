/* Pre-training jobs: the base denoiser (kind = pretrain) and the evaluator (kind = evaluator).
 * Each writes one checkpoint (HDF5) with its recipe and provenance, and saves a snapshot every
 * few minutes so a killed job keeps its progress (it restarts from scratch, documented). The
 * denoiser trains in the loop adaptation uses (train.h). */
#ifndef QA_PRETRAIN_H
#define QA_PRETRAIN_H

#include "harness/recipe.h"

int pretrain_dit(const qa_recipe *r, const char *out_path, qa_error *err);
int pretrain_evaluator(const qa_recipe *r, const char *out_path, qa_error *err);

#endif
