/* The frozen-code storage (methods/frozen_codes.h): hand-packed bytes for the packed widths, and
 * a round trip of random codes at every width 1..16 (each code, a range as int32, a row less a zero
 * point as float) with the storage's size. */
#include <criterion/criterion.h>
#include <string.h>

#include "methods/frozen_codes.h"
#include "harness/util.h"
#include "tests/common.h"

/* 3-bit codes 5, 2, 7, 1 least significant bit first: bits 101 010 111 001 ->
 * byte 0 = (5) | (2 << 3) | (7 << 6 & 0xFF) = 0b11010101 = 0xD5, byte 1 = (7 >> 2) | (1 << 1) = 0x03. */
Test(frozen_codes, hand_packed_three_bits_straddle_a_byte) {
    const int32_t q[4] = {5, 2, 7, 1};
    qa_frozen_codes c;
    qa_frozen_codes_alloc(&c, 4, 3);
    cr_assert_eq(qa_frozen_codes_bytes(4, 3), 2, "12 bits in 2 bytes");
    qa_frozen_codes_pack(&c, q);
    cr_expect_eq(c.data[0], 0xD5, "byte 0 %#x", c.data[0]);
    cr_expect_eq(c.data[1], 0x03, "byte 1 %#x", c.data[1]);
    for (int i = 0; i < 4; i++) cr_expect_eq(qa_frozen_codes_get(&c, (size_t)i), (uint32_t)q[i], "code %d", i);
    qa_frozen_codes_free(&c);
}

/* 4-bit codes: two per byte, the first in the low nibble; 1-bit: eight per byte. */
Test(frozen_codes, hand_packed_four_and_one_bits) {
    const int32_t q4[3] = {0xA, 0x3, 0xF};
    qa_frozen_codes c;
    qa_frozen_codes_alloc(&c, 3, 4);
    qa_frozen_codes_pack(&c, q4);
    cr_assert_eq(qa_frozen_codes_bytes(3, 4), 2);
    cr_expect_eq(c.data[0], 0x3A);
    cr_expect_eq(c.data[1], 0x0F);
    qa_frozen_codes_free(&c);
    const int32_t q1[9] = {1, 0, 0, 1, 1, 0, 1, 0, 1};
    qa_frozen_codes_alloc(&c, 9, 1);
    qa_frozen_codes_pack(&c, q1);
    cr_assert_eq(qa_frozen_codes_bytes(9, 1), 2);
    cr_expect_eq(c.data[0], 0x59, "0b01011001 %#x", c.data[0]);
    cr_expect_eq(c.data[1], 0x01);
    qa_frozen_codes_free(&c);
}

/* Random codes at every width survive the round trip (get and unpack), and the storage is
 * ceil(n N / 8) bytes at N <= 4, n at 5..8, 2 n at 9..16. */
Test(frozen_codes, random_round_trip_at_every_width) {
    const size_t n = 1001; /* odd: the last packed byte is partly used */
    int32_t *q = qa_alloc(sizeof(int32_t) * n), *back = qa_alloc(sizeof(int32_t) * n);
    float *row = qa_alloc(sizeof(float) * n);
    trng t = trng_new(3);
    for (int bits = 1; bits <= 16; bits++) {
        for (size_t i = 0; i < n; i++) q[i] = (int32_t)(trng_next(&t) % (1ull << bits));
        q[0] = 0;
        q[n - 1] = (1 << bits) - 1; /* both ends of the range */
        size_t want = bits <= 4 ? (n * (size_t)bits + 7) / 8 : (bits <= 8 ? n : 2 * n);
        cr_expect_eq(qa_frozen_codes_bytes(n, bits), want, "N = %d", bits);
        qa_frozen_codes c;
        qa_frozen_codes_alloc(&c, n, bits);
        qa_frozen_codes_pack(&c, q);
        for (size_t i = 0; i < n; i++)
            cr_expect_eq(qa_frozen_codes_get(&c, i), (uint32_t)q[i], "N = %d, code %zu", bits, i);
        qa_frozen_codes_unpack(&c, 100, 500, back);
        for (size_t i = 0; i < 500; i++) cr_expect_eq(back[i], q[100 + i], "N = %d, unpacked %zu", bits, i);
        /* a row less its zero point: from an odd first code (mid-byte when packed) to the end, an
         * odd count from an even first code, the whole storage */
        const float zero = 0.375f * (float)((1 << bits) - 1);
        const size_t first[3] = {101, 100, 0}, count[3] = {n - 101, 501, n};
        for (int r = 0; r < 3; r++) {
            qa_frozen_codes_row_minus(&c, first[r], count[r], zero, row);
            for (size_t i = 0; i < count[r]; i++) {
                const float want_f = (float)q[first[r] + i] - zero;
                cr_expect(memcmp(&row[i], &want_f, sizeof(float)) == 0, "N = %d, row from %zu, code %zu: %g, want %g", bits,
                          first[r], i, row[i], want_f);
            }
        }
        qa_frozen_codes_free(&c);
    }
    qa_free(q);
    qa_free(back);
    qa_free(row);
}
