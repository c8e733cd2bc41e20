/* Layers: forward values against naive double loops, backward against directional finite
 * differences of L = sum(out * w), and the accumulate (+=) contract of every backward. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/nn.h"

/* ---------- a generic layer under test ---------- */

#define MAXT 4
typedef struct layer layer;
struct layer {
    const char *name;
    int n_in;                 /* tensors that get gradients */
    float *in[MAXT];
    float *grad[MAXT];
    size_t n[MAXT];
    const char *tname[MAXT];
    double (*loss)(layer *);  /* forward + L = sum(out * w) in double */
    void (*backward)(layer *);/* accumulates into grad[] */
};

static void zero_grads(layer *L) {
    for (int i = 0; i < L->n_in; i++) memset(L->grad[i], 0, sizeof(float) * L->n[i]);
}

/* directional derivative of the loss along u for tensor i, with the float perturbation actually
 * applied (xp - xm) used on the analytic side so rounding of x + h u does not count as error */
static void check_direction(layer *L, int i, uint64_t seed, double h, double rel) {
    size_t n = L->n[i];
    float *x = L->in[i];
    float *x0 = malloc(sizeof(float) * n), *xp = malloc(sizeof(float) * n), *xm = malloc(sizeof(float) * n);
    trng r = trng_new(seed);
    memcpy(x0, x, sizeof(float) * n);
    for (size_t j = 0; j < n; j++) {
        double u = trng_normal(&r);
        xp[j] = (float)(x0[j] + h * u);
        xm[j] = (float)(x0[j] - h * u);
    }
    memcpy(x, xp, sizeof(float) * n);
    double Lp = L->loss(L);
    memcpy(x, xm, sizeof(float) * n);
    double Lm = L->loss(L);
    memcpy(x, x0, sizeof(float) * n);
    double fd = Lp - Lm, an = 0;
    for (size_t j = 0; j < n; j++) an += (double)L->grad[i][j] * ((double)xp[j] - xm[j]);
    fd /= 2 * h;
    an /= 2 * h;
    cr_assert(fabs(an) > 1e-6, "%s: d/d%s is ~0 (%g): the check would be vacuous", L->name, L->tname[i], an);
    cr_assert(close_rel(fd, an, rel, 1e-5), "%s: directional derivative wrt %s: analytic %.7g vs finite diff %.7g",
              L->name, L->tname[i], an, fd);
    free(x0); free(xp); free(xm);
}

static void gradcheck(layer *L) {
    L->loss(L); /* forward at the base point (saves what backward needs) */
    zero_grads(L);
    L->backward(L);
    for (int i = 0; i < L->n_in; i++)
        for (int d = 0; d < 3; d++) check_direction(L, i, 1000 + 17 * i + d, 1e-3, 1e-2);
}

/* backward called twice on zeroed grads gives twice the single result; on pre-filled grads it adds */
static void accumcheck(layer *L) {
    L->loss(L);
    float *g1[MAXT];
    zero_grads(L);
    L->backward(L);
    for (int i = 0; i < L->n_in; i++) {
        g1[i] = malloc(sizeof(float) * L->n[i]);
        memcpy(g1[i], L->grad[i], sizeof(float) * L->n[i]);
    }
    L->backward(L);
    for (int i = 0; i < L->n_in; i++)
        for (size_t j = 0; j < L->n[i]; j++)
            cr_assert_float_eq(L->grad[i][j], 2.0f * g1[i][j], 1e-5 + 1e-5 * fabsf(g1[i][j]),
                               "%s: d%s[%zu] after two backward calls: %g, want 2 x %g", L->name, L->tname[i], j,
                               L->grad[i][j], g1[i][j]);
    for (int i = 0; i < L->n_in; i++)
        for (size_t j = 0; j < L->n[i]; j++) L->grad[i][j] = 0.25f + 0.001f * (float)j;
    L->backward(L);
    for (int i = 0; i < L->n_in; i++) {
        for (size_t j = 0; j < L->n[i]; j++) {
            float want = 0.25f + 0.001f * (float)j + g1[i][j];
            cr_assert_float_eq(L->grad[i][j], want, 1e-5 + 1e-5 * fabsf(want), "%s: d%s[%zu] pre-filled: %g, want %g",
                               L->name, L->tname[i], j, L->grad[i][j], want);
        }
        free(g1[i]);
    }
}

static double weighted_sum(const float *y, const float *w, size_t n) { return dot_fd(y, w, n); }

/* ---------- linear ---------- */
enum { LM = 3, LIN = 5, LOUT = 4 };
static struct {
    layer L;
    float x[LM * LIN], W[LOUT * LIN], b[LOUT], y[LM * LOUT], w[LM * LOUT];
    float dx[LM * LIN], dW[LOUT * LIN], db[LOUT];
} lin;
static double lin_loss(layer *L) {
    (void)L;
    qa_linear_forward(lin.y, lin.x, lin.W, lin.b, LM, LIN, LOUT);
    return weighted_sum(lin.y, lin.w, LM * LOUT);
}
static void lin_back(layer *L) {
    (void)L;
    qa_linear_backward(lin.dx, lin.dW, lin.db, lin.w, lin.x, lin.W, LM, LIN, LOUT);
}
static layer *lin_setup(void) {
    trng r = trng_new(1);
    fill_unif(&r, lin.x, LM * LIN, -1, 1);
    fill_unif(&r, lin.W, LOUT * LIN, -1, 1);
    fill_unif(&r, lin.b, LOUT, -1, 1);
    fill_unif(&r, lin.w, LM * LOUT, -1, 1);
    lin.L = (layer){"linear", 3, {lin.x, lin.W, lin.b}, {lin.dx, lin.dW, lin.db}, {LM * LIN, LOUT * LIN, LOUT},
                    {"x", "W", "b"}, lin_loss, lin_back};
    return &lin.L;
}

Test(nn, linear_forward_matches_naive) {
    lin_setup();
    lin_loss(&lin.L);
    for (int m = 0; m < LM; m++)
        for (int o = 0; o < LOUT; o++) {
            double s = lin.b[o];
            for (int i = 0; i < LIN; i++) s += (double)lin.x[m * LIN + i] * lin.W[o * LIN + i];
            cr_assert_float_eq(lin.y[m * LOUT + o], s, 1e-5, "y[%d,%d]", m, o);
        }
    /* b = NULL: no bias */
    float y2[LM * LOUT];
    qa_linear_forward(y2, lin.x, lin.W, NULL, LM, LIN, LOUT);
    for (int j = 0; j < LM * LOUT; j++)
        cr_assert_float_eq(y2[j], lin.y[j] - lin.b[j % LOUT], 1e-5, "no-bias y[%d]", j);
}
Test(nn, linear_gradcheck) { gradcheck(lin_setup()); }
Test(nn, linear_backward_accumulates) { accumcheck(lin_setup()); }
Test(nn, linear_backward_null_grads_skipped) {
    layer *L = lin_setup();
    L->loss(L);
    zero_grads(L);
    L->backward(L);
    float dx_full[LM * LIN];
    memcpy(dx_full, lin.dx, sizeof dx_full);
    memset(lin.dx, 0, sizeof lin.dx);
    qa_linear_backward(lin.dx, NULL, NULL, lin.w, lin.x, lin.W, LM, LIN, LOUT);
    for (int j = 0; j < LM * LIN; j++) cr_assert_float_eq(lin.dx[j], dx_full[j], 1e-6, "dx[%d] with dW=db=NULL", j);
    float db_only[LOUT] = {0};
    qa_linear_backward(NULL, NULL, db_only, lin.w, lin.x, lin.W, LM, LIN, LOUT);
    for (int o = 0; o < LOUT; o++) {
        double s = 0;
        for (int m = 0; m < LM; m++) s += lin.w[m * LOUT + o];
        cr_assert_float_eq(db_only[o], s, 1e-6, "db[%d] = column sum of dy", o);
    }
}

/* ---------- layernorm ---------- */
enum { NM = 3, NC = 7 };
static struct {
    layer L;
    float x[NM * NC], y[NM * NC], mean[NM], rstd[NM], w[NM * NC], dx[NM * NC];
} ln;
static double ln_loss(layer *L) {
    (void)L;
    qa_layernorm_forward(ln.y, ln.mean, ln.rstd, ln.x, NM, NC);
    return weighted_sum(ln.y, ln.w, NM * NC);
}
static void ln_back(layer *L) {
    (void)L;
    qa_layernorm_backward(ln.dx, ln.w, ln.x, ln.mean, ln.rstd, NM, NC);
}
static layer *ln_setup(void) {
    trng r = trng_new(2);
    for (int m = 0; m < NM; m++)
        for (int c = 0; c < NC; c++) ln.x[m * NC + c] = (float)(0.5 * m + (1 + m) * trng_unif(&r, -1, 1));
    fill_unif(&r, ln.w, NM * NC, -1, 1);
    ln.L = (layer){"layernorm", 1, {ln.x}, {ln.dx}, {NM * NC}, {"x"}, ln_loss, ln_back};
    return &ln.L;
}
Test(nn, layernorm_forward_matches_naive) {
    ln_setup();
    ln_loss(&ln.L);
    for (int m = 0; m < NM; m++) {
        double mu = 0, var = 0;
        for (int c = 0; c < NC; c++) mu += ln.x[m * NC + c];
        mu /= NC;
        for (int c = 0; c < NC; c++) var += (ln.x[m * NC + c] - mu) * (ln.x[m * NC + c] - mu);
        var /= NC;
        double rs = 1.0 / sqrt(var + 1e-6);
        cr_assert_float_eq(ln.mean[m], mu, 1e-5, "mean[%d]", m);
        cr_assert_float_eq(ln.rstd[m], rs, 1e-4 * rs, "rstd[%d]", m);
        for (int c = 0; c < NC; c++)
            cr_assert_float_eq(ln.y[m * NC + c], (ln.x[m * NC + c] - mu) * rs, 1e-5, "y[%d,%d]", m, c);
    }
}
Test(nn, layernorm_gradcheck) { gradcheck(ln_setup()); }
Test(nn, layernorm_backward_accumulates) { accumcheck(ln_setup()); }

/* ---------- modulate (shift at cond+0, scale at cond+C, stride 3C: the third block is unused) ---------- */
enum { MB = 2, MT = 3, MC = 4, MS = 3 * MC };
static struct {
    layer L;
    float x[MB * MT * MC], cond[MB * MS], y[MB * MT * MC], w[MB * MT * MC];
    float dx[MB * MT * MC], dcond[MB * MS];
} mod;
static double mod_loss(layer *L) {
    (void)L;
    qa_modulate_forward(mod.y, mod.x, mod.cond, mod.cond + MC, MS, MB, MT, MC);
    return weighted_sum(mod.y, mod.w, MB * MT * MC);
}
static void mod_back(layer *L) {
    (void)L;
    qa_modulate_backward(mod.dx, mod.dcond, mod.dcond + MC, mod.w, mod.x, mod.cond + MC, MS, MB, MT, MC);
}
static layer *mod_setup(void) {
    trng r = trng_new(3);
    fill_unif(&r, mod.x, MB * MT * MC, -1, 1);
    fill_unif(&r, mod.cond, MB * MS, -0.5, 0.5);
    fill_unif(&r, mod.w, MB * MT * MC, -1, 1);
    mod.L = (layer){"modulate", 2, {mod.x, mod.cond}, {mod.dx, mod.dcond}, {MB * MT * MC, MB * MS},
                    {"x", "cond(shift|scale)"}, mod_loss, mod_back};
    return &mod.L;
}
Test(nn, modulate_forward_matches_naive) {
    mod_setup();
    mod_loss(&mod.L);
    for (int b = 0; b < MB; b++)
        for (int t = 0; t < MT; t++)
            for (int c = 0; c < MC; c++) {
                int i = (b * MT + t) * MC + c;
                double want = mod.x[i] * (1.0 + mod.cond[b * MS + MC + c]) + mod.cond[b * MS + c];
                cr_assert_float_eq(mod.y[i], want, 1e-6, "y[%d,%d,%d]", b, t, c);
            }
}
Test(nn, modulate_gradcheck) {
    gradcheck(mod_setup());
    /* the unused third block of each cond row gets no gradient */
    for (int b = 0; b < MB; b++)
        for (int c = 2 * MC; c < 3 * MC; c++) cr_assert_eq(mod.dcond[b * MS + c], 0.0f, "dcond[%d,%d]", b, c);
}
Test(nn, modulate_backward_accumulates) { accumcheck(mod_setup()); }

/* ---------- gated residual: out = x0 + gate * y; gate at cond + C, stride 2C ---------- */
enum { GB = 2, GT = 3, GC = 5, GS = 2 * GC };
static struct {
    layer L;
    float x0[GB * GT * GC], out[GB * GT * GC], y[GB * GT * GC], cond[GB * GS], w[GB * GT * GC];
    float dy[GB * GT * GC], dcond[GB * GS];
} gr;
static double gr_loss(layer *L) {
    (void)L;
    qa_gated_residual_forward(gr.out, gr.x0, gr.y, gr.cond + GC, GS, GB, GT, GC);
    return weighted_sum(gr.out, gr.w, GB * GT * GC);
}
static void gr_back(layer *L) {
    (void)L;
    qa_gated_residual_backward(gr.dy, gr.dcond + GC, gr.w, gr.y, gr.cond + GC, GS, GB, GT, GC);
}
static layer *gr_setup(void) {
    trng r = trng_new(4);
    fill_unif(&r, gr.x0, GB * GT * GC, -1, 1);
    fill_unif(&r, gr.y, GB * GT * GC, -1, 1);
    fill_unif(&r, gr.cond, GB * GS, -1, 1);
    fill_unif(&r, gr.w, GB * GT * GC, -1, 1);
    gr.L = (layer){"gated_residual", 2, {gr.y, gr.cond}, {gr.dy, gr.dcond}, {GB * GT * GC, GB * GS},
                   {"y", "cond(gate)"}, gr_loss, gr_back};
    return &gr.L;
}
Test(nn, gated_residual_forward_matches_naive) {
    gr_setup();
    gr_loss(&gr.L);
    for (int b = 0; b < GB; b++)
        for (int t = 0; t < GT; t++)
            for (int c = 0; c < GC; c++) {
                int i = (b * GT + t) * GC + c;
                cr_assert_float_eq(gr.out[i], gr.x0[i] + (double)gr.cond[b * GS + GC + c] * gr.y[i], 1e-6, "x[%d]", i);
            }
}
Test(nn, gated_residual_forward_in_place_equals_out_of_place) {
    gr_setup();
    gr_loss(&gr.L);
    float x[GB * GT * GC];
    memcpy(x, gr.x0, sizeof x);
    qa_gated_residual_forward(x, x, gr.y, gr.cond + GC, GS, GB, GT, GC);
    cr_assert(memcmp(x, gr.out, sizeof x) == 0, "x_out = x gives the out-of-place result bit for bit");
}
Test(nn, gated_residual_gradcheck) {
    gradcheck(gr_setup());
    for (int b = 0; b < GB; b++)
        for (int c = 0; c < GC; c++) cr_assert_eq(gr.dcond[b * GS + c], 0.0f, "unused cond slot got a gradient");
}
Test(nn, gated_residual_backward_accumulates) { accumcheck(gr_setup()); }

/* ---------- elementwise activations ---------- */
enum { EN = 40 };
typedef void (*act_fwd)(float *, const float *, size_t);
typedef void (*act_bwd)(float *, const float *, const float *, size_t);
static struct {
    layer L;
    act_fwd f;
    act_bwd b;
    float x[EN], y[EN], w[EN], dx[EN];
} act;
static double act_loss(layer *L) {
    (void)L;
    act.f(act.y, act.x, EN);
    return weighted_sum(act.y, act.w, EN);
}
static void act_back(layer *L) {
    (void)L;
    act.b(act.dx, act.w, act.x, EN);
}
static layer *act_setup(const char *name, act_fwd f, act_bwd b) {
    trng r = trng_new(5);
    for (int i = 0; i < EN; i++) { /* keep away from relu's kink at 0 */
        double v = trng_unif(&r, 0.02, 4.0);
        act.x[i] = (float)(i % 2 ? v : -v);
    }
    fill_unif(&r, act.w, EN, -1, 1);
    act.f = f;
    act.b = b;
    act.L = (layer){name, 1, {act.x}, {act.dx}, {EN}, {"x"}, act_loss, act_back};
    return &act.L;
}
Test(nn, gelu_forward_matches_tanh_formula) {
    act_setup("gelu", qa_gelu_forward, qa_gelu_backward);
    act_loss(&act.L);
    for (int i = 0; i < EN; i++) {
        double v = act.x[i];
        double want = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        cr_assert_float_eq(act.y[i], want, 1e-6 + 1e-6 * fabs(want), "gelu(%g) = %g, want %g", v, act.y[i], want);
    }
}
Test(nn, silu_forward_matches_formula) {
    act_setup("silu", qa_silu_forward, qa_silu_backward);
    act_loss(&act.L);
    for (int i = 0; i < EN; i++) {
        double v = act.x[i], want = v / (1 + exp(-v));
        cr_assert_float_eq(act.y[i], want, 1e-6 + 1e-6 * fabs(want), "silu(%g)", v);
    }
}
Test(nn, relu_forward_matches_formula) {
    act_setup("relu", qa_relu_forward, qa_relu_backward);
    act_loss(&act.L);
    for (int i = 0; i < EN; i++) cr_assert_eq(act.y[i], act.x[i] > 0 ? act.x[i] : 0.0f, "relu(%g)", act.x[i]);
}
Test(nn, gelu_gradcheck) { gradcheck(act_setup("gelu", qa_gelu_forward, qa_gelu_backward)); }
Test(nn, silu_gradcheck) { gradcheck(act_setup("silu", qa_silu_forward, qa_silu_backward)); }
Test(nn, relu_gradcheck) { gradcheck(act_setup("relu", qa_relu_forward, qa_relu_backward)); }
/* The in-place GELU backward as an accumulating one (dy copied, then added), for the same checks. */
static void gelu_backward_in_place_added(float *dx, const float *dy, const float *x, size_t n) {
    float t[EN];
    cr_assert(n <= EN);
    memcpy(t, dy, sizeof(float) * n);
    qa_gelu_backward_in_place(t, x, n);
    for (size_t i = 0; i < n; i++) dx[i] += t[i];
}
Test(nn, gelu_backward_in_place_gradcheck) { gradcheck(act_setup("gelu", qa_gelu_forward, gelu_backward_in_place_added)); }
Test(nn, gelu_backward_accumulates) { accumcheck(act_setup("gelu", qa_gelu_forward, qa_gelu_backward)); }
Test(nn, silu_backward_accumulates) { accumcheck(act_setup("silu", qa_silu_forward, qa_silu_backward)); }
Test(nn, relu_backward_accumulates) { accumcheck(act_setup("relu", qa_relu_forward, qa_relu_backward)); }
Test(nn, activations_extreme_inputs_finite) {
    float x[6] = {-200.f, -90.f, -30.f, 30.f, 90.f, 200.f}, y[6], dx[6] = {0}, dy[6] = {1, 1, 1, 1, 1, 1};
    qa_gelu_forward(y, x, 6);
    qa_gelu_backward(dx, dy, x, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert(isfinite(y[i]) && isfinite(dx[i]), "gelu(%g) = %g, d = %g", x[i], y[i], dx[i]);
        cr_assert_float_eq(y[i], x[i] > 0 ? x[i] : 0.0f, 1e-4 * fabsf(x[i]), "gelu(%g) saturates", x[i]);
    }
    qa_silu_forward(y, x, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert(isfinite(y[i]), "silu(%g) = %g", x[i], y[i]);
        cr_assert_float_eq(y[i], x[i] > 0 ? x[i] : 0.0f, 1e-4 * fabsf(x[i]), "silu(%g) saturates", x[i]);
    }
}

/* ---------- attention ---------- */
enum { AB = 2, AT = 5, AC = 6, AH = 2 };
static struct {
    layer L;
    float q[AB * AT * AC], k[AB * AT * AC], v[AB * AT * AC], out[AB * AT * AC], probs[AB * AH * AT * AT];
    float w[AB * AT * AC], dq[AB * AT * AC], dk[AB * AT * AC], dv[AB * AT * AC], scratch[2 * AB * AH * AT * AT];
} att;
static double att_loss(layer *L) {
    (void)L;
    qa_attention_forward(att.out, att.probs, att.q, att.k, att.v, AB, AT, AC, AH);
    return weighted_sum(att.out, att.w, AB * AT * AC);
}
static void att_back(layer *L) {
    (void)L;
    qa_attention_backward(att.dq, att.dk, att.dv, att.w, att.probs, att.q, att.k, att.v, att.scratch, AB, AT, AC, AH);
}
static layer *att_setup(void) {
    trng r = trng_new(6);
    fill_unif(&r, att.q, AB * AT * AC, -1.5, 1.5);
    fill_unif(&r, att.k, AB * AT * AC, -1.5, 1.5);
    fill_unif(&r, att.v, AB * AT * AC, -1, 1);
    fill_unif(&r, att.w, AB * AT * AC, -1, 1);
    att.L = (layer){"attention", 3, {att.q, att.k, att.v}, {att.dq, att.dk, att.dv},
                    {AB * AT * AC, AB * AT * AC, AB * AT * AC}, {"q", "k", "v"}, att_loss, att_back};
    return &att.L;
}
Test(nn, attention_forward_matches_naive) {
    att_setup();
    att_loss(&att.L);
    const int hd = AC / AH;
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AH; h++)
            for (int i = 0; i < AT; i++) {
                double s[AT], mx = -1e300, sum = 0;
                for (int j = 0; j < AT; j++) {
                    s[j] = 0;
                    for (int c = 0; c < hd; c++)
                        s[j] += (double)att.q[(b * AT + i) * AC + h * hd + c] * att.k[(b * AT + j) * AC + h * hd + c];
                    s[j] /= sqrt((double)hd);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < AT; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                for (int j = 0; j < AT; j++) {
                    s[j] /= sum;
                    cr_assert_float_eq(att.probs[((b * AH + h) * AT + i) * AT + j], s[j], 1e-6, "P[%d,%d,%d,%d]", b, h, i, j);
                }
                for (int c = 0; c < hd; c++) {
                    double o = 0;
                    for (int j = 0; j < AT; j++) o += s[j] * att.v[(b * AT + j) * AC + h * hd + c];
                    cr_assert_float_eq(att.out[(b * AT + i) * AC + h * hd + c], o, 1e-5, "out[%d,%d,%d,%d]", b, i, h, c);
                }
            }
}
Test(nn, attention_gradcheck) { gradcheck(att_setup()); }
Test(nn, attention_backward_accumulates) { accumcheck(att_setup()); }

/* ---------- embedding (with repeated ids) ---------- */
enum { EV = 5, EB = 4, EC = 3 };
static const int emb_ids[EB] = {3, 0, 3, 4};
static struct {
    layer L;
    float table[EV * EC], y[EB * EC], w[EB * EC], dtable[EV * EC];
} emb;
static double emb_loss(layer *L) {
    (void)L;
    qa_embedding_forward(emb.y, emb.table, emb_ids, EB, EC);
    return weighted_sum(emb.y, emb.w, EB * EC);
}
static void emb_back(layer *L) {
    (void)L;
    qa_embedding_backward(emb.dtable, emb.w, emb_ids, EB, EC);
}
static layer *emb_setup(void) {
    trng r = trng_new(7);
    fill_unif(&r, emb.table, EV * EC, -1, 1);
    fill_unif(&r, emb.w, EB * EC, -1, 1);
    emb.L = (layer){"embedding", 1, {emb.table}, {emb.dtable}, {EV * EC}, {"table"}, emb_loss, emb_back};
    return &emb.L;
}
Test(nn, embedding_forward_and_backward_by_hand) {
    emb_setup();
    emb_loss(&emb.L);
    for (int b = 0; b < EB; b++)
        for (int c = 0; c < EC; c++) cr_assert_eq(emb.y[b * EC + c], emb.table[emb_ids[b] * EC + c]);
    memset(emb.dtable, 0, sizeof emb.dtable);
    emb_back(&emb.L);
    for (int c = 0; c < EC; c++) {
        cr_assert_float_eq(emb.dtable[3 * EC + c], emb.w[0 * EC + c] + emb.w[2 * EC + c], 1e-7, "repeated id 3 sums");
        cr_assert_float_eq(emb.dtable[0 * EC + c], emb.w[1 * EC + c], 1e-7, "id 0");
        cr_assert_eq(emb.dtable[1 * EC + c], 0.0f, "unused id 1");
        cr_assert_eq(emb.dtable[2 * EC + c], 0.0f, "unused id 2");
    }
}
Test(nn, embedding_gradcheck) { gradcheck(emb_setup()); }
Test(nn, embedding_backward_accumulates) { accumcheck(emb_setup()); }

/* ---------- softmax cross-entropy ---------- */
enum { SB = 3, SK = 5 };
static const int sx_labels[SB] = {2, 0, 4};
static double naive_xent(const float *logits) {
    double loss = 0;
    for (int b = 0; b < SB; b++) {
        double mx = -1e300, sum = 0;
        for (int k = 0; k < SK; k++) mx = logits[b * SK + k] > mx ? logits[b * SK + k] : mx;
        for (int k = 0; k < SK; k++) sum += exp(logits[b * SK + k] - mx);
        loss += -(logits[b * SK + sx_labels[b]] - mx - log(sum));
    }
    return loss / SB;
}
Test(nn, softmax_xent_value_probs_and_gradcheck) {
    trng r = trng_new(8);
    float logits[SB * SK], probs[SB * SK], dl[SB * SK];
    fill_unif(&r, logits, SB * SK, -3, 3);
    float loss = qa_softmax_xent_forward_backward(dl, probs, logits, sx_labels, SB, SK);
    cr_assert_float_eq(loss, naive_xent(logits), 1e-5, "loss %g vs naive %g", loss, naive_xent(logits));
    for (int b = 0; b < SB; b++) {
        double mx = -1e300, sum = 0;
        for (int k = 0; k < SK; k++) mx = logits[b * SK + k] > mx ? logits[b * SK + k] : mx;
        for (int k = 0; k < SK; k++) sum += exp(logits[b * SK + k] - mx);
        for (int k = 0; k < SK; k++)
            cr_assert_float_eq(probs[b * SK + k], exp(logits[b * SK + k] - mx) / sum, 1e-6, "p[%d,%d]", b, k);
    }
    /* directional derivatives of the (double) loss */
    for (int d = 0; d < 3; d++) {
        float lp[SB * SK], lm[SB * SK];
        double h = 1e-3, an = 0;
        for (int j = 0; j < SB * SK; j++) {
            double u = trng_normal(&r);
            lp[j] = (float)(logits[j] + h * u);
            lm[j] = (float)(logits[j] - h * u);
            an += (double)dl[j] * ((double)lp[j] - lm[j]);
        }
        double fd = (naive_xent(lp) - naive_xent(lm)) / (2 * h);
        an /= 2 * h;
        cr_assert(close_rel(fd, an, 1e-2, 1e-6), "softmax_xent: analytic %g vs fd %g", an, fd);
        /* and against the unit's own returned loss (float, so a looser step) */
        float p2[SB * SK];
        double H = 1e-2;
        for (int j = 0; j < SB * SK; j++) {
            double u = ((double)lp[j] - lm[j]) / (2 * h);
            lp[j] = (float)(logits[j] + H * u);
            lm[j] = (float)(logits[j] - H * u);
        }
        double fd2 = ((double)qa_softmax_xent_forward_backward(NULL, p2, lp, sx_labels, SB, SK) -
                      qa_softmax_xent_forward_backward(NULL, p2, lm, sx_labels, SB, SK)) / (2 * H);
        cr_assert(close_rel(fd2, an, 2e-2, 1e-4), "softmax_xent (unit's loss): analytic %g vs fd %g", an, fd2);
    }
    /* documented as an assignment (dlogits = ...), not an accumulation: a second call gives the same */
    float dl2[SB * SK];
    memcpy(dl2, dl, sizeof dl);
    qa_softmax_xent_forward_backward(dl2, probs, logits, sx_labels, SB, SK);
    for (int j = 0; j < SB * SK; j++) cr_assert_float_eq(dl2[j], dl[j], 1e-7, "dlogits[%d] is assigned", j);
}

/* ---------- timestep features, helpers ---------- */
Test(nn, timestep_features_match_formula) {
    const int B = 3, C = 8;
    float t[3] = {0.f, 17.f, 999.f}, y[24];
    qa_timestep_features(y, t, B, C);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < C / 2; i++) {
            double f = exp(-log(10000.0) * i / (C / 2));
            cr_assert_float_eq(y[b * C + i], cos(t[b] * f), 2e-4, "cos feature [%d,%d]", b, i);
            cr_assert_float_eq(y[b * C + C / 2 + i], sin(t[b] * f), 2e-4, "sin feature [%d,%d]", b, i);
        }
    cr_assert_eq(y[0], 1.0f, "cos(0) = 1");
    cr_assert_eq(y[C / 2], 0.0f, "sin(0) = 0");
}

Test(nn, vec_add_and_scale) {
    float y[4] = {1, 2, 3, 4}, x[4] = {0.5f, -1, 2, 0};
    qa_vec_add(y, x, 4);
    float want[4] = {1.5f, 1, 5, 4};
    for (int i = 0; i < 4; i++) cr_assert_float_eq(y[i], want[i], 1e-7);
    qa_vec_scale(y, -2.0f, 4);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(y[i], -2.0f * want[i], 1e-7);
}
