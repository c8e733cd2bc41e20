/* IDX / Fashion-MNIST loading: error paths on files written here with zlib, a good tiny pair,
 * the real package when installed, and the synthetic set. */
#include <criterion/criterion.h>
#include <zlib.h>

#include "common.h"
#include "datasets/dataset.h"

enum { SIDE = 28 }; /* Fashion-MNIST's image side, the only one the model takes */

static char dir[256];
static void setup(void) { make_tmpdir(dir, sizeof dir, "idx"); }
static void teardown(void) { rm_rf_dir(dir); }

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Write an IDX file with the given magic, dims, and `len` payload bytes (may be fewer than the
 * dims promise, to make a truncated file); mode is gzopen's ("wb": default level, "wb0": stored
 * blocks, whose payload bytes can be flipped without breaking the deflate stream). */
static void write_idx_mode(const char *name, const char *mode, uint32_t magic, int ndim, const uint32_t *dims,
                           const uint8_t *data, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, mode);
    cr_assert_not_null(f, "gzopen %s", path);
    uint8_t hdr[4 + 4 * 4];
    put_be32(hdr, magic);
    for (int i = 0; i < ndim; i++) put_be32(hdr + 4 + 4 * i, dims[i]);
    cr_assert_eq(gzwrite(f, hdr, (unsigned)(4 + 4 * ndim)), 4 + 4 * ndim);
    if (len) cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(f), Z_OK);
}

static void write_idx(const char *name, uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *data,
                      size_t len) {
    write_idx_mode(name, "wb", magic, ndim, dims, data, len);
}

/* a good pair of n images of r x c with labels lab */
static void write_pair(const char *split, int n, int r, int c, const uint8_t *pix, const uint8_t *lab, int n_lab) {
    char name[128];
    uint32_t idims[3] = {(uint32_t)n, (uint32_t)r, (uint32_t)c}, ldims[1] = {(uint32_t)n_lab};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", split);
    write_idx(name, 0x00000803, 3, idims, pix, (size_t)n * r * c);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", split);
    write_idx(name, 0x00000801, 1, ldims, lab, (size_t)n_lab);
}

static void expect_load_error(const char *split, const char *const needles[]) {
    qa_images im;
    qa_error err = {0, ""};
    int rc = qa_fmnist_load(dir, split, &im, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "expected QA_ERR_INPUT, got %d (%s)", rc, err.msg);
    cr_assert_eq(err.code, QA_ERR_INPUT);
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]) != NULL, "message '%s' lacks '%s'", err.msg, needles[i]);
    cr_assert_null(im.pixels, "nothing allocated on failure");
    cr_assert_null(im.labels, "nothing allocated on failure");
}

Test(dataset, good_tiny_pair_loads, .init = setup, .fini = teardown) {
    enum { N = 3, R = 28, C = 28 };
    uint8_t pix[N * R * C], lab[N] = {9, 0, 4};
    for (int i = 0; i < N * R * C; i++) pix[i] = (uint8_t)(i * 11 % 256);
    write_pair("train", N, R, C, pix, lab, N);
    qa_images im;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fmnist_load(dir, "train", &im, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(im.n, N);
    cr_assert_eq(im.rows, R);
    cr_assert_eq(im.cols, C);
    cr_assert_eq(memcmp(im.pixels, pix, sizeof pix), 0, "pixels differ");
    for (int i = 0; i < N; i++) cr_assert_eq(im.labels[i], lab[i], "label %d", i);
    /* to_float: p / 127.5 - 1 for chosen indices */
    int idx[2] = {2, 0};
    float x[2 * R * C];
    qa_images_to_float(&im, idx, 2, x);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < R * C; j++)
            cr_assert_float_eq(x[k * R * C + j], pix[idx[k] * R * C + j] / 127.5 - 1.0, 1e-6, "x[%d,%d]", k, j);
    qa_images_free(&im);
    cr_assert_null(im.pixels);
}

Test(dataset, idx_read_plain_uncompressed_file, .init = setup, .fini = teardown) {
    /* gzread reads plain files too ("gzip or plain") */
    char path[512];
    snprintf(path, sizeof path, "%s/plain-labels", dir);
    uint8_t bytes[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, sizeof bytes, f);
    fclose(f);
    int dims[1] = {0};
    uint8_t *data = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_idx_read(path, 1, dims, &data, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(dims[0], 3);
    cr_assert(data[0] == 7 && data[1] == 8 && data[2] == 9);
    free(data);
}

Test(dataset, missing_file_names_the_package, .init = setup, .fini = teardown) {
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "dataset-fashion-mnist", NULL});
    /* images present, labels missing */
    uint8_t pix[4] = {1, 2, 3, 4};
    uint32_t idims[3] = {1, 2, 2};
    write_idx("t10k-images-idx3-ubyte.gz", 0x803, 3, idims, pix, 4);
    expect_load_error("t10k", (const char *const[]){"t10k-labels-idx1-ubyte.gz", "dataset-fashion-mnist", NULL});
}

Test(dataset, bad_magic, .init = setup, .fini = teardown) {
    uint8_t pix[4] = {1, 2, 3, 4};
    uint32_t idims[3] = {1, 2, 2};
    write_idx("train-images-idx3-ubyte.gz", 0x00000C03, 3, idims, pix, 4); /* 0x0C = int32 payload */
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "magic", "0x00000c03", NULL});
    /* labels file given as images (1 dim where 3 expected) */
    char path[512];
    uint8_t lab[1] = {0};
    uint32_t ldims[1] = {1};
    write_idx("labels-as-images.gz", 0x801, 1, ldims, lab, 1);
    snprintf(path, sizeof path, "%s/labels-as-images.gz", dir);
    int dims[3];
    uint8_t *data = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_idx_read(path, 3, dims, &data, &err), QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "magic") != NULL, "%s", err.msg);
}

Test(dataset, truncated_data, .init = setup, .fini = teardown) {
    uint8_t pix[10] = {0};
    uint32_t idims[3] = {2, 2, 3}; /* promises 12 bytes */
    write_idx("train-images-idx3-ubyte.gz", 0x803, 3, idims, pix, 10);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "truncated", "12", "10", NULL});
}

Test(dataset, truncated_header_and_zero_dimension, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/short.gz", dir);
    gzFile f = gzopen(path, "wb");
    uint8_t two[2] = {0, 0};
    gzwrite(f, two, 2);
    gzclose(f);
    int dims[3];
    uint8_t *data = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_idx_read(path, 3, dims, &data, &err), QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
    uint32_t zd[3] = {0, 28, 28};
    write_idx("zero.gz", 0x803, 3, zd, NULL, 0);
    snprintf(path, sizeof path, "%s/zero.gz", dir);
    cr_assert_eq(qa_idx_read(path, 3, dims, &data, &err), QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "dimension") != NULL, "%s", err.msg);
}

/* Regression (fixed; was fmnist.c:46, `total *= v`): each dimension is checked against 1e7, but their product is not: dims
 * {2^22, 2^21, 2^21} multiply to 2^64, which wraps `size_t total` to 0, so a header-only file
 * "loads" with QA_OK and dims promising 2^64 bytes backed by a 1-byte buffer. */
Test(dataset, header_dims_product_overflow_is_rejected, .init = setup, .fini = teardown) {
    uint32_t d[3] = {1u << 22, 1u << 21, 1u << 21};
    write_idx("huge.gz", 0x803, 3, d, NULL, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/huge.gz", dir);
    int dims[3];
    uint8_t *data = NULL;
    qa_error err = {0, ""};
    int rc = qa_idx_read(path, 3, dims, &data, &err);
    if (rc == QA_OK) free(data);
    cr_expect_eq(rc, QA_ERR_INPUT, "dims %ux%ux%u accepted with rc %d", d[0], d[1], d[2],
                 rc);
}

Test(dataset, corrupt_gzip_stream_is_an_input_error, .init = setup, .fini = teardown) {
    /* a valid gzip header followed by garbage deflate data */
    uint8_t pix[64];
    for (int i = 0; i < 64; i++) pix[i] = (uint8_t)(i * 37);
    uint32_t idims[3] = {1, 8, 8};
    write_idx("train-images-idx3-ubyte.gz", 0x803, 3, idims, pix, 64);
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    char *buf;
    size_t len;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(path, &buf, &len, &err), QA_OK);
    for (size_t i = 12; i + 8 < len; i++) buf[i] = (char)0xA5; /* keep the 10-byte gzip header */
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    free(buf);
    int dims[3];
    uint8_t *data = NULL;
    int rc = qa_idx_read(path, 3, dims, &data, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "rc %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "train-images-idx3-ubyte.gz") != NULL, "%s", err.msg);
}

Test(dataset, label_count_mismatch, .init = setup, .fini = teardown) {
    uint8_t pix[3 * SIDE * SIDE] = {0}, lab[2] = {1, 2};
    write_pair("train", 3, SIDE, SIDE, pix, lab, 2);
    expect_load_error("train", (const char *const[]){"2 labels for 3 images", NULL});
}

Test(dataset, label_out_of_range, .init = setup, .fini = teardown) {
    uint8_t pix[3 * SIDE * SIDE] = {0}, lab[3] = {1, 10, 2};
    write_pair("train", 3, SIDE, SIDE, pix, lab, 3);
    expect_load_error("train", (const char *const[]){"label 10", "item 1", "0..9", NULL});
}

Test(dataset, env_var_selects_dir_when_dir_is_null, .init = setup, .fini = teardown) {
    uint8_t pix[SIDE * SIDE] = {5, 6, 7, 8}, lab[1] = {3};
    write_pair("t10k", 1, SIDE, SIDE, pix, lab, 1);
    setenv("QA_FMNIST_DIR", dir, 1);
    qa_images im;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fmnist_load(NULL, "t10k", &im, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(im.n, 1);
    cr_assert_eq(im.labels[0], 3);
    qa_images_free(&im);
    unsetenv("QA_FMNIST_DIR");
}

Test(dataset, real_fashion_mnist) {
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", QA_FMNIST_DEFAULT_DIR);
    cr_assert(qa_file_exists(path), "data file missing: %s (Debian package dataset-fashion-mnist)", path);
    unsetenv("QA_FMNIST_DIR");
    qa_images im;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fmnist_load(QA_FMNIST_DEFAULT_DIR, "train", &im, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(im.n, 60000);
    cr_assert_eq(im.rows, 28);
    cr_assert_eq(im.cols, 28);
    long counts[10] = {0};
    for (int i = 0; i < im.n; i++) {
        cr_assert(im.labels[i] >= 0 && im.labels[i] <= 9);
        counts[im.labels[i]]++;
    }
    for (int k = 0; k < 10; k++) cr_assert_eq(counts[k], 6000, "class %d has %ld images", k, counts[k]);
    qa_images_free(&im);
    const char *const *names = qa_fmnist_class_names();
    cr_assert_str_eq(names[0], "T-shirt/top");
    cr_assert_str_eq(names[9], "Ankle boot");
}

Test(dataset, synthetic_images_deterministic_for_a_seed) {
    qa_images a, b, c;
    qa_synthetic_images(&a, 20, 12, 10, 7);
    qa_synthetic_images(&b, 20, 12, 10, 7);
    qa_synthetic_images(&c, 20, 12, 10, 8);
    cr_assert_eq(a.n, 20);
    cr_assert_eq(a.rows, 12);
    cr_assert_eq(a.cols, 12);
    cr_assert_eq(memcmp(a.pixels, b.pixels, 20 * 144), 0, "same seed, different pixels");
    cr_assert_neq(memcmp(a.pixels, c.pixels, 20 * 144), 0, "different seeds, same pixels");
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(a.labels[i], i % 10);
        cr_assert_eq(a.labels[i], b.labels[i]);
    }
    /* a bright bar on a dark background: each image has both bright (>150) and dark (<60) pixels */
    for (int i = 0; i < 20; i++) {
        int bright = 0, dark = 0;
        for (int j = 0; j < 144; j++) {
            bright += a.pixels[i * 144 + j] > 150;
            dark += a.pixels[i * 144 + j] < 60;
        }
        cr_assert(bright > 5 && dark > 50, "image %d: %d bright, %d dark", i, bright, dark);
    }
    qa_images_free(&a);
    qa_images_free(&b);
    qa_images_free(&c);
}

/* The model takes 28 x 28 images only: 56 x 56 images were a heap overflow downstream and
 * 14 x 14 ones a run "done" with a NaN loss. The error names the file and both sizes. */
Test(dataset, image_side_other_than_28_is_rejected, .init = setup, .fini = teardown) {
    static uint8_t pix[2 * 56 * 56];
    uint8_t lab[2] = {1, 2};
    write_pair("train", 2, 56, 56, pix, lab, 2);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "56 x 56", "28 x 28", NULL});
    write_pair("t10k", 2, 14, 14, pix, lab, 2);
    expect_load_error("t10k", (const char *const[]){"t10k-images-idx3-ubyte.gz", "14 x 14", "28 x 28", NULL});
    write_pair("train", 2, 28, 14, pix, lab, 2);
    expect_load_error("train", (const char *const[]){"28 x 14", "28 x 28", NULL});
}

Test(dataset, truncated_28x28_images_name_the_file, .init = setup, .fini = teardown) {
    static uint8_t pix[2 * SIDE * SIDE];
    uint32_t idims[3] = {3, SIDE, SIDE}; /* promises 3 images, holds 2 */
    write_idx("train-images-idx3-ubyte.gz", 0x803, 3, idims, pix, sizeof pix);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "truncated", "2352", "1568", NULL});
}

/* Damage a file written here: flip one byte at `flip_at` (counted from the end when negative;
 * 0 = none), then drop its last `cut` bytes. */
static void damage_file(const char *name, long flip_at, size_t cut) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf;
    size_t len;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(path, &buf, &len, &err), QA_OK);
    if (flip_at) buf[flip_at > 0 ? (size_t)flip_at : len - (size_t)-flip_at] ^= 0x5A;
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len - cut, f);
    fclose(f);
    free(buf);
}

/* A stored (level 0) stream with one payload byte flipped still inflates: only the CRC-32 in
 * the gzip trailer tells, and it was never read once the payload was larger than zlib's buffer
 * (60 images, 47 kB). */
Test(dataset, gzip_crc_mismatch_in_the_middle_is_rejected, .init = setup, .fini = teardown) {
    enum { N = 60 };
    static uint8_t pix[N * SIDE * SIDE], lab[N];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 7);
    uint32_t idims[3] = {N, SIDE, SIDE}, ldims[1] = {N};
    write_idx_mode("train-images-idx3-ubyte.gz", "wb0", 0x803, 3, idims, pix, sizeof pix);
    write_idx("train-labels-idx1-ubyte.gz", 0x801, 1, ldims, lab, N);
    damage_file("train-images-idx3-ubyte.gz", 1000, 0);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "corrupt", NULL});
    /* the same with the stored length (ISIZE, the trailer's last 4 bytes) damaged */
    write_idx_mode("train-images-idx3-ubyte.gz", "wb0", 0x803, 3, idims, pix, sizeof pix);
    damage_file("train-images-idx3-ubyte.gz", -2, 0);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "corrupt", NULL});
}

/* In a small file zlib meets the bad CRC on the first read: the message said "truncated header". */
Test(dataset, gzip_crc_mismatch_in_a_small_file_says_corrupt, .init = setup, .fini = teardown) {
    static uint8_t pix[2 * SIDE * SIDE];
    uint32_t idims[3] = {2, SIDE, SIDE};
    write_idx_mode("train-images-idx3-ubyte.gz", "wb0", 0x803, 3, idims, pix, sizeof pix);
    damage_file("train-images-idx3-ubyte.gz", 1000, 0);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "corrupt", NULL});
}

Test(dataset, gzip_without_its_trailer_is_truncated, .init = setup, .fini = teardown) {
    static uint8_t pix[SIDE * SIDE];
    uint8_t lab[1] = {4};
    write_pair("train", 1, SIDE, SIDE, pix, lab, 1);
    damage_file("train-images-idx3-ubyte.gz", 0, 8); /* CRC-32 and length gone: the data is all there */
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "truncated", NULL});
}

Test(dataset, more_data_than_the_header_promises_is_rejected, .init = setup, .fini = teardown) {
    static uint8_t pix[3 * SIDE * SIDE];
    uint8_t lab[2] = {1, 2};
    uint32_t idims[3] = {2, SIDE, SIDE}, ldims[1] = {2};
    write_idx("train-images-idx3-ubyte.gz", 0x803, 3, idims, pix, sizeof pix); /* 3 images, header says 2 */
    write_idx("train-labels-idx1-ubyte.gz", 0x801, 1, ldims, lab, 2);
    expect_load_error("train", (const char *const[]){"train-images-idx3-ubyte.gz", "more data", NULL});
}
