#include "methods/frozen_codes.h"

#include <string.h>

#include "harness/util.h"

size_t qa_frozen_codes_bytes(size_t n, int bits) {
    if (bits > 8) return 2 * n;
    if (bits > 4) return n;
    return (n * (size_t)bits + 7) / 8;
}

void qa_frozen_codes_alloc(qa_frozen_codes *c, size_t n, int bits) {
    QA_ASSERT(bits >= 1 && bits <= 16);
    c->n = n;
    c->bits = bits;
    c->data = qa_alloc(qa_frozen_codes_bytes(n, bits)); /* zeroed: the packed writes OR into it */
}

void qa_frozen_codes_free(qa_frozen_codes *c) {
    qa_free(c->data);
    memset(c, 0, sizeof *c);
}

void qa_frozen_codes_pack(qa_frozen_codes *c, const int32_t *q) {
    const int32_t qmax = (1 << c->bits) - 1;
    if (c->bits <= 4) memset(c->data, 0, qa_frozen_codes_bytes(c->n, c->bits));
    for (size_t i = 0; i < c->n; i++) {
        QA_ASSERT(q[i] >= 0 && q[i] <= qmax);
        if (c->bits > 8) {
            ((uint16_t *)(void *)c->data)[i] = (uint16_t)q[i];
        } else if (c->bits > 4) {
            c->data[i] = (uint8_t)q[i];
        } else {
            const size_t bit = i * (size_t)c->bits;
            const uint32_t v = (uint32_t)q[i] << (bit & 7); /* at most 4 + 7 bits */
            c->data[bit >> 3] |= (uint8_t)(v & 0xFFu);
            if (v >> 8) c->data[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
        }
    }
}

void qa_frozen_codes_unpack(const qa_frozen_codes *c, size_t first, size_t count, int32_t *q) {
    QA_ASSERT(first + count <= c->n);
    for (size_t i = 0; i < count; i++) q[i] = (int32_t)qa_frozen_codes_get(c, first + i);
}

void qa_frozen_codes_row_minus(const qa_frozen_codes *c, size_t first, size_t count, float zero, float *out) {
    QA_ASSERT(first + count <= c->n);
    if (c->bits > 8) {
        const uint16_t *d = (const uint16_t *)(const void *)c->data + first;
        for (size_t j = 0; j < count; j++) out[j] = (float)d[j] - zero;
    } else if (c->bits > 4) {
        const uint8_t *d = c->data + first;
        for (size_t j = 0; j < count; j++) out[j] = (float)d[j] - zero;
    } else if (c->bits == 4) { /* two per byte, the even code in the low nibble: whole bytes at a time */
        size_t j = 0;
        if (count && (first & 1)) out[j++] = (float)(c->data[first >> 1] >> 4) - zero;
        const uint8_t *d = c->data + ((first + j) >> 1);
        for (; j + 1 < count; j += 2, d++) {
            out[j] = (float)(*d & 15u) - zero;
            out[j + 1] = (float)(*d >> 4) - zero;
        }
        if (j < count) out[j] = (float)(*d & 15u) - zero;
    } else {
        for (size_t j = 0; j < count; j++) out[j] = (float)qa_frozen_codes_get(c, first + j) - zero;
    }
}
