#include "harness/fixture.h"

#include <string.h>

#include "harness/quant.h"
#include "harness/registry.h"
#include "harness/results.h"
#include "harness/rng.h"

typedef struct {
    const char *name;
    int rows_from, cols_from; /* dims: 'o' out, 'i' in, 'r' rank, 't' tokens, '1' none */
} ds_spec;

static int read_matrix(qa_h5 *f, const char *cs, const char *name, int rows, int cols, float **out, char *why, size_t wl) {
    char p[256];
    snprintf(p, sizeof p, "/%.63s/in/%.63s", cs, name);
    if (!qa_h5_exists(f, p)) { snprintf(why, wl, "missing dataset in/%s", name); return -1; }
    void *data = NULL;
    int nd;
    int64_t dims[4];
    qa_error e;
    if (qa_h5_read(f, p, QA_H5_F32, &data, 0, &nd, dims, &e)) { snprintf(why, wl, "in/%.63s: %.400s", name, e.msg); return -1; }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    int tokens_ok = rows < 0 && nd == 2 && dims[1] == cols; /* rows < 0: any number of rows (tokens) */
    if (!tokens_ok && (n != (int64_t)rows * cols || (nd == 2 && (dims[0] != rows || dims[1] != cols)))) {
        snprintf(why, wl, "in/%s has shape %lldx%lld, expected %dx%d", name, (long long)dims[0],
                 (long long)(nd > 1 ? dims[1] : 1), rows, cols);
        qa_free(data);
        return -1;
    }
    *out = data;
    return nd == 2 ? (int)dims[0] : 1;
}

static int write_named(qa_h5 *o, const char *cs, const char *stage, const qa_named_tensor *t, qa_error *err) {
    char p[256];
    snprintf(p, sizeof p, "/%.63s/%.15s/%.63s", cs, stage, t->name);
    int64_t dims[2] = {t->dims[0], t->dims[1]};
    if (t->i32) return qa_h5_write(o, p, QA_H5_I32, t->i32, t->ndim, dims, err);
    return qa_h5_write(o, p, QA_H5_F32, t->f32, t->ndim, dims, err);
}

static int write_f32(qa_h5 *o, const char *cs, const char *stage, const char *name, const float *d, int rows,
                     int cols, qa_error *err) {
    char p[256];
    snprintf(p, sizeof p, "/%.63s/%.15s/%.63s", cs, stage, name);
    int64_t dims[2] = {rows, cols};
    return qa_h5_write(o, p, QA_H5_F32, d, cols > 1 || rows == 1 ? 2 : 1, dims, err);
}

/* The method's options: its defaults, and those its fixture attributes set. */
static int fixture_options(qa_h5 *f, const char *grp, const qa_method *m, void *options, char *why, size_t wl) {
    qa_method_options_defaults(m, options);
    for (int i = 0; i < m->n_fixture_options; i++) {
        const qa_fixture_option *fo = &m->fixture_options[i];
        double v;
        qa_error e;
        char text[64];
        if (qa_h5_attr_get_f64(f, grp, fo->attr, &v, &e)) { snprintf(why, wl, "missing attribute '%s'", fo->attr); return -1; }
        snprintf(text, sizeof text, "%.17g", v);
        if (qa_method_option_set(m, options, fo->option, text, &e)) { snprintf(why, wl, "%.500s", e.msg); return -1; }
    }
    return 0;
}

/* The method's options from the fixture's attributes, numeric or text (e.g. LR-QAT's `variant`). */
static int fixture_options_text(qa_h5 *f, const char *grp, const qa_method *m, void *options, char *why, size_t wl) {
    qa_method_options_defaults(m, options);
    for (int i = 0; i < m->n_fixture_options; i++) {
        const qa_fixture_option *fo = &m->fixture_options[i];
        char text[64];
        double v;
        qa_error e;
        if (qa_h5_attr_get_str(f, grp, fo->attr, text, sizeof text, &e)) {
            if (qa_h5_attr_get_f64(f, grp, fo->attr, &v, &e)) { snprintf(why, wl, "missing attribute '%s'", fo->attr); return -1; }
            snprintf(text, sizeof text, "%.17g", v);
        }
        if (qa_method_option_set(m, options, fo->option, text, &e)) { snprintf(why, wl, "%.500s", e.msg); return -1; }
    }
    return 0;
}

/* The method's layer from the case's weights (R: a given auxiliary matrix, or NULL); -1 with why
 * when the method refuses it. *state is allocated either way (the caller frees it). */
static int layer_init(const qa_method *m, const qa_method_cfg *cfg, int in, int out, const float *W, const float *bias,
                      const float *R, const char *cs, void **state, char *why, size_t wl) {
    qa_rng *r = qa_rng_new(1);
    qa_layer_init li = {in, out, W, bias, cfg, r, cs, R, NULL};
    *state = qa_alloc(m->state_size);
    qa_error ie;
    int rc = 0;
    if (m->init(*state, &li, &ie)) { snprintf(why, wl, "%.500s", ie.msg); rc = -1; }
    qa_rng_free(r);
    return rc;
}

/* The trainable tensors, A [rank, in] and B [out, rank] first, set to the case's A and B = 0 (the
 * start of training); returns how many there are. */
static int factors_at_start(const qa_method *m, void *state, const float *A, int rank, int in, int out, qa_param *ps) {
    int np = m->params(state, ps, 8);
    QA_ASSERT(np >= 2 && ps[0].n == (size_t)rank * in && ps[1].n == (size_t)out * rank);
    memcpy(ps[0].data, A, sizeof(float) * ps[0].n);
    memset(ps[1].data, 0, sizeof(float) * ps[1].n);
    return np;
}

/* One case of the low-rank QAT layer schema (tests/data/README.md, "LR-QAT"): attributes
 * in_features, out_features, rank, n_bits, lora_alpha, int_min, int_max, symmetric = 1,
 * channel_wise = 1, range_estimator = current_minmax; in/ W, bias, A, B, x, dy. Writes init/
 * scale, Phi0 (B = 0) and trained/ W_int, W_eff, y, grad_A, grad_B and grad_<name> of every
 * further trainable tensor (grad_scale) with the given B (gradients of sum(y * dy)). The low-rank
 * term is scaled by lora_alpha / rank: the method's lora_scale. */
static int lowrank_qat_case(qa_h5 *f, qa_h5 *o, const char *cs, const qa_method *m, char *why, size_t wl, qa_error *err) {
    char grp[128];
    snprintf(grp, sizeof grp, "/%.63s", cs);
    qa_error e;
    const char *attrs[] = {"in_features", "out_features", "rank", "n_bits", "lora_alpha", "int_min", "int_max", "symmetric",
                           "channel_wise"};
    double v[9];
    for (int i = 0; i < 9; i++)
        if (qa_h5_attr_get_f64(f, grp, attrs[i], &v[i], &e)) { snprintf(why, wl, "missing attribute '%s'", attrs[i]); return -1; }
    char range[64] = "";
    if (qa_h5_attr_get_str(f, grp, "range_estimator", range, sizeof range, &e) || strcmp(range, "current_minmax") != 0) {
        snprintf(why, wl, "range_estimator '%s' is not supported (only current_minmax)", range);
        return -1;
    }
    const int in = (int)v[0], out = (int)v[1], rank = (int)v[2], n_bits = (int)v[3];
    if (v[7] != 1 || v[8] != 1) { snprintf(why, wl, "only symmetric = 1, channel_wise = 1 is supported"); return -1; }
    if (in < 1 || out < 1 || rank < 1 || n_bits < 2 || n_bits > 8 || !(v[4] > 0)) {
        snprintf(why, wl, "implausible attributes (in %d, out %d, rank %d, n_bits %d, lora_alpha %g)", in, out, rank, n_bits, v[4]);
        return -1;
    }
    if (v[5] != -(double)(1 << (n_bits - 1)) || v[6] != (double)((1 << (n_bits - 1)) - 1)) {
        snprintf(why, wl, "int_min %g, int_max %g are not the signed %d-bit grid", v[5], v[6], n_bits);
        return -1;
    }
    float *W = NULL, *bias = NULL, *A = NULL, *B = NULL, *x = NULL, *dy = NULL;
    int tokens = 0, rc = 0;
    if (read_matrix(f, cs, "W", out, in, &W, why, wl) < 0 || read_matrix(f, cs, "bias", out, 1, &bias, why, wl) < 0 ||
        read_matrix(f, cs, "A", rank, in, &A, why, wl) < 0 || read_matrix(f, cs, "B", out, rank, &B, why, wl) < 0 ||
        (tokens = read_matrix(f, cs, "x", -1, in, &x, why, wl)) < 0 || read_matrix(f, cs, "dy", tokens, out, &dy, why, wl) < 0)
        rc = -1;
    void *state = NULL, *options = m->options_size ? qa_alloc(m->options_size) : NULL;
    if (rc == 0 && options) rc = fixture_options_text(f, grp, m, options, why, wl);
    if (rc == 0) {
        qa_method_cfg cfg = {.w_bits = n_bits, .a_bits = 0, .rank = rank, .lora_scale = (float)(v[4] / rank), .options = options};
        rc = layer_init(m, &cfg, in, out, W, bias, NULL, cs, &state, why, wl);
    }
    if (rc == 0) {
        qa_param ps[8];
        int np = factors_at_start(m, state, A, rank, in, out, ps);
        float *y = qa_alloc(sizeof(float) * (size_t)tokens * out);
        m->forward(state, x, y, tokens);
        qa_named_tensor t[16];
        int nt = m->inspect(state, t, 16);
        for (int i = 0; i < nt && !rc; i++)
            if (!strcmp(t[i].name, "scale") || !strcmp(t[i].name, "Phi0")) rc = write_named(o, cs, "init", &t[i], err);
        memcpy(ps[1].data, B, sizeof(float) * ps[1].n);
        for (int i = 0; i < np; i++) memset(ps[i].grad, 0, sizeof(float) * ps[i].n);
        m->forward(state, x, y, tokens);
        m->backward(state, dy, NULL, tokens);
        nt = m->inspect(state, t, 16);
        for (int i = 0; i < nt && !rc; i++)
            if (!strcmp(t[i].name, "W_int") || !strcmp(t[i].name, "W_eff")) rc = write_named(o, cs, "trained", &t[i], err);
        if (!rc) rc = write_f32(o, cs, "trained", "y", y, tokens, out, err);
        if (!rc) rc = write_f32(o, cs, "trained", "grad_A", ps[0].grad, rank, in, err);
        if (!rc) rc = write_f32(o, cs, "trained", "grad_B", ps[1].grad, out, rank, err);
        for (int i = 2; i < np && !rc; i++) {
            char name[80];
            snprintf(name, sizeof name, "grad_%.60s", ps[i].name);
            rc = write_f32(o, cs, "trained", name, ps[i].grad, (int)ps[i].n, 1, err);
        }
        if (!rc) rc = qa_h5_attr_set_str(o, grp, "method", m->name, err);
        qa_free(y);
        m->destroy(state);
    }
    qa_free(state);
    qa_free(options);
    qa_free(W); qa_free(bias); qa_free(A); qa_free(B); qa_free(x); qa_free(dy);
    return rc;
}

/* One case of the per-row quantizer schema of the information-calibrated quantizer (ICQ,
 * tests/data/README.md): attributes rows, columns, n_bits (1..8), symmetric (0 or 1),
 * channel_wise (1); in/W [rows, columns]; the file's root attributes tau_range and tau_n (the
 * reference's 0.1 and 50 when absent). Writes icq/scale, zero_point [rows], codes [rows, columns]
 * (int32, the unsigned codes clamp(round(W / scale) + zero, 0, 2^n_bits - 1)) and W_q = scale
 * (codes - zero), with the reference's int8 counting (quant_icq_search in harness/quant.c). */
static int icq_case(qa_h5 *f, qa_h5 *o, const char *cs, const char *label, char *why, size_t wl, qa_error *err) {
    char grp[128];
    snprintf(grp, sizeof grp, "/%.63s", cs);
    qa_error e;
    const char *attrs[] = {"rows", "columns", "n_bits", "symmetric", "channel_wise"};
    double v[5];
    for (int i = 0; i < 5; i++)
        if (qa_h5_attr_get_f64(f, grp, attrs[i], &v[i], &e)) { snprintf(why, wl, "missing attribute '%s'", attrs[i]); return -1; }
    const int rows = (int)v[0], cols = (int)v[1], bits = (int)v[2];
    if (v[4] != 1) { snprintf(why, wl, "only channel_wise = 1 is supported (got %g)", v[4]); return -1; }
    if (v[3] != 0 && v[3] != 1) { snprintf(why, wl, "symmetric must be 0 or 1 (got %g)", v[3]); return -1; }
    if (rows < 1 || cols < 1 || bits < 1 || bits > 8) {
        snprintf(why, wl, "implausible attributes (rows %d, columns %d, n_bits %d: 1..8)", rows, cols, bits);
        return -1;
    }
    quant_icq_cfg cfg = {.tau_range = 0.1f, .tau_n = 50, .symmetric = (int)v[3], .count_int8 = 1};
    double tau_range = cfg.tau_range, tau_n = cfg.tau_n;
    if (qa_h5_has_attr(f, "/", "tau_range") && qa_h5_attr_get_f64(f, "/", "tau_range", &tau_range, &e)) tau_range = -1;
    if (qa_h5_has_attr(f, "/", "tau_n") && qa_h5_attr_get_f64(f, "/", "tau_n", &tau_n, &e)) tau_n = -1;
    if (!(tau_range >= 0 && tau_range < 1) || tau_n != (int)tau_n || tau_n < 1 || tau_n > 1000) {
        snprintf(why, wl, "root attributes tau_range %g (0 <= tau_range < 1), tau_n %g (an integer in 1..1000)", tau_range, tau_n);
        return -1;
    }
    cfg.tau_range = (float)tau_range;
    cfg.tau_n = (int)tau_n;
    float *W = NULL;
    if (read_matrix(f, cs, "W", rows, cols, &W, why, wl) < 0) return -1;
    const size_t n = (size_t)rows * cols;
    float *scale = qa_alloc(sizeof(float) * rows), *zero = qa_alloc(sizeof(float) * rows);
    float *W_q = qa_alloc(sizeof(float) * n);
    int32_t *codes = qa_alloc(sizeof(int32_t) * n);
    qa_quant_icq_rows(W, rows, cols, bits, &cfg, scale, zero);
    qa_quant_codes_rows(codes, W, rows, cols, bits, scale, zero); /* q - zero */
    qa_quant_fake_rows(W_q, W, rows, cols, bits, scale, zero);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) codes[(size_t)r * cols + c] += (int32_t)zero[r]; /* the unsigned code q */
    qa_named_tensor t = {"codes", NULL, codes, 2, {rows, cols}};
    int rc = write_f32(o, cs, "icq", "scale", scale, rows, 1, err);
    if (!rc) rc = write_f32(o, cs, "icq", "zero_point", zero, rows, 1, err);
    if (!rc) rc = write_named(o, cs, "icq", &t, err);
    if (!rc) rc = write_f32(o, cs, "icq", "W_q", W_q, rows, cols, err);
    if (!rc) rc = qa_h5_attr_set_str(o, grp, "method", label, err); /* the case's own label, kept */
    qa_free(W); qa_free(scale); qa_free(zero); qa_free(W_q); qa_free(codes);
    return rc;
}

/* One case; returns 0, or -1 with `why` (bad input) / a qa_error code (I/O). */
static int one_case(qa_h5 *f, qa_h5 *o, const char *cs, char *why, size_t wl, qa_error *err) {
    char grp[128], method_name[64];
    snprintf(grp, sizeof grp, "/%.63s", cs);
    qa_error e;
    if (qa_h5_attr_get_str(f, grp, "method", method_name, sizeof method_name, &e)) {
        snprintf(why, wl, "missing attribute 'method'");
        return -1;
    }
    /* the per-row quantizer schema (IR-QLoRA's ICQ) is not a layer of a method plugin: it is told
     * apart by its attributes (rows and columns where a layer has in_features and out_features) */
    if (qa_h5_has_attr(f, grp, "rows") && qa_h5_has_attr(f, grp, "columns") && !qa_h5_has_attr(f, grp, "in_features"))
        return icq_case(f, o, cs, method_name, why, wl, err);
    const qa_method *m = qa_method_find(method_name);
    if (!m || !m->inspect || !m->fixture_options) {
        char known[256] = "";
        size_t off = 0;
        for (const qa_method *const *k = qa_methods(); *k && off < sizeof known; k++)
            if ((*k)->fixture_options && (*k)->inspect)
                off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", off ? ", " : "", (*k)->name);
        snprintf(why, wl, "unknown method '%s' (the fixture command knows: %s)", method_name, known);
        return -1;
    }
    /* the low-rank QAT layer schema (LR-QAT) is told apart by its attributes */
    if (qa_h5_has_attr(f, grp, "lora_alpha") && qa_h5_has_attr(f, grp, "int_min")) return lowrank_qat_case(f, o, cs, m, why, wl, err);
    const char *attrs[] = {"in_features", "out_features", "rank", "n_bits", "lora_bits", "alpha"};
    double v[6];
    for (int i = 0; i < 6; i++)
        if (qa_h5_attr_get_f64(f, grp, attrs[i], &v[i], &e)) { snprintf(why, wl, "missing attribute '%s'", attrs[i]); return -1; }
    int in = (int)v[0], out = (int)v[1], rank = (int)v[2], n_bits = (int)v[3], lora_bits = (int)v[4];
    double sym = 0, cw = 1;
    if (qa_h5_has_attr(f, grp, "symmetric")) qa_h5_attr_get_f64(f, grp, "symmetric", &sym, &e);
    if (qa_h5_has_attr(f, grp, "channel_wise")) qa_h5_attr_get_f64(f, grp, "channel_wise", &cw, &e);
    if (sym != 0 || cw != 1) { snprintf(why, wl, "only symmetric = 0, channel_wise = 1 is supported"); return -1; }
    if (in < 1 || out < 1 || rank < 1 || n_bits < 2 || n_bits > 8 || lora_bits < 2 || lora_bits > 8) {
        snprintf(why, wl, "implausible attributes (in %d, out %d, rank %d, n_bits %d, lora_bits %d)", in, out, rank, n_bits, lora_bits);
        return -1;
    }
    float *W = NULL, *bias = NULL, *R = NULL, *A = NULL, *B = NULL, *x = NULL, *dy = NULL;
    int tokens = 0, rc = 0;
    if (read_matrix(f, cs, "W", out, in, &W, why, wl) < 0 || read_matrix(f, cs, "bias", out, 1, &bias, why, wl) < 0 ||
        read_matrix(f, cs, "R_raw", out, in, &R, why, wl) < 0 || read_matrix(f, cs, "A", rank, in, &A, why, wl) < 0 ||
        read_matrix(f, cs, "B", out, rank, &B, why, wl) < 0 || (tokens = read_matrix(f, cs, "x", -1, in, &x, why, wl)) < 0 ||
        read_matrix(f, cs, "dy", tokens, out, &dy, why, wl) < 0) {
        rc = -1;
    }
    void *state = NULL, *options = m->options_size ? qa_alloc(m->options_size) : NULL;
    if (rc == 0 && options) rc = fixture_options(f, grp, m, options, why, wl);
    if (rc == 0) {
        qa_method_cfg cfg = {.w_bits = n_bits, .a_bits = 0, .rank = rank, .lora_scale = 1.0f, .options = options};
        rc = layer_init(m, &cfg, in, out, W, bias, R, cs, &state, why, wl);
    }
    if (rc == 0) {
        qa_param ps[8];
        int np = factors_at_start(m, state, A, rank, in, out, ps);
        float *y = qa_alloc(sizeof(float) * (size_t)tokens * out);
        /* init: the first forward with B = 0 calibrates what the method calibrates */
        m->forward(state, x, y, tokens);
        qa_named_tensor t[16];
        int nt = m->inspect(state, t, 16);
        static const char *const init_names[] = {"R", "delta", "zero_point", "W_round", "U_delta", "U_zero_point"};
        for (int i = 0; i < nt && !rc; i++)
            for (size_t j = 0; j < sizeof init_names / sizeof init_names[0]; j++)
                if (!strcmp(t[i].name, init_names[j])) rc = write_named(o, cs, "init", &t[i], err);
        if (!rc) rc = write_f32(o, cs, "init", "y", y, tokens, out, err);
        /* trained: the given B, gradients of sum(y * dy) */
        memcpy(ps[1].data, B, sizeof(float) * ps[1].n);
        for (int i = 0; i < np; i++) memset(ps[i].grad, 0, sizeof(float) * ps[i].n);
        m->forward(state, x, y, tokens);
        m->backward(state, dy, NULL, tokens);
        nt = m->inspect(state, t, 16);
        static const char *const trained_names[] = {"W_eff", "grad_U_delta", "grad_U_zero_point"};
        for (int i = 0; i < nt && !rc; i++)
            for (size_t j = 0; j < sizeof trained_names / sizeof trained_names[0]; j++)
                if (!strcmp(t[i].name, trained_names[j])) rc = write_named(o, cs, "trained", &t[i], err);
        if (!rc) rc = write_f32(o, cs, "trained", "y", y, tokens, out, err);
        if (!rc) rc = write_f32(o, cs, "trained", "grad_A", ps[0].grad, rank, in, err);
        if (!rc) rc = write_f32(o, cs, "trained", "grad_B", ps[1].grad, out, rank, err);
        if (!rc) {
            char p[160];
            snprintf(p, sizeof p, "/%.63s", cs);
            rc = qa_h5_attr_set_str(o, p, "method", method_name, err);
        }
        qa_free(y);
        m->destroy(state);
    }
    qa_free(state);
    qa_free(options);
    qa_free(W); qa_free(bias); qa_free(R); qa_free(A); qa_free(B); qa_free(x); qa_free(dy);
    return rc;
}

int qa_fixture_compute(const char *in_path, const char *out_path, FILE *log, int *n_done, int *n_failed,
                    qa_error *err) {
    *n_done = *n_failed = 0;
    qa_h5 *f;
    int rc = qa_h5_open(in_path, 0, &f, err);
    if (rc) return rc;
    static char names[4096][64];
    int n = qa_h5_list(f, "/", names, 4096, err);
    if (n < 0) { qa_h5_close(f, err); return n; }
    qa_h5 *o;
    rc = qa_h5_create(out_path, &o, err);
    if (rc) { qa_error e; qa_h5_close(f, &e); return rc; }
    int cases = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (strncmp(names[i], "case_", 5) != 0) continue;
        cases++;
        char why[512] = "";
        int crc = one_case(f, o, names[i], why, sizeof why, err);
        if (crc == -1 && why[0]) {
            fprintf(log, "%s: %s: %s\n", in_path, names[i], why);
            (*n_failed)++;
        } else if (crc) {
            rc = crc; /* I/O error writing OUT */
        } else {
            (*n_done)++;
        }
    }
    qa_error e;
    int crc = qa_h5_close(o, &e);
    if (!rc && crc) { *err = e; rc = crc; }
    qa_h5_close(f, &e);
    if (rc) return rc;
    if (cases == 0) return qa_fail(err, QA_ERR_INPUT, "%s: no /case_NNN groups (not a layer-fixture file)", in_path);
    if (*n_failed) return qa_fail(err, QA_ERR_INPUT, "%s: %d of %d cases could not be computed (see above)", in_path, *n_failed, cases);
    return QA_OK;
}
