#include "harness/runs.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "harness/results.h"

/* Natural order: digit runs compare by value, so r2 < r16 and s9 < s10. */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9') la++;
            while (b[lb] >= '0' && b[lb] <= '9') lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : (*b ? -1 : 0);
}

static int cmp_runs(const void *a, const void *b) {
    return natural_cmp(((const qa_run_record *)a)->id, ((const qa_run_record *)b)->id);
}

static double attr_or(qa_h5 *f, const char *obj, const char *name, double dflt) {
    double v;
    qa_error e;
    return h5_has_attr(f, obj, name) && h5_attr_get_f64(f, obj, name, &v, &e) == 0 ? v : dflt;
}

static int load_one(const char *path, qa_run_record *rec, qa_error *err) {
    memset(rec, 0, sizeof *rec);
    snprintf(rec->file, sizeof rec->file, "%s", path);
    qa_h5 *f;
    int rc = h5_open(path, 0, &f, err);
    if (rc) return rc;
    char names[4][64];
    int n = h5_list(f, "/runs", names, 4, err);
    if (n != 1) {
        h5_close(f, err);
        return qa_fail(err, QA_ERR_INPUT, "%s: expected exactly one group under /runs", path);
    }
    char grp[128];
    snprintf(grp, sizeof grp, "/runs/%s", names[0]);
    snprintf(rec->id, sizeof rec->id, "%s", names[0]);
    rc = h5_attr_get_str(f, grp, "method", rec->method, sizeof rec->method, err);
    if (!rc) rc = h5_attr_get_str(f, grp, "bits", rec->bits, sizeof rec->bits, err);
    if (!rc) rc = h5_attr_get_str(f, grp, "status", rec->status, sizeof rec->status, err);
    if (!rc) {
        rec->rank = (int)attr_or(f, grp, "rank", 0);
        rec->seed = (long)attr_or(f, grp, "seed", 0);
        rec->w_bits = (int)attr_or(f, grp, "w_bits", 0);
        rec->a_bits = (int)attr_or(f, grp, "a_bits", 0);
        rec->item_class = (int)attr_or(f, grp, "item_class", -1);
        rec->needs_ptq = (int)attr_or(f, grp, "needs_ptq", 0);
        qa_error e;
        if (h5_has_attr(f, grp, "fail_reason")) h5_attr_get_str(f, grp, "fail_reason", rec->fail_reason, sizeof rec->fail_reason, &e);
        snprintf(rec->task, sizeof rec->task, "subject");
        if (h5_has_attr(f, grp, "task")) h5_attr_get_str(f, grp, "task", rec->task, sizeof rec->task, &e);
        if (h5_has_attr(f, grp, "merge_arithmetic")) h5_attr_get_str(f, grp, "merge_arithmetic", rec->merge, sizeof rec->merge, &e);
        char p[200];
        snprintf(p, sizeof p, "%s/train", grp);
        if (h5_exists(f, p)) {
            void *data = NULL;
            int nd;
            int64_t dims[4];
            rc = h5_read(f, p, QA_H5_F64, &data, 0, &nd, dims, err);
            if (!rc) { rec->train = data; rec->n_train = (int)dims[0]; }
        }
        snprintf(p, sizeof p, "%s/memory", grp);
        if (h5_exists(f, p)) {
            rec->frozen_bytes = attr_or(f, p, "frozen_bytes", 0);
            rec->trainable_bytes = attr_or(f, p, "trainable_bytes", 0);
            rec->gradient_bytes = attr_or(f, p, "gradient_bytes", 0);
            rec->activation_bytes = attr_or(f, p, "activation_bytes", 0);
            rec->artifact_file_bytes = attr_or(f, p, "artifact_file_bytes", 0);
            rec->artifact_payload_bytes = attr_or(f, p, "artifact_payload_bytes", 0);
            rec->artifact_weights = attr_or(f, p, "artifact_weights", 0);
            rec->optimizer_bytes = attr_or(f, p, "optimizer_bytes", 0);
            rec->deployed_bytes = attr_or(f, p, "deployed_bytes", 0);
            rec->peak_rss_bytes = attr_or(f, p, "peak_rss_bytes", 0);
        }
        snprintf(p, sizeof p, "%s/method_stats", grp);
        if (h5_exists(f, p)) {
            int ns = h5_attr_list(f, p, rec->stat_name, 8, &e);
            for (int i = 0; i < ns; i++) rec->stat_value[rec->n_stats++] = attr_or(f, p, rec->stat_name[i], 0);
        }
        snprintf(p, sizeof p, "%s/timing", grp);
        if (h5_exists(f, p)) {
            rec->step_ms = attr_or(f, p, "train_step_median_ms", 0);
            rec->merge_seconds = attr_or(f, p, "merge_seconds", 0);
        }
        snprintf(p, sizeof p, "%s/eval", grp);
        if (!rc && h5_exists(f, p)) {
            char vn[QA_MAX_VARIANTS][64];
            int nv = h5_list(f, p, vn, QA_MAX_VARIANTS, err);
            for (int i = 0; i < nv && !rc; i++) {
                qa_run_eval *ev = &rec->eval[rec->n_eval++];
                snprintf(ev->variant, sizeof ev->variant, "%.63s", vn[i]);
                char q[400];
                snprintf(q, sizeof q, "%.200s/%.63s", p, vn[i]);
                ev->heldout_loss = attr_or(f, q, "heldout_loss", 0);
                ev->subject_fidelity = attr_or(f, q, "subject_fidelity", 0);
                ev->prompt_fidelity = attr_or(f, q, "prompt_fidelity", 0);
                ev->bits_per_weight = attr_or(f, q, "bits_per_weight", 0);
                ev->sampling_ms = attr_or(f, q, "sampling_ms_per_image", 0);
                ev->diversity = attr_or(f, q, "diversity", 0);
                ev->prior_preservation = attr_or(f, q, "prior_preservation", -1);
                ev->style_score = attr_or(f, q, "style_score", 0);
                ev->fid = attr_or(f, q, "fid", -1);
                char d[480];
                snprintf(d, sizeof d, "%s/heldout_per_image", q);
                void *data = NULL;
                int nd;
                int64_t dims[4];
                rc = h5_read(f, d, QA_H5_F64, &data, 0, &nd, dims, err);
                if (!rc) { ev->heldout_per_image = data; ev->n_images = (int)dims[0]; }
            }
        }
    }
    /* id = <method>-<bits>-r<rank>[-<axis values>]-s<seed>: keep the axis values */
    if (!rc) {
        char head[80];
        snprintf(head, sizeof head, "%s-%s-r%d-", rec->method, rec->bits, rec->rank);
        const char *tail = strrchr(rec->id, '-');
        size_t hl = strlen(head);
        if (tail && !strncmp(rec->id, head, hl) && rec->id + hl < tail)
            snprintf(rec->axes, sizeof rec->axes, "%.*s", (int)(tail - rec->id - hl), rec->id + hl);
    }
    qa_error cerr;
    h5_close(f, &cerr);
    return rc;
}

int runs_load(const char *dir, qa_run_record **out, int *n_out, qa_error *err) {
    DIR *d = opendir(dir);
    if (!d) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open results folder", dir);
    struct dirent *e;
    qa_run_record *runs = NULL;
    int n = 0, rc = 0;
    while ((e = readdir(d)) && !rc) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0 || strcmp(e->d_name, "summary.h5") == 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%.3800s/%.255s", dir, e->d_name);
        runs = realloc(runs, sizeof *runs * (size_t)(n + 1));
        rc = load_one(path, &runs[n], err);
        if (!rc) n++;
    }
    closedir(d);
    if (rc) { runs_free(runs, n); return rc; }
    if (n > 1) qsort(runs, (size_t)n, sizeof *runs, cmp_runs);
    *out = runs;
    *n_out = n;
    return QA_OK;
}

void runs_free(qa_run_record *runs, int n) {
    for (int i = 0; i < n; i++) {
        qa_free(runs[i].train);
        for (int j = 0; j < runs[i].n_eval; j++) qa_free(runs[i].eval[j].heldout_per_image);
    }
    free(runs);
}

int runs_samples(const qa_run_record *run, const char *which, uint8_t **pix, int *n, qa_error *err) {
    qa_h5 *f;
    int rc = h5_open(run->file, 0, &f, err);
    if (rc) return rc;
    char p[256];
    snprintf(p, sizeof p, "/runs/%s/samples/%s", run->id, which);
    void *data = NULL;
    int nd;
    int64_t dims[4];
    rc = h5_read(f, p, QA_H5_U8, &data, 0, &nd, dims, err);
    if (!rc) { *pix = data; *n = (int)dims[0]; }
    qa_error cerr;
    h5_close(f, &cerr);
    return rc;
}
