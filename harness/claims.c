#include "harness/claims.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cells.h"

const qa_test_kind_info qa_test_kinds[QA_TEST_COUNT] = {
    [QA_TEST_SUPERIORITY] = {"superiority", 2, QA_CLAIM_MAX_CELLS, 0, "A B [B2 ...]: A better than each B by more than the margin"},
    [QA_TEST_NONINFERIORITY] = {"non-inferiority", 2, QA_CLAIM_MAX_CELLS, 1, "A B [B2 ...]: A worse than no B by the margin or more"},
    [QA_TEST_EQUIVALENCE] = {"equivalence", 2, QA_CLAIM_MAX_CELLS, 1, "A B [B2 ...]: A within the margin of each B"},
    [QA_TEST_TREND] = {"trend", 2, QA_CLAIM_MAX_CELLS, 0, "C1 C2 ...: each cell better (direction worse: worse) than the one before"},
    [QA_TEST_INTERACTION] = {"interaction", 4, 4, 0, "A1 B1 A2 B2: (A1 - B1) - (A2 - B2) better than the margin"},
};

/* ---- metrics a claim may name: the deployed model's scores and the run's costs ---- */

static int eval_loss(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->heldout_loss; return 1; }
static int eval_subject(const qa_run_record *r, const qa_run_eval *e, double *v) {
    *v = e->subject_fidelity; /* the domain task does not score it (cells.c reads it the same way) */
    return e->subject_fidelity != 0 || strcmp(r->task, "domain") != 0;
}
static int eval_prompt(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->prompt_fidelity; return 1; }
static int eval_diversity(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->diversity; return 1; }
static int eval_prior(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->prior_preservation; return *v >= 0; }
static int eval_style(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->style_score; return 1; }
static int eval_fid(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)r; *v = e->fid; return *v >= 0; }
static int run_step_ms(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)e; *v = r->step_ms; return *v > 0; }
/* a byte count of the run as MiB; 0 (not recorded) is no value */
static int as_mib(double bytes, double *v) {
    *v = bytes / (1024.0 * 1024.0);
    return *v > 0;
}
static int run_peak_rss(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)e; return as_mib(r->peak_rss_bytes, v); }
static int run_train_memory(const qa_run_record *r, const qa_run_eval *e, double *v) {
    (void)e;
    return as_mib(r->frozen_bytes + r->trainable_bytes + r->gradient_bytes + r->optimizer_bytes, v);
}
static int run_trainable(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)e; return as_mib(r->trainable_bytes, v); }
static int run_optimizer(const qa_run_record *r, const qa_run_eval *e, double *v) { (void)e; return as_mib(r->optimizer_bytes, v); }
/* the method's own measurement "init_error" (<run>/method_stats): the relative initialisation
 * error ||W - W_start||^2 / ||W||^2 of the frozen part plus any initial low-rank term, pooled over
 * the adapted layers; a run whose method does not record it has no value */
static int run_init_error(const qa_run_record *r, const qa_run_eval *e, double *v) {
    (void)e;
    for (int i = 0; i < r->n_stats; i++)
        if (!strcmp(r->stat_name[i], "init_error")) { *v = r->stat_value[i]; return *v >= 0; }
    return 0;
}

const qa_claim_metric qa_claim_metrics[] = {
    {"heldout_loss", 1, eval_loss},
    {"subject_fidelity", 0, eval_subject},
    {"prompt_fidelity", 0, eval_prompt},
    {"diversity", 0, eval_diversity},
    {"prior_preservation", 0, eval_prior},
    {"style_score", 0, eval_style},
    {"fid", 1, eval_fid},
    {"train_step_ms", 1, run_step_ms},           /* the run's median training step */
    {"peak_rss_mib", 1, run_peak_rss},           /* the run's process peak RSS */
    {"train_memory_mib", 1, run_train_memory},   /* adapted layers: frozen + trainable + gradients + optimizer */
    {"trainable_mib", 1, run_trainable},         /* adapted layers' trainable tensors */
    {"optimizer_mib", 1, run_optimizer},         /* their optimizer state */
    {"init_error", 1, run_init_error},           /* the method's relative initialisation error */
};
const int qa_n_claim_metrics = (int)(sizeof qa_claim_metrics / sizeof qa_claim_metrics[0]);

/* ---- the keys of a [claim ID] section ---- */

typedef struct {
    const char *name;
    int required;
    /* store the value; on a bad value return nonzero with what is allowed in `why` */
    int (*set)(qa_claim *c, const char *value, char *why, size_t len);
} claim_key;

static int set_text(char *dst, size_t cap, const char *value, char *why, size_t len) {
    if (!value[0] || strlen(value) >= cap) { snprintf(why, len, "expected text of 1 to %zu characters", cap - 1); return 1; }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}
static int set_paper(qa_claim *c, const char *v, char *why, size_t len) { return set_text(c->paper, sizeof c->paper, v, why, len); }
static int set_note(qa_claim *c, const char *v, char *why, size_t len) { return set_text(c->note, sizeof c->note, v, why, len); }
static int set_folder(qa_claim *c, const char *v, char *why, size_t len) {
    if (strchr(v, '/') || !strcmp(v, "..") || !strcmp(v, ".")) {
        snprintf(why, len, "expected the name of a results folder (e.g. table_subject), not a path");
        return 1;
    }
    return set_text(c->folder, sizeof c->folder, v, why, len);
}

/* Look a value up in a const table whose entries begin with their name (stride: the entry size);
 * when absent, `why` lists the allowed names. */
static int find_name(const void *table, size_t stride, int n, const char *v, const char *what, char *why, size_t len) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, *(const char *const *)((const char *)table + (size_t)i * stride))) return i;
    int off = snprintf(why, len, "unknown %s; allowed:", what);
    for (int i = 0; i < n && off < (int)len; i++)
        off += snprintf(why + off, len - (size_t)off, " %s", *(const char *const *)((const char *)table + (size_t)i * stride));
    return -1;
}

static int set_metric(qa_claim *c, const char *v, char *why, size_t len) {
    c->metric = find_name(qa_claim_metrics, sizeof qa_claim_metrics[0], qa_n_claim_metrics, v, "metric", why, len);
    return c->metric < 0;
}

static int set_test(qa_claim *c, const char *v, char *why, size_t len) {
    c->kind = find_name(qa_test_kinds, sizeof qa_test_kinds[0], QA_TEST_COUNT, v, "test", why, len);
    return c->kind < 0;
}

static int set_cells(qa_claim *c, const char *v, char *why, size_t len) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", v);
    c->n_cells = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        qa_cell_spec spec;
        qa_error e;
        if (c->n_cells == QA_CLAIM_MAX_CELLS) { snprintf(why, len, "at most %d cells", QA_CLAIM_MAX_CELLS); return 1; }
        if (strlen(tok) >= sizeof c->cells[0] || qa_cell_spec_parse(tok, &spec, &e)) {
            snprintf(why, len, "cell '%.80s': expected method:bits[:deploy[:setting]][:rN], e.g. M:w4a8 or M:w8a8:int for a method M of qadapt list", tok);
            return 1;
        }
        snprintf(c->cells[c->n_cells++], sizeof c->cells[0], "%s", tok);
    }
    if (c->n_cells == 0) { snprintf(why, len, "expected a list of cells method:bits[:deploy[:setting]]"); return 1; }
    return 0;
}

static int set_margin(qa_claim *c, const char *v, char *why, size_t len) {
    char *end;
    double x = strtod(v, &end);
    c->margin_relative = *end == '%';
    if (c->margin_relative) { x /= 100.0; end++; }
    if (end == v || *end || !(x >= 0) || x > 1e9) {
        snprintf(why, len, "expected a number >= 0 in the metric's units, or a percentage of cell B's mean (e.g. 0.02 or 10%%)");
        return 1;
    }
    c->margin = x;
    return 0;
}

static int set_alpha(qa_claim *c, const char *v, char *why, size_t len) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x > 0 && x < 0.5)) { snprintf(why, len, "expected a number in (0, 0.5), e.g. 0.05"); return 1; }
    c->alpha = x;
    return 0;
}

static int set_direction(qa_claim *c, const char *v, char *why, size_t len) {
    if (strcmp(v, "better") && strcmp(v, "worse")) { snprintf(why, len, "allowed: better, worse"); return 1; }
    c->worse = !strcmp(v, "worse");
    return 0;
}

enum { KEY_PAPER, KEY_FOLDER, KEY_METRIC, KEY_TEST, KEY_CELLS, KEY_MARGIN, KEY_ALPHA, KEY_DIRECTION, KEY_NOTE, N_CLAIM_KEYS };

static const claim_key claim_keys[N_CLAIM_KEYS] = {
    [KEY_PAPER] = {"paper", 1, set_paper},         [KEY_FOLDER] = {"folder", 1, set_folder},
    [KEY_METRIC] = {"metric", 1, set_metric},      [KEY_TEST] = {"test", 1, set_test},
    [KEY_CELLS] = {"cells", 1, set_cells},         [KEY_MARGIN] = {"margin", 0, set_margin},
    [KEY_ALPHA] = {"alpha", 0, set_alpha},         [KEY_DIRECTION] = {"direction", 0, set_direction},
    [KEY_NOTE] = {"note", 0, set_note},
};

/* ---- the parser ---- */

typedef struct {
    const char *path;
    qa_claim *claims;
    int n, cap;
    int seen[N_CLAIM_KEYS];     /* line of each key in the current claim (0: not set) */
} parser;

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static int allowed_keys(char *buf, size_t len) {
    int off = snprintf(buf, len, "allowed:");
    for (int i = 0; i < N_CLAIM_KEYS && off < (int)len; i++) off += snprintf(buf + off, len - (size_t)off, " %s", claim_keys[i].name);
    return off;
}

/* The checks that need the whole section: required keys, the margin and the cells the test needs. */
static int finish_claim(parser *ps, qa_error *err) {
    if (ps->n == 0) return QA_OK;
    qa_claim *c = &ps->claims[ps->n - 1];
    for (int k = 0; k < N_CLAIM_KEYS; k++)
        if (claim_keys[k].required && !ps->seen[k])
            return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim %s has no '%s' (required: paper, folder, metric, test, cells)", ps->path,
                           c->line, c->id, claim_keys[k].name);
    const qa_test_kind_info *kind = &qa_test_kinds[c->kind];
    int cells_line = ps->seen[KEY_CELLS];
    if (c->n_cells < kind->min_cells || c->n_cells > kind->max_cells)
        return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim %s: a %s test takes %s (%d given)", ps->path, cells_line, c->id, kind->name,
                       kind->cells_doc, c->n_cells);
    if (kind->needs_margin && !(c->margin > 0))
        return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim %s: a %s test needs 'margin' > 0", ps->path, ps->seen[KEY_MARGIN] ? ps->seen[KEY_MARGIN] : c->line,
                       c->id, kind->name);
    if (c->kind == QA_TEST_EQUIVALENCE && ps->seen[KEY_DIRECTION])
        return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim %s: 'direction' applies to superiority, non-inferiority, trend and interaction, "
                       "not to equivalence", ps->path, ps->seen[KEY_DIRECTION], c->id);
    return QA_OK;
}

static int start_claim(parser *ps, char *line, int lineno, qa_error *err) {
    size_t l = strlen(line);
    char *id = line + 1;
    if (line[l - 1] != ']' || strncmp(id, "claim", 5) || !isspace((unsigned char)id[5]))
        return qa_fail(err, QA_ERR_INPUT, "%s:%d: expected a section header [claim ID], got '%.80s'", ps->path, lineno, line);
    line[l - 1] = 0;
    id = trim(id + 5);
    size_t idl = strlen(id);
    int ok = idl > 0 && idl < sizeof ps->claims[0].id;
    for (size_t i = 0; ok && i < idl; i++) ok = isalnum((unsigned char)id[i]) || strchr("_.-", id[i]);
    if (!ok) return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim id '%.80s': expected 1-31 letters, digits, '_', '.' or '-'", ps->path, lineno, id);
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->claims[i].id, id))
            return qa_fail(err, QA_ERR_INPUT, "%s:%d: claim %s already defined at line %d", ps->path, lineno, id, ps->claims[i].line);
    int rc = finish_claim(ps, err);
    if (rc) return rc;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 16;
        ps->claims = realloc(ps->claims, sizeof *ps->claims * (size_t)ps->cap);
        QA_ASSERT(ps->claims);
    }
    qa_claim *c = &ps->claims[ps->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->alpha = 0.05;
    c->line = lineno;
    memset(ps->seen, 0, sizeof ps->seen);
    return QA_OK;
}

static int set_key(parser *ps, char *line, int lineno, qa_error *err) {
    char allowed[256];
    allowed_keys(allowed, sizeof allowed);
    char *eq = strchr(line, '=');
    if (!eq) return qa_fail(err, QA_ERR_INPUT, "%s:%d: expected 'key = value' or [claim ID], got '%.80s'", ps->path, lineno, line);
    *eq = 0;
    char *key = trim(line), *value = trim(eq + 1);
    if (ps->n == 0) return qa_fail(err, QA_ERR_INPUT, "%s:%d: '%s' outside a [claim ID] section", ps->path, lineno, key);
    qa_claim *c = &ps->claims[ps->n - 1];
    for (int k = 0; k < N_CLAIM_KEYS; k++) {
        if (strcmp(key, claim_keys[k].name)) continue;
        if (ps->seen[k]) return qa_fail(err, QA_ERR_INPUT, "%s:%d: '%s' set twice in claim %s (first at line %d)", ps->path, lineno, key, c->id, ps->seen[k]);
        char why[512];
        if (claim_keys[k].set(c, value, why, sizeof why))
            return qa_fail(err, QA_ERR_INPUT, "%s:%d: %s = '%.80s': %s", ps->path, lineno, key, value, why);
        ps->seen[k] = lineno;
        return QA_OK;
    }
    return qa_fail(err, QA_ERR_INPUT, "%s:%d: unknown key '%.40s' in claim %s; %s", ps->path, lineno, key, c->id, allowed);
}

int qa_claims_load(const char *path, qa_claim **claims, int *n, qa_error *err) {
    char *text;
    int rc = qa_read_file(path, &text, NULL, err);
    if (rc) return rc;
    parser ps = {path, NULL, 0, 0, {0}};
    int lineno = 0;
    for (char *save = NULL, *raw = text; !rc && raw; raw = save) {
        save = strchr(raw, '\n');
        if (save) *save++ = 0;
        lineno++;
        char *line = trim(raw);
        if (!line[0] || line[0] == '#') continue;
        rc = line[0] == '[' ? start_claim(&ps, line, lineno, err) : set_key(&ps, line, lineno, err);
    }
    free(text);
    if (!rc) rc = finish_claim(&ps, err);
    if (!rc && ps.n == 0) rc = qa_fail(err, QA_ERR_INPUT, "%s: no [claim ID] sections", path);
    if (rc) { free(ps.claims); return rc; }
    *claims = ps.claims;
    *n = ps.n;
    return QA_OK;
}
