/* The tuning stage's choice: each cell's learning rate from its tuning runs' files (declared in
 * adapt.h; the stage itself is described there). */
#include "harness/adapt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/runs.h"

int qa_adapt_choose_rate(const double *mean_score, int n, int lower_is_better) {
    int best = -1;
    for (int k = 0; k < n; k++) {
        if (isnan(mean_score[k])) continue;
        double gain = best < 0 ? 1 : (lower_is_better ? mean_score[best] - mean_score[k] : mean_score[k] - mean_score[best]);
        if (gain > 0) best = k; /* strictly better: a tie keeps the smaller rate */
    }
    return best;
}

int qa_adapt_choose_rate_within(const double *mean_score, int n, int lower_is_better, double within) {
    int best = qa_adapt_choose_rate(mean_score, n, lower_is_better);
    if (best < 0) return -1;
    for (int k = 0; k < best; k++) {
        if (isnan(mean_score[k])) continue;
        double short_of_best = lower_is_better ? mean_score[k] - mean_score[best] : mean_score[best] - mean_score[k];
        if (short_of_best <= within) return k;
    }
    return best;
}

/* A tuning run's validation score: the metric of its deployed model (the INT deploy at W bits >
 * 0, else the FP one); NAN when it diverged or was not scored. */
static double validation_score(const qa_run_record *rec, qa_tune_metric metric) {
    if (strcmp(rec->status, "done") != 0) return NAN;
    const char *variant = rec->w_bits > 0 ? "int" : "fp";
    for (int v = 0; v < rec->n_eval; v++) {
        const qa_run_eval *e = &rec->eval[v];
        if (strcmp(e->variant, variant) != 0) continue;
        const double by_metric[QA_TUNE_METRIC_COUNT] = {e->heldout_loss, e->subject_fidelity, e->style_score, e->fid};
        return by_metric[metric] >= 0 && isfinite(by_metric[metric]) ? by_metric[metric] : NAN;
    }
    return NAN;
}

/* A cell's tried rates (ascending: the grid's and any the extension added) and each one's mean
 * validation score over the tuning seeds (NAN: a rate with a diverged or unscored run). */
typedef struct {
    int n;
    double rate[QA_MAX_TUNE_RATES], mean[QA_MAX_TUNE_RATES];
} cell_curve;

/* Cell f's curve from its tuning runs' records. A tuning run without a file is an error. */
static int cell_scores(const qa_sweep_plan *plan, int f, const qa_run_record *recs, int n_recs, cell_curve *c, qa_error *err) {
    const qa_tune_spec *t = &plan->tune;
    c->n = 0;
    for (int i = 0; i < plan->n; i++) { /* the distinct rates, in order */
        const qa_run_spec *x = &plan->runs[i];
        if (x->role != QA_RUN_TUNING || strcmp(x->cell, plan->runs[f].cell) != 0) continue;
        int k = 0;
        while (k < c->n && c->rate[k] < x->lr_multiplier) k++;
        if (k < c->n && c->rate[k] == x->lr_multiplier) continue;
        QA_ASSERT(c->n < QA_MAX_TUNE_RATES); /* the plan checks n_rates + extend */
        memmove(&c->rate[k + 1], &c->rate[k], sizeof(double) * (size_t)(c->n - k));
        c->rate[k] = x->lr_multiplier;
        c->n++;
    }
    for (int k = 0; k < c->n; k++) c->mean[k] = 0;
    for (int i = 0; i < plan->n; i++) {
        const qa_run_spec *x = &plan->runs[i];
        if (x->role != QA_RUN_TUNING || strcmp(x->cell, plan->runs[f].cell) != 0) continue;
        int k = 0, j = 0;
        while (c->rate[k] != x->lr_multiplier) k++;
        while (j < n_recs && strcmp(recs[j].id, x->id) != 0) j++;
        if (j == n_recs) return qa_fail(err, QA_ERR_RUN, "tuning run tune/%s has no result: its cell's rate cannot be chosen", x->id);
        c->mean[k] += validation_score(&recs[j], t->metric) / t->n_seeds;
    }
    return QA_OK;
}

static int lower_is_better(const qa_tune_spec *t) { return t->metric == QA_TUNE_HELDOUT_LOSS || t->metric == QA_TUNE_FID; }

/* One line of <out>/tune/rates.csv per rate of the cell. */
static void write_cell_rates(FILE *csv, const qa_sweep_plan *plan, int f, const cell_curve *c, int best) {
    const qa_run_spec *x = &plan->runs[f];
    for (int k = 0; k < c->n; k++)
        fprintf(csv, "%s,%s,%g,%g,%d,%.9g,%d\n", x->cell, qa_tune_metric_names[plan->tune.metric], c->rate[k],
                c->rate[k] * x->method->reference_lr, plan->tune.n_seeds, c->mean[k], k == best);
}

/* Choose each cell's rate from its tuning runs and give it to the cell's final runs. */
static int choose_rates(qa_sweep_plan *plan, const qa_run_record *recs, int n_recs, FILE *csv, qa_error *err) {
    const qa_tune_spec *t = &plan->tune;
    cell_curve c;
    for (int f = 0; f < plan->n; f++) {
        if (plan->runs[f].role != QA_RUN_FINAL || !qa_adapt_plan_first_of_cell(plan, f)) continue;
        int rc = cell_scores(plan, f, recs, n_recs, &c, err);
        if (rc) return rc;
        int best = qa_adapt_choose_rate_within(c.mean, c.n, lower_is_better(t), t->within);
        if (csv) write_cell_rates(csv, plan, f, &c, best);
        if (best < 0) return qa_fail(err, QA_ERR_RUN, "%s: every rate of the tuning grid diverged", plan->runs[f].cell);
        const double lr = c.rate[best] * plan->runs[f].method->reference_lr;
        /* the warning is about the best score's place (a choice within the tolerance may sit at
         * the low end on purpose) */
        const int top = qa_adapt_choose_rate(c.mean, c.n, lower_is_better(t));
        if (csv) fprintf(stderr, "tuned %s: lr %g (x%g of its reference; %s %.4g%s)%s\n", plan->runs[f].cell, lr, c.rate[best],
                qa_tune_metric_names[t->metric], c.mean[best], best != top ? ", within [tune] within of the best" : "",
                c.n > 2 && (top == c.n - 1 || best == 0) ? " -- at the end of the rates it tried: raise [tune] extend or "
                                                           "widen the grid" : "");
        for (int i = f; i < plan->n; i++)
            if (plan->runs[i].role == QA_RUN_FINAL && !strcmp(plan->runs[i].cell, plan->runs[f].cell)) {
                plan->runs[i].train.lr = (float)lr;
                plan->runs[i].lr_multiplier = c.rate[best];
            }
    }
    return QA_OK;
}

/* x rounded to 3 significant digits: 10 x 3.1646 = 31.6, 31.6 x 3.1646 = 100 (ids stay short). */
static double three_digits(double x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", x);
    return strtod(buf, NULL);
}

int qa_tune_extend(qa_sweep_plan *plan, const char *out_dir, FILE *say, int *added, qa_error *err) {
    const qa_tune_spec *t = &plan->tune;
    *added = 0;
    size_t len = strlen(out_dir) + 8;
    char *dir = qa_alloc(len);
    snprintf(dir, len, "%s/tune", out_dir);
    qa_run_record *recs = NULL;
    int n_recs = 0, rc = qa_runs_load(dir, &recs, &n_recs, err);
    const int n_final = plan->n - plan->n_tuning;
    cell_curve c;
    /* the grid's own spacing at each end: the step past it */
    const double step_up = t->rates[t->n_rates - 1] / t->rates[t->n_rates - 2], step_down = t->rates[1] / t->rates[0];
    for (int f = 0; !rc && f < n_final; f++) {
        if (!qa_adapt_plan_first_of_cell(plan, f)) continue;
        rc = cell_scores(plan, f, recs, n_recs, &c, err);
        if (rc || c.n >= t->n_rates + t->extend) continue;
        /* up past a best score at the top; down past a choice at the bottom (with [tune] within
         * the choice may sit below the best: a smaller rate may be within the tolerance too) */
        int best = qa_adapt_choose_rate(c.mean, c.n, lower_is_better(t));
        int chosen = qa_adapt_choose_rate_within(c.mean, c.n, lower_is_better(t), t->within);
        double next = 0;
        if (best == c.n - 1) next = three_digits(c.rate[best] * step_up);
        else if (chosen == 0) next = three_digits(c.rate[0] / step_down);
        if (!(next > 0)) continue;
        if (say) {
            if (best == c.n - 1)
                fprintf(say, "extending %s: its best rate x%g is the highest it tried; next x%g\n", plan->runs[f].cell, c.rate[best], next);
            else
                fprintf(say, "extending %s: its %s rate x%g is the lowest it tried; next x%g\n", plan->runs[f].cell,
                        best == 0 ? "best" : "chosen", c.rate[0], next);
        }
        qa_adapt_plan_add_tuning(plan, f, next);
        *added += t->n_seeds;
    }
    qa_runs_free(recs, n_recs);
    qa_free(dir);
    return rc;
}

/* The tuning stage's choice, from the tuning runs' files (so a resumed sweep chooses the same);
 * every rate's mean score and the choice go to <out>/tune/rates.csv. */
int qa_tune_apply(qa_sweep_plan *plan, const char *out_dir, int write_csv, qa_error *err) {
    size_t len = strlen(out_dir) + 48;
    char *dir = qa_alloc(len), *csv_path = qa_alloc(len), *tmp = qa_alloc(len + 32);
    snprintf(dir, len, "%s/tune", out_dir);
    snprintf(csv_path, len, "%s/rates.csv", dir);
    /* a name of this process's own: shards finishing together each write theirs, then rename */
    snprintf(tmp, len + 32, "%s.partial.%ld", csv_path, (long)getpid());
    qa_run_record *recs = NULL;
    int n_recs = 0, rc = qa_runs_load(dir, &recs, &n_recs, err);
    FILE *csv = rc || !write_csv ? NULL : fopen(tmp, "w");
    if (!rc && write_csv && !csv) rc = qa_fail(err, QA_ERR_RUN, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && csv) fprintf(csv, "cell,metric,lr_multiplier,learning_rate,seeds,mean_score,chosen\n");
    if (!rc) rc = choose_rates(plan, recs, n_recs, csv, err);
    if (csv) {
        if (fclose(csv) != 0 && !rc) rc = qa_fail(err, QA_ERR_RUN, "cannot write %s: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, csv_path) != 0) rc = qa_fail(err, QA_ERR_RUN, "cannot rename %s: %s", tmp, strerror(errno));
        if (rc) remove(tmp);
    }
    qa_runs_free(recs, n_recs);
    qa_free(dir); qa_free(csv_path); qa_free(tmp);
    return rc;
}
