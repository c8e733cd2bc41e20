#include "harness/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cells.h"
#include "harness/results.h"
#include "harness/runs.h"
#include "harness/stats.h"

typedef qa_cell cell;

/* Paired loss difference against the baseline cell (same seeds), per cell. */
typedef struct { double dloss, dloss_ci, dloss_p; int has_delta; } delta;

static const char *deploy_label(const cell *c) {
    static char buf[48];
    return cells_deploy_label(c, buf, sizeof buf);
}

static void fmt_cell(char *buf, size_t len, const qa_summary *s, int digits) {
    if (s->n == 0) snprintf(buf, len, "-");
    else if (s->n == 1) snprintf(buf, len, "%.*f", digits, s->mean);
    else snprintf(buf, len, "%.*f ± %.*f", digits, s->mean, digits, s->ci95);
}

/* The paper's layout: one row per (method, deploy, rank), one column group per bit setting with
 * subject fidelity, prompt fidelity and held-out loss (mean ± CI), the best per column in bold. */
static void write_paper_layout(FILE *f, cell *cells, int nc) {
    char bits[16][16];
    int nb = 0;
    for (int i = 0; i < nc; i++) {
        int seen = 0;
        for (int b = 0; b < nb; b++) seen |= !strcmp(bits[b], cells[i].bits);
        if (!seen && nb < 16) snprintf(bits[nb++], sizeof bits[0], "%s", cells[i].bits);
    }
    const int mets[3] = {MET_SUBJECT, MET_PROMPT, MET_LOSS};
    fprintf(f, "| method | deploy | rank |");
    for (int b = 0; b < nb; b++) fprintf(f, " %s subject ↑ | %s prompt ↑ | %s held-out loss ↓ |", bits[b], bits[b], bits[b]);
    fprintf(f, "\n|---|---|---|");
    for (int b = 0; b < nb; b++) fprintf(f, "---|---|---|");
    fprintf(f, "\n");
    /* rows: distinct (method, deploy label, rank), where the deploy label of a W-bit cell is the
     * row's; FP cells ("FP") join the row of the same method's float deploy */
    for (int i = 0; i < nc; i++) {
        const char *lab = cells[i].w_bits == 0 ? "FP (before PTQ)" : deploy_label(&cells[i]);
        char label_i[48];
        snprintf(label_i, sizeof label_i, "%s", lab);
        int first = 1;
        for (int j = 0; j < i; j++) {
            const char *lj = cells[j].w_bits == 0 ? "FP (before PTQ)" : deploy_label(&cells[j]);
            if (!strcmp(cells[j].method, cells[i].method) && !strcmp(lj, label_i) && cells[j].rank == cells[i].rank &&
                !strcmp(cells[j].axes, cells[i].axes))
                first = 0;
        }
        if (!first) continue;
        fprintf(f, "| %s%s%s%s | %s | %d |", cells[i].method, cells[i].axes[0] ? " (" : "", cells[i].axes, cells[i].axes[0] ? ")" : "",
                cells[i].w_bits == 0 ? "FP" : label_i, cells[i].rank);
        for (int b = 0; b < nb; b++) {
            const cell *c = NULL;
            for (int j = 0; j < nc; j++) {
                const char *lj = cells[j].w_bits == 0 ? "FP (before PTQ)" : deploy_label(&cells[j]);
                if (!strcmp(cells[j].method, cells[i].method) && !strcmp(lj, label_i) && cells[j].rank == cells[i].rank &&
                    !strcmp(cells[j].axes, cells[i].axes) && !strcmp(cells[j].bits, bits[b]))
                    c = &cells[j];
            }
            for (int k = 0; k < 3; k++) {
                if (!c || c->sum[mets[k]].n == 0) { fprintf(f, " - |"); continue; }
                /* best in this column: among cells of this bit setting */
                int is_best = 1, others = 0;
                for (int j = 0; j < nc; j++) {
                    if (&cells[j] == c || strcmp(cells[j].bits, bits[b]) || cells[j].sum[mets[k]].n == 0) continue;
                    others++;
                    double x = c->sum[mets[k]].mean, y = cells[j].sum[mets[k]].mean;
                    if (qa_met_lower_better[mets[k]] ? y < x : y > x) is_best = 0;
                }
                char tmp[64];
                fmt_cell(tmp, sizeof tmp, &c->sum[mets[k]], mets[k] == MET_LOSS ? 5 : 4);
                fprintf(f, is_best && others ? " **%s** |" : " %s |", tmp);
            }
        }
        fprintf(f, "\n");
    }
}

/* What a method measured about its own merged layers (e.g. IntLoRA's W_int = 0 share), per cell. */
static void write_method_stats(FILE *f, const cell *cells, int nc) {
    int any = 0;
    for (int i = 0; i < nc; i++) any |= cells[i].n_stats > 0;
    if (!any) return;
    fprintf(f, "\nMethod measurements (pooled over the adapted layers of each run; mean ± 95%% CI over seeds):\n\n"
               "| method | bits | rank | setting | n | measurement | value |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nc; i++) {
        const cell *c = &cells[i];
        if (strcmp(c->variant, "int") != 0) continue; /* one row per run, not per deploy */
        for (int k = 0; k < c->n_stats; k++) {
            char v[64];
            fmt_cell(v, sizeof v, &c->stat[k], 4);
            fprintf(f, "| %s | %s | %d | %s | %d | %s | %s |\n", c->method, c->bits, c->rank, c->axes[0] ? c->axes : "-",
                    c->stat[k].n, c->stat_name[k], v);
        }
    }
}

/* Training memory of the adapted layers by category, timings and storage, per cell (means over
 * seeds): the efficiency columns of the paper, measured the same way for every method. */
static void write_efficiency(FILE *f, const cell *cells, int nc, FILE *csv) {
    if (f)
        fprintf(f, "\nEfficiency (MiB as allocated: frozen ... training total = the adapted layers; model activations = the "
                   "whole model's activations and their gradients at its largest batch; process peak RSS; per-run medians of "
                   "the training step; means over seeds):\n\n"
                   "| method | bits | rank | deploy | frozen | trainable | gradients | optimizer | training total | model activations | "
                   "process peak RSS | train step ms | merge s | sampling ms/img | deployed MiB | bits/weight | artifact KiB on disk | "
                   "stored bits/weight | PTQ needed |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    if (csv)
        fprintf(csv, "method,bits,rank,setting,deploy,n,frozen_mib,trainable_mib,gradient_mib,optimizer_mib,training_mib,activation_mib,peak_rss_mib,"
                     "train_step_ms,merge_s,sampling_ms_per_image,deployed_mib,bits_per_weight,artifact_kib,stored_bits_per_weight,needs_ptq\n");
    for (int i = 0; i < nc; i++) {
        const cell *c = &cells[i];
        if (c->n == 0) continue;
        char art[32] = "-", sbpw[32] = "-";
        if (c->artifact_kib.n) {
            snprintf(art, sizeof art, "%.1f", c->artifact_kib.mean);
            snprintf(sbpw, sizeof sbpw, "%.2f", c->stored_bpw.mean);
        }
        if (f)
            fprintf(f, "| %s%s%s%s | %s | %d | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f | %.0f | %.1f | %.3f | %.2f | %.3f | %.3g | %s | %s | %s |\n",
                    c->method, c->axes[0] ? " (" : "", c->axes, c->axes[0] ? ")" : "", c->bits, c->rank, deploy_label(c),
                    c->frozen_mb.mean, c->trainable_mb.mean, c->gradient_mb.mean, c->optimizer_mb.mean, c->train_mb.mean,
                    c->activation_mb.mean, c->peak_rss_mb.mean, c->step_ms.mean, c->merge_s.mean, c->sampling_ms.mean, c->deployed_mb.mean,
                    c->bits_pw, art, sbpw, c->w_bits == 0 ? "-" : (c->needs_ptq ? "yes" : "no"));
        if (csv)
            fprintf(csv, "%s,%s,%d,%s,%s,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.4g,%.6g,%.6g,%d\n", c->method, c->bits,
                    c->rank, c->axes, deploy_label(c), c->n, c->frozen_mb.mean, c->trainable_mb.mean, c->gradient_mb.mean,
                    c->optimizer_mb.mean, c->train_mb.mean, c->activation_mb.mean, c->peak_rss_mb.mean, c->step_ms.mean, c->merge_s.mean,
                    c->sampling_ms.mean, c->deployed_mb.mean, c->bits_pw, c->artifact_kib.n ? c->artifact_kib.mean : NAN,
                    c->stored_bpw.n ? c->stored_bpw.mean : NAN, c->needs_ptq);
    }
}

/* A - B on metric m: paired by seed when every seed of A has one in B (and a value per seed),
 * mean and 95% CI of the differences with a paired t-test; otherwise the difference of the
 * means, no CI (NaN) and Welch's p. Returns 1 when paired. */
int report_cell_difference(const cell *a, const cell *b, int m, double *mean, double *ci, double *p) {
    double x[QA_CELL_MAX_SEEDS], y[QA_CELL_MAX_SEEDS], d[QA_CELL_MAX_SEEDS];
    int k = 0, aligned = a->nm[m] == a->n && b->nm[m] == b->n;
    for (int i = 0; aligned && i < a->n; i++)
        for (int j = 0; j < b->n; j++)
            if (a->seeds[i] == b->seeds[j]) { x[k] = a->vals[m][i]; y[k] = b->vals[m][j]; d[k] = x[k] - y[k]; k++; }
    if (aligned && k == a->n && k >= 2) {
        qa_summary ds = stats_summarize(d, k);
        *mean = ds.mean;
        *ci = ds.ci95;
        *p = stats_paired_p(x, y, k, NULL);
        return 1;
    }
    *mean = a->sum[m].mean - b->sum[m].mean;
    *ci = NAN;
    *p = stats_welch_p(a->vals[m], a->nm[m], b->vals[m], b->nm[m], NULL, NULL);
    return 0;
}

const qa_cell *report_baseline_cell(const qa_cell *cells, int nc, const char *spec, const char *dir, qa_error *err) {
    if (spec) return qa_cell_find(cells, nc, spec, dir, err);
    for (int i = 0; i < nc; i++)
        if (cells[i].w_bits == 0 && cells[i].n > 0) return &cells[i];
    return &cells[0];
}

int report_write(const char *dir, FILE *out, qa_error *err) { return report_write_baseline(dir, NULL, out, err); }

int report_write_baseline(const char *dir, const char *baseline, FILE *out, qa_error *err) {
    qa_run_record *runs;
    int nr;
    int rc = runs_load(dir, &runs, &nr, err);
    if (rc) return rc;
    if (nr == 0) { runs_free(runs, 0); return qa_fail(err, QA_ERR_INPUT, "%s: no finished runs (*.h5) to report", dir); }
    cell *cells;
    int nc;
    cells_build(runs, nr, &cells, &nc);
    int style_tasks = 0, with_axes = 0;
    for (int i = 0; i < nr; i++) style_tasks |= strcmp(runs[i].task, "subject") != 0;
    for (int i = 0; i < nc; i++) with_axes |= cells[i].axes[0] != 0;
    delta *dl = qa_alloc(sizeof(delta) * (size_t)(nc + 1));
    memset(dl, 0, sizeof(delta) * (size_t)(nc + 1));
    const cell *base_cell = report_baseline_cell(cells, nc, baseline, dir, err);
    if (!base_cell) { qa_free(cells); qa_free(dl); runs_free(runs, nr); return QA_ERR_INPUT; }
    int base = (int)(base_cell - cells);
    for (int i = 0; i < nc; i++) {
        cell *c = &cells[i], *b = &cells[base];
        if (i == base || c->n == 0 || b->n == 0) continue;
        delta *dc = &dl[i];
        dc->has_delta = 1;
        report_cell_difference(c, b, MET_LOSS, &dc->dloss, &dc->dloss_ci, &dc->dloss_p);
    }
    /* best per column; none where every cell ties (or only one cell has a value) */
    int best[N_MET];
    for (int m = 0; m < N_MET; m++) {
        best[m] = -1;
        int tie = 1, have = 0;
        double first = 0;
        for (int i = 0; i < nc; i++) {
            if (cells[i].sum[m].n == 0) continue;
            if (!have) first = cells[i].sum[m].mean;
            else if (cells[i].sum[m].mean != first) tie = 0;
            have++;
            if (best[m] < 0) { best[m] = i; continue; }
            double x = cells[i].sum[m].mean, y = cells[best[m]].sum[m].mean;
            if (qa_met_lower_better[m] ? x < y : x > y) best[m] = i;
        }
        if (tie || have < 2) best[m] = -1;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", dir);
    FILE *md = fopen(path, "w");
    snprintf(path, sizeof path, "%s/report.tex", dir);
    FILE *tex = fopen(path, "w");
    snprintf(path, sizeof path, "%s/report.csv", dir);
    FILE *csv = fopen(path, "w");
    if (!md || !tex || !csv) {
        if (md) fclose(md);
        if (tex) fclose(tex);
        if (csv) fclose(csv);
        qa_free(cells); qa_free(dl); runs_free(runs, nr);
        return qa_fail(err, QA_ERR_RUN, "%s: cannot write report files", dir);
    }
    FILE *outs[2] = {md, out};
    char base_name[96];
    if (cells[base].w_bits) snprintf(base_name, sizeof base_name, "%s %s", cells[base].bits, deploy_label(&cells[base]));
    else snprintf(base_name, sizeof base_name, "%s", cells[base].bits);
    if (cells[base].axes[0]) {
        size_t l = strlen(base_name);
        snprintf(base_name + l, sizeof base_name - l, " %s", cells[base].axes);
    }
    char hdr[640];
    snprintf(hdr, sizeof hdr,
             "| method | deploy | bits | rank | n | %s ↓ | Δ loss vs %s %s (p) | %s ↑ | %s ↑ | bits/weight | %s ↑ | %s ↑ |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
             qa_met_titles[0], cells[base].method, base_name, qa_met_titles[1], qa_met_titles[2], qa_met_titles[3], qa_met_titles[4]);
    if (style_tasks) { /* two more columns: style score and FID */
        char *nl = strstr(hdr, "|\n");
        snprintf(nl, sizeof hdr - (size_t)(nl - hdr), "| %s ↑ | %s ↓ |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                 qa_met_titles[MET_STYLE], qa_met_titles[MET_FID]);
    }
    if (with_axes) { /* one more column: the ablation's setting (the grid axes in the run names) */
        char h2[640], *r = strstr(hdr, "| rank | n |"), *sep = strstr(hdr, "|\n|---");
        /* header up to rank, the new column, the rest of the header row with its newline, then
         * one more column in the separator row */
        snprintf(h2, sizeof h2, "%.*s| rank | setting | n |%.*s|---%s", (int)(r - hdr), hdr, (int)(sep + 2 - (r + 12)), r + 12, sep + 2);
        memcpy(hdr, h2, sizeof hdr);
    }
    for (int o = 0; o < 2; o++) if (outs[o]) fputs(hdr, outs[o]);
    fprintf(tex, "%% generated by qadapt report from %s\n\\begin{tabular}{lllrrllllll}\n\\toprule\n"
                 "method & deploy & bits & rank & $n$ & held-out loss $\\downarrow$ & $\\Delta$ loss & subject $\\uparrow$ & prompt $\\uparrow$ "
                 "& diversity $\\uparrow$ & prior $\\uparrow$ \\\\\n\\midrule\n", dir);
    fprintf(csv, "method,deploy,bits,rank,n,n_diverged,heldout_loss_mean,heldout_loss_ci95,delta_loss,delta_loss_ci95,delta_loss_p,"
                 "subject_fidelity_mean,subject_fidelity_ci95,prompt_fidelity_mean,prompt_fidelity_ci95,bits_per_weight,"
                 "diversity_mean,diversity_ci95,prior_preservation_mean,prior_preservation_ci95,setting,style_mean,style_ci95,"
                 "fid_mean,fid_ci95\n");
    qa_h5 *sf = NULL;
    snprintf(path, sizeof path, "%s/summary.h5", dir);
    rc = h5_create(path, &sf, err);
    for (int i = 0; i < nc && !rc; i++) {
        cell *c = &cells[i];
        char v[N_MET][80], d[96] = "-", ntxt[32];
        int digits[N_MET] = {5, 4, 4, 4, 3, 3, 2};
        for (int m = 0; m < N_MET; m++) {
            char tmp[64];
            fmt_cell(tmp, sizeof tmp, &c->sum[m], digits[m]);
            snprintf(v[m], sizeof v[m], i == best[m] ? "**%s**" : "%s", tmp);
        }
        if (i == base) snprintf(d, sizeof d, "(baseline)");
        else if (dl[i].has_delta) {
            const delta *dc = &dl[i];
            if (isnan(dc->dloss_p)) snprintf(d, sizeof d, "%+.5f", dc->dloss); /* one seed: no test */
            else if (isnan(dc->dloss_ci)) snprintf(d, sizeof d, "%+.5f (p=%.3g)", dc->dloss, dc->dloss_p);
            else snprintf(d, sizeof d, "%+.5f ± %.5f (p=%.3g)", dc->dloss, dc->dloss_ci, dc->dloss_p);
        }
        snprintf(ntxt, sizeof ntxt, c->n_diverged ? "%d (+%d diverged)" : "%d", c->n, c->n_diverged);
        for (int o = 0; o < 2; o++)
            if (outs[o]) {
                fprintf(outs[o], "| %s | %s | %s | %d |", c->method, deploy_label(c), c->bits, c->rank);
                if (with_axes) fprintf(outs[o], " %s |", c->axes[0] ? c->axes : "-");
                fprintf(outs[o], " %s | %s | %s | %s | %s | %.3g | %s | %s |", ntxt, v[0], d, v[1], v[2], c->bits_pw, v[3], v[4]);
                if (style_tasks) fprintf(outs[o], " %s | %s |", v[MET_STYLE], v[MET_FID]);
                fputc('\n', outs[o]);
            }
        char tl[N_MET][128];
        for (int m = 0; m < N_MET; m++) {
            char tmp[64];
            fmt_cell(tmp, sizeof tmp, &c->sum[m], digits[m]);
            char *pm = strstr(tmp, "±");
            if (pm) { *pm = 0; snprintf(tl[m], sizeof tl[m], "%.60s$\\pm$%.60s", tmp, pm + strlen("±")); }
            else snprintf(tl[m], sizeof tl[m], "%s", tmp);
            if (i == best[m]) { char t2[160]; snprintf(t2, sizeof t2, "\\textbf{%.127s}", tl[m]); memcpy(tl[m], t2, sizeof tl[m] - 1); tl[m][sizeof tl[m] - 1] = 0; }
        }
        char dtex[64] = "--";
        if (i != base && dl[i].has_delta) snprintf(dtex, sizeof dtex, "%+.5f", dl[i].dloss);
        fprintf(tex, "%s%s%s%s & %s & %s & %d & %d & %s & %s & %s & %s & %s & %s \\\\\n", c->method, c->axes[0] ? " (" : "", c->axes,
                c->axes[0] ? ")" : "", deploy_label(c), c->bits, c->rank,
                c->n, tl[0], dtex, tl[1], tl[2], tl[3], tl[4]);
        fprintf(csv, "%s,%s,%s,%d,%d,%d,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.8g,%.4g,%.8g,%.8g,%.8g,%.8g", c->method,
                deploy_label(c), c->bits, c->rank, c->n, c->n_diverged, c->sum[0].mean, c->sum[0].ci95,
                dl[i].has_delta ? dl[i].dloss : 0.0, dl[i].has_delta ? dl[i].dloss_ci : 0.0, dl[i].has_delta ? dl[i].dloss_p : NAN,
                c->sum[1].mean, c->sum[1].ci95, c->sum[2].mean, c->sum[2].ci95, c->bits_pw, c->sum[3].mean, c->sum[3].ci95,
                c->sum[4].mean, c->sum[4].ci95);
        fprintf(csv, ",%s,%.8g,%.8g,%.8g,%.8g\n", c->axes, c->sum[MET_STYLE].mean, c->sum[MET_STYLE].ci95,
                c->sum[MET_FID].n ? c->sum[MET_FID].mean : NAN, c->sum[MET_FID].ci95);
        char g[320];
        snprintf(g, sizeof g, "/summary/%s-%s-%s-r%d%s%s", c->method, c->variant, c->bits, c->rank, c->axes[0] ? "-" : "", c->axes);
        rc = h5_attr_set_f64(sf, g, "n", c->n, err);
        if (!rc) rc = h5_attr_set_f64(sf, g, "n_diverged", c->n_diverged, err);
        for (int m = 0; m < N_MET && !rc; m++) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s_mean", qa_met_names[m]);
            rc = h5_attr_set_f64(sf, g, nm, c->sum[m].mean, err);
            snprintf(nm, sizeof nm, "%s_ci95", qa_met_names[m]);
            if (!rc) rc = h5_attr_set_f64(sf, g, nm, c->sum[m].ci95, err);
        }
    }
    fprintf(tex, "\\bottomrule\n\\end{tabular}\n");
    /* diverged or failed runs, by name */
    int any = 0;
    for (int i = 0; i < nr; i++)
        if (strcmp(runs[i].status, "done") != 0) {
            for (int o = 0; o < 2; o++)
                if (outs[o]) fprintf(outs[o], "%s- run %s: %s %s\n", any ? "" : "\nNot evaluated:\n", runs[i].id, runs[i].status, runs[i].fail_reason);
            any = 1;
        }
    const char *note = "\nCells: mean ± 95% CI over seeds (t distribution); n = seeds. Δ loss: paired by seed when every seed "
                       "has a baseline run, Welch otherwise. Best per column in bold.\n";
    for (int o = 0; o < 2; o++) if (outs[o]) fputs(note, outs[o]);
    for (int o = 0; o < 2; o++)
        if (outs[o]) write_method_stats(outs[o], cells, nc);
    /* timings vary from run to run of the same sweep: their own files, apart from the tables */
    snprintf(path, sizeof path, "%s/efficiency.md", dir);
    FILE *ef = fopen(path, "w");
    if (ef) { write_efficiency(ef, cells, nc, NULL); fclose(ef); }
    snprintf(path, sizeof path, "%s/efficiency.csv", dir);
    ef = fopen(path, "w");
    if (ef) { write_efficiency(NULL, cells, nc, ef); fclose(ef); }

    fclose(md); fclose(tex); fclose(csv);
    snprintf(path, sizeof path, "%s/report_paper.md", dir);
    FILE *pl = fopen(path, "w");
    if (pl) {
        fprintf(pl, "Paper layout (methods as rows, bit settings as column groups; mean ± 95%% CI over seeds; best per column "
                    "in bold). FP rows show the method's float deploy.\n\n");
        write_paper_layout(pl, cells, nc);
        fclose(pl);
    }
    if (sf) { qa_error e2; int crc = h5_close(sf, &e2); if (!rc && crc) { *err = e2; rc = crc; } }
    qa_free(cells);
    qa_free(dl);
    runs_free(runs, nr);
    return rc;
}

/* ---- qadapt compare: one cell against another, every metric, paired by seed ---- */

int report_compare(const char *dir, const char *spec_a, const char *spec_b, FILE *out, qa_error *err) {
    qa_run_record *runs;
    int nr;
    int rc = runs_load(dir, &runs, &nr, err);
    if (rc) return rc;
    cell *cells;
    int nc;
    cells_build(runs, nr, &cells, &nc);
    const cell *a = qa_cell_find(cells, nc, spec_a, dir, err), *b = a ? qa_cell_find(cells, nc, spec_b, dir, err) : NULL;
    if (!a || !b) { qa_free(cells); runs_free(runs, nr); return QA_ERR_INPUT; }
    char la[48], lb[48];
    fprintf(out, "A = %s %s %s%s%s (n = %d), B = %s %s %s%s%s (n = %d), %s\n\n", a->method, a->bits, cells_deploy_label(a, la, sizeof la),
            a->axes[0] ? " " : "", a->axes, a->n, b->method, b->bits, cells_deploy_label(b, lb, sizeof lb), b->axes[0] ? " " : "", b->axes,
            b->n, dir);
    fprintf(out, "| metric | A | B | A - B | test | p | n |\n|---|---|---|---|---|---|---|\n");
    for (int m = 0; m < N_MET; m++) {
        if (a->nm[m] == 0 || b->nm[m] == 0) continue;
        char ta[64], tb[64], td[64];
        int digits = m == MET_LOSS ? 5 : (m == MET_FID ? 2 : 4);
        fmt_cell(ta, sizeof ta, &a->sum[m], digits);
        fmt_cell(tb, sizeof tb, &b->sum[m], digits);
        double mean, ci, p;
        int paired = report_cell_difference(a, b, m, &mean, &ci, &p);
        const char *test = paired ? "paired t" : "Welch t";
        int n = paired ? a->n : a->nm[m] + b->nm[m];
        if (paired) snprintf(td, sizeof td, "%+.*f ± %.*f", digits, mean, digits, ci);
        else snprintf(td, sizeof td, "%+.*f", digits, mean);
        fprintf(out, "| %s %s | %s | %s | %s | %s | %.3g | %d |\n", qa_met_titles[m], qa_met_lower_better[m] ? "↓" : "↑", ta, tb, td, test, p, n);
    }
    fprintf(out, "\nMeans ± 95%% CI over seeds; A - B paired by seed (mean ± 95%% CI of the per-seed differences) "
                 "when every seed of A has a run in B, Welch's t on the cell values otherwise.\n");
    qa_free(cells);
    runs_free(runs, nr);
    return QA_OK;
}
