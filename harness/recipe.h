/* Experiment recipes: a small INI-like text format.
 *
 *   # comment (to end of line)
 *   [section]
 *   key = value
 *   key = [v1, v2, v3]      # a list: the key becomes an axis of the run grid
 *
 * Every key is declared in the schema (recipe.c) with its section, type, default, allowed values
 * and whether it may be a list; [adapt] also takes the options the methods declare (qa_option),
 * for the methods the recipe names. Errors name the file, the line and the key, and list what is
 * allowed; unknown sections and keys are errors. */
#ifndef QA_RECIPE_H
#define QA_RECIPE_H

#include "harness/util.h"

typedef struct qa_recipe qa_recipe;

int qa_recipe_load(const char *path, qa_recipe **out, qa_error *err);
int qa_recipe_parse(const char *path, const char *text, qa_recipe **out, qa_error *err);
/* The same for a buffer of len bytes (a file's contents): a NUL byte in it is an error naming
 * its line, where recipe_parse would silently stop. */
int qa_recipe_parse_buffer(const char *path, const char *data, size_t len, qa_recipe **out, qa_error *err);
void qa_recipe_free(qa_recipe *r);

const char *qa_recipe_path(const qa_recipe *r);
const char *qa_recipe_text(const qa_recipe *r);
/* Values of a key (its default when absent); returns the count, *vals points into the recipe. */
int qa_recipe_values(const qa_recipe *r, const char *section, const char *key, const char *const **vals);
const char *qa_recipe_str(const qa_recipe *r, const char *section, const char *key);
long qa_recipe_int(const qa_recipe *r, const char *section, const char *key);
double qa_recipe_float(const qa_recipe *r, const char *section, const char *key);
int qa_recipe_has(const qa_recipe *r, const char *section, const char *key); /* set explicitly */
/* The line a key is set on (0: not set), for errors found after parsing. */
int qa_recipe_line(const qa_recipe *r, const char *section, const char *key);
/* A recipe error at the line of [section] key: "<file>:<line>: [section] key: <what>"; returns
 * QA_ERR_INPUT. */
int qa_recipe_key_fail(const qa_recipe *r, const char *section, const char *key, qa_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Values of a method option set in [adapt]; 0 when the recipe does not set it (the methods'
 * defaults apply). */
int qa_recipe_option_values(const qa_recipe *r, const char *key, const char *const **vals);

/* Bit settings: "fp" -> (0, 0); "wNaM" -> (N, M) with N in 2..8 and M in 2..8, or "wNa16" -> (N, 0):
 * FP activations. Anything else (spaces, leading zeros, a32) is rejected. */
int qa_parse_bits(const char *s, int *w_bits, int *a_bits);

#endif
