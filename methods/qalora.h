/* QA-LoRA (METHODS.md section 3): what methods/qalora.c offers beyond the registry entry.
 * The registry's qa_method_cfg has no group-size field, so the plugin runs at the default g = 32;
 * qa_qalora_init_grouped() lets tests (and a later recipe key) choose g. The FP16 helpers are the
 * storage format of the scales and the merged (fractional) zero points. */
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
