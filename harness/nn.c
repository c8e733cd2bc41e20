#include "harness/nn.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/int8.h"
#include "harness/util.h"

void qa_linear_forward(float *y, const float *x, const float *W, const float *b, int M, int in, int out) {
    qa_matmul(M, out, in, x, 0, W, 1, y, 0, b);
}

/* Columns [*n0, *n1) of N that part `part` of `parts` takes: contiguous runs of whole 16-float
 * groups, so that each thread streams through its share of every row. */
static void column_part(int N, int part, int parts, int *n0, int *n1) {
    int groups = (N + 15) / 16;
    *n0 = 16 * (int)((long)groups * part / parts);
    *n1 = 16 * (int)((long)groups * (part + 1) / parts);
    if (*n1 > N) *n1 = N;
}

/* db[out] += sum over the M rows of dy[M,out], each column summed in row order (the result does
 * not depend on the thread count); each thread takes a contiguous run of the columns. */
static void bias_backward(float *db, const float *dy, int M, int out) {
    const int parts = omp_get_max_threads();
    #pragma omp parallel for schedule(static)
    for (int part = 0; part < parts; part++) {
        int o0, o1;
        column_part(out, part, parts, &o0, &o1);
        for (int m = 0; m < M; m++) {
            const float *row = dy + (size_t)m * out;
            for (int o = o0; o < o1; o++) db[o] += row[o];
        }
    }
}

void qa_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int M, int in, int out) {
    if (dx) qa_matmul(M, in, out, dy, 0, W, 0, dx, 1, NULL);  /* [M,out]·[out,in] */
    if (dW) qa_matmul(out, in, M, dy, 1, x, 0, dW, 1, NULL);  /* [out,M]·[M,in] */
    if (db) bias_backward(db, dy, M, out);
}

static const char *const DTYPE_NAMES[QA_DTYPE_COUNT] = {[QA_DTYPE_F32] = "f32", [QA_DTYPE_BF16] = "bf16"};

const char *qa_dtype_name(qa_dtype dtype) {
    QA_ASSERT(dtype >= 0 && dtype < QA_DTYPE_COUNT);
    return DTYPE_NAMES[dtype];
}

int qa_dtype_parse(const char *name, qa_dtype *dtype) {
    for (int d = 0; d < QA_DTYPE_COUNT; d++)
        if (!strcmp(name, DTYPE_NAMES[d])) { *dtype = (qa_dtype)d; return QA_OK; }
    return QA_ERR_INPUT;
}

void qa_linear_bf16_init(qa_linear_bf16 *c, int max_rows, int in, int out) {
    c->max_rows = max_rows; c->in = in; c->out = out; c->rows = 0; c->x_used = NULL;
    c->x = qa_alloc(sizeof(qa_bf16) * (size_t)max_rows * in);
    c->W = qa_alloc(sizeof(qa_bf16) * (size_t)out * in);
    c->dy = qa_alloc(sizeof(qa_bf16) * (size_t)max_rows * out);
}

void qa_linear_bf16_free(qa_linear_bf16 *c) {
    qa_free(c->x); qa_free(c->W); qa_free(c->dy);
    memset(c, 0, sizeof *c);
}

size_t qa_linear_bf16_bytes(const qa_linear_bf16 *c) {
    if (!c->x) return 0;
    return sizeof(qa_bf16) * ((size_t)c->max_rows * c->in + (size_t)c->out * c->in + (size_t)c->max_rows * c->out);
}

void qa_linear_forward_bf16_on(qa_linear_bf16 *c, float *y, const qa_bf16 *x_bf16, const float *W, const float *b, int M) {
    QA_ASSERT(c->x && M <= c->max_rows);
    qa_convert_to_bf16(c->W, W, (size_t)c->out * c->in);
    c->rows = M;
    c->x_used = x_bf16;
    qa_matmul_bf16(M, c->out, c->in, x_bf16, 0, c->W, 1, y, 0, b);
}

void qa_linear_forward_bf16(qa_linear_bf16 *c, float *y, const float *x, const float *W, const float *b, int M) {
    QA_ASSERT(c->x && M <= c->max_rows);
    qa_convert_to_bf16(c->x, x, (size_t)M * c->in);
    qa_linear_forward_bf16_on(c, y, c->x, W, b, M);
}

void qa_linear_backward_bf16(qa_linear_bf16 *c, float *dx, float *dW, float *db, const float *dy, int M) {
    QA_ASSERT(c->x && M == c->rows);
    qa_linear_backward_bf16_ex(c, dx, 1, dW, db, dy, 0, M);
}

void qa_linear_backward_bf16_ex(qa_linear_bf16 *c, float *dx, int dx_accumulate, float *dW, float *db, const float *dy,
                                int dy_ready, int M) {
    QA_ASSERT(c->x && M == c->rows && (dy || !db));
    if (!dy_ready && (dx || dW)) qa_convert_to_bf16(c->dy, dy, (size_t)M * c->out);
    if (dx) qa_matmul_bf16(M, c->in, c->out, c->dy, 0, c->W, 0, dx, dx_accumulate, NULL);  /* [M,out]·[out,in] */
    if (dW) qa_matmul_bf16(c->out, c->in, M, c->dy, 1, c->x_used, 0, dW, 1, NULL);  /* [out,M]·[M,in] */
    if (db) bias_backward(db, dy, M, c->out);
}

/* mean and 1/sqrt(var + 1e-6) of one row, summed in order (the fused deployed operations call
 * it too, so that they compute the same floats as the unfused layers) */
static inline void layernorm_row_stats(const float *xr, int C, float *mean, float *rstd) {
    float mu = 0.f;
    for (int c = 0; c < C; c++) mu += xr[c];
    mu /= (float)C;
    float var = 0.f;
    for (int c = 0; c < C; c++) { float d = xr[c] - mu; var += d * d; }
    var /= (float)C;
    *mean = mu;
    *rstd = 1.0f / sqrtf(var + 1e-6f);
}

void qa_layernorm_forward(float *y, float *mean, float *rstd, const float *x, int M, int C) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * C;
        float *yr = y + (size_t)m * C;
        float mu, rs;
        layernorm_row_stats(xr, C, &mu, &rs);
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs;
        mean[m] = mu;
        rstd[m] = rs;
    }
}

void qa_layernorm_backward(float *dx, const float *dy, const float *x, const float *mean,
                        const float *rstd, int M, int C) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * C, *dyr = dy + (size_t)m * C;
        float *dxr = dx + (size_t)m * C;
        float mu = mean[m], rs = rstd[m];
        float dy_mean = 0.f, dy_xhat_mean = 0.f;
        for (int c = 0; c < C; c++) {
            float xhat = (xr[c] - mu) * rs;
            dy_mean += dyr[c];
            dy_xhat_mean += dyr[c] * xhat;
        }
        dy_mean /= (float)C;
        dy_xhat_mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (xr[c] - mu) * rs;
            dxr[c] += rs * (dyr[c] - dy_mean - xhat * dy_xhat_mean);
        }
    }
}

void qa_modulate_forward(float *y, const float *x, const float *shift, const float *scale,
                      int cond_stride, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T;
        const float *sh = shift + (size_t)b * cond_stride, *sc = scale + (size_t)b * cond_stride;
        const float *xr = x + (size_t)bt * C;
        float *yr = y + (size_t)bt * C;
        for (int c = 0; c < C; c++) yr[c] = xr[c] * (1.0f + sc[c]) + sh[c];
    }
}

void qa_layernorm_modulate_forward_bf16(float *ln, float *mean, float *rstd, float *h, qa_bf16 *h16, const float *x,
                                        const float *shift, const float *scale, int cond_stride, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        const float *xr = x + (size_t)bt * C;
        const float *sh = shift + (size_t)(bt / T) * cond_stride, *sc = scale + (size_t)(bt / T) * cond_stride;
        float *lr = ln + (size_t)bt * C, *hr = h + (size_t)bt * C;
        float mu, rs;
        layernorm_row_stats(xr, C, &mu, &rs);
        for (int c = 0; c < C; c++) lr[c] = (xr[c] - mu) * rs;
        for (int c = 0; c < C; c++) hr[c] = lr[c] * (1.0f + sc[c]) + sh[c];
        if (h16)
            for (int c = 0; c < C; c++) h16[(size_t)bt * C + c] = qa_bf16_round(hr[c]);
        mean[bt] = mu;
        rstd[bt] = rs;
    }
}

/* The body of modulate_backward; accumulate = 0 writes dx (same floats as adding to a zeroed dx,
 * but for the sign of a zero), for a caller that saves the zeroing pass. */
static inline void modulate_backward_body(float *dx, int accumulate, float *dshift, float *dscale, const float *dy,
                                          const float *x, const float *scale, int cond_stride, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *sc = scale + (size_t)b * cond_stride;
        float *dsh = dshift + (size_t)b * cond_stride, *dsc = dscale + (size_t)b * cond_stride;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) {
                float g = dy[off + c];
                if (accumulate) dx[off + c] += g * (1.0f + sc[c]);
                else dx[off + c] = g * (1.0f + sc[c]);
                dsh[c] += g;
                dsc[c] += g * x[off + c];
            }
        }
    }
}

void qa_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                       const float *scale, int cond_stride, int B, int T, int C) {
    modulate_backward_body(dx, 1, dshift, dscale, dy, x, scale, cond_stride, B, T, C);
}

void qa_modulate_backward_write(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                                const float *scale, int cond_stride, int B, int T, int C) {
    modulate_backward_body(dx, 0, dshift, dscale, dy, x, scale, cond_stride, B, T, C);
}

void qa_gated_residual_forward(float *x_out, const float *x, const float *y, const float *gate, int cond_stride,
                               int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        const float *g = gate + (size_t)(bt / T) * cond_stride;
        const float *xr = x + (size_t)bt * C, *yr = y + (size_t)bt * C;
        float *xo = x_out + (size_t)bt * C;
        for (int c = 0; c < C; c++) xo[c] = xr[c] + g[c] * yr[c];
    }
}

/* The body of gated_residual_backward; accumulate = 0 writes dy (as modulate_backward_body), and
 * dy16 (unless NULL) receives the bf16 copy of each finished row of dy. */
static inline void gated_residual_backward_body(float *dy, int accumulate, qa_bf16 *dy16, float *dgate, const float *dx,
                                                const float *y, const float *gate, int cond_stride, int B, int T,
                                                int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *g = gate + (size_t)b * cond_stride;
        float *dg = dgate + (size_t)b * cond_stride;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) {
                if (accumulate) dy[off + c] += g[c] * dx[off + c];
                else dy[off + c] = g[c] * dx[off + c];
                dg[c] += dx[off + c] * y[off + c];
            }
            if (dy16)
                for (int c = 0; c < C; c++) dy16[off + c] = qa_bf16_round(dy[off + c]);
        }
    }
}

void qa_gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                             const float *gate, int cond_stride, int B, int T, int C) {
    gated_residual_backward_body(dy, 1, NULL, dgate, dx, y, gate, cond_stride, B, T, C);
}

void qa_gated_residual_backward_bf16(float *dy, qa_bf16 *dy16, float *dgate, const float *dx, const float *y,
                                     const float *gate, int cond_stride, int B, int T, int C) {
    gated_residual_backward_body(dy, 0, dy16, dgate, dx, y, gate, cond_stride, B, T, C);
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* exp(x) for the hot elementwise loops: 2^(x log2 e) split into 2^n (exponent bits) and a
 * degree-6 polynomial of 2^f on [-0.5, 0.5]; relative error below 2e-7, and unlike libm's
 * expf/tanhf it vectorises. Inputs are clamped to [-87, 88] (no overflow, no denormals). */
static inline float exp_fast(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.4426950408889634f;
    float n = nearbyintf(t);
    float f = t - n;
    float p = 1.5403530393381606e-4f;
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910072e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    union { float f; uint32_t i; } u = {p};
    u.i += (uint32_t)(int32_t)n << 23; /* unsigned: shifting a negative int is undefined */
    return u.f;
}

/* 0.5 (1 + tanh(u)) = sigmoid(2u) */
static inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

/* GELU(v) = v s, s = sigmoid(2 sqrt(2/pi)(v + 0.044715 v^3)) = 0.5 (1 + tanh(u)) */
static inline float gelu_sigmoid(float v) { return sigmoid_fast(2.0f * GELU_K * (v + 0.044715f * v * v * v)); }

static inline float gelu_value(float v) { return v * gelu_sigmoid(v); }

void qa_gelu_forward(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = gelu_value(x[i]);
}

/* d GELU(v) / dv from s = sigmoid(2u) */
static inline float gelu_grad_from(float v, float s) {
    float th = 2.0f * s - 1.0f; /* tanh(u) */
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * v * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
}

/* d GELU(v) / dv */
static inline float gelu_grad(float v) {
    float u = GELU_K * (v + 0.044715f * v * v * v);
    return gelu_grad_from(v, sigmoid_fast(2.0f * u));
}

void qa_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += gelu_grad(x[i]) * dy[i];
}

void qa_gelu_backward_in_place(float *dy, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dy[i] = gelu_grad(x[i]) * dy[i];
}

/* Elements per chunk of the passes below that also write a bf16 copy: the copy is written from
 * the chunk just computed, while it is still in cache. */
enum { BF16_CHUNK = 4096 };

void qa_gelu_forward_bf16(float *s, qa_bf16 *y16, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i0 = 0; i0 < n; i0 += BF16_CHUNK) {
        const size_t i1 = n - i0 < BF16_CHUNK ? n : i0 + BF16_CHUNK;
        for (size_t i = i0; i < i1; i++) s[i] = gelu_sigmoid(x[i]);
        for (size_t i = i0; i < i1; i++) y16[i] = qa_bf16_round(x[i] * s[i]); /* gelu_value(x[i]) */
    }
}

/* s: 2u = 2 sqrt(2/pi)(v + 0.044715 v^3) is 2 * u exactly, so sigmoid(2u) saved by the forward is
 * the float gelu_grad computes again */
void qa_gelu_backward_bf16(float *dy, qa_bf16 *dy16, const float *x, const float *s, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i0 = 0; i0 < n; i0 += BF16_CHUNK) {
        const size_t i1 = n - i0 < BF16_CHUNK ? n : i0 + BF16_CHUNK;
        if (s)
            for (size_t i = i0; i < i1; i++) dy[i] = gelu_grad_from(x[i], s[i]) * dy[i];
        else
            for (size_t i = i0; i < i1; i++) dy[i] = gelu_grad(x[i]) * dy[i];
        if (dy16)
            for (size_t i = i0; i < i1; i++) dy16[i] = qa_bf16_round(dy[i]);
    }
}

void qa_silu_forward(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoid_fast(x[i]);
}

void qa_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = sigmoid_fast(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void qa_relu_forward(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void qa_relu_backward(float *dx, const float *dy, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) if (x[i] > 0.f) dx[i] += dy[i];
}

/* Views of a [B,T,C] buffer as per-head matrices [B,H,T,hd] (and the transpose [B,H,hd,T]). */
static qa_view head_view(int B, int T, int C, int H, int transposed) {
    int hd = C / H;
    qa_view v;
    v.dims[0] = B; v.dims[1] = H;
    v.strides[0] = (int64_t)T * C; v.strides[1] = hd;
    if (!transposed) { v.dims[2] = T; v.dims[3] = hd; v.strides[2] = C; v.strides[3] = 1; }
    else { v.dims[2] = hd; v.dims[3] = T; v.strides[2] = 1; v.strides[3] = C; }
    return v;
}

static qa_view square_view(int B, int H, int T, int transposed) {
    qa_view v = {{B, H, T, T}, {(int64_t)H * T * T, (int64_t)T * T, T, 1}};
    if (transposed) { v.strides[2] = 1; v.strides[3] = T; }
    return v;
}

static inline void softmax_row(float *p, int T) {
    float mx = p[0];
    for (int j = 1; j < T; j++) mx = p[j] > mx ? p[j] : mx;
    float sum = 0.f;
    for (int j = 0; j < T; j++) { p[j] = exp_fast(p[j] - mx); sum += p[j]; }
    float inv = 1.0f / sum;
    for (int j = 0; j < T; j++) p[j] *= inv;
}

static void softmax_rows_grouped(float *probs, size_t rows, int T);

/* grouped: the softmax rows in groups (softmax_rows_grouped, inference), the same floats */
static void attention_forward_rows(float *out, float *probs, const float *q, const float *k, const float *v,
                                   int B, int T, int C, int H, int grouped) {
    int hd = C / H;
    float scale = 1.0f / sqrtf((float)hd);
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1);
    qa_view vs = square_view(B, H, T, 0);
    qa_matmul_view(&vq, q, &vkt, k, &vs, probs, scale, 0, NULL);
    size_t rows = (size_t)B * H * T;
    if (grouped) softmax_rows_grouped(probs, rows, T);
    else {
        #pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) softmax_row(probs + r * T, T);
    }
    qa_view vv = head_view(B, T, C, H, 0), vo = head_view(B, T, C, H, 0);
    qa_matmul_view(&vs, probs, &vv, v, &vo, out, 1.0f, 0, NULL);
}

void qa_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       int B, int T, int C, int H) {
    attention_forward_rows(out, probs, q, k, v, B, T, C, H, 0);
}

void qa_attention_forward_inference(float *out, float *probs, const float *q, const float *k, const float *v,
                                    int B, int T, int C, int H) {
    attention_forward_rows(out, probs, q, k, v, B, T, C, H, 1);
}

void qa_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                        const float *q, const float *k, const float *v, float *scratch, int B,
                        int T, int C, int H) {
    int hd = C / H;
    float scale = 1.0f / sqrtf((float)hd);
    float *dp = scratch;
    qa_view vdo = head_view(B, T, C, H, 0), vvt = head_view(B, T, C, H, 1);
    qa_view vs = square_view(B, H, T, 0), vst = square_view(B, H, T, 1);
    qa_view vhead = head_view(B, T, C, H, 0);
    /* dP = dout v^T */
    qa_matmul_view(&vdo, dout, &vvt, v, &vs, dp, 1.0f, 0, NULL);
    /* dv += P^T dout */
    qa_matmul_view(&vst, probs, &vdo, dout, &vhead, dv, 1.0f, 1, NULL);
    /* dS = P (dP - rowsum(dP P)), in place in dp */
    size_t rows = (size_t)B * H * T;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *p = probs + r * T;
        float *d = dp + r * T;
        float dot = 0.f;
        for (int j = 0; j < T; j++) dot += d[j] * p[j];
        for (int j = 0; j < T; j++) d[j] = p[j] * (d[j] - dot);
    }
    /* dq += dS k * scale; dk += dS^T q * scale */
    qa_matmul_view(&vs, dp, &vhead, k, &vhead, dq, scale, 1, NULL);
    qa_matmul_view(&vst, dp, &vhead, q, &vhead, dk, scale, 1, NULL);
}

static void attention_bf16_reserve(qa_attention_bf16 *A, int B, int T, int C, int H) {
    size_t tokens = (size_t)B * T * C, probs = (size_t)B * H * T * T;
    if (tokens <= A->cap_tokens && probs <= A->cap_probs) return;
    qa_attention_bf16_free(A);
    qa_bf16 **tok[] = {&A->q, &A->k, &A->v, &A->dout}, **prob[] = {&A->p, &A->ds};
    for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++) *tok[i] = qa_alloc(sizeof(qa_bf16) * tokens);
    for (size_t i = 0; i < sizeof prob / sizeof prob[0]; i++) *prob[i] = qa_alloc(sizeof(qa_bf16) * probs);
    A->cap_tokens = tokens;
    A->cap_probs = probs;
}

void qa_attention_bf16_free(qa_attention_bf16 *A) {
    qa_bf16 *bufs[] = {A->q, A->k, A->v, A->p, A->dout, A->ds};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qa_free(bufs[i]);
    memset(A, 0, sizeof *A);
}

size_t qa_attention_bf16_bytes(const qa_attention_bf16 *A) {
    return sizeof(qa_bf16) * (4 * A->cap_tokens + 2 * A->cap_probs);
}

void qa_attention_forward_bf16(qa_attention_bf16 *A, float *out, float *probs, const float *q, const float *k,
                               const float *v, int B, int T, int C, int H) {
    attention_bf16_reserve(A, B, T, C, H);
    const size_t n = (size_t)B * T * C;
    qa_convert_to_bf16(A->q, q, n);
    qa_convert_to_bf16(A->k, k, n);
    qa_convert_to_bf16(A->v, v, n);
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1), vs = square_view(B, H, T, 0);
    qa_matmul_view_bf16(&vq, A->q, &vkt, A->k, &vs, probs, 1.0f / sqrtf((float)(C / H)), 0, NULL);
    size_t rows = (size_t)B * H * T;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *p = probs + r * T;
        qa_bf16 *p16 = A->p + r * T;
        softmax_row(p, T);
        for (int j = 0; j < T; j++) p16[j] = qa_bf16_round(p[j]);
    }
    qa_view vv = head_view(B, T, C, H, 0);
    qa_matmul_view_bf16(&vs, A->p, &vv, A->v, &vv, out, 1.0f, 0, NULL);
}

void qa_attention_backward_bf16(qa_attention_bf16 *A, float *dq, float *dk, float *dv, int accumulate,
                                const float *dout, const float *probs, float *scratch, int B, int T, int C, int H) {
    QA_ASSERT((size_t)B * T * C <= A->cap_tokens && (size_t)B * H * T * T <= A->cap_probs);
    const float scale = 1.0f / sqrtf((float)(C / H));
    float *dp = scratch;
    qa_convert_to_bf16(A->dout, dout, (size_t)B * T * C);
    qa_view vhead = head_view(B, T, C, H, 0), vt = head_view(B, T, C, H, 1);
    qa_view vs = square_view(B, H, T, 0), vst = square_view(B, H, T, 1);
    qa_matmul_view_bf16(&vhead, A->dout, &vt, A->v, &vs, dp, 1.0f, 0, NULL);       /* dP = dout v^T */
    qa_matmul_view_bf16(&vst, A->p, &vhead, A->dout, &vhead, dv, 1.0f, accumulate, NULL); /* dv (+)= P^T dout */
    size_t rows = (size_t)B * H * T;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) { /* dS = P (dP - rowsum(dP P)), straight to bf16 */
        const float *p = probs + r * T, *d = dp + r * T;
        qa_bf16 *ds = A->ds + r * T;
        float dot = 0.f;
        for (int j = 0; j < T; j++) dot += d[j] * p[j];
        for (int j = 0; j < T; j++) ds[j] = qa_bf16_round(p[j] * (d[j] - dot));
    }
    qa_matmul_view_bf16(&vs, A->ds, &vhead, A->k, &vhead, dq, scale, accumulate, NULL);  /* dq (+)= dS k scale */
    qa_matmul_view_bf16(&vst, A->ds, &vhead, A->q, &vhead, dk, scale, accumulate, NULL); /* dk (+)= dS^T q scale */
}

void qa_timestep_features(float *y, const float *t, int B, int C) {
    int half = C / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            float f = expf(-logf(10000.0f) * (float)i / (float)half);
            y[(size_t)b * C + i] = cosf(t[b] * f);
            y[(size_t)b * C + half + i] = sinf(t[b] * f);
        }
}

void qa_embedding_forward(float *y, const float *table, const int *ids, int B, int C) {
    for (int b = 0; b < B; b++) memcpy(y + (size_t)b * C, table + (size_t)ids[b] * C, sizeof(float) * C);
}

void qa_embedding_backward(float *dtable, const float *dy, const int *ids, int B, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) dtable[(size_t)ids[b] * C + c] += dy[(size_t)b * C + c];
}

float qa_softmax_xent_forward_backward(float *dlogits, float *probs, const float *logits,
                                    const int *labels, int B, int K) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float mx = l[0];
        for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
        float sum = 0.f;
        for (int k = 0; k < K; k++) { p[k] = expf(l[k] - mx); sum += p[k]; }
        for (int k = 0; k < K; k++) p[k] /= sum;
        loss -= log((double)p[labels[b]] + 1e-30);
        if (dlogits)
            for (int k = 0; k < K; k++)
                dlogits[(size_t)b * K + k] = (p[k] - (k == labels[b] ? 1.0f : 0.0f)) / (float)B;
    }
    return (float)(loss / B);
}

void qa_vec_add(float *y, const float *x, size_t n) { for (size_t i = 0; i < n; i++) y[i] += x[i]; }
void qa_vec_scale(float *y, float s, size_t n) { for (size_t i = 0; i < n; i++) y[i] *= s; }

/* ---- deployed (inference-only) operations fused with the integer layers around them ----
 * Each computes, row by row, the same float expressions as the unfused layers (layernorm_forward,
 * modulate_forward, gelu_forward, gated_residual_forward and the integer layer's own
 * quantization and dequantization), so the fused model equals the unfused one bit for bit; what
 * is saved is the memory passes in between. A row of the intermediate lives in a stack buffer. */

#define QA_FUSED_ROW_MAX 4096

/* The deployed operations below are elementwise passes over rows of 128-512 floats, bound by
 * arithmetic (two divisions per element in the GELU step): they are compiled for the full
 * 512-bit vectors where the machine has them (the compiler's default stops at 256). Floats do not
 * change: no sum in them is vectorised across its terms (contraction stays off in ISO C). */
#pragma GCC push_options
#pragma GCC target("prefer-vector-width=512")

/* Rows are processed in groups of QA_ROW_GROUP: a row's in-order float sum (layer-norm
 * statistics, the softmax normalizer) is one chain of dependent adds, bound by the add latency;
 * summing a group's rows side by side, each row still in its own order, gives the same floats
 * while the chains overlap. */
#define QA_ROW_GROUP 8

/* layernorm_row_stats of the QA_ROW_GROUP rows x[G, C], interleaved. */
static void layernorm_group_stats(const float *restrict x, int C, float *restrict mean, float *restrict rstd) {
    float mu[QA_ROW_GROUP], var[QA_ROW_GROUP];
    for (int r = 0; r < QA_ROW_GROUP; r++) mu[r] = var[r] = 0.f;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < QA_ROW_GROUP; r++) mu[r] += x[(size_t)r * C + c];
    for (int r = 0; r < QA_ROW_GROUP; r++) mu[r] /= (float)C;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < QA_ROW_GROUP; r++) {
            float d = x[(size_t)r * C + c] - mu[r];
            var[r] += d * d;
        }
    for (int r = 0; r < QA_ROW_GROUP; r++) {
        var[r] /= (float)C;
        mean[r] = mu[r];
        rstd[r] = 1.0f / sqrtf(var[r] + 1e-6f);
    }
}

/* softmax_row of the QA_ROW_GROUP rows p[G, T], interleaved: each row's max and in-order sum are
 * softmax_row's. */
static void softmax_group(float *restrict p, int T) {
    float mx[QA_ROW_GROUP], sum[QA_ROW_GROUP];
    for (int r = 0; r < QA_ROW_GROUP; r++) { mx[r] = p[(size_t)r * T]; sum[r] = 0.f; }
    for (int j = 1; j < T; j++)
        for (int r = 0; r < QA_ROW_GROUP; r++) {
            float v = p[(size_t)r * T + j];
            mx[r] = v > mx[r] ? v : mx[r];
        }
    for (int r = 0; r < QA_ROW_GROUP; r++)
        for (int j = 0; j < T; j++) p[(size_t)r * T + j] = exp_fast(p[(size_t)r * T + j] - mx[r]);
    for (int j = 0; j < T; j++)
        for (int r = 0; r < QA_ROW_GROUP; r++) sum[r] += p[(size_t)r * T + j];
    for (int r = 0; r < QA_ROW_GROUP; r++) {
        float inv = 1.0f / sum[r];
        for (int j = 0; j < T; j++) p[(size_t)r * T + j] *= inv;
    }
}

static void softmax_rows_grouped(float *probs, size_t rows, int T) {
    const size_t groups = (rows + QA_ROW_GROUP - 1) / QA_ROW_GROUP;
    #pragma omp parallel for schedule(static)
    for (size_t g = 0; g < groups; g++) {
        const size_t r0 = g * QA_ROW_GROUP;
        if (rows - r0 >= QA_ROW_GROUP) softmax_group(probs + r0 * T, T);
        else
            for (size_t r = r0; r < rows; r++) softmax_row(probs + r * T, T);
    }
}

/* Layer-norm statistics of the rows [r0, r0 + n) of x [M, C], n <= QA_ROW_GROUP: a whole group
 * side by side, the rows of a partial one each alone (the same floats either way). */
static inline void layernorm_rows_stats(const float *x, int r0, int n, int C, float *mu, float *rs) {
    if (n == QA_ROW_GROUP) layernorm_group_stats(x + (size_t)r0 * C, C, mu, rs);
    else
        for (int i = 0; i < n; i++) layernorm_row_stats(x + (size_t)(r0 + i) * C, C, &mu[i], &rs[i]);
}

/* h = LN(x)(1 + scale) + shift of one row: layernorm_forward's and modulate_forward's expressions,
 * the intermediate kept in float, so the same floats. */
static inline void layernorm_modulate_row(float *restrict h, const float *restrict xr, float mu, float rs,
                                          const float *restrict sh, const float *restrict sc, int C) {
    for (int c = 0; c < C; c++) h[c] = (xr[c] - mu) * rs;
    for (int c = 0; c < C; c++) h[c] = h[c] * (1.0f + sc[c]) + sh[c];
}

void qa_layernorm_modulate_forward(float *h, const float *x, const float *shift, const float *scale, int cond_stride,
                                   int B, int T, int C) {
    const int M = B * T, groups = (M + QA_ROW_GROUP - 1) / QA_ROW_GROUP;
    #pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        float mu[QA_ROW_GROUP], rs[QA_ROW_GROUP];
        const int r0 = g * QA_ROW_GROUP, n = M - r0 < QA_ROW_GROUP ? M - r0 : QA_ROW_GROUP;
        layernorm_rows_stats(x, r0, n, C, mu, rs);
        for (int i = 0; i < n; i++) {
            const int bt = r0 + i;
            const size_t cond = (size_t)(bt / T) * cond_stride;
            layernorm_modulate_row(h + (size_t)bt * C, x + (size_t)bt * C, mu[i], rs[i], shift + cond, scale + cond, C);
        }
    }
}

void qa_layernorm_modulate_quantize(qa_int8_linear *next, const qa_actq *aq, const float *x, const float *shift,
                                    const float *scale, int cond_stride, int B, int T, int C) {
    QA_ASSERT(C == next->in && C <= QA_FUSED_ROW_MAX);
    const int M = B * T, groups = (M + QA_ROW_GROUP - 1) / QA_ROW_GROUP;
    qa_int8_linear_reserve(next, M);
    const float dx = aq->delta, zx = aq->zero;
    #pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        float h[QA_FUSED_ROW_MAX], mu[QA_ROW_GROUP], rs[QA_ROW_GROUP];
        const int r0 = g * QA_ROW_GROUP, n = M - r0 < QA_ROW_GROUP ? M - r0 : QA_ROW_GROUP;
        layernorm_rows_stats(x, r0, n, C, mu, rs);
        for (int i = 0; i < n; i++) {
            const int bt = r0 + i;
            const size_t cond = (size_t)(bt / T) * cond_stride;
            layernorm_modulate_row(h, x + (size_t)bt * C, mu[i], rs[i], shift + cond, scale + cond, C);
            next->xsum[bt] = qa_int8_quantize_row(h, next->xq + (size_t)bt * C, C, dx, zx);
        }
    }
}

void qa_int8_gelu_quantize(const qa_int8_linear *L, qa_int8_linear *next, const qa_actq *aq, int M) {
    const int N = L->out;
    QA_ASSERT(N == next->in && N <= QA_FUSED_ROW_MAX);
    qa_int8_linear_reserve(next, M);
    const float dx = aq->delta, zx = aq->zero;
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        float y[QA_FUSED_ROW_MAX];
        qa_int8_dequant_row(L, m, y);
        for (int o = 0; o < N; o++) y[o] = gelu_value(y[o]);
        next->xsum[m] = qa_int8_quantize_row(y, next->xq + (size_t)m * N, N, dx, zx);
    }
}

void qa_int8_gated_residual(const qa_int8_linear *L, float *x_out, const float *x_res, const float *gate,
                            int cond_stride, int B, int T) {
    const int C = L->out;
    QA_ASSERT(C <= QA_FUSED_ROW_MAX);
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        float y[QA_FUSED_ROW_MAX];
        qa_int8_dequant_row(L, bt, y);
        const float *g = gate + (size_t)(bt / T) * cond_stride, *xr = x_res + (size_t)bt * C;
        float *xo = x_out + (size_t)bt * C;
        for (int c = 0; c < C; c++) xo[c] = xr[c] + g[c] * y[c];
    }
}

void qa_int8_split_rows(const qa_int8_linear *L, float *const *parts, int n_parts, int M) {
    const int N = L->out, w = N / n_parts;
    QA_ASSERT(N % n_parts == 0 && N <= QA_FUSED_ROW_MAX);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        /* qa_int8_dequant_row's expression, written straight into each part */
        const int32_t d = L->xsum[m] - L->kzx;
        const float *restrict acc = L->acc + (size_t)m * N;
        for (int p = 0; p < n_parts; p++) {
            float *restrict y = parts[p] + (size_t)m * w;
            const int o0 = p * w;
            for (int o = 0; o < w; o++)
                y[o] = L->scale[o0 + o] * (float)((int32_t)acc[o0 + o] + L->c[o0 + o] * d - L->zu[o0 + o]);
            if (L->bias)
                for (int o = 0; o < w; o++) y[o] += L->bias[o0 + o];
        }
    }
}

/* ---- integer attention (deployed model, optional) ---- */

static void int8_attention_reserve(qa_int8_attention *A, int B, int T, int C, int H) {
    size_t M = (size_t)B * T, P = (size_t)B * H * T * T;
    if (M <= A->cap_tokens && P <= A->cap_probs) return;
    qa_int8_attention_release(A);
    A->qc = qa_alloc(M * C);
    A->kc = qa_alloc(M * C);
    A->vc = qa_alloc(M * C);
    A->pc = qa_alloc(P);
    A->qsum = qa_alloc(sizeof(int32_t) * M * H);
    A->ksum = qa_alloc(sizeof(int32_t) * M * H);
    A->vsum = qa_alloc(sizeof(int32_t) * (size_t)B * C);
    A->psum = qa_alloc(sizeof(int32_t) * (size_t)B * H * T);
    A->acc = qa_alloc(sizeof(float) * P);
    A->cap_tokens = M;
    A->cap_probs = P;
}

void qa_int8_attention_release(qa_int8_attention *A) {
    void *bufs[] = {A->qc, A->kc, A->vc, A->pc, A->qsum, A->ksum, A->vsum, A->psum, A->acc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qa_free(bufs[i]);
    A->qc = A->pc = NULL;
    A->kc = A->vc = NULL;
    A->qsum = A->ksum = A->vsum = A->psum = NULL;
    A->acc = NULL;
    A->cap_tokens = A->cap_probs = 0;
}

void qa_attention_fakequant_forward(qa_int8_attention *A, float *out, float *probs, const float *q, const float *k,
                                    const float *v, float *scratch, int B, int T, int C, int H) {
    const size_t n = (size_t)B * T * C;
    float *qh = scratch, *kh = scratch + n, *vh = scratch + 2 * n;
    qa_actq *qs[3] = {&A->q, &A->k, &A->v};
    for (int i = 0; i < 3; i++) qs[i]->bits = 8;
    A->p.bits = 8;
    qa_actq_forward(&A->q, qh, q, n);
    qa_actq_forward(&A->k, kh, k, n);
    qa_actq_forward(&A->v, vh, v, n);
    const int hd = C / H;
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1), vs = square_view(B, H, T, 0);
    qa_matmul_view(&vq, qh, &vkt, kh, &vs, probs, 1.0f / sqrtf((float)hd), 0, NULL);
    size_t rows = (size_t)B * H * T;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) softmax_row(probs + r * T, T);
    qa_actq_forward(&A->p, probs, probs, rows * T);
    qa_view vv = head_view(B, T, C, H, 0);
    qa_matmul_view(&vs, probs, &vv, vh, &vv, out, 1.0f, 0, NULL);
}

/* Codes of token m's q, k, v rows [C] each: u8 (q) or s8 = code - 128 (k, v), with the sums the
 * zero-point corrections need per (token, head) for q and k. */
static void attention_token_codes(qa_int8_attention *A, int m, const float *q, const float *k, const float *v, int C,
                                  int H) {
    const int hd = C / H;
    uint8_t *qc = A->qc + (size_t)m * C, *kc = (uint8_t *)A->kc + (size_t)m * C, *vc = (uint8_t *)A->vc + (size_t)m * C;
    for (int h = 0; h < H; h++) {
        A->qsum[(size_t)m * H + h] = qa_int8_quantize_row(q + h * hd, qc + h * hd, hd, A->q.delta, A->q.zero);
        A->ksum[(size_t)m * H + h] = qa_int8_quantize_row(k + h * hd, kc + h * hd, hd, A->k.delta, A->k.zero) - 128 * hd;
    }
    qa_int8_quantize_row(v, vc, C, A->v.delta, A->v.zero);
    for (int c = 0; c < C; c++) { kc[c] = (uint8_t)(kc[c] ^ 0x80); vc[c] = (uint8_t)(vc[c] ^ 0x80); } /* u - 128 as s8 */
}

/* Per (sample, channel): the sum over tokens of the v codes - 128. */
static void attention_vsums(qa_int8_attention *A, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            int32_t s = 0;
            for (int t = 0; t < T; t++) s += A->vc[((size_t)b * T + t) * C + c];
            A->vsum[(size_t)b * C + c] = s;
        }
}

/* Codes of [B*T, C] activations q, k, v. */
static void attention_codes(qa_int8_attention *A, const float *q, const float *k, const float *v, int B, int T,
                            int C, int H) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < B * T; m++)
        attention_token_codes(A, m, q + (size_t)m * C, k + (size_t)m * C, v + (size_t)m * C, C, H);
    attention_vsums(A, B, T, C);
}

/* The same codes from the stacked q/k/v layer's accumulator: each row dequantized in a stack buffer
 * (qa_int8_dequant_row: the floats qa_int8_split_rows writes), then coded. */
static void attention_codes_from_qkv(qa_int8_attention *A, const qa_int8_linear *qkv, int B, int T, int C, int H) {
    QA_ASSERT(qkv->out == 3 * C && 3 * C <= QA_FUSED_ROW_MAX);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < B * T; m++) {
        float y[QA_FUSED_ROW_MAX];
        qa_int8_dequant_row(qkv, m, y);
        attention_token_codes(A, m, y, y + C, y + 2 * C, C, H);
    }
    attention_vsums(A, B, T, C);
}

/* Scores of row r = (b, h, i) from the integer QK^T, into p[T]. */
static void attention_scores_row(const qa_int8_attention *A, float *p, const float *acc, int r, int T, int H, int hd,
                                 float alpha) {
    const int b = r / (H * T), h = (r / T) % H, i = r % T;
    const int32_t zq = (int32_t)A->q.zero, ck = 128 - (int32_t)A->k.zero;
    const int32_t qs = A->qsum[((size_t)b * T + i) * H + h], base = ck * qs - hd * zq * ck;
    for (int j = 0; j < T; j++) {
        int32_t s = (int32_t)acc[j] + base - zq * A->ksum[((size_t)b * T + j) * H + h];
        p[j] = alpha * (float)s;
    }
}

/* Softmax probabilities and P codes of the score rows [r0, r0 + n), n <= QA_ROW_GROUP. */
static void attention_probs_rows(qa_int8_attention *A, float *probs, int r0, int n, int T, int H, int hd,
                                 float alpha) {
    for (int r = r0; r < r0 + n; r++)
        attention_scores_row(A, probs + (size_t)r * T, A->acc + (size_t)r * T, r, T, H, hd, alpha);
    if (n == QA_ROW_GROUP) softmax_group(probs + (size_t)r0 * T, T);
    else
        for (int r = r0; r < r0 + n; r++) softmax_row(probs + (size_t)r * T, T);
    for (int r = r0; r < r0 + n; r++)
        A->psum[r] = qa_int8_quantize_row(probs + (size_t)r * T, A->pc + (size_t)r * T, T, A->p.delta, A->p.zero);
}

int qa_int8_attention_ready(const qa_int8_attention *A) {
    const qa_actq *qs[4] = {&A->q, &A->k, &A->v, &A->p};
    for (int i = 0; i < 4; i++)  /* whole zero points the row quantizer's +-512 clamp leaves exact */
        if (!qs[i]->calibrated || qs[i]->zero != nearbyintf(qs[i]->zero) || qs[i]->zero < -257.f || qs[i]->zero > 512.f)
            return 0;
    return 1;
}

/* The integer attention from A's codes (filled): out [B*T, C]; with next, each output row also
 * quantized for the integer layer next with its quantizer aq (next->xq, next->xsum). */
static void int8_attention_from_codes(qa_int8_attention *A, float *out, float *probs, qa_int8_linear *next,
                                      const qa_actq *aq, int B, int T, int C, int H) {
    const int hd = C / H;
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1), vs = square_view(B, H, T, 0);
    qa_matmul_u8s8_view(&vq, A->qc, &vkt, A->kc, &vs, A->acc);
    /* S = scale (q_hat . k_hat) = scale dq dk [sum (qq - zq)(kq - zk)], the bracket exact in int32 */
    const float alpha = A->q.delta * A->k.delta / sqrtf((float)hd);
    const int rows = B * H * T, groups = (rows + QA_ROW_GROUP - 1) / QA_ROW_GROUP;
    #pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        const int r0 = g * QA_ROW_GROUP;
        attention_probs_rows(A, probs, r0, rows - r0 < QA_ROW_GROUP ? rows - r0 : QA_ROW_GROUP, T, H, hd, alpha);
    }
    qa_view vv = head_view(B, T, C, H, 0);
    qa_matmul_u8s8_view(&vs, A->pc, &vv, A->vc, &vv, out);
    /* out = dp dv [sum_j (pq - zp)(vq - zv)] = dp dv [acc + cv psum - zp vsum - T zp cv], cv = 128 - zv */
    const int32_t zp = (int32_t)A->p.zero, cv = 128 - (int32_t)A->v.zero;
    const float scale = A->p.delta * A->v.delta;
    if (next) qa_int8_linear_reserve(next, B * T);
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < B * T; m++) {
        int b = m / T, i = m % T;
        float *o = out + (size_t)m * C;
        for (int c = 0; c < C; c++) {
            int32_t ps = A->psum[((size_t)b * H + c / hd) * T + i];
            int32_t s = (int32_t)o[c] + cv * ps - zp * A->vsum[(size_t)b * C + c] - T * zp * cv;
            o[c] = scale * (float)s;
        }
        if (next) next->xsum[m] = qa_int8_quantize_row(o, next->xq + (size_t)m * C, C, aq->delta, aq->zero);
    }
}

void qa_int8_attention_forward(qa_int8_attention *A, float *out, float *probs, const float *q, const float *k,
                               const float *v, int B, int T, int C, int H) {
    QA_ASSERT(qa_int8_attention_ready(A) && C / H <= QA_INT8_MAX_K && T <= QA_INT8_MAX_K);
    int8_attention_reserve(A, B, T, C, H);
    attention_codes(A, q, k, v, B, T, C, H);
    int8_attention_from_codes(A, out, probs, NULL, NULL, B, T, C, H);
}

void qa_int8_attention_forward_fused(qa_int8_attention *A, const qa_int8_linear *qkv, qa_int8_linear *next,
                                     const qa_actq *aq, float *out, float *probs, int B, int T, int C, int H) {
    QA_ASSERT(qa_int8_attention_ready(A) && C / H <= QA_INT8_MAX_K && T <= QA_INT8_MAX_K && next->in == C);
    int8_attention_reserve(A, B, T, C, H);
    attention_codes_from_qkv(A, qkv, B, T, C, H);
    int8_attention_from_codes(A, out, probs, next, aq, B, T, C, H);
}

#pragma GCC pop_options
