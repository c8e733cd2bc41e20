/* Recording one run: the run file <out>/<run>.h5, written as <run>.h5.partial and renamed when
 * complete, so a killed sweep never leaves a file that looks finished.
 *
 * The file's layout (read back by runs.c):
 *   /                       provenance: harness version, commit, recipe, host, library versions
 *   /runs/<id>              the run's axes and status ("running" | "diverged" | "done")
 *   /runs/<id>/train        table [steps, 5]: step, loss, lr, grad_norm, seconds
 *   /runs/<id>/eval/<v>     metrics of deploy variant v ("fp", "int", a method's extra variant)
 *   /runs/<id>/memory       bytes by category, artifact size
 *   /runs/<id>/timing       training step, training and merge wall time
 *   /runs/<id>/method_stats the method's own measurements, pooled over layers
 *   /runs/<id>/samples/<v>  uint8 [n, 28, 28] samples of each variant, and the references
 * Every dataset (the training table, held-out losses, samples) carries a Fletcher-32 checksum
 * that each read verifies; files written before them read unchecked.
 * The pipeline hands plain structs of values; which value goes to which attribute is declared
 * once, in the run schema (schema.h), and this unit writes by iterating it. */
#ifndef QA_RECORD_H
#define QA_RECORD_H

#include "harness/artifact.h"
#include "harness/util.h"

typedef struct qa_record qa_record;

/* A numeric attribute of the run group, e.g. one of the method's options. */
typedef struct {
    const char *name;
    double value;
} qa_record_attr;

/* What /runs/<id> says about the run, and the provenance of the file's root. */
typedef struct {
    const char *id, *method, *bits, *task, *objective;
    const char *dtype;             /* the training matmuls' arithmetic: "f32" | "bf16" */
    int w_bits, a_bits, rank;
    long seed;
    int item_class, slot;          /* -1: no item class (style, domain), no bound slot (domain) */
    int method_version;
    const qa_record_attr *options; /* [n_options] written after method_version */
    int n_options;
    const char *recipe_text, *recipe_path;
    const float *references;       /* [n_references, 784] in [-1, 1] (the item images), or NULL */
    int n_references;
} qa_record_run;

/* The merge of the adapted layers, as the deploy step measured it. */
typedef struct {
    const char *merge_arithmetic;  /* qa_merge_names[...] */
    int needs_ptq;
    const char *method_note;       /* the first layer's note; NULL or "": none */
    const char *method_notes;      /* every adapted layer's note, one a line (written with method_note) */
    int n_stats;                   /* the method's own measurements, pooled over layers */
    const char *const *stat_name;
    const double *stat_value;
} qa_record_merge;

/* The scores of one deployed variant. A negative subject_fidelity, fid or prior_preservation
 * means "not measured" and is not written. */
typedef struct {
    const char *variant;
    double heldout_loss, heldout_loss_se;
    double subject_fidelity, subject_fidelity_se;
    double prompt_fidelity, prompt_fidelity_se;
    double style_score, diversity, fid, prior_preservation;
    /* negative: not measured (subject_gain is written with subject_floor) */
    double subject_floor, subject_gain, identification, prior_distance;
    double bits_per_weight, eval_seconds, sampling_ms_per_image;
    const double *heldout_per_image; /* [n_heldout] */
    int n_heldout;
    const float *samples;          /* [n_samples, 784] in [-1, 1] */
    int n_samples;
} qa_record_eval;

/* The file's provenance ("/" attributes), gathered by qa_record_begin. */
typedef struct {
    double format_version;         /* QA_RUN_FORMAT_VERSION */
    const char *harness_version, *git_commit, *recipe, *recipe_path, *created, *host_cpu;
    double host_cores;
    const char *onednn, *hdf5;
    double seed;
} qa_record_provenance;

/* Why and where a run stopped (status "diverged"). */
typedef struct {
    const char *reason;
    long step;
} qa_record_failure;

/* The kernels a run used: oneDNN's list and slow reference kernels (at the end), and the
 * layers of the INT deploy that ran on the integer kernels. */
typedef struct {
    const char *onednn_kernels;
    double reference_kernels;
    int int8_layers;
    const char *deploy_kernel; /* the adapted layers' kernel in the INT deploy, e.g. "u8s8 2-plane" */
} qa_record_kernels;

/* Memory and time of a finished run. */
typedef struct {
    double frozen_bytes, trainable_bytes, gradient_bytes, optimizer_bytes, deployed_bytes;
    double activation_bytes, activation_batch, peak_rss_bytes;
    const char *peak_rss_scope;    /* "this run" | "the sweep process so far" */
    double train_step_median_ms, train_seconds, merge_seconds;
} qa_record_costs;

/* Create final_path.partial (removing a leftover one), write the provenance, the run's axes with
 * status "running", the empty training table and the references. */
int qa_record_begin(const char *final_path, const qa_record_run *run, qa_record **out, qa_error *err);
/* Append rows [n_rows, 5] to the training table. */
int qa_record_train_rows(qa_record *rec, const double *rows, int n_rows, qa_error *err);
/* The run stopped at step with a non-finite loss or gradient: status "diverged" and why. */
int qa_record_diverged(qa_record *rec, const char *reason, long step, qa_error *err);
int qa_record_merge_info(qa_record *rec, const qa_record_merge *merge, qa_error *err);
/* Layers that ran on the integer kernels in the INT deploy, and the adapted layers' kernel. */
int qa_record_int8_layers(qa_record *rec, int n_layers, const char *deploy_kernel, qa_error *err);
int qa_record_variant(qa_record *rec, const qa_record_eval *ev, qa_error *err);
int qa_record_artifact(qa_record *rec, const qa_artifact_size *size, qa_error *err);
/* Memory and timings, then status "done". */
int qa_record_finish(qa_record *rec, const qa_record_costs *costs, qa_error *err);
/* Always frees rec. With status == 0: record the kernels used, flush, close and rename the
 * .partial to its final name; otherwise (or when any of that fails) remove the .partial.
 * Returns status, or the first failure of closing. */
int qa_record_end(qa_record *rec, int status, qa_error *err);

/* The recipe text a run file records (its "/" attribute "recipe"), cut at max_len characters;
 * "" when it records none. *text is allocated (qa_alloc), the caller frees it. */
int qa_record_read_recipe(const char *path, size_t max_len, char **text, qa_error *err);

#endif
