/* The frozen base product of an adapted layer in the training dtype of the model:
 *   forward   y  = x W^T + b
 *   backward  dx += dy W          (the base is frozen: no dW)
 * f32 through linear_forward / qa_matmul, or, while the model trains with dtype = bf16
 * (dit_set_dtype sets step->dtype), bf16 operands with f32 accumulation through oneDNN's bf16
 * matmul (qa_linear_bf16: x and W converted every forward, dy once per backward). The method
 * keeps its f32 weights; only the operands of this product are rounded. Evaluation runs in f32
 * (dit_set_dtype back to f32 before deploy and evaluate). */
#ifndef QA_BASE_PRODUCT_H
#define QA_BASE_PRODUCT_H

#include "harness/nn.h"
#include "harness/registry.h"

typedef struct {
    int in, out;
    const qa_step_ctx *step;   /* the model's; NULL (a bare layer): step_dtype decides */
    qa_dtype step_dtype;       /* used when step is NULL (bench-layer, tests) */
    qa_dtype last;             /* the dtype of the last forward, which its backward follows */
    qa_linear_bf16 bf16;       /* allocated on the first bf16 forward, regrown for more rows */
} qa_base_product;

void qa_base_product_init(qa_base_product *p, int in, int out, const qa_step_ctx *step);
void qa_base_product_free(qa_base_product *p);
void qa_base_product_forward(qa_base_product *p, float *y, const float *x, const float *W, const float *b, int M);
/* dx += dy W, in the dtype of the last forward (same M). */
void qa_base_product_backward_dx(qa_base_product *p, float *dx, const float *dy, const float *W, int M);
/* dx += dy W (dx may be NULL) and the weight's gradient G = dy^T x [out,in] (overwritten), in the
 * dtype of the last forward (same M and x): f32, or bf16 operands with f32 accumulation, dy
 * converted once for both products (as qa_linear_backward_bf16's dx and dW). For a method whose
 * trainable tensors are a function of the weight (IntLoRA's G_W). */
void qa_base_product_backward_dx_dw(qa_base_product *p, float *dx, float *G, const float *dy, const float *W, const float *x,
                                    int M);

#endif
