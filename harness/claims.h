/* Claims files: a paper's claims written down as tests before they are judged (`qadapt verify`).
 *
 *   # a comment line
 *   [claim C1a]
 *   paper     = the paper's words
 *   folder    = table_subject                        results folder (a sibling of verify's DIR)
 *   metric    = subject_fidelity                     one of qa_claim_metrics
 *   test      = non-inferiority                      one of qa_test_kinds
 *   cells     = intlora-mul:w8a8 qlora:w8a8:int       method:bits[:deploy[:setting]][:rN] ...
 *   margin    = 0.02                                 in the metric's units, or N% of cell B's mean
 *   alpha     = 0.05
 *   direction = better                               better | worse (not for equivalence)
 *   note      = a caveat printed with the verdict
 *
 * Every test is paired by seed. A line that breaks the format is an error naming the file, the
 * line and the allowed values (QA_ERR_INPUT). */
#ifndef QA_CLAIMS_H
#define QA_CLAIMS_H

#include "harness/runs.h"
#include "harness/util.h"

typedef enum {
    QA_TEST_SUPERIORITY,
    QA_TEST_NONINFERIORITY,
    QA_TEST_EQUIVALENCE,
    QA_TEST_TREND,
    QA_TEST_INTERACTION,
    QA_TEST_COUNT
} qa_test_kind;

typedef struct {
    const char *name;        /* as written in a claims file */
    int min_cells, max_cells;
    int needs_margin;        /* margin > 0 required */
    const char *cells_doc;   /* what the cells are */
} qa_test_kind_info;

extern const qa_test_kind_info qa_test_kinds[QA_TEST_COUNT];

/* A metric a claim may name: its value in one run's deploy variant (0 when not measured there). */
typedef struct {
    const char *name;
    int lower_better;
    int (*value)(const qa_run_record *run, const qa_run_eval *ev, double *out);
} qa_claim_metric;

extern const qa_claim_metric qa_claim_metrics[];
extern const int qa_n_claim_metrics;

#define QA_CLAIM_MAX_CELLS 8

typedef struct {
    char id[32], paper[512], folder[256], note[512];
    char cells[QA_CLAIM_MAX_CELLS][96];
    int n_cells;
    int kind;              /* qa_test_kind */
    int metric;            /* index into qa_claim_metrics */
    double margin;         /* >= 0; with margin_relative, a fraction of cell B's mean */
    int margin_relative;
    double alpha;
    int worse;             /* direction = worse */
    int line;              /* line of the [claim ...] header */
} qa_claim;

/* Parse a claims file; on success *claims (free()) holds *n >= 1 claims in file order. */
int qa_claims_load(const char *path, qa_claim **claims, int *n, qa_error *err);

#endif
