/* The deployed model against the training graph, per method, on a tiny DiT: where a method
 * claims its merge is exact (IntLoRA-MUL/SHIFT: the merged integer weights are what training
 * used; QA-LoRA: the zero-point fold, up to its FP16 zero points), the deployed forward equals
 * the training forward; where it does not (LoRA and QLoRA + PTQ), the gap is measured and must be
 * non-zero. Also: a diverging run is recorded and not evaluated. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "harness/artifact.h"
#include "harness/deploy.h"
#include "harness/model.h"
#include "harness/results.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"

enum { B = 3, D = 784 };

typedef struct {
    qa_dit m;
    float x[B * D], t[B];
    int y[B];
} tiny;

/* the method's defaults, or with one option set (opt_name NULL: none) */
static void tiny_model_with(tiny *k, const char *method, int w_bits, int a_bits, const char *opt_name, const char *opt_value) {
    qa_error err = {0, ""};
    qa_dit_config c = {28, 7, 16, 2, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(&k->m, &c, B, &err), 0);
    qa_dit_init_weights(&k->m, 3);
    qa_rng *r = qa_rng_new(4);
    for (size_t i = 0; i < k->m.n_params; i++) k->m.params[i] += 0.05f * (float)qa_rng_normal(r);
    qa_rng_fill_normal(r, k->x, B * D, 1.0f);
    for (int b = 0; b < B; b++) { k->t[b] = (float)(100 + 300 * b); k->y[b] = b; }
    k->m.train_base = 0;
    qa_dit_quantize_base(&k->m, w_bits, a_bits, 1);
    const qa_method *meth = qa_method_find(method);
    cr_assert_not_null(meth, "method %s not registered", method);
    /* the method's defaults, with QA-LoRA's groups at 8 (the layers here are 16 wide) */
    static double opts[8]; /* any options struct: aligned, 64 bytes */
    cr_assert(meth->options_size <= sizeof opts);
    qa_method_options_defaults(meth, opts);
    if (qa_method_option(meth, "group_size")) cr_assert_eq(qa_method_option_set(meth, opts, "group_size", "8", &err), 0);
    if (opt_name) cr_assert_eq(qa_method_option_set(meth, opts, opt_name, opt_value, &err), 0, "%s", err.msg);
    qa_method_cfg cfg = {.w_bits = w_bits, .a_bits = a_bits, .rank = 2, .lora_scale = 1.0f, .base_lr = 1e-3f,
                         .sampling_steps = 4, .options = opts};
    cr_assert_eq(qa_dit_attach_method(&k->m, meth, &cfg, 9, &err), 0, "%s", err.msg);
    /* the first forward calibrates (B = 0); then give every B a non-trivial value */
    float eps[B * D];
    qa_dit_forward(&k->m, k->x, k->t, k->y, B, eps);
    for (int i = 0; i < k->m.n_lin; i++) {
        qa_linear *s = &k->m.lin[i];
        if (!s->method) continue;
        qa_param ps[8];
        int np = s->method->params(s->state, ps, 8);
        for (int p = 0; p < np; p++)
            if (!strcmp(ps[p].name, "lora_B")) qa_rng_fill_normal(r, ps[p].data, ps[p].n, 0.02f);
    }
    qa_rng_free(r);
}

static void tiny_model(tiny *k, const char *method, int w_bits, int a_bits) { tiny_model_with(k, method, w_bits, a_bits, NULL, NULL); }

/* max |deployed - training| / max |training| over the model output */
static double deploy_gap(tiny *k, int ptq_bits) {
    float train_out[B * D], dep_out[B * D];
    qa_dit_forward(&k->m, k->x, k->t, k->y, B, train_out);
    qa_error err = {0, ""};
    int n = 0;
    for (int i = 0; i < k->m.n_lin; i++) n += k->m.lin[i].method != NULL;
    qa_deployed *dep = qa_alloc(sizeof(qa_deployed) * n);
    float **w = qa_alloc(sizeof(float *) * n);
    int j = 0;
    for (int i = 0; i < k->m.n_lin; i++) {
        qa_linear *s = &k->m.lin[i];
        if (!s->method) continue;
        cr_assert_eq(s->method->merge(s->state, &dep[j], &err), 0, "%s", err.msg);
        w[j] = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
        qa_deployed_weights(&dep[j], w[j]);
        if (ptq_bits && dep[j].needs_ptq) {
            float dl[256], z[256];
            qa_quant_search_rows(dep[j].w_fp, s->out, s->in, ptq_bits, dl, z);
            qa_quant_fake_rows(w[j], dep[j].w_fp, s->out, s->in, ptq_bits, dl, z);
        }
        j++;
    }
    qa_dit_set_deployed(&k->m, w, NULL, NULL, 0);
    qa_dit_forward(&k->m, k->x, k->t, k->y, B, dep_out);
    double gap = 0, mx = 0;
    for (int i = 0; i < B * D; i++) {
        gap = fmax(gap, fabs((double)dep_out[i] - train_out[i]));
        mx = fmax(mx, fabs((double)train_out[i]));
    }
    for (int i = 0; i < n; i++) { qa_deployed_free(&dep[i]); qa_free(w[i]); }
    qa_free(dep);
    qa_free(w);
    qa_dit_free(&k->m);
    return gap / mx;
}

Test(deploy, intlora_mul_deployed_equals_training_forward) {
    tiny k;
    tiny_model(&k, "intlora-mul", 8, 8);
    double g = deploy_gap(&k, 0);
    cr_expect(g < 1e-5, "IntLoRA-MUL deploy gap %g", g);
}

Test(deploy, intlora_mul_additive_zero_path_deployed_equals_training_forward) {
    tiny k;
    tiny_model_with(&k, "intlora-mul", 4, 8, "zero_path", "additive");
    double g = deploy_gap(&k, 0);
    cr_expect(g < 1e-5, "IntLoRA-MUL (zero_path = additive) deploy gap %g", g);
}

Test(deploy, intlora_shift_deployed_equals_training_forward) {
    tiny k;
    tiny_model(&k, "intlora-shift", 4, 8);
    double g = deploy_gap(&k, 0);
    cr_expect(g < 1e-5, "IntLoRA-SHIFT deploy gap %g", g);
}

Test(deploy, qalora_merge_is_exact_up_to_fp16_zero_points) {
    tiny k;
    tiny_model(&k, "qalora", 4, 8);
    double g = deploy_gap(&k, 0);
    cr_expect(g < 2e-3, "QA-LoRA deploy gap %g", g);
}

Test(deploy, efficientdm_deploys_its_trained_codes) {
    /* after merge the layer runs its frozen codes and rounded activation zero points: the gap is
     * only the rounding of the (slightly fractional after training) zero points, zero here */
    tiny k;
    tiny_model(&k, "efficientdm", 8, 8);
    double g = deploy_gap(&k, 0);
    cr_expect(g < 1e-5, "EfficientDM deploy gap %g", g);
}

Test(deploy, lora_ptq_has_a_measurable_gap) {
    tiny k;
    tiny_model(&k, "lora", 4, 8);
    double g = deploy_gap(&k, 4);
    cr_expect(g > 1e-4, "LoRA + 4-bit PTQ should change the output, gap %g", g);
    tiny k2;
    tiny_model(&k2, "lora", 8, 8);
    double g_fp = deploy_gap(&k2, 0); /* FP deploy before PTQ: the float merge itself */
    cr_expect(g_fp < 1e-4, "LoRA float merge gap %g", g_fp);
}

Test(deploy, qlora_ptq_has_a_measurable_gap) {
    tiny k;
    tiny_model(&k, "qlora", 4, 8);
    double g = deploy_gap(&k, 4);
    cr_expect(g > 1e-4, "QLoRA + 4-bit PTQ gap %g", g);
}

/* ---- the INT deploy on the integer kernels, as a run makes it ---- */

/* Every adapted layer's integer kernel against its fake-quantized float layer, x_hat W^T + b
 * summed in double (x_hat: the layer's own 8-bit activation codes, W: the deployed weights the
 * float path runs); returns the largest relative error, its absolute error in *abs_err. */
static double layers_vs_double(qa_dit *m, double *abs_err) {
    enum { M = 20 };
    double worst = 0;
    *abs_err = 0;
    qa_rng *r = qa_rng_new(77);
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        if (!s->method || (!s->i8 && !s->i8m)) continue;
        const int in = s->in, out = s->out;
        float *x = qa_alloc(sizeof(float) * M * in), *y = qa_alloc(sizeof(float) * M * out);
        qa_rng_fill_normal(r, x, (size_t)M * in, 1.0f);
        if (s->i8) qa_int8_linear_forward(s->i8, &s->actq, x, y, M);
        else qa_int8_multi_forward(s->i8m, &s->actq, x, y, M);
        double e = 0, mx = 0;
        for (int r_ = 0; r_ < M; r_++)
            for (int o = 0; o < out; o++) {
                double ref = s->b[o];
                for (int k = 0; k < in; k++) {
                    float q = nearbyintf(x[r_ * in + k] / s->actq.delta) + s->actq.zero;
                    q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
                    ref += (double)s->actq.delta * ((double)q - s->actq.zero) * s->W_deploy[(size_t)o * in + k];
                }
                e = fmax(e, fabs(y[r_ * out + o] - ref));
                mx = fmax(mx, fabs(ref));
            }
        worst = fmax(worst, e / (mx + 1e-30));
        *abs_err = fmax(*abs_err, e);
        qa_free(x);
        qa_free(y);
    }
    qa_rng_free(r);
    return worst;
}

/* Deploy `method` at w_bits A8 as run.c does (merge, PTQ where the merge is float, the integer
 * kernels), expect every adapted layer on kernel `want` (with QA_KERNEL_PLANES, QA_KERNEL_ROW
 * too where a layer's integers happen to span <= 256 values per row; none needs more than
 * max_planes, and at 8 bits some layer needs planes), and the integer layers and model equal to
 * the fake-quantized float ones. */
static void int_kernels_case(const char *method, int w_bits, qa_deploy_kernel want, int max_planes,
                             const char *opt_name, const char *opt_value) {
    tiny k;
    tiny_model_with(&k, method, w_bits, 8, opt_name, opt_value);
    qa_error err = {0, ""};
    qa_deploy d;
    cr_assert_eq(qa_deploy_merge(&k.m, &d, &err), 0, "%s", err.msg);
    qa_deploy_set(&k.m, &d, d.needs_ptq ? w_bits : 0, -1);
    float ref[B * D], out[B * D];
    qa_dit_forward(&k.m, k.x, k.t, k.y, B, ref); /* the fake-quantized float deploy */
    qa_deploy_kernels kern;
    qa_deploy_enable_int8(&k.m, &d, QA_GROUP_KERNEL_U8S8, &kern);
    int n = d.n_layers, got = kern.adapted[want] + (want == QA_KERNEL_PLANES ? kern.adapted[QA_KERNEL_ROW] : 0);
    cr_expect_eq(got, n, "%s w%d: %d of %d adapted layers on %s (%s)", method, w_bits, got, n, qa_deploy_kernel_names[want],
                 kern.text);
    cr_expect_leq(kern.planes_max, max_planes, "%s w%d: %s", method, w_bits, kern.text);
    if (want == QA_KERNEL_PLANES && w_bits == 8) cr_expect_gt(kern.adapted[QA_KERNEL_PLANES], 0, "%s w%d: %s", method, w_bits, kern.text);
    double abs_err, e = layers_vs_double(&k.m, &abs_err);
    cr_log_info("%s w%da8: %s; layers vs double: max abs %.3g, rel %.3g", method, w_bits, kern.text, abs_err, e);
    cr_expect(e < 1e-5, "%s w%d: integer layers vs fake-quant double: relative error %g", method, w_bits, e);
    qa_dit_forward(&k.m, k.x, k.t, k.y, B, out);
    double gap = 0, mx = 0;
    for (int i = 0; i < B * D; i++) { gap = fmax(gap, fabs((double)out[i] - ref[i])); mx = fmax(mx, fabs((double)ref[i])); }
    cr_log_info("%s w%da8: integer model vs fake-quant model: max abs %.3g, rel %.3g", method, w_bits, gap, gap / mx);
    cr_expect(gap / mx < 1e-3, "%s w%d: integer model vs fake-quant model: relative error %g", method, w_bits, gap / mx);
    qa_deploy_free(&d);
    qa_dit_free(&k.m);
}

/* method, W bits, the kernel its adapted layers run on, the most planes any needs, one option */
static const struct {
    const char *method;
    int w_bits;
    qa_deploy_kernel want;
    int max_planes;
    const char *opt_name, *opt_value;
} kernel_cases[] = {
    /* float merges: the PTQ codes at N bits, per row */
    {"lora", 8, QA_KERNEL_ROW, 0, NULL, NULL}, {"lora", 6, QA_KERNEL_ROW, 0, NULL, NULL},
    {"lora", 4, QA_KERNEL_ROW, 0, NULL, NULL}, {"qlora", 8, QA_KERNEL_ROW, 0, NULL, NULL},
    {"qlora", 4, QA_KERNEL_ROW, 0, NULL, NULL}, {"lq-lora", 8, QA_KERNEL_ROW, 0, NULL, NULL},
    {"lq-lora", 4, QA_KERNEL_ROW, 0, NULL, NULL}, {"ir-qlora", 8, QA_KERNEL_ROW, 0, NULL, NULL},
    {"ir-qlora", 4, QA_KERNEL_ROW, 0, NULL, NULL},
    /* IntLoRA-MUL: products up to 255^2 at W8 (2 or 3 planes), up to 15^2 at W4 (a row code or 2 planes) */
    {"intlora-mul", 8, QA_KERNEL_PLANES, 3, NULL, NULL}, {"intlora-mul", 4, QA_KERNEL_PLANES, 2, NULL, NULL},
    {"intlora-mul", 4, QA_KERNEL_PLANES, 2, "zero_path", "additive"},
    {"intlora-shift", 8, QA_KERNEL_PLANES, 3, NULL, NULL}, {"intlora-shift", 4, QA_KERNEL_PLANES, 2, NULL, NULL},
    /* group-wise codes */
    {"qalora", 8, QA_KERNEL_GROUPS, 0, NULL, NULL}, {"qalora", 4, QA_KERNEL_GROUPS, 0, NULL, NULL},
    {"peqa", 4, QA_KERNEL_GROUPS, 0, "peqa_group", "8"},
    /* codes minus a per-row zero point: 256 values per row at most */
    {"peqa", 8, QA_KERNEL_ROW, 0, NULL, NULL}, {"peqa", 4, QA_KERNEL_ROW, 0, NULL, NULL},
    {"lr-qat", 8, QA_KERNEL_ROW, 0, NULL, NULL}, {"lr-qat", 4, QA_KERNEL_ROW, 0, NULL, NULL},
    /* per-timestep activation quantizers of its own: its forward, in float */
    {"efficientdm", 8, QA_KERNEL_METHOD, 0, NULL, NULL},
};

Test(deploy, int_kernels_per_method_and_bits) {
    for (size_t i = 0; i < sizeof kernel_cases / sizeof kernel_cases[0]; i++)
        int_kernels_case(kernel_cases[i].method, kernel_cases[i].w_bits, kernel_cases[i].want, kernel_cases[i].max_planes,
                         kernel_cases[i].opt_name, kernel_cases[i].opt_value);
}

/* The shift merge's integer form: small integers times the row's smallest power of two, by hand */
Test(deploy, shift_integer_form_by_hand) {
    float w[2 * 3] = {0.75f, -0.125f, 0.0f, 0.0f, 0.0f, 0.0f};
    float scale[2];
    qa_deployed l;
    memset(&l, 0, sizeof l);
    l.in = 3;
    l.out = 2;
    l.w_fp = w;
    l.merge = QA_MERGE_BIT_SHIFT;
    qa_deploy_int_form f;
    qa_deploy_int_form_of(&l, &f);
    cr_assert_eq(f.kernel, QA_KERNEL_ROW);
    memcpy(scale, f.scale, sizeof scale);
    cr_expect(scale[0] == 0.125f && f.w[0] == 6 && f.w[1] == -1 && f.w[2] == 0, "0.75 = 6/8, -0.125 = -1/8: %g %d %d",
              scale[0], f.w[0], f.w[1]);
    cr_expect(scale[1] == 1.0f && f.w[3] == 0, "an all-zero row: scale 1");
    cr_expect(f.zero[0] == 128.f && f.zero[1] == 128.f, "rows inside s8: zero point 128");
    qa_deploy_int_form_free(&f);
    w[1] = -0x1p-20f; /* 0.75 / 2^-20 = 786432: 3 planes */
    qa_deploy_int_form_of(&l, &f);
    cr_expect(f.kernel == QA_KERNEL_PLANES && f.planes == 3 && f.w[0] == 786432 && f.w[1] == -1, "planes %d, w %d %d",
              f.planes, f.w ? f.w[0] : 0, f.w ? f.w[1] : 0);
    qa_deploy_int_form_free(&f);
    w[1] = -0x1p-40f; /* 0.75 / 2^-40 beyond int32: no integer form */
    qa_deploy_int_form_of(&l, &f);
    cr_expect_eq(f.kernel, QA_KERNEL_F32);
    qa_deploy_int_form_free(&f);
    l.merge = QA_MERGE_FLOAT_ADD_PTQ; /* a float merge has only its PTQ codes */
    l.needs_ptq = 1;
    qa_deploy_int_form_of(&l, &f);
    cr_expect_eq(f.kernel, QA_KERNEL_F32);
    /* integers with a row span of 256 values: codes w - min (zero point -min); 257 values: planes */
    int32_t wi[2 * 3] = {0, 255, 3, -200, 55, 0};
    float rs[2] = {0.5f, 0.25f};
    l.needs_ptq = 0;
    l.merge = QA_MERGE_INT_MULTIPLY;
    l.w_fp = NULL;
    l.w_int = wi;
    l.row_scale = rs;
    qa_deploy_int_form_of(&l, &f);
    cr_assert_eq(f.kernel, QA_KERNEL_ROW);
    cr_expect(f.zero[0] == 0.f && f.zero[1] == 200.f, "zero points %g %g, want 0 and 200", f.zero[0], f.zero[1]);
    qa_deploy_int_form_free(&f);
    wi[4] = 57;
    qa_deploy_int_form_of(&l, &f);
    cr_expect(f.kernel == QA_KERNEL_PLANES && f.planes == 2, "a span of 258 values: planes (%d)", f.planes);
    qa_deploy_int_form_free(&f);
}

/* ---- the deployed artifact: stored packed, decoded back to the deployed weights ---- */

static float *read_f(qa_h5 *f, const char *grp, const char *name) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    void *data = NULL;
    int nd;
    int64_t dims[4];
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_read(f, p, QA_H5_F32, &data, 0, &nd, dims, &err), 0, "%s", err.msg);
    return data;
}

static int has(qa_h5 *f, const char *grp, const char *name) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    return qa_h5_exists(f, p);
}

/* Decode one layer of the artifact with the formula of its encoding, written out here. */
static void decode_layer(qa_h5 *f, const char *grp, int in, int out, int group_size, float *W) {
    char enc[32];
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_attr_get_str(f, grp, "encoding", enc, sizeof enc, &err), 0, "%s", err.msg);
    size_t n = (size_t)in * out;
    if (!strcmp(enc, "float32")) {
        float *w = read_f(f, grp, "weights");
        memcpy(W, w, sizeof(float) * n);
        free(w);
    } else if (!strcmp(enc, "int_codes")) { /* W = row_scale * code */
        float *c = read_f(f, grp, "codes"), *s = read_f(f, grp, "row_scale");
        for (size_t k = 0; k < n; k++) W[k] = s[k / in] * c[k];
        free(c); free(s);
    } else if (!strcmp(enc, "ptq_codes")) { /* W = delta (q - z) */
        float *c = read_f(f, grp, "codes"), *d = read_f(f, grp, "delta"), *z = read_f(f, grp, "zero");
        for (size_t k = 0; k < n; k++) W[k] = d[k / in] * (c[k] - z[k / in]);
        free(c); free(d); free(z);
    } else if (has(f, grp, "u_codes")) { /* IntLoRA-MUL: W = dU (u - zU)(W_round - z) */
        float *wr = read_f(f, grp, "w_round"), *z = read_f(f, grp, "zero"), *u = read_f(f, grp, "u_codes");
        float *du = read_f(f, grp, "u_scale"), *zu = read_f(f, grp, "u_zero");
        float *az = has(f, grp, "add_zero") ? read_f(f, grp, "add_zero") : NULL; /* zero_path = additive */
        for (size_t k = 0; k < n; k++)
            W[k] = az && wr[k] == z[k / in] ? du[k / in] * (u[k] - az[0]) : du[k / in] * ((u[k] - zu[k / in]) * (wr[k] - z[k / in]));
        free(wr); free(z); free(u); free(du); free(zu); free(az);
    } else if (has(f, grp, "exponent")) { /* IntLoRA-SHIFT: W = (-1)^sign 2^(k_min + e)(W_round - z) */
        float *wr = read_f(f, grp, "w_round"), *z = read_f(f, grp, "zero"), *sg = read_f(f, grp, "sign");
        float *e = read_f(f, grp, "exponent"), *km = read_f(f, grp, "k_min");
        for (size_t k = 0; k < n; k++) W[k] = (sg[k] ? -1.f : 1.f) * ldexpf(wr[k] - z[k / in], (int)(km[0] + e[k]));
        free(wr); free(z); free(sg); free(e); free(km);
    } else if (has(f, grp, "scale")) { /* QA-LoRA: W = scale_g (q - zero_g), [groups, out] side info */
        float *c = read_f(f, grp, "codes"), *s = read_f(f, grp, "scale"), *z = read_f(f, grp, "zero");
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                size_t g = (size_t)(i / group_size) * out + o;
                W[(size_t)o * in + i] = s[g] * ((float)c[(size_t)o * in + i] - z[g]);
            }
        free(c); free(s); free(z);
    } else {
        cr_assert_fail("%s: unknown stored form %s", grp, enc);
    }
}

/* Write the artifact of a tiny model, read it back, decode every layer and compare with the
 * deployed weights (after the PTQ a float merge needs); check the codes are stored packed:
 * the stored bytes are what the formats say, not 4 bytes a value. */
static void artifact_round_trip_with(const char *method, int w_bits, double max_payload_bits_per_weight, const char *opt_name,
                                     const char *opt_value) {
    tiny k;
    tiny_model_with(&k, method, w_bits, 8, opt_name, opt_value);
    float eps[B * D];
    qa_dit_forward(&k.m, k.x, k.t, k.y, B, eps);
    qa_error err = {0, ""};
    int n = 0;
    for (int i = 0; i < k.m.n_lin; i++) n += k.m.lin[i].method != NULL;
    qa_deployed *dep = qa_alloc(sizeof(qa_deployed) * n);
    for (int i = 0, j = 0; i < k.m.n_lin; i++)
        if (k.m.lin[i].method) cr_assert_eq(k.m.lin[i].method->merge(k.m.lin[i].state, &dep[j++], &err), 0, "%s", err.msg);
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir, "artifact");
    snprintf(path, sizeof path, "%s/a.h5", dir);
    qa_artifact_size size;
    int ptq = dep[0].needs_ptq ? w_bits : 0;
    cr_assert_eq(qa_artifact_write(path, &k.m, dep, ptq, &size, &err), 0, "%s", err.msg);
    cr_expect_eq(size.float_layers, 0, "%s: every layer has an integer form", method);
    cr_expect(size.file_bytes > size.payload_bytes && size.payload_bytes > 0);
    cr_expect(size.payload_bytes * 8 / size.weights <= max_payload_bits_per_weight, "%s: %.3f stored bits per weight > %.3f", method,
              size.payload_bytes * 8 / size.weights, max_payload_bits_per_weight);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), 0, "%s", err.msg);
    for (int i = 0, j = 0; i < k.m.n_lin; i++) {
        qa_linear *s = &k.m.lin[i];
        if (!s->method) continue;
        const qa_deployed *d = &dep[j++];
        size_t nw = (size_t)s->in * s->out;
        float *want = qa_alloc(sizeof(float) * nw), *got = qa_alloc(sizeof(float) * nw);
        qa_deployed_weights(d, want);
        if (ptq) {
            float *dl = qa_alloc(sizeof(float) * s->out), *z = qa_alloc(sizeof(float) * s->out);
            qa_quant_search_rows(d->w_fp, s->out, s->in, ptq, dl, z);
            qa_quant_fake_rows(want, d->w_fp, s->out, s->in, ptq, dl, z);
            qa_free(dl); qa_free(z);
        }
        char grp[200];
        snprintf(grp, sizeof grp, "/layers/%s", s->name);
        decode_layer(f, grp, s->in, s->out, 8, got);
        double worst = 0, scale = 0;
        for (size_t q = 0; q < nw; q++) {
            worst = fmax(worst, fabs((double)got[q] - want[q]));
            scale = fmax(scale, fabs((double)want[q]));
        }
        cr_expect(worst <= 1e-6 * scale, "%s %s: decoded artifact differs from the deployed weights by %g (max %g)", method, s->name,
                  worst, scale);
        qa_free(want); qa_free(got);
    }
    qa_h5_close(f, &err);
    for (int j = 0; j < n; j++) qa_deployed_free(&dep[j]);
    qa_free(dep);
    qa_dit_free(&k.m);
    rm_rf_dir(dir);
}

static void artifact_round_trip(const char *method, int w_bits, double max_payload_bits_per_weight) {
    artifact_round_trip_with(method, w_bits, max_payload_bits_per_weight, NULL, NULL);
}

/* bounds: the codes at their width plus the side information of a 16-wide layer (and HDF5's
 * chunk rounding): e.g. MUL 4 bits: 4 + 4 + 3 x 32 / 16 = 14 */
Test(deploy, artifact_lora_ptq_codes) { artifact_round_trip("lora", 4, 4 + 64.0 / 16 + 0.5); }
Test(deploy, artifact_qlora_ptq_codes) { artifact_round_trip("qlora", 4, 4 + 64.0 / 16 + 0.5); }
Test(deploy, artifact_qalora_codes_fp16_side) { artifact_round_trip("qalora", 4, 4 + 32.0 / 8 + 0.5); }
Test(deploy, artifact_efficientdm_int_codes) { artifact_round_trip("efficientdm", 4, 5 + 32.0 / 16 + 0.5); }
Test(deploy, artifact_intlora_mul_w_round_and_u_codes) { artifact_round_trip("intlora-mul", 4, 8 + 96.0 / 16 + 0.5); }
Test(deploy, artifact_intlora_shift_sign_and_exponent) { artifact_round_trip("intlora-shift", 4, 4 + 1 + 8 + 32.0 / 16 + 0.5); }
/* LQ-LoRA and IR-QLoRA deploy the requantized merge: the PTQ codes of W' (their "q+lr", "nf4" and
 * "icq" variants are scored as dequantized weights, with their stored bits stated by the method) */
Test(deploy, artifact_lqlora_ptq_codes) { artifact_round_trip("lq-lora", 4, 4 + 64.0 / 16 + 0.5); }
Test(deploy, artifact_irqlora_ptq_codes) { artifact_round_trip("ir-qlora", 4, 4 + 64.0 / 16 + 0.5); }

Test(deploy, artifact_intlora_mul_additive_zero_path) {
    artifact_round_trip_with("intlora-mul", 4, 8 + 96.0 / 16 + 0.5, "zero_path", "additive");
}

/* The default group kernel ([eval] group_kernel = f32): QA-LoRA's group-wise codes stay on the
 * dequantized float matmul, the run's other integer slots (the frozen base) keep their kernel. */
Test(deploy, group_codes_stay_float_unless_asked) {
    tiny k;
    tiny_model_with(&k, "qalora", 4, 8, NULL, NULL);
    qa_error err = {0, ""};
    qa_deploy d;
    cr_assert_eq(qa_deploy_merge(&k.m, &d, &err), 0, "%s", err.msg);
    qa_deploy_set(&k.m, &d, 0, -1);
    qa_deploy_kernels kern;
    qa_deploy_enable_int8(&k.m, &d, QA_GROUP_KERNEL_F32, &kern);
    cr_expect_eq(kern.adapted[QA_KERNEL_F32], d.n_layers, "%s", kern.text);
    cr_expect_eq(kern.adapted[QA_KERNEL_GROUPS], 0, "%s", kern.text);
    cr_expect_str_eq(kern.text, "f32");
    qa_deploy_free(&d);
    qa_dit_free(&k.m);
}
