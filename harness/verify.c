#include "harness/verify.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "harness/cells.h"
#include "harness/runs.h"
#include "harness/stats.h"

const char *const qa_verdict_words[QA_VERDICT_COUNT] = {
    [QA_VERDICT_REPLICATED] = "replicated",
    [QA_VERDICT_NOT_REPLICATED] = "not replicated",
    [QA_VERDICT_EQUIVALENT] = "equivalent",
    [QA_VERDICT_INCONCLUSIVE] = "inconclusive",
    [QA_VERDICT_NOT_TESTABLE] = "not testable",
};

#define POWER 0.8
#define MAX_FOLDERS 32

/* ---- results folders, each loaded once ---- */

typedef struct {
    char path[4096];
    int exists;
    qa_run_record *runs;
    int nr;
    qa_cell *cells;
    int nc;
} folder;

typedef struct {
    folder f[MAX_FOLDERS];
    int n;
} folder_cache;

/* DIR itself when `name` is DIR's last path component, else DIR's parent / name. */
static void resolve_folder(const char *dir, const char *name, char *out, size_t len) {
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    size_t l = strlen(d);
    while (l > 1 && d[l - 1] == '/') d[--l] = 0;
    char *slash = strrchr(d, '/');
    const char *base = slash ? slash + 1 : d;
    if (!strcmp(base, name)) { snprintf(out, len, "%s", d); return; }
    if (!slash) snprintf(out, len, "%s", name);
    else if (slash == d) snprintf(out, len, "/%s", name);
    else snprintf(out, len, "%.*s/%s", (int)(slash - d), d, name);
}

static int load_folder(folder_cache *fc, const char *path, folder **out, qa_error *err) {
    for (int i = 0; i < fc->n; i++)
        if (!strcmp(fc->f[i].path, path)) { *out = &fc->f[i]; return QA_OK; }
    QA_ASSERT(fc->n < MAX_FOLDERS);
    folder *f = &fc->f[fc->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    *out = f;
    DIR *d = opendir(path);
    if (!d) return QA_OK; /* a missing folder: its claims are not testable */
    closedir(d);
    f->exists = 1;
    int rc = qa_runs_load(path, &f->runs, &f->nr, err);
    if (rc) { /* a damaged run file: the message names it; the runs are unreadable, not the input */
        err->code = QA_ERR_RUN;
        return QA_ERR_RUN;
    }
    qa_cells_build(f->runs, f->nr, &f->cells, &f->nc);
    return QA_OK;
}

static void free_folders(folder_cache *fc) {
    for (int i = 0; i < fc->n; i++)
        if (fc->f[i].exists) {
            qa_free(fc->f[i].cells);
            qa_runs_free(fc->f[i].runs, fc->f[i].nr);
        }
}

/* ---- the paired values of a claim ---- */

/* The metric's value for seed s of cell c (its own deploy variant); 0 when not measured. */
static int cell_value(const qa_cell *c, int s, int metric, double *v) {
    const qa_run_record *r = c->runs[s];
    for (int e = 0; e < r->n_eval; e++)
        if (!strcmp(r->eval[e].variant, c->variant)) return qa_claim_metrics[metric].value(r, &r->eval[e], v);
    return 0;
}

/* x[k][j]: cell k at the j-th seed that every cell has with the metric measured; returns the count. */
static int paired_values(const qa_cell *const *cells, int nc, int metric, double x[][QA_CELL_MAX_SEEDS]) {
    int n = 0;
    for (int s = 0; s < cells[0]->n; s++) {
        double v[QA_CLAIM_MAX_CELLS];
        int have = cell_value(cells[0], s, metric, &v[0]);
        for (int k = 1; k < nc && have; k++) {
            have = 0;
            for (int t = 0; t < cells[k]->n && !have; t++)
                if (cells[k]->seeds[t] == cells[0]->seeds[s]) have = cell_value(cells[k], t, metric, &v[k]);
        }
        if (!have) continue;
        for (int k = 0; k < nc; k++) x[k][n] = v[k];
        n++;
    }
    return n;
}

/* ---- one comparison: per-seed raw differences d against the claim's bound ---- */

typedef struct {
    double effect, ci_lo, ci_hi, sd, p, p_against, gap;
} comparison;

static void describe(comparison *c, const double *d, int n, double alpha) {
    qa_summary s = qa_stats_summarize(d, n);
    double half = gsl_cdf_tdist_Pinv(1 - alpha, n - 1) * s.sd / sqrt((double)n);
    c->effect = s.mean;
    c->sd = s.sd;
    c->ci_lo = s.mean - half;
    c->ci_hi = s.mean + half;
}

/* H1: mean(sign * d) > bound (one-sided paired t); against: mean(sign * d) < bound. */
static comparison one_sided(const double *d, int n, int sign, double bound, double alpha) {
    comparison c;
    double od[QA_CELL_MAX_SEEDS], neg[QA_CELL_MAX_SEEDS];
    for (int i = 0; i < n; i++) { od[i] = sign * d[i]; neg[i] = -od[i]; }
    describe(&c, d, n, alpha);
    c.p = qa_stats_one_sided_p(od, n, bound);
    c.p_against = qa_stats_one_sided_p(neg, n, -bound);
    c.gap = sign * c.effect - bound;
    return c;
}

/* TOST, H1: -m < mean(d) < m: p = the larger of the two one-sided p; against: mean(d) < -m or
 * mean(d) > m, the smaller of those two one-sided p. */
static comparison two_one_sided(const double *d, int n, double m, double alpha) {
    comparison c;
    double neg[QA_CELL_MAX_SEEDS];
    for (int i = 0; i < n; i++) neg[i] = -d[i];
    describe(&c, d, n, alpha);
    double p_above_lower = qa_stats_one_sided_p(d, n, -m), p_below_upper = qa_stats_one_sided_p(neg, n, -m);
    double p_below_lower = qa_stats_one_sided_p(neg, n, m), p_above_upper = qa_stats_one_sided_p(d, n, m);
    c.p = fmax(p_above_lower, p_below_upper);
    c.p_against = fmin(p_below_lower, p_above_upper);
    c.gap = m - fabs(c.effect);
    return c;
}

/* ---- one claim ---- */

static int not_testable(qa_claim_result *r, const char *why) {
    r->verdict = QA_VERDICT_NOT_TESTABLE;
    snprintf(r->reason, sizeof r->reason, "%.511s", why);
    return QA_OK;
}

/* The comparisons a test kind makes on the paired values, combined as an intersection-union test. */
static void run_comparisons(const qa_claim *cl, double x[][QA_CELL_MAX_SEEDS], int n, qa_claim_result *r) {
    int sign = (qa_claim_metrics[cl->metric].lower_better ? -1 : 1) * (cl->worse ? -1 : 1);
    double m = r->margin, d[QA_CELL_MAX_SEEDS];
    comparison cmp[QA_CLAIM_MAX_CELLS] = {{0}};
    char names[QA_CLAIM_MAX_CELLS][200];
    int nc = 0;
    for (int k = 1; k < cl->n_cells; k++) {
        int a = cl->kind == QA_TEST_TREND ? k : 0, b = cl->kind == QA_TEST_TREND ? k - 1 : k;
        if (cl->kind == QA_TEST_INTERACTION && k > 1) break;
        for (int i = 0; i < n; i++)
            d[i] = cl->kind == QA_TEST_INTERACTION ? (x[0][i] - x[1][i]) - (x[2][i] - x[3][i]) : x[a][i] - x[b][i];
        if (cl->kind == QA_TEST_INTERACTION)
            snprintf(names[nc], sizeof names[0], "(%.45s - %.45s) - (%.45s - %.45s)", cl->cells[0], cl->cells[1], cl->cells[2],
                     cl->cells[3]);
        else snprintf(names[nc], sizeof names[0], "%.95s - %.95s", cl->cells[a], cl->cells[b]);
        if (cl->kind == QA_TEST_EQUIVALENCE) cmp[nc++] = two_one_sided(d, n, m, cl->alpha);
        else cmp[nc++] = one_sided(d, n, sign, cl->kind == QA_TEST_NONINFERIORITY ? -m : m, cl->alpha);
    }
    int decisive = 0;
    double min_against = 1;
    for (int i = 0; i < nc; i++) {
        if (cmp[i].p > cmp[decisive].p) decisive = i;
        min_against = fmin(min_against, cmp[i].p_against);
        r->gap[i] = cmp[i].gap;
        r->sd[i] = cmp[i].sd;
    }
    r->n_cmp = nc;
    r->effect = cmp[decisive].effect;
    r->ci_lo = cmp[decisive].ci_lo;
    r->ci_hi = cmp[decisive].ci_hi;
    r->p = cmp[decisive].p;
    r->p_against = fmin(1.0, nc * min_against);
    snprintf(r->decisive, sizeof r->decisive, "%.199s", names[decisive]);
}

static int judge_one(folder_cache *fc, const char *dir, const qa_claim *cl, qa_claim_result *r, qa_error *err) {
    memset(r, 0, sizeof *r);
    r->p = r->p_against = r->p_holm = r->p_against_holm = NAN;
    r->effect = r->ci_lo = r->ci_hi = NAN;
    resolve_folder(dir, cl->folder, r->folder, sizeof r->folder);
    folder *f;
    int rc = load_folder(fc, r->folder, &f, err);
    if (rc) return rc;
    if (!f->exists || f->nr == 0) {
        char why[4200];
        snprintf(why, sizeof why, "no runs in %s", r->folder);
        return not_testable(r, why);
    }
    const qa_cell *cells[QA_CLAIM_MAX_CELLS];
    for (int k = 0; k < cl->n_cells; k++) {
        qa_error e;
        cells[k] = qa_cell_find(f->cells, f->nc, cl->cells[k], r->folder, &e);
        if (!cells[k]) return not_testable(r, e.msg);
    }
    double x[QA_CLAIM_MAX_CELLS][QA_CELL_MAX_SEEDS];
    r->n = paired_values(cells, cl->n_cells, cl->metric, x);
    if (r->n < 2) {
        char why[160];
        snprintf(why, sizeof why, "%d seed(s) with %s in every cell (a paired test needs 2)", r->n, qa_claim_metrics[cl->metric].name);
        return not_testable(r, why);
    }
    r->margin = cl->margin;
    if (cl->margin_relative) {
        qa_summary b = qa_stats_summarize(x[1], r->n);
        r->margin = cl->margin * fabs(b.mean);
    }
    run_comparisons(cl, x, r->n, r);
    return QA_OK;
}

/* Holm over the testable claims, then each verdict (and the seeds an inconclusive one needs). */
static void decide(const qa_claim *claims, int n, qa_claim_result *res) {
    double *p = malloc(sizeof(double) * (size_t)n), *pa = malloc(sizeof(double) * (size_t)n);
    int family = 0;
    for (int i = 0; i < n; i++) {
        p[i] = res[i].p;
        pa[i] = res[i].p_against;
        family += res[i].verdict != QA_VERDICT_NOT_TESTABLE;
    }
    qa_stats_holm(p, n, p);
    qa_stats_holm(pa, n, pa);
    for (int i = 0; i < n; i++) {
        qa_claim_result *r = &res[i];
        if (r->verdict == QA_VERDICT_NOT_TESTABLE) continue;
        r->p_holm = p[i];
        r->p_against_holm = pa[i];
        int equivalence = claims[i].kind == QA_TEST_EQUIVALENCE;
        if (r->p_holm < claims[i].alpha) r->verdict = equivalence ? QA_VERDICT_EQUIVALENT : QA_VERDICT_REPLICATED;
        else if (r->p_against_holm < claims[i].alpha) r->verdict = QA_VERDICT_NOT_REPLICATED;
        else r->verdict = QA_VERDICT_INCONCLUSIVE;
        if (r->verdict != QA_VERDICT_INCONCLUSIVE) continue;
        r->seeds_needed = 0;
        for (int k = 0; k < r->n_cmp && r->seeds_needed >= 0; k++) {
            int s = qa_stats_seeds_needed(r->gap[k], r->sd[k], claims[i].alpha / family, POWER);
            r->seeds_needed = s < 0 ? -1 : (s > r->seeds_needed ? s : r->seeds_needed);
        }
        if (r->seeds_needed >= 0 && r->seeds_needed <= r->n) r->seeds_needed = r->n + 1;
    }
    free(p);
    free(pa);
}

int qa_verify_judge(const char *dir, const qa_claim *claims, int n, qa_claim_result *res, qa_error *err) {
    folder_cache *fc = qa_alloc(sizeof *fc);
    int rc = QA_OK;
    for (int i = 0; i < n && !rc; i++) rc = judge_one(fc, dir, &claims[i], &res[i], err);
    free_folders(fc);
    qa_free(fc);
    if (!rc) decide(claims, n, res);
    return rc;
}

/* ---- the table: DIR/NAME.md (also printed) and DIR/NAME.csv, NAME the claims file's name ---- */

static void cells_text(const qa_claim *cl, char *buf, size_t len) {
    if (cl->kind == QA_TEST_INTERACTION) {
        snprintf(buf, len, "(%s - %s) - (%s - %s)", cl->cells[0], cl->cells[1], cl->cells[2], cl->cells[3]);
        return;
    }
    int off = snprintf(buf, len, "%s", cl->cells[0]);
    for (int k = 1; k < cl->n_cells && off < (int)len; k++)
        off += snprintf(buf + off, len - (size_t)off, "%s%s", cl->kind == QA_TEST_TREND ? " → " : (k == 1 ? " vs " : ", "), cl->cells[k]);
}

static void test_text(const qa_claim *cl, const qa_claim_result *r, char *buf, size_t len) {
    int off = snprintf(buf, len, "%s", qa_test_kinds[cl->kind].name);
    if (cl->margin_relative && r->verdict != QA_VERDICT_NOT_TESTABLE)
        off += snprintf(buf + off, len - (size_t)off, ", margin %g%% of B (%.4g)", 100 * cl->margin, r->margin);
    else if (cl->margin_relative) off += snprintf(buf + off, len - (size_t)off, ", margin %g%% of B", 100 * cl->margin);
    else if (cl->margin > 0 || qa_test_kinds[cl->kind].needs_margin) off += snprintf(buf + off, len - (size_t)off, ", margin %g", cl->margin);
    if (cl->worse) off += snprintf(buf + off, len - (size_t)off, ", direction worse");
    snprintf(buf + off, len - (size_t)off, ", alpha %g", cl->alpha);
}

static void verdict_text(const qa_claim_result *r, char *buf, size_t len) {
    const char *w = qa_verdict_words[r->verdict];
    if (r->verdict == QA_VERDICT_NOT_TESTABLE) snprintf(buf, len, "%s: %s", w, r->reason);
    else if (r->verdict != QA_VERDICT_INCONCLUSIVE) snprintf(buf, len, "**%s**", w);
    else if (r->seeds_needed < 0) snprintf(buf, len, "%s (no power estimate: the observed effect is not on the claim's side of its bound)", w);
    else snprintf(buf, len, "%s (%s%d seeds for 80%% power)", w, r->seeds_needed >= 1000000 ? "more than " : "", r->seeds_needed);
}

/* Decimals that show an interval's half-width to 3 significant digits (0 to 6). */
static int decimals_for(double half) {
    if (!(half > 0) || !isfinite(half)) return 4;
    int d = 2 - (int)floor(log10(half));
    return d < 0 ? 0 : (d > 6 ? 6 : d);
}

/* Markdown table cell text: '|' escaped, newlines flattened. */
static void md_put(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void write_md(FILE *f, const char *dir, const char *claims_path, const qa_claim *claims, int n, const qa_claim_result *res) {
    int family = 0, count[QA_VERDICT_COUNT] = {0};
    for (int i = 0; i < n; i++) { family += res[i].verdict != QA_VERDICT_NOT_TESTABLE; count[res[i].verdict]++; }
    fprintf(f, "Claims of `%s`, judged by `qadapt verify` from the run files of `%s` and its sibling folders. Every test is "
               "paired by seed. Effect: A - B of the comparison that decides the test, in the metric's units, ± the two-sided "
               "(1 - 2 alpha) interval that matches the one-sided tests. p: the claim's one-sided p (equivalence: the larger of the "
               "two one-sided tests; several comparisons: the largest). p (Holm): Holm-Bonferroni adjusted over the %d testable "
               "claims of the file (the family). Verdict: replicated (equivalence: equivalent) when p (Holm) < alpha; not "
               "replicated when the opposite one-sided test, Holm-adjusted the same way, is < alpha; inconclusive otherwise, with "
               "the seeds a paired test would need for 80%% power at alpha / %d (Guenther's normal approximation to the noncentral "
               "t, from the observed effect and paired sd); not testable when a folder or cell is missing or fewer than 2 seeds "
               "pair.\n\n",
            claims_path, dir, family, family > 0 ? family : 1);
    fprintf(f, "| claim | the paper says | test | cells (folder) | metric | n | effect ± CI | p | p (Holm) | verdict |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const qa_claim *cl = &claims[i];
        const qa_claim_result *r = &res[i];
        char cells[800], test[200], verdict[700];
        cells_text(cl, cells, sizeof cells);
        test_text(cl, r, test, sizeof test);
        verdict_text(r, verdict, sizeof verdict);
        fprintf(f, "| %s | ", cl->id);
        md_put(f, cl->paper);
        fprintf(f, " | %s | %s (%s) | %s |", test, cells, cl->folder, qa_claim_metrics[cl->metric].name);
        if (r->verdict == QA_VERDICT_NOT_TESTABLE) fprintf(f, " - | - | - | - |");
        else {
            double half = (r->ci_hi - r->ci_lo) / 2;
            int dec = decimals_for(half);
            fprintf(f, " %d | %+.*f ± %.*f", r->n, dec, r->effect, dec, half);
            if (r->n_cmp > 1) fprintf(f, " (%s)", r->decisive);
            fprintf(f, " | %.3g | %.3g |", r->p, r->p_holm);
        }
        fputc(' ', f);
        md_put(f, verdict);
        fprintf(f, " |\n");
    }
    fprintf(f, "\nVerdicts:");
    for (int v = 0; v < QA_VERDICT_COUNT; v++) fprintf(f, "%s %d %s", v ? "," : "", count[v], qa_verdict_words[v]);
    fprintf(f, ".\n");
    int notes = 0;
    for (int i = 0; i < n; i++)
        if (claims[i].note[0]) {
            fprintf(f, "%s- %s: %s\n", notes++ ? "" : "\nNotes written with the claims:\n\n", claims[i].id, claims[i].note);
        }
}

static void write_csv(FILE *f, const qa_claim *claims, int n, const qa_claim_result *res) {
    fprintf(f, "id,test,folder,metric,cells,margin,alpha,direction,n,effect,ci_low,ci_high,p,p_holm,p_against,p_against_holm,"
               "seeds_needed,verdict,reason\n");
    for (int i = 0; i < n; i++) {
        const qa_claim *cl = &claims[i];
        const qa_claim_result *r = &res[i];
        char cells[800];
        cells_text(cl, cells, sizeof cells);
        qa_csv_field(f, cl->id);
        fprintf(f, ",%s,", qa_test_kinds[cl->kind].name);
        qa_csv_field(f, r->folder);
        fprintf(f, ",%s,", qa_claim_metrics[cl->metric].name);
        qa_csv_field(f, cells);
        /* the margin in the metric's units; a relative one left unresolved (no data) as written */
        if (r->verdict == QA_VERDICT_NOT_TESTABLE && cl->margin_relative) fprintf(f, ",%g%%", 100 * cl->margin);
        else fprintf(f, ",%.8g", r->verdict == QA_VERDICT_NOT_TESTABLE ? cl->margin : r->margin);
        fprintf(f, ",%g,%s,%d,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%d,%s,", cl->alpha, cl->worse ? "worse" : "better", r->n, r->effect,
                r->ci_lo, r->ci_hi, r->p, r->p_holm, r->p_against, r->p_against_holm, r->seeds_needed, qa_verdict_words[r->verdict]);
        qa_csv_field(f, r->reason);
        fputc('\n', f);
    }
}

/* Write `text` to dir/name through dir/name.tmp and a rename, so a reader never sees half a file. */
static int write_atomically(const char *dir, const char *name, const char *text, size_t len, qa_error *err) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qa_fail(err, QA_ERR_RUN, "%s: cannot write", tmp);
    int bad = fwrite(text, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) { remove(tmp); return qa_fail(err, QA_ERR_RUN, "%s: cannot write", path); }
    return QA_OK;
}

int qa_verify(const char *dir, const char *claims_path, FILE *out, qa_error *err) {
    qa_claim *claims;
    int n;
    int rc = qa_claims_load(claims_path, &claims, &n, err);
    if (rc) return rc;
    DIR *d = opendir(dir);
    if (!d) { free(claims); return qa_fail(err, QA_ERR_INPUT, "%s: cannot open results folder", dir); }
    closedir(d);
    qa_claim_result *res = qa_alloc(sizeof *res * (size_t)n);
    rc = qa_verify_judge(dir, claims, n, res, err);
    char *md = NULL, *csv = NULL;
    size_t md_len = 0, csv_len = 0;
    if (!rc) {
        FILE *f = open_memstream(&md, &md_len);
        write_md(f, dir, claims_path, claims, n, res);
        fclose(f);
        f = open_memstream(&csv, &csv_len);
        write_csv(f, claims, n, res);
        fclose(f);
        if (out) fputs(md, out);
        /* named after the claims file, so that several files judged on one folder keep their tables */
        const char *slash = strrchr(claims_path, '/');
        char name[300];
        snprintf(name, sizeof name, "%.280s.md", slash ? slash + 1 : claims_path);
        rc = write_atomically(dir, name, md, md_len, err);
        snprintf(name, sizeof name, "%.280s.csv", slash ? slash + 1 : claims_path);
        if (!rc) rc = write_atomically(dir, name, csv, csv_len, err);
    }
    free(md);
    free(csv);
    qa_free(res);
    free(claims);
    return rc;
}
