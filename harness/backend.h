/* The oneDNN backend: the only unit that includes dnnl.h.
 * A process-wide engine and stream, and a cache of matmul primitives keyed by shape, layout and
 * attributes: each distinct matmul is created once (JIT ~1 ms) and reused for every call. */
#ifndef QA_BACKEND_H
#define QA_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A 4-D strided view [b0, b1, rows, cols] of an f32 (or int8) buffer; strides in elements. */
typedef struct {
    int64_t dims[4];
    int64_t strides[4];
} qa_view;

/* Dense row-major [rows, cols]; transposed = the buffer holds [cols, rows] and we view it. */
qa_view qa_view_2d(int64_t rows, int64_t cols, int transposed);

/* C = alpha * A·B (+ C when accumulate) (+ bias[N] broadcast over rows when bias != NULL).
 * A is [.., M, K], B is [.., K, N], C is [.., M, N]; the batch dims of A and B broadcast. */
void qa_matmul_view(const qa_view *a, const float *A, const qa_view *b, const float *B,
                    const qa_view *c, float *C, float alpha, int accumulate, const float *bias);

/* The common 2-D case: C[M,N] (+)= op(A)·op(B) (+ bias). op(A) = A [M,K] or, with transA, the
 * transpose of a stored [K,M]; op(B) = B [K,N] or, with transB, the transpose of a stored [N,K].
 * A linear layer y = x W^T + b is qa_matmul(M, out, in, x, 0, W, 1, y, 0, b). */
void qa_matmul(int M, int N, int K, const float *A, int transA, const float *B, int transB,
               float *C, int accumulate, const float *bias);

/* bf16 storage: the upper 16 bits of an f32 (8 significant bits), as oneDNN's dnnl_bf16. */
typedef uint16_t qa_bf16;

/* dst[i] = src[i] rounded to bf16 (round to nearest even), split over the threads when long. */
void qa_convert_to_bf16(qa_bf16 *dst, const float *src, size_t n);

/* One value rounded as qa_convert_to_bf16 rounds it on this CPU (AVX512-BF16's conversion): to
 * nearest even, NaN kept (quiet), subnormal inputs to a zero of their sign. For the loops that
 * compute a tensor and write its bf16 copy in the same pass (no second pass over memory). */
static inline qa_bf16 qa_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t h = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;              /* ties to even */
    h = (u & 0x7FFFFFFFu) > 0x7F800000u ? (u >> 16) | 0x40u : h;      /* NaN */
    h = (u & 0x7F800000u) == 0 ? (u >> 16) & 0x8000u : h;             /* zero, subnormal */
    return (qa_bf16)h;                                                /* (selects, so loops vectorise) */
}

/* qa_matmul with bf16 operands: C[M,N] (f32) (+)= op(A)·op(B) (+ bias, f32), the products
 * accumulated in f32 (oneDNN's bf16 matmul; brgemm with AVX512-BF16 where the CPU has it). */
void qa_matmul_bf16(int M, int N, int K, const qa_bf16 *A, int transA, const qa_bf16 *B, int transB,
                    float *C, int accumulate, const float *bias);

/* qa_matmul_view with bf16 operands (f32 accumulation, f32 C and bias): attention's per-head products. */
void qa_matmul_view_bf16(const qa_view *a, const qa_bf16 *A, const qa_view *b, const qa_bf16 *B, const qa_view *c,
                         float *C, float alpha, int accumulate, const float *bias);

/* Integer matmul for deployed W8A8 layers: C[M,N] (f32) = scale[n] * (A_u8[M,K] · B_s8[N,K]^T)
 * accumulated in s32; per-column scales are static (baked into the primitive, cached by pointer
 * contents). Returns 0, or -1 when this oneDNN cannot express it. */
int qa_matmul_u8s8(int M, int N, int K, const uint8_t *A, const int8_t *B, const float *scale,
                   float *C);

/* The batched strided form, unit scale: C[.., M, N] (f32) = A_u8[.., M, K] · B_s8[.., K, N]
 * accumulated in s32 (integer attention: per-head views of token-major buffers). */
int qa_matmul_u8s8_view(const qa_view *a, const uint8_t *A, const qa_view *b, const int8_t *B, const qa_view *c,
                        float *C);

/* Kernel names ("brg:avx512_core", ...) of every primitive created so far, ';'-separated. */
void qa_backend_kernels(char *buf, size_t len);
const char *qa_backend_version(char *buf, size_t len); /* into buf, which it returns */
int qa_backend_ref_kernels(void); /* how many primitives fell back to a slow reference kernel */
int qa_backend_cached(void);      /* primitives in the cache now (it starts over when full) */
void qa_backend_shutdown(void);

#endif
