/* AdamW with clipping against a hand-written double reference; the learning-rate schedule. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/optim.h"
#include "harness/train.h"

/* one AdamW step in double, exactly as documented in optim.h */
typedef struct { double m, v; } ref_state;
static double ref_step(ref_state *s, double p, double g, double lr, double wd, long t) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    s->m = b1 * s->m + (1 - b1) * g;
    s->v = b2 * s->v + (1 - b2) * g * g;
    double mh = s->m / (1 - pow(b1, (double)t)), vh = s->v / (1 - pow(b2, (double)t));
    return p - lr * (mh / (sqrt(vh) + eps) + wd * p);
}

Test(optim, first_step_by_hand) {
    /* p = 1, g = 0.5, lr = 0.1, wd = 0.01: m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25,
     * update = 0.1 (0.5 / (0.5 + 1e-8) + 0.01) ~= 0.101 -> p = 0.899 */
    float p = 1.0f, g = 0.5f;
    qa_param ps = {"p", &p, &g, 1, 1.0f};
    qa_adamw o;
    qa_adamw_init(&o, &ps, 1, 0.01f, 0.0f);
    float norm = qa_adamw_step(&o, &ps, 1, 0.1f);
    cr_assert_float_eq(norm, 0.5f, 1e-7, "returned grad norm");
    cr_assert_float_eq(p, 0.899f, 2e-7, "p after one step: %.9g", p);
    cr_assert_float_eq(o.m[0], 0.05f, 1e-7, "first moment %.9g", o.m[0]);
    cr_assert_float_eq(o.v[0], 0.00025f, 1e-8, /* (1 - 0.999f) is 0.99998713e-3 in float */ "second moment %.9g", o.v[0]);
    cr_assert_eq(o.step, 1);
    qa_adamw_free(&o);
}

Test(optim, several_steps_match_double_reference) {
    enum { N = 7 };
    float p[N], g[N];
    double rp[N];
    ref_state rs[N] = {{0, 0}};
    trng r = trng_new(5);
    fill_unif(&r, p, N, -1, 1);
    for (int i = 0; i < N; i++) rp[i] = p[i];
    qa_param ps[2] = {{"a", p, g, 3, 1.0f}, {"b", p + 3, g + 3, N - 3, 0.5f}}; /* lr_scale 0.5 on b */
    qa_adamw o;
    qa_adamw_init(&o, ps, 2, 0.05f, 0.0f);
    cr_assert_eq(o.n, (size_t)N);
    for (long t = 1; t <= 5; t++) {
        fill_unif(&r, g, N, -2, 2);
        qa_adamw_step(&o, ps, 2, 0.01f);
        for (int i = 0; i < N; i++) rp[i] = ref_step(&rs[i], rp[i], g[i], i < 3 ? 0.01 : 0.005, 0.05, t);
        for (int i = 0; i < N; i++)
            cr_assert_float_eq(p[i], rp[i], 2e-6, "step %ld param %d: %.9g vs reference %.9g", t, i, p[i], rp[i]);
    }
    qa_adamw_free(&o);
}

Test(optim, grad_norm_is_global_l2) {
    float a[2] = {3, 0}, ga[2] = {3, 0}, b[1] = {0}, gb[1] = {4};
    qa_param ps[2] = {{"a", a, ga, 2, 1}, {"b", b, gb, 1, 1}};
    cr_assert_float_eq(qa_grad_norm(ps, 2), 5.0f, 1e-6);
}

Test(optim, clipping_scales_grads_above_clip_only) {
    /* grads (3, 4), norm 5. clip 1 -> effective g = (0.6, 0.8), so m = 0.1 g */
    float p[2] = {0, 0}, g[2] = {3, 4};
    qa_param ps = {"p", p, g, 2, 1};
    qa_adamw o;
    qa_adamw_init(&o, &ps, 1, 0.0f, 1.0f);
    float norm = qa_adamw_step(&o, &ps, 1, 1e-3f);
    cr_assert_float_eq(norm, 5.0f, 1e-6, "norm is reported before clipping");
    cr_assert_float_eq(o.m[0], 0.06f, 1e-6, "m[0] = 0.1 * 3 * (1/5): %g", o.m[0]);
    cr_assert_float_eq(o.m[1], 0.08f, 1e-6, "m[1] = 0.1 * 4 * (1/5): %g", o.m[1]);
    cr_assert_float_eq(o.v[0], 0.001 * 0.36, 1e-8, "v[0]");
    cr_assert_eq(g[0], 3.0f, "the caller's gradient buffer is not modified");
    qa_adamw_free(&o);

    /* clip above the norm: unchanged */
    qa_adamw_init(&o, &ps, 1, 0.0f, 10.0f);
    qa_adamw_step(&o, &ps, 1, 1e-3f);
    cr_assert_float_eq(o.m[0], 0.3f, 1e-6, "no clipping below the threshold: %g", o.m[0]);
    qa_adamw_free(&o);

    /* clip 0 = off */
    qa_adamw_init(&o, &ps, 1, 0.0f, 0.0f);
    qa_adamw_step(&o, &ps, 1, 1e-3f);
    cr_assert_float_eq(o.m[1], 0.4f, 1e-6, "clip 0 means off: %g", o.m[1]);
    qa_adamw_free(&o);
}

Test(optim, zero_gradient_only_decays) {
    float p = 2.0f, g = 0.0f;
    qa_param ps = {"p", &p, &g, 1, 1};
    qa_adamw o;
    qa_adamw_init(&o, &ps, 1, 0.1f, 1.0f);
    qa_adamw_step(&o, &ps, 1, 0.5f);
    cr_assert_float_eq(p, 2.0 - 0.5 * 0.1 * 2.0, 1e-6, "decoupled decay with zero grad: %g", p);
    cr_assert(isfinite(p));
    qa_adamw_free(&o);
}

Test(optim, lr_schedule_warmup_and_cosine_endpoints) {
    const float peak = 1e-3f;
    /* linear warm-up over 10 steps: (step + 1) / warmup */
    cr_assert_float_eq(qa_lr_at(peak, 0, 10, 100, 1), peak * 0.1f, 1e-9, "first warm-up step");
    cr_assert_float_eq(qa_lr_at(peak, 4, 10, 100, 1), peak * 0.5f, 1e-9, "mid warm-up");
    cr_assert_float_eq(qa_lr_at(peak, 9, 10, 100, 1), peak, 1e-9, "last warm-up step reaches the peak");
    /* cosine from the peak at the end of warm-up to 10% at total */
    cr_assert_float_eq(qa_lr_at(peak, 10, 10, 100, 1), peak, 1e-9, "cosine start");
    cr_assert_float_eq(qa_lr_at(peak, 55, 10, 100, 1), peak * 0.55f, 1e-9, "cosine midpoint = (1 + 0.1) / 2");
    cr_assert_float_eq(qa_lr_at(peak, 100, 10, 100, 1), peak * 0.1f, 1e-9, "cosine end = 10%%");
    for (long s = 11; s <= 100; s++)
        cr_assert(qa_lr_at(peak, s, 10, 100, 1) <= qa_lr_at(peak, s - 1, 10, 100, 1) + 1e-12, "cosine is non-increasing");
    /* constant after warm-up; no warm-up */
    cr_assert_float_eq(qa_lr_at(peak, 50, 10, 100, 0), peak, 1e-9, "constant");
    cr_assert_float_eq(qa_lr_at(peak, 0, 0, 100, 1), peak, 1e-9, "cosine, no warm-up, step 0");
    cr_assert_float_eq(qa_lr_at(peak, 0, 0, 100, 0), peak, 1e-9, "constant, no warm-up");
    cr_assert_float_eq(qa_lr_at(peak, 20, 10, 10, 1), peak, 1e-9, "total <= warmup: the peak");
}
