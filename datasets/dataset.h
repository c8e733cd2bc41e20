/* Image sets: Fashion-MNIST from the Debian package (IDX files, gzip) and a tiny synthetic set
 * for tests. Pixels are kept as uint8; qa_images_to_float maps them to [-1, 1]. */
#ifndef QA_DATASET_H
#define QA_DATASET_H

#include <stdint.h>

#include "harness/util.h"

#define QA_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define QA_FMNIST_SIDE 28 /* image side; the denoiser and the evaluator take nothing else */
#define QA_FMNIST_CLASSES 10

typedef struct {
    int n, rows, cols;
    uint8_t *pixels;   /* [n, rows*cols] */
    int *labels;       /* [n] */
} qa_images;

/* split: "train" or "t10k". dir NULL = $QA_FMNIST_DIR or the Debian package's folder.
 * Errors (QA_ERR_INPUT): missing file (names the package to install), bad magic, bad
 * dimensions, images not 28 x 28, truncated data, a gzip CRC-32 or length mismatch, data past
 * the header's size, label/image count mismatch, label out of range. */
int qa_fmnist_load(const char *dir, const char *split, qa_images *out, qa_error *err);
/* Read one IDX file (gzip or plain): dims[0..ndim) and the payload (caller frees). */
int qa_idx_read(const char *path, int expect_ndim, int *dims, uint8_t **data, qa_error *err);

/* A tiny deterministic synthetic set: class k is a bright bar at an angle/position set by k,
 * plus noise. For tests that must not depend on the package. */
void qa_synthetic_images(qa_images *out, int n, int side, int n_classes, uint64_t seed);

/* The new visual style of the style and domain tasks (see style.c): x is [n, side*side] in [-1,1]. */
#define QA_STYLE_STRIPE_DARK 0.35f /* the darkened rows keep this share of their intensity */
void qa_style_stripes(float *x, int n, int side);
/* About 1 for a styled image, near 0 for a plain one; at most QA_STYLE_SCORE_MAX (dark rows
 * black: a stronger contrast than the style's own, so a score may exceed 1). */
#define QA_STYLE_SCORE_MAX (1.0 / (1.0 - QA_STYLE_STRIPE_DARK))
double qa_style_score(const float *x, int side);

void qa_images_free(qa_images *im);
/* x[i, :] = pixels / 127.5 - 1 for the given indices */
void qa_images_to_float(const qa_images *im, const int *idx, int count, float *x);

const char *const *qa_fmnist_class_names(void);

#endif
