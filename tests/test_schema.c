/* The run schema: every field of the table written by record.c and read back by runs.c (the test
 * iterates the table, so a field added to it is covered without touching this file); the format
 * version; ids of any length. */
#include <criterion/criterion.h>

#include "common.h"
#include "datasets/dataset.h"
#include "harness/record.h"
#include "harness/results.h"
#include "harness/runs.h"
#include "harness/schema.h"

TestSuite(schema, .timeout = 60);

static char dir[256];
static void setup(void) { make_tmpdir(dir, sizeof dir, "schema"); }
static void teardown(void) { rm_rf_dir(dir); }

/* The structs the record steps take, filled by the test from the table. */
typedef struct {
    qa_record_run run;
    qa_record_failure failure;
    qa_record_merge merge;
    qa_record_kernels kernels;
    qa_record_eval eval;
    qa_artifact_size artifact;
    qa_record_costs costs;
    char texts[128][48];
} step_values;

/* The struct a step's values come from in this test; NULL: the writer computes them itself
 * (provenance, the kernels at the end, the status). */
static void *step_source(step_values *v, qa_record_step step) {
    switch (step) {
    case QA_STEP_BEGIN: return &v->run;
    case QA_STEP_DIVERGED: return &v->failure;
    case QA_STEP_MERGE: return &v->merge;
    case QA_STEP_INT8: return &v->kernels;
    case QA_STEP_VARIANT: return &v->eval;
    case QA_STEP_ARTIFACT: return &v->artifact;
    case QA_STEP_FINISH: return &v->costs;
    default: return NULL;
    }
}

/* A distinct value for field i: 10 + i (+ 0.25 for a double: it must survive exactly), or the
 * text "value-<i>"; every value counts as measured. */
static double field_value(int i, qa_value_kind kind) { return 10 + i + (kind == QA_VAL_F64 ? 0.25 : 0); }

static void fill_values(step_values *v) {
    memset(v, 0, sizeof *v);
    cr_assert_lt(qa_n_run_fields, 128);
    for (int i = 0; i < qa_n_run_fields; i++) {
        const qa_run_field *fd = &qa_run_fields[i];
        char *src = step_source(v, fd->step);
        if (!src || fd->from.kind == QA_VAL_NONE) continue; /* NONE: written with the run's options */
        char *at = src + fd->from.offset;
        snprintf(v->texts[i], sizeof v->texts[i], "value-%d", i);
        switch (fd->from.kind) {
        case QA_VAL_STR: *(const char **)at = v->texts[i]; break;
        case QA_VAL_INT: *(int *)at = (int)field_value(i, QA_VAL_INT); break;
        case QA_VAL_LONG: *(long *)at = (long)field_value(i, QA_VAL_LONG); break;
        default: *(double *)at = field_value(i, QA_VAL_F64); break;
        }
    }
}

static double samples[784], per_image[2] = {0.5, 0.75};

/* Every record step once, in the pipeline's order; the run file is <dir>/<id>.h5. */
static void record_all(step_values *v, const char *id, char *path, size_t len) {
    v->run.id = id;
    v->eval.variant = "int";
    v->eval.heldout_per_image = per_image;
    v->eval.n_heldout = 2;
    static float image[784];
    v->eval.samples = image;
    v->eval.n_samples = 1;
    /* a field no struct member writes (learning_rate) comes with the run's options, as in run.c */
    static qa_record_attr opts[4];
    v->run.n_options = 0;
    for (int i = 0; i < qa_n_run_fields; i++)
        if (qa_run_fields[i].step == QA_STEP_BEGIN && qa_run_fields[i].from.kind == QA_VAL_NONE)
            opts[v->run.n_options++] = (qa_record_attr){qa_run_fields[i].name, field_value(i, QA_VAL_F64)};
    v->run.options = opts;
    snprintf(path, len, "%s/%s.h5", dir, id);
    qa_record *rec;
    qa_error err = {0, ""};
    cr_assert_eq(qa_record_begin(path, &v->run, &rec, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_train_rows(rec, samples, 0, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_diverged(rec, v->failure.reason, v->failure.step, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_merge_info(rec, &v->merge, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_int8_layers(rec, v->kernels.int8_layers, v->kernels.deploy_kernel, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_variant(rec, &v->eval, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_artifact(rec, &v->artifact, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_finish(rec, &v->costs, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_record_end(rec, QA_OK, &err), QA_OK, "%s", err.msg);
}

/* The HDF5 object of a field in the file of run id (variant "int"). */
static void object_of(const qa_run_field *fd, const char *id, char *obj, size_t len) {
    if (fd->object == QA_OBJ_ROOT) snprintf(obj, len, "/");
    else snprintf(obj, len, "/runs/%s%s%s", id, qa_run_object_suffix[fd->object], fd->object == QA_OBJ_EVAL ? "int" : "");
}

/* The reader's value of a field: its text, or its number in *number. */
static const char *read_back(const qa_run_record *r, const qa_run_field *fd, double *number) {
    const char *base = fd->object == QA_OBJ_EVAL ? (const char *)&r->eval[0] : (const char *)r;
    const char *at = base + fd->to.offset;
    switch (fd->to.kind) {
    case QA_VAL_STR: return *(char *const *)at;
    case QA_VAL_INT: *number = *(const int *)at; return NULL;
    case QA_VAL_LONG: *number = (double)*(const long *)at; return NULL;
    default: *number = *(const double *)at; return NULL;
    }
}

/* The field as the file holds it, checked against what the reader returned. */
static void expect_file_agrees(qa_h5 *f, const char *obj, const qa_run_field *fd, const char *text, double number) {
    qa_error err = {0, ""};
    const char *name = qa_run_field_name(fd);
    if (qa_run_field_is_text(fd)) {
        char *stored;
        cr_assert_eq(qa_h5_attr_get_text(f, obj, name, &stored, &err), QA_OK, "%s", err.msg);
        cr_expect_str_eq(text, stored, "%s of %s", name, obj);
        qa_free(stored);
    } else {
        double stored;
        cr_assert_eq(qa_h5_attr_get_f64(f, obj, name, &stored, &err), QA_OK, "%s", err.msg);
        cr_expect_eq(number, stored, "%s of %s: read %.17g, file %.17g", name, obj, number, stored);
    }
}

Test(schema, every_field_of_the_table_round_trips, .init = setup, .fini = teardown) {
    static step_values v;
    fill_values(&v);
    char path[512];
    record_all(&v, "toy-w4a8-r2-s3", path, sizeof path);
    qa_run_record r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load_file(path, &r, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(r.n_eval, 1);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), QA_OK, "%s", err.msg);
    for (int i = 0; i < qa_n_run_fields; i++) {
        const qa_run_field *fd = &qa_run_fields[i];
        char obj[256];
        object_of(fd, r.id, obj, sizeof obj);
        cr_expect(qa_h5_has_attr(f, obj, qa_run_field_name(fd)), "field %s of %s was not written", qa_run_field_name(fd), obj);
        double number = 0;
        const char *text = read_back(&r, fd, &number);
        expect_file_agrees(f, obj, fd, text, number);
        if (!step_source(&v, fd->step)) continue; /* computed by the writer: the file agreeing is the check */
        if (fd->from.kind == QA_VAL_NONE) { /* an option of the run */
            cr_expect_eq(number, field_value(i, QA_VAL_F64), "%s: %.17g", qa_run_field_name(fd), number);
            continue;
        }
        if (qa_run_field_is_text(fd)) cr_expect_str_eq(text, v.texts[i], "%s", qa_run_field_name(fd));
        else cr_expect_eq(number, field_value(i, fd->from.kind), "%s: %.17g", qa_run_field_name(fd), number);
    }
    qa_error cerr;
    qa_h5_close(f, &cerr);
    cr_expect_eq(r.format_version, QA_RUN_FORMAT_VERSION);
    cr_expect_str_eq(r.status, "done");
    cr_expect_eq(r.eval[0].n_images, 2);
    cr_expect_eq(r.eval[0].measured, (1u << N_MET) - 1, "every metric measured: %#x", r.eval[0].measured);
    qa_runs_record_free(&r);
}

/* A run file names the commit its binary was built from as the source tree is now: what
 * scripts/commit-id.sh gives (meson's vcs_tag runs it at every build, and `meson test` rebuilds
 * before it runs; a test binary run by hand after a commit, without a build, fails here, as its
 * run files would name the wrong commit). A value fixed when the build folder was configured
 * went stale at the next commit. Skipped outside a git checkout. */
Test(schema, the_recorded_commit_is_the_source_trees_commit, .init = setup, .fini = teardown) {
    char cmd[600], now[128] = "";
    snprintf(cmd, sizeof cmd, "sh '%s/scripts/commit-id.sh' '%s' 2>/dev/null", QA_TEST_SOURCE_ROOT, QA_TEST_SOURCE_ROOT);
    if (capture_command(cmd, now, sizeof now) != 0 || !now[0]) cr_skip_test("not a git checkout");
    now[strcspn(now, "\n")] = 0;
    static step_values v;
    fill_values(&v);
    char path[512];
    record_all(&v, "toy-w4a8-r2-s4", path, sizeof path);
    qa_run_record r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load_file(path, &r, &err), QA_OK, "%s", err.msg);
    cr_expect_str_eq(r.provenance.git_commit, now, "the run file records %s, scripts/commit-id.sh says %s now (rebuild?)",
                     r.provenance.git_commit, now);
    qa_runs_record_free(&r);
}

Test(schema, every_metric_has_a_field_and_a_direction) {
    for (int m = 0; m < N_MET; m++) {
        const qa_run_field *fd = qa_metric_field(m);
        cr_expect_eq(fd->object, QA_OBJ_EVAL, "%s", qa_metrics[m].name);
        cr_expect_eq(fd->to.kind, QA_VAL_F64, "%s", qa_metrics[m].name);
        /* every metric has a direction but the floor, a reference value */
        if (m == MET_FLOOR) cr_expect_str_eq(qa_metric_arrow(m), "");
        else cr_expect_neq(qa_metrics[m].better, QA_BETTER_NONE, "%s", qa_metrics[m].name);
        cr_expect(qa_metrics[m].lo < qa_metrics[m].hi, "%s has a range", qa_metrics[m].name);
        cr_expect_str_eq(qa_met_names[m], qa_metrics[m].name);
        cr_expect_eq(qa_met_lower_better[m], qa_metrics[m].better == QA_BETTER_LOWER);
        cr_expect_eq(qa_run_field_find(QA_OBJ_EVAL, qa_metrics[m].name), fd);
    }
    for (int i = 0; i < qa_n_run_fields; i++) {
        const qa_run_field *fd = &qa_run_fields[i];
        cr_expect(qa_run_field_label(fd) && qa_run_field_label(fd)[0], "%s has a report label", qa_run_field_name(fd));
        cr_expect_eq(qa_run_field_find(fd->object, qa_run_field_name(fd)), fd, "%s is declared once", qa_run_field_name(fd));
    }
}

static void set_root_version(const char *path, double version) {
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", QA_RUN_FORMAT_ATTR, version, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
}

Test(schema, a_newer_format_version_is_bad_input_naming_file_and_versions, .init = setup, .fini = teardown) {
    static step_values v;
    fill_values(&v);
    char path[512];
    record_all(&v, "toy-w4a8-r2-s3", path, sizeof path);
    set_root_version(path, QA_RUN_FORMAT_VERSION + 1);
    qa_run_record r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load_file(path, &r, &err), QA_ERR_INPUT);
    char newer[16], ours[16];
    snprintf(newer, sizeof newer, "%d", QA_RUN_FORMAT_VERSION + 1);
    snprintf(ours, sizeof ours, "%d", QA_RUN_FORMAT_VERSION);
    cr_expect(strstr(err.msg, path) && strstr(err.msg, newer) && strstr(err.msg, ours), "%s", err.msg);
    /* a folder scan that skips damaged files does not skip this one: it needs a newer build */
    qa_run_record *runs;
    qa_run_skipped *skipped;
    int n, n_skipped;
    cr_expect_eq(qa_runs_scan(dir, &runs, &n, &skipped, &n_skipped, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, newer) != NULL, "%s", err.msg);
    set_root_version(path, 0.5);
    cr_expect_eq(qa_runs_load_file(path, &r, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "unknown") && strstr(err.msg, "0.5"), "%s", err.msg);
}

Test(schema, a_file_without_a_version_is_version_1, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/old.h5", dir);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(path, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, "/runs/lora-w8a8-r4-s0", "method", "lora", &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, "/runs/lora-w8a8-r4-s0", "bits", "w8a8", &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, "/runs/lora-w8a8-r4-s0", "status", "done", &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
    qa_run_record r;
    cr_assert_eq(qa_runs_load_file(path, &r, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(r.format_version, 1);
    cr_expect_str_eq(r.task, "subject", "a missing task reads as the schema's absent text");
    cr_expect_eq(r.item_class, -1, "a missing item class reads as the schema's absent value");
    qa_runs_record_free(&r);
}

Test(schema, ids_of_any_length_are_written_and_read_whole, .init = setup, .fini = teardown) {
    static step_values v;
    fill_values(&v);
    char id[400] = "toy-w4a8-r2-a1.", path[1024];
    size_t len = strlen(id);
    while (len < 200) id[len++] = '0'; /* a file name holds 255 bytes: 200 leaves room for .h5.partial */
    snprintf(id + len, sizeof id - len, "1-s12");
    record_all(&v, id, path, sizeof path);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    /* the method and bits in the file are the test's texts: the axes are cut from the id by them */
    cr_assert_eq(qa_runs_load(dir, &runs, &n, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(runs[0].id, id);
    cr_expect_eq(strlen(runs[0].id), strlen(id));
    uint8_t *pix;
    int ns;
    cr_expect_eq(qa_runs_samples(&runs[0], "int", &pix, &ns, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(ns, 1);
    qa_free(pix);
    qa_runs_free(runs, n);
}

Test(schema, bounded_metrics_get_bounded_intervals) {
    double lo, hi;
    /* identification is a share: 0.95 +- 0.1 is [0.85, 1], not [0.85, 1.05] */
    qa_metric_interval(MET_IDENT, 0.95, 0.1, &lo, &hi);
    cr_expect(fabs(lo - 0.85) < 1e-12 && hi == 1.0, "[%g, %g]", lo, hi);
    qa_metric_interval(MET_PRIOR_DIST, 0.01, 0.03, &lo, &hi);
    cr_expect(lo == 0.0 && fabs(hi - 0.04) < 1e-12, "[%g, %g]", lo, hi);
    qa_metric_interval(MET_GAIN, -0.1, 0.05, &lo, &hi); /* a gain may be negative */
    cr_expect(fabs(lo + 0.15) < 1e-12 && fabs(hi + 0.05) < 1e-12, "[%g, %g]", lo, hi);
    qa_metric_interval(MET_LOSS, 0.02, 0.05, &lo, &hi); /* bounded below only */
    cr_expect(lo == 0.0 && fabs(hi - 0.07) < 1e-12, "[%g, %g]", lo, hi);
    qa_metric_interval(MET_FID, 100, 1e6, &lo, &hi);
    cr_expect(lo == 0.0 && hi == 100 + 1e6);
    /* the style score is a contrast over the style's own: above 1 where the dark rows are darker
     * than the style makes them, up to black rows; its interval is clipped there, not at 1 */
    float img[28 * 28];
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) img[y * 28 + x] = (y & 3) < 2 ? 1.0f : -1.0f;
    cr_expect_float_eq(qa_style_score(img, 28), QA_STYLE_SCORE_MAX, 1e-9, "black dark rows: %g", qa_style_score(img, 28));
    qa_metric_interval(MET_STYLE, 1.0, 0.2, &lo, &hi);
    cr_expect(fabs(lo - 0.8) < 1e-12 && fabs(hi - 1.2) < 1e-12, "[%g, %g]", lo, hi);
    qa_metric_interval(MET_STYLE, 1.5, 0.2, &lo, &hi);
    cr_expect(fabs(hi - QA_STYLE_SCORE_MAX) < 1e-12, "[%g, %g]", lo, hi);
}
