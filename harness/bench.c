#include "harness/bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/backend.h"
#include "harness/checkpoint.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/model.h"
#include "harness/int8.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"

#define BENCH_USAGE "usage: qadapt bench-layer --method M --tokens T --in I --out O --rank R --bits N " \
                    "[--json] [--merge] [--deployed] [--repeats K] [--dtype f32|bf16]"

int bench_layer_parse(int argc, char **argv, qa_bench_layer_opts *o, qa_error *err) {
    *o = (qa_bench_layer_opts){"linear", 1568, 128, 128, 4, 8, 20, 0, 0, 0, QA_DTYPE_F32};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0 && v <= 1000000;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--merge")) o->merge = 1;
        else if (!strcmp(a, "--deployed")) o->deployed = 1;
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

/* The deployed layer's forward: W8 with per-row codes on the u8 x s8 kernel, else a float
 * matmul of the dequantized deployed weights. */
static int time_deployed(const qa_bench_layer_opts *o, const qa_method *m, void *state, const float *W, const float *b,
                         const float *x, float *y, double *t, const char **dep_kind, double *ms_dep, qa_error *err) {
    const int M = o->tokens, in = o->in, n_out = o->out, K = o->repeats, warm = 3;
    int rc = QA_OK;
    float *Wd = qa_alloc(sizeof(float) * in * n_out), *dl = qa_alloc(sizeof(float) * n_out), *z = qa_alloc(sizeof(float) * n_out);
    memcpy(Wd, W, sizeof(float) * in * n_out);
    if (m) {
        qa_deployed d;
        rc = m->merge(state, &d, err);
        if (!rc) { qa_deployed_weights(&d, Wd); qa_deployed_free(&d); }
    }
    quant_search_rows(Wd, n_out, in, o->bits, dl, z);
    qa_actq aq = {8, 0, 0, 0};
    float *xh = qa_alloc(sizeof(float) * (size_t)M * in);
    actq_forward(&aq, xh, x, (size_t)M * in);
    qa_int8_linear L;
    int use_int8 = o->bits == 8 && (!m || (m->flags & QA_METHOD_ROW_CODES_DEPLOY));
    if (use_int8) {
        quant_fake_rows(Wd, Wd, n_out, in, 8, dl, z);
        use_int8 = int8_linear_init(&L, Wd, dl, z, in, n_out, b) == 0;
    }
    *dep_kind = use_int8 ? "u8s8" : "f32";
    for (int i = 0; i < K + warm && !rc; i++) {
        double t0 = qa_now();
        if (use_int8) int8_linear_forward(&L, &aq, x, y, M);
        else linear_forward(y, xh, Wd, b, M, in, n_out);
        t[i] = qa_now() - t0;
    }
    if (use_int8) int8_linear_free(&L);
    if (!rc) *ms_dep = 1e3 * median(t + warm, K);
    qa_free(Wd); qa_free(dl); qa_free(z); qa_free(xh);
    return rc;
}

int bench_layer(const qa_bench_layer_opts *o, FILE *out, qa_error *err) {
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
        linear_bf16_init(&L, M, in, n_out);
        for (int i = 0; i < K + warm; i++) {
            double t0 = qa_now();
            linear_forward_bf16(&L, y, x, W, b, M);
            memset(dx, 0, sizeof(float) * (size_t)M * in);
            linear_backward_bf16(&L, dx, dW, db, dy, M);
            t[i] = qa_now() - t0;
        }
        linear_bf16_free(&L);
    } else {
        for (int i = 0; i < K + warm; i++) {
            double t0 = qa_now();
            linear_forward(y, x, W, b, M, in, n_out);
            memset(dx, 0, sizeof(float) * (size_t)M * in);
            linear_backward(dx, dW, db, dy, x, W, M, in, n_out);
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
                quant_search_rows(d.w_fp, n_out, in, o->bits, dl, z);
                quant_fake_rows(wq, d.w_fp, n_out, in, o->bits, dl, z);
                qa_free(dl); qa_free(z); qa_free(wq);
            }
            t[i] = qa_now() - t0;
            qa_deployed_free(&d);
            if (rc) break;
        }
        if (!rc) ms_merge = 1e3 * median(t, K);
    }
    const char *dep_kind = "none";
    if (!rc && o->deployed) rc = time_deployed(o, m, state, W, b, x, y, t, &dep_kind, &ms_dep, err);
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

#define MODEL_USAGE "usage: qadapt bench-model [--checkpoint P] [--batch B] [--steps S] [--train-only] [--json]"

int bench_model_parse(int argc, char **argv, qa_bench_model_opts *o, qa_error *err) {
    *o = (qa_bench_model_opts){"results/pretrained/dit.h5", 32, 10, 0, 0};
    for (int i = 0; i < argc; i++) {
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0 && v <= 4096;
        if (!strcmp(argv[i], "--json")) o->json = 1;
        else if (!strcmp(argv[i], "--train-only")) o->train_only = 1;
        else if (!strcmp(argv[i], "--checkpoint") && more) o->checkpoint = argv[++i];
        else if (!strcmp(argv[i], "--batch") && num_ok) { o->batch = (int)v; i++; }
        else if (!strcmp(argv[i], "--steps") && num_ok) { o->steps = (int)v; i++; }
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
    if (m->train_base) dit_zero_grads(m);
    dit_forward(m, tb->x, tb->t, tb->y, tb->B, tb->pred);
    mse_loss(tb->pred, tb->eps, (size_t)tb->B * 784, tb->d);
    dit_backward(m, tb->d);
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
        dit_set_dtype(m, QA_DTYPE_F32);
        wall[i] = time_train_step(m, &tb, &cpu[i]);
        dit_set_dtype(m, QA_DTYPE_BF16);
        wall[n + i] = time_train_step(m, &tb, &cpu[n + i]);
    }
    dit_set_dtype(m, QA_DTYPE_F32);
    dtype_times t = {median(wall + 2, steps), median(wall + n + 2, steps), median(cpu + 2, steps),
                     median(cpu + n + 2, steps)};
    train_batch_free(&tb);
    qa_free(wall);
    qa_free(cpu);
    return t;
}

/* Where sampling time goes: shares of the wall time in the linear layers and, of the int8
 * layers, in activation quantization, the u8 x s8 matmul and the zero-point correction. */
typedef struct { double linear, quantize, matmul, correct; } sampling_profile;

static double time_sampling(qa_dit *m, int n, int steps, sampling_profile *prof) {
    qa_schedule s;
    schedule_default(&s);
    float *x = qa_alloc(sizeof(float) * (size_t)n * 784);
    sample_images(m, &s, 3, n, steps, 3.0f, 11, x); /* warm-up: primitives created */
    dit_profile(m, 1);
    double t0 = qa_now();
    sample_images(m, &s, 3, n, steps, 3.0f, 12, x);
    double dt = qa_now() - t0;
    dit_profile_read(m, &prof->linear, &prof->quantize, &prof->matmul, &prof->correct);
    dit_profile(m, 0);
    prof->linear /= dt; prof->quantize /= dt; prof->matmul /= dt; prof->correct /= dt;
    qa_free(x);
    return n / dt;
}

int bench_model(const qa_bench_model_opts *o, FILE *out, qa_error *err) {
    qa_dit m;
    int B = o->batch;
    int rc = dit_load(o->checkpoint, &m, B > 64 ? B : 64, err);
    if (rc) return rc;
    qa_rng *r = qa_rng_new(5);
    int threads = 1;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env) threads = atoi(env);
    double flops = 3.0 * dit_forward_flops(&m, B);
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
        dit_free(&m);
        return QA_OK;
    }
    /* 2. LoRA fine-tuning step over the W8A8 base (adapters on the attention projections) */
    m.train_base = 0;
    dit_quantize_base(&m, 8, 8, 1);
    qa_method_cfg cfg = {.w_bits = 8, .a_bits = 8, .rank = 4, .lora_scale = 1.0f};
    rc = dit_attach_method(&m, qa_method_baseline(), &cfg, 1, err);
    double t_lora = rc ? 0 : time_train_steps(&m, B, o->steps, r);
    dit_reset_slots(&m);
    /* 3. sampling: f32 model vs the W8A8 model on the integer kernels */
    int n = 32, dsteps = 20;
    sampling_profile p_f32, p_fq, p_int8;
    double ips_f32 = time_sampling(&m, n, dsteps, &p_f32);
    dit_quantize_base(&m, 8, 8, 0);
    float *x = qa_alloc(sizeof(float) * 8 * 784), *e = qa_alloc(sizeof(float) * 8 * 784), t[8];
    int y[8];
    qa_rng_fill_normal(r, x, 8 * 784, 1.0f);
    for (int i = 0; i < 8; i++) { t[i] = (float)(i * 125); y[i] = i; }
    dit_forward(&m, x, t, y, 8, e); /* calibrates the activation quantizers */
    double ips_fq = time_sampling(&m, n, dsteps, &p_fq);
    int n_int8 = dit_enable_int8(&m);
    double ips_int8 = time_sampling(&m, n, dsteps, &p_int8);
    qa_free(x); qa_free(e);
    if (!rc) {
        if (o->json)
            fprintf(out, "{\"threads\": %d, \"batch\": %d, \"train_step_fp_ms\": %.2f, \"train_gflops_fp\": %.1f, "
                         "\"train_step_bf16_ms\": %.2f, \"speedup_bf16_vs_f32\": %.3f, "
                         "\"train_step_lora_w8a8_ms\": %.2f, \"sample_ips_f32\": %.2f, \"sample_ips_w8a8_fakequant\": %.2f, "
                         "\"sample_ips_w8a8_int8\": %.2f, \"int8_layers\": %d, \"speedup_int8_vs_f32\": %.3f, "
                         "\"f32_linear_share\": %.3f, \"int8_linear_share\": %.3f, \"int8_quantize_share\": %.3f, "
                         "\"int8_matmul_share\": %.3f, \"int8_correct_share\": %.3f}\n",
                    threads, B, 1e3 * t_fp, flops / t_fp * 1e-9, 1e3 * t_bf16, t_fp / t_bf16, 1e3 * t_lora, ips_f32, ips_fq,
                    ips_int8, n_int8,
                    ips_int8 / ips_f32, p_f32.linear, p_int8.linear, p_int8.quantize, p_int8.matmul, p_int8.correct);
        else
            fprintf(out,
                    "threads %d, batch %d\n"
                    "  full FP training step       %8.2f ms  (%.1f GFLOP/s of matmul FLOPs, %.0f img/s)\n"
                    "  same step, bf16 matmuls     %8.2f ms  (%.1f GFLOP/s, %.0f img/s): %.2fx the f32 step "
                    "(interleaved, median of %d each)\n"
                    "  LoRA step over a W8A8 base  %8.2f ms  (%.0f img/s)\n"
                    "  sampling, f32               %8.2f img/s  (DDIM %d steps, guidance 3)\n"
                    "  sampling, W8A8 fake-quant   %8.2f img/s\n"
                    "  sampling, W8A8 int8 kernels %8.2f img/s  (%d layers on u8 x s8; %.2fx f32)\n"
                    "  time in the linear layers: f32 %.0f%%, fake-quant %.0f%%, int8 %.0f%% (of which quantize x %.0f%%, "
                    "u8 x s8 matmul %.0f%%, zero-point correction %.0f%% of the sampling time)\n"
                    "  Amdahl bound from faster linear layers alone: %.2fx f32\n",
                    threads, B, 1e3 * t_fp, flops / t_fp * 1e-9, B / t_fp, 1e3 * t_bf16, flops / t_bf16 * 1e-9, B / t_bf16,
                    t_fp / t_bf16, o->steps, 1e3 * t_lora, B / t_lora, ips_f32, dsteps, ips_fq,
                    ips_int8, n_int8, ips_int8 / ips_f32, 100 * p_f32.linear, 100 * p_fq.linear, 100 * p_int8.linear,
                    100 * p_int8.quantize, 100 * p_int8.matmul, 100 * p_int8.correct, 1.0 / (1.0 - p_f32.linear));
    }
    qa_rng_free(r);
    dit_free(&m);
    return rc;
}

/* "name1,name2,..." of every registered method */
static void method_names(char *buf, size_t len) {
    size_t off = 0;
    buf[0] = 0;
    for (const qa_method *const *m = qa_methods(); *m && off < len; m++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "", (*m)->name);
}

#define PROJECT_USAGE "usage: qadapt project-sd [--bits N] [--rank R] [--methods a,b,...] [--json]"

int project_sd_parse(int argc, char **argv, qa_project_opts *o, qa_error *err) {
    *o = (qa_project_opts){8, 4, 0, NULL}; /* NULL: every registered method */
    for (int i = 0; i < argc; i++) {
        int more = i + 1 < argc;
        char *end = NULL;
        long v = more ? strtol(argv[i + 1], &end, 10) : 0;
        int num_ok = more && end && *end == 0 && v > 0;
        if (!strcmp(argv[i], "--json")) o->json = 1;
        else if (!strcmp(argv[i], "--bits") && num_ok && v >= 2 && v <= 8) { o->bits = (int)v; i++; }
        else if (!strcmp(argv[i], "--rank") && num_ok && v <= 256) { o->rank = (int)v; i++; }
        else if (!strcmp(argv[i], "--methods") && more) o->methods = argv[++i];
        else return qa_fail(err, QA_ERR_INPUT, "project-sd: bad argument '%s'\n" PROJECT_USAGE, argv[i]);
    }
    if (!o->methods) return QA_OK;
    /* every name is checked before anything runs */
    char list[512];
    snprintf(list, sizeof list, "%s", o->methods);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save))
        if (!qa_method_find(name))
            return qa_fail(err, QA_ERR_INPUT, "project-sd: unknown method '%s'\n" PROJECT_USAGE, name);
    return QA_OK;
}

int project_sd(const qa_project_opts *o, FILE *out, qa_error *err) {
    /* distinct shapes: width w in {320, 640, 1280}; in = w (6 per block) or 768 (2 per block) */
    const int widths[3] = {320, 640, 1280}, blocks[3] = {5, 5, 6}, tokens[3] = {4096, 1024, 256};
    char list[512];
    if (o->methods) snprintf(list, sizeof list, "%s", o->methods);
    else method_names(list, sizeof list);
    if (!o->json)
        fprintf(out, "SD-1.5's 128 attention projections at W%d, rank %d (bytes summed over the layers; times on this CPU)\n"
                     "| method | frozen MB | trainable MB | optimizer MB | deployed MB | merge all (ms) | fwd+bwd all (ms) |\n"
                     "|---|---|---|---|---|---|---|\n", o->bits, o->rank);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const qa_method *m = qa_method_find(name);
        if (!m) return qa_fail(err, QA_ERR_INPUT, "project-sd: unknown method '%s'", name);
        double frozen = 0, trainable = 0, optim = 0, deployed = 0, t_merge = 0, t_fb = 0;
        for (int wi = 0; wi < 3; wi++)
            for (int kind = 0; kind < 2; kind++) {
                int out_f = widths[wi], in_f = kind ? 768 : widths[wi], count = blocks[wi] * (kind ? 2 : 6);
                qa_bench_layer_opts bo = {name, tokens[wi], in_f, out_f, o->rank, o->bits, 3, 0, 0, 0, QA_DTYPE_F32};
                /* memory from the plugin itself */
                qa_rng *r = qa_rng_new(7);
                float *W = qa_alloc(sizeof(float) * (size_t)in_f * out_f), *b = qa_alloc(sizeof(float) * out_f);
                qa_rng_fill_normal(r, W, (size_t)in_f * out_f, 0.02f);
                qa_method_cfg cfg = {.w_bits = o->bits, .a_bits = 0, .rank = o->rank, .lora_scale = 1.0f, .base_lr = 1e-3f,
                                     .sampling_steps = 20}; /* the method's own options at their defaults */
                qa_layer_init li = {in_f, out_f, W, b, &cfg, r, "sd", NULL, NULL};
                void *st = qa_alloc(m->state_size);
                int rc = m->init(st, &li, err);
                if (rc) { qa_free(st); qa_free(W); qa_free(b); qa_rng_free(r); return rc; }
                qa_bytes by = {0, 0, 0, 0, 0};
                m->bytes(st, &by);
                frozen += (double)by.frozen * count;
                trainable += (double)by.trainable * count;
                optim += (double)by.optimizer * count;
                deployed += (double)by.deployed * count;
                m->destroy(st);
                qa_free(st); qa_free(W); qa_free(b);
                qa_rng_free(r);
                /* latencies from the layer benchmark */
                char buf[2048];
                FILE *mem = fmemopen(buf, sizeof buf, "w");
                bo.json = 1;
                bo.merge = 1;
                rc = bench_layer(&bo, mem, err);
                fclose(mem);
                if (rc) return rc;
                const char *pf = strstr(buf, "\"ms_fwd_bwd\": "), *pm = strstr(buf, "\"ms_merge\": ");
                if (pf) t_fb += atof(pf + 14) * count;
                if (pm) t_merge += atof(pm + 12) * count;
            }
        if (o->json)
            fprintf(out, "{\"method\": \"%s\", \"bits\": %d, \"rank\": %d, \"frozen_mb\": %.2f, \"trainable_mb\": %.3f, "
                         "\"optimizer_mb\": %.3f, \"deployed_mb\": %.2f, \"merge_ms\": %.1f, \"fwd_bwd_ms\": %.1f}\n",
                    name, o->bits, o->rank, frozen / 1e6, trainable / 1e6, optim / 1e6, deployed / 1e6, t_merge, t_fb);
        else
            fprintf(out, "| %s | %.2f | %.3f | %.3f | %.2f | %.1f | %.1f |\n", name, frozen / 1e6, trainable / 1e6, optim / 1e6,
                    deployed / 1e6, t_merge, t_fb);
        fflush(out);
    }
    return QA_OK;
}
