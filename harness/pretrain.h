/* Pre-training jobs: the base denoiser (kind = pretrain) and the evaluator (kind = evaluator).
 * Each writes one checkpoint (HDF5) with its recipe and provenance, and saves a snapshot every
 * few minutes so a killed job keeps its progress (it restarts from scratch, documented). */
#ifndef QA_PRETRAIN_H
#define QA_PRETRAIN_H

#include "datasets/dataset.h"
#include "harness/model.h"
#include "harness/recipe.h"

int pretrain_dit(const qa_recipe *r, const char *out_path, qa_error *err);
int pretrain_evaluator(const qa_recipe *r, const char *out_path, qa_error *err);

/* Learning rate at a step: linear warm-up, then constant or cosine to 10% at total. */
/* Training images per the recipe's [data] section (Fashion-MNIST, or synthetic for tests). */
int load_training_images(const qa_recipe *r, const char *split, qa_images *im, qa_error *err);
qa_dit_config dit_config_from_recipe(const qa_recipe *r);

float lr_at(float peak, long step, long warmup, long total, int cosine);

#endif
