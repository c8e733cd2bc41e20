/* A seeded, structure-aware mutation test of the run-file reader (runs.c), in process so that
 * the sanitizer build watches every read. Valid run files (two written by the run recorder, two
 * by hand as tests/fake_runs.h writes them, one quickstart run written before checksums,
 * tests/legacy) are mutated through the HDF5 API:
 *   attributes  replaced by the other type, an array, an empty one, a 1 MB string, NaN, inf,
 *               1e300, 2.5 or -1, or removed;
 *   datasets    replaced by another shape (scalar, 3-D, wrong column count, empty, truncated),
 *               another type (strings, int32) or a group;
 *   groups      removed, replaced by a dataset, or joined by extra ones (a second run under
 *               /runs, six more deploy variants, a dozen more method statistics);
 *   raw bytes   flipped in the stored values of datasets (their chunks or contiguous payloads).
 * Raw flips are kept to dataset payloads: libhdf5 1.10 itself crashes on some corrupted metadata
 * (e.g. a flipped byte in the global heap that holds variable-length strings ends in a SIGSEGV
 * inside H5HG_read), which no check in our code can stop; the libFuzzer target (tests/fuzz/,
 * `make fuzz FUZZ_TARGET=runfile`) mutates whole files and counts those. Each mutant must load
 * (and then everything it says it holds is read through) or fail as bad input naming the file;
 * a signal or a hang fails the suite. The same seed gives the same mutants. */
#include <criterion/criterion.h>
#include <hdf5.h>

#include "common.h"
#include "fake_runs.h"
#include "fuzz/runfile_seed.h"
#include "source_root.h"
#include "harness/runs.h"

enum { N_MUTANTS = 600, N_BASES = 5, MAX_OBJECTS = 64, MAX_ATTRS = 64 };

static char dir[256];
static char *base_bytes[N_BASES];
static size_t base_len[N_BASES];

static size_t below(trng *r, size_t n) { return n ? (size_t)(trng_next(r) % n) : 0; }

static void load_bases(void) {
    make_tmpdir(dir, sizeof dir, "runfile-fuzz");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char path[512];
    qa_error err = {0, ""};
    for (int kind = 0; kind < 2; kind++) {
        snprintf(path, sizeof path, "%s/seed-%d.h5", dir, kind);
        cr_assert_eq(write_seed_run(path, kind, &err), QA_OK, "%s", err.msg);
    }
    run_def done = {"lora-w8a8-r4-s0", "lora", "w8a8", "done", "int", 8, 8, 4, 1, 0, 0.1, 0.8, 0.9, 8};
    run_def diverged = {"qalora-w4a8-r4-s1", "qalora", "w4a8", "diverged", "int", 4, 8, 4, 0, 1, 0, 0, 0, 4};
    write_run(dir, &done);
    write_run(dir, &diverged);
    const char *names[N_BASES - 1] = {"seed-0.h5", "seed-1.h5", "lora-w8a8-r4-s0.h5", "qalora-w4a8-r4-s1.h5"};
    for (int b = 0; b < N_BASES - 1; b++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[b]);
        cr_assert_eq(qa_read_file(path, &base_bytes[b], &base_len[b], &err), QA_OK, "%s", err.msg);
        unlink(path);
    }
    const char *root = test_source_root();
    cr_assert_not_null(root);
    char old[1024];
    snprintf(old, sizeof old, "%s/tests/legacy/qlora-w4a8-r4-s1.h5", root);
    cr_assert_eq(qa_read_file(old, &base_bytes[N_BASES - 1], &base_len[N_BASES - 1], &err), QA_OK, "%s", err.msg);
}

static void drop_bases(void) {
    for (int b = 0; b < N_BASES; b++) free(base_bytes[b]);
    rm_rf_dir(dir);
}

/* ---- what a file holds: its objects (groups and datasets) and an object's attributes ---- */

typedef struct {
    char path[MAX_OBJECTS][256];
    int is_group[MAX_OBJECTS];
    int n;
} objects;

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    objects *o = data;
    if (o->n == MAX_OBJECTS) return 0;
    snprintf(o->path[o->n], sizeof o->path[0], "/%s", name);
    hid_t grp = H5Gopen2(g, name, H5P_DEFAULT);
    o->is_group[o->n] = grp >= 0;
    if (grp >= 0) H5Gclose(grp);
    o->n++;
    return 0;
}

static void list_objects(hid_t file, objects *o) {
    o->n = 1;
    snprintf(o->path[0], sizeof o->path[0], "/");
    o->is_group[0] = 1;
    H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_link, o);
}

/* An object of the wanted kind (group 1, dataset 0, any -1), or -1 when there is none. */
static int pick_object(const objects *o, int want_group, trng *r) {
    int idx[MAX_OBJECTS], n = 0;
    for (int i = 0; i < o->n; i++)
        if (want_group < 0 || o->is_group[i] == want_group) idx[n++] = i;
    return n ? idx[below(r, (size_t)n)] : -1;
}

typedef struct {
    char name[MAX_ATTRS][128];
    int n;
} attr_names;

static herr_t visit_attr(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    (void)obj; (void)info;
    attr_names *a = data;
    if (a->n < MAX_ATTRS) snprintf(a->name[a->n++], sizeof a->name[0], "%s", name);
    return 0;
}

/* ---- mutations through the HDF5 API ---- */

static void write_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *value) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return;
    if (value) H5Awrite(a, type, value);
    H5Aclose(a);
}

static void mutate_attribute(hid_t file, const objects *o, trng *r) {
    int k = pick_object(o, -1, r);
    hid_t obj = H5Oopen(file, o->path[k], H5P_DEFAULT);
    if (obj < 0) return;
    attr_names a = {.n = 0};
    hsize_t at = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &at, visit_attr, &a);
    const char *name = a.n ? a.name[below(r, (size_t)a.n)] : "status";
    hid_t scalar = H5Screate(H5S_SCALAR);
    switch (below(r, 7)) {
    case 0: { /* a number that no reader expects */
        const double odd[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300, 2.5, -1, 0, 4294967296.0};
        double v = odd[below(r, sizeof odd / sizeof odd[0])];
        write_attr(obj, name, H5T_NATIVE_DOUBLE, scalar, &v);
        break;
    }
    case 1: { /* a string, short or 1 MB */
        size_t n = below(r, 2) ? 1u << 20 : 3;
        char *text = malloc(n + 1);
        memset(text, 'x', n);
        text[n] = 0;
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        write_attr(obj, name, t, scalar, &text);
        H5Tclose(t);
        free(text);
        break;
    }
    case 2: { /* an array of numbers */
        hsize_t n = 1 + below(r, 1000);
        double *v = calloc(n, sizeof(double));
        hid_t space = H5Screate_simple(1, &n, NULL);
        write_attr(obj, name, H5T_NATIVE_DOUBLE, space, v);
        H5Sclose(space);
        free(v);
        break;
    }
    case 3: { /* an array of fixed-size strings */
        hsize_t n = 3;
        char texts[3][8] = {"a", "bb", "ccc"};
        hid_t space = H5Screate_simple(1, &n, NULL), t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        write_attr(obj, name, t, space, texts);
        H5Tclose(t);
        H5Sclose(space);
        break;
    }
    case 4: { /* no value at all */
        hid_t null_space = H5Screate(H5S_NULL);
        write_attr(obj, name, H5T_NATIVE_DOUBLE, null_space, NULL);
        H5Sclose(null_space);
        break;
    }
    case 5: { /* an int32 (numbers are stored as doubles) */
        int v = (int)below(r, 1000) - 500;
        write_attr(obj, name, H5T_NATIVE_INT32, scalar, &v);
        break;
    }
    default: /* missing */
        if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    }
    H5Sclose(scalar);
    H5Oclose(obj);
}

/* Replace the object at path (a dataset or group) by a dataset of another shape or type. */
static void replace_with_dataset(hid_t file, const char *path, trng *r) {
    H5Ldelete(file, path, H5P_DEFAULT);
    static const hsize_t shapes[][3] = {{2, 3, 4}, {0, 0, 0}, {1, 0, 0}, {3, 7, 0}, {1, 28, 27}, {5, 5, 0}, {2, 28, 28},
                                        {6, 0, 0}, {4, 2, 0}, {3, 784, 0}};
    static const int ranks[] = {3, 1, 1, 2, 3, 2, 3, 1, 2, 2};
    size_t s = below(r, sizeof ranks / sizeof ranks[0]);
    int scalar = below(r, 8) == 0;
    hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(ranks[s], shapes[s], NULL);
    hid_t type;
    switch (below(r, 3)) {
    case 0: type = H5Tcopy(H5T_NATIVE_DOUBLE); break;
    case 1: type = H5Tcopy(H5T_NATIVE_INT32); break;
    default: type = H5Tcopy(H5T_C_S1); H5Tset_size(type, 4);
    }
    hid_t ds = H5Dcreate2(file, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) {
        size_t bytes = H5Tget_size(type) * (size_t)H5Sget_simple_extent_npoints(space);
        char *fill = calloc(bytes + 1, 1);
        H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, fill);
        free(fill);
        H5Dclose(ds);
    }
    H5Tclose(type);
    H5Sclose(space);
}

static void mutate_dataset(hid_t file, const objects *o, trng *r) {
    int k = pick_object(o, 0, r);
    if (k < 0) return;
    if (below(r, 6) == 0) { /* a group in its place */
        H5Ldelete(file, o->path[k], H5P_DEFAULT);
        hid_t g = H5Gcreate2(file, o->path[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        return;
    }
    replace_with_dataset(file, o->path[k], r);
}

/* The run group's path (the first member of /runs), or "" */
static void run_group(const objects *o, char *buf, size_t len) {
    buf[0] = 0;
    for (int i = 0; i < o->n && !buf[0]; i++)
        if (o->is_group[i] && strncmp(o->path[i], "/runs/", 6) == 0 && !strchr(o->path[i] + 6, '/'))
            snprintf(buf, len, "%s", o->path[i]);
}

static void mutate_group(hid_t file, const objects *o, trng *r) {
    char grp[256], p[400];
    run_group(o, grp, sizeof grp);
    switch (below(r, 5)) {
    case 0: { /* a group removed */
        int k = pick_object(o, 1, r);
        if (k > 0) H5Ldelete(file, o->path[k], H5P_DEFAULT);
        break;
    }
    case 1: { /* a group replaced by a dataset */
        int k = pick_object(o, 1, r);
        if (k > 0) replace_with_dataset(file, o->path[k], r);
        break;
    }
    case 2: /* several runs in one file */
        if (grp[0] && H5Ocopy(file, grp, file, "/runs/zz-second-run", H5P_DEFAULT, H5P_DEFAULT) < 0) {
            hid_t g = H5Gcreate2(file, "/runs/zz-second-run", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0) H5Gclose(g);
        }
        break;
    case 3: { /* more deploy variants than a record holds */
        char src[400];
        snprintf(src, sizeof src, "%s/eval", grp);
        objects sub = {.n = 0};
        for (int i = 0; i < o->n; i++)
            if (o->is_group[i] && strncmp(o->path[i], src, strlen(src)) == 0 && o->path[i][strlen(src)] == '/' &&
                sub.n < MAX_OBJECTS)
                snprintf(sub.path[sub.n++], sizeof sub.path[0], "%s", o->path[i]);
        for (int v = 0; v < 6 && sub.n; v++) {
            snprintf(p, sizeof p, "%s/eval/extra%d", grp, v);
            H5Ocopy(file, sub.path[0], file, p, H5P_DEFAULT, H5P_DEFAULT);
        }
        break;
    }
    default: { /* more method statistics than a record holds */
        snprintf(p, sizeof p, "%s/method_stats", grp);
        if (!grp[0]) break;
        hid_t g = H5Lexists(file, p, H5P_DEFAULT) > 0 ? H5Oopen(file, p, H5P_DEFAULT)
                                                      : H5Gcreate2(file, p, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) break;
        hid_t scalar = H5Screate(H5S_SCALAR);
        for (int s = 0; s < 12; s++) {
            char name[32];
            double v = s;
            snprintf(name, sizeof name, "stat%02d", s);
            write_attr(g, name, H5T_NATIVE_DOUBLE, scalar, &v);
        }
        H5Sclose(scalar);
        H5Oclose(g);
    }
    }
}

/* ---- raw bytes: flipped in the stored values of datasets only ---- */

typedef struct {
    haddr_t at[256];
    hsize_t size[256];
    int n;
} extents;

static void payload_extents(const char *path, extents *e) {
    e->n = 0;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return;
    objects o = {.n = 0};
    list_objects(file, &o);
    for (int i = 0; i < o.n; i++) {
        if (o.is_group[i]) continue;
        hid_t ds = H5Dopen2(file, o.path[i], H5P_DEFAULT);
        if (ds < 0) continue;
        haddr_t at = H5Dget_offset(ds);
        if (at != HADDR_UNDEF && e->n < 256) { /* contiguous */
            e->at[e->n] = at;
            e->size[e->n++] = H5Dget_storage_size(ds);
        }
        hsize_t n_chunks = 0;
        if (at == HADDR_UNDEF && H5Dget_num_chunks(ds, H5S_ALL, &n_chunks) >= 0)
            for (hsize_t c = 0; c < n_chunks && e->n < 256; c++) {
                hsize_t coords[4];
                unsigned mask;
                haddr_t addr;
                hsize_t size;
                if (H5Dget_chunk_info(ds, H5S_ALL, c, coords, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF) {
                    e->at[e->n] = addr;
                    e->size[e->n++] = size;
                }
            }
        H5Dclose(ds);
    }
    H5Fclose(file);
}

static void flip_payload_bytes(const char *path, trng *r) {
    extents e;
    payload_extents(path, &e);
    int n = 0;
    for (int i = 0; i < e.n; i++) n += e.size[i] > 0;
    if (!n) return;
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    for (size_t k = 0, flips = 1 + below(r, 4); k < flips; k++) {
        int i;
        do i = (int)below(r, (size_t)e.n); while (e.size[i] == 0);
        long at = (long)(e.at[i] + below(r, e.size[i]));
        cr_assert_eq(fseek(f, at, SEEK_SET), 0);
        int c = fgetc(f);
        cr_assert_eq(fseek(f, at, SEEK_SET), 0);
        fputc((c ^ (1 << below(r, 8))) & 0xff, f);
    }
    fclose(f);
}

/* ---- one mutant ---- */

static void make_mutant(const char *path, trng *r) {
    int b = (int)below(r, N_BASES);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(base_bytes[b], 1, base_len[b], f), base_len[b]);
    fclose(f);
    size_t edits = 1 + below(r, 3);
    for (size_t k = 0; k < edits; k++) {
        size_t kind = below(r, 4);
        if (kind == 3) { flip_payload_bytes(path, r); continue; }
        hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert_geq(file, 0, "%s", path);
        objects o = {.n = 0};
        list_objects(file, &o);
        if (kind == 0) mutate_attribute(file, &o, r);
        else if (kind == 1) mutate_dataset(file, &o, r);
        else mutate_group(file, &o, r);
        cr_assert_geq(H5Fclose(file), 0);
    }
}

/* Sum everything a loaded record says it holds (ASan watches each read). */
static double touch(const qa_run_record *rec) {
    double s = (double)strlen(rec->id) + (double)strlen(rec->axes) + (double)strlen(rec->status) + (double)strlen(rec->method);
    for (int i = 0; i < rec->n_train * 5; i++) s += rec->train[i];
    for (int v = 0; v < rec->n_eval; v++) {
        s += (double)strlen(rec->eval[v].variant);
        for (int i = 0; i < rec->eval[v].n_images; i++) s += rec->eval[v].heldout_per_image[i];
    }
    for (int k = 0; k < rec->n_stats; k++) s += (double)strlen(rec->stat_name[k]) + rec->stat_value[k];
    return s;
}

/* Load one mutant: a run (returns 1), or bad input naming the file (0). */
static int check_mutant(const char *path, int index) {
    qa_run_record rec;
    qa_error err = {0, ""};
    int rc = qa_runs_load_file(path, &rec, &err);
    if (rc == QA_OK) {
        volatile double sink = touch(&rec);
        (void)sink;
        uint8_t *pix = NULL;
        int n = 0;
        qa_error e2 = {0, ""};
        if (qa_runs_samples(&rec, "references", &pix, &n, &e2) == QA_OK) {
            unsigned sum = 0;
            for (int i = 0; i < n * 784; i++) sum += pix[i];
            qa_free(pix);
        } else {
            cr_expect(strstr(e2.msg, path) != NULL, "mutant %d: samples error does not name the file: %s", index, e2.msg);
        }
        qa_runs_record_free(&rec);
        return 1;
    }
    cr_expect_eq(rc, QA_ERR_INPUT, "mutant %d: rc %d (%s)", index, rc, err.msg);
    cr_expect(strstr(err.msg, path) != NULL, "mutant %d: the message does not name the file: '%s'", index, err.msg);
    return 0;
}

Test(runfile_fuzz, mutated_run_files_load_or_fail_cleanly, .init = load_bases, .fini = drop_bases, .timeout = 120) {
    trng r = trng_new(20261130);
    int loaded = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/mutant.h5", dir);
    for (int i = 0; i < N_MUTANTS; i++) {
        make_mutant(path, &r);
        loaded += check_mutant(path, i);
    }
    cr_log_info("%d of %d mutants loaded, the rest failed cleanly", loaded, N_MUTANTS);
    cr_expect(loaded > 0 && loaded < N_MUTANTS, "the mutants should include both loadable and damaged files (%d loaded)",
              loaded);
}

/* The valid bases themselves load, checksummed or not. */
Test(runfile_fuzz, the_unmutated_bases_load, .init = load_bases, .fini = drop_bases) {
    char path[512];
    snprintf(path, sizeof path, "%s/base.h5", dir);
    for (int b = 0; b < N_BASES; b++) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(base_bytes[b], 1, base_len[b], f), base_len[b]);
        fclose(f);
        cr_expect_eq(check_mutant(path, -1 - b), 1, "base %d does not load", b);
    }
}

/* Found by the libFuzzer target: an integer field (rank, seed, ...) stored as NaN or 1e300 was
 * converted to int, which is undefined (UBSan: "outside the range of representable values"), and
 * 2.5 was cut to 2; each is now bad input naming the file and the attribute. (GCC's UBSan does
 * not check float-to-int conversions, so the mutants above cannot show this one.) */
Test(runfile_fuzz, an_integer_field_that_is_not_a_whole_number_in_range_is_bad_input, .init = load_bases,
     .fini = drop_bases) {
    char path[512];
    snprintf(path, sizeof path, "%s/odd.h5", dir);
    const double odd[] = {NAN, 1e300, -1e300, 2.5, 4294967296.0};
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        FILE *f = fopen(path, "wb");
        cr_assert_eq(fwrite(base_bytes[0], 1, base_len[0], f), base_len[0]);
        fclose(f);
        hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t grp = H5Gopen2(file, "/runs/qlora-w4a8-r2-a1.5-s0", H5P_DEFAULT);
        cr_assert_geq(grp, 0);
        hid_t scalar = H5Screate(H5S_SCALAR);
        write_attr(grp, "rank", H5T_NATIVE_DOUBLE, scalar, &odd[k]);
        H5Sclose(scalar);
        H5Gclose(grp);
        H5Fclose(file);
        qa_run_record rec;
        qa_error err = {0, ""};
        cr_expect_eq(qa_runs_load_file(path, &rec, &err), QA_ERR_INPUT, "rank = %g loaded", odd[k]);
        cr_expect(strstr(err.msg, path) && strstr(err.msg, "'rank'") && strstr(err.msg, "whole number"), "%s", err.msg);
    }
}
