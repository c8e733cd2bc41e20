#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "datasets/dataset.h"

static const char *const class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

const char *const *qa_fmnist_class_names(void) { return class_names; }

/* zlib's error code for the stream (Z_OK: fine, or a plain end of file) and its message, copied:
 * gzerror's string dies with gzclose. Z_BUF_ERROR: the file ends inside the stream. */
static int gz_problem(gzFile f, char *buf, size_t len) {
    int zerr = Z_OK;
    const char *msg = gzerror(f, &zerr);
    snprintf(buf, len, "%s", zerr == Z_ERRNO ? strerror(errno) : msg);
    return zerr;
}

static int idx_read_header(gzFile f, const char *path, int expect_ndim, int *dims, size_t *total, qa_error *err) {
    char why[256];
    uint8_t hdr[4];
    int got = gzread(f, hdr, 4);
    if (got != 4 && gz_problem(f, why, sizeof why) != Z_OK)
        return qa_fail(err, QA_ERR_INPUT, "%s: corrupt compressed data (%s)", path, why);
    if (got != 4)
        return qa_fail(err, QA_ERR_INPUT, "%s: truncated header (%d of 4 magic bytes)", path, got < 0 ? 0 : got);
    int magic = (hdr[0] << 24) | (hdr[1] << 16) | (hdr[2] << 8) | hdr[3], expect_magic = 0x0800 | expect_ndim;
    if (magic != expect_magic)
        return qa_fail(err, QA_ERR_INPUT, "%s: bad IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d dims)",
                       path, (unsigned)magic, (unsigned)expect_magic, expect_ndim);
    *total = 1;
    for (int i = 0; i < expect_ndim; i++) {
        uint8_t b[4];
        if (gzread(f, b, 4) != 4)
            return qa_fail(err, QA_ERR_INPUT, "%s: truncated header (dimension %d missing)", path, i);
        uint32_t v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
        if (v == 0 || v > 10000000u)
            return qa_fail(err, QA_ERR_INPUT, "%s: implausible dimension %d = %u in header", path, i, v);
        dims[i] = (int)v;
        if (*total > (size_t)(1u << 31) / v) /* the product, not only each dimension, must be sane */
            return qa_fail(err, QA_ERR_INPUT, "%s: header dimensions multiply to more than 2^31 bytes", path);
        *total *= v;
    }
    return QA_OK;
}

/* The payload, then the end of the stream: zlib checks the gzip trailer (CRC-32 and length) only
 * when a read reaches it, so one more read must meet a clean end of file. */
static int idx_read_payload(gzFile f, const char *path, uint8_t *buf, size_t total, qa_error *err) {
    char why[256];
    size_t have = 0;
    while (have < total) {
        unsigned chunk = (unsigned)((total - have) > (1u << 30) ? (1u << 30) : (total - have));
        int r = gzread(f, buf + have, chunk);
        if (r <= 0) break;
        have += (size_t)r;
    }
    uint8_t extra;
    int past_end = have == total ? gzread(f, &extra, 1) : 0;
    int zerr = gz_problem(f, why, sizeof why);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return qa_fail(err, QA_ERR_INPUT, "%s: corrupt compressed data (%s) after %zu of %zu bytes", path, why,
                       have, total);
    if (have < total)
        return qa_fail(err, QA_ERR_INPUT, "%s: truncated: header promises %zu data bytes, file has %zu",
                       path, total, have);
    if (zerr == Z_BUF_ERROR)
        return qa_fail(err, QA_ERR_INPUT, "%s: truncated: the gzip stream ends before its CRC-32 and length",
                       path);
    if (past_end > 0)
        return qa_fail(err, QA_ERR_INPUT, "%s: more data than the header's %zu bytes (damaged header?)", path,
                       total);
    return QA_OK;
}

int qa_idx_read(const char *path, int expect_ndim, int *dims, uint8_t **data, qa_error *err) {
    if (!qa_file_exists(path))
        return qa_fail(err, QA_ERR_INPUT,
                       "%s: file not found (Fashion-MNIST comes from the Debian package "
                       "'dataset-fashion-mnist': apt-get install dataset-fashion-mnist)", path);
    gzFile f = gzopen(path, "rb");
    if (!f) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t total = 0;
    int rc = idx_read_header(f, path, expect_ndim, dims, &total, err);
    uint8_t *buf = rc ? NULL : malloc(total + 1);
    if (!rc && !buf) rc = qa_fail(err, QA_ERR_RUN, "%s: out of memory", path);
    if (!rc) rc = idx_read_payload(f, path, buf, total, err);
    gzclose(f);
    if (rc) { free(buf); return rc; }
    *data = buf;
    return QA_OK;
}

int qa_fmnist_load(const char *dir, const char *split, qa_images *out, qa_error *err) {
    memset(out, 0, sizeof *out);
    if (!dir) dir = getenv("QA_FMNIST_DIR");
    if (!dir || !*dir) dir = QA_FMNIST_DEFAULT_DIR;
    char ipath[4096], lpath[4096];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    int idims[3] = {0, 0, 0}, ldims[1] = {0};
    uint8_t *pix = NULL, *lab = NULL;
    int rc = qa_idx_read(ipath, 3, idims, &pix, err);
    if (rc) return rc;
    rc = qa_idx_read(lpath, 1, ldims, &lab, err);
    if (rc) { free(pix); return rc; }
    if (idims[1] != QA_FMNIST_SIDE || idims[2] != QA_FMNIST_SIDE) {
        free(pix); free(lab);
        return qa_fail(err, QA_ERR_INPUT, "%s: images are %d x %d, the model takes %d x %d (Fashion-MNIST)", ipath,
                       idims[1], idims[2], QA_FMNIST_SIDE, QA_FMNIST_SIDE);
    }
    if (ldims[0] != idims[0]) {
        free(pix); free(lab);
        return qa_fail(err, QA_ERR_INPUT, "%s: %d labels for %d images in %s", lpath, ldims[0], idims[0], ipath);
    }
    out->n = idims[0]; out->rows = idims[1]; out->cols = idims[2];
    out->pixels = pix;
    out->labels = malloc(sizeof(int) * out->n);
    for (int i = 0; i < out->n; i++) {
        if (lab[i] > 9) {
            int bad = lab[i];
            free(lab); qa_images_free(out);
            return qa_fail(err, QA_ERR_INPUT, "%s: label %d of item %d is outside 0..9", lpath, bad, i);
        }
        out->labels[i] = lab[i];
    }
    free(lab);
    return QA_OK;
}

void qa_images_free(qa_images *im) {
    free(im->pixels);
    free(im->labels);
    memset(im, 0, sizeof *im);
}

void qa_images_to_float(const qa_images *im, const int *idx, int count, float *x) {
    size_t D = (size_t)im->rows * im->cols;
    for (int i = 0; i < count; i++) {
        const uint8_t *p = im->pixels + (size_t)idx[i] * D;
        for (size_t j = 0; j < D; j++) x[(size_t)i * D + j] = (float)p[j] / 127.5f - 1.0f;
    }
}
