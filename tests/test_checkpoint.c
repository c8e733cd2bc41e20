/* Damaged and foreign checkpoints: configuration attributes outside the model's limits,
 * array-valued attributes, a tensor stored with the right element count but another shape,
 * non-finite weights, flipped bytes (Fletcher-32), and the committed checkpoints written before
 * checksums. Every case is a clear QA_ERR_INPUT naming the file and what is wrong. */
#include <criterion/criterion.h>
#include <hdf5.h> /* only to craft what the harness never writes (array attributes) */
#include <math.h>

#include "common.h"
#include "source_root.h"
#include "harness/checkpoint.h"
#include "harness/model.h"

static const qa_dit_config CFG = {28, 7, 16, 1, 2, 2, 10, 2};

static char dir[256], path[512];

static void setup(void) {
    make_tmpdir(dir, sizeof dir, "ckpt");
    snprintf(path, sizeof path, "%s/dit.h5", dir);
}
static void teardown(void) { rm_rf_dir(dir); }

/* A saved tiny model with random weights (so every tensor's bytes are unique in the file). */
static void save_tiny(qa_dit *m) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_create(m, &CFG, 2, &err), QA_OK, "%s", err.msg);
    trng r = trng_new(5);
    fill_normal(&r, m->params, m->n_params, 0.1);
    qa_ckpt_meta meta = {"dit", "[job]\nkind = pretrain\n", 0.5, 1.0, 10, 0.1, -1};
    cr_assert_eq(qa_dit_save(path, m, NULL, &meta, &err), QA_OK, "%s", err.msg);
}

static void expect_load_error(const char *const needles[]) {
    qa_dit m2;
    qa_error err = {0, ""};
    int rc = qa_dit_load(path, &m2, 2, &err);
    if (rc == QA_OK) qa_dit_free(&m2);
    cr_assert_eq(rc, QA_ERR_INPUT, "rc %d (%s)", rc, err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]) != NULL, "message '%s' lacks '%s'", err.msg, needles[i]);
}

static void set_attr(const char *name, double v) {
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(f, "/", name, v, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
}

/* Each was a crash (SIGFPE, an assertion, an out-of-memory abort) or a silent garbage run. */
Test(checkpoint, config_outside_the_models_limits_is_an_input_error, .init = setup, .fini = teardown) {
    static const struct { const char *attr; double value; const char *needle; } cases[] = {
        {"patch", 0, "patch"}, {"patch", -4, "patch"}, {"patch", 3, "divide"}, {"heads", 0, "heads"},
        {"heads", 3, "heads"}, {"depth", 100, "depth"}, {"depth", 0, "depth"}, {"dim", NAN, "dim"},
        {"dim", INFINITY, "dim"}, {"dim", 1e300, "dim"}, {"dim", 1e9, "dim"}, {"dim", 16.5, "dim"},
        {"n_classes", 12, "n_classes"}, {"n_spare", -1, "n_spare"}, {"img", 56, "img"},
        {"mlp_ratio", 0, "mlp_ratio"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qa_dit m;
        save_tiny(&m);
        qa_dit_free(&m);
        set_attr(cases[i].attr, cases[i].value);
        expect_load_error((const char *const[]){cases[i].attr, cases[i].needle, NULL});
    }
}

/* An attribute holding two values was read into one double: a stack overflow. */
Test(checkpoint, array_valued_attribute_is_an_input_error, .init = setup, .fini = teardown) {
    qa_dit m;
    save_tiny(&m);
    qa_dit_free(&m);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(file >= 0);
    cr_assert(H5Adelete(file, "heads") >= 0);
    hsize_t n = 64;
    double vals[64] = {2, 2};
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(file, "heads", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(a >= 0 && H5Awrite(a, H5T_NATIVE_DOUBLE, vals) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    H5Fclose(file);
    expect_load_error((const char *const[]){"heads", "64 values", NULL});
}

/* Same element count, another shape: a transposed weight loaded as if it were not. */
Test(checkpoint, tensor_with_the_wrong_shape_names_both_shapes, .init = setup, .fini = teardown) {
    qa_dit m;
    save_tiny(&m);
    const qa_tensor_info *t = qa_dit_find_tensor(&m, "blocks.0.mlp.fc1.weight");
    cr_assert(t && t->ndim == 2 && t->shape[0] != t->shape[1]);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &f, &err), QA_OK, "%s", err.msg);
    int64_t transposed[2] = {t->shape[1], t->shape[0]};
    cr_assert_eq(qa_h5_write(f, "/params/blocks.0.mlp.fc1.weight", QA_H5_F32, m.params + t->offset, 2, transposed, &err),
                 QA_OK, "%s", err.msg);
    cr_assert_eq(qa_h5_close(f, &err), QA_OK, "%s", err.msg);
    char want[64], got[64];
    snprintf(want, sizeof want, "[%d, %d]", t->shape[0], t->shape[1]);
    snprintf(got, sizeof got, "[%d, %d]", t->shape[1], t->shape[0]);
    qa_dit_free(&m);
    expect_load_error((const char *const[]){"blocks.0.mlp.fc1.weight", want, got, NULL});
}

/* A NaN base was logged as the run "diverging at step 0". */
Test(checkpoint, non_finite_weight_is_a_load_error, .init = setup, .fini = teardown) {
    qa_dit m;
    save_tiny(&m);
    const qa_tensor_info *t = qa_dit_find_tensor(&m, "pos_embed");
    cr_assert_not_null(t);
    m.params[t->offset + 5] = NAN;
    qa_ckpt_meta meta = {"dit", "", 0, 0, 0, 0, -1};
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_save(path, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    expect_load_error((const char *const[]){"pos_embed", "not finite", NULL});
    m.params[t->offset + 5] = INFINITY;
    cr_assert_eq(qa_dit_save(path, &m, NULL, &meta, &err), QA_OK, "%s", err.msg);
    expect_load_error((const char *const[]){"pos_embed", "not finite", NULL});
    qa_dit_free(&m);
}

Test(checkpoint, every_tensor_is_written_with_a_checksum, .init = setup, .fini = teardown) {
    qa_dit m;
    save_tiny(&m);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), QA_OK, "%s", err.msg);
    for (int i = 0; i < m.n_tensors; i++) {
        char p[128];
        snprintf(p, sizeof p, "/params/%s", m.tensors[i].name);
        cr_assert_eq(qa_h5_checksummed(f, p), 1, "%s has no Fletcher-32 checksum", p);
    }
    qa_h5_close(f, &err);
    qa_dit_free(&m);
}

/* Flip one byte of a tensor's stored data (found by its first 16 bytes, unique for random
 * weights): the weights still parse as floats, only the checksum tells. */
Test(checkpoint, flipped_weight_bytes_fail_the_checksum, .init = setup, .fini = teardown) {
    qa_dit m;
    save_tiny(&m);
    const qa_tensor_info *t = qa_dit_find_tensor(&m, "blocks.0.attn.q.weight");
    cr_assert_not_null(t);
    char *bytes;
    size_t len;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(path, &bytes, &len, &err), QA_OK);
    const char *needle = (const char *)(m.params + t->offset);
    size_t at = len;
    for (size_t i = 0; i + 16 <= len && at == len; i++)
        if (memcmp(bytes + i, needle, 16) == 0) at = i;
    cr_assert(at < len, "tensor data not found in the file");
    bytes[at + 9] ^= 0x10;
    FILE *fp = fopen(path, "wb");
    fwrite(bytes, 1, len, fp);
    fclose(fp);
    free(bytes);
    qa_dit_free(&m);
    expect_load_error((const char *const[]){"blocks.0.attn.q.weight", "checksum", NULL});
}

/* The committed checkpoints were written before checksums: they load, and an upgraded copy
 * carries checksums and the same weights and provenance. */
Test(checkpoint, committed_checkpoint_loads_and_upgrades, .init = setup, .fini = teardown) {
    const char *root = test_source_root();
    cr_assert_not_null(root, "source root unknown (QA_TEST_SOURCE_ROOT or $QA_SOURCE_ROOT)");
    char old_path[1024];
    snprintf(old_path, sizeof old_path, "%s/results/pretrained/dit.h5", root);
    qa_dit a, b;
    qa_error err = {0, ""};
    cr_assert_eq(qa_dit_load(old_path, &a, 1, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_ckpt_upgrade(old_path, path, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(qa_dit_load(path, &b, 1, &err), QA_OK, "%s", err.msg);
    cr_assert_eq(a.n_params, b.n_params);
    cr_assert_eq(memcmp(a.params, b.params, sizeof(float) * a.n_params), 0, "weights changed");
    qa_h5 *fo, *fn;
    cr_assert_eq(qa_h5_open(old_path, 0, &fo, &err), QA_OK);
    cr_assert_eq(qa_h5_open(path, 0, &fn, &err), QA_OK);
    cr_assert_eq(qa_h5_checksummed(fo, "/params/pos_embed"), 0);
    cr_assert_eq(qa_h5_checksummed(fn, "/params/pos_embed"), 1);
    static char s_old[65536], s_new[65536];
    const char *keep[] = {"git_commit", "recipe", "kind"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(qa_h5_attr_get_str(fo, "/", keep[i], s_old, sizeof s_old, &err), QA_OK, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_get_str(fn, "/", keep[i], s_new, sizeof s_new, &err), QA_OK, "%s", err.msg);
        cr_assert_str_eq(s_new, s_old, "%s changed", keep[i]);
    }
    double lo, ln;
    cr_assert_eq(qa_h5_attr_get_f64(fo, "/", "final_loss", &lo, &err), QA_OK);
    cr_assert_eq(qa_h5_attr_get_f64(fn, "/", "final_loss", &ln, &err), QA_OK);
    cr_assert_eq(lo, ln);
    qa_h5_close(fo, &err);
    qa_h5_close(fn, &err);
    qa_dit_free(&a);
    qa_dit_free(&b);
}
