/* IntLoRA and LR-QAT layers against the authors' reference (tests/data/intlora_layers.h5 and
 * tests/data/lrqat_layers.h5, schemas and origin in tests/data/README.md): the fixture command
 * recomputes init/ and trained/ from in/ and the attributes only; grid values (W_round, Phi0,
 * W_int) must match exactly except rounding-boundary ties (a tiny fraction off by one), floats to
 * relative 1e-4. A missing fixture file fails the test, naming the file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/fixture.h"
#include "harness/results.h"

/* The reference file: QA_GOLDEN names another file of the same schema, else the copy in tests/data
 * (QA_TEST_DATA_DIR is compiled in by tests/meson.build). */
static const char *golden_path(void) {
    const char *env = getenv("QA_GOLDEN");
    return env ? env : QA_TEST_DATA_DIR "/intlora_layers.h5";
}

/* Outputs and constants: max over entries of |a - b| / (|b| + 1e-3 max|b|) (entries near zero are
 * judged against the tensor's magnitude). Gradients are float32 sums over tokens or columns with
 * cancellation, so the reference itself carries absolute errors of order eps * sum|terms| (seen:
 * grad_U_delta 9.4297 vs 9.4320 in a row whose terms reach 10^3); they are judged normwise:
 * max|a - b| / max|b|. */
static double norm_err(const float *a, const float *b, size_t n) {
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
        double e = fabs((double)a[i] - b[i]);
        worst = e > worst ? e : worst;
    }
    return worst / (mx + 1e-30);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (fabs(b[i]) + 1e-3 * mx + 1e-30);
        worst = e > worst ? e : worst;
    }
    return worst;
}

Test(fixture, reproduces_the_reference_intlora_layers, .timeout = 120) {
    const char *gp = golden_path();
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s (see tests/data/README.md)", gp);
    char out[] = "/tmp/qa-test-fixture-XXXXXX";
    int fd = mkstemp(out);
    cr_assert(fd >= 0);
    close(fd);
    int done = 0, failed = 0;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fixture_compute(gp, out, stderr, &done, &failed, &err), 0, "%s", err.msg);
    cr_assert_gt(done, 0);
    cr_assert_eq(failed, 0);

    qa_h5 *g, *o;
    cr_assert_eq(qa_h5_open(gp, 0, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_open(out, 0, &o, &err), 0, "%s", err.msg);
    char cases[64][64];
    int n = qa_h5_list(g, "/", cases, 64, &err);
    int checked = 0;
    for (int c = 0; c < n; c++) {
        if (strncmp(cases[c], "case_", 5)) continue;
        char method[64];
        char grp[80];
        snprintf(grp, sizeof grp, "/%.63s", cases[c]);
        cr_assert_eq(qa_h5_attr_get_str(g, grp, "method", method, sizeof method, &err), 0);
        int mul = strcmp(method, "intlora-mul") == 0;
        const char *floats[] = {"init/R", "init/delta", "init/zero_point", "init/y", "trained/W_eff", "trained/y",
                                "trained/grad_A", "trained/grad_B", "init/U_delta", "init/U_zero_point",
                                "trained/grad_U_delta", "trained/grad_U_zero_point"};
        int n_floats = mul ? 12 : 8;
        for (int k = 0; k < n_floats; k++) {
            char p[160];
            snprintf(p, sizeof p, "/%.63s/%.63s", cases[c], floats[k]);
            void *ref = NULL, *got = NULL;
            int nd1, nd2;
            int64_t d1[4], d2[4];
            cr_assert_eq(qa_h5_read(g, p, QA_H5_F32, &ref, 0, &nd1, d1, &err), 0, "%s", err.msg);
            cr_assert_eq(qa_h5_read(o, p, QA_H5_F32, &got, 0, &nd2, d2, &err), 0, "%s", err.msg);
            size_t cnt = 1;
            for (int i = 0; i < nd1; i++) cnt *= (size_t)d1[i];
            size_t cnt2 = 1;
            for (int i = 0; i < nd2; i++) cnt2 *= (size_t)d2[i];
            cr_assert_eq(cnt, cnt2, "%s: %zu values, reference %zu", p, cnt2, cnt);
            double e = strncmp(floats[k], "trained/grad", 12) == 0 ? norm_err(got, ref, cnt) : rel_err(got, ref, cnt);
            cr_expect(e < 1e-4, "%s (%s): relative error %.3g", p, method, e);
            qa_free(ref);
            qa_free(got);
        }
        char p[160];
        snprintf(p, sizeof p, "/%.63s/init/W_round", cases[c]);
        void *ref = NULL, *got = NULL;
        int nd;
        int64_t d[4];
        cr_assert_eq(qa_h5_read(g, p, QA_H5_I32, &ref, 0, &nd, d, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_read(o, p, QA_H5_I32, &got, 0, &nd, d, &err), 0, "%s", err.msg);
        size_t cnt = (size_t)d[0] * (size_t)d[1], off = 0, big = 0;
        for (size_t i = 0; i < cnt; i++) {
            int diff = abs(((int32_t *)got)[i] - ((int32_t *)ref)[i]);
            off += diff != 0;
            big += diff > 1;
        }
        cr_expect_eq(big, 0, "%s: %zu entries differ by more than one", p, big);
        cr_expect(off <= cnt / 1000, "%s: %zu of %zu entries differ by one (rounding ties only)", p, off, cnt);
        qa_free(ref);
        qa_free(got);
        checked++;
    }
    cr_expect_eq(checked, done);
    qa_h5_close(g, &err);
    qa_h5_close(o, &err);
    unlink(out);
}

/* Integers of a recomputed dataset against the reference: none off by more than one, at most one
 * in a thousand off by one (entries on a rounding boundary of the reference's float32 sums). */
static void expect_grid_values(qa_h5 *g, qa_h5 *o, const char *p) {
    void *ref = NULL, *got = NULL;
    int nd;
    int64_t d[4];
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_read(g, p, QA_H5_I32, &ref, 0, &nd, d, &err), 0, "%s: %s", p, err.msg);
    cr_assert_eq(qa_h5_read(o, p, QA_H5_I32, &got, 0, &nd, d, &err), 0, "%s: %s", p, err.msg);
    size_t cnt = (size_t)d[0] * (size_t)(nd > 1 ? d[1] : 1), off = 0, big = 0;
    for (size_t i = 0; i < cnt; i++) {
        int diff = abs(((int32_t *)got)[i] - ((int32_t *)ref)[i]);
        off += diff != 0;
        big += diff > 1;
    }
    cr_expect_eq(big, 0, "%s: %zu entries differ by more than one", p, big);
    cr_expect(off <= cnt / 1000, "%s: %zu of %zu entries differ by one (rounding ties only)", p, off, cnt);
    qa_free(ref);
    qa_free(got);
}

/* LR-QAT layers against the authors' reference (tests/data/lrqat_layers.h5; QA_GOLDEN_LRQAT names
 * another file of that schema): init/ scale and Phi0, trained/ W_int exactly (up to rounding
 * boundaries), W_eff and y to relative 1e-4, the gradients of A, B and the scale normwise. */
Test(fixture, reproduces_the_reference_lrqat_layers, .timeout = 120) {
    const char *env = getenv("QA_GOLDEN_LRQAT");
    const char *gp = env ? env : QA_TEST_DATA_DIR "/lrqat_layers.h5";
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s (see tests/data/README.md)", gp);
    char out[] = "/tmp/qa-test-fixture-lrqat-XXXXXX";
    close(mkstemp(out));
    int done = 0, failed = 0;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fixture_compute(gp, out, stderr, &done, &failed, &err), 0, "%s", err.msg);
    cr_assert_gt(done, 0);
    cr_assert_eq(failed, 0);
    qa_h5 *g, *o;
    cr_assert_eq(qa_h5_open(gp, 0, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_open(out, 0, &o, &err), 0, "%s", err.msg);
    char cases[64][64];
    int n = qa_h5_list(g, "/", cases, 64, &err), checked = 0;
    for (int c = 0; c < n; c++) {
        if (strncmp(cases[c], "case_", 5)) continue;
        const char *floats[] = {"init/scale", "trained/W_eff", "trained/y", "trained/grad_A", "trained/grad_B",
                                "trained/grad_scale"};
        for (int k = 0; k < 6; k++) {
            char p[160];
            snprintf(p, sizeof p, "/%.63s/%.63s", cases[c], floats[k]);
            void *ref = NULL, *got = NULL;
            int nd1, nd2;
            int64_t d1[4], d2[4];
            cr_assert_eq(qa_h5_read(g, p, QA_H5_F32, &ref, 0, &nd1, d1, &err), 0, "%s", err.msg);
            cr_assert_eq(qa_h5_read(o, p, QA_H5_F32, &got, 0, &nd2, d2, &err), 0, "%s: %s", p, err.msg);
            size_t cnt = 1, cnt2 = 1;
            for (int i = 0; i < nd1; i++) cnt *= (size_t)d1[i];
            for (int i = 0; i < nd2; i++) cnt2 *= (size_t)d2[i];
            cr_assert_eq(cnt, cnt2, "%s: %zu values, reference %zu", p, cnt2, cnt);
            double e = strncmp(floats[k], "trained/grad", 12) == 0 ? norm_err(got, ref, cnt) : rel_err(got, ref, cnt);
            cr_expect(e < 1e-4, "%s (lr-qat): relative error %.3g", p, e);
            qa_free(ref);
            qa_free(got);
        }
        char p[160];
        snprintf(p, sizeof p, "/%.63s/init/Phi0", cases[c]);
        expect_grid_values(g, o, p);
        snprintf(p, sizeof p, "/%.63s/trained/W_int", cases[c]);
        expect_grid_values(g, o, p);
        checked++;
    }
    cr_expect_eq(checked, done);
    qa_h5_close(g, &err);
    qa_h5_close(o, &err);
    unlink(out);
}

/* A temporary copy of a fixture file (in: a mkstemp template), to be edited by a test. */
static void copy_to_temp(const char *src, char *in) {
    close(mkstemp(in));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, in);
    cr_assert_eq(system(cmd), 0, "cannot copy %s", src);
}

/* qa_fixture_compute(in, out) with its log read back into text. */
static int compute_logged(const char *in, const char *out, char *text, size_t len, int *done, int *failed) {
    FILE *log = tmpfile();
    qa_error err = {0, ""};
    int rc = qa_fixture_compute(in, out, log, done, failed, &err);
    rewind(log);
    size_t nr = fread(text, 1, len - 1, log);
    text[nr] = 0;
    fclose(log);
    return rc;
}

/* A case of the LR-QAT schema whose grid is not the signed n_bits grid is named, not computed. */
Test(fixture, an_lrqat_case_with_another_grid_is_reported) {
    const char *gp = QA_TEST_DATA_DIR "/lrqat_layers.h5";
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s", gp);
    char in[] = "/tmp/qa-test-fixture-lrin-XXXXXX", out[] = "/tmp/qa-test-fixture-lrout-XXXXXX";
    copy_to_temp(gp, in);
    close(mkstemp(out));
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(in, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/case_000", "int_min", 0, &err), 0, "%s", err.msg);
    qa_h5_close(f, &err);
    int done = 0, failed = 0;
    char text[2048];
    cr_expect_eq(compute_logged(in, out, text, sizeof text, &done, &failed), QA_ERR_INPUT);
    cr_expect_eq(failed, 1);
    cr_expect_gt(done, 0);
    cr_expect(strstr(text, "case_000") && strstr(text, "int_min"), "%s", text);
    unlink(in);
    unlink(out);
}

Test(fixture, reports_cases_it_cannot_compute_and_writes_the_rest) {
    const char *gp = golden_path();
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s (see tests/data/README.md)", gp);
    /* a copy of the golden file with one case renamed to an unknown method and one missing in/x */
    char in[] = "/tmp/qa-test-fixture-in-XXXXXX", out[] = "/tmp/qa-test-fixture-out-XXXXXX";
    copy_to_temp(gp, in);
    close(mkstemp(out));
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(in, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, "/case_001", "method", "dora", &err), 0);
    float x[1] = {0};
    int64_t dims[1] = {1};
    cr_assert_eq(qa_h5_write(f, "/case_002/in/x", QA_H5_F32, x, 1, dims, &err), 0); /* wrong shape */
    qa_h5_close(f, &err);
    int done = 0, failed = 0;
    char text[4096];
    cr_expect_eq(compute_logged(in, out, text, sizeof text, &done, &failed), QA_ERR_INPUT);
    cr_expect_eq(failed, 2);
    cr_expect_eq(done, 4);
    cr_expect(strstr(text, "case_001") && strstr(text, "unknown method 'dora'"), "%s", text);
    cr_expect(strstr(text, "case_002") && strstr(text, "in/x"), "%s", text);
    cr_assert_eq(qa_h5_open(out, 0, &f, &err), 0);
    cr_expect(qa_h5_exists(f, "/case_000/trained/W_eff"), "computable cases are still written");
    cr_expect(!qa_h5_exists(f, "/case_001/trained"), "failed cases are not");
    qa_h5_close(f, &err);
    unlink(in);
    unlink(out);
}

Test(fixture, a_file_without_the_schema_is_bad_input) {
    char in[] = "/tmp/qa-test-fixture-bad-XXXXXX";
    close(mkstemp(in));
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(in, &f, &err), 0);
    float v = 1;
    int64_t d[1] = {1};
    qa_h5_write(f, "/something", QA_H5_F32, &v, 1, d, &err);
    qa_h5_close(f, &err);
    int done, failed;
    cr_expect_eq(qa_fixture_compute(in, "/tmp/qa-test-fixture-bad-out.h5", stderr, &done, &failed, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "no /case_NNN") != NULL, "%s", err.msg);
    unlink(in);
    unlink("/tmp/qa-test-fixture-bad-out.h5");
}

/* IR-QLoRA's information-calibrated quantizer (ICQ, integer variant) against the authors'
 * reference (tests/data/icq_quantizer.h5; QA_GOLDEN_ICQ names another file of that schema):
 * every case's scale and zero point to relative 1e-4, W_q likewise, the codes exactly except
 * entries on a rounding boundary (at most one in a thousand off by one). */
static void expect_icq_floats(qa_h5 *g, qa_h5 *o, const char *p) {
    void *ref = NULL, *got = NULL;
    int nd1, nd2;
    int64_t d1[4], d2[4];
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_read(g, p, QA_H5_F32, &ref, 0, &nd1, d1, &err), 0, "%s: %s", p, err.msg);
    cr_assert_eq(qa_h5_read(o, p, QA_H5_F32, &got, 0, &nd2, d2, &err), 0, "%s: %s", p, err.msg);
    size_t cnt = 1, cnt2 = 1;
    for (int i = 0; i < nd1; i++) cnt *= (size_t)d1[i];
    for (int i = 0; i < nd2; i++) cnt2 *= (size_t)d2[i];
    cr_assert_eq(cnt, cnt2, "%s: %zu values, reference %zu", p, cnt2, cnt);
    double e = rel_err(got, ref, cnt);
    cr_expect(e < 1e-4, "%s (ir-qlora-icq): relative error %.3g", p, e);
    qa_free(ref);
    qa_free(got);
}

/* Codes: none off by more than one, at most one in a thousand off by one (rounding boundaries). */
static void expect_icq_codes(qa_h5 *g, qa_h5 *o, const char *p) {
    void *ref = NULL, *got = NULL;
    int nd;
    int64_t d[4];
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_read(g, p, QA_H5_I32, &ref, 0, &nd, d, &err), 0, "%s: %s", p, err.msg);
    cr_assert_eq(qa_h5_read(o, p, QA_H5_I32, &got, 0, &nd, d, &err), 0, "%s: %s", p, err.msg);
    size_t cnt = (size_t)d[0] * (size_t)(nd > 1 ? d[1] : 1), off = 0;
    int worst = 0;
    for (size_t i = 0; i < cnt; i++) {
        int diff = abs(((int32_t *)got)[i] - ((int32_t *)ref)[i]);
        off += diff != 0;
        worst = diff > worst ? diff : worst;
    }
    cr_expect(worst <= 1, "%s: an entry differs by %d", p, worst);
    cr_expect(off <= cnt / 1000, "%s: %zu of %zu entries differ by one (rounding ties only)", p, off, cnt);
    qa_free(ref);
    qa_free(got);
}

Test(fixture, reproduces_the_reference_icq_quantizer, .timeout = 120) {
    const char *env = getenv("QA_GOLDEN_ICQ");
    const char *gp = env ? env : QA_TEST_DATA_DIR "/icq_quantizer.h5";
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s (see tests/data/README.md)", gp);
    char out[] = "/tmp/qa-test-fixture-icq-XXXXXX";
    close(mkstemp(out));
    int done = 0, failed = 0;
    qa_error err = {0, ""};
    cr_assert_eq(qa_fixture_compute(gp, out, stderr, &done, &failed, &err), 0, "%s", err.msg);
    cr_assert_gt(done, 0);
    cr_assert_eq(failed, 0);
    qa_h5 *g, *o;
    cr_assert_eq(qa_h5_open(gp, 0, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_open(out, 0, &o, &err), 0, "%s", err.msg);
    char cases[64][64];
    int n = qa_h5_list(g, "/", cases, 64, &err), checked = 0;
    for (int c = 0; c < n; c++) {
        if (strncmp(cases[c], "case_", 5)) continue;
        const char *floats[] = {"icq/scale", "icq/zero_point", "icq/W_q"};
        char p[160];
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "/%.63s/%.63s", cases[c], floats[k]);
            expect_icq_floats(g, o, p);
        }
        snprintf(p, sizeof p, "/%.63s/icq/codes", cases[c]);
        expect_icq_codes(g, o, p);
        checked++;
    }
    cr_expect_eq(checked, done);
    qa_h5_close(g, &err);
    qa_h5_close(o, &err);
    unlink(out);
}

/* An ICQ case with an unsupported layout is named, not computed; the others are still written. */
Test(fixture, an_icq_case_it_cannot_compute_is_reported) {
    const char *gp = QA_TEST_DATA_DIR "/icq_quantizer.h5";
    cr_assert(access(gp, R_OK) == 0, "reference fixture file missing: %s", gp);
    char in[] = "/tmp/qa-test-fixture-icqin-XXXXXX", out[] = "/tmp/qa-test-fixture-icqout-XXXXXX";
    close(mkstemp(in));
    close(mkstemp(out));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", gp, in);
    cr_assert_eq(system(cmd), 0);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(in, 1, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/case_000", "channel_wise", 0, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/case_001", "n_bits", 9, &err), 0, "%s", err.msg);
    qa_h5_close(f, &err);
    FILE *log = tmpfile();
    int done = 0, failed = 0;
    cr_expect_eq(qa_fixture_compute(in, out, log, &done, &failed, &err), QA_ERR_INPUT);
    cr_expect_eq(failed, 2);
    cr_expect_gt(done, 0);
    rewind(log);
    char text[2048] = "";
    size_t nr = fread(text, 1, sizeof text - 1, log);
    text[nr] = 0;
    fclose(log);
    cr_expect(strstr(text, "case_000") && strstr(text, "channel_wise"), "%s", text);
    cr_expect(strstr(text, "case_001") && strstr(text, "n_bits 9"), "%s", text);
    cr_assert_eq(qa_h5_open(out, 0, &f, &err), 0);
    cr_expect(qa_h5_exists(f, "/case_002/icq/codes"), "computable cases are still written");
    cr_expect(!qa_h5_exists(f, "/case_000/icq"), "failed cases are not");
    qa_h5_close(f, &err);
    unlink(in);
    unlink(out);
}
