/* QA-LoRA (arXiv 2309.14717; the specification is the header of methods/qalora.c): what
 * qalora.c offers beyond the registry entry. init() takes the group size from its group_size
 * option (QA_QALORA_AUTO_GROUP, the default: qa_qalora_auto_group of the layer's width);
 * qa_qalora_init_grouped() lets tests choose g directly. The FP16 helpers are the storage format
 * of the scales and the merged (fractional) zero points. */
#ifndef QA_QALORA_H
#define QA_QALORA_H

#include <stdint.h>

#include "harness/registry.h"

#define QA_QALORA_AUTO_GROUP 0        /* group_size = 0: scale g with the width */
#define QA_QALORA_AUTO_MIN_GROUPS 16  /* the auto g gives a layer at least this many groups */

extern const qa_method qa_method_qalora;

/* The auto group size of a layer of in inputs: the largest divisor of in that is <= in / 16
 * (at least 1): 8 at 128, 4 at 64, 5 at 100, 48 at 768. */
int qa_qalora_auto_group(int in);

/* init() with an explicit group size g along d_in (init() itself reads its group_size option). */
int qa_qalora_init_grouped(void *state, const qa_layer_init *li, int group_size, qa_error *err);

/* IEEE 754 binary16: float -> half bits with round-to-nearest-even (overflow -> inf, NaN kept,
 * subnormals exact), and half bits -> float (exact). */
uint16_t qa_qalora_half_from_float(float x);
float qa_qalora_half_to_float(uint16_t h);

#endif
