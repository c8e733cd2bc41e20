/* Claims files: a good file parsed field by field, the committed experiments/intlora.claims, and
 * each malformed file rejected with its file, line and the allowed values. */
#include <criterion/criterion.h>

#include "common.h"
#include "harness/claims.h"

TestSuite(claims, .timeout = 30);

static char dir[256], path[300];

static void mk(void) {
    make_tmpdir(dir, sizeof dir, "claims");
    snprintf(path, sizeof path, "%s/x.claims", dir);
}
static void rm(void) { rm_rf_dir(dir); }

static int load_text(const char *text, qa_claim **claims, int *n, qa_error *err) {
    write_text_file(path, text);
    return qa_claims_load(path, claims, n, err);
}

static const char good[] =
    "# comment\n\n"
    "[claim C1a]\n"
    "paper = At 8-bit, A >= B | on fidelity\n"
    "folder = table_subject\n"
    "metric = heldout_loss\n"
    "test = non-inferiority\n"
    "cells = intlora-mul:w8a8, qlora:w8a8:int\n"
    "margin = 0.02\n"
    "  # an indented comment\n"
    "[claim C4]\n"
    "paper = trend\n"
    "folder = fig_bits\n"
    "metric = subject_fidelity\n"
    "test = trend\n"
    "cells = q:w8a8:int q:w6a8:int q:w4a8:int:r8\n"
    "direction = worse\n"
    "alpha = 0.01\n"
    "margin = 10%\n"
    "note = a caveat\n";

Test(claims, a_good_file_field_by_field, .init = mk, .fini = rm) {
    qa_claim *c;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(load_text(good, &c, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(c[0].id, "C1a");
    cr_expect_str_eq(c[0].paper, "At 8-bit, A >= B | on fidelity");
    cr_expect_str_eq(c[0].folder, "table_subject");
    cr_expect_str_eq(qa_claim_metrics[c[0].metric].name, "heldout_loss");
    cr_expect(qa_claim_metrics[c[0].metric].lower_better);
    cr_expect_eq(c[0].kind, QA_TEST_NONINFERIORITY);
    cr_expect_eq(c[0].n_cells, 2);
    cr_expect_str_eq(c[0].cells[1], "qlora:w8a8:int");
    cr_expect(c[0].margin == 0.02 && !c[0].margin_relative && c[0].alpha == 0.05 && !c[0].worse);
    cr_expect_eq(c[0].line, 3);
    cr_expect_eq(c[1].kind, QA_TEST_TREND);
    cr_expect_eq(c[1].n_cells, 3);
    cr_expect_str_eq(c[1].cells[2], "q:w4a8:int:r8");
    cr_expect(c[1].worse && c[1].alpha == 0.01 && c[1].margin_relative && fabs(c[1].margin - 0.1) < 1e-15);
    cr_expect_str_eq(c[1].note, "a caveat");
    free(c);
}

Test(claims, the_committed_claims_file_parses) {
    /* QA_TEST_SOURCE_ROOT is compiled in by tests/meson.build. */
    const char *p = QA_TEST_SOURCE_ROOT "/experiments/intlora.claims";
    qa_claim *c;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_claims_load(p, &c, &n, &err), 0, "%s", err.msg);
    int seen[11] = {0};
    for (int i = 0; i < n; i++) {
        int k = atoi(c[i].id + 1);
        cr_expect(c[i].id[0] == 'C' && k >= 1 && k <= 10, "%s", c[i].id);
        if (k >= 1 && k <= 10) seen[k] = 1;
    }
    for (int k = 1; k <= 10; k++) cr_expect(seen[k], "claim C%d is written", k);
    free(c);
}

Test(claims, the_committed_literature_claims_file_parses) {
    const char *p = QA_TEST_SOURCE_ROOT "/experiments/literature.claims";
    qa_claim *c;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_claims_load(p, &c, &n, &err), 0, "%s", err.msg);
    /* one claim at least for each of the four methods the file is about */
    const char *methods[] = {"peqa:", "lr-qat:", "lq-lora:", "ir-qlora:"};
    for (int m = 0; m < 4; m++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c[i].n_cells; k++) found += !strncmp(c[i].cells[k], methods[m], strlen(methods[m]));
        cr_expect(found > 0, "a claim names %s", methods[m]);
    }
    free(c);
}

/* Each malformed file: the line named and what the message must contain. */
static const struct {
    const char *text;
    int line;
    const char *says;
} bad[] = {
    {"[claim A]\npaper = p\nfolder = f\nmetric = subject_fidelity\ntest = superority\n", 5,
     "allowed: superiority non-inferiority equivalence trend interaction"},
    {"[claim A]\npaper = p\nmetric = dino\n", 3, "allowed: heldout_loss subject_fidelity"},
    {"[claim A]\nfolder = f\nstepz = 3\n", 3, "unknown key 'stepz' in claim A; allowed: paper folder metric test cells margin alpha"},
    {"[claim A]\ncells = intlora-mul\n", 2, "expected method:bits[:deploy[:setting]]"},
    {"[claim A]\npaper = p\nfolder = f\nmetric = fid\ntest = interaction\ncells = a:w8a8 b:w8a8 c:w8a8\n", 6,
     "interaction test takes A1 B1 A2 B2"},
    {"[claim A]\npaper = p\nfolder = f\nmetric = fid\ntest = superiority\n", 1, "claim A has no 'cells'"},
    {"[claim A]\npaper = p\nfolder = f\nmetric = fid\ntest = equivalence\ncells = a:w8a8 b:w8a8\n", 1, "needs 'margin' > 0"},
    {"[claim A]\npaper = p\nfolder = f\nmetric = fid\ntest = equivalence\ncells = a:w8a8 b:w8a8\nmargin = 1\ndirection = worse\n", 8,
     "not to equivalence"},
    {"[claim A]\npaper = p\nfolder = f\nmetric = fid\ntest = trend\ncells = a:w8a8 b:w8a8\n[claim A]\n", 7, "claim A already defined at line 1"},
    {"paper = p\n", 1, "outside a [claim ID] section"},
    {"[claim A]\npaper = p\npaper = q\n", 3, "'paper' set twice"},
    {"[claim A]\nalpha = 0.7\n", 2, "expected a number in (0, 0.5)"},
    {"[claim A]\ndirection = up\n", 2, "allowed: better, worse"},
    {"[claim A]\nmargin = -1\n", 2, "expected a number >= 0"},
    {"[claim A]\nfolder = ../x\n", 2, "not a path"},
    {"[section]\n", 1, "expected a section header [claim ID]"},
    {"[claim a b]\n", 1, "claim id 'a b'"},
    {"[claim A]\njust words\n", 2, "expected 'key = value'"},
};

Test(claims, malformed_files_name_file_line_and_allowed_values, .init = mk, .fini = rm) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qa_claim *c = NULL;
        int n = 0;
        qa_error err = {0, ""};
        cr_expect_eq(load_text(bad[i].text, &c, &n, &err), QA_ERR_INPUT, "case %zu accepted", i);
        char where[320];
        snprintf(where, sizeof where, "%s:%d: ", path, bad[i].line);
        cr_expect(strstr(err.msg, where) != NULL, "case %zu: want '%s' in: %s", i, where, err.msg);
        cr_expect(strstr(err.msg, bad[i].says) != NULL, "case %zu: want '%s' in: %s", i, bad[i].says, err.msg);
    }
}

Test(claims, an_empty_or_missing_file_is_bad_input, .init = mk, .fini = rm) {
    qa_claim *c;
    int n;
    qa_error err = {0, ""};
    cr_expect_eq(load_text("# nothing\n", &c, &n, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "no [claim ID] sections") != NULL, "%s", err.msg);
    cr_expect_eq(qa_claims_load("/nonexistent.claims", &c, &n, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "/nonexistent.claims") != NULL, "%s", err.msg);
}
