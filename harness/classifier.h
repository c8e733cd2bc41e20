/* The evaluator: a small CNN classifier on 28x28 images, trained by the harness on all 10
 * Fashion-MNIST classes. Its penultimate features (128-d) serve every feature metric, as
 * DINO / CLIP features serve the paper's; its class probabilities serve prompt fidelity.
 *
 *   x [B,28,28,1] -> conv3x3(32) ReLU maxpool2 -> conv3x3(64) ReLU maxpool2 -> [B, 7*7*64]
 *     -> fc(128) ReLU = features -> fc(10) = logits
 * Convolutions are im2col (NHWC, 'same' zero padding) + a oneDNN matmul. */
#ifndef QA_CLASSIFIER_H
#define QA_CLASSIFIER_H

#include <stddef.h>

#include "datasets/dataset.h"
#include "harness/model.h"

#define QA_CLF_FEATURES 128
#define QA_CLF_CLASSES 10

typedef struct {
    int max_batch, last_B;
    float *params, *grads;
    size_t n_params;
    qa_tensor_info tensors[8];
    int n_tensors;
    float *c1w, *c1b, *c2w, *c2b, *f1w, *f1b, *f2w, *f2b;
    /* activations (NHWC) */
    const float *x;
    float *col1, *a1, *r1, *p1, *col2, *a2, *r2, *p2, *h, *feat, *logits, *probs;
    int *arg1, *arg2;
    /* backward scratch */
    float *d_logits, *d_feat, *d_h, *d_p2, *d_r2, *d_col2, *d_p1, *d_r1, *d_col1;
} qa_classifier;

int qa_clf_create(qa_classifier *c, int max_batch, qa_error *err);
void qa_clf_free(qa_classifier *c);
void qa_clf_init_weights(qa_classifier *c, uint64_t seed);
/* x [B, 784] in [-1, 1] -> c->feat [B,128], c->logits [B,10] */
void qa_clf_forward(qa_classifier *c, const float *x, int B);
/* Softmax cross-entropy on the last forward; accumulates grads; returns the mean loss. */
float qa_clf_backward(qa_classifier *c, const int *labels);
/* Features and class probabilities of n images, in batches (either output may be NULL). */
void qa_clf_embed(qa_classifier *c, const float *x, int n, float *feat, float *probs);
int qa_clf_save(const char *path, const qa_classifier *c, double test_accuracy, const char *recipe,
             double wall, long steps, qa_error *err);
int qa_clf_load(const char *path, qa_classifier *c, int max_batch, qa_error *err);

/* Top-1 accuracy on a labelled set, and per class (per_class may be NULL). */
double qa_evaluator_accuracy(qa_classifier *c, const qa_images *test, double *per_class);

#endif
