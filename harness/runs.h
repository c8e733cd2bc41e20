/* Reading a results folder back: every finished <run>.h5 (never a .partial) into plain records,
 * for the report and the plots. */
#ifndef QA_RUNS_H
#define QA_RUNS_H

#include "harness/util.h"

#define QA_MAX_VARIANTS 4

typedef struct {
    char variant[64];             /* "fp" (float deploy) | "int" (integer deploy) */
    double heldout_loss, subject_fidelity, prompt_fidelity, bits_per_weight, sampling_ms;
    double diversity, prior_preservation; /* prior_preservation < 0: not measured */
    double style_score, fid;              /* fid < 0: not measured (domain task only) */
    double *heldout_per_image;
    int n_images;
} qa_run_eval;

typedef struct {
    char file[4096], id[96], method[32], bits[16], status[16], fail_reason[256], merge[32], task[16];
    int rank, w_bits, a_bits, item_class, needs_ptq;
    long seed;
    qa_run_eval eval[QA_MAX_VARIANTS];
    int n_eval;
    double *train;                /* [n_train, 5]: step, loss, lr, grad_norm, seconds */
    int n_train;
    double frozen_bytes, trainable_bytes, gradient_bytes, optimizer_bytes, activation_bytes, deployed_bytes, peak_rss_bytes;
    double step_ms, merge_seconds;        /* median training step; merge (+ PTQ) */
    double artifact_file_bytes, artifact_payload_bytes, artifact_weights; /* 0: no artifact written */
    char axes[48];                /* the grid axes beyond method, bits, rank and seed (from the id), e.g. "a1.5" */
    int n_stats;                  /* the method's own measurements (<run>/method_stats) */
    char stat_name[8][64];
    double stat_value[8];
} qa_run_record;

/* Load the runs of dir sorted by id in natural order (r2 before r16); a damaged file is an
 * error naming it. */
int runs_load(const char *dir, qa_run_record **out, int *n, qa_error *err);
void runs_free(qa_run_record *runs, int n);
/* Read one group's uint8 samples [n,28,28] ("fp", "int" or "references"); caller frees. */
int runs_samples(const qa_run_record *run, const char *which, uint8_t **pix, int *n, qa_error *err);

#endif
