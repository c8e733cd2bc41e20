#include "harness/registry.h"

#include <stdio.h>
#include <string.h>

extern const qa_method qa_method_lora;
extern const qa_method qa_method_qlora;
extern const qa_method qa_method_qalora;
extern const qa_method qa_method_efficientdm;
extern const qa_method qa_method_intlora_mul;
extern const qa_method qa_method_intlora_shift;

static const qa_method *const registry[] = {
    &qa_method_lora,
    &qa_method_qlora,
    &qa_method_qalora,
    &qa_method_efficientdm,
    &qa_method_intlora_mul,
    &qa_method_intlora_shift,
    NULL,
};

const char *const qa_merge_names[QA_MERGE_COUNT] = {
    [QA_MERGE_FLOAT_ADD_PTQ] = "float add + PTQ",
    [QA_MERGE_INT_MULTIPLY] = "integer multiply",
    [QA_MERGE_BIT_SHIFT] = "bit shift",
    [QA_MERGE_ZERO_POINT_FOLD] = "zero-point fold",
    [QA_MERGE_QAT_CODES] = "trained codes (no merge arithmetic)",
};
/* every merge kind has a name */
_Static_assert(sizeof qa_merge_names / sizeof qa_merge_names[0] == QA_MERGE_COUNT, "qa_merge_names");

const qa_method *qa_method_find(const char *name) {
    for (int i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

const qa_method *const *qa_methods(void) { return registry; }

void qa_deployed_free(qa_deployed *d) {
    qa_free(d->w_fp);
    qa_free(d->w_int);
    qa_free(d->row_scale);
    for (int i = 0; i < d->n_extra; i++) qa_free(d->extra_w[i]);
    for (int i = 0; i < d->n_stored; i++) { qa_free(d->stored[i].i32); qa_free(d->stored[i].f32); }
    memset(d, 0, sizeof *d);
}

static qa_stored_tensor *store_slot(qa_deployed *d, const char *name, int bits, int rows, int cols) {
    QA_ASSERT(d->n_stored < QA_MAX_STORED);
    qa_stored_tensor *t = &d->stored[d->n_stored++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->bits = bits;
    t->rows = rows;
    t->cols = cols;
    return t;
}

int32_t *qa_deployed_store_int(qa_deployed *d, const char *name, int bits, int is_signed, int rows, int cols) {
    qa_stored_tensor *t = store_slot(d, name, bits, rows, cols);
    t->is_signed = is_signed;
    t->i32 = qa_alloc(sizeof(int32_t) * (size_t)rows * cols);
    return t->i32;
}

float *qa_deployed_store_float(qa_deployed *d, const char *name, int bits, int rows, int cols) {
    QA_ASSERT(bits == 16 || bits == 32);
    qa_stored_tensor *t = store_slot(d, name, bits, rows, cols);
    t->is_float = 1;
    t->f32 = qa_alloc(sizeof(float) * (size_t)rows * cols);
    return t->f32;
}

void qa_deployed_weights(const qa_deployed *d, float *W_out) {
    size_t n = (size_t)d->in * d->out;
    if (d->w_int) {
        for (int o = 0; o < d->out; o++)
            for (int i = 0; i < d->in; i++)
                W_out[(size_t)o * d->in + i] = d->row_scale[o] * (float)d->w_int[(size_t)o * d->in + i];
    } else {
        memcpy(W_out, d->w_fp, n * sizeof(float));
    }
}
