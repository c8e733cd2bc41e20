/* QA-LoRA (arXiv 2309.14717; the specification is the header of methods/qalora.c): what
 * qalora.c offers beyond the registry entry. init() takes the group size from the recipe's
 * group_size (qa_method_cfg.group_size, 0 = QA_QALORA_DEFAULT_GROUP); qa_qalora_init_grouped()
 * lets tests choose g directly. The FP16 helpers are the storage format of the scales and the
 * merged (fractional) zero points. */
#ifndef QA_QALORA_H
#define QA_QALORA_H

#include <stdint.h>

#include "harness/registry.h"

#define QA_QALORA_DEFAULT_GROUP 32

extern const qa_method qa_method_qalora;

/* init() with an explicit group size g along d_in (init() itself reads its group_size option,
 * default QA_QALORA_DEFAULT_GROUP). */
int qa_qalora_init_grouped(void *state, const qa_layer_init *li, int group_size, qa_error *err);

/* IEEE 754 binary16: float -> half bits with round-to-nearest-even (overflow -> inf, NaN kept,
 * subnormals exact), and half bits -> float (exact). */
uint16_t qa_qalora_half_from_float(float x);
float qa_qalora_half_to_float(uint16_t h);

#endif
