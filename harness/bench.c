#include "harness/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/backend.h"
#include "harness/checkpoint.h"
#include "harness/deploy.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/model.h"
#include "harness/int8.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"

#define BENCH_USAGE "usage: qadapt bench-layer --method M --tokens T --in I --out O --rank R --bits N " \
                    "[--json] [--merge] [--deployed] [--group-kernel f32|u8s8] [--repeats K] [--dtype f32|bf16]"

int qa_bench_layer_parse(int argc, char **argv, qa_bench_layer_opts *o, qa_error *err) {
    *o = (qa_bench_layer_opts){"linear", 1568, 128, 128, 4, 8, 20, 0, 0, 0, QA_GROUP_KERNEL_F32, QA_DTYPE_F32};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0 && v <= 1000000;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--merge")) o->merge = 1;
        else if (!strcmp(a, "--deployed")) o->deployed = 1;
        else if (!strcmp(a, "--group-kernel") && more && (!strcmp(argv[i + 1], "f32") || !strcmp(argv[i + 1], "u8s8")))
            o->group_kernel = !strcmp(argv[++i], "u8s8") ? QA_GROUP_KERNEL_U8S8 : QA_GROUP_KERNEL_F32;
        else if (!strcmp(a, "--method") && more) { o->method = argv[++i]; }
        else if (!strcmp(a, "--tokens") && num_ok) { o->tokens = (int)v; i++; }
        else if (!strcmp(a, "--in") && num_ok) { o->in = (int)v; i++; }
        else if (!strcmp(a, "--out") && num_ok) { o->out = (int)v; i++; }
        else if (!strcmp(a, "--rank") && num_ok) { o->rank = (int)v; i++; }
        else if (!strcmp(a, "--bits") && num_ok && v <= 8) { o->bits = (int)v; i++; }
        else if (!strcmp(a, "--repeats") && num_ok) { o->repeats = (int)v; i++; }
        else if (!strcmp(a, "--dtype") && more && qa_dtype_parse(argv[i + 1], &o->dtype) == QA_OK) i++;
        else return qa_fail(err, QA_ERR_INPUT, "bench-layer: bad argument '%s'\n" BENCH_USAGE, a);
    }
    if (strcmp(o->method, "linear") && !qa_method_find(o->method))
        return qa_fail(err, QA_ERR_INPUT, "bench-layer: unknown method '%s' (linear or a registered method)\n" BENCH_USAGE,
                       o->method);
    if (o->bits < 2) return qa_fail(err, QA_ERR_INPUT, "bench-layer: --bits must be 2..8\n" BENCH_USAGE);
    return QA_OK;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The deployed layer's forward on the kernel the deploy chooses (harness/deploy.h): the PTQ
 * codes of a float merge (and of the plain linear) at N bits per row, a method's own integer
 * form (per-row codes, planes, groups) on the u8 x s8 kernel, else a float matmul of the
 * dequantized deployed weights. */
static int time_deployed(const qa_bench_layer_opts *o, const qa_method *m, void *state, const float *W, const float *b,
                         const float *x, float *y, double *t, char *dep_kind, size_t kind_len, double *ms_dep, qa_error *err) {
    const int M = o->tokens, in = o->in, n_out = o->out, K = o->repeats, warm = 3;
    int rc = QA_OK, ptq = 1;
    float *Wd = qa_alloc(sizeof(float) * in * n_out), *dl = qa_alloc(sizeof(float) * n_out), *z = qa_alloc(sizeof(float) * n_out);
    memcpy(Wd, W, sizeof(float) * in * n_out);
    qa_deployed d;
    memset(&d, 0, sizeof d);
    if (m) {
        rc = m->merge(state, &d, err);
        if (!rc) qa_deployed_weights(&d, Wd);
        ptq = !rc && d.needs_ptq;
    }
    if (ptq) {
        qa_quant_search_rows(Wd, n_out, in, o->bits, dl, z);
        qa_quant_fake_rows(Wd, Wd, n_out, in, o->bits, dl, z);
    }
    qa_actq aq = {8, 0, 0, 0};
    float *xh = qa_alloc(sizeof(float) * (size_t)M * in);
    qa_actq_forward(&aq, xh, x, (size_t)M * in);
    qa_deploy_layer L;
    int own_quant = m && (m->flags & QA_METHOD_OWNS_ACT_QUANT); /* its forward, in float */
    qa_deploy_kernel kernel = own_quant ? QA_KERNEL_F32 : qa_deploy_layer_init(&L, m ? &d : NULL, Wd, ptq ? dl : NULL, ptq ? z : NULL, in, n_out, b,
                                                                                  (qa_group_kernel)o->group_kernel);
    snprintf(dep_kind, kind_len, "%s", kernel == QA_KERNEL_F32 ? "f32" : L.name);
    for (int i = 0; i < K + warm && !rc; i++) {
        double t0 = qa_now();
        if (kernel != QA_KERNEL_F32) qa_deploy_layer_forward(&L, &aq, x, y, M);
        else qa_linear_forward(y, xh, Wd, b, M, in, n_out);
        t[i] = qa_now() - t0;
    }
    if (kernel != QA_KERNEL_F32) qa_deploy_layer_free(&L);
    if (m && !rc) qa_deployed_free(&d);
    if (!rc) *ms_dep = 1e3 * median(t + warm, K);
    qa_free(Wd); qa_free(dl); qa_free(z); qa_free(xh);
    return rc;
}

int qa_bench_layer(const qa_bench_layer_opts *o, FILE *out, qa_error *err) {
    const int M = o->tokens, in = o->in, n_out = o->out, K = o->repeats, warm = 3;
    qa_rng *r = qa_rng_new(123);
    float *W = qa_alloc(sizeof(float) * in * n_out), *b = qa_alloc(sizeof(float) * n_out);
    float *x = qa_alloc(sizeof(float) * (size_t)M * in), *y = qa_alloc(sizeof(float) * (size_t)M * n_out);
    float *dy = qa_alloc(sizeof(float) * (size_t)M * n_out), *dx = qa_alloc(sizeof(float) * (size_t)M * in);
    float *dW = qa_alloc(sizeof(float) * in * n_out), *db = qa_alloc(sizeof(float) * n_out);
    qa_rng_fill_normal(r, W, (size_t)in * n_out, 0.05f);
    qa_rng_fill_normal(r, x, (size_t)M * in, 1.0f);
    qa_rng_fill_normal(r, dy, (size_t)M * n_out, 1.0f);
    double *t = qa_alloc(sizeof(double) * (size_t)(K + warm));
    const qa_method *m = strcmp(o->method, "linear") ? qa_method_find(o->method) : NULL;
    void *state = NULL;
    int rc = QA_OK;
    if (m) {
        qa_method_cfg cfg = {.w_bits = o->bits, .a_bits = 0, .rank = o->rank, .lora_scale = 1.0f, .base_lr = 1e-3f,
                             .sampling_steps = 20}; /* the method's own options at their defaults */
        qa_step_ctx step = {NULL, 1, M, 1000, o->dtype}; /* the training dtype of the frozen base product */
        float *tt = qa_alloc(sizeof(float));
        step.t = tt;
        qa_layer_init li = {in, n_out, W, b, &cfg, r, "bench", NULL, &step};
        state = qa_alloc(m->state_size);
        rc = m->init(state, &li, err);
        if (!rc) {
            m->forward(state, x, y, M); /* calibration happens on the first forward */
            qa_param ps[8];
            int np = m->params(state, ps, 8);
            for (int p = 0; p < np; p++)
                if (!strcmp(ps[p].name, "lora_B")) qa_rng_fill_normal(r, ps[p].data, ps[p].n, 0.01f);
            for (int i = 0; i < K + warm; i++) {
                double t0 = qa_now();
                m->forward(state, x, y, M);
                m->backward(state, dy, dx, M);
                t[i] = qa_now() - t0;
            }
        }
        qa_free(tt);
    } else if (o->dtype == QA_DTYPE_BF16) {
        qa_linear_bf16 L;
        qa_linear_bf16_init(&L, M, in, n_out);
        for (int i = 0; i < K + warm; i++) {
            double t0 = qa_now();
            qa_linear_forward_bf16(&L, y, x, W, b, M);
            memset(dx, 0, sizeof(float) * (size_t)M * in);
            qa_linear_backward_bf16(&L, dx, dW, db, dy, M);
            t[i] = qa_now() - t0;
        }
        qa_linear_bf16_free(&L);
    } else {
        for (int i = 0; i < K + warm; i++) {
            double t0 = qa_now();
            qa_linear_forward(y, x, W, b, M, in, n_out);
            memset(dx, 0, sizeof(float) * (size_t)M * in);
            qa_linear_backward(dx, dW, db, dy, x, W, M, in, n_out);
            t[i] = qa_now() - t0;
        }
    }
    double ms_fb = rc ? 0 : 1e3 * median(t + warm, K), ms_merge = -1, ms_dep = -1;
    double flops = 3.0 * 2.0 * M * in * n_out; /* forward, dx and dW matmuls of the layer */
    if (!rc && o->merge && m) {
        for (int i = 0; i < K; i++) {
            qa_deployed d;
            double t0 = qa_now();
            rc = m->merge(state, &d, err);
            if (!rc && d.needs_ptq && d.w_fp) {
                float *dl = qa_alloc(sizeof(float) * n_out), *z = qa_alloc(sizeof(float) * n_out);
                float *wq = qa_alloc(sizeof(float) * in * n_out);
                qa_quant_search_rows(d.w_fp, n_out, in, o->bits, dl, z);
                qa_quant_fake_rows(wq, d.w_fp, n_out, in, o->bits, dl, z);
                qa_free(dl); qa_free(z); qa_free(wq);
            }
            t[i] = qa_now() - t0;
            qa_deployed_free(&d);
            if (rc) break;
        }
        if (!rc) ms_merge = 1e3 * median(t, K);
    }
    char dep_kind[32] = "none";
    if (!rc && o->deployed) rc = time_deployed(o, m, state, W, b, x, y, t, dep_kind, sizeof dep_kind, &ms_dep, err);
    if (!rc) {
        const char *kern = "";
        char kernels[1024];
        qa_backend_kernels(kernels, sizeof kernels);
        kern = kernels;
        if (o->json)
            fprintf(out, "{\"method\": \"%s\", \"dtype\": \"%s\", \"tokens\": %d, \"in\": %d, \"out\": %d, \"rank\": %d, \"bits\": %d, "
                         "\"ms_fwd_bwd\": %.4f, \"gflops_fwd_bwd\": %.2f, \"ms_merge\": %.4f, \"ms_deployed\": %.4f, "
                         "\"deployed_kernel\": \"%s\", \"repeats\": %d, \"kernels\": \"%s\"}\n",
                    o->method, qa_dtype_name(o->dtype), M, in, n_out, o->rank, o->bits, ms_fb, flops / (ms_fb * 1e-3) * 1e-9, ms_merge, ms_dep,
                    dep_kind, K, kern);
        else {
            fprintf(out, "%s (%s): tokens %d, %dx%d, rank %d, %d bits: forward+backward %.3f ms (%.1f GFLOP/s of the layer's matmuls)",
                    o->method, qa_dtype_name(o->dtype), M, in, n_out, o->rank, o->bits, ms_fb, flops / (ms_fb * 1e-3) * 1e-9);
            if (ms_merge >= 0) fprintf(out, ", merge %.3f ms", ms_merge);
            if (ms_dep >= 0) fprintf(out, ", deployed forward %.3f ms (%s)", ms_dep, dep_kind);
            fprintf(out, "\n");
        }
    }
    if (m && state) { m->destroy(state); }
    qa_free(state);
    qa_free(W); qa_free(b); qa_free(x); qa_free(y); qa_free(dy); qa_free(dx); qa_free(dW); qa_free(db); qa_free(t);
    qa_rng_free(r);
    return rc;
}

#define MODEL_USAGE                                                                                          \
    "usage: qadapt bench-model [--checkpoint P] [--batch B] [--steps S] [--repeats K] [--train-only] "          \
    "[--int8-attention] [--json]"

int qa_bench_model_parse(int argc, char **argv, qa_bench_model_opts *o, qa_error *err) {
    *o = (qa_bench_model_opts){"results/pretrained/dit.h5", 32, 10, 0, 3, 0, 0};
    for (int i = 0; i < argc; i++) {
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0 && v <= 4096;
        if (!strcmp(argv[i], "--json")) o->json = 1;
        else if (!strcmp(argv[i], "--train-only")) o->train_only = 1;
        else if (!strcmp(argv[i], "--int8-attention")) o->int8_attention = 1;
        else if (!strcmp(argv[i], "--checkpoint") && more) o->checkpoint = argv[++i];
        else if (!strcmp(argv[i], "--batch") && num_ok) { o->batch = (int)v; i++; }
        else if (!strcmp(argv[i], "--steps") && num_ok) { o->steps = (int)v; i++; }
        else if (!strcmp(argv[i], "--repeats") && num_ok && v <= 100) { o->repeats = (int)v; i++; }
        else return qa_fail(err, QA_ERR_INPUT, "bench-model: bad argument '%s'\n" MODEL_USAGE, argv[i]);
    }
    return QA_OK;
}

/* One synthetic training batch for the denoiser at batch B. */
typedef struct {
    int B;
    float *x, *eps, *pred, *d, *t;
    int *y;
} train_batch;

static train_batch train_batch_new(int B, qa_rng *r) {
    const size_t n = (size_t)B * 784;
    train_batch tb = {B, qa_alloc(sizeof(float) * n), qa_alloc(sizeof(float) * n), qa_alloc(sizeof(float) * n),
                      qa_alloc(sizeof(float) * n), qa_alloc(sizeof(float) * B), qa_alloc(sizeof(int) * B)};
    qa_rng_fill_normal(r, tb.x, n, 1.0f);
    qa_rng_fill_normal(r, tb.eps, n, 1.0f);
    for (int b = 0; b < B; b++) { tb.t[b] = (float)(b * 997 % 1000); tb.y[b] = b % 10; }
    return tb;
}

static void train_batch_free(train_batch *tb) {
    qa_free(tb->x); qa_free(tb->eps); qa_free(tb->pred); qa_free(tb->d); qa_free(tb->t); qa_free(tb->y);
}

/* CPU seconds used by this process so far, all threads (on a shared machine it leaves out the
 * time other processes held the cores). */
static double process_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wall seconds of one training step (forward, loss, backward); its CPU seconds in *cpu when not NULL. */
static double time_train_step(qa_dit *m, train_batch *tb, double *cpu) {
    double t0 = qa_now(), c0 = process_cpu_seconds();
    if (m->train_base) qa_dit_zero_grads(m);
    qa_dit_forward(m, tb->x, tb->t, tb->y, tb->B, tb->pred);
    qa_mse_loss(tb->pred, tb->eps, (size_t)tb->B * 784, tb->d);
    qa_dit_backward(m, tb->d);
    if (cpu) *cpu = process_cpu_seconds() - c0;
    return qa_now() - t0;
}

/* Median seconds of `steps` repeats of one training step at batch B (after 2 warm-up steps). */
static double time_train_steps(qa_dit *m, int B, int steps, qa_rng *r) {
    train_batch tb = train_batch_new(B, r);
    double *ts = qa_alloc(sizeof(double) * (size_t)(steps + 2));
    for (int i = 0; i < steps + 2; i++) ts[i] = time_train_step(m, &tb, NULL);
    double med = median(ts + 2, steps);
    train_batch_free(&tb);
    qa_free(ts);
    return med;
}

/* Medians of the f32 and the bf16 training step: wall seconds and process CPU seconds. */
typedef struct { double wall_f32, wall_bf16, cpu_f32, cpu_bf16; } dtype_times;

/* The full training step in f32 and in bf16, interleaved step by step (so both see the same
 * machine load), after 2 warm-up steps of each: medians of `steps` repeats of each. */
static dtype_times time_train_dtypes(qa_dit *m, int B, int steps, qa_rng *r) {
    train_batch tb = train_batch_new(B, r);
    const size_t n = (size_t)steps + 2;
    double *wall = qa_alloc(sizeof(double) * 2 * n), *cpu = qa_alloc(sizeof(double) * 2 * n);
    for (size_t i = 0; i < n; i++) {
        qa_dit_set_dtype(m, QA_DTYPE_F32);
        wall[i] = time_train_step(m, &tb, &cpu[i]);
        qa_dit_set_dtype(m, QA_DTYPE_BF16);
        wall[n + i] = time_train_step(m, &tb, &cpu[n + i]);
    }
    qa_dit_set_dtype(m, QA_DTYPE_F32);
    dtype_times t = {median(wall + 2, steps), median(wall + n + 2, steps), median(cpu + 2, steps),
                     median(cpu + n + 2, steps)};
    train_batch_free(&tb);
    qa_free(wall);
    qa_free(cpu);
    return t;
}

enum { SAMPLE_IMAGES = 32, SAMPLE_STEPS = 20 };

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Images per second of one guided DDIM sampling of SAMPLE_IMAGES images, by the wall clock and
 * by this process's CPU time (which other processes on a shared machine disturb far less). The
 * sampler runs qa_dit_forward_inference: the f32 model too takes the faster same-floats paths
 * a forward without backward allows, so it is the baseline at its best. */
static void sampling_rate(qa_dit *m, uint64_t seed, double *wall_ips, double *cpu_ips) {
    qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    float *x = qa_alloc(sizeof(float) * (size_t)SAMPLE_IMAGES * 784);
    double t0 = qa_now(), c0 = cpu_seconds();
    qa_sample_images(m, &s, 3, SAMPLE_IMAGES, SAMPLE_STEPS, 3.0f, seed, x);
    double dt = qa_now() - t0, dc = cpu_seconds() - c0;
    qa_free(x);
    if (wall_ips) *wall_ips = SAMPLE_IMAGES / dt;
    if (cpu_ips) *cpu_ips = SAMPLE_IMAGES / dc;
}

/* Where sampling time goes: one profiled sampling, each part as a share of the forward time. */
static void sampling_profile(qa_dit *m, qa_dit_profile *p) {
    qa_dit_profiling(m, 1);
    sampling_rate(m, 12, NULL, NULL);
    qa_dit_profile_read(m, p);
    qa_dit_profiling(m, 0);
    double total = p->total > 0 ? p->total : 1;
    double *parts[] = {&p->linear, &p->norm, &p->attention, &p->gelu, &p->int8_quantize, &p->int8_matmul, &p->int8_correct};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) *parts[i] /= total;
}

/* The deployed W8A8 model: every linear frozen at W8 (per-row codes), inputs at A8 calibrated
 * on one batch; on the integer kernels when int8. */
static int load_w8a8(const char *checkpoint, qa_dit *m, int int8, qa_error *err) {
    int rc = qa_dit_load(checkpoint, m, 64, err);
    if (rc) return rc;
    m->train_base = 0;
    qa_dit_quantize_base(m, 8, 8, 0);
    qa_rng *r = qa_rng_new(6);
    float *x = qa_alloc(sizeof(float) * 8 * 784), *e = qa_alloc(sizeof(float) * 8 * 784), t[8];
    int y[8];
    qa_rng_fill_normal(r, x, 8 * 784, 1.0f);
    for (int i = 0; i < 8; i++) { t[i] = (float)(i * 125); y[i] = i; }
    qa_dit_forward(m, x, t, y, 8, e); /* calibrates the activation quantizers */
    qa_free(x); qa_free(e);
    qa_rng_free(r);
    if (int8) qa_dit_enable_int8(m);
    return QA_OK;
}

/* The sampling variants bench-model compares, each against f32 (the first). */
enum { SV_F32, SV_FAKEQUANT, SV_INT8_UNFUSED, SV_INT8, SV_INT8_ATTENTION, SV_COUNT };
static const char *const sv_labels[SV_COUNT] = {
    [SV_F32] = "f32", [SV_FAKEQUANT] = "W8A8 fake-quant", [SV_INT8_UNFUSED] = "W8A8 int8, unfused",
    [SV_INT8] = "W8A8 int8, fused", [SV_INT8_ATTENTION] = "+ integer attention"};
static const char *const sv_keys[SV_COUNT] = {
    [SV_F32] = "f32", [SV_FAKEQUANT] = "w8a8_fakequant", [SV_INT8_UNFUSED] = "w8a8_int8_unfused",
    [SV_INT8] = "w8a8_int8", [SV_INT8_ATTENTION] = "w8a8_int8_int_attention"};

typedef struct {
    int n_variants;                              /* SV_COUNT with --int8-attention, else the ones before it */
    double ips[SV_COUNT], cpu_ips[SV_COUNT];     /* medians over the repeats */
    double ratio[SV_COUNT], cpu_ratio[SV_COUNT]; /* medians of the per-repeat ratios to f32 */
    int n_int8;
    qa_dit_profile prof_f32, prof_int8, prof_int8_attn;
    double attn_err;                             /* integer attention vs its reference: max |diff| / max |ref| */
} sampling_figures;

/* One forward of the integer model at batch 64 with integer attention against the same forward
 * with its fake-quantized reference attention (the quantizers calibrated): max |diff| / max |ref|
 * of the predicted noise. */
static double int8_attention_error(qa_dit *m) {
    enum { B = 64, D = 784 };
    qa_rng *r = qa_rng_new(13);
    float *x = qa_alloc(sizeof(float) * B * D), *ref = qa_alloc(sizeof(float) * B * D);
    float *out = qa_alloc(sizeof(float) * B * D), t[B];
    int y[B];
    qa_rng_fill_normal(r, x, (size_t)B * D, 1.0f);
    for (int i = 0; i < B; i++) { t[i] = (float)(i * 997 % 1000); y[i] = i % 10; }
    qa_dit_set_attention_quant(m, QA_ATTN_FAKEQUANT);
    qa_dit_forward(m, x, t, y, B, ref);
    qa_dit_set_attention_quant(m, QA_ATTN_INT8);
    qa_dit_forward(m, x, t, y, B, out);
    qa_dit_set_attention_quant(m, QA_ATTN_FLOAT);
    double e = 0, mx = 0;
    for (int i = 0; i < B * D; i++) { e = fmax(e, fabs((double)out[i] - ref[i])); mx = fmax(mx, fabs((double)ref[i])); }
    qa_free(x); qa_free(ref); qa_free(out);
    qa_rng_free(r);
    return e / (mx > 0 ? mx : 1);
}

/* Variant v on the three models: the integer model switches fusion and attention per call. */
static void sample_variant(qa_dit *const *models, int v, uint64_t seed, double *wall, double *cpu) {
    qa_dit *mi8 = models[2];
    mi8->int8_unfused = v == SV_INT8_UNFUSED;
    qa_dit_set_attention_quant(mi8, v == SV_INT8_ATTENTION ? QA_ATTN_INT8 : QA_ATTN_FLOAT);
    sampling_rate(v == SV_F32 ? models[0] : (v == SV_FAKEQUANT ? models[1] : mi8), seed, wall, cpu);
    mi8->int8_unfused = 0;
    qa_dit_set_attention_quant(mi8, QA_ATTN_FLOAT);
}

/* Every variant in each repeat, interleaved, so that the ratios are measured under the same load. */
static int measure_sampling(const char *checkpoint, int repeats, int int8_attention, sampling_figures *f,
                            qa_error *err) {
    qa_dit m32, mfq, mi8;
    int rc = qa_dit_load(checkpoint, &m32, 64, err);
    if (!rc) rc = load_w8a8(checkpoint, &mfq, 0, err);
    if (!rc) rc = load_w8a8(checkpoint, &mi8, 1, err);
    if (rc) return rc;
    for (int i = 0; i < mi8.n_lin; i++) f->n_int8 += mi8.lin[i].i8 != NULL;
    qa_dit *const models[3] = {&m32, &mfq, &mi8};
    const int nv = f->n_variants = int8_attention ? SV_COUNT : SV_INT8_ATTENTION;
    /* warm-up: primitives created; the attention quantizers calibrate on their first forward */
    for (int v = 0; v < nv; v++) sample_variant(models, v, 11, NULL, NULL);
    double *buf = qa_alloc(sizeof(double) * 4 * SV_COUNT * repeats);
    for (int i = 0; i < repeats; i++)
        for (int v = 0; v < nv; v++) {
            double *wall = buf + (size_t)v * repeats, *cpu = buf + (size_t)(SV_COUNT + v) * repeats;
            sample_variant(models, v, 12, &wall[i], &cpu[i]);
        }
    for (int v = 0; v < nv; v++) {
        double *wall = buf + (size_t)v * repeats, *cpu = buf + (size_t)(SV_COUNT + v) * repeats;
        double *rw = buf + (size_t)(2 * SV_COUNT) * repeats, *rc_ = rw + repeats;
        for (int i = 0; i < repeats; i++) { rw[i] = wall[i] / buf[i]; rc_[i] = cpu[i] / buf[(size_t)SV_COUNT * repeats + i]; }
        f->ratio[v] = median(rw, repeats);
        f->cpu_ratio[v] = median(rc_, repeats);
    }
    for (int v = 0; v < nv; v++) {
        f->ips[v] = median(buf + (size_t)v * repeats, repeats);
        f->cpu_ips[v] = median(buf + (size_t)(SV_COUNT + v) * repeats, repeats);
    }
    sampling_profile(&m32, &f->prof_f32);
    sampling_profile(&mi8, &f->prof_int8);
    if (int8_attention) {
        qa_dit_set_attention_quant(&mi8, QA_ATTN_INT8);
        sampling_profile(&mi8, &f->prof_int8_attn);
        f->attn_err = int8_attention_error(&mi8);
    }
    qa_free(buf);
    qa_dit_free(&m32); qa_dit_free(&mfq); qa_dit_free(&mi8);
    return QA_OK;
}

static void print_profile(FILE *out, const char *label, const qa_dit_profile *p) {
    double rest = 1.0 - p->linear - p->norm - p->attention - p->gelu;
    fprintf(out, "  %-20s linear %4.1f%% (int8 matmul %4.1f%%, unfused quantize %4.1f%%, unfused correction %4.1f%%), "
                 "norm+modulate %4.1f%%, attention %4.1f%%, GELU %4.1f%%, rest %4.1f%%\n",
            label, 100 * p->linear, 100 * p->int8_matmul, 100 * p->int8_quantize, 100 * p->int8_correct, 100 * p->norm,
            100 * p->attention, 100 * p->gelu, 100 * rest);
}

static void print_bench_model_json(FILE *out, const qa_bench_model_opts *o, int threads, const dtype_times *dt,
                                   double flops, double t_lora, const sampling_figures *f) {
    const double t_fp = dt->wall_f32;
    fprintf(out, "{\"threads\": %d, \"batch\": %d, \"train_step_fp_ms\": %.2f, \"train_gflops_fp\": %.1f, "
                 "\"train_step_bf16_ms\": %.2f, \"speedup_bf16_vs_f32\": %.3f, "
                 "\"train_step_lora_w8a8_ms\": %.2f, \"sampling_repeats\": %d, \"int8_layers\": %d",
            threads, o->batch, 1e3 * t_fp, flops / t_fp * 1e-9, 1e3 * dt->wall_bf16, t_fp / dt->wall_bf16, 1e3 * t_lora,
            o->repeats, f->n_int8);
    for (int v = 0; v < f->n_variants; v++)
        fprintf(out, ", \"sample_ips_%s\": %.3f, \"speedup_%s_vs_f32\": %.3f, \"cpu_speedup_%s_vs_f32\": %.3f", sv_keys[v],
                f->ips[v], sv_keys[v], f->ratio[v], sv_keys[v], f->cpu_ratio[v]);
    fprintf(out, ", \"f32_linear_share\": %.3f, \"f32_attention_share\": %.3f, \"int8_linear_share\": %.3f, "
                 "\"int8_norm_share\": %.3f, \"int8_attention_share\": %.3f, \"int8_gelu_share\": %.3f",
            f->prof_f32.linear, f->prof_f32.attention, f->prof_int8.linear, f->prof_int8.norm, f->prof_int8.attention,
            f->prof_int8.gelu);
    if (f->n_variants == SV_COUNT) fprintf(out, ", \"int8_attention_max_rel_diff\": %.3g", f->attn_err);
    fprintf(out, "}\n");
}

static void print_bench_model(FILE *out, const qa_bench_model_opts *o, int threads, const dtype_times *dt,
                              double flops, double t_lora, const sampling_figures *f) {
    if (o->json) { print_bench_model_json(out, o, threads, dt, flops, t_lora, f); return; }
    const int B = o->batch;
    const double t_fp = dt->wall_f32, t_bf16 = dt->wall_bf16;
    fprintf(out,
            "threads %d, batch %d\n"
            "  full FP training step       %8.2f ms  (%.1f GFLOP/s of matmul FLOPs, %.0f img/s)\n"
            "  same step, bf16 matmuls     %8.2f ms  (%.1f GFLOP/s, %.0f img/s): %.2fx the f32 step "
            "(interleaved, median of %d each)\n"
            "  LoRA step over a W8A8 base  %8.2f ms  (%.0f img/s)\n"
            "sampling (DDIM %d steps, guidance 3, %d images; %d layers on u8 x s8), %d interleaved repeats:\n"
            "  %-22s %10s %12s %12s\n",
            threads, B, 1e3 * t_fp, flops / t_fp * 1e-9, B / t_fp, 1e3 * t_bf16, flops / t_bf16 * 1e-9, B / t_bf16,
            t_fp / t_bf16, o->steps, 1e3 * t_lora, B / t_lora, SAMPLE_STEPS, SAMPLE_IMAGES, f->n_int8, o->repeats, "",
            "img/s", "x f32 wall", "x f32 CPU");
    for (int v = 0; v < f->n_variants; v++)
        fprintf(out, "  %-22s %10.2f %11.2fx %11.2fx\n", sv_labels[v], f->ips[v], f->ratio[v], f->cpu_ratio[v]);
    fprintf(out, "  (medians; the ratios are medians of the per-repeat ratios, by the wall clock and by this\n"
                 "  process's CPU time; every variant samples with the inference forward, f32 included;\n"
                 "  integer attention goes beyond the paper's W8A8 setting)\n"
                 "share of the forward time:\n");
    print_profile(out, "f32", &f->prof_f32);
    print_profile(out, "W8A8 int8 fused", &f->prof_int8);
    if (f->n_variants == SV_COUNT) {
        print_profile(out, "+ integer attention", &f->prof_int8_attn);
        fprintf(out, "  integer attention vs its fake-quantized reference, one forward at batch 64: max |diff| = "
                     "%.2g of max |eps|\n", f->attn_err);
    }
    fprintf(out, "  Amdahl bound from faster linear layers alone: %.2fx f32\n", 1.0 / (1.0 - f->prof_f32.linear));
}

int qa_bench_model(const qa_bench_model_opts *o, FILE *out, qa_error *err) {
    qa_dit m;
    int B = o->batch;
    int rc = qa_dit_load(o->checkpoint, &m, B > 64 ? B : 64, err);
    if (rc) return rc;
    qa_rng *r = qa_rng_new(5);
    int threads = 1;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env) threads = atoi(env);
    double flops = 3.0 * qa_dit_forward_flops(&m, B);
    /* 1. full FP training step, f32 and bf16 matmuls */
    m.train_base = 1;
    dtype_times dt = time_train_dtypes(&m, B, o->steps, r);
    double t_fp = dt.wall_f32, t_bf16 = dt.wall_bf16;
    if (o->train_only) {
        if (o->json)
            fprintf(out, "{\"threads\": %d, \"batch\": %d, \"train_step_fp_ms\": %.2f, \"train_step_bf16_ms\": %.2f, "
                         "\"speedup_bf16_vs_f32\": %.3f, \"cpu_ms_fp\": %.2f, \"cpu_ms_bf16\": %.2f, "
                         "\"cpu_ratio_bf16_vs_f32\": %.3f, \"steps\": %d}\n", threads, B, 1e3 * t_fp, 1e3 * t_bf16,
                    t_fp / t_bf16, 1e3 * dt.cpu_f32, 1e3 * dt.cpu_bf16, dt.cpu_f32 / dt.cpu_bf16, o->steps);
        else
            fprintf(out, "threads %d, batch %d: full FP training step, interleaved, median of %d each: f32 %.2f ms, "
                         "bf16 matmuls %.2f ms: %.2fx the f32 step (CPU time per step: f32 %.2f ms, bf16 %.2f ms, "
                         "%.2fx)\n", threads, B, o->steps, 1e3 * t_fp, 1e3 * t_bf16, t_fp / t_bf16, 1e3 * dt.cpu_f32,
                    1e3 * dt.cpu_bf16, dt.cpu_f32 / dt.cpu_bf16);
        qa_rng_free(r);
        qa_dit_free(&m);
        return QA_OK;
    }
    /* 2. LoRA fine-tuning step over the W8A8 base (adapters on the attention projections) */
    m.train_base = 0;
    qa_dit_quantize_base(&m, 8, 8, 1);
    qa_method_cfg cfg = {.w_bits = 8, .a_bits = 8, .rank = 4, .lora_scale = 1.0f};
    rc = qa_dit_attach_method(&m, qa_method_baseline(), &cfg, 1, err);
    double t_lora = rc ? 0 : time_train_steps(&m, B, o->steps, r);
    qa_rng_free(r);
    qa_dit_free(&m);
    /* 3. sampling: f32 against the W8A8 model, fake-quantized and on the integer kernels */
    sampling_figures f;
    memset(&f, 0, sizeof f);
    if (!rc) rc = measure_sampling(o->checkpoint, o->repeats, o->int8_attention, &f, err);
    if (!rc) print_bench_model(out, o, threads, &dt, flops, t_lora, &f);
    return rc;
}
