/* A seeded mutation test of the recipe parser, in process (so the sanitizer build watches every
 * byte): 400 recipes made from the experiments' recipes and a few written here by flipping bits,
 * inserting bytes (NUL included) and recipe tokens, deleting and repeating spans, truncating,
 * and inserting long runs. Each must parse, or fail as bad input with a message that names the
 * file; a signal or a hang fails the suite. The same seed gives the same 400 recipes; the
 * longer, coverage-guided run is `make fuzz` (tests/fuzz/). */
#include <criterion/criterion.h>
#include <dirent.h>

#include "common.h"
#include "source_root.h"
#include "harness/recipe.h"

enum { N_MUTANTS = 400, MAX_SEEDS = 64 };

static const char *const tokens[] = {
    "[job]", "[adapt]", "[train]", "[model]", "[eval]", "[data]", "[", "]", "=", " = ", ",", ", ", "#", "\n",
    "\r\n", "kind = adapt", "kind = pretrain", "seed = [0, 1]", "rank = ", "bits = [w8a8, ", "method = lora",
    "1e1", "0x10", "-0", "+4", "1.50", "nan", "inf", "4294967296", "99999999999999999999", "w4a16", "fp", "lr = [",
};

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void buf_reserve(buffer *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    b->cap = (b->len + extra) * 2;
    b->data = realloc(b->data, b->cap);
    cr_assert_not_null(b->data);
}

static void buf_insert(buffer *b, size_t at, const char *bytes, size_t n) {
    buf_reserve(b, n);
    memmove(b->data + at + n, b->data + at, b->len - at);
    memcpy(b->data + at, bytes, n);
    b->len += n;
}

static void buf_delete(buffer *b, size_t at, size_t n) {
    if (at + n > b->len) n = b->len - at;
    memmove(b->data + at, b->data + at + n, b->len - at - n);
    b->len -= n;
}

static size_t below(trng *r, size_t n) { return n ? (size_t)(trng_next(r) % n) : 0; }

/* One random edit of the kinds listed at the top. */
static void mutate_once(buffer *b, trng *r) {
    size_t at = below(r, b->len + 1);
    switch (below(r, 7)) {
    case 0:
        if (b->len) b->data[below(r, b->len)] ^= (char)(1u << below(r, 8));
        break;
    case 1: {
        char byte = (char)below(r, 256);
        buf_insert(b, at, &byte, 1);
        break;
    }
    case 2: {
        const char *t = tokens[below(r, sizeof tokens / sizeof tokens[0])];
        buf_insert(b, at, t, strlen(t));
        break;
    }
    case 3:
        buf_delete(b, at, 1 + below(r, 16));
        break;
    case 4: { /* repeat a span (a line set twice, a list item repeated) */
        size_t from = below(r, b->len + 1), n = below(r, 40);
        if (from + n > b->len) n = b->len - from;
        char *span = malloc(n + 1);
        memcpy(span, b->data + from, n);
        buf_insert(b, at, span, n);
        free(span);
        break;
    }
    case 5:
        b->len = at;
        break;
    default: { /* a long run: a huge token or list */
        const char *unit = below(r, 2) ? "9" : "1, ";
        for (size_t k = 0, n = 50 + below(r, 400); k < n; k++) buf_insert(b, at, unit, strlen(unit));
    }
    }
}

static int load_seeds(char *seeds[], int max) {
    static const char *const inline_seeds[] = {
        "[job]\nkind = adapt\n[adapt]\nmethod = [lora, qlora]\nbits = [w8a8, w4a8]\nrank = [2, 4]\nseed = [0, 1]\n",
        "[job]\nkind = pretrain\n[model]\ndim = 64\ndepth = 2\n[train]\nsteps = 10\nlr = 1e-3\n",
        "# c\n[job]\r\nkind = evaluator\r\n[data]\r\nsynthetic = 1\r\n",
    };
    int n = 0;
    for (size_t i = 0; i < sizeof inline_seeds / sizeof inline_seeds[0]; i++) seeds[n++] = strdup(inline_seeds[i]);
    const char *root = test_source_root();
    cr_assert_not_null(root, "source root unknown (QA_TEST_SOURCE_ROOT or $QA_SOURCE_ROOT)");
    char dir_path[1024];
    snprintf(dir_path, sizeof dir_path, "%s/experiments", root);
    DIR *d = opendir(dir_path);
    cr_assert_not_null(d, "%s", dir_path);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len < 8 || strcmp(e->d_name + len - 7, ".recipe") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        qa_error err;
        cr_assert_eq(qa_read_file(path, &seeds[n], NULL, &err), QA_OK, "%s", err.msg);
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 10, "too few seed recipes");
    return n;
}

/* Parse one mutant: a recipe (returns 1), or bad input explained with the file's name (0). */
static int check_mutant(const buffer *b, int index) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse_buffer("m.recipe", b->data, b->len, &r, &err);
    if (rc == QA_OK) {
        const char *const *vals;
        cr_assert_gt(qa_recipe_values(r, "adapt", "seed", &vals), 0, "mutant %d: no seed", index);
        qa_recipe_free(r);
        return 1;
    }
    cr_assert_eq(rc, QA_ERR_INPUT, "mutant %d: rc %d (%s)", index, rc, err.msg);
    cr_assert_null(r, "mutant %d: a recipe returned with an error", index);
    cr_assert(strncmp(err.msg, "m.recipe", 8) == 0, "mutant %d: message does not name the file: '%s'", index,
              err.msg);
    return 0;
}

Test(recipe_fuzz, four_hundred_mutated_recipes_parse_or_fail_cleanly, .timeout = 60) {
    char *seeds[MAX_SEEDS];
    int n_seeds = load_seeds(seeds, MAX_SEEDS), parsed = 0;
    trng r = trng_new(20241130);
    for (int i = 0; i < N_MUTANTS; i++) {
        const char *seed = seeds[i % n_seeds];
        buffer b = {NULL, 0, 0};
        buf_insert(&b, 0, seed, strlen(seed));
        for (size_t k = 0, edits = 1 + below(&r, 4); k < edits; k++) mutate_once(&b, &r);
        parsed += check_mutant(&b, i);
        free(b.data);
    }
    for (int i = 0; i < n_seeds; i++) free(seeds[i]);
    cr_log_info("%d of %d mutants parsed, the rest failed cleanly", parsed, N_MUTANTS);
    cr_expect(parsed > 0 && parsed < N_MUTANTS, "the mutants should include both good and bad recipes (%d parsed)",
              parsed);
}
