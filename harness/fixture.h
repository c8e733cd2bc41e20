/* `qadapt fixture IN.h5 OUT.h5`: recompute reference layer fixtures (the schema of
 * tests/data/README.md) with the harness's own method plugins. For every /case_NNN of IN it
 * reads only the attributes and in/, and writes the init and trained datasets with the same names and
 * shapes to OUT:
 *   init/    R, delta, zero_point, W_round (int32), U_delta, U_zero_point (MUL), y   (B = 0)
 *   trained/ W_eff, y, grad_A, grad_B, grad_U_delta, grad_U_zero_point (MUL)   (B = in/B,
 *            gradients of sum(y * dy))
 * A case of the low-rank QAT schema (attributes lora_alpha, int_min, int_max: LR-QAT) gets
 *   init/    scale, Phi0 (int32)                                                   (B = 0)
 *   trained/ W_int (int32), W_eff, y, grad_A, grad_B, grad_scale          (B = in/B)
 * A case of the per-row quantizer schema of IR-QLoRA's ICQ (method "ir-qlora-icq": attributes
 * rows, columns, n_bits, symmetric; in/W) gets
 *   icq/     scale, zero_point, codes (int32), W_q
 * A case without the schema, or with an unknown method, gets one line naming the case and what
 * is missing; the cases that can be computed are still written, and the status is QA_ERR_INPUT. */
#ifndef QA_FIXTURE_H
#define QA_FIXTURE_H

#include <stdio.h>

#include "harness/util.h"

int qa_fixture_compute(const char *in_path, const char *out_path, FILE *log, int *n_done, int *n_failed,
                    qa_error *err);

#endif
