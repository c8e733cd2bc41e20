/* The deployed model against the training graph, per method, on a tiny DiT: where a method
 * claims its merge is exact (IntLoRA-MUL/SHIFT: the merged integer weights are what training
 * used; QA-LoRA: the zero-point fold, up to its FP16 zero points), the deployed forward equals
 * the training forward; where it does not (LoRA and QLoRA + PTQ), the gap is measured and must be
 * non-zero. Also: a diverging run is recorded and not evaluated. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/model.h"
#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/rng.h"

enum { B = 3, D = 784 };

typedef struct {
    qa_dit m;
    float x[B * D], t[B];
    int y[B];
} tiny;

static void tiny_model(tiny *k, const char *method, int w_bits, int a_bits) {
    qa_error err = {0, ""};
    qa_dit_config c = {28, 7, 16, 2, 2, 2, 10, 2};
    cr_assert_eq(dit_create(&k->m, &c, B, &err), 0);
    dit_init_weights(&k->m, 3);
    qa_rng *r = qa_rng_new(4);
    for (size_t i = 0; i < k->m.n_params; i++) k->m.params[i] += 0.05f * (float)qa_rng_normal(r);
    qa_rng_fill_normal(r, k->x, B * D, 1.0f);
    for (int b = 0; b < B; b++) { k->t[b] = (float)(100 + 300 * b); k->y[b] = b; }
    k->m.train_base = 0;
    dit_quantize_base(&k->m, w_bits, a_bits, 1);
    qa_method_cfg cfg = {.w_bits = w_bits, .a_bits = a_bits, .rank = 2, .lora_scale = 1.0f, .vmc_alpha = 1.5f,
                         .aux_dist = QA_AUX_LAPLACE, .vmc_stat = QA_VMC_ABSMAX, .lora_bits = 0, .group_size = 8,
                         .base_lr = 1e-3f, .sampling_steps = 4};
    const qa_method *meth = qa_method_find(method);
    cr_assert_not_null(meth, "method %s not registered", method);
    cr_assert_eq(dit_attach_method(&k->m, meth, &cfg, 9, &err), 0, "%s", err.msg);
    /* the first forward calibrates (B = 0); then give every B a non-trivial value */
    float eps[B * D];
    dit_forward(&k->m, k->x, k->t, k->y, B, eps);
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

/* max |deployed - training| / max |training| over the model output */
static double deploy_gap(tiny *k, int ptq_bits) {
    float train_out[B * D], dep_out[B * D];
    dit_forward(&k->m, k->x, k->t, k->y, B, train_out);
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
            quant_search_rows(dep[j].w_fp, s->out, s->in, ptq_bits, dl, z);
            quant_fake_rows(w[j], dep[j].w_fp, s->out, s->in, ptq_bits, dl, z);
        }
        j++;
    }
    dit_set_deployed(&k->m, w, NULL, NULL, 0);
    dit_forward(&k->m, k->x, k->t, k->y, B, dep_out);
    double gap = 0, mx = 0;
    for (int i = 0; i < B * D; i++) {
        gap = fmax(gap, fabs((double)dep_out[i] - train_out[i]));
        mx = fmax(mx, fabs((double)train_out[i]));
    }
    for (int i = 0; i < n; i++) { qa_deployed_free(&dep[i]); qa_free(w[i]); }
    qa_free(dep);
    qa_free(w);
    dit_free(&k->m);
    return gap / mx;
}

Test(deploy, intlora_mul_deployed_equals_training_forward) {
    tiny k;
    tiny_model(&k, "intlora-mul", 8, 8);
    double g = deploy_gap(&k, 0);
    cr_expect(g < 1e-5, "IntLoRA-MUL deploy gap %g", g);
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
