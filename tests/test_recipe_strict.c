/* Recipe values read exactly as written: the whole token must parse as the key's type (rank =
 * 1e1 ran rank 1, seed = 1e3 seed 1, rank = 0x10 rank 0), a list value may not repeat (seed =
 * [0, 0] made two runs with one name), a list only where the key is a grid axis, and a NUL byte
 * is an error naming its line (everything after it was ignored). */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/recipe.h"

static const char *head = "[job]\nkind = adapt\n";

/* head + "[section]\n" + line: the value sits on line 4. */
static void expect_line4_error(const char *section, const char *line, const char *const needles[]) {
    char text[1024];
    snprintf(text, sizeof text, "%s[%s]\n%s\n", head, section, line);
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse("r.recipe", text, &r, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "expected QA_ERR_INPUT for '%s', got %d", line, rc);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "r.recipe:4:") != NULL, "'%s': message lacks file:line: %s", line, err.msg);
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]) != NULL, "'%s': message '%s' lacks '%s'", line, err.msg, needles[i]);
}

static void expect_ok(const char *section, const char *line) {
    char text[1024];
    snprintf(text, sizeof text, "%s[%s]\n%s\n", head, section, line);
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("r.recipe", text, &r, &err), QA_OK, "'%s': %s", line, err.msg);
    qa_recipe_free(r);
}

Test(recipe_strict, integer_tokens_are_decimal_digits_only) {
    const char *bad[] = {"rank = 1e1", "seed = 1e3", "rank = 0x10", "rank = 10.0", "rank = 4abc", "rank = [4, 1e1]",
                         "seed = [0, 0x1]", "rank = 4 4", "rank = --4", "rank = 0b1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *key = bad[i][0] == 'r' ? "rank" : "seed";
        expect_line4_error("adapt", bad[i], (const char *const[]){key, "integer", NULL});
    }
    expect_line4_error("adapt", "seed = 99999999999999999999999", (const char *const[]){"seed", "range", NULL});
    expect_line4_error("adapt", "seed = -1", (const char *const[]){"seed", "range", NULL});
    expect_ok("adapt", "rank = 16");
    expect_ok("adapt", "seed = [0, 4294967295]");
    expect_ok("adapt", "rank = 010"); /* decimal, leading zero: still ten */
}

/* What was checked is what the program reads. */
Test(recipe_strict, accessors_read_the_value_that_was_checked) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("r.recipe", "[job]\nkind = adapt\n[adapt]\nrank = 010\n[train]\nlr = .5e-3\n", &r, &err),
                 QA_OK, "%s", err.msg);
    cr_assert_eq(qa_recipe_int(r, "adapt", "rank"), 10);
    cr_assert_float_eq(qa_recipe_float(r, "train", "lr"), 5e-4, 1e-15);
    qa_recipe_free(r);
}

Test(recipe_strict, float_tokens_are_decimal_numbers) {
    const char *bad[] = {"lr = 0x1p-10", "lr = 1e-4x", "lr = nan", "lr = inf", "lr = 1e-4 2", "lr = e5", "lr = 1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_line4_error("train", bad[i], (const char *const[]){"lr", "number", NULL});
    expect_ok("train", "lr = 3e-3");
    expect_ok("train", "lr = .5");
    expect_ok("train", "lr = 5.");
    expect_ok("train", "lr = 1E-3");
}

Test(recipe_strict, repeated_list_values_are_errors) {
    expect_line4_error("adapt", "seed = [0, 0]", (const char *const[]){"seed", "repeated", "0", NULL});
    expect_line4_error("adapt", "seed = [3, 1, 03]", (const char *const[]){"seed", "repeated", "03", NULL});
    expect_line4_error("adapt", "rank = [4, 8, 4]", (const char *const[]){"rank", "repeated", NULL});
    expect_line4_error("adapt", "bits = [w8a8, w4a8, w8a8]", (const char *const[]){"bits", "repeated", "w8a8", NULL});
    expect_line4_error("adapt", "method = [lora, lora]", (const char *const[]){"method", "repeated", NULL});
    expect_line4_error("adapt", "vmc_alpha = [1.5, 1.50]", (const char *const[]){"vmc_alpha", "repeated", NULL});
    expect_line4_error("adapt", "aux_dist = [zero, laplace, zero]", (const char *const[]){"aux_dist", "repeated", NULL});
    expect_ok("adapt", "seed = [0, 1, 2]");
    expect_ok("adapt", "rank = [2, 4, 16]");
}

/* lr took a list and used only its first value. */
Test(recipe_strict, list_for_a_single_value_key_is_an_error) {
    expect_line4_error("train", "lr = [1e-4, 3e-4]", (const char *const[]){"lr", "single value", NULL});
    expect_line4_error("train", "lr = [1e-4]", (const char *const[]){"lr", "single value", NULL});
    expect_line4_error("train", "steps = [10, 20]", (const char *const[]){"steps", "single value", NULL});
}

Test(recipe_strict, nul_byte_is_an_error_naming_its_line) {
    static const char text[] = "[job]\nkind = adapt\n[adapt]\nseed = 0\0\nrank = 1e1\n";
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse_buffer("r.recipe", text, sizeof text - 1, &r, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "rc %d", rc);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "r.recipe:4:") && strstr(err.msg, "NUL"), "%s", err.msg);
    /* the same through a file */
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "recipe-nul");
    snprintf(path, sizeof path, "%s/nul.recipe", dir);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, sizeof text - 1, f);
    fclose(f);
    rc = qa_recipe_load(path, &r, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "rc %d", rc);
    cr_assert(strstr(err.msg, "nul.recipe:4:") && strstr(err.msg, "NUL"), "%s", err.msg);
    rm_rf_dir(dir);
    /* a buffer without a NUL parses like the text */
    const char *good = "[job]\nkind = adapt\n";
    cr_assert_eq(qa_recipe_parse_buffer("g.recipe", good, strlen(good), &r, &err), QA_OK, "%s", err.msg);
    qa_recipe_free(r);
}

/* A method's own options are read as strictly as the recipe's keys (the option parser used
 * strtod, so lora_bits = 1e0 or group_size = 0x8 were taken as numbers). */
Test(recipe_strict, method_option_tokens_are_strict_too) {
    const char *bad[] = {"lora_bits = 4e0", "lora_bits = 0x4", "lora_bits = 4.0", "vmc_alpha = 0x1p0", "vmc_alpha = inf",
                         "vmc_alpha = 1.5abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "method = intlora-mul\n%s", bad[i]);
        char text[1024];
        snprintf(text, sizeof text, "%s[adapt]\n%s\n", head, line);
        qa_recipe *r = NULL;
        qa_error err = {0, ""};
        cr_expect_eq(qa_recipe_parse("r.recipe", text, &r, &err), QA_ERR_INPUT, "'%s' accepted", bad[i]);
        cr_expect(strstr(err.msg, "r.recipe:5:") != NULL, "'%s': %s", bad[i], err.msg);
        qa_recipe_free(r);
    }
    expect_ok("adapt", "method = intlora-mul\nlora_bits = 4\nvmc_alpha = [1.5, 2.5e0]");
}
