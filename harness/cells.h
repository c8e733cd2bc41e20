/* Runs grouped into table cells: one cell per (method, deploy variant, bits, rank, extra grid
 * axes), its values over seeds and their summaries. Shared by the report and the plots, so that
 * a table and a figure of the same folder always show the same numbers. */
#ifndef QA_CELLS_H
#define QA_CELLS_H

#include "harness/runs.h"
#include "harness/stats.h"

#define QA_CELL_MAX_SEEDS 64
#define QA_CELL_MAX_STATS 8

typedef struct {
    const char *method, *variant, *bits, *axes; /* the first run's (cells point into runs) */
    const char *task;                           /* the first run's task (NULL: not recorded) */
    int rank, w_bits, needs_ptq;
    int n, n_diverged;                          /* evaluated seeds; diverged runs */
    long seeds[QA_CELL_MAX_SEEDS];
    const qa_run_record *runs[QA_CELL_MAX_SEEDS];
    double vals[N_MET][QA_CELL_MAX_SEEDS];
    int nm[N_MET];                              /* values per metric (some are not measured everywhere) */
    qa_summary sum[N_MET];
    double bits_pw;
    /* efficiency, summarized over seeds: bytes of the adapted layers by category, timings */
    qa_summary frozen_mb, trainable_mb, gradient_mb, optimizer_mb, train_mb, deployed_mb, peak_rss_mb;
    qa_summary activation_mb;                   /* the whole model's, at its largest batch */
    qa_summary artifact_kib, stored_bpw;        /* the artifact on disk; its payload bits per weight (n = 0: none) */
    qa_summary step_ms, merge_s, sampling_ms;
    /* the same timings as medians over the cell's repeats (its seeds) with an order-statistic
     * interval (qa_stats_median_ci): what the efficiency table shows */
    qa_median_ci step_med, merge_med, sampling_med;
    const char *kernel;                         /* the adapted layers' kernel in this deploy variant */
    /* the method's own measurements (method_stats), summarized over seeds */
    int n_stats;
    char stat_name[QA_CELL_MAX_STATS][64];
    qa_summary stat[QA_CELL_MAX_STATS];
} qa_cell;

/* Group the runs (sorted by id) into cells, in first-seen order; cells point into runs. */
int qa_cells_build(const qa_run_record *runs, int nr, qa_cell **out, int *nc);
/* The deploy label of a cell: "FP", "FP (before PTQ)", "INT (+PTQ)", "INT", "NF4 (...)", ... */
const char *qa_cells_deploy_label(const qa_cell *c, char *buf, size_t len);
/* The same for one deploy variant of a run (w_bits 0: a full-precision run). */
const char *qa_cells_variant_label(int w_bits, int needs_ptq, const char *variant, char *buf, size_t len);
/* "method bits deploy [axes] rN" for legends, without the parts every cell shares. */
void qa_cells_series_label(const qa_cell *c, char *buf, size_t len, int with_bits, int with_rank);

/* A cell as the commands name it: "method:bits[:deploy[:setting]]", with a part "rN" anywhere
 * after the bits picking rank N (rank 0: any rank). deploy defaults to int for quantized bits and
 * fp for bits fp; setting is an ablation's grid axes as in the run names (e.g. a1.5). */
typedef struct {
    char method[32], bits[16], variant[16], axes[48];
    int rank;
} qa_cell_spec;

/* Parse a cell name (syntax only; no results folder needed); QA_ERR_INPUT with the expected form. */
int qa_cell_spec_parse(const char *text, qa_cell_spec *spec, qa_error *err);
/* The cell of `cells` that `text` names and that has evaluated runs; NULL with a message naming
 * the cell and the folder `dir` when there is none. */
const qa_cell *qa_cell_find(const qa_cell *cells, int nc, const char *text, const char *dir, qa_error *err);

#endif
