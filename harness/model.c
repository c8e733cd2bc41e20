#include "harness/model.h"

#include <math.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/nn.h"
#include "harness/rng.h"

/* ---- parameter table: one contiguous block, a named view per tensor (llm.c style) ---- */

/* activation and activation-gradient buffers, counted for the memory report */
static void *act_alloc(size_t *counter, size_t bytes) {
    *counter += bytes;
    return qa_alloc(bytes);
}

size_t qa_dit_activation_bytes(const qa_dit *m) {
    size_t n = m->activation_bytes;
    for (int i = 0; i < m->n_lin; i++) {
        if (m->lin[i].x_hat) n += 2 * sizeof(float) * (size_t)m->lin[i].max_rows * m->lin[i].in; /* x_hat, dx_hat */
        n += qa_linear_bf16_bytes(&m->lin[i].bf16);
    }
    if (m->att_bf16)
        for (int l = 0; l < m->cfg.depth; l++) n += qa_attention_bf16_bytes(&m->att_bf16[l]);
    return n;
}

static size_t add_tensor(qa_dit *m, const char *name, int rows, int cols) {
    QA_ASSERT(strlen(name) < sizeof m->tensors[0].name);
    QA_ASSERT(m->n_tensors < (int)(sizeof m->tensors / sizeof m->tensors[0]));
    qa_tensor_info *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = m->n_params;
    t->n = (size_t)rows * cols;
    t->ndim = rows > 1 || cols == 1 ? (cols > 1 ? 2 : 1) : 1;
    if (cols == 1) { t->ndim = 1; t->shape[0] = rows; t->shape[1] = 1; }
    else if (rows == 1) { t->ndim = 1; t->shape[0] = cols; t->shape[1] = 1; }
    else { t->ndim = 2; t->shape[0] = rows; t->shape[1] = cols; }
    m->n_params += t->n;
    return t->offset;
}

typedef struct { size_t w, b; } lin_offsets;

static lin_offsets plan_linear(qa_dit *m, const char *name, int in, int out) {
    char buf[56];
    lin_offsets o;
    snprintf(buf, sizeof buf, "%s.weight", name);
    o.w = add_tensor(m, buf, out, in);
    snprintf(buf, sizeof buf, "%s.bias", name);
    o.b = add_tensor(m, buf, out, 1);
    return o;
}

qa_tensor_info *qa_dit_find_tensor(qa_dit *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* 2 tensors per linear slot (3 + 7 per block + 2 slots), plus pos_embed and class_embed */
_Static_assert(2 * (3 + 7 * QA_DIT_MAX_DEPTH + 2) + 2 <= (int)(sizeof ((qa_dit *)0)->tensors / sizeof(qa_tensor_info)),
               "the tensor table must hold the deepest model allowed");

int qa_dit_config_check(const qa_dit_config *c, const char *where, qa_error *err) {
    if (c->img != QA_FMNIST_SIDE)
        return qa_fail(err, QA_ERR_INPUT, "%s: img = %d: the data is %d x %d", where, c->img, QA_FMNIST_SIDE, QA_FMNIST_SIDE);
    if (c->patch < 1 || c->patch > c->img || c->img % c->patch)
        return qa_fail(err, QA_ERR_INPUT, "%s: patch = %d: must divide the image side %d (1, 2, 4, 7, 14 or 28)", where,
                       c->patch, c->img);
    if (c->dim < 8 || c->dim > 4096 || c->dim % 2)
        return qa_fail(err, QA_ERR_INPUT, "%s: dim = %d: must be even and in 8..4096", where, c->dim);
    if (c->heads < 1 || c->heads > 64 || c->dim % c->heads)
        return qa_fail(err, QA_ERR_INPUT, "%s: heads = %d: must be in 1..64 and divide dim = %d", where, c->heads, c->dim);
    if (c->depth < 1 || c->depth > QA_DIT_MAX_DEPTH)
        return qa_fail(err, QA_ERR_INPUT, "%s: depth = %d: must be in 1..%d", where, c->depth, QA_DIT_MAX_DEPTH);
    if (c->mlp_ratio < 1 || c->mlp_ratio > 16)
        return qa_fail(err, QA_ERR_INPUT, "%s: mlp_ratio = %d: must be in 1..16", where, c->mlp_ratio);
    if (c->n_classes != QA_FMNIST_CLASSES)
        return qa_fail(err, QA_ERR_INPUT, "%s: n_classes = %d: the data has %d classes", where, c->n_classes,
                       QA_FMNIST_CLASSES);
    if (c->n_spare < 0 || c->n_spare > 16)
        return qa_fail(err, QA_ERR_INPUT, "%s: n_spare = %d: must be in 0..16", where, c->n_spare);
    return QA_OK;
}

int qa_dit_create(qa_dit *m, const qa_dit_config *cfg, int max_batch, qa_error *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int rc = qa_dit_config_check(cfg, "model", err);
    if (rc) return rc;
    m->grid = cfg->img / cfg->patch;
    m->n_patches = m->grid * m->grid;
    m->T = 1 + m->n_patches;
    m->patch_dim = cfg->patch * cfg->patch;
    m->n_slots = cfg->n_classes + cfg->n_spare + 1;
    m->null_class = m->n_slots - 1;
    m->max_batch = max_batch;
    int d = cfg->dim, L = cfg->depth, hid = cfg->dim * cfg->mlp_ratio, pd = m->patch_dim;

    /* plan the parameter block */
    m->n_lin = 3 + 7 * L + 2;
    m->lin = qa_alloc(sizeof(qa_linear) * m->n_lin);
    lin_offsets offs[3 + 7 * 64 + 2];
    QA_ASSERT(L <= 64);
    const char *names[7] = {"adaln", "attn.q", "attn.k", "attn.v", "attn.out", "mlp.fc1", "mlp.fc2"};
    int li = 0;
    struct { const char *name; int in, out, role; } spec[3 + 7 * 64 + 2];
    spec[li].name = "patch_embed"; spec[li].in = pd; spec[li].out = d; spec[li++].role = QA_ROLE_OTHER;
    spec[li].name = "t_embed.fc1"; spec[li].in = d; spec[li].out = d; spec[li++].role = QA_ROLE_OTHER;
    spec[li].name = "t_embed.fc2"; spec[li].in = d; spec[li].out = d; spec[li++].role = QA_ROLE_OTHER;
    char block_names[64 * 7][40]; /* copied into each slot below */
    for (int b = 0; b < L; b++)
        for (int j = 0; j < 7; j++) {
            char *nm = block_names[b * 7 + j];
            snprintf(nm, 40, "blocks.%d.%s", b, names[j]);
            spec[li].name = nm;
            spec[li].in = j == 6 ? hid : d;
            spec[li].out = j == 0 ? 6 * d : (j == 5 ? hid : d);
            spec[li++].role = (j >= 1 && j <= 4) ? QA_ROLE_ATTN : QA_ROLE_OTHER;
        }
    spec[li].name = "final.adaln"; spec[li].in = d; spec[li].out = 2 * d; spec[li++].role = QA_ROLE_OTHER;
    spec[li].name = "final.linear"; spec[li].in = d; spec[li].out = pd; spec[li++].role = QA_ROLE_OTHER;
    QA_ASSERT(li == m->n_lin);
    for (int i = 0; i < m->n_lin; i++) offs[i] = plan_linear(m, spec[i].name, spec[i].in, spec[i].out);
    size_t pos_off = add_tensor(m, "pos_embed", m->T, d);
    size_t cls_off = add_tensor(m, "class_embed", m->n_slots, d);

    m->params = qa_alloc(sizeof(float) * m->n_params);
    m->grads = qa_alloc(sizeof(float) * m->n_params);
    m->pos = m->params + pos_off;
    m->class_table = m->params + cls_off;
    int max_rows = max_batch * m->T;
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        snprintf(s->name, sizeof s->name, "%s", spec[i].name);
        s->in = spec[i].in; s->out = spec[i].out; s->role = spec[i].role;
        s->W = m->params + offs[i].w; s->b = m->params + offs[i].b;
        s->dW = m->grads + offs[i].w; s->db = m->grads + offs[i].b;
        s->max_rows = max_rows;
    }
    m->patch = &m->lin[0]; m->t1 = &m->lin[1]; m->t2 = &m->lin[2];
    m->final_adaln = &m->lin[m->n_lin - 2]; m->final = &m->lin[m->n_lin - 1];
    qa_linear ***per_block[7] = {&m->adaln, &m->q, &m->k, &m->v, &m->o, &m->mlp1, &m->mlp2};
    for (int j = 0; j < 7; j++) {
        *per_block[j] = qa_alloc(sizeof(qa_linear *) * L);
        for (int b = 0; b < L; b++) (*per_block[j])[b] = &m->lin[3 + b * 7 + j];
    }
    for (int b = 0; b < L; b++) m->k[b]->bf16_input_owner = m->v[b]->bf16_input_owner = m->q[b];

    /* activations */
    size_t B = (size_t)max_batch, T = (size_t)m->T, M = B * T, D = (size_t)d, H = (size_t)cfg->heads;
    m->patches = act_alloc(&m->activation_bytes, sizeof(float) * B * m->n_patches * pd);
    m->tok_patch = act_alloc(&m->activation_bytes, sizeof(float) * B * m->n_patches * D);
    m->tfeat = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->th = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->ths = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->temb = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->yemb = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->c = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->sc = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->fmod = act_alloc(&m->activation_bytes, sizeof(float) * B * 2 * D);
    m->x_final = act_alloc(&m->activation_bytes, sizeof(float) * M * D);
    m->lnf = act_alloc(&m->activation_bytes, sizeof(float) * M * D);
    m->meanf = act_alloc(&m->activation_bytes, sizeof(float) * M);
    m->rstdf = act_alloc(&m->activation_bytes, sizeof(float) * M);
    m->hf = act_alloc(&m->activation_bytes, sizeof(float) * M * D);
    m->out_tok = act_alloc(&m->activation_bytes, sizeof(float) * M * pd);
    m->acts = qa_alloc(sizeof(qa_block_acts) * L);
    for (int b = 0; b < L; b++) {
        qa_block_acts *a = &m->acts[b];
        float **md[] = {&a->x_in, &a->ln1, &a->h1, &a->q, &a->k, &a->v, &a->att, &a->o, &a->x_mid,
                        &a->ln2, &a->h2, &a->m2};
        for (size_t j = 0; j < sizeof md / sizeof md[0]; j++) *md[j] = act_alloc(&m->activation_bytes, sizeof(float) * M * D);
        a->mean1 = act_alloc(&m->activation_bytes, sizeof(float) * M); a->rstd1 = qa_alloc(sizeof(float) * M);
        a->mean2 = act_alloc(&m->activation_bytes, sizeof(float) * M); a->rstd2 = qa_alloc(sizeof(float) * M);
        a->m1 = act_alloc(&m->activation_bytes, sizeof(float) * M * hid);
        a->g = act_alloc(&m->activation_bytes, sizeof(float) * M * hid);
        a->probs = act_alloc(&m->activation_bytes, sizeof(float) * B * H * T * T);
        a->mod = act_alloc(&m->activation_bytes, sizeof(float) * B * 6 * D);
    }
    float **dd[] = {&m->d_res, &m->d_h, &m->d_q, &m->d_k, &m->d_v, &m->d_att, &m->d_o, &m->d_m2};
    for (size_t j = 0; j < sizeof dd / sizeof dd[0]; j++) *dd[j] = act_alloc(&m->activation_bytes, sizeof(float) * M * D);
    m->d_m1 = act_alloc(&m->activation_bytes, sizeof(float) * M * hid);
    m->d_g = act_alloc(&m->activation_bytes, sizeof(float) * M * hid);
    m->d_mod = act_alloc(&m->activation_bytes, sizeof(float) * B * 6 * D);
    m->d_fmod = act_alloc(&m->activation_bytes, sizeof(float) * B * 2 * D);
    m->d_sc = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->d_c = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->d_temb = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->d_th = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->d_ths = act_alloc(&m->activation_bytes, sizeof(float) * B * D);
    m->d_tok_patch = act_alloc(&m->activation_bytes, sizeof(float) * B * m->n_patches * D);
    m->d_out_tok = act_alloc(&m->activation_bytes, sizeof(float) * M * pd);
    m->att_scratch = qa_alloc(sizeof(float) * 2 * B * H * T * T);
    m->qkv_i8 = qa_alloc(sizeof(qa_int8_linear *) * L);
    m->qkv_bias = qa_alloc(sizeof(float *) * L);
    m->train_base = 1;
    return QA_OK;
}

static void slot_clear_codes(qa_linear *s) {
    if (s->i8) { qa_int8_linear_free(s->i8); qa_free(s->i8); s->i8 = NULL; }
    if (s->i8m) { qa_int8_multi_free(s->i8m); qa_free(s->i8m); s->i8m = NULL; }
    qa_free(s->code_delta);
    qa_free(s->code_zero);
    s->code_delta = s->code_zero = NULL;
    s->code_bits = 0;
}

static void slot_clear(qa_linear *s) {
    slot_clear_codes(s);
    if (s->method && s->method->destroy) s->method->destroy(s->state);
    qa_free(s->state);
    qa_free(s->W_frozen);
    qa_free(s->W_deploy);
    qa_free(s->x_hat);
    qa_free(s->dx_hat);
    s->state = NULL; s->method = NULL; s->W_frozen = NULL; s->W_deploy = NULL;
    s->x_hat = NULL; s->dx_hat = NULL;
    memset(&s->actq, 0, sizeof s->actq);
}

static void free_attention_quant(qa_dit *m) {
    for (int l = 0; m->att_q && l < m->cfg.depth; l++) qa_int8_attention_release(&m->att_q[l]);
    qa_free(m->att_q);
    qa_free(m->att_scratch_fq);
    m->att_q = NULL;
    m->att_scratch_fq = NULL;
    m->attention_mode = QA_ATTN_FLOAT;
}

static void clear_stacked_qkv(qa_dit *m) {
    for (int l = 0; l < m->cfg.depth; l++) {
        if (m->qkv_i8[l]) qa_int8_linear_free(m->qkv_i8[l]);
        qa_free(m->qkv_i8[l]);
        qa_free(m->qkv_bias[l]);
        m->qkv_i8[l] = NULL;
        m->qkv_bias[l] = NULL;
    }
}

void qa_dit_reset_slots(qa_dit *m) {
    clear_stacked_qkv(m);
    free_attention_quant(m);
    for (int i = 0; i < m->n_lin; i++) slot_clear(&m->lin[i]);
}

void qa_dit_set_dtype(qa_dit *m, qa_dtype dtype) {
    m->step.dtype = dtype; /* the adapted slots' methods read it (their frozen base product) */
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        s->dtype = dtype;
        if (dtype == QA_DTYPE_BF16 && !s->bf16.x) qa_linear_bf16_init(&s->bf16, s->max_rows, s->in, s->out);
    }
    if (dtype == QA_DTYPE_BF16 && !m->att_bf16) m->att_bf16 = qa_alloc(sizeof(qa_attention_bf16) * m->cfg.depth);
}

void qa_dit_free(qa_dit *m) {
    if (!m->params) return;
    qa_dit_reset_slots(m);
    for (int i = 0; i < m->n_lin; i++) qa_linear_bf16_free(&m->lin[i].bf16);
    if (m->att_bf16)
        for (int l = 0; l < m->cfg.depth; l++) qa_attention_bf16_free(&m->att_bf16[l]);
    qa_free(m->att_bf16);
    qa_free(m->lin);
    qa_free(m->adaln); qa_free(m->q); qa_free(m->k); qa_free(m->v); qa_free(m->o);
    qa_free(m->mlp1); qa_free(m->mlp2); qa_free(m->qkv_i8); qa_free(m->qkv_bias);
    for (int b = 0; b < m->cfg.depth; b++) {
        qa_block_acts *a = &m->acts[b];
        float *ps[] = {a->x_in, a->ln1, a->mean1, a->rstd1, a->h1, a->q, a->k, a->v, a->probs, a->att,
                       a->o, a->x_mid, a->ln2, a->mean2, a->rstd2, a->h2, a->m1, a->g, a->m2, a->mod};
        for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) qa_free(ps[j]);
    }
    qa_free(m->acts);
    float *ps[] = {m->params, m->grads, m->patches, m->tok_patch, m->tfeat, m->th, m->ths, m->temb,
                   m->yemb, m->c, m->sc, m->fmod, m->x_final, m->lnf, m->meanf, m->rstdf, m->hf,
                   m->out_tok, m->d_res, m->d_h, m->d_q, m->d_k, m->d_v, m->d_att, m->d_o, m->d_m1,
                   m->d_g, m->d_m2, m->d_mod, m->d_sc, m->d_c, m->d_temb, m->d_th, m->d_ths,
                   m->d_tok_patch, m->d_out_tok, m->att_scratch, m->d_fmod};
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) qa_free(ps[j]);
    memset(m, 0, sizeof *m);
}

void qa_dit_init_weights(qa_dit *m, uint64_t seed) {
    qa_rng *r = qa_rng_new(qa_seed_for(seed, "dit-init"));
    memset(m->params, 0, sizeof(float) * m->n_params);
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        int zero = strstr(s->name, "adaln") || s == m->final;    /* adaLN-zero */
        if (zero) continue;
        if (s == m->t1 || s == m->t2) {
            qa_rng_fill_normal(r, s->W, (size_t)s->in * s->out, 0.02f);
        } else {
            float bound = sqrtf(6.0f / (float)(s->in + s->out)); /* Xavier uniform */
            qa_rng_fill_uniform(r, s->W, (size_t)s->in * s->out, -bound, bound);
        }
    }
    qa_rng_fill_normal(r, m->pos, (size_t)m->T * m->cfg.dim, 0.02f);
    qa_rng_fill_normal(r, m->class_table, (size_t)m->n_slots * m->cfg.dim, 0.02f);
    qa_rng_free(r);
}

/* memset(p, 0, n floats) split over the threads: a training step zeroes its gradients and about
 * ten activation gradients per block, and one thread alone does not reach the memory bandwidth. */
enum { ZERO_CHUNK = 16384 };
static void zero_floats(float *p, size_t n) {
    if (n <= ZERO_CHUNK) { memset(p, 0, sizeof(float) * n); return; }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += ZERO_CHUNK) memset(p + i, 0, sizeof(float) * (n - i < ZERO_CHUNK ? n - i : ZERO_CHUNK));
}

void qa_dit_zero_grads(qa_dit *m) {
    zero_floats(m->grads, m->n_params);
}

/* ---- the linear-layer hook: quantized input, frozen / adapted / deployed weights ---- */

static void int8_profile(qa_int8_linear *L, int on) {
    L->profile = on;
    L->t_quantize = L->t_matmul = L->t_correct = 0;
}

void qa_dit_profiling(qa_dit *m, int on) {
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        s->profile = on;
        s->fwd_seconds = 0;
        if (s->i8) int8_profile(s->i8, on);
    }
    for (int l = 0; l < m->cfg.depth; l++)
        if (m->qkv_i8[l]) int8_profile(m->qkv_i8[l], on);
    m->profiling = on;
    memset(&m->prof, 0, sizeof m->prof);
}

void qa_dit_profile_read(const qa_dit *m, qa_dit_profile *p) {
    *p = m->prof;
    for (int i = 0; i < m->n_lin; i++) {
        const qa_linear *s = &m->lin[i];
        p->linear += s->fwd_seconds;
        if (s->i8) { p->int8_quantize += s->i8->t_quantize; p->int8_matmul += s->i8->t_matmul; p->int8_correct += s->i8->t_correct; }
    }
    for (int l = 0; l < m->cfg.depth; l++)
        if (m->qkv_i8[l]) p->int8_matmul += m->qkv_i8[l]->t_matmul;
}

/* While profiling, the seconds since *t0 go to *field and *t0 moves on. */
static void prof_lap(qa_dit *m, double *field, double *t0) {
    if (!m->profiling) return;
    double t = qa_now();
    *field += t - *t0;
    *t0 = t;
}

static void slot_forward_body(qa_linear *s, const float *x, float *y, int M);

static void slot_forward(qa_linear *s, const float *x, float *y, int M) {
    if (s->profile) {
        double t0 = qa_now();
        slot_forward_body(s, x, y, M);
        s->fwd_seconds += qa_now() - t0;
    } else {
        slot_forward_body(s, x, y, M);
    }
}

/* bf16: the op that computed xin may have written its bf16 copy into s->bf16.x already
 * (bf16_x_source set; nothing else sets it before s's forward), and q, k and v read the same
 * input, so k and v use the bf16 copy q holds in this forward */
static void slot_forward_bf16(qa_linear *s, const float *xin, float *y, int M) {
    const float *W = s->W_frozen ? s->W_frozen : s->W;
    const qa_linear *owner = s->bf16_input_owner;
    if (s->bf16_x_source == xin) {
        qa_linear_forward_bf16_on(&s->bf16, y, s->bf16.x, W, s->b, M);
    } else if (owner && owner->bf16_x_source == xin && owner->bf16.rows == M) {
        qa_linear_forward_bf16_on(&s->bf16, y, owner->bf16.x, W, s->b, M);
    } else {
        qa_linear_forward_bf16(&s->bf16, y, xin, W, s->b, M);
        s->bf16_x_source = xin;
    }
}

/* A slot that computes its own linear in bf16 with nothing around the matmul (no method, input
 * quantizer or deployed weight): the backward may call its bf16 layer directly. */
static int slot_plain_bf16(const qa_linear *s) {
    return s->dtype == QA_DTYPE_BF16 && !s->method && !s->actq.bits && !s->W_deploy && !s->i8;
}

static void slot_forward_body(qa_linear *s, const float *x, float *y, int M) {
    QA_ASSERT(M <= s->max_rows);
    if (s->i8) { /* deployed W8A8 on the integer kernels: quantizes x itself; no backward */
        qa_int8_linear_forward(s->i8, &s->actq, x, y, M);
        return;
    }
    if (s->i8m) { /* deployed, planes or groups on the integer kernels */
        qa_int8_multi_forward(s->i8m, &s->actq, x, y, M);
        return;
    }
    const float *xin = x;
    s->x_saved = x;
    int own = s->method && (s->method->flags & QA_METHOD_OWNS_ACT_QUANT);
    if (s->actq.bits && !own) {
        qa_actq_forward(&s->actq, s->x_hat, x, (size_t)M * s->in);
        xin = s->x_hat;
    }
    s->x_used = xin;
    if (s->W_deploy) qa_linear_forward(y, xin, s->W_deploy, s->b, M, s->in, s->out);
    else if (s->method) s->method->forward(s->state, xin, y, M);
    else if (s->dtype == QA_DTYPE_BF16) slot_forward_bf16(s, xin, y, M);
    else qa_linear_forward(y, xin, s->W_frozen ? s->W_frozen : s->W, s->b, M, s->in, s->out);
}

/* dx += dL/dx (dx may be NULL); parameter grads when want_params (and the slot is not frozen). */
static void slot_backward(qa_linear *s, const float *dy, float *dx, int M, int want_params) {
    float *dxq = dx;
    int own = s->method && (s->method->flags & QA_METHOD_OWNS_ACT_QUANT);
    if (s->actq.bits && dx && !own) {
        dxq = s->dx_hat;
        memset(dxq, 0, sizeof(float) * (size_t)M * s->in);
    }
    QA_ASSERT(!s->W_deploy); /* deployed weights are for evaluation only */
    if (s->method) {
        s->method->backward(s->state, dy, dxq, M);
    } else {
        int train = want_params && !s->W_frozen;
        if (s->dtype == QA_DTYPE_BF16)
            qa_linear_backward_bf16(&s->bf16, dxq, train ? s->dW : NULL, train ? s->db : NULL, dy, M);
        else
            qa_linear_backward(dxq, train ? s->dW : NULL, train ? s->db : NULL, dy, s->x_used,
                            s->W_frozen ? s->W_frozen : s->W, M, s->in, s->out);
    }
    if (s->actq.bits && dx && !own) qa_actq_backward(&s->actq, dx, dxq, s->x_saved, (size_t)M * s->in);
}

/* ---- forward ---- */

/* 1 when block l's attention runs on the integer kernels: QA_ATTN_INT8, its quantizers calibrated
 * with zero points the integer path takes, and the integer products exact in the f32 accumulator
 * (at most QA_INT8_MAX_K tokens and head channels). */
static int int8_attention_runs(const qa_dit *m, int l) {
    return m->attention_mode == QA_ATTN_INT8 && m->T <= QA_INT8_MAX_K && m->cfg.dim / m->cfg.heads <= QA_INT8_MAX_K &&
           qa_int8_attention_ready(&m->att_q[l]);
}

/* a->att from block l's q, k, v, as attention_mode says (fused: the deployed model's fused path;
 * it and an f32 inference forward take the float attention's same floats computed faster; a bf16
 * forward keeps its bf16 attention, inference or not, so that both give the same floats). */
static void block_attention(qa_dit *m, int l, int B, int fused) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, H = m->cfg.heads;
    if (m->attention_mode == QA_ATTN_FLOAT) {
        if (fused || (m->inference && !m->att_bf16_last)) qa_attention_forward_inference(a->att, a->probs, a->q, a->k, a->v, B, T, d, H);
        else if (m->att_bf16_last) qa_attention_forward_bf16(&m->att_bf16[l], a->att, a->probs, a->q, a->k, a->v, B, T, d, H);
        else qa_attention_forward(a->att, a->probs, a->q, a->k, a->v, B, T, d, H);
        return;
    }
    qa_int8_attention *A = &m->att_q[l];
    if (int8_attention_runs(m, l))
        qa_int8_attention_forward(A, a->att, a->probs, a->q, a->k, a->v, B, T, d, H);
    else
        qa_attention_fakequant_forward(A, a->att, a->probs, a->q, a->k, a->v, m->att_scratch_fq, B, T, d, H);
}

void qa_dit_set_attention_quant(qa_dit *m, int mode) {
    QA_ASSERT(mode == QA_ATTN_FLOAT || mode == QA_ATTN_INT8 || mode == QA_ATTN_FAKEQUANT);
    if (mode != QA_ATTN_FLOAT && !m->att_q) {
        m->att_q = qa_alloc(sizeof(qa_int8_attention) * m->cfg.depth);
        m->att_scratch_fq = qa_alloc(sizeof(float) * 3 * (size_t)m->max_batch * m->T * m->cfg.dim);
    }
    m->attention_mode = mode;
}

/* h = LN(x)(1 + scale) + shift over the B * T token rows; a training forward keeps ln, mean and
 * rstd for the backward, an inference forward computes the same h in one pass and keeps nothing. */
static void norm_modulate(const qa_dit *m, float *h, float *ln, float *mean, float *rstd, const float *x,
                          const float *shift, const float *scale, int cond_stride, int B) {
    const int d = m->cfg.dim, T = m->T;
    if (m->inference) {
        qa_layernorm_modulate_forward(h, x, shift, scale, cond_stride, B, T, d);
        return;
    }
    qa_layernorm_forward(ln, mean, rstd, x, B * T, d);
    qa_modulate_forward(h, ln, shift, scale, cond_stride, B, T, d);
}

/* Block l's attention half, x_mid = x_in + g1 * out(Attn(LN(x_in)(1 + scale1) + shift1)). */
static void attention_half_forward(qa_dit *m, int l, int B) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, M = B * T;
    const float *sh1 = a->mod, *sc1 = a->mod + d, *g1 = a->mod + 2 * d;
    double t0 = m->profiling ? qa_now() : 0;
    qa_int8_linear *qkv = m->qkv_i8[l], *o = m->o[l]->i8;
    /* the stack is current only while q, k and v still run on the integer kernel (re-deploying a
     * slot drops its integer layer; dit_enable_int8 stacks again) */
    int stacked = qkv && m->q[l]->i8 && m->k[l]->i8 && m->v[l]->i8;
    if (stacked && o && !m->int8_unfused) { /* deployed: fused integer path */
        qa_int8_linear_prepare(qkv, &m->q[l]->actq);
        qa_int8_linear_prepare(o, &m->o[l]->actq);
        qa_layernorm_modulate_quantize(qkv, &m->q[l]->actq, a->x_in, sh1, sc1, 6 * d, B, T, d);
        prof_lap(m, &m->prof.norm, &t0);
        qa_int8_linear_matmul(qkv, M);
        if (int8_attention_runs(m, l)) { /* q, k, v coded from qkv's accumulator, the output coded for o */
            prof_lap(m, &m->prof.linear, &t0);
            qa_int8_attention_forward_fused(&m->att_q[l], qkv, o, &m->o[l]->actq, a->att, a->probs, B, m->T, d,
                                            m->cfg.heads);
            prof_lap(m, &m->prof.attention, &t0);
        } else {
            float *parts[3] = {a->q, a->k, a->v};
            qa_int8_split_rows(qkv, parts, 3, M);
            prof_lap(m, &m->prof.linear, &t0);
            block_attention(m, l, B, 1);
            prof_lap(m, &m->prof.attention, &t0);
            qa_int8_linear_quantize(o, &m->o[l]->actq, a->att, M);
        }
        qa_int8_linear_matmul(o, M);
        qa_int8_gated_residual(o, a->x_mid, a->x_in, g1, 6 * d, B, T);
        prof_lap(m, &m->prof.linear, &t0);
        return;
    }
    norm_modulate(m, a->h1, a->ln1, a->mean1, a->rstd1, a->x_in, sh1, sc1, 6 * d, B);
    prof_lap(m, &m->prof.norm, &t0);
    slot_forward(m->q[l], a->h1, a->q, M);
    slot_forward(m->k[l], a->h1, a->k, M);
    slot_forward(m->v[l], a->h1, a->v, M);
    t0 = m->profiling ? qa_now() : 0; /* the slots time themselves */
    block_attention(m, l, B, 0);
    prof_lap(m, &m->prof.attention, &t0);
    slot_forward(m->o[l], a->att, a->o, M);
    qa_gated_residual_forward(a->x_mid, a->x_in, a->o, g1, 6 * d, B, T, d);
}

/* Block l's MLP half, x_out = x_mid + g2 * fc2(GELU(fc1(LN(x_mid)(1 + scale2) + shift2))). */
static void mlp_half_forward(qa_dit *m, int l, int B, float *x_out) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, M = B * T, hid = d * m->cfg.mlp_ratio;
    const float *sh2 = a->mod + 3 * d, *sc2 = a->mod + 4 * d, *g2 = a->mod + 5 * d;
    double t0 = m->profiling ? qa_now() : 0;
    qa_int8_linear *fc1 = m->mlp1[l]->i8, *fc2 = m->mlp2[l]->i8;
    if (fc1 && fc2 && !m->int8_unfused) { /* deployed: fused integer path */
        qa_int8_linear_prepare(fc1, &m->mlp1[l]->actq);
        qa_int8_linear_prepare(fc2, &m->mlp2[l]->actq);
        qa_layernorm_modulate_quantize(fc1, &m->mlp1[l]->actq, a->x_mid, sh2, sc2, 6 * d, B, T, d);
        prof_lap(m, &m->prof.norm, &t0);
        qa_int8_linear_matmul(fc1, M);
        prof_lap(m, &m->prof.linear, &t0);
        qa_int8_gelu_quantize(fc1, fc2, &m->mlp2[l]->actq, M);
        prof_lap(m, &m->prof.gelu, &t0);
        qa_int8_linear_matmul(fc2, M);
        qa_int8_gated_residual(fc2, x_out, a->x_mid, g2, 6 * d, B, T);
        prof_lap(m, &m->prof.linear, &t0);
        return;
    }
    norm_modulate(m, a->h2, a->ln2, a->mean2, a->rstd2, a->x_mid, sh2, sc2, 6 * d, B);
    prof_lap(m, &m->prof.norm, &t0);
    slot_forward(m->mlp1[l], a->h2, a->m1, M);
    t0 = m->profiling ? qa_now() : 0;
    qa_gelu_forward(a->g, a->m1, (size_t)M * hid);
    prof_lap(m, &m->prof.gelu, &t0);
    slot_forward(m->mlp2[l], a->g, a->m2, M);
    qa_gated_residual_forward(x_out, a->x_mid, a->m2, g2, 6 * d, B, T, d);
}

/* The output layer on the patch tokens' LN(x)(1 + scale) + shift. */
static void final_forward(qa_dit *m, int B) {
    const int d = m->cfg.dim, T = m->T, M = B * T;
    slot_forward(m->final_adaln, m->sc, m->fmod, B);
    double t0 = m->profiling ? qa_now() : 0;
    qa_int8_linear *fin = m->final->i8;
    if (fin && !m->int8_unfused) {
        qa_int8_linear_prepare(fin, &m->final->actq);
        qa_layernorm_modulate_quantize(fin, &m->final->actq, m->x_final, m->fmod, m->fmod + d, 2 * d, B, T, d);
        prof_lap(m, &m->prof.norm, &t0);
        qa_int8_linear_matmul(fin, M);
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) qa_int8_dequant_row(fin, r, m->out_tok + (size_t)r * fin->out);
        prof_lap(m, &m->prof.linear, &t0);
        return;
    }
    norm_modulate(m, m->hf, m->lnf, m->meanf, m->rstdf, m->x_final, m->fmod, m->fmod + d, 2 * d, B);
    prof_lap(m, &m->prof.norm, &t0);
    slot_forward(m->final, m->hf, m->out_tok, M);
}

/* ---- the bf16 training forward of a block: the same layers, with the bf16 inputs of the next
 * linear layer written by the elementwise pass that computes them (no separate conversion) ---- */

/* s->bf16.x when s is a plain bf16 layer whose input the caller is about to compute (marked as
 * holding that input for s's forward), else NULL. */
static qa_bf16 *bf16_input_for(qa_linear *s, const float *x, int M) {
    if (!slot_plain_bf16(s) || M > s->max_rows) return NULL;
    s->bf16_x_source = x;
    return s->bf16.x;
}

static void attention_half_forward_bf16(qa_dit *m, int l, int B) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, M = B * T;
    const float *sh1 = a->mod, *sc1 = a->mod + d, *g1 = a->mod + 2 * d;
    qa_bf16 *h16 = bf16_input_for(m->q[l], a->h1, M);
    qa_layernorm_modulate_forward_bf16(a->ln1, a->mean1, a->rstd1, a->h1, h16, a->x_in, sh1, sc1, 6 * d, B, T, d);
    qa_linear *qkv[3] = {m->q[l], m->k[l], m->v[l]};
    float *out[3] = {a->q, a->k, a->v};
    for (int p = 0; p < 3; p++) slot_forward(qkv[p], a->h1, out[p], M); /* k, v on q's bf16 copy of h1 */
    qa_attention_forward_bf16(&m->att_bf16[l], a->att, a->probs, a->q, a->k, a->v, B, T, d, m->cfg.heads);
    slot_forward(m->o[l], a->att, a->o, M);
    qa_gated_residual_forward(a->x_mid, a->x_in, a->o, g1, 6 * d, B, T, d);
}

static void mlp_half_forward_bf16(qa_dit *m, int l, int B, float *x_out) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, M = B * T, hid = d * m->cfg.mlp_ratio;
    const float *sh2 = a->mod + 3 * d, *sc2 = a->mod + 4 * d, *g2 = a->mod + 5 * d;
    qa_bf16 *h16 = bf16_input_for(m->mlp1[l], a->h2, M);
    qa_layernorm_modulate_forward_bf16(a->ln2, a->mean2, a->rstd2, a->h2, h16, a->x_mid, sh2, sc2, 6 * d, B, T, d);
    slot_forward(m->mlp1[l], a->h2, a->m1, M);
    /* fc2 reads GELU(m1) only in bf16: g keeps the sigmoid factor for the backward instead */
    qa_bf16 *g16 = bf16_input_for(m->mlp2[l], a->g, M);
    a->g_sigmoid = g16 != NULL;
    if (g16) qa_gelu_forward_bf16(a->g, g16, a->m1, (size_t)M * hid);
    else qa_gelu_forward(a->g, a->m1, (size_t)M * hid);
    slot_forward(m->mlp2[l], a->g, a->m2, M);
    qa_gated_residual_forward(x_out, a->x_mid, a->m2, g2, 6 * d, B, T, d);
}

static void forward_pass(qa_dit *m, const float *x_t, const float *t, const int *y, int B, float *eps, int inference) {
    QA_ASSERT(B <= m->max_batch);
    m->inference = inference;
    const int d = m->cfg.dim, T = m->T, P = m->cfg.patch, G = m->grid, img = m->cfg.img;
    const int pd = m->patch_dim, NP = m->n_patches, L = m->cfg.depth;
    double t_start = m->profiling ? qa_now() : 0;
    m->last_B = B;
    m->last_y = y;
    for (int i = 0; i < m->n_lin; i++) m->lin[i].bf16_x_source = NULL; /* no bf16 copy is of this forward yet */
    m->att_bf16_last = m->step.dtype == QA_DTYPE_BF16 && m->att_bf16 && m->attention_mode == QA_ATTN_FLOAT;
    m->step.t = t;
    m->step.B = B;
    m->step.rows_per_sample = T;
    m->step.T_train = 1000;

    /* conditioning: c = MLP(features(t)) + class_table[y];  sc = SiLU(c) */
    qa_timestep_features(m->tfeat, t, B, d);
    slot_forward(m->t1, m->tfeat, m->th, B);
    qa_silu_forward(m->ths, m->th, (size_t)B * d);
    slot_forward(m->t2, m->ths, m->temb, B);
    qa_embedding_forward(m->yemb, m->class_table, y, B, d);
    for (size_t i = 0; i < (size_t)B * d; i++) m->c[i] = m->temb[i] + m->yemb[i];
    qa_silu_forward(m->sc, m->c, (size_t)B * d);

    /* patchify: patches[b, gy*G+gx, py*P+px] = x[b, (gy*P+py)*img + gx*P+px] */
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int py = 0; py < P; py++)
                    for (int px = 0; px < P; px++)
                        m->patches[((size_t)b * NP + gy * G + gx) * pd + py * P + px] =
                            x_t[(size_t)b * img * img + (gy * P + py) * img + gx * P + px];
    slot_forward(m->patch, m->patches, m->tok_patch, B * NP);

    /* tokens: [c ; patch tokens] + pos */
    float *x = m->acts[0].x_in;
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < d; j++) x[(size_t)b * T * d + j] = m->c[(size_t)b * d + j] + m->pos[j];
        for (int p = 0; p < NP; p++)
            for (int j = 0; j < d; j++)
                x[((size_t)b * T + 1 + p) * d + j] =
                    m->tok_patch[((size_t)b * NP + p) * d + j] + m->pos[(size_t)(1 + p) * d + j];
    }

    for (int l = 0; l < L; l++) {
        float *x_out = l + 1 < L ? m->acts[l + 1].x_in : m->x_final;
        slot_forward(m->adaln[l], m->sc, m->acts[l].mod, B);
        if (m->att_bf16_last) { /* bf16 training */
            attention_half_forward_bf16(m, l, B);
            mlp_half_forward_bf16(m, l, B, x_out);
            continue;
        }
        attention_half_forward(m, l, B);
        mlp_half_forward(m, l, B, x_out);
    }

    final_forward(m, B);

    /* unpatchify the patch tokens (token 0, the conditioning token, has no pixels) */
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int py = 0; py < P; py++)
                    for (int px = 0; px < P; px++)
                        eps[(size_t)b * img * img + (gy * P + py) * img + gx * P + px] =
                            m->out_tok[((size_t)b * T + 1 + gy * G + gx) * pd + py * P + px];
    prof_lap(m, &m->prof.total, &t_start);
}

void qa_dit_forward(qa_dit *m, const float *x_t, const float *t, const int *y, int B, float *eps) {
    forward_pass(m, x_t, t, y, B, eps, 0);
}

void qa_dit_forward_inference(qa_dit *m, const float *x_t, const float *t, const int *y, int B, float *eps) {
    forward_pass(m, x_t, t, y, B, eps, 1);
}

/* ---- backward ---- */

/* s is a plain bf16 layer that ran forward on M rows: its backward may be called directly. */
static int bf16_backward_direct(const qa_linear *s, int M) { return slot_plain_bf16(s) && s->bf16.rows == M; }

/* The backward of such a layer: dx written (dx_accumulate = 0) or added; dy_ready: the op that
 * computed dy has written bf16(dy) into s->bf16.dy. */
static void bf16_backward(qa_linear *s, float *dx, int dx_accumulate, const float *dy, int dy_ready, int M, int tb) {
    int train = tb && !s->W_frozen;
    qa_linear_backward_bf16_ex(&s->bf16, dx, dx_accumulate, train ? s->dW : NULL, train ? s->db : NULL, dy, dy_ready, M);
}

/* Block l's backward in bf16 training (d_res: d x_out on entry, d x_in on return). The block's
 * layers in the order of the f32 backward, but no gradient buffer is zeroed to be added to once:
 * the first contribution is written, and the ops that compute a layer's output gradient write
 * its bf16 copy in the same pass. */
static void block_backward_bf16(qa_dit *m, int l, int B) {
    qa_block_acts *a = &m->acts[l];
    const int d = m->cfg.dim, T = m->T, M = B * T, H = m->cfg.heads, hid = d * m->cfg.mlp_ratio;
    const int tb = m->train_base;
    const float *sc1 = a->mod + d, *g1 = a->mod + 2 * d, *sc2 = a->mod + 4 * d, *g2 = a->mod + 5 * d;
    float *dsh1 = m->d_mod, *dsc1 = m->d_mod + d, *dg1 = m->d_mod + 2 * d;
    float *dsh2 = m->d_mod + 3 * d, *dsc2 = m->d_mod + 4 * d, *dg2 = m->d_mod + 5 * d;
    zero_floats(m->d_mod, (size_t)B * 6 * d);

    /* x_out = x_mid + g2 * fc2(GELU(fc1(h2))): d_res flows on unchanged as d x_mid */
    qa_linear *fc2 = m->mlp2[l], *fc1 = m->mlp1[l];
    const int direct2 = bf16_backward_direct(fc2, M), direct1 = bf16_backward_direct(fc1, M);
    qa_gated_residual_backward_bf16(m->d_m2, direct2 ? fc2->bf16.dy : NULL, dg2, m->d_res, a->m2, g2, 6 * d, B, T, d);
    if (direct2) bf16_backward(fc2, m->d_g, 0, m->d_m2, 1, M, tb);
    else {
        zero_floats(m->d_g, (size_t)M * hid);
        slot_backward(fc2, m->d_m2, m->d_g, M, tb);
    }
    qa_gelu_backward_bf16(m->d_g, direct1 ? fc1->bf16.dy : NULL, a->m1, a->g_sigmoid ? a->g : NULL, (size_t)M * hid);
    if (direct1) bf16_backward(fc1, m->d_h, 0, m->d_g, 1, M, tb);
    else {
        zero_floats(m->d_h, (size_t)M * d);
        slot_backward(fc1, m->d_g, m->d_h, M, tb);
    }
    qa_modulate_backward_write(m->d_att, dsh2, dsc2, m->d_h, a->ln2, sc2, 6 * d, B, T, d); /* d_ln2 */
    qa_layernorm_backward(m->d_res, m->d_att, a->x_mid, a->mean2, a->rstd2, M, d);

    /* x_mid = x_in + g1 * o(Attn(q(h1), k(h1), v(h1))) */
    qa_linear *o = m->o[l];
    const int direct_o = bf16_backward_direct(o, M);
    qa_gated_residual_backward_bf16(m->d_o, direct_o ? o->bf16.dy : NULL, dg1, m->d_res, a->o, g1, 6 * d, B, T, d);
    if (direct_o) bf16_backward(o, m->d_att, 0, m->d_o, 1, M, tb);
    else {
        zero_floats(m->d_att, (size_t)M * d);
        slot_backward(o, m->d_o, m->d_att, M, tb);
    }
    qa_attention_backward_bf16(&m->att_bf16[l], m->d_q, m->d_k, m->d_v, 0, m->d_att, a->probs, m->att_scratch, B, T, d,
                               H);
    qa_linear *qkv[3] = {m->q[l], m->k[l], m->v[l]};
    const float *dqkv[3] = {m->d_q, m->d_k, m->d_v};
    if (bf16_backward_direct(qkv[0], M) && bf16_backward_direct(qkv[1], M) && bf16_backward_direct(qkv[2], M)) {
        for (int p = 0; p < 3; p++) bf16_backward(qkv[p], m->d_h, p > 0, dqkv[p], 0, M, tb); /* q writes d_h */
    } else {
        zero_floats(m->d_h, (size_t)M * d);
        for (int p = 0; p < 3; p++) slot_backward(qkv[p], dqkv[p], m->d_h, M, tb);
    }
    qa_modulate_backward_write(m->d_att, dsh1, dsc1, m->d_h, a->ln1, sc1, 6 * d, B, T, d); /* d_ln1 */
    qa_layernorm_backward(m->d_res, m->d_att, a->x_in, a->mean1, a->rstd1, M, d);
    if (tb) slot_backward(m->adaln[l], m->d_mod, m->d_sc, B, tb);
}

void qa_dit_backward(qa_dit *m, const float *deps) {
    QA_ASSERT(!m->inference); /* an inference forward keeps no statistics or activations for it */
    const int B = m->last_B, d = m->cfg.dim, T = m->T, P = m->cfg.patch, G = m->grid;
    const int img = m->cfg.img, pd = m->patch_dim, NP = m->n_patches, L = m->cfg.depth;
    const int H = m->cfg.heads, hid = d * m->cfg.mlp_ratio, M = B * T;
    const int tb = m->train_base;

    /* d out_tok from d eps (token 0 gets zero) */
    zero_floats(m->d_out_tok, (size_t)M * pd);
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int py = 0; py < P; py++)
                    for (int px = 0; px < P; px++)
                        m->d_out_tok[((size_t)b * T + 1 + gy * G + gx) * pd + py * P + px] =
                            deps[(size_t)b * img * img + (gy * P + py) * img + gx * P + px];

    if (tb) zero_floats(m->d_sc, (size_t)B * d);
    /* final layer */
    const int bf16 = m->att_bf16_last && bf16_backward_direct(m->final, M); /* bf16: dX written, no zeroing */
    if (bf16) bf16_backward(m->final, m->d_h, 0, m->d_out_tok, 0, M, tb);
    else {
        zero_floats(m->d_h, (size_t)M * d);
        slot_backward(m->final, m->d_out_tok, m->d_h, M, tb);
    }
    zero_floats(m->d_res, (size_t)M * d);
    zero_floats(m->d_fmod, (size_t)B * 2 * d);
    if (bf16) qa_modulate_backward_write(m->d_att, m->d_fmod, m->d_fmod + d, m->d_h, m->lnf, m->fmod + d, 2 * d, B, T, d);
    else {
        zero_floats(m->d_att, (size_t)M * d); /* d_lnf */
        qa_modulate_backward(m->d_att, m->d_fmod, m->d_fmod + d, m->d_h, m->lnf, m->fmod + d, 2 * d, B, T, d);
    }
    qa_layernorm_backward(m->d_res, m->d_att, m->x_final, m->meanf, m->rstdf, M, d);
    if (tb) slot_backward(m->final_adaln, m->d_fmod, m->d_sc, B, tb);

    for (int l = L - 1; l >= 0; l--) {
        if (m->att_bf16_last) { /* bf16 training */
            block_backward_bf16(m, l, B);
            continue;
        }
        qa_block_acts *a = &m->acts[l];
        const float *sc1 = a->mod + d, *g1 = a->mod + 2 * d;
        const float *sc2 = a->mod + 4 * d, *g2 = a->mod + 5 * d;
        float *dsh1 = m->d_mod, *dsc1 = m->d_mod + d, *dg1 = m->d_mod + 2 * d;
        float *dsh2 = m->d_mod + 3 * d, *dsc2 = m->d_mod + 4 * d, *dg2 = m->d_mod + 5 * d;
        zero_floats(m->d_mod, (size_t)B * 6 * d);

        /* x_out = x_mid + g2 * m2: d_res is d x_out and flows on unchanged as d x_mid */
        zero_floats(m->d_m2, (size_t)M * d);
        qa_gated_residual_backward(m->d_m2, dg2, m->d_res, a->m2, g2, 6 * d, B, T, d);
        qa_linear *fc2 = m->mlp2[l];
        float *d_m1 = m->d_m1;
        if (slot_plain_bf16(fc2) && fc2->bf16.rows == M) {
            /* bf16: fc2's dx written, not added, and GELU's backward in place over it: no zeroing */
            int train = tb && !fc2->W_frozen;
            qa_linear_backward_bf16_ex(&fc2->bf16, m->d_g, 0, train ? fc2->dW : NULL, train ? fc2->db : NULL, m->d_m2,
                                       0, M);
            qa_gelu_backward_in_place(m->d_g, a->m1, (size_t)M * hid);
            d_m1 = m->d_g;
        } else {
            zero_floats(m->d_g, (size_t)M * hid);
            slot_backward(fc2, m->d_m2, m->d_g, M, tb);
            zero_floats(m->d_m1, (size_t)M * hid);
            qa_gelu_backward(m->d_m1, m->d_g, a->m1, (size_t)M * hid);
        }
        zero_floats(m->d_h, (size_t)M * d);
        slot_backward(m->mlp1[l], d_m1, m->d_h, M, tb);
        zero_floats(m->d_att, (size_t)M * d); /* d_ln2 */
        qa_modulate_backward(m->d_att, dsh2, dsc2, m->d_h, a->ln2, sc2, 6 * d, B, T, d);
        qa_layernorm_backward(m->d_res, m->d_att, a->x_mid, a->mean2, a->rstd2, M, d);

        /* x_mid = x_in + g1 * o */
        zero_floats(m->d_o, (size_t)M * d);
        qa_gated_residual_backward(m->d_o, dg1, m->d_res, a->o, g1, 6 * d, B, T, d);
        zero_floats(m->d_att, (size_t)M * d);
        slot_backward(m->o[l], m->d_o, m->d_att, M, tb);
        zero_floats(m->d_q, (size_t)M * d);
        zero_floats(m->d_k, (size_t)M * d);
        zero_floats(m->d_v, (size_t)M * d);
        qa_attention_backward(m->d_q, m->d_k, m->d_v, m->d_att, a->probs, a->q, a->k, a->v,
                              m->att_scratch, B, T, d, H);
        zero_floats(m->d_h, (size_t)M * d);
        slot_backward(m->q[l], m->d_q, m->d_h, M, tb);
        slot_backward(m->k[l], m->d_k, m->d_h, M, tb);
        slot_backward(m->v[l], m->d_v, m->d_h, M, tb);
        zero_floats(m->d_att, (size_t)M * d); /* d_ln1 */
        qa_modulate_backward(m->d_att, dsh1, dsc1, m->d_h, a->ln1, sc1, 6 * d, B, T, d);
        qa_layernorm_backward(m->d_res, m->d_att, a->x_in, a->mean1, a->rstd1, M, d);
        if (tb) slot_backward(m->adaln[l], m->d_mod, m->d_sc, B, tb);
    }
    if (!tb) return; /* adapters only: nothing trainable upstream of the blocks */

    /* tokens = [c ; patch tokens] + pos */
    float *dpos = m->grads + (m->pos - m->params);
    float *dcls = m->grads + (m->class_table - m->params);
    zero_floats(m->d_c, (size_t)B * d);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < d; j++) {
            float g = m->d_res[(size_t)b * T * d + j];
            m->d_c[(size_t)b * d + j] += g;
            dpos[j] += g;
        }
        for (int p = 0; p < NP; p++)
            for (int j = 0; j < d; j++) {
                float g = m->d_res[((size_t)b * T + 1 + p) * d + j];
                m->d_tok_patch[((size_t)b * NP + p) * d + j] = g;
                dpos[(size_t)(1 + p) * d + j] += g;
            }
    }
    slot_backward(m->patch, m->d_tok_patch, NULL, B * NP, tb);
    /* c = temb + yemb, sc = SiLU(c) */
    qa_silu_backward(m->d_c, m->d_sc, m->c, (size_t)B * d);
    qa_embedding_backward(dcls, m->d_c, m->last_y, B, d);
    zero_floats(m->d_ths, (size_t)B * d);
    slot_backward(m->t2, m->d_c, m->d_ths, B, tb);
    zero_floats(m->d_th, (size_t)B * d);
    qa_silu_backward(m->d_th, m->d_ths, m->th, (size_t)B * d);
    slot_backward(m->t1, m->d_th, NULL, B, tb);
}

/* ---- quantized base and adapters ---- */

void qa_dit_quantize_base(qa_dit *m, int w_bits, int a_bits, int adapt_attn) {
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        int adapted = adapt_attn && s->role == QA_ROLE_ATTN;
        if (w_bits > 0 && !adapted) {
            float *delta = qa_alloc(sizeof(float) * s->out), *zero = qa_alloc(sizeof(float) * s->out);
            s->W_frozen = qa_alloc(sizeof(float) * (size_t)s->out * s->in);
            qa_quant_search_rows(s->W, s->out, s->in, w_bits, delta, zero);
            qa_quant_fake_rows(s->W_frozen, s->W, s->out, s->in, w_bits, delta, zero);
            s->code_delta = delta; /* kept: the integer kernel needs the codes */
            s->code_zero = zero;
            s->code_bits = w_bits;
        }
        if (a_bits > 0) {
            s->actq.bits = a_bits;
            s->actq.calibrated = 0;
            s->x_hat = qa_alloc(sizeof(float) * (size_t)s->max_rows * s->in);
            s->dx_hat = qa_alloc(sizeof(float) * (size_t)s->max_rows * s->in);
        }
    }
}

int qa_dit_attach_method(qa_dit *m, const qa_method *method, const qa_method_cfg *cfg, uint64_t seed,
                      qa_error *err) {
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        if (s->role != QA_ROLE_ATTN) continue;
        qa_rng *r = qa_rng_new(qa_seed_for(seed, s->name));
        qa_layer_init li = {s->in, s->out, s->W, s->b, cfg, r, s->name, NULL, &m->step};
        s->state = qa_alloc(method->state_size);
        s->method = method;
        int rc = method->init(s->state, &li, err);
        qa_rng_free(r);
        if (rc) return rc;
    }
    return QA_OK;
}

void qa_dit_set_deployed(qa_dit *m, float *const *weights, float *const *row_delta, float *const *row_zero,
                      int code_bits) {
    int k = 0;
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        if (!s->method) continue;
        int j = k++;
        float *w = weights[j];
        qa_free(s->W_deploy);
        s->W_deploy = NULL;
        slot_clear_codes(s);
        if (row_delta && row_zero && row_delta[j] && row_zero[j] && code_bits > 0) {
            s->code_delta = qa_alloc(sizeof(float) * s->out);
            s->code_zero = qa_alloc(sizeof(float) * s->out);
            memcpy(s->code_delta, row_delta[j], sizeof(float) * s->out);
            memcpy(s->code_zero, row_zero[j], sizeof(float) * s->out);
            s->code_bits = code_bits;
        }
        if (s->method->flags & QA_METHOD_OWNS_ACT_QUANT) continue;
        QA_ASSERT(w);
        s->W_deploy = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
        memcpy(s->W_deploy, w, sizeof(float) * (size_t)s->in * s->out);
    }
}

/* q, k and v of block l as one integer layer [3 dim, dim], when all three run on the integer
 * kernel with the same activation quantizer (they read the same input, so calibration gives them
 * the same one). The stacked codes, scales and biases are the three layers' own. */
static void stack_qkv(qa_dit *m, int l) {
    const qa_linear *parts[3] = {m->q[l], m->k[l], m->v[l]};
    for (int p = 0; p < 3; p++)
        if (!parts[p]->i8 || parts[p]->actq.delta != parts[0]->actq.delta || parts[p]->actq.zero != parts[0]->actq.zero)
            return;
    const int d = m->cfg.dim;
    float *W = qa_alloc(sizeof(float) * 3 * (size_t)d * d), *dw = qa_alloc(sizeof(float) * 3 * d);
    float *zw = qa_alloc(sizeof(float) * 3 * d), *bias = qa_alloc(sizeof(float) * 3 * d);
    for (int p = 0; p < 3; p++) {
        const qa_linear *s = parts[p];
        memcpy(W + (size_t)p * d * d, s->W_deploy ? s->W_deploy : s->W_frozen, sizeof(float) * (size_t)d * d);
        memcpy(dw + p * d, s->code_delta, sizeof(float) * d);
        memcpy(zw + p * d, s->code_zero, sizeof(float) * d);
        memcpy(bias + p * d, s->b, sizeof(float) * d);
    }
    qa_int8_linear *L = qa_alloc(sizeof(qa_int8_linear));
    if (qa_int8_linear_init(L, W, dw, zw, d, 3 * d, bias) == 0) {
        m->qkv_i8[l] = L;
        m->qkv_bias[l] = bias;
    } else { /* cannot happen: each part was accepted alone */
        qa_free(L);
        qa_free(bias);
    }
    qa_free(W); qa_free(dw); qa_free(zw);
}

int qa_dit_enable_int8(qa_dit *m) {
    int n = 0;
    for (int i = 0; i < m->n_lin; i++) {
        qa_linear *s = &m->lin[i];
        /* codes of fewer bits are on the 8-bit grid of the same (delta, zero) */
        if (s->i8 || s->code_bits < 2 || s->code_bits > 8 || s->actq.bits != 8 || !s->actq.calibrated) continue;
        const float *W = s->W_deploy ? s->W_deploy : (s->method ? NULL : s->W_frozen);
        if (!W) continue;
        s->i8 = qa_alloc(sizeof(qa_int8_linear));
        if (qa_int8_linear_init(s->i8, W, s->code_delta, s->code_zero, s->in, s->out, s->b) != 0) {
            qa_free(s->i8);
            s->i8 = NULL;
            continue;
        }
        n++;
    }
    clear_stacked_qkv(m);
    for (int l = 0; l < m->cfg.depth; l++) stack_qkv(m, l);
    return n;
}

double qa_dit_forward_flops(const qa_dit *m, int B) {
    double f = 0;
    int T = m->T;
    for (int i = 0; i < m->n_lin; i++) {
        const qa_linear *s = &m->lin[i];
        int rows = (s == m->t1 || s == m->t2 || strstr(s->name, "adaln")) ? B
                 : (s == m->patch ? B * m->n_patches : B * T);
        f += 2.0 * rows * s->in * s->out;
    }
    f += m->cfg.depth * 2.0 * (2.0 * B * T * T * m->cfg.dim); /* q k^T and P v */
    return f;
}
