/* IntLoRA-MUL and -SHIFT gradients of A and B against finite differences of a straight-through
 * surrogate written here in double: U = delta_i + (R* + B A) / D is recomputed from the tensors
 * the layer exposes, and the rounding is frozen at the evaluation point, so
 *   MUL:   W_sur = W' + mask (U - U0) W_int           (round(U/dU) passes U/dU straight through)
 *   SHIFT: W_sur = W' + mask (2^k0 / |U0|) (U - U0) W_int  (round(log2|U|) passes straight through)
 * with mask = 0 where W_int = 0 or (MUL) the update code is clamped. A true finite difference of
 * the layer would be zero almost everywhere (rounding), so this is the check that can fail. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "harness/registry.h"
#include "harness/rng.h"

enum { IN = 12, OUT = 8, M = 5, R = 2 };

static const qa_named_tensor *find(const qa_named_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++) if (!strcmp(t[i].name, name)) return &t[i];
    cr_assert_fail("tensor %s not exposed", name);
    return NULL;
}

static void check(const char *method, int bits) {
    const qa_method *m = qa_method_find(method);
    cr_assert_not_null(m);
    qa_rng *r = qa_rng_new(21);
    float W[OUT * IN], b[OUT], x[M * IN], w[M * OUT], y[M * OUT];
    qa_rng_fill_normal(r, W, OUT * IN, 0.3f);
    qa_rng_fill_normal(r, b, OUT, 0.1f);
    qa_rng_fill_normal(r, x, M * IN, 1.0f);
    qa_rng_fill_normal(r, w, M * OUT, 1.0f);
    qa_method_cfg cfg = {.w_bits = bits, .rank = R, .lora_scale = 1.0f}; /* options: the defaults (vmc_alpha 1.5) */
    qa_layer_init li = {IN, OUT, W, b, &cfg, r, "t", NULL, NULL};
    void *st = qa_alloc(m->state_size);
    qa_error err = {0, ""};
    cr_assert_eq(m->init(st, &li, &err), 0, "%s", err.msg);
    m->forward(st, x, y, M); /* calibrates (MUL) with B = 0 */
    qa_param ps[2];
    cr_assert_eq(m->params(st, ps, 2), 2);
    qa_rng_fill_normal(r, ps[1].data, ps[1].n, 0.05f);
    for (int p = 0; p < 2; p++) memset(ps[p].grad, 0, sizeof(float) * ps[p].n);
    m->forward(st, x, y, M);
    m->backward(st, w, NULL, M);
    qa_named_tensor t[16];
    int nt = m->inspect(st, t, 16);
    const float *Rs = find(t, nt, "R")->f32, *delta = find(t, nt, "delta")->f32, *zero = find(t, nt, "zero_point")->f32;
    const float *Weff = find(t, nt, "W_eff")->f32;
    const int32_t *Wr = find(t, nt, "W_round")->i32;
    int mul = strcmp(method, "intlora-mul") == 0;
    const float *dU = mul ? find(t, nt, "U_delta")->f32 : NULL, *zU = mul ? find(t, nt, "U_zero_point")->f32 : NULL;
    const float *A = ps[0].data, *B = ps[1].data;
    double L = (1 << bits) - 1;
    /* U0, mask and the surrogate's slope at the evaluation point */
    static double U0[OUT * IN], slope[OUT * IN];
    int active = 0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double ba = 0;
            for (int k = 0; k < R; k++) ba += (double)B[o * R + k] * A[k * IN + i];
            double wi = Wr[o * IN + i] - zero[o], D = wi == 0 ? 1 : wi;
            double u = delta[o] + (Rs[o * IN + i] + ba) / D;
            U0[o * IN + i] = u;
            double sl = 0;
            if (wi != 0) {
                if (mul) {
                    double q = nearbyint(u / dU[o]) + zU[o];
                    sl = (q >= 0 && q <= L) ? wi : 0;
                } else {
                    double k = nearbyint(log2(fabs(u) + 1e-16));
                    sl = u != 0 ? exp2(k) / (fabs(u) + 1e-16) * wi : 0;
                }
            }
            slope[o * IN + i] = sl;
            active += sl != 0;
        }
    cr_assert_gt(active, OUT * IN / 2, "most entries must be adaptable");
    /* L_s(A, B) = sum_m sum_o w[m,o] (sum_i x[m,i] W_sur[o,i]) */
    double h = 1e-3;
    for (int p = 0; p < 2; p++)
        for (size_t e = 0; e < ps[p].n; e++) {
            double lv[2];
            float old = ps[p].data[e];
            for (int sgn = 0; sgn < 2; sgn++) {
                ps[p].data[e] = old + (float)(sgn ? -h : h);
                double acc = 0;
                for (int o = 0; o < OUT; o++)
                    for (int i = 0; i < IN; i++) {
                        double ba = 0;
                        for (int k = 0; k < R; k++) ba += (double)B[o * R + k] * A[k * IN + i];
                        double wi = Wr[o * IN + i] - zero[o], D = wi == 0 ? 1 : wi;
                        double u = delta[o] + (Rs[o * IN + i] + ba) / D;
                        double wsur = Weff[o * IN + i] + slope[o * IN + i] * (u - U0[o * IN + i]);
                        double g = 0;
                        for (int mm = 0; mm < M; mm++) g += (double)w[mm * OUT + o] * x[mm * IN + i];
                        acc += g * wsur;
                    }
                lv[sgn] = acc;
            }
            ps[p].data[e] = old;
            double num = (lv[0] - lv[1]) / (2 * h), an = ps[p].grad[e];
            cr_expect(fabs(num - an) <= 2e-3 * (1 + fabs(num)), "%s %s[%zu]: surrogate FD %g, analytic %g", method,
                      ps[p].name, e, num, an);
        }
    /* the merge reports the share of entries that cannot adapt and (SHIFT) the exponent range */
    qa_deployed d;
    cr_assert_eq(m->merge(st, &d, &err), 0, "%s", err.msg);
    size_t zeros = 0;
    for (int i = 0; i < OUT * IN; i++) zeros += Wr[i] - zero[i / IN] == 0;
    char want[64];
    snprintf(want, sizeof want, "W_int=0 %.2f%%", 100.0 * zeros / (OUT * IN));
    cr_expect(strstr(d.note, want) != NULL, "note '%s' should contain '%s'", d.note, want);
    if (!mul) cr_expect(strstr(d.note, "exponents ") != NULL, "note: %s", d.note);
    qa_deployed_free(&d);
    m->destroy(st);
    qa_free(st);
    qa_rng_free(r);
}

Test(intlora, mul_gradients_match_the_ste_surrogate) { check("intlora-mul", 8); }
Test(intlora, mul_gradients_at_4_bits) { check("intlora-mul", 4); }
Test(intlora, shift_gradients_match_the_ste_surrogate) { check("intlora-shift", 8); }
Test(intlora, shift_gradients_at_4_bits) { check("intlora-shift", 4); }
