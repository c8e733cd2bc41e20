/* HDF5 layer: round trips of datasets, attributes, listings and extendible tables; error paths. */
#include <criterion/criterion.h>

#include "common.h"
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

#include <hdf5.h>

#include "harness/results.h"

static char dir[256];
static void setup(void) { make_tmpdir(dir, sizeof dir, "h5"); }
static void teardown(void) { rm_rf_dir(dir); }

static qa_h5 *create_in(const char *name, char *path, size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    qa_h5 *f = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(path, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_not_null(f);
    return f;
}

static void close_ok(qa_h5 *f) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
}

static qa_h5 *reopen(const char *path, int writable) {
    qa_h5 *f = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, writable, &f, &err), QA_OK, "%s", err.msg);
    return f;
}

Test(results, dataset_round_trip_f32_i32_u8_nested, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("a.h5", path, sizeof path);
    qa_error err = {0, ""};
    float a[2 * 3] = {1.5f, -2.25f, 3e-8f, 1e30f, 0.f, -0.f};
    int32_t b[4] = {-2147483647 - 1, -1, 0, 2147483647};
    uint8_t c[2 * 2 * 2] = {0, 1, 2, 127, 128, 200, 254, 255};
    int64_t da[2] = {2, 3}, db[1] = {4}, dc[3] = {2, 2, 2};
    cr_assert_eq(qa_h5_write(f, "/runs/x/train/a", QA_H5_F32, a, 2, da, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_write(f, "/runs/x/b", QA_H5_I32, b, 1, db, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_write(f, "/c", QA_H5_U8, c, 3, dc, &err), QA_OK, "%s", err.msg);
    cr_assert(qa_h5_exists(f, "/runs"));
    cr_assert(qa_h5_exists(f, "/runs/x/train"));
    cr_assert(qa_h5_exists(f, "/runs/x/train/a"));
    cr_assert(!qa_h5_exists(f, "/runs/y/train/a"), "missing intermediate group");
    cr_assert(!qa_h5_exists(f, "/nothing"));
    close_ok(f);

    f = reopen(path, 0);
    void *p = NULL;
    int nd = 0;
    int64_t dims[4] = {0};
    cr_assert_eq(qa_h5_read(f, "/runs/x/train/a", QA_H5_F32, &p, 0, &nd, dims, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(nd, 2);
    cr_assert_eq(dims[0], 2);
    cr_assert_eq(dims[1], 3);
    cr_assert_eq(memcmp(p, a, sizeof a), 0, "f32 bytes differ");
    free(p);
    p = NULL;
    cr_assert_eq(qa_h5_read(f, "/runs/x/b", QA_H5_I32, &p, 0, &nd, dims, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(nd, 1);
    cr_assert_eq(dims[0], 4);
    cr_assert_eq(memcmp(p, b, sizeof b), 0, "i32 values differ");
    free(p);
    p = NULL;
    cr_assert_eq(qa_h5_read(f, "/c", QA_H5_U8, &p, 0, &nd, dims, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(nd, 3);
    cr_assert_eq(memcmp(p, c, sizeof c), 0, "u8 values differ");
    free(p);
    /* type conversion on read: u8 -> f32 */
    float cf[8];
    void *q = cf;
    cr_assert_eq(qa_h5_read(f, "/c", QA_H5_F32, &q, 8, &nd, dims, &err), QA_OK, "%s", err.msg);
    for (int i = 0; i < 8; i++) cr_assert_eq(cf[i], (float)c[i], "u8->f32 [%d]", i);
    /* caller buffer too small */
    float small[3];
    q = small;
    int rc = qa_h5_read(f, "/c", QA_H5_F32, &q, 3, &nd, dims, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "a too-small buffer must be refused");
    cr_assert(strstr(err.msg, "/c") != NULL, "%s", err.msg);
    /* missing dataset */
    p = NULL;
    rc = qa_h5_read(f, "/runs/x/nope", QA_H5_F32, &p, 0, &nd, dims, &err);
    cr_assert_eq(rc, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "/runs/x/nope") != NULL, "%s", err.msg);
    close_ok(f);
}

Test(results, overwrite_dataset_replaces_it, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("o.h5", path, sizeof path);
    qa_error err = {0, ""};
    float a[3] = {1, 2, 3}, b[5] = {9, 8, 7, 6, 5};
    int64_t d3[1] = {3}, d5[1] = {5};
    cr_assert_eq(qa_h5_write(f, "/g/x", QA_H5_F32, a, 1, d3, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_write(f, "/g/x", QA_H5_F32, b, 1, d5, &err), QA_OK, "%s", err.msg);
    void *p = NULL;
    int nd;
    int64_t dims[4];
    cr_assert_eq(qa_h5_read(f, "/g/x", QA_H5_F32, &p, 0, &nd, dims, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(dims[0], 5);
    cr_assert_eq(memcmp(p, b, sizeof b), 0);
    free(p);
    close_ok(f);
}

Test(results, attributes_string_and_f64, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("attr.h5", path, sizeof path);
    qa_error err = {0, ""};
    const char *txt = "[job]\nkind = adapt\n# ünïcode ✓\n";
    cr_assert_eq(qa_h5_attr_set_str(f, "/", "recipe", txt, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", "loss", 0.123456789012345, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/runs/r1", "seed", 42.0, &err), QA_OK, "attr on a new group: %s", err.msg);
    cr_assert_eq(qa_h5_attr_set_str(f, "/", "recipe", "replaced", &err), QA_OK, "overwrite: %s", err.msg);
    close_ok(f);

    f = reopen(path, 0);
    char buf[256];
    double v = 0;
    cr_assert_eq(qa_h5_attr_get_str(f, "/", "recipe", buf, sizeof buf, &err), QA_OK, "%s", err.msg);
    cr_assert_str_eq(buf, "replaced");
    cr_assert_eq(qa_h5_attr_get_f64(f, "/", "loss", &v, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(v, 0.123456789012345, "f64 attribute must round-trip exactly: %.17g", v);
    cr_assert_eq(qa_h5_attr_get_f64(f, "/runs/r1", "seed", &v, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(v, 42.0);
    cr_assert(qa_h5_has_attr(f, "/", "loss"));
    cr_assert(!qa_h5_has_attr(f, "/", "nope"));
    cr_assert(!qa_h5_has_attr(f, "/missing/group", "loss"));
    int rc = qa_h5_attr_get_f64(f, "/", "nope", &v, &err);
    cr_assert_eq(rc, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "nope") != NULL, "%s", err.msg);
    rc = qa_h5_attr_get_f64(f, "/", "recipe", &v, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "a string attribute is not a number");
    rc = qa_h5_attr_get_str(f, "/", "loss", buf, sizeof buf, &err);
    cr_assert_eq(rc, QA_ERR_INPUT, "a number attribute is not a string");
    close_ok(f);

    /* long UTF-8 string survives, truncated only by the caller's buffer */
    f = reopen(path, 1);
    cr_assert_eq(qa_h5_attr_set_str(f, "/", "recipe", txt, &err), QA_OK, "%s", err.msg);
    char big[256];
    cr_assert_eq(qa_h5_attr_get_str(f, "/", "recipe", big, sizeof big, &err), QA_OK, "%s", err.msg);
    cr_assert_str_eq(big, txt);
    char tiny[6];
    cr_assert_eq(qa_h5_attr_get_str(f, "/", "recipe", tiny, sizeof tiny, &err), QA_OK, "%s", err.msg);
    cr_assert_str_eq(tiny, "[job]");
    close_ok(f);
}

/* Regression (fixed): results.h documents qa_h5_exists(f, "@name") as "attribute of / with '@name'",
 * but results.c:76 only checks links, so a root attribute is never found this way. */
Test(results, exists_at_name_finds_root_attribute, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("at.h5", path, sizeof path);
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_attr_set_str(f, "/", "kind", "dit", &err), QA_OK, "%s", err.msg);
    cr_assert(qa_h5_has_attr(f, "/", "kind"), "the attribute is there");
    cr_expect(qa_h5_exists(f, "@kind"), "");
    cr_expect(!qa_h5_exists(f, "@absent"), "an absent attribute is not found");
    close_ok(f);
}

static int has_name(char names[][64], int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return 1;
    return 0;
}

Test(results, list_group_members, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("list.h5", path, sizeof path);
    qa_error err = {0, ""};
    float x = 1;
    int64_t d[1] = {1};
    const char *names[] = {"/runs/b", "/runs/a", "/runs/c/inner"};
    for (int i = 0; i < 3; i++) cr_assert_eq(qa_h5_write(f, names[i], QA_H5_F32, &x, 1, d, &err), QA_OK, "%s", err.msg);
    char got[8][64];
    int n = qa_h5_list(f, "/runs", got, 8, &err);
    cr_assert_eq(n, 3, "members of /runs: %d", n);
    cr_assert(has_name(got, n, "a") && has_name(got, n, "b") && has_name(got, n, "c"), "names %s %s %s", got[0],
              got[1], got[2]);
    cr_assert_str_eq(got[0], "a", "name order (H5_INDEX_NAME increasing)");
    n = qa_h5_list(f, "/runs", got, 2, &err);
    cr_assert_eq(n, 2, "capped at max");
    n = qa_h5_list(f, "/nope", got, 8, &err);
    cr_assert_eq(n, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "/nope") != NULL, "%s", err.msg);
    close_ok(f);
}

Test(results, table_append_two_batches_in_order, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("t.h5", path, sizeof path);
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_table_create(f, "/runs/r0/train", 3, "step,loss,lr", &err), QA_OK, "%s", err.msg);
    double b1[2 * 3] = {0, 1.5, 1e-3, 1, 1.25, 1e-3};
    double b2[3 * 3] = {2, 1.0, 9e-4, 3, 0.75, 8e-4, 4, 0.5, 7e-4};
    cr_assert_eq(qa_h5_table_append(f, "/runs/r0/train", b1, 2, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_table_append(f, "/runs/r0/train", b2, 3, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_table_append(f, "/runs/r0/train", b2, 0, &err), QA_OK, "empty append is a no-op");
    close_ok(f);

    f = reopen(path, 0);
    void *p = NULL;
    int nd;
    int64_t dims[4];
    cr_assert_eq(qa_h5_read(f, "/runs/r0/train", QA_H5_F64, &p, 0, &nd, dims, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(nd, 2);
    cr_assert_eq(dims[0], 5, "rows %lld", (long long)dims[0]);
    cr_assert_eq(dims[1], 3);
    double *t = p;
    for (int i = 0; i < 2 * 3; i++) cr_assert_eq(t[i], b1[i], "batch 1 [%d]", i);
    for (int i = 0; i < 3 * 3; i++) cr_assert_eq(t[6 + i], b2[i], "batch 2 [%d]", i);
    free(p);
    char cols[64];
    cr_assert_eq(qa_h5_attr_get_str(f, "/runs/r0/train", "columns", cols, sizeof cols, &err), QA_OK, "%s", err.msg);
    cr_assert_str_eq(cols, "step,loss,lr");
    int rc = qa_h5_table_append(f, "/runs/r0/none", b1, 1, &err);
    cr_assert_neq(rc, QA_OK, "append to a missing table fails");
    cr_assert(strstr(err.msg, "/runs/r0/none") != NULL, "%s", err.msg);
    close_ok(f);
}

Test(results, open_missing_and_non_hdf5_files, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = NULL;
    qa_error err = {0, ""};
    snprintf(path, sizeof path, "%s/missing.h5", dir);
    int rc = qa_h5_open(path, 0, &f, &err);
    cr_assert_eq(rc, QA_ERR_INPUT);
    cr_assert_eq(err.code, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "missing.h5") != NULL && strstr(err.msg, "not found") != NULL, "%s", err.msg);
    snprintf(path, sizeof path, "%s/text.h5", dir);
    write_text_file(path, "this is not an HDF5 file, just some text\n");
    err.code = 0;
    rc = qa_h5_open(path, 0, &f, &err);
    cr_assert_eq(rc, QA_ERR_INPUT);
    cr_assert_eq(err.code, QA_ERR_INPUT);
    cr_assert(strstr(err.msg, "text.h5") != NULL && strstr(err.msg, "HDF5") != NULL, "%s", err.msg);
    /* create in a missing directory: a run error with the path */
    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir);
    rc = qa_h5_create(path, &f, &err);
    cr_assert_eq(rc, QA_ERR_RUN);
    cr_assert(strstr(err.msg, "x.h5") != NULL, "%s", err.msg);
}

Test(results, equal_content_gives_equal_bytes, .init = setup, .fini = teardown) {
    char p1[512], p2[512];
    for (int k = 0; k < 2; k++) {
        qa_h5 *f = create_in(k ? "eq2.h5" : "eq1.h5", k ? p2 : p1, 512);
        qa_error err = {0, ""};
        float x[4] = {1, 2, 3, 4};
        int64_t d[1] = {4};
        cr_assert_eq(qa_h5_write(f, "/g/x", QA_H5_F32, x, 1, d, &err), QA_OK, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_str(f, "/", "k", "v", &err), QA_OK, "%s", err.msg);
        /* checksummed datasets and the checksummed table of run files too */
        cr_assert_eq(qa_h5_write_checksummed(f, "/g/y", QA_H5_F32, x, 1, d, &err), QA_OK, "%s", err.msg);
        double rows[2 * 5] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        cr_assert_eq(qa_h5_table_create(f, "/g/t", 5, "a,b,c,d,e", &err), QA_OK, "%s", err.msg);
        cr_assert_eq(qa_h5_table_append(f, "/g/t", rows, 2, &err), QA_OK, "%s", err.msg);
        cr_expect_eq(qa_h5_checksummed(f, "/g/t"), 1, "the table carries a checksum");
        close_ok(f);
        if (k == 0) sleep(1); /* would change any object timestamp */
    }
    char *a, *b;
    size_t la, lb;
    qa_error err;
    cr_assert_eq(qa_read_file(p1, &a, &la, &err), QA_OK);
    cr_assert_eq(qa_read_file(p2, &b, &lb, &err), QA_OK);
    cr_assert_eq(la, lb, "sizes %zu vs %zu", la, lb);
    cr_assert_eq(memcmp(a, b, la), 0, "files with equal content differ in bytes");
    free(a);
    free(b);
}

Test(results, library_version_string) {
    char v[32];
    cr_assert(strncmp(qa_h5_library_version(v, sizeof v), "HDF5 1.", 7) == 0, "%s", v);
}

/* Issue: names were cut to 63 characters by the fixed rows of h5_list (and the readers' buffers). */
Test(results, member_and_attribute_names_of_any_length, .init = setup, .fini = teardown) {
    char path[512], longname[201], grp[260];
    memset(longname, 'n', 200);
    longname[200] = 0;
    qa_h5 *f = create_in("names.h5", path, sizeof path);
    qa_error err = {0, ""};
    snprintf(grp, sizeof grp, "/runs/%s", longname);
    cr_assert_eq(qa_h5_attr_set_f64(f, grp, longname, 1.5, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/runs/short", "x", 2, &err), QA_OK, "%s", err.msg);
    char **names;
    int n = qa_h5_members(f, "/runs", &names, &err);
    cr_assert_eq(n, 2, "%s", err.msg);
    cr_expect_str_eq(names[0], longname, "the whole name, in name order");
    cr_expect_str_eq(names[1], "short");
    qa_h5_names_free(names, n);
    n = qa_h5_attr_names(f, grp, &names, &err);
    cr_assert_eq(n, 1, "%s", err.msg);
    cr_expect_str_eq(names[0], longname);
    qa_h5_names_free(names, n);
    /* the fixed-row listing refuses the long name instead of cutting it */
    char rows[4][64];
    cr_expect_eq(qa_h5_list(f, "/runs", rows, 4, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "names.h5") && strstr(err.msg, "200 characters"), "%s", err.msg);
    cr_expect_eq(qa_h5_attr_list(f, grp, rows, 4, &err), QA_ERR_INPUT);
    close_ok(f);
}

/* An attribute written by another program as an array: reading it as one value overran the
 * caller's buffer; it must be an error naming the file and the attribute. */
Test(results, array_valued_attributes_are_refused, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/array.h5", dir);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(file, 0);
    hsize_t n = 4096;
    hid_t space = H5Screate_simple(1, &n, NULL);
    static double values[4096];
    hid_t a = H5Acreate2(file, "rank", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, H5T_NATIVE_DOUBLE, values), 0);
    H5Aclose(a);
    hid_t text = H5Tcopy(H5T_C_S1);
    H5Tset_size(text, 8);
    static char texts[4096][8];
    a = H5Acreate2(file, "method", text, space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Awrite(a, text, texts), 0);
    H5Aclose(a);
    H5Tclose(text);
    H5Sclose(space);
    H5Fclose(file);

    qa_h5 *f = reopen(path, 0);
    qa_error err = {0, ""};
    double v;
    cr_expect_eq(qa_h5_attr_get_f64(f, "/", "rank", &v, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "array.h5") && strstr(err.msg, "'rank'") && strstr(err.msg, "4096 values"), "%s", err.msg);
    char buf[16];
    cr_expect_eq(qa_h5_attr_get_str(f, "/", "method", buf, sizeof buf, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "'method'") && strstr(err.msg, "4096 values"), "%s", err.msg);
    close_ok(f);
}

Test(results, a_failed_setter_names_the_file, .init = setup, .fini = teardown) {
    char path[512];
    qa_h5 *f = create_in("ro.h5", path, sizeof path);
    close_ok(f);
    f = reopen(path, 0); /* read-only: every setter fails */
    qa_error err = {0, ""};
    cr_expect_eq(qa_h5_attr_set_f64(f, "/", "x", 1, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "ro.h5") && strstr(err.msg, "attribute x"), "%s", err.msg);
    cr_expect_eq(qa_h5_attr_set_str(f, "/runs/a", "method", "lora", &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "ro.h5") && strstr(err.msg, "/runs/a"), "%s", err.msg);
    float x = 1;
    int64_t d[1] = {1};
    cr_expect_eq(qa_h5_write(f, "/y", QA_H5_F32, &x, 1, d, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "ro.h5") && strstr(err.msg, "/y"), "%s", err.msg);
    cr_expect_eq(qa_h5_table_create(f, "/t", 2, "a,b", &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "ro.h5") && strstr(err.msg, "/t"), "%s", err.msg);
    close_ok(f);
}

/* A full disk: /dev/full fails every write with ENOSPC, so creating a file there fails and says
 * why, with the file's name. */
Test(results, no_space_left_is_reported_with_the_file) {
    if (access("/dev/full", W_OK) != 0) cr_skip_test("no /dev/full on this system");
    qa_h5 *f = NULL;
    qa_error err = {0, ""};
    cr_expect_eq(qa_h5_create("/dev/full", &f, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "/dev/full") && strstr(err.msg, strerror(ENOSPC)), "%s", err.msg);
}

/* Writes that stop reaching the disk half way (a file size limit: EFBIG, as a quota or a full
 * disk would): the write and the close fail with the file's name and the reason, and the process
 * still exits normally: HDF5's shutdown at exit used to retry the failed close and crash
 * (Criterion reports a crash of this test's process as a failure). */
Test(results, a_failed_close_is_reported_and_survived, .init = setup, .fini = teardown) {
    char path[512];
    snprintf(path, sizeof path, "%s/limited.h5", dir);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {.rlim_cur = 16384, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    qa_h5 *f = NULL;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_create(path, &f, &err), QA_OK, "%s", err.msg);
    static float big[1 << 16];
    int64_t d[1] = {1 << 16};
    cr_expect_eq(qa_h5_write(f, "/x", QA_H5_F32, big, 1, d, &err), QA_ERR_RUN);
    cr_expect(strstr(err.msg, "limited.h5") && strstr(err.msg, strerror(EFBIG)), "%s", err.msg);
    cr_expect_eq(qa_h5_attr_set_str(f, "/runs/r", "status", "done", &err), QA_OK, "%s", err.msg);
    qa_error cerr = {0, ""};
    cr_expect_eq(qa_h5_close(f, &cerr), QA_ERR_RUN);
    cr_expect(strstr(cerr.msg, "limited.h5") && strstr(cerr.msg, "close"), "%s", cerr.msg);
}
