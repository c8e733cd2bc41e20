/* qadapt project-sd: each registered method at the scale of SD-1.5's attention projections, on
 * SD-1.5's shapes with random weights, or on a real checkpoint's weights (--weights FILE.safetensors). */
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "harness/bench.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"
#include "harness/safetensors.h"

#define PROJECT_USAGE "usage: qadapt project-sd [--bits N] [--rank R] [--methods a,b,...] [--weights FILE.safetensors] " \
                      "[--pattern REGEX] [--json]"

/* SD-1.5's attention projections in its checkpoints (the original and the diffusers layout):
 * attn1 (self-attention) and attn2 (cross-attention) q, k, v and out weights. */
#define PROJECT_DEFAULT_PATTERN "attn[12]\\.(to_q|to_k|to_v|to_out\\.0)\\.weight$"

int qa_project_sd_parse(int argc, char **argv, qa_project_opts *o, qa_error *err) {
    memset(o, 0, sizeof *o);
    o->bits = 8;
    o->rank = 4;
    o->pattern = PROJECT_DEFAULT_PATTERN;
    const char *names = NULL;
    for (int i = 0; i < argc; i++) {
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0;
        if (!strcmp(argv[i], "--json")) o->json = 1;
        else if (!strcmp(argv[i], "--bits") && num_ok && v >= 2 && v <= 8) { o->bits = (int)v; i++; }
        else if (!strcmp(argv[i], "--rank") && num_ok && v <= 256) { o->rank = (int)v; i++; }
        else if (!strcmp(argv[i], "--methods") && more) names = argv[++i];
        else if (!strcmp(argv[i], "--weights") && more) o->weights = argv[++i];
        else if (!strcmp(argv[i], "--pattern") && more) o->pattern = argv[++i];
        else return qa_fail(err, QA_ERR_INPUT, "project-sd: bad argument '%s'\n" PROJECT_USAGE, argv[i]);
    }
    regex_t re;
    if (regcomp(&re, o->pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return qa_fail(err, QA_ERR_INPUT, "project-sd: --pattern '%s' is not an extended regular expression", o->pattern);
    regfree(&re);
    if (!names) { /* every registered method */
        for (const qa_method *const *m = qa_methods(); *m && o->n_methods < QA_PROJECT_MAX_METHODS; m++)
            o->methods[o->n_methods++] = *m;
        return QA_OK;
    }
    /* every name is checked before anything runs */
    char list[512];
    snprintf(list, sizeof list, "%s", names);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const qa_method *m = qa_method_find(name);
        if (!m) return qa_fail(err, QA_ERR_INPUT, "project-sd: unknown method '%s'\n" PROJECT_USAGE, name);
        if (o->n_methods == QA_PROJECT_MAX_METHODS) return qa_fail(err, QA_ERR_INPUT, "project-sd: too many methods");
        o->methods[o->n_methods++] = m;
    }
    return QA_OK;
}

/* One projection: its shape, how many layers of the model share it (for the latencies), and
 * its weights (real ones, or NULL: drawn). */
typedef struct {
    int in, out, count;
    char name[160];
} project_layer;

/* Per method, summed over the layers. */
typedef struct {
    double frozen, trainable, optim, deployed, workspace, t_merge, t_fb;
    double err_sq, ref_sq;   /* sum (W_deployed - W)^2 and sum W^2 */
    int n_stats;
    char stat_name[QA_MAX_DEPLOY_STATS][32];
    double stat_num[QA_MAX_DEPLOY_STATS], stat_den[QA_MAX_DEPLOY_STATS];
} project_totals;

/* The deployed weights of d in float, after the PTQ pass for methods that deploy in float. */
static void deployed_float(const qa_deployed *d, int bits, float *Wd) {
    qa_deployed_weights(d, Wd);
    if (!d->needs_ptq) return;
    float *delta = qa_alloc(sizeof(float) * d->out), *zero = qa_alloc(sizeof(float) * d->out);
    qa_quant_search_rows(Wd, d->out, d->in, bits, delta, zero);
    qa_quant_fake_rows(Wd, Wd, d->out, d->in, bits, delta, zero);
    qa_free(delta); qa_free(zero);
}

static void add_stats(project_totals *t, const qa_deployed *d) {
    for (int j = 0; j < d->n_stats; j++) {
        int k = 0;
        while (k < t->n_stats && strcmp(t->stat_name[k], d->stat_name[j])) k++;
        if (k == t->n_stats) {
            if (t->n_stats == QA_MAX_DEPLOY_STATS) continue;
            snprintf(t->stat_name[k], sizeof t->stat_name[k], "%s", d->stat_name[j]);
            t->n_stats++;
        }
        t->stat_num[k] += d->stat_num[j];
        t->stat_den[k] += d->stat_den[j];
    }
}

/* The method on one layer's weights W [out, in] (bias b): memory from its own accounting (x count),
 * its quantizer's statistics and the deployed weights' error against W. */
static int project_weights(const qa_method *m, const qa_project_opts *o, const project_layer *pl, const float *W,
                           const float *b, project_totals *t, qa_error *err) {
    qa_rng *r = qa_rng_new(7);
    qa_method_cfg cfg = {.w_bits = o->bits, .a_bits = 0, .rank = o->rank, .lora_scale = 1.0f, .base_lr = 1e-3f,
                         .sampling_steps = 20}; /* the method's own options at their defaults */
    qa_layer_init li = {pl->in, pl->out, W, b, &cfg, r, pl->name, NULL, NULL};
    void *st = qa_alloc(m->state_size);
    int rc = m->init(st, &li, err);
    if (!rc) {
        qa_bytes by = {0};
        m->bytes(st, &by);
        t->frozen += (double)by.frozen * pl->count;
        t->workspace += (double)by.workspace * pl->count;
        t->trainable += (double)by.trainable * pl->count;
        t->optim += (double)by.optimizer * pl->count;
        t->deployed += (double)by.deployed * pl->count;
        qa_deployed d;
        rc = m->merge(st, &d, err);
        if (!rc) {
            float *Wd = qa_alloc(sizeof(float) * (size_t)pl->in * pl->out);
            deployed_float(&d, o->bits, Wd);
            for (size_t i = 0; i < (size_t)pl->in * pl->out; i++) {
                double e = (double)Wd[i] - W[i];
                t->err_sq += e * e * pl->count;
                t->ref_sq += (double)W[i] * W[i] * pl->count;
            }
            add_stats(t, &d);
            qa_free(Wd);
            qa_deployed_free(&d);
        }
        m->destroy(st);
    }
    qa_free(st);
    qa_rng_free(r);
    return rc;
}

/* Tokens a layer of width w sees for a 512x512 image: 64 x 64 latents at width 320, halved
 * per side at each doubling of the width (4096 / 1024 / 256 at SD-1.5's 320 / 640 / 1280). */
static int tokens_for_width(int w) {
    double t = 4096.0 * (320.0 / w) * (320.0 / w);
    return t < 64 ? 64 : (t > 16384 ? 16384 : (int)t);
}

/* Merge and forward+backward latencies of the method at one shape, times the layers sharing it. */
static int project_latency(const qa_method *m, const qa_project_opts *o, int in, int out, int count, project_totals *t,
                           qa_error *err) {
    qa_bench_layer_opts bo = {.method = m->name, .tokens = tokens_for_width(out), .in = in, .out = out, .rank = o->rank,
                              .bits = o->bits, .repeats = 3, .json = 1, .merge = 1, .dtype = QA_DTYPE_F32};
    char buf[2048];
    FILE *mem = fmemopen(buf, sizeof buf, "w");
    if (!mem) return qa_fail(err, QA_ERR_RUN, "project-sd: fmemopen failed");
    int rc = qa_bench_layer(&bo, mem, err);
    fclose(mem);
    if (rc) return rc;
    const char *pf = strstr(buf, "\"ms_fwd_bwd\": "), *pm = strstr(buf, "\"ms_merge\": ");
    if (pf) t->t_fb += atof(pf + 14) * count;
    if (pm) t->t_merge += atof(pm + 12) * count;
    return QA_OK;
}

static void print_header(FILE *out, const qa_project_opts *o, int n_layers) {
    if (o->json) return;
    if (o->weights)
        fprintf(out, "%s: %d projections matching '%s' at W%d, rank %d (bytes summed over the layers; times on this CPU)\n",
                o->weights, n_layers, o->pattern, o->bits, o->rank);
    else
        fprintf(out, "SD-1.5's 128 attention projections at W%d, rank %d, random weights (bytes summed over the layers; "
                     "times on this CPU)\n", o->bits, o->rank);
    fprintf(out, "| method | frozen MB | workspace MB | trainable MB | optimizer MB | deployed MB | merge all (ms) "
                 "| fwd+bwd all (ms) | deployed weight error | quantizer statistics |\n"
                 "|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_method(FILE *out, const qa_project_opts *o, const qa_method *m, const project_totals *t) {
    double rel = t->ref_sq > 0 ? sqrt(t->err_sq / t->ref_sq) : 0;
    char stats[256] = "";
    size_t n = 0;
    for (int k = 0; k < t->n_stats && n < sizeof stats; k++) {
        if (t->stat_den[k] <= 0) continue; /* nothing to share out (e.g. the update's energy while B = 0) */
        double v = t->stat_num[k] / t->stat_den[k];
        if (o->json) n += (size_t)snprintf(stats + n, sizeof stats - n, ", \"%s\": %.6f", t->stat_name[k], v);
        else n += (size_t)snprintf(stats + n, sizeof stats - n, "%s%s %.3f%%", n ? ", " : "", t->stat_name[k], 100 * v);
    }
    if (o->json)
        fprintf(out, "{\"method\": \"%s\", \"bits\": %d, \"rank\": %d, \"frozen_mb\": %.6f, \"workspace_mb\": %.6f, "
                     "\"trainable_mb\": %.3f, "
                     "\"optimizer_mb\": %.3f, \"deployed_mb\": %.2f, \"merge_ms\": %.1f, \"fwd_bwd_ms\": %.1f, "
                     "\"deployed_rel_error\": %.6f%s}\n",
                m->name, o->bits, o->rank, t->frozen / 1e6, t->workspace / 1e6, t->trainable / 1e6, t->optim / 1e6,
                t->deployed / 1e6,
                t->t_merge, t->t_fb, rel, stats);
    else
        fprintf(out, "| %s | %.2f | %.2f | %.3f | %.3f | %.2f | %.1f | %.1f | %.5f | %s |\n", m->name, t->frozen / 1e6,
                t->workspace / 1e6, t->trainable / 1e6, t->optim / 1e6, t->deployed / 1e6, t->t_merge, t->t_fb, rel,
                n ? stats : "-");
    fflush(out);
}

/* The layers of a checkpoint whose names match the pattern, as [out, in] matrices. */
static int select_layers(const qa_safetensors *st, const char *pattern, project_layer **layers, int *n,
                         qa_error *err) {
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return qa_fail(err, QA_ERR_INPUT, "project-sd: --pattern '%s' is not an extended regular expression", pattern);
    *layers = qa_alloc(sizeof(project_layer) * (size_t)(st->n_tensors + 1));
    *n = 0;
    int rc = QA_OK;
    for (int i = 0; i < st->n_tensors && !rc; i++) {
        const qa_st_tensor *t = &st->tensors[i];
        if (regexec(&re, t->name, 0, NULL, 0) != 0) continue;
        int matrix = t->ndim == 2 || (t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1);
        if (!matrix || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > (1 << 20) || t->shape[1] > (1 << 20))
            rc = qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s' matches the pattern but is not a weight matrix [out, in]",
                         st->path, t->name);
        else if (strlen(t->name) >= sizeof(*layers)[0].name)
            rc = qa_fail(err, QA_ERR_INPUT, "%s: tensor name too long: '%s'", st->path, t->name);
        else {
            project_layer *pl = &(*layers)[(*n)++];
            pl->out = (int)t->shape[0];
            pl->in = (int)t->shape[1];
            pl->count = 1;
            snprintf(pl->name, sizeof pl->name, "%s", t->name);
        }
    }
    regfree(&re);
    if (!rc && *n == 0) rc = qa_fail(err, QA_ERR_INPUT, "%s: no tensor matches the pattern '%s'", st->path, pattern);
    if (rc) { qa_free(*layers); *layers = NULL; }
    return rc;
}

/* A layer's weights and bias (zeros when the checkpoint has none) from the checkpoint. */
static int read_layer(const qa_safetensors *st, const project_layer *pl, float *W, float *b, qa_error *err) {
    int rc = qa_safetensors_read_f32(st, qa_safetensors_find(st, pl->name), W, err);
    memset(b, 0, sizeof(float) * pl->out);
    size_t len = strlen(pl->name);
    if (rc || len < 6 || strcmp(pl->name + len - 6, "weight")) return rc;
    char bias_name[sizeof pl->name];
    snprintf(bias_name, sizeof bias_name, "%.*sbias", (int)(len - 6), pl->name);
    const qa_st_tensor *bt = qa_safetensors_find(st, bias_name);
    if (!bt) return QA_OK;
    if (qa_st_numel(bt) != pl->out)
        return qa_fail(err, QA_ERR_INPUT, "%s: '%s' has %lld values for %d outputs", st->path, bias_name,
                       (long long)qa_st_numel(bt), pl->out);
    return qa_safetensors_read_f32(st, bt, b, err);
}

/* SD-1.5's distinct projection shapes: width w in {320, 640, 1280} over 5, 5, 6 transformer
 * blocks; in = w (self-attention q, k, v, out and cross-attention q, out: 6 per block) or 768
 * (cross-attention k, v: 2 per block). */
static int sd15_layers(project_layer *layers) {
    const int widths[3] = {320, 640, 1280}, blocks[3] = {5, 5, 6};
    int n = 0;
    for (int wi = 0; wi < 3; wi++)
        for (int kind = 0; kind < 2; kind++) {
            project_layer *pl = &layers[n++];
            pl->out = widths[wi];
            pl->in = kind ? 768 : widths[wi];
            pl->count = blocks[wi] * (kind ? 2 : 6);
            snprintf(pl->name, sizeof pl->name, "sd15.w%d.%s", widths[wi], kind ? "cross_kv" : "proj");
        }
    return n;
}

/* Every method on every layer's weights (read once per layer). */
static int project_all_weights(const qa_project_opts *o, const qa_safetensors *st, const project_layer *layers, int n,
                               project_totals *tot, qa_error *err) {
    int rc = QA_OK;
    for (int i = 0; i < n && !rc; i++) {
        const project_layer *pl = &layers[i];
        float *W = qa_alloc(sizeof(float) * (size_t)pl->in * pl->out), *b = qa_alloc(sizeof(float) * pl->out);
        if (st) {
            rc = read_layer(st, pl, W, b, err);
            fprintf(stderr, "project-sd: %d/%d %s [%d, %d]\n", i + 1, n, pl->name, pl->out, pl->in);
        } else {
            qa_rng *r = qa_rng_new(7);
            qa_rng_fill_normal(r, W, (size_t)pl->in * pl->out, 0.02f);
            qa_rng_free(r);
        }
        for (int k = 0; k < o->n_methods && !rc; k++) rc = project_weights(o->methods[k], o, pl, W, b, &tot[k], err);
        qa_free(W); qa_free(b);
    }
    return rc;
}

/* Latencies per distinct shape (measured once, times the layers that share it). */
static int project_all_latencies(const qa_project_opts *o, const project_layer *layers, int n, project_totals *tot,
                                 qa_error *err) {
    int rc = QA_OK;
    for (int i = 0; i < n && !rc; i++) {
        int seen = 0, count = 0;
        for (int j = 0; j < n; j++) {
            int same = layers[j].in == layers[i].in && layers[j].out == layers[i].out;
            if (same && j < i) seen = 1;
            if (same) count += layers[j].count;
        }
        for (int k = 0; k < o->n_methods && !rc && !seen; k++)
            rc = project_latency(o->methods[k], o, layers[i].in, layers[i].out, count, &tot[k], err);
    }
    return rc;
}

int qa_project_sd(const qa_project_opts *o, FILE *out, qa_error *err) {
    qa_safetensors st;
    project_layer *layers = NULL;
    int n = 0, rc = QA_OK, have_file = o->weights != NULL;
    if (have_file) {
        rc = qa_safetensors_open(o->weights, &st, err);
        if (rc) return rc;
        rc = select_layers(&st, o->pattern, &layers, &n, err);
    } else {
        layers = qa_alloc(sizeof(project_layer) * 6);
        n = sd15_layers(layers);
    }
    project_totals *tot = qa_alloc(sizeof(project_totals) * (QA_PROJECT_MAX_METHODS + 1));
    if (!rc) rc = project_all_weights(o, have_file ? &st : NULL, layers, n, tot, err);
    if (!rc) rc = project_all_latencies(o, layers, n, tot, err);
    if (!rc) {
        int total_layers = 0;
        for (int i = 0; i < n; i++) total_layers += layers[i].count;
        print_header(out, o, total_layers);
        for (int k = 0; k < o->n_methods; k++) print_method(out, o, o->methods[k], &tot[k]);
    }
    qa_free(tot);
    qa_free(layers);
    if (have_file) qa_safetensors_close(&st);
    return rc;
}
