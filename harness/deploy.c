#include "harness/deploy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/int8_multi.h"
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

const char *const qa_deploy_kernel_names[QA_KERNEL_COUNT] = {
    [QA_KERNEL_F32] = "f32", [QA_KERNEL_METHOD] = "f32 (own quantizers)", [QA_KERNEL_ROW] = "u8s8 per-row",
    [QA_KERNEL_PLANES] = "u8s8 planes", [QA_KERNEL_GROUPS] = "u8s8 group"};

/* The exponent of the lowest set bit of v != 0: v = odd * 2^e. */
static int low_exponent(float v) {
    int e;
    float f = frexpf(fabsf(v), &e);         /* |v| = f 2^e, f in [0.5, 1) */
    uint32_t mant = (uint32_t)ldexpf(f, 24); /* |v| = mant 2^(e - 24), exact */
    int tz = 0;
    while (!(mant & 1u)) { mant >>= 1; tz++; }
    return e - 24 + tz;
}

/* Row o of a shift merge as integers times the row's smallest power of two; 0 when an integer
 * would not fit int32 (or an entry is not finite). */
static int shift_row(const float *w, int in, int32_t *wi, float *scale) {
    int emin = 1 << 30;
    for (int k = 0; k < in; k++) {
        if (!isfinite(w[k])) return 0;
        if (w[k] != 0.f) { int e = low_exponent(w[k]); emin = e < emin ? e : emin; }
    }
    if (emin == 1 << 30) emin = 0; /* an all-zero row */
    for (int k = 0; k < in; k++) {
        double v = ldexp((double)w[k], -emin); /* exact: a whole number */
        if (fabs(v) >= 2147483647.0) return 0;
        wi[k] = (int32_t)v;
    }
    *scale = ldexpf(1.f, emin);
    return 1;
}

static const qa_stored_tensor *stored(const qa_deployed *l, const char *name) {
    for (int i = 0; i < l->n_stored; i++)
        if (!strcmp(l->stored[i].name, name)) return &l->stored[i];
    return NULL;
}

/* Group-wise codes among l's stored tensors ("codes" [out,in] unsigned, "scale" and "zero"
 * [G,out], G > 1) that give back l's float weights: W = scale (codes - zero) per group. */
static int group_form(const qa_deployed *l, qa_deploy_int_form *f) {
    const qa_stored_tensor *c = stored(l, "codes"), *sc = stored(l, "scale"), *z = stored(l, "zero");
    if (!l->w_fp || !c || !sc || !z || !c->i32 || !sc->f32 || !z->f32 || c->rows != l->out || c->cols != l->in) return 0;
    const int G = sc->rows, in = l->in, out = l->out;
    if (G < 2 || in % G || sc->cols != out || z->rows != G || z->cols != out) return 0;
    const int g = in / G;
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            size_t at = (size_t)(k / g) * out + o, i = (size_t)o * in + k;
            float w = sc->f32[at] * ((float)c->i32[i] - z->f32[at]);
            if (fabsf(w - l->w_fp[i]) > 1e-6f * (fabsf(l->w_fp[i]) + fabsf(sc->f32[at]))) return 0;
        }
    f->n_groups = G;
    f->codes = c->i32;
    f->group_scale = sc->f32;
    f->group_zero = z->f32;
    return 1;
}

/* When every row of w [out,in] spans at most 256 consecutive integers: *zero [out] (allocated)
 * such that w + zero lies in [0, 255], 128 where the row fits s8; else 0. */
static int row_codes(const int32_t *w, int in, int out, float **zero) {
    float *z = qa_alloc(sizeof(float) * out);
    for (int o = 0; o < out; o++) {
        int32_t lo = w[(size_t)o * in], hi = lo;
        for (int k = 1; k < in; k++) {
            int32_t v = w[(size_t)o * in + k];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if ((int64_t)hi - lo > 255) { qa_free(z); return 0; }
        z[o] = lo >= -128 && hi <= 127 ? 128.f : (float)-lo;
    }
    *zero = z;
    return 1;
}

void qa_deploy_int_form_of(const qa_deployed *l, qa_deploy_int_form *f) {
    memset(f, 0, sizeof *f);
    const size_t n = (size_t)l->in * l->out;
    if (l->needs_ptq) return; /* a float merge: its PTQ codes are the per-row form */
    if (group_form(l, f)) { f->kernel = QA_KERNEL_GROUPS; return; }
    if (!l->w_int && !(l->w_fp && l->merge == QA_MERGE_BIT_SHIFT)) return;
    f->w = qa_alloc(sizeof(int32_t) * n);
    f->scale = qa_alloc(sizeof(float) * l->out);
    int ok = 1;
    if (l->w_int) {
        memcpy(f->w, l->w_int, sizeof(int32_t) * n);
        memcpy(f->scale, l->row_scale, sizeof(float) * l->out);
    } else {
        for (int o = 0; o < l->out && ok; o++)
            ok = shift_row(l->w_fp + (size_t)o * l->in, l->in, f->w + (size_t)o * l->in, &f->scale[o]);
    }
    if (!ok || l->in > QA_INT8_MAX_K) { qa_deploy_int_form_free(f); return; }
    if (row_codes(f->w, l->in, l->out, &f->zero)) {
        f->planes = 1;
        f->kernel = QA_KERNEL_ROW;
        return;
    }
    f->planes = qa_int8_planes_needed(f->w, n);
    if (f->planes > QA_INT8_MAX_PLANES) { qa_deploy_int_form_free(f); return; }
    f->kernel = QA_KERNEL_PLANES;
}

void qa_deploy_int_form_free(qa_deploy_int_form *f) {
    qa_free(f->w);
    qa_free(f->scale);
    qa_free(f->zero);
    memset(f, 0, sizeof *f);
}

void qa_deploy_set(qa_dit *m, const qa_deploy *d, int ptq_bits, int extra) {
    const int k = d->n_layers;
    size_t nk = (size_t)(k ? k : 1);
    float **w = qa_alloc(sizeof(float *) * nk), **dl = qa_alloc(sizeof(float *) * nk), **zp = qa_alloc(sizeof(float *) * nk);
    int code_bits = ptq_bits;
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
        qa_deploy_int_form f;
        qa_deploy_int_form_of(l, &f);
        if (f.kernel == QA_KERNEL_ROW) {
            /* integers spanning <= 256 values per row: 8-bit codes w + zero with that zero point */
            dl[j] = f.scale;
            zp[j] = f.zero;
            f.scale = f.zero = NULL;
            if (ptq_bits == 0) code_bits = 8;
        }
        qa_deploy_int_form_free(&f);
        if (ptq_bits > 0 && l->w_fp && !l->w_int && !dl[j]) {
            /* PTQ of the merged float weight: section-0 quantizer, per channel, W bits */
            dl[j] = qa_alloc(sizeof(float) * l->out);
            zp[j] = qa_alloc(sizeof(float) * l->out);
            qa_quant_search_rows(l->w_fp, l->out, l->in, ptq_bits, dl[j], zp[j]);
            qa_quant_fake_rows(w[j], l->w_fp, l->out, l->in, ptq_bits, dl[j], zp[j]);
        }
    }
    qa_dit_set_deployed(m, w, dl, zp, code_bits);
    for (int j = 0; j < k; j++) { qa_free(w[j]); qa_free(dl[j]); qa_free(zp[j]); }
    qa_free(w); qa_free(dl); qa_free(zp);
}

/* The planes or groups kernel of form f into L: its kernel, or F32 when f has neither (or the
 * kernel refuses it). */
static qa_deploy_kernel multi_init(qa_int8_multi *L, const qa_deploy_int_form *f, int in, int out, const float *bias) {
    int rc = -1;
    if (f->kernel == QA_KERNEL_PLANES) rc = qa_int8_planes_init(L, f->w, f->scale, in, out, bias);
    else if (f->kernel == QA_KERNEL_GROUPS) rc = qa_int8_groups_init(L, f->codes, f->group_scale, f->group_zero, f->n_groups, in, out, bias);
    return rc ? QA_KERNEL_F32 : f->kernel;
}

/* Slot s on the planes or groups kernel for its deployed layer l; the kernel it then runs on. */
static qa_deploy_kernel attach_multi(qa_linear *s, const qa_deployed *l, qa_group_kernel group, int *planes) {
    qa_deploy_int_form f;
    qa_deploy_int_form_of(l, &f);
    if (f.kernel == QA_KERNEL_GROUPS && group != QA_GROUP_KERNEL_U8S8) f.kernel = QA_KERNEL_F32;
    s->i8m = qa_alloc(sizeof(qa_int8_multi));
    qa_deploy_kernel c = multi_init(s->i8m, &f, s->in, s->out, s->b);
    *planes = f.planes;
    qa_deploy_int_form_free(&f);
    if (c == QA_KERNEL_F32) {
        qa_free(s->i8m);
        s->i8m = NULL;
    }
    return c;
}

qa_deploy_kernel qa_deploy_layer_init(qa_deploy_layer *L, const qa_deployed *l, const float *W, const float *dl,
                                      const float *zp, int in, int out, const float *bias, qa_group_kernel group) {
    memset(L, 0, sizeof *L);
    qa_deploy_int_form f;
    memset(&f, 0, sizeof f);
    if (!(dl && zp) && l) qa_deploy_int_form_of(l, &f);
    if (f.kernel == QA_KERNEL_GROUPS && group != QA_GROUP_KERNEL_U8S8) f.kernel = QA_KERNEL_F32;
    if (dl && zp) L->kernel = qa_int8_linear_init(&L->row, W, dl, zp, in, out, bias) ? QA_KERNEL_F32 : QA_KERNEL_ROW;
    else if (f.kernel == QA_KERNEL_ROW)
        L->kernel = qa_int8_linear_init(&L->row, W, f.scale, f.zero, in, out, bias) ? QA_KERNEL_F32 : QA_KERNEL_ROW;
    else L->kernel = multi_init(&L->multi, &f, in, out, bias);
    if (L->kernel == QA_KERNEL_PLANES) snprintf(L->name, sizeof L->name, "u8s8 %d-plane", f.planes);
    else snprintf(L->name, sizeof L->name, "%s", qa_deploy_kernel_names[L->kernel]);
    qa_deploy_int_form_free(&f);
    return L->kernel;
}

void qa_deploy_layer_forward(qa_deploy_layer *L, const qa_actq *aq, const float *x, float *y, int M) {
    QA_ASSERT(L->kernel != QA_KERNEL_F32);
    if (L->kernel == QA_KERNEL_ROW) qa_int8_linear_forward(&L->row, aq, x, y, M);
    else qa_int8_multi_forward(&L->multi, aq, x, y, M);
}

void qa_deploy_layer_free(qa_deploy_layer *L) {
    if (L->kernel == QA_KERNEL_ROW) qa_int8_linear_free(&L->row);
    else if (L->kernel != QA_KERNEL_F32) qa_int8_multi_free(&L->multi);
    memset(L, 0, sizeof *L);
}

/* "u8s8 2-plane", or with several kernels each with its layer count: "u8s8 per-row 5 + u8s8 2-plane 19" */
static void describe_kernels(qa_deploy_kernels *k, int planes_min) {
    int kinds = 0, off = 0;
    for (int c = 0; c < QA_KERNEL_COUNT; c++) kinds += k->adapted[c] > 0;
    for (int c = 0; c < QA_KERNEL_COUNT; c++) {
        if (!k->adapted[c]) continue;
        char name[48];
        if (c == QA_KERNEL_PLANES && planes_min < k->planes_max) snprintf(name, sizeof name, "u8s8 %d-%d-plane", planes_min, k->planes_max);
        else if (c == QA_KERNEL_PLANES) snprintf(name, sizeof name, "u8s8 %d-plane", k->planes_max);
        else snprintf(name, sizeof name, "%s", qa_deploy_kernel_names[c]);
        if (kinds > 1) off += snprintf(k->text + off, sizeof k->text - (size_t)off, "%s%s %d", off ? " + " : "", name, k->adapted[c]);
        else off += snprintf(k->text + off, sizeof k->text - (size_t)off, "%s", name);
        if (off >= (int)sizeof k->text) break;
    }
    if (!kinds) snprintf(k->text, sizeof k->text, "-");
}

void qa_deploy_enable_int8(qa_dit *m, const qa_deploy *d, qa_group_kernel group, qa_deploy_kernels *k) {
    memset(k, 0, sizeof *k);
    k->int8_layers = qa_dit_enable_int8(m);
    int j = 0, planes_min = QA_INT8_MAX_PLANES;
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        if (!s->method) continue;
        const qa_deployed *l = &d->layers[j++];
        qa_deploy_kernel c = QA_KERNEL_F32;
        int planes = 0;
        if (s->method->flags & QA_METHOD_OWNS_ACT_QUANT) c = QA_KERNEL_METHOD;
        else if (s->i8) c = QA_KERNEL_ROW;
        else if (s->W_deploy && s->actq.bits == 8 && s->actq.calibrated) c = attach_multi(s, l, group, &planes);
        if (c == QA_KERNEL_PLANES) {
            k->planes_max = planes > k->planes_max ? planes : k->planes_max;
            planes_min = planes < planes_min ? planes : planes_min;
        }
        k->int8_layers += c == QA_KERNEL_PLANES || c == QA_KERNEL_GROUPS;
        k->adapted[c]++;
    }
    describe_kernels(k, planes_min);
}

int qa_deploy_artifact(const char *path, const qa_dit *m, const qa_deploy *d, int ptq_bits, qa_artifact_size *size,
                       qa_error *err) {
    return qa_artifact_write(path, m, d->layers, ptq_bits, size, err);
}
