#include "harness/registry.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const qa_method qa_method_lora;
extern const qa_method qa_method_qlora;
extern const qa_method qa_method_qalora;
extern const qa_method qa_method_efficientdm;
extern const qa_method qa_method_intlora_mul;
extern const qa_method qa_method_intlora_shift;
extern const qa_method qa_method_peqa;
extern const qa_method qa_method_lrqat;
extern const qa_method qa_method_irqlora;
extern const qa_method qa_method_lqlora;

static const qa_method *const registry[] = {
    &qa_method_lora,
    &qa_method_qlora,
    &qa_method_qalora,
    &qa_method_efficientdm,
    &qa_method_intlora_mul,
    &qa_method_intlora_shift,
    &qa_method_peqa,
    &qa_method_lrqat,
    &qa_method_irqlora,
    &qa_method_lqlora,
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

enum { N_BUILTIN = sizeof registry / sizeof registry[0] - 1 };

/* The built-in methods followed by the ones added with qa_method_register (NULL-terminated):
 * the one mutable table of the registry, written only by qa_method_register. */
static const qa_method *with_added[N_BUILTIN + QA_MAX_ADDED_METHODS + 1];
static int n_added;

const qa_method *const *qa_methods(void) { return n_added ? with_added : registry; }

const qa_method *qa_method_find(const char *name) {
    for (const qa_method *const *m = qa_methods(); *m; m++)
        if (strcmp((*m)->name, name) == 0) return *m;
    return NULL;
}

int qa_method_register(const qa_method *m, qa_error *err) {
    if (qa_method_find(m->name)) return qa_fail(err, QA_ERR_INPUT, "a method named '%s' is registered already", m->name);
    if (n_added == QA_MAX_ADDED_METHODS)
        return qa_fail(err, QA_ERR_INPUT, "cannot add method '%s': %d methods added already", m->name, n_added);
    if (n_added == 0) memcpy(with_added, registry, sizeof(registry[0]) * N_BUILTIN);
    with_added[N_BUILTIN + n_added++] = m;
    with_added[N_BUILTIN + n_added] = NULL;
    return QA_OK;
}

const qa_method *qa_method_baseline(void) { return &qa_method_lora; }

/* ---- options ---- */

const qa_option *qa_method_option(const qa_method *m, const char *name) {
    for (int i = 0; i < m->n_options; i++)
        if (strcmp(m->options[i].name, name) == 0) return &m->options[i];
    return NULL;
}

/* index of value in a '|'-separated list, or -1 */
static int enum_index(const char *allowed, const char *value) {
    size_t n = strlen(value);
    int k = 0;
    for (const char *p = allowed; *p; k++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return k;
        p += len + (bar ? 1 : 0);
    }
    return -1;
}

void qa_option_describe(const qa_option *o, char *buf, size_t len) {
    switch (o->type) {
    case QA_OPT_INT: snprintf(buf, len, "an integer in %g..%g", o->lo, o->hi); break;
    case QA_OPT_FLOAT: snprintf(buf, len, "a number in %g..%g", o->lo, o->hi); break;
    default: snprintf(buf, len, "%s", o->allowed); break;
    }
}

int qa_option_parse(const qa_option *o, const char *value, void *options, char *why, size_t why_len) {
    char allowed[256];
    qa_option_describe(o, allowed, sizeof allowed);
    if (o->type == QA_OPT_ENUM) {
        int k = enum_index(o->allowed, value);
        if (k < 0) { snprintf(why, why_len, "'%s' is not allowed (allowed: %s)", value, allowed); return -1; }
        if (options) *(int *)((char *)options + o->offset) = k;
        return 0;
    }
    int is_int = o->type == QA_OPT_INT;
    long long n = 0;
    double d = 0;
    int bad = is_int ? qa_parse_int_token(value, &n) : qa_parse_number_token(value, &d);
    if (is_int) d = (double)n;
    if (bad) {
        snprintf(why, why_len, "expected %s, got '%s'", is_int ? "an integer" : "a number", value);
        return -1;
    }
    if (d < o->lo || d > o->hi) {
        snprintf(why, why_len, "%s is outside the allowed range %g..%g", value, o->lo, o->hi);
        return -1;
    }
    if (options && is_int) *(int *)((char *)options + o->offset) = (int)d;
    if (options && !is_int) *(float *)((char *)options + o->offset) = (float)d;
    return 0;
}

double qa_option_number(const qa_option *o, const void *options) {
    const char *at = (const char *)options + o->offset;
    return o->type == QA_OPT_FLOAT ? (double)*(const float *)at : (double)*(const int *)at;
}

void qa_method_options_defaults(const qa_method *m, void *options) {
    if (m->options_size) memset(options, 0, m->options_size);
    for (int i = 0; i < m->n_options; i++) {
        char why[300];
        int rc = qa_option_parse(&m->options[i], m->options[i].def, options, why, sizeof why);
        QA_ASSERT(rc == 0); /* a default outside its own table is a programming error */
    }
}

int qa_method_option_set(const qa_method *m, void *options, const char *name, const char *value, qa_error *err) {
    const qa_option *o = qa_method_option(m, name);
    if (!o) return qa_fail(err, QA_ERR_INPUT, "%s has no option '%s'", m->name, name);
    char why[300];
    if (qa_option_parse(o, value, options, why, sizeof why))
        return qa_fail(err, QA_ERR_INPUT, "%s: option %s: %s", m->name, name, why);
    return QA_OK;
}

void qa_method_options_of(const qa_method *m, const qa_method_cfg *cfg, void *out) {
    if (cfg->options) memcpy(out, cfg->options, m->options_size);
    else qa_method_options_defaults(m, out);
}

void qa_method_print_options(const qa_method *m, FILE *out, const char *indent) {
    for (int i = 0; i < m->n_options; i++) {
        const qa_option *o = &m->options[i];
        char allowed[256];
        qa_option_describe(o, allowed, sizeof allowed);
        fprintf(out, "%s%-12s %s (default %s; %s%s)\n", indent, o->name, o->doc, o->def, allowed,
                o->axis_ok ? "; a list is a grid axis" : "");
    }
}

void qa_deployed_add_stat(qa_deployed *d, const char *name, double num, double den) {
    QA_ASSERT(d->n_stats < QA_MAX_DEPLOY_STATS);
    snprintf(d->stat_name[d->n_stats], sizeof d->stat_name[d->n_stats], "%s", name);
    d->stat_num[d->n_stats] = num;
    d->stat_den[d->n_stats] = den;
    d->n_stats++;
}

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

void qa_method_options_markdown(FILE *out) {
    fprintf(out, "| option | methods | default | allowed | grid axis (id tag) | meaning |\n|---|---|---|---|---|---|\n");
    const qa_method *const *all = qa_methods();
    for (int m = 0; all[m]; m++)
        for (int i = 0; i < all[m]->n_options; i++) {
            const qa_option *o = &all[m]->options[i];
            int first = 1;
            for (int k = 0; k < m && first; k++) first = qa_method_option(all[k], o->name) == NULL;
            if (!first) continue; /* one row per option name, listing every method that has it */
            char methods[256], allowed[256];
            size_t off = 0;
            for (int k = m; all[k] && off < sizeof methods; k++)
                if (qa_method_option(all[k], o->name))
                    off += (size_t)snprintf(methods + off, sizeof methods - off, "%s%s", off ? ", " : "", all[k]->name);
            qa_option_describe(o, allowed, sizeof allowed);
            for (char *c = allowed; *c; c++) if (*c == '|') *c = '/'; /* a '|' would end the table cell */
            fprintf(out, "| %s | %s | %s | %s | ", o->name, methods, o->def, allowed);
            if (o->axis_ok) fprintf(out, "yes (`-%s<value>`) | %s |\n", o->id_tag, o->doc);
            else fprintf(out, "no | %s |\n", o->doc);
        }
}
