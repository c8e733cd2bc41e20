#include "harness/cells.h"

#include <stdlib.h>
#include <string.h>

#include "harness/util.h"

const char *qa_cells_variant_label(int w_bits, int needs_ptq, const char *variant, char *buf, size_t len) {
    if (w_bits == 0) snprintf(buf, len, "FP");
    else if (!strcmp(variant, "fp")) snprintf(buf, len, "FP (before PTQ)");
    else if (!strcmp(variant, "int")) snprintf(buf, len, "%s", needs_ptq ? "INT (+PTQ)" : "INT");
    else if (!strcmp(variant, "nf4")) snprintf(buf, len, "NF4 (merged, re-quantized)");
    else snprintf(buf, len, "%s", variant);
    return buf;
}

const char *qa_cells_deploy_label(const qa_cell *c, char *buf, size_t len) {
    return qa_cells_variant_label(c->w_bits, c->needs_ptq, c->variant, buf, len);
}

void qa_cells_series_label(const qa_cell *c, char *buf, size_t len, int with_bits, int with_rank) {
    char dl[48];
    qa_cells_deploy_label(c, dl, sizeof dl);
    int off = snprintf(buf, len, "%s", c->method);
    if (with_bits) off += snprintf(buf + off, len - (size_t)off, " %s", c->bits);
    if (c->w_bits && strcmp(dl, "INT")) off += snprintf(buf + off, len - (size_t)off, " %s", dl);
    if (c->axes[0]) off += snprintf(buf + off, len - (size_t)off, " %s", c->axes);
    if (with_rank) snprintf(buf + off, len - (size_t)off, " r%d", c->rank);
}

static qa_cell *find_cell(qa_cell *cells, int *n, const qa_run_record *r, const char *variant) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(cells[i].method, r->method) && !strcmp(cells[i].variant, variant) && !strcmp(cells[i].bits, r->bits) &&
            cells[i].rank == r->rank && !strcmp(cells[i].axes, r->axes))
            return &cells[i];
    qa_cell *c = &cells[(*n)++];
    memset(c, 0, sizeof *c);
    c->method = r->method;
    c->task = r->task;
    c->variant = variant;
    c->bits = r->bits;
    c->axes = r->axes;
    c->rank = r->rank;
    c->w_bits = r->w_bits;
    return c;
}

/* x[s] = the double at offset of the cell's run s, times scale */
static void field_values(const qa_cell *c, size_t offset, double scale, double *x) {
    for (int s = 0; s < c->n; s++) x[s] = *(const double *)((const char *)c->runs[s] + offset) * scale;
}

static qa_summary summarize_field(const qa_cell *c, size_t offset, double scale) {
    double x[QA_CELL_MAX_SEEDS];
    field_values(c, offset, scale, x);
    return qa_stats_summarize(x, c->n);
}

static qa_median_ci median_field(const qa_cell *c, size_t offset) {
    double x[QA_CELL_MAX_SEEDS];
    field_values(c, offset, 1.0, x);
    return qa_stats_median_ci(x, c->n);
}

/* The INT deploy's recorded kernel; every other variant runs its adapted layers as float
 * matmuls ("-": a run file from before the kernel was recorded). */
static const char *kernel_of(const qa_cell *c) {
    if (c->w_bits == 0 || strcmp(c->variant, "int")) return "f32";
    const char *k = c->runs[0]->deploy_kernel;
    return k && k[0] ? k : "-";
}

int qa_cells_build(const qa_run_record *runs, int nr, qa_cell **out, int *nc_out) {
    qa_cell *cells = qa_alloc(sizeof(qa_cell) * ((size_t)nr * QA_MAX_VARIANTS + 1));
    int nc = 0;
    for (int i = 0; i < nr; i++) {
        const qa_run_record *r = &runs[i];
        if (strcmp(r->status, "done") != 0) {
            find_cell(cells, &nc, r, r->w_bits ? "int" : "fp")->n_diverged++;
            continue;
        }
        for (int v = 0; v < r->n_eval; v++) {
            const qa_run_eval *e = &r->eval[v];
            qa_cell *c = find_cell(cells, &nc, r, e->variant);
            c->needs_ptq = r->needs_ptq;
            if (c->n >= QA_CELL_MAX_SEEDS) continue;
            c->seeds[c->n] = r->seed;
            c->runs[c->n] = r;
            for (int m = 0; m < N_MET; m++) {
                double value;
                if (qa_runs_eval_metric(e, m, &value)) c->vals[m][c->nm[m]++] = value;
            }
            c->bits_pw = e->bits_per_weight;
            c->n++;
        }
    }
    const double mb = 1.0 / (1024.0 * 1024.0);
    for (int i = 0; i < nc; i++) {
        qa_cell *c = &cells[i];
        for (int m = 0; m < N_MET; m++) c->sum[m] = qa_stats_summarize(c->vals[m], c->nm[m]);
        if (c->n == 0) continue;
        c->frozen_mb = summarize_field(c, offsetof(qa_run_record, frozen_bytes), mb);
        c->trainable_mb = summarize_field(c, offsetof(qa_run_record, trainable_bytes), mb);
        c->gradient_mb = summarize_field(c, offsetof(qa_run_record, gradient_bytes), mb);
        c->optimizer_mb = summarize_field(c, offsetof(qa_run_record, optimizer_bytes), mb);
        c->activation_mb = summarize_field(c, offsetof(qa_run_record, activation_bytes), mb);
        c->deployed_mb = summarize_field(c, offsetof(qa_run_record, deployed_bytes), mb);
        c->peak_rss_mb = summarize_field(c, offsetof(qa_run_record, peak_rss_bytes), mb);
        c->step_ms = summarize_field(c, offsetof(qa_run_record, step_ms), 1.0);
        c->merge_s = summarize_field(c, offsetof(qa_run_record, merge_seconds), 1.0);
        c->step_med = median_field(c, offsetof(qa_run_record, step_ms));
        c->merge_med = median_field(c, offsetof(qa_run_record, merge_seconds));
        c->kernel = kernel_of(c);
        double x[QA_CELL_MAX_SEEDS];
        for (int s = 0; s < c->n; s++) {
            const qa_run_record *r = c->runs[s];
            x[s] = (r->frozen_bytes + r->trainable_bytes + r->gradient_bytes + r->optimizer_bytes) * mb;
        }
        c->train_mb = qa_stats_summarize(x, c->n);
        for (int s = 0; s < c->n; s++) {
            const qa_run_record *r = c->runs[s];
            x[s] = 0;
            for (int v = 0; v < r->n_eval; v++)
                if (!strcmp(r->eval[v].variant, c->variant)) x[s] = r->eval[v].sampling_ms;
        }
        c->sampling_ms = qa_stats_summarize(x, c->n);
        c->sampling_med = qa_stats_median_ci(x, c->n);
        int na = 0;
        double y[QA_CELL_MAX_SEEDS];
        for (int s = 0; s < c->n; s++) {
            const qa_run_record *r = c->runs[s];
            if (r->artifact_weights <= 0) continue;
            x[na] = r->artifact_file_bytes / 1024.0;
            y[na++] = 8.0 * r->artifact_payload_bytes / r->artifact_weights;
        }
        c->artifact_kib = qa_stats_summarize(x, na);
        c->stored_bpw = qa_stats_summarize(y, na);
        /* method measurements: the names of the first run; a run without one is left out */
        const qa_run_record *r0 = c->runs[0];
        for (int k = 0; k < r0->n_stats && c->n_stats < QA_CELL_MAX_STATS; k++) {
            int nv = 0;
            for (int s = 0; s < c->n; s++)
                for (int j = 0; j < c->runs[s]->n_stats; j++)
                    if (!strcmp(c->runs[s]->stat_name[j], r0->stat_name[k])) x[nv++] = c->runs[s]->stat_value[j];
            snprintf(c->stat_name[c->n_stats], sizeof c->stat_name[0], "%s", r0->stat_name[k]);
            c->stat[c->n_stats++] = qa_stats_summarize(x, nv);
        }
    }
    *out = cells;
    *nc_out = nc;
    return QA_OK;
}

int qa_cell_spec_parse(const char *text, qa_cell_spec *spec, qa_error *err) {
    char buf[160], *part[5] = {NULL, NULL, NULL, NULL, NULL};
    snprintf(buf, sizeof buf, "%s", text);
    int np = 0;
    for (char *q = buf; q && np < 5;) {
        part[np++] = q;
        q = strchr(q, ':');
        if (q) *q++ = 0;
    }
    if (np < 2 || !part[0][0] || !part[1][0])
        return qa_fail(err, QA_ERR_INPUT,
                       "cell '%s': expected method:bits[:deploy[:setting]][:rN], e.g. M:w4a8, M:w8a8:int or M:w4a8:int:r8 for a method M of qadapt list",
                       text);
    /* a part "r<N>" after the bits selects the rank (any rank when absent) */
    memset(spec, 0, sizeof *spec);
    for (int k = np - 1; k >= 2; k--)
        if (part[k][0] == 'r' && part[k][1] >= '0' && part[k][1] <= '9') {
            spec->rank = atoi(part[k] + 1);
            for (int j = k; j < np - 1; j++) part[j] = part[j + 1];
            part[--np] = NULL;
        }
    snprintf(spec->method, sizeof spec->method, "%.31s", part[0]);
    snprintf(spec->bits, sizeof spec->bits, "%.15s", part[1]);
    snprintf(spec->variant, sizeof spec->variant, "%.15s", part[2] && part[2][0] ? part[2] : (strcmp(part[1], "fp") ? "int" : "fp"));
    snprintf(spec->axes, sizeof spec->axes, "%.47s", part[3] ? part[3] : "");
    return QA_OK;
}

const qa_cell *qa_cell_find(const qa_cell *cells, int nc, const char *text, const char *dir, qa_error *err) {
    qa_cell_spec s;
    if (qa_cell_spec_parse(text, &s, err)) return NULL;
    for (int i = 0; i < nc; i++)
        if (!strcmp(cells[i].method, s.method) && !strcmp(cells[i].bits, s.bits) && !strcmp(cells[i].variant, s.variant) &&
            !strcmp(cells[i].axes, s.axes) && (s.rank == 0 || cells[i].rank == s.rank) && cells[i].n > 0)
            return &cells[i];
    qa_fail(err, QA_ERR_INPUT, "cell %s: no evaluated runs of method %s, bits %s, deploy %s%s%s in %s", text, s.method, s.bits,
            s.variant, s.axes[0] ? ", setting " : "", s.axes, dir);
    return NULL;
}
