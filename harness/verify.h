/* `qadapt verify DIR CLAIMS`: each claim of a claims file judged from the run files.
 *
 * A claim's folder is DIR when it names DIR's own folder, else the sibling DIR/../<folder>. Every
 * test is paired by seed, on the seeds that every cell of the claim has (with the metric
 * measured); d = the per-seed differences, oriented so that "better" is positive (the metric's
 * better direction, flipped by direction = worse). With m the margin:
 *   superiority      H1: mean(d) > m (A - B; one-sided paired t at alpha)
 *   non-inferiority  H1: mean(d) > -m
 *   equivalence      H1: -m < mean(A - B) < m, two one-sided tests (TOST): p = the larger p
 *   trend            H1: each step C(j+1) - C(j) > m: an intersection-union test over the steps
 *   interaction      H1: (A1 - B1) - (A2 - B2) > m (difference in differences, per seed)
 * Several B cells (or steps) make an intersection-union test: p = the largest p, and the claim
 * holds only if every comparison does. p_against is the one-sided p of the opposite hypothesis
 * (mean(d) < m, resp. < -m; for equivalence, |mean| beyond m on either side), Bonferroni over the
 * comparisons of the claim. The family is the file: the testable claims' p, and separately their
 * p_against, are adjusted by Holm-Bonferroni. Verdict:
 *   replicated (equivalence: equivalent)  Holm-adjusted p < alpha
 *   not replicated                        Holm-adjusted p_against < alpha: the data exclude the claim
 *   inconclusive                          otherwise; with the seeds needed for 80% power at
 *                                         alpha / (family size), from the observed paired sd and
 *                                         effect (qa_stats_seeds_needed)
 *   not testable                          a folder or cell is missing, or fewer than 2 common seeds
 * The interval printed with the effect is the two-sided (1 - 2 alpha) CI of mean(A - B), the
 * interval that matches the one-sided tests at alpha (before adjustment). */
#ifndef QA_VERIFY_H
#define QA_VERIFY_H

#include <stdio.h>

#include "harness/claims.h"
#include "harness/util.h"

typedef enum {
    QA_VERDICT_REPLICATED,
    QA_VERDICT_NOT_REPLICATED,
    QA_VERDICT_EQUIVALENT,
    QA_VERDICT_INCONCLUSIVE,
    QA_VERDICT_NOT_TESTABLE,
    QA_VERDICT_COUNT
} qa_verdict;

extern const char *const qa_verdict_words[QA_VERDICT_COUNT];

typedef struct {
    int verdict;                   /* qa_verdict */
    char reason[512];              /* not testable: why */
    char folder[4096];             /* the results folder the claim was judged in */
    char decisive[200];            /* the comparison behind effect and p, e.g. "a1.5 - a2.5" */
    int n;                         /* paired seeds */
    double margin;                 /* in the metric's units (a relative margin resolved) */
    double effect, ci_lo, ci_hi;   /* raw difference of the decisive comparison, (1 - 2 alpha) CI */
    double p, p_against, p_holm, p_against_holm;
    int seeds_needed;              /* inconclusive: for 80% power; -1: no number of seeds will do */
    int n_cmp;                     /* comparisons, and each one's distance to its bound and paired sd */
    double gap[QA_CLAIM_MAX_CELLS], sd[QA_CLAIM_MAX_CELLS];
} qa_claim_result;

/* Judge claims[0..n) from the run files of DIR and its sibling folders into res[0..n).
 * QA_ERR_RUN when a run file cannot be read; a missing folder or cell is a verdict. */
int qa_verify_judge(const char *dir, const qa_claim *claims, int n, qa_claim_result *res, qa_error *err);
/* The whole command: load the claims file (QA_ERR_INPUT when malformed), judge, print the table
 * to out and write DIR/NAME.md and DIR/NAME.csv, NAME the claims file's name (e.g.
 * intlora.claims.md), each to a temporary name, then renamed. */
int qa_verify(const char *dir, const char *claims_path, FILE *out, qa_error *err);

#endif
