/* Model checkpoints in HDF5: the config as root attributes, every parameter tensor under
 * /params/<name>, provenance (recipe, git commit, loss, wall time) as attributes.
 * Written to <path>.partial and renamed, so a killed writer never leaves a half file. Every tensor
 * carries a Fletcher-32 checksum, verified on load (files written before checksums load too);
 * a load checks the configuration against the model's limits before allocating, each tensor's
 * shape, and that every weight is finite. */
#ifndef QA_CHECKPOINT_H
#define QA_CHECKPOINT_H

#include "harness/model.h"
#include "harness/results.h"

typedef struct {
    const char *kind;          /* "dit" | "evaluator" */
    const char *recipe_text;
    double final_loss;
    double wall_seconds;
    long steps;
    double epochs;
    double test_accuracy;      /* evaluator only (negative = not set) */
} qa_ckpt_meta;

/* Save params [n] with the tensor table; extra attributes via meta. */
int qa_ckpt_save_tensors(const char *path, const qa_tensor_info *tensors, int n_tensors,
                      const float *params, const char *config_keys[], const double config_vals[],
                      int n_config, const qa_ckpt_meta *meta, qa_error *err);

int qa_dit_save(const char *path, const qa_dit *m, const float *params, const qa_ckpt_meta *meta,
             qa_error *err);
/* Read the config from a checkpoint, create the model (max_batch) and load its weights. */
int qa_dit_load(const char *path, qa_dit *m, int max_batch, qa_error *err);
/* Rewrite a checkpoint written before checksums (every tensor gets its Fletcher-32 checksum);
 * weights and attributes are copied as they are, plus checksums_added_by (this commit). */
int qa_ckpt_upgrade(const char *in_path, const char *out_path, qa_error *err);
/* Load named tensors into a table's block; every tensor must be present with its size. */
int qa_ckpt_load_tensors(qa_h5 *f, const qa_tensor_info *tensors, int n_tensors, float *params,
                      qa_error *err);

#endif
