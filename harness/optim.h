/* AdamW (decoupled weight decay) with global grad-norm clipping, over a list of tensors.
 *   g <- g * min(1, clip / ||g||);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
 *   p <- p - lr_t (mhat / (sqrt(vhat) + eps) + wd p),  lr_t = lr * tensor.lr_scale */
#ifndef QA_OPTIM_H
#define QA_OPTIM_H

#include "harness/registry.h"

typedef struct {
    float beta1, beta2, eps, weight_decay, clip;
    long step;
    size_t n;
    float *m, *v;
} qa_adamw;

void qa_adamw_init(qa_adamw *o, const qa_param *ps, int np, float weight_decay, float clip);
/* One update at learning rate lr; returns the gradient norm before clipping. */
float qa_adamw_step(qa_adamw *o, qa_param *ps, int np, float lr);
void qa_adamw_free(qa_adamw *o);
/* Global L2 norm of all grads. */
float qa_grad_norm(const qa_param *ps, int np);

#endif
