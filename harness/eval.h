/* Evaluation of a (deployed) denoiser. Everything that is random here is drawn from fixed eval
 * seeds, never the run's, so every method and bit setting is scored on the same images,
 * timesteps, noise and sampler noise: differences between runs are paired.
 *
 *   held-out loss  L = mean over (image i, draw d) of mean_px (eps_theta(x_t, t, y_i) - eps)^2
 *                  with test images, t and eps fixed (eval seed); per-image means are kept for
 *                  paired tests.
 *   subject fidelity (DINO / CLIP-I analog) = mean_{i,j} cos(f(sample_i), f(reference_j))
 *   prompt fidelity  (CLIP-T analog)        = mean_i p_evaluator(item class | sample_i)
 *   diversity        (LPIPS analog)         = mean_{i<j} (1 - cos(f(sample_i), f(sample_j)))
 *   prior preservation                      = share of samples of the item's *class* prompt that the
 *                                             evaluator classifies as that class, after tuning
 *   subject floor    = subject fidelity of the FP base's own samples of the item's class (same
 *                      sampler noise as the adapted model's samples); gain = fidelity - floor
 *   identification   = share of samples i with mean_j cos(f(sample_i), f(ref_j)) strictly above
 *                      the same mean over each other item's references (other items of the class)
 *   prior distance   = mean_i (1 - cos(f(adapted class sample_i), f(base class sample_i))), the
 *                      same class prompt and sampler noise for both: 0 = prior untouched
 *   FID (domain)  = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(sqrt(S1) S2 sqrt(S1)) on features */
#ifndef QA_EVAL_H
#define QA_EVAL_H

#include "datasets/dataset.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/model.h"

typedef struct {
    int n_images, draws;
    float *x0, *eps, *t;   /* [n_images*draws, D], [n_images*draws] */
    int *y;
    qa_schedule sched;
} qa_heldout;

/* The held-out set: n_images test images (a fixed shuffle of the test set, the same for every
 * run), each with `draws` (t, noise) draws. split 0 takes the shuffle's first n_images, the
 * images every reported number is scored on; split 1 the next n_images, the validation images
 * a tuning run is scored on (the same t and noise draws), disjoint from them. */
int qa_heldout_init_split(qa_heldout *h, const qa_images *test, int n_images, int draws, int split, qa_error *err);
int qa_heldout_init(qa_heldout *h, const qa_images *test, int n_images, int draws, qa_error *err); /* split 0 */
void qa_heldout_free(qa_heldout *h);
/* Mean loss; per_image [n_images] (may be NULL). Batches of m->max_batch. */
double qa_heldout_loss(qa_dit *m, const qa_heldout *h, double *per_image);

/* mean_{i,j} cos(a_i, b_j) over [na, F] x [nb, F] features */
double qa_mean_cosine(const float *a, int na, const float *b, int nb, int F);
/* mean over pairs i < j of 1 - cos(a_i, a_j) */
double qa_mean_pairwise_distance(const float *a, int n, int F);
/* Share of the n samples closer (mean cosine) to the k references refs than to the k references
 * of every one of the n_other other items (other [n_other, k, F]; strictly closer: a tie is a
 * miss); with no other item, 1. -1 when n < 1 or k < 1. */
double qa_identification_score(const float *samples, int n, const float *refs, int k, const float *other, int n_other, int F);
/* mean_i (1 - cos(a_i, b_i)) over paired rows of [n, F]; -1 when n < 1. */
double qa_mean_paired_distance(const float *a, const float *b, int n, int F);
/* Frechet distance between Gaussians fitted to two feature sets (GSL eigen-decompositions:
 * sqrt(S1) from the symmetric eigensystem of S1, then the eigenvalues of sqrt(S1) S2 sqrt(S1),
 * negative round-off clipped to 0). Needs n >= 2 per set. */
double qa_frechet_distance(const float *a, int na, const float *b, int nb, int F);

/* Sample n images of class slot y (batches within max_batch / 2 for CFG); out [n, D] in [-1,1]. */
void qa_sample_images(qa_dit *m, const qa_schedule *s, int y, int n, int steps, float guidance,
                   uint64_t seed, float *out);
/* [-1,1] floats -> uint8 pixels */
void qa_to_pixels(const float *x, size_t n, uint8_t *out);

#endif
