#include "harness/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

#include "harness/util.h"

/* Every dnnl call is checked; a failure here is an internal invariant violation (shapes are
 * validated upstream), so it aborts with the call, file and line. */
#define DNNL_CHECK(call)                                                                   \
    do {                                                                                   \
        dnnl_status_t s_ = (call);                                                         \
        if (s_ != dnnl_success) {                                                          \
            fprintf(stderr, "%s:%d: oneDNN call failed (status %d): %s\n", __FILE__,       \
                    __LINE__, (int)s_, #call);                                             \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

enum { MM_F32 = 0, MM_U8S8 = 1, MM_BF16 = 2 };

typedef struct {
    int kind;
    qa_view a, b, c;
    float alpha;
    int accumulate;
    int has_bias;
    int64_t n_scales;
    uint64_t scale_hash; /* FNV-1a of every static scale value: scales are baked into the primitive */
    const float *scale_ptr; /* read when the primitive is created; not part of the identity (NULL in stored keys) */
} mm_key;

typedef struct {
    mm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t mem_a, mem_b, mem_c, mem_bias;
    char impl[64];
} mm_entry;

#define MAX_PRIMS 512

static struct {
    int ready;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    mm_entry entries[MAX_PRIMS];
    int n_entries;
    int n_ref;
} be;

static void backend_init(void) {
    if (be.ready) return;
    DNNL_CHECK(dnnl_engine_create(&be.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&be.stream, be.engine, dnnl_stream_default_flags));
    be.ready = 1;
}

qa_view qa_view_2d(int64_t rows, int64_t cols, int transposed) {
    qa_view v = {{1, 1, rows, cols}, {0, 0, 0, 0}};
    if (!transposed) { v.strides[2] = cols; v.strides[3] = 1; }
    else { v.strides[2] = 1; v.strides[3] = rows; }
    v.strides[1] = rows * cols;
    v.strides[0] = rows * cols;
    return v;
}

static void view_md(dnnl_memory_desc_t *md, const qa_view *v, dnnl_data_type_t dt) {
    dnnl_dims_t dims, strides; /* the API reads full DNNL_MAX_NDIMS arrays */
    memset(dims, 0, sizeof dims);
    memset(strides, 0, sizeof strides);
    for (int i = 0; i < 4; i++) { dims[i] = v->dims[i]; strides[i] = v->strides[i]; }
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 4, dims, dt, strides));
}

static void destroy_entries(void) {
    for (int i = 0; i < be.n_entries; i++) {
        mm_entry *e = &be.entries[i];
        dnnl_primitive_destroy(e->prim);
        dnnl_memory_destroy(e->mem_a);
        dnnl_memory_destroy(e->mem_b);
        dnnl_memory_destroy(e->mem_c);
        if (e->mem_bias) dnnl_memory_destroy(e->mem_bias);
    }
    be.n_entries = 0;
}

static mm_entry *find_or_create(const mm_key *key_in) {
    mm_key id = *key_in;
    id.scale_ptr = NULL; /* equal scales at another address are the same primitive */
    for (int i = 0; i < be.n_entries; i++)
        if (memcmp(&be.entries[i].key, &id, sizeof id) == 0) return &be.entries[i];
    /* full (a long sweep meets many shapes): start the cache over rather than grow without bound */
    if (be.n_entries == MAX_PRIMS) destroy_entries();
    mm_entry *e = &be.entries[be.n_entries];
    memset(e, 0, sizeof *e);
    e->key = id;
    const mm_key *key = key_in;

    dnnl_memory_desc_t md_a, md_b, md_c, md_bias;
    int int8 = key->kind == MM_U8S8;
    dnnl_data_type_t dt_a = int8 ? dnnl_u8 : (key->kind == MM_BF16 ? dnnl_bf16 : dnnl_f32);
    view_md(&md_a, &key->a, dt_a);
    view_md(&md_b, &key->b, int8 ? dnnl_s8 : dt_a);
    view_md(&md_c, &key->c, dnnl_f32);
    if (key->has_bias) {
        dnnl_dims_t bd = {1, 1, 1, key->c.dims[3]};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md_bias, 4, bd, dnnl_f32, dnnl_abcd));
    }
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &md_a, &md_b, key->has_bias ? &md_bias : NULL, &md_c));

    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (int8) {
        DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, key->n_scales, key->n_scales > 1 ? 1 << 3 : 0,
                                                         key->scale_ptr));
    } else if (key->alpha != 1.0f) {
        DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha));
    }
    if (key->accumulate) {
        dnnl_post_ops_t po;
        DNNL_CHECK(dnnl_post_ops_create(&po));
        DNNL_CHECK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        DNNL_CHECK(dnnl_post_ops_destroy(po));
    }
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, be.engine, NULL));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    const char *impl = NULL;
    DNNL_CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    snprintf(e->impl, sizeof e->impl, "%s", impl ? impl : "?");
    if (strncmp(e->impl, "ref", 3) == 0) {
        be.n_ref++;
        fprintf(stderr, "warning: slow reference matmul kernel '%s' for [%lld,%lld]x[%lld,%lld]\n",
                    e->impl, (long long)key->a.dims[2], (long long)key->a.dims[3],
                    (long long)key->b.dims[2], (long long)key->b.dims[3]);
    }
    DNNL_CHECK(dnnl_primitive_create(&e->prim, pd));
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    DNNL_CHECK(dnnl_memory_create(&e->mem_a, &md_a, be.engine, DNNL_MEMORY_NONE));
    DNNL_CHECK(dnnl_memory_create(&e->mem_b, &md_b, be.engine, DNNL_MEMORY_NONE));
    DNNL_CHECK(dnnl_memory_create(&e->mem_c, &md_c, be.engine, DNNL_MEMORY_NONE));
    if (key->has_bias)
        DNNL_CHECK(dnnl_memory_create(&e->mem_bias, &md_bias, be.engine, DNNL_MEMORY_NONE));
    be.n_entries++;
    return e;
}

static void execute(mm_entry *e, const void *A, const void *B, void *C, const float *bias) {
    DNNL_CHECK(dnnl_memory_set_data_handle(e->mem_a, (void *)A));
    DNNL_CHECK(dnnl_memory_set_data_handle(e->mem_b, (void *)B));
    DNNL_CHECK(dnnl_memory_set_data_handle(e->mem_c, C));
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, e->mem_a}, {DNNL_ARG_WEIGHTS, e->mem_b}, {DNNL_ARG_DST, e->mem_c}, {0, NULL}};
    int nargs = 3;
    if (bias) {
        DNNL_CHECK(dnnl_memory_set_data_handle(e->mem_bias, (void *)bias));
        args[3].arg = DNNL_ARG_BIAS;
        args[3].memory = e->mem_bias;
        nargs = 4;
    }
    DNNL_CHECK(dnnl_primitive_execute(e->prim, be.stream, nargs, args));
    DNNL_CHECK(dnnl_stream_wait(be.stream));
}

/* A floating-point matmul (f32 or bf16 operands, f32 destination) over strided views. */
static void matmul_float(int kind, const qa_view *a, const void *A, const qa_view *b, const void *B,
                         const qa_view *c, float *C, float alpha, int accumulate, const float *bias) {
    backend_init();
    QA_ASSERT(a->dims[3] == b->dims[2] && a->dims[2] == c->dims[2] && b->dims[3] == c->dims[3]);
    mm_key key;
    memset(&key, 0, sizeof key); /* padding must compare equal */
    key.kind = kind;
    key.a = *a; key.b = *b; key.c = *c;
    key.alpha = alpha;
    key.accumulate = accumulate;
    key.has_bias = bias != NULL;
    execute(find_or_create(&key), A, B, C, bias);
}

void qa_matmul_view(const qa_view *a, const float *A, const qa_view *b, const float *B,
                    const qa_view *c, float *C, float alpha, int accumulate, const float *bias) {
    matmul_float(MM_F32, a, A, b, B, c, C, alpha, accumulate, bias);
}

void qa_matmul_view_bf16(const qa_view *a, const qa_bf16 *A, const qa_view *b, const qa_bf16 *B, const qa_view *c,
                         float *C, float alpha, int accumulate, const float *bias) {
    matmul_float(MM_BF16, a, A, b, B, c, C, alpha, accumulate, bias);
}

/* The 2-D views of C[M,N] = op(A)·op(B): op = the transpose of the stored matrix when trans. */
static void views_2d(int M, int N, int K, int transA, int transB, qa_view *va, qa_view *vb, qa_view *vc) {
    *va = qa_view_2d(M, K, transA);
    *vb = qa_view_2d(K, N, transB);
    *vc = qa_view_2d(M, N, 0);
}

void qa_matmul(int M, int N, int K, const float *A, int transA, const float *B, int transB,
               float *C, int accumulate, const float *bias) {
    qa_view va, vb, vc;
    views_2d(M, N, K, transA, transB, &va, &vb, &vc);
    matmul_float(MM_F32, &va, A, &vb, B, &vc, C, 1.0f, accumulate, bias);
}

void qa_matmul_bf16(int M, int N, int K, const qa_bf16 *A, int transA, const qa_bf16 *B, int transB,
                    float *C, int accumulate, const float *bias) {
    qa_view va, vb, vc;
    views_2d(M, N, K, transA, transB, &va, &vb, &vc);
    matmul_float(MM_BF16, &va, A, &vb, B, &vc, C, 1.0f, accumulate, bias);
}

/* Elements per parallel chunk of a conversion, and the size below which one thread does it all
 * (a weight matrix or a batch of conditioning vectors: the fork costs more than the pass). */
enum { CONVERT_CHUNK = 16384 };

/* An elementwise pass written here rather than as a oneDNN reorder: it is called ~150 times per
 * bf16 training step on buffers of 10^4-10^6 elements, where a primitive's execute and stream
 * wait cost as much as the pass itself. The same rounding (the tests check it value by value). */
static void convert_chunk(qa_bf16 *restrict dst, const float *restrict src, size_t n) {
    size_t i = 0;
#ifdef __AVX512BF16__
    for (; i + 16 <= n; i += 16) { /* vcvtneps2bf16: what oneDNN's reorder runs on this CPU */
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
#endif
    for (; i < n; i++) dst[i] = qa_bf16_round(src[i]);
}

void qa_convert_to_bf16(qa_bf16 *dst, const float *src, size_t n) {
    if (n <= CONVERT_CHUNK) { convert_chunk(dst, src, n); return; }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += CONVERT_CHUNK) convert_chunk(dst + i, src + i, n - i < CONVERT_CHUNK ? n - i : CONVERT_CHUNK);
}

int qa_matmul_u8s8(int M, int N, int K, const uint8_t *A, const int8_t *B, const float *scale,
                   float *C) {
    backend_init();
    mm_key key;
    memset(&key, 0, sizeof key);
    key.kind = MM_U8S8;
    key.a = qa_view_2d(M, K, 0);
    key.b = qa_view_2d(K, N, 1);
    key.c = qa_view_2d(M, N, 0);
    key.alpha = 1.0f;
    key.n_scales = N;
    key.scale_ptr = scale;
    uint64_t h = 1469598103934665603ull;
    const unsigned char *bytes = (const unsigned char *)scale;
    for (size_t i = 0; i < sizeof(float) * (size_t)N; i++) h = (h ^ bytes[i]) * 1099511628211ull;
    key.scale_hash = h;
    execute(find_or_create(&key), A, B, C, NULL);
    return 0;
}

int qa_matmul_u8s8_view(const qa_view *a, const uint8_t *A, const qa_view *b, const int8_t *B, const qa_view *c,
                        float *C) {
    backend_init();
    QA_ASSERT(a->dims[3] == b->dims[2] && a->dims[2] == c->dims[2] && b->dims[3] == c->dims[3]);
    static const float unit = 1.0f;
    mm_key key;
    memset(&key, 0, sizeof key);
    key.kind = MM_U8S8;
    key.a = *a; key.b = *b; key.c = *c;
    key.alpha = 1.0f;
    key.n_scales = 1;
    key.scale_ptr = &unit;
    execute(find_or_create(&key), A, B, C, NULL);
    return 0;
}

void qa_backend_kernels(char *buf, size_t len) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < be.n_entries && n + 1 < len; i++) {
        if (strstr(buf, be.entries[i].impl)) continue;
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ";" : "", be.entries[i].impl);
        if (n >= len) { buf[len - 1] = 0; break; }
    }
}

const char *qa_backend_version(char *buf, size_t len) {
    const dnnl_version_t *ver = dnnl_version();
    snprintf(buf, len, "oneDNN %d.%d.%d (%s)", ver->major, ver->minor, ver->patch, ver->hash);
    return buf;
}

int qa_backend_ref_kernels(void) { return be.n_ref; }

int qa_backend_cached(void) { return be.n_entries; }

void qa_backend_shutdown(void) {
    destroy_entries();
    if (be.ready) {
        dnnl_stream_destroy(be.stream);
        dnnl_engine_destroy(be.engine);
    }
    be.ready = 0;
}
