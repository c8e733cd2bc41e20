/* Reading a results folder back: every finished <run>.h5 (never a .partial) into plain records,
 * for the report and the plots. */
#ifndef QA_RUNS_H
#define QA_RUNS_H

#include <stdint.h>

#include "harness/schema.h"
#include "harness/util.h"

#define QA_MAX_VARIANTS 4
#define QA_RUN_MAX_STATS 8

/* Every string below is allocated (no length limit); runs_free frees them. Which attribute
 * fills which member is declared in the run schema (schema.h). */
typedef struct {
    char *variant;                /* "fp" (float deploy) | "int" (integer deploy) | a method's own */
    double heldout_loss, heldout_loss_se, subject_fidelity, subject_fidelity_se; /* subject 0: not measured */
    double prompt_fidelity, prompt_fidelity_se, bits_per_weight, sampling_ms, eval_seconds;
    double diversity, prior_preservation; /* prior_preservation < 0: not measured */
    double style_score, fid;              /* fid < 0: not measured (domain task only) */
    double subject_floor, subject_gain, identification, prior_distance; /* see measured */
    unsigned measured;            /* bit m: metric m (MET_*) is in the file */
    double *heldout_per_image;
    int n_images;
} qa_run_eval;

/* The file's provenance (its "/" attributes). */
typedef struct {
    char *harness_version, *git_commit, *recipe, *recipe_path, *created, *host_cpu, *onednn, *onednn_kernels, *hdf5;
    double host_cores, seed, reference_kernels;
} qa_run_provenance;

typedef struct {
    char *file, *id;
    int format_version;           /* 1: written before run files recorded their version */
    qa_run_provenance provenance;
    char *method, *bits, *status, *fail_reason, *merge, *task, *objective, *method_note, *method_notes;
    char *dtype;                  /* the training matmuls' arithmetic ("f32" when the file predates it) */
    char *deploy_kernel;          /* the adapted layers' kernel in the INT deploy ("" when not recorded) */
    int rank, w_bits, a_bits, item_class, slot, needs_ptq, method_version, int8_kernel_layers;
    long seed, fail_step;
    double learning_rate;         /* the rate it trained at; NaN: not recorded (older files) */
    qa_run_eval eval[QA_MAX_VARIANTS];
    int n_eval;
    double *train;                /* [n_train, 5]: step, loss, lr, grad_norm, seconds */
    int n_train;
    double frozen_bytes, trainable_bytes, gradient_bytes, optimizer_bytes, activation_bytes, deployed_bytes, peak_rss_bytes;
    double activation_batch;      /* the batch activation_bytes is for */
    char *peak_rss_scope;
    double step_ms, train_seconds, merge_seconds; /* median training step; training; merge (+ PTQ) */
    double artifact_file_bytes, artifact_payload_bytes, artifact_weights; /* 0: no artifact written */
    int artifact_float_layers;
    char *axes;                   /* the grid axes beyond method, bits, rank and seed (from the id), e.g. "a1.5" */
    int n_stats;                  /* the method's own measurements (<run>/method_stats) */
    char *stat_name[QA_RUN_MAX_STATS];
    double stat_value[QA_RUN_MAX_STATS];
} qa_run_record;

/* A file of the folder that runs_scan left out, and why. */
typedef struct {
    char *file, *why;
} qa_run_skipped;

/* Load the runs of dir sorted by id in natural order (r2 before r16); a damaged or foreign
 * file is an error naming it, a file of a newer format version bad input naming both versions. */
int qa_runs_load(const char *dir, qa_run_record **out, int *n, qa_error *err);
/* The same, but a damaged or foreign .h5 (not HDF5, no single run under /runs, a field of the
 * wrong type or shape) is left out with a warning on stderr and listed in *skipped. A file of a
 * newer format version is still an error. */
int qa_runs_scan(const char *dir, qa_run_record **out, int *n, qa_run_skipped **skipped, int *n_skipped, qa_error *err);
/* One run file (path), read as runs_load does; free it with runs_record_free. */
int qa_runs_load_file(const char *path, qa_run_record *rec, qa_error *err);
void qa_runs_record_free(qa_run_record *rec);
/* Read path as runs_load_file does (every dataset's shape and checksum included) and keep
 * nothing: QA_OK, or the error with *damaged = 1 when the file is not a readable run file, 0 when
 * it is one of a newer format version (not damaged: a newer harness reads it). */
int qa_runs_check_file(const char *path, int *damaged, qa_error *err);
void qa_runs_free(qa_run_record *runs, int n);
/* Metric m (MET_*) of an evaluated variant into *value; 0 when the file says it was not measured. */
int qa_runs_eval_metric(const qa_run_eval *e, int m, double *value);
void qa_runs_skipped_free(qa_run_skipped *skipped, int n);
/* Read one group's uint8 samples [n,28,28] ("fp", "int" or "references"); caller frees. */
int qa_runs_samples(const qa_run_record *run, const char *which, uint8_t **pix, int *n, qa_error *err);

#endif
