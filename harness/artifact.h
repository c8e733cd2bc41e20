/* The deployed artifact of a run: every adapted layer written as it would ship, its codes
 * packed to their bit width and its side information at its stored precision, so that storage
 * is a measured file size, not a formula. */
#ifndef QA_ARTIFACT_H
#define QA_ARTIFACT_H

#include "harness/model.h"
#include "harness/registry.h"

typedef struct {
    double file_bytes;      /* the HDF5 file on disk, metadata included */
    double payload_bytes;   /* the datasets' stored bytes alone */
    double weights;         /* weights of the adapted layers */
    int float_layers;       /* layers stored as float32 weights (no integer form) */
} qa_artifact_size;

/* Per adapted layer (dep[k] for the k-th adapted slot of m), under /layers/<name>:
 *   - the method's own stored tensors (qa_deployed.stored), if it lists them;
 *   - else integer codes w_int at the narrowest signed width that holds them + row_scale (f32);
 *   - else, with ptq_bits > 0, the PTQ codes of w_fp (section-0 quantizer, unsigned ptq_bits)
 *     + delta and zero per row (f32): what the INT (+PTQ) deploy runs;
 *   - else the float32 weights (counted in float_layers).
 * Biases are left out: FP32 and the same for every method. */
int qa_artifact_write(const char *path, const qa_dit *m, const qa_deployed *dep, int ptq_bits, qa_artifact_size *size,
                   qa_error *err);

/* Smallest two's-complement width that holds every value of v. */
int qa_artifact_signed_bits(const int32_t *v, size_t n);

#endif
