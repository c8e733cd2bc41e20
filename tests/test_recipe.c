/* Recipe parser: good text, defaults, and every error naming file:line, the key and what is allowed. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/recipe.h"

static const char *good =
    "# a comment line\n"
    "[job]\n"
    "kind = adapt      # trailing comment\n"
    "name = my-run\n"
    "\n"
    "[model]\n"
    "dim = 64\n"
    "depth=2\n"
    "[train]\n"
    "lr = 1e-4\n"
    "schedule = cosine\n"
    "[adapt]\n"
    "method = [lora]\n"
    "bits = [fp, w8a8, w4a16]\n"
    "rank = 8\n"
    "seed = [0, 1, 2]\n";

Test(recipe, parses_good_text_values_lists_and_defaults) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse("good.recipe", good, &r, &err);
    cr_assert_eq(rc, QA_OK, "parse failed: %s", err.msg);
    cr_assert_str_eq(qa_recipe_str(r, "job", "kind"), "adapt");
    cr_assert_str_eq(qa_recipe_str(r, "job", "name"), "my-run");
    cr_assert_eq(qa_recipe_int(r, "model", "dim"), 64);
    cr_assert_eq(qa_recipe_int(r, "model", "depth"), 2);
    cr_assert_eq(qa_recipe_int(r, "model", "heads"), 4, "default heads");
    cr_assert_float_eq(qa_recipe_float(r, "train", "weight_decay"), 0.01, 1e-12, "default weight_decay");
    cr_assert_str_eq(qa_recipe_str(r, "train", "schedule"), "cosine");
    cr_assert(qa_recipe_has(r, "model", "dim"));
    cr_assert(!qa_recipe_has(r, "model", "heads"));
    const char *const *v;
    int n = qa_recipe_values(r, "train", "lr", &v);
    cr_assert_eq(n, 1);
    cr_assert_float_eq(strtod(v[0], NULL), 1e-4, 1e-12);
    n = qa_recipe_values(r, "adapt", "bits", &v);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0], "fp");
    cr_assert_str_eq(v[1], "w8a8");
    cr_assert_str_eq(v[2], "w4a16");
    n = qa_recipe_values(r, "adapt", "seed", &v);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[2], "2");
    n = qa_recipe_values(r, "adapt", "method", &v);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0], "lora");
    n = qa_recipe_values(r, "eval", "ddim_steps", &v); /* default of an absent section */
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0], "25");
    cr_assert_str_eq(qa_recipe_path(r), "good.recipe");
    cr_assert_str_eq(qa_recipe_text(r), good);
    qa_recipe_free(r);
}

Test(recipe, load_from_file_and_missing_file) {
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir, "recipe");
    snprintf(path, sizeof path, "%s/r.recipe", dir);
    write_text_file(path, good);
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_load(path, &r, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_recipe_int(r, "adapt", "rank"), 8);
    qa_recipe_free(r);
    snprintf(path, sizeof path, "%s/absent.recipe", dir);
    r = NULL;
    int rc = qa_recipe_load(path, &r, &err);
    cr_assert_eq(rc, QA_ERR_INPUT);
    cr_assert_eq(err.code, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "absent.recipe") != NULL, "message names the file: %s", err.msg);
    rm_rf_dir(dir);
}

/* Parse text that must fail; every needle must appear in the message. */
static void expect_error(const char *text, const char *const needles[]) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse("r.recipe", text, &r, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "expected QA_ERR_INPUT for:\n%s\ngot rc %d", text, rc);
    cr_assert_eq(err.code, QA_ERR_INPUT);
    cr_assert_null(r, "no recipe on failure");
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]) != NULL, "message '%s' lacks '%s'", err.msg, needles[i]);
}

Test(recipe, unknown_key_lists_allowed_keys) {
    expect_error("[job]\nkind = adapt\n[model]\ndimm = 3\n",
                 (const char *const[]){"r.recipe:4:", "dimm", "[model]", "allowed", "dim", "depth", "heads", NULL});
}

Test(recipe, unknown_section_lists_sections) {
    expect_error("[job]\nkind = adapt\n\n[modle]\ndim = 3\n",
                 (const char *const[]){"r.recipe:4:", "modle", "allowed", "job", "model", "adapt", "eval", NULL});
}

Test(recipe, bad_integer) {
    expect_error("[job]\nkind = adapt\n[model]\ndim = 12.5\n",
                 (const char *const[]){"r.recipe:4:", "dim", "integer", "12.5", NULL});
    expect_error("[job]\nkind = adapt\n[model]\ndim = abc\n",
                 (const char *const[]){"r.recipe:4:", "dim", "integer", "abc", NULL});
}

Test(recipe, out_of_range_names_range) {
    expect_error("[job]\nkind = adapt\n[model]\ndim = 4\n",
                 (const char *const[]){"r.recipe:4:", "dim", "range", "8", "4096", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nvmc_alpha = [1.5, 11]\n",
                 (const char *const[]){"r.recipe:4:", "vmc_alpha", "range", NULL});
}

Test(recipe, list_on_non_list_key) {
    expect_error("[job]\nkind = adapt\n[model]\ndim = [32, 64]\n",
                 (const char *const[]){"r.recipe:4:", "dim", "single value", NULL});
}

Test(recipe, unknown_method_lists_registry) {
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = [lora, qlora9]\n",
                 (const char *const[]){"r.recipe:4:", "method", "qlora9", "allowed", "lora", NULL});
}

Test(recipe, bad_bits_string) {
    const char *bad[] = {"w9a8", "w4a1", "w4", "fp16", "w4a8x", "W4A8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[job]\nkind = adapt\n[adapt]\nbits = [fp, %s]\n", bad[i]);
        expect_error(text, (const char *const[]){"r.recipe:4:", "bits", bad[i], "w8a8", NULL});
    }
}

Test(recipe, bad_enum_lists_allowed_values) {
    expect_error("[job]\nkind = train\n",
                 (const char *const[]){"r.recipe:2:", "kind", "train", "pretrain|evaluator|adapt", NULL});
    expect_error("[job]\nkind = adapt\n[train]\nschedule = linear\n",
                 (const char *const[]){"r.recipe:4:", "schedule", "constant|cosine", NULL});
}

Test(recipe, duplicate_key_names_both_lines) {
    expect_error("[job]\nkind = adapt\n[model]\ndim = 32\n# again\ndim = 64\n",
                 (const char *const[]){"r.recipe:6:", "dim", "twice", "line 4", NULL});
}

Test(recipe, missing_job_kind) {
    expect_error("[job]\nname = x\n[model]\ndim = 32\n",
                 (const char *const[]){"r.recipe", "kind", "[job]", "pretrain", "adapt", NULL});
    expect_error("", (const char *const[]){"r.recipe", "kind", NULL});
}

Test(recipe, key_before_section) {
    expect_error("# header\ndim = 32\n[job]\nkind = adapt\n",
                 (const char *const[]){"r.recipe:2:", "dim", "section", NULL});
}

Test(recipe, malformed_lines) {
    expect_error("[job]\nkind = adapt\njust words\n", (const char *const[]){"r.recipe:3:", "key = value", NULL});
    expect_error("[job\nkind = adapt\n", (const char *const[]){"r.recipe:1:", "section", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nseed = [1, , 2]\n", (const char *const[]){"r.recipe:4:", "empty", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nseed = [1, 2\n", (const char *const[]){"r.recipe:4:", "]", NULL});
    expect_error("[job]\nkind =\n", (const char *const[]){"r.recipe:2:", "kind", "missing value", NULL});
}

Test(recipe, line_numbers_count_blank_and_comment_lines) {
    expect_error("\n\n# c\n[job]\n\nkind = adapt\n\n\n[model]\n\n   # indented comment\ndepth = 0\n",
                 (const char *const[]){"r.recipe:12:", "depth", NULL});
}

Test(recipe, parse_bits_cases) {
    struct { const char *s; int ok, w, a; } cases[] = {
        {"fp", 1, 0, 0},    {"w8a8", 1, 8, 8},  {"w4a8", 1, 4, 8},  {"w4a16", 1, 4, 0}, {"w2a2", 1, 2, 2},
        {"w8a16", 1, 8, 0}, {"w1a8", 0, 0, 0},  {"w9a8", 0, 0, 0},  {"w4a1", 0, 0, 0},  {"w4a9", 0, 0, 0},
        {"w4", 0, 0, 0},    {"a8", 0, 0, 0},    {"w4a8 ", 0, 0, 0}, {"w4a8b", 0, 0, 0}, {"", 0, 0, 0},
        {"FP", 0, 0, 0},    {"w4a32", 0, 0, 0}, {"w 4a8", 0, 0, 0}, {"w04a08", 0, 0, 0}, {"w4a016", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w = -7, a = -7;
        int rc = qa_parse_bits(cases[i].s, &w, &a);
        if (cases[i].ok) {
            cr_assert_eq(rc, 0, "parse_bits('%s') should succeed", cases[i].s);
            cr_assert_eq(w, cases[i].w, "'%s': w %d, want %d", cases[i].s, w, cases[i].w);
            cr_assert_eq(a, cases[i].a, "'%s': a %d, want %d", cases[i].s, a, cases[i].a);
        } else {
            cr_assert_neq(rc, 0, "parse_bits('%s') should fail", cases[i].s);
        }
    }
}

Test(recipe, crlf_line_endings_accepted) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse("crlf.recipe", "[job]\r\nkind = pretrain\r\n[model]\r\ndim = 16\r\n", &r, &err);
    cr_assert_eq(rc, QA_OK, "%s", err.msg);
    cr_assert_str_eq(qa_recipe_str(r, "job", "kind"), "pretrain");
    cr_assert_eq(qa_recipe_int(r, "model", "dim"), 16);
    qa_recipe_free(r);
}

/* ---- method options: each method's own table (qa_option), checked for the methods named ---- */

Test(recipe, method_option_of_no_named_method_names_the_methods_that_have_it) {
    /* vmc_alpha is IntLoRA's: a LoRA/QLoRA recipe that sets it is an error, wherever it stands */
    expect_error("[job]\nkind = adapt\n[adapt]\nvmc_alpha = 2\nmethod = [lora, qlora]\n",
                 (const char *const[]){"r.recipe:4:", "[adapt] vmc_alpha", "no method of this recipe", "lora, qlora",
                                       "intlora-mul, intlora-shift", NULL});
    /* lora_bits belongs to the MUL variant only */
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = intlora-shift\nlora_bits = 4\n",
                 (const char *const[]){"r.recipe:5:", "lora_bits", "intlora-shift", "methods that have it: intlora-mul", NULL});
}

Test(recipe, method_option_bad_values_name_line_key_and_what_is_allowed) {
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = intlora-mul\naux_dist = cauchy\n",
                 (const char *const[]){"r.recipe:5:", "aux_dist", "'cauchy'", "laplace|gaussian|uniform|zero", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = intlora-mul\nvmc_alpha = [1, 12]\n",
                 (const char *const[]){"r.recipe:5:", "vmc_alpha", "12", "0..10", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = qalora\ngroup_size = 2.5\n",
                 (const char *const[]){"r.recipe:5:", "group_size", "expected an integer", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = qlora\nqlora_base = fp8\n",
                 (const char *const[]){"r.recipe:5:", "qlora_base", "auto|int|nf4", NULL});
    expect_error("[job]\nkind = adapt\n[adapt]\nmethod = qlora\nqlora_base = int\nqlora_base = nf4\n",
                 (const char *const[]){"r.recipe:6:", "qlora_base", "set twice", "line 5", NULL});
}

Test(recipe, unknown_adapt_key_lists_keys_and_method_options) {
    expect_error("[job]\nkind = adapt\n[adapt]\nvmc_alfa = 2\n",
                 (const char *const[]){"r.recipe:4:", "unknown key 'vmc_alfa'", "rank", "vmc_alpha", "group_size", NULL});
}

Test(recipe, method_options_read_back_as_lists) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    const char *text = "[job]\nkind = adapt\n[adapt]\nvmc_stat = [absmax, std]\nmethod = [lora, intlora-mul]\n";
    cr_assert_eq(qa_recipe_parse("r.recipe", text, &r, &err), QA_OK, "%s", err.msg);
    const char *const *v;
    cr_assert_eq(qa_recipe_option_values(r, "vmc_stat", &v), 2);
    cr_expect_str_eq(v[1], "std");
    cr_expect_eq(qa_recipe_option_values(r, "vmc_alpha", &v), 0, "not set: the method's default applies");
    qa_recipe_free(r);
}
