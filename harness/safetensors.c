#include "harness/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

/* The format's dtypes and their sizes in bytes. */
static const struct { const char *name; int bytes; } st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
    {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

static int dtype_bytes(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, name)) return st_dtypes[i].bytes;
    return 0;
}

float qa_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* infinity, NaN (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13); /* rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign; /* signed zero */
    } else { /* subnormal: normalise the mantissa */
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float qa_bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int64_t qa_st_numel(const qa_st_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* One header entry into t; the shape's byte size checked against its data_offsets. */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_bytes, qa_st_tensor *t,
                       qa_error *err) {
    if (!json_is_object(v)) return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': entry is not a JSON object", path, name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
        return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': needs \"dtype\" (string), \"shape\" and \"data_offsets\" (arrays)",
                       path, name);
    t->elem_bytes = dtype_bytes(json_string_value(dt));
    if (!t->elem_bytes) return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': unknown dtype '%s'", path, name, json_string_value(dt));
    snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dt));
    if (json_array_size(shape) > QA_ST_MAX_DIMS)
        return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': more than %d dimensions", path, name, QA_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t bytes = (uint64_t)t->elem_bytes;
    for (int d = 0; d < t->ndim; d++) {
        json_t *e = json_array_get(shape, (size_t)d);
        json_int_t n = json_is_integer(e) ? json_integer_value(e) : -1;
        if (n < 0) return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': shape entries must be integers >= 0", path, name);
        t->shape[d] = n;
        if (n > 0 && bytes > UINT64_MAX / (uint64_t)n)
            return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': shape too large", path, name);
        bytes *= (uint64_t)n;
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end", path,
                       name);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if (t->end - t->begin != bytes)
        return qa_fail(err, QA_ERR_INPUT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape x %s needs %llu (dtype or shape "
                       "mismatch)", path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), t->dtype, (unsigned long long)bytes);
    if (t->end > data_bytes)
        return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s': data_offsets end %llu is past the end of the file (%llu data bytes)",
                       path, name, (unsigned long long)t->end, (unsigned long long)data_bytes);
    return QA_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const qa_st_tensor *x = *(const qa_st_tensor *const *)a, *y = *(const qa_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* No two tensors share a byte (empty tensors take none). */
static int check_overlaps(const qa_safetensors *st, qa_error *err) {
    const qa_st_tensor **order = qa_alloc(sizeof(*order) * (size_t)(st->n_tensors + 1));
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n_tensors, sizeof *order, cmp_begin);
    int rc = QA_OK;
    const qa_st_tensor *prev = NULL;
    for (int i = 0; i < st->n_tensors && !rc; i++) {
        const qa_st_tensor *t = order[i];
        if (t->end == t->begin) continue;
        if (prev && t->begin < prev->end)
            rc = qa_fail(err, QA_ERR_INPUT, "%s: tensors '%s' and '%s' overlap (bytes [%llu, %llu) and [%llu, %llu))",
                         st->path, prev->name, t->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                         (unsigned long long)t->begin, (unsigned long long)t->end);
        prev = t;
    }
    qa_free(order);
    return rc;
}

/* The header's length and text; data_start and data_bytes set. */
static int read_header(FILE *f, qa_safetensors *st, char **text, size_t *len, qa_error *err) {
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot stat", st->path);
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char le[8];
    if (size < 8 || fread(le, 1, 8, f) != 8)
        return qa_fail(err, QA_ERR_INPUT, "%s: not a safetensors file (shorter than the 8-byte header length)", st->path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | le[i];
    if (n > size - 8)
        return qa_fail(err, QA_ERR_INPUT, "%s: header length %llu is past the end of the file (%llu bytes)", st->path,
                       (unsigned long long)n, (unsigned long long)size);
    if (n == 0) return qa_fail(err, QA_ERR_INPUT, "%s: empty header", st->path);
    *text = malloc((size_t)n);
    if (!*text) return qa_fail(err, QA_ERR_INPUT, "%s: header of %llu bytes does not fit in memory", st->path, (unsigned long long)n);
    if (fread(*text, 1, (size_t)n, f) != n) {
        free(*text);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot read the header", st->path);
    }
    *len = (size_t)n;
    st->data_start = 8 + n;
    st->data_bytes = size - 8 - n;
    return QA_OK;
}

/* Every entry of the parsed header object into st->tensors. */
static int parse_header(json_t *root, qa_safetensors *st, qa_error *err) {
    st->tensors = qa_alloc(sizeof(qa_st_tensor) * (json_object_size(root) + 1));
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(value)) return qa_fail(err, QA_ERR_INPUT, "%s: __metadata__ is not a JSON object", st->path);
            continue;
        }
        qa_st_tensor *t = &st->tensors[st->n_tensors];
        t->name = strdup(key);
        if (!t->name) return qa_fail(err, QA_ERR_RUN, "out of memory");
        st->n_tensors++;
        int rc = parse_entry(st->path, key, value, st->data_bytes, t, err);
        if (rc) return rc;
    }
    return check_overlaps(st, err);
}

int qa_safetensors_open(const char *path, qa_safetensors *st, qa_error *err) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open", path);
    char *text = NULL;
    size_t len = 0;
    int rc = read_header(f, st, &text, &len, err);
    fclose(f);
    if (rc) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) return qa_fail(err, QA_ERR_INPUT, "%s: header is not valid JSON (%s, at byte %d)", path, jerr.text, jerr.position);
    if (!json_is_object(root)) rc = qa_fail(err, QA_ERR_INPUT, "%s: header is not a JSON object", path);
    else rc = parse_header(root, st, err);
    json_decref(root);
    if (rc) qa_safetensors_close(st);
    return rc;
}

void qa_safetensors_close(qa_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    qa_free(st->tensors);
    st->tensors = NULL;
    st->n_tensors = 0;
}

const qa_st_tensor *qa_safetensors_find(const qa_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int qa_safetensors_read_f32(const qa_safetensors *st, const qa_st_tensor *t, float *out, qa_error *err) {
    int is_f32 = !strcmp(t->dtype, "F32"), is_f16 = !strcmp(t->dtype, "F16"), is_bf16 = !strcmp(t->dtype, "BF16");
    if (!is_f32 && !is_f16 && !is_bf16)
        return qa_fail(err, QA_ERR_INPUT, "%s: tensor '%s' is %s; F32, F16 and BF16 can be read", st->path, t->name, t->dtype);
    size_t n = (size_t)qa_st_numel(t), bytes = (size_t)(t->end - t->begin);
    unsigned char *raw = malloc(bytes ? bytes : 1);
    if (!raw) return qa_fail(err, QA_ERR_RUN, "%s: tensor '%s' does not fit in memory", st->path, t->name);
    FILE *f = fopen(st->path, "rb");
    int ok = f && fseeko(f, (off_t)(st->data_start + t->begin), SEEK_SET) == 0 && fread(raw, 1, bytes, f) == bytes;
    if (f) fclose(f);
    if (!ok) {
        free(raw);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot read tensor '%s' (file changed or truncated?)", st->path, t->name);
    }
    for (size_t i = 0; i < n; i++) { /* little-endian, whatever the host */
        const unsigned char *p = raw + i * (size_t)t->elem_bytes;
        if (is_f32) {
            uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&out[i], &bits, sizeof bits);
        } else {
            uint16_t h = (uint16_t)(p[0] | p[1] << 8);
            out[i] = is_f16 ? qa_half_to_float(h) : qa_bf16_to_float(h);
        }
    }
    free(raw);
    return QA_OK;
}
