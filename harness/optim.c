#include "harness/optim.h"

#include <math.h>

void qa_adamw_init(qa_adamw *o, const qa_param *ps, int np, float weight_decay, float clip) {
    o->beta1 = 0.9f; o->beta2 = 0.999f; o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->clip = clip;
    o->step = 0;
    o->n = 0;
    for (int i = 0; i < np; i++) o->n += ps[i].n;
    o->m = qa_alloc(sizeof(float) * o->n);
    o->v = qa_alloc(sizeof(float) * o->n);
}

void qa_adamw_free(qa_adamw *o) {
    qa_free(o->m);
    qa_free(o->v);
    o->m = o->v = NULL;
}

float qa_grad_norm(const qa_param *ps, int np) {
    double acc = 0;
    for (int i = 0; i < np; i++)
        for (size_t j = 0; j < ps[i].n; j++) acc += (double)ps[i].grad[j] * ps[i].grad[j];
    return (float)sqrt(acc);
}

float qa_adamw_step(qa_adamw *o, qa_param *ps, int np, float lr) {
    float norm = qa_grad_norm(ps, np);
    float gscale = (o->clip > 0 && norm > o->clip) ? o->clip / (norm + 1e-6f) : 1.0f;
    o->step++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->step), bc2 = 1.0f - powf(o->beta2, (float)o->step);
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        float lr_t = lr * (ps[i].lr_scale > 0 ? ps[i].lr_scale : 1.0f);
        float *p = ps[i].data, *g = ps[i].grad, *m = o->m + off, *v = o->v + off;
        #pragma omp parallel for schedule(static) if (ps[i].n > 65536)
        for (size_t j = 0; j < ps[i].n; j++) {
            float gj = g[j] * gscale;
            m[j] = o->beta1 * m[j] + (1.0f - o->beta1) * gj;
            v[j] = o->beta2 * v[j] + (1.0f - o->beta2) * gj * gj;
            float mh = m[j] / bc1, vh = v[j] / bc2;
            p[j] -= lr_t * (mh / (sqrtf(vh) + o->eps) + o->weight_decay * p[j]);
        }
        off += ps[i].n;
    }
    return norm;
}
