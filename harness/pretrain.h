/* Pre-training jobs: the base denoiser (kind = pretrain) and the evaluator (kind = evaluator).
 * Each writes one checkpoint (HDF5) with its recipe and provenance, and saves a snapshot every
 * few minutes so a killed job keeps its progress (it restarts from scratch, documented). The
 * denoiser trains in the loop adaptation uses (train.h). */
#ifndef QA_PRETRAIN_H
#define QA_PRETRAIN_H

#include "harness/recipe.h"
#include "harness/shard.h"

/* reduce: NULL for one process; under mpirun, the ranks' gradient sum (qa_mpi_grad_reducer):
 * each rank trains its slice of every batch (train.h), and rank 0 alone logs and writes the
 * checkpoint. Every rank calls it. */
int qa_pretrain_dit(const qa_recipe *r, const char *out_path, const qa_grad_reducer *reduce, qa_error *err);
int qa_pretrain_evaluator(const qa_recipe *r, const char *out_path, qa_error *err);

#endif
