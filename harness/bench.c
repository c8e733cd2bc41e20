#include "harness/bench.h"

#include <stdlib.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/int8.h"
#include "harness/nn.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"

#define BENCH_USAGE "usage: qadapt bench-layer --method M --tokens T --in I --out O --rank R --bits N " \
                    "[--json] [--merge] [--deployed] [--repeats K]"

int bench_layer_parse(int argc, char **argv, qa_bench_layer_opts *o, qa_error *err) {
    *o = (qa_bench_layer_opts){"linear", 1568, 128, 128, 4, 8, 20, 0, 0, 0};
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
        qa_method_cfg cfg = {.w_bits = o->bits, .a_bits = 0, .rank = o->rank, .lora_scale = 1.0f, .vmc_alpha = 1.5f,
                             .aux_dist = QA_AUX_LAPLACE, .vmc_stat = QA_VMC_ABSMAX, .lora_bits = 0, .group_size = 32,
                             .base_lr = 1e-3f, .sampling_steps = 20};
        qa_step_ctx step = {NULL, 1, M, 1000};
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
    if (!rc && o->deployed) {
        /* the deployed layer: W8 with per-row codes on the u8 x s8 kernel, else a float matmul of
         * the dequantized deployed weights */
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
        int use_int8 = o->bits == 8 && (!m || !strcmp(o->method, "lora") || !strcmp(o->method, "qlora"));
        if (use_int8) {
            quant_fake_rows(Wd, Wd, n_out, in, 8, dl, z);
            use_int8 = int8_linear_init(&L, Wd, dl, z, in, n_out, b) == 0;
        }
        dep_kind = use_int8 ? "u8s8" : "f32";
        for (int i = 0; i < K + warm && !rc; i++) {
            double t0 = qa_now();
            if (use_int8) int8_linear_forward(&L, &aq, x, y, M);
            else linear_forward(y, xh, Wd, b, M, in, n_out);
            t[i] = qa_now() - t0;
        }
        if (use_int8) int8_linear_free(&L);
        if (!rc) ms_dep = 1e3 * median(t + warm, K);
        qa_free(Wd); qa_free(dl); qa_free(z); qa_free(xh);
    }
    if (!rc) {
        const char *kern = "";
        char kernels[1024];
        qa_backend_kernels(kernels, sizeof kernels);
        kern = kernels;
        if (o->json)
            fprintf(out, "{\"method\": \"%s\", \"tokens\": %d, \"in\": %d, \"out\": %d, \"rank\": %d, \"bits\": %d, "
                         "\"ms_fwd_bwd\": %.4f, \"gflops_fwd_bwd\": %.2f, \"ms_merge\": %.4f, \"ms_deployed\": %.4f, "
                         "\"deployed_kernel\": \"%s\", \"repeats\": %d, \"kernels\": \"%s\"}\n",
                    o->method, M, in, n_out, o->rank, o->bits, ms_fb, flops / (ms_fb * 1e-3) * 1e-9, ms_merge, ms_dep,
                    dep_kind, K, kern);
        else {
            fprintf(out, "%s: tokens %d, %dx%d, rank %d, %d bits: forward+backward %.3f ms (%.1f GFLOP/s of the layer's matmuls)",
                    o->method, M, in, n_out, o->rank, o->bits, ms_fb, flops / (ms_fb * 1e-3) * 1e-9);
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
