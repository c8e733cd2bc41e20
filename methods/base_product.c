#include "methods/base_product.h"

#include <string.h>

void qa_base_product_init(qa_base_product *p, int in, int out, const qa_step_ctx *step) {
    memset(p, 0, sizeof *p);
    p->in = in;
    p->out = out;
    p->step = step;
    p->step_dtype = QA_DTYPE_F32;
    p->last = QA_DTYPE_F32;
}

void qa_base_product_free(qa_base_product *p) {
    if (p->bf16.x) qa_linear_bf16_free(&p->bf16);
    memset(&p->bf16, 0, sizeof p->bf16);
}

void qa_base_product_forward(qa_base_product *p, float *y, const float *x, const float *W, const float *b, int M) {
    p->last = p->step ? p->step->dtype : p->step_dtype;
    if (p->last == QA_DTYPE_BF16) {
        if (!p->bf16.x || M > p->bf16.max_rows) {
            qa_base_product_free(p);
            qa_linear_bf16_init(&p->bf16, M, p->in, p->out);
        }
        qa_linear_forward_bf16(&p->bf16, y, x, W, b, M);
    } else {
        qa_linear_forward(y, x, W, b, M, p->in, p->out);
    }
}

void qa_base_product_backward_dx(qa_base_product *p, float *dx, const float *dy, const float *W, int M) {
    if (!dx) return;
    if (p->last == QA_DTYPE_BF16) qa_linear_backward_bf16(&p->bf16, dx, NULL, NULL, dy, M);
    else qa_matmul(M, p->in, p->out, dy, 0, W, 0, dx, 1, NULL);
}

void qa_base_product_backward_dx_dw(qa_base_product *p, float *dx, float *G, const float *dy, const float *W, const float *x,
                                    int M) {
    if (p->last != QA_DTYPE_BF16) {
        qa_base_product_backward_dx(p, dx, dy, W, M);
        qa_matmul(p->out, p->in, M, dy, 1, x, 0, G, 0, NULL); /* [out,M]·[M,in] */
        return;
    }
    qa_linear_bf16 *c = &p->bf16;
    QA_ASSERT(c->x && M == c->rows);
    qa_convert_to_bf16(c->dy, dy, (size_t)M * p->out);
    if (dx) qa_matmul_bf16(M, p->in, p->out, c->dy, 0, c->W, 0, dx, 1, NULL); /* [M,out]·[out,in] */
    qa_matmul_bf16(p->out, p->in, M, c->dy, 1, c->x_used, 0, G, 0, NULL);      /* [out,M]·[M,in] */
}
