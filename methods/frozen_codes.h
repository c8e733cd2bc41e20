/* Frozen integer codes of a quantized base, held as integers (not as float):
 *   bits 1..4    packed: code i occupies bits [i N, i N + N) of the byte stream, least significant
 *                bit first (a 3-bit code may straddle two bytes); (n N + 7) / 8 bytes
 *   bits 5..8    one uint8 per code; n bytes
 *   bits 9..16   one uint16 per code (host order); 2 n bytes
 * Codes are unsigned, 0 .. 2^N - 1; a method dequantizes them (delta (q - z), in float, exactly as
 * it would from a float copy of q: every such q is exact in float). The storage is filled once at
 * init by qa_frozen_codes_pack (serially: neighbouring codes may share a byte). */
#ifndef QA_METHODS_FROZEN_CODES_H
#define QA_METHODS_FROZEN_CODES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;        /* codes held */
    int bits;        /* N, 1..16 */
    uint8_t *data;   /* qa_frozen_codes_bytes(n, bits) bytes */
} qa_frozen_codes;

/* Bytes that n codes of N bits take in this storage. */
size_t qa_frozen_codes_bytes(size_t n, int bits);
/* Allocate zeroed storage for n codes of N bits (1 <= N <= 16). */
void qa_frozen_codes_alloc(qa_frozen_codes *c, size_t n, int bits);
void qa_frozen_codes_free(qa_frozen_codes *c);
/* Store q[0..n) (each in 0 .. 2^N - 1, asserted). */
void qa_frozen_codes_pack(qa_frozen_codes *c, const int32_t *q);

/* Code i. */
static inline uint32_t qa_frozen_codes_get(const qa_frozen_codes *c, size_t i) {
    if (c->bits > 8) return ((const uint16_t *)(const void *)c->data)[i];
    if (c->bits > 4) return c->data[i];
    const size_t bit = i * (size_t)c->bits;
    const unsigned shift = (unsigned)(bit & 7), mask = (1u << c->bits) - 1u;
    uint32_t v = c->data[bit >> 3];
    if (shift + (unsigned)c->bits > 8) v |= (uint32_t)c->data[(bit >> 3) + 1] << 8; /* straddles two bytes */
    return (v >> shift) & mask;
}

/* The codes first .. first + count - 1 as int32 (for a deploy or an inspection). */
void qa_frozen_codes_unpack(const qa_frozen_codes *c, size_t first, size_t count, int32_t *q);

/* The codes first .. first + count - 1 less a zero point, in float: out[j] = (float)q - zero, the
 * same float as from a float copy of q (exact for any N <= 16). A row decoded into scratch, the
 * width resolved once per call rather than once per code, for a method that decodes its base
 * row by row in every pass. */
void qa_frozen_codes_row_minus(const qa_frozen_codes *c, size_t first, size_t count, float zero, float *out);

#endif
