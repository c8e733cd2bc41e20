#include "harness/nn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness/backend.h"
#include "harness/util.h"

void linear_forward(float *y, const float *x, const float *W, const float *b, int M, int in, int out) {
    qa_matmul(M, out, in, x, 0, W, 1, y, 0, b);
}

/* db[out] += sum over the M rows of dy[M,out] */
static void bias_backward(float *db, const float *dy, int M, int out) {
    for (int m = 0; m < M; m++) {
        const float *row = dy + (size_t)m * out;
        for (int o = 0; o < out; o++) db[o] += row[o];
    }
}

void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
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

void linear_bf16_init(qa_linear_bf16 *c, int max_rows, int in, int out) {
    c->max_rows = max_rows; c->in = in; c->out = out; c->rows = 0; c->x_used = NULL;
    c->x = qa_alloc(sizeof(qa_bf16) * (size_t)max_rows * in);
    c->W = qa_alloc(sizeof(qa_bf16) * (size_t)out * in);
    c->dy = qa_alloc(sizeof(qa_bf16) * (size_t)max_rows * out);
}

void linear_bf16_free(qa_linear_bf16 *c) {
    qa_free(c->x); qa_free(c->W); qa_free(c->dy);
    memset(c, 0, sizeof *c);
}

size_t linear_bf16_bytes(const qa_linear_bf16 *c) {
    if (!c->x) return 0;
    return sizeof(qa_bf16) * ((size_t)c->max_rows * c->in + (size_t)c->out * c->in + (size_t)c->max_rows * c->out);
}

void linear_forward_bf16_on(qa_linear_bf16 *c, float *y, const qa_bf16 *x_bf16, const float *W, const float *b, int M) {
    QA_ASSERT(c->x && M <= c->max_rows);
    qa_convert_to_bf16(c->W, W, (size_t)c->out * c->in);
    c->rows = M;
    c->x_used = x_bf16;
    qa_matmul_bf16(M, c->out, c->in, x_bf16, 0, c->W, 1, y, 0, b);
}

void linear_forward_bf16(qa_linear_bf16 *c, float *y, const float *x, const float *W, const float *b, int M) {
    QA_ASSERT(c->x && M <= c->max_rows);
    qa_convert_to_bf16(c->x, x, (size_t)M * c->in);
    linear_forward_bf16_on(c, y, c->x, W, b, M);
}

void linear_backward_bf16(qa_linear_bf16 *c, float *dx, float *dW, float *db, const float *dy, int M) {
    QA_ASSERT(c->x && M == c->rows);
    if (dx || dW) qa_convert_to_bf16(c->dy, dy, (size_t)M * c->out);
    if (dx) qa_matmul_bf16(M, c->in, c->out, c->dy, 0, c->W, 0, dx, 1, NULL);  /* [M,out]·[out,in] */
    if (dW) qa_matmul_bf16(c->out, c->in, M, c->dy, 1, c->x_used, 0, dW, 1, NULL);  /* [out,M]·[M,in] */
    if (db) bias_backward(db, dy, M, c->out);
}

void layernorm_forward(float *y, float *mean, float *rstd, const float *x, int M, int C) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * C;
        float *yr = y + (size_t)m * C;
        float mu = 0.f;
        for (int c = 0; c < C; c++) mu += xr[c];
        mu /= (float)C;
        float var = 0.f;
        for (int c = 0; c < C; c++) { float d = xr[c] - mu; var += d * d; }
        var /= (float)C;
        float rs = 1.0f / sqrtf(var + 1e-6f);
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs;
        mean[m] = mu;
        rstd[m] = rs;
    }
}

void layernorm_backward(float *dx, const float *dy, const float *x, const float *mean,
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

void modulate_forward(float *y, const float *x, const float *shift, const float *scale,
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

void modulate_backward(float *dx, float *dshift, float *dscale, const float *dy, const float *x,
                       const float *scale, int cond_stride, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *sc = scale + (size_t)b * cond_stride;
        float *dsh = dshift + (size_t)b * cond_stride, *dsc = dscale + (size_t)b * cond_stride;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) {
                float g = dy[off + c];
                dx[off + c] += g * (1.0f + sc[c]);
                dsh[c] += g;
                dsc[c] += g * x[off + c];
            }
        }
    }
}

void gated_residual_forward(float *x, const float *y, const float *gate, int cond_stride, int B,
                            int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        const float *g = gate + (size_t)(bt / T) * cond_stride;
        float *xr = x + (size_t)bt * C;
        const float *yr = y + (size_t)bt * C;
        for (int c = 0; c < C; c++) xr[c] += g[c] * yr[c];
    }
}

void gated_residual_backward(float *dy, float *dgate, const float *dx, const float *y,
                             const float *gate, int cond_stride, int B, int T, int C) {
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *g = gate + (size_t)b * cond_stride;
        float *dg = dgate + (size_t)b * cond_stride;
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) {
                dy[off + c] += g[c] * dx[off + c];
                dg[c] += dx[off + c] * y[off + c];
            }
        }
    }
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

void gelu_forward(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = v * sigmoid_fast(2.0f * GELU_K * (v + 0.044715f * v * v * v));
    }
}

void gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_K * (v + 0.044715f * v * v * v);
        float th = 2.0f * sigmoid_fast(2.0f * u) - 1.0f; /* tanh(u) */
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) + 0.5f * v * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] += grad * dy[i];
    }
}

void silu_forward(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoid_fast(x[i]);
}

void silu_backward(float *dx, const float *dy, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = sigmoid_fast(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void relu_forward(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

void relu_backward(float *dx, const float *dy, const float *x, size_t n) {
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

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       int B, int T, int C, int H) {
    int hd = C / H;
    float scale = 1.0f / sqrtf((float)hd);
    qa_view vq = head_view(B, T, C, H, 0), vkt = head_view(B, T, C, H, 1);
    qa_view vs = square_view(B, H, T, 0);
    qa_matmul_view(&vq, q, &vkt, k, &vs, probs, scale, 0, NULL);
    size_t rows = (size_t)B * H * T;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *p = probs + r * T;
        float mx = p[0];
        for (int j = 1; j < T; j++) mx = p[j] > mx ? p[j] : mx;
        float sum = 0.f;
        for (int j = 0; j < T; j++) { p[j] = exp_fast(p[j] - mx); sum += p[j]; }
        float inv = 1.0f / sum;
        for (int j = 0; j < T; j++) p[j] *= inv;
    }
    qa_view vv = head_view(B, T, C, H, 0), vo = head_view(B, T, C, H, 0);
    qa_matmul_view(&vs, probs, &vv, v, &vo, out, 1.0f, 0, NULL);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
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

void timestep_features(float *y, const float *t, int B, int C) {
    int half = C / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            float f = expf(-logf(10000.0f) * (float)i / (float)half);
            y[(size_t)b * C + i] = cosf(t[b] * f);
            y[(size_t)b * C + half + i] = sinf(t[b] * f);
        }
}

void embedding_forward(float *y, const float *table, const int *ids, int B, int C) {
    for (int b = 0; b < B; b++) memcpy(y + (size_t)b * C, table + (size_t)ids[b] * C, sizeof(float) * C);
}

void embedding_backward(float *dtable, const float *dy, const int *ids, int B, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) dtable[(size_t)ids[b] * C + c] += dy[(size_t)b * C + c];
}

float softmax_xent_forward_backward(float *dlogits, float *probs, const float *logits,
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

void vec_add(float *y, const float *x, size_t n) { for (size_t i = 0; i < n; i++) y[i] += x[i]; }
void vec_scale(float *y, float s, size_t n) { for (size_t i = 0; i < n; i++) y[i] *= s; }
