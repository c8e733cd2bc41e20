/* Reading model weights in the safetensors format:
 *   8 bytes      N, the header length (unsigned 64-bit little-endian)
 *   N bytes      a JSON object: for each tensor name {"dtype": "F16", "shape": [out, in],
 *                "data_offsets": [begin, end]} (offsets relative to the data section), and an
 *                optional "__metadata__" object of strings
 *   the rest     the data section: each tensor's bytes, little-endian, row-major
 * The header is parsed with libjansson and checked in full when the file is opened: a header
 * length past the end of the file, JSON that does not parse or is not an object, a tensor entry
 * without dtype / shape / data_offsets, an unknown dtype, data_offsets that do not span shape x
 * the dtype's size, an offset past the end of the file and two tensors whose bytes overlap are
 * each an input error (QA_ERR_INPUT) naming the file and the tensor. Values are read as float
 * from F32, F16 and BF16 tensors. */
#ifndef QA_SAFETENSORS_H
#define QA_SAFETENSORS_H

#include <stdint.h>

#include "harness/util.h"

#define QA_ST_MAX_DIMS 8

typedef struct {
    char *name;                    /* owned */
    char dtype[8];                 /* "F32", "F16", "BF16", "I64", ... */
    int elem_bytes;
    int ndim;
    int64_t shape[QA_ST_MAX_DIMS];
    uint64_t begin, end;           /* byte range in the data section */
} qa_st_tensor;

typedef struct {
    char path[512];
    uint64_t data_start;           /* 8 + header length */
    uint64_t data_bytes;           /* bytes after the header */
    qa_st_tensor *tensors;         /* in header order */
    int n_tensors;
} qa_safetensors;

/* Open and validate; on failure nothing is left to close. */
int qa_safetensors_open(const char *path, qa_safetensors *st, qa_error *err);
void qa_safetensors_close(qa_safetensors *st);
/* The tensor of that name, or NULL. */
const qa_st_tensor *qa_safetensors_find(const qa_safetensors *st, const char *name);
/* Number of elements (product of the shape). */
int64_t qa_st_numel(const qa_st_tensor *t);
/* All elements of t as float into out[numel] (F32, F16 or BF16; other dtypes are an input error). */
int qa_safetensors_read_f32(const qa_safetensors *st, const qa_st_tensor *t, float *out, qa_error *err);
/* IEEE binary16 and bfloat16 bits to float (every value, subnormals, infinities and NaN). */
float qa_half_to_float(uint16_t h);
float qa_bf16_to_float(uint16_t b);

#endif
