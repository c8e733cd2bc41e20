#include "harness/deploy.h"

#include <stdio.h>
#include <string.h>

#include "harness/quant.h"

/* every adapted layer's note, one per line (the first layer's alone can mislead) */
static char *collect_notes(const qa_dit *m, const qa_deploy *d) {
    if (d->n_layers == 0 || !d->layers[0].note[0]) return NULL;
    size_t cap = (size_t)d->n_layers * 200 + 1, off = 0;
    char *all = qa_alloc(cap);
    int li = 0;
    for (int i = 0; i < m->n_lin; i++) {
        if (!m->lin[i].method) continue;
        off += (size_t)snprintf(all + off, cap - off, "%s: %s\n", m->lin[i].name, d->layers[li++].note);
        if (off >= cap) break;
    }
    return all;
}

/* the method's own measurements, pooled over layers: sum(num) / sum(den) */
static void pool_stats(qa_deploy *d) {
    const qa_deployed *dep = d->layers;
    d->n_stats = d->n_layers ? dep[0].n_stats : 0;
    for (int q = 0; q < d->n_stats; q++) {
        double num = 0, den = 0;
        for (int i = 0; i < d->n_layers; i++)
            for (int j = 0; j < dep[i].n_stats; j++)
                if (!strcmp(dep[i].stat_name[j], dep[0].stat_name[q])) { num += dep[i].stat_num[j]; den += dep[i].stat_den[j]; }
        d->stat_name[q] = dep[0].stat_name[q];
        d->stat_value[q] = den > 0 ? num / den : 0.0;
    }
}

int qa_deploy_merge(qa_dit *m, qa_deploy *d, qa_error *err) {
    memset(d, 0, sizeof *d);
    double t0 = qa_now();
    int n_ad = 0, rc = QA_OK;
    for (int i = 0; i < m->n_lin; i++) n_ad += m->lin[i].method != NULL;
    d->layers = qa_alloc(sizeof(qa_deployed) * (size_t)n_ad);
    d->n_layers = n_ad;
    int k = 0;
    for (int i = 0; i < m->n_lin && !rc; i++)
        if (m->lin[i].method) rc = m->lin[i].method->merge(m->lin[i].state, &d->layers[k++], err);
    d->merge_seconds = qa_now() - t0;
    if (rc) { qa_deploy_free(d); return rc; }
    d->needs_ptq = n_ad > 0 && d->layers[0].needs_ptq;
    d->bits_per_weight = n_ad > 0 ? d->layers[0].bits_per_weight : 32;
    /* bits per weight over all adapted layers, weighted by their size */
    double wsum = 0, bsum = 0;
    for (int i = 0; i < n_ad; i++) {
        const qa_deployed *l = &d->layers[i];
        wsum += (double)l->in * l->out;
        bsum += l->bits_per_weight * l->in * l->out;
    }
    if (wsum > 0) d->bits_per_weight = bsum / wsum;
    d->notes = collect_notes(m, d);
    pool_stats(d);
    return QA_OK;
}

void qa_deploy_free(qa_deploy *d) {
    for (int i = 0; i < d->n_layers; i++) qa_deployed_free(&d->layers[i]);
    qa_free(d->layers);
    qa_free(d->notes);
    memset(d, 0, sizeof *d);
}

const char *qa_deploy_merge_name(const qa_deploy *d) { return qa_merge_names[d->n_layers ? d->layers[0].merge : 0]; }

const char *qa_deploy_note(const qa_deploy *d) { return d->n_layers ? d->layers[0].note : ""; }

void qa_deploy_set(qa_dit *m, const qa_deploy *d, int ptq_bits, int extra) {
    const int k = d->n_layers;
    size_t nk = (size_t)(k ? k : 1);
    float **w = qa_alloc(sizeof(float *) * nk), **dl = qa_alloc(sizeof(float *) * nk), **zp = qa_alloc(sizeof(float *) * nk);
    for (int j = 0; j < k; j++) {
        const qa_deployed *l = &d->layers[j];
        if (!l->w_fp && !l->w_int && extra < 0) continue; /* deployed through the method's forward */
        w[j] = qa_alloc(sizeof(float) * (size_t)l->in * l->out);
        if (extra >= 0) {
            QA_ASSERT(extra < l->n_extra);
            memcpy(w[j], l->extra_w[extra], sizeof(float) * (size_t)l->in * l->out);
            continue;
        }
        qa_deployed_weights(l, w[j]);
        if (ptq_bits > 0 && l->w_fp && !l->w_int) {
            /* PTQ of the merged float weight: section-0 quantizer, per channel, W bits */
            dl[j] = qa_alloc(sizeof(float) * l->out);
            zp[j] = qa_alloc(sizeof(float) * l->out);
            qa_quant_search_rows(l->w_fp, l->out, l->in, ptq_bits, dl[j], zp[j]);
            qa_quant_fake_rows(w[j], l->w_fp, l->out, l->in, ptq_bits, dl[j], zp[j]);
        }
    }
    qa_dit_set_deployed(m, w, dl, zp, ptq_bits);
    for (int j = 0; j < k; j++) { qa_free(w[j]); qa_free(dl[j]); qa_free(zp[j]); }
    qa_free(w); qa_free(dl); qa_free(zp);
}

int qa_deploy_artifact(const char *path, const qa_dit *m, const qa_deploy *d, int ptq_bits, qa_artifact_size *size,
                       qa_error *err) {
    return qa_artifact_write(path, m, d->layers, ptq_bits, size, err);
}
