#include "harness/results.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "harness/lock.h"

struct qa_h5 {
    hid_t file;
    int writable; /* synced to disk on close */
    char *path;   /* as given, however long: it names the file in messages and is synced on close */
};

/* Before any other HDF5 call: no error printing, and no library shutdown at exit, which would
 * retry (and crash on) a file whose close already failed, e.g. on a full disk. Both settings are
 * the library's own; calling again changes nothing (H5dont_atexit then fails, silently, as the
 * library is running), so no flag of ours remembers the first call. */
static void quiet(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static char *text_copy(const char *text) {
    size_t n = strlen(text) + 1;
    char *copy = qa_alloc(n);
    memcpy(copy, text, n);
    return copy;
}

/* A failed write, flush or close of path: the message, and the system's reason when the failed
 * call left one in errno (e.g. "No space left on device"). Callers clear errno before the call. */
static int fail_io(qa_error *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_io(qa_error *err, const char *path, const char *fmt, ...) {
    int saved = errno;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (saved) return qa_fail(err, QA_ERR_RUN, "%s: %s: %s", path, what, strerror(saved));
    return qa_fail(err, QA_ERR_RUN, "%s: %s", path, what);
}

static hid_t type_of(int type) {
    switch (type) {
    case QA_H5_F32: return H5T_NATIVE_FLOAT;
    case QA_H5_F64: return H5T_NATIVE_DOUBLE;
    case QA_H5_I32: return H5T_NATIVE_INT32;
    default: return H5T_NATIVE_UINT8;
    }
}

static size_t size_of(int type) {
    return type == QA_H5_F64 ? 8 : (type == QA_H5_U8 ? 1 : 4);
}

const char *qa_h5_path(const qa_h5 *f) { return f->path; }

static qa_h5 *handle(hid_t file, const char *path, int writable) {
    qa_h5 *f = qa_alloc(sizeof *f);
    f->file = file;
    f->writable = writable;
    f->path = text_copy(path);
    return f;
}

static int create_file(const char *path, int compact, qa_h5 **out, qa_error *err) {
    quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create HDF5 file access properties", path);
    /* compact: the 1.10 file format, with small indexes for single-chunk datasets (a deployed
     * artifact of small layers would otherwise be half B-tree nodes). It records creation times
     * of groups, so the byte-reproducible result files keep the default format. */
    if (compact && H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return qa_fail(err, QA_ERR_RUN, "%s: cannot select the HDF5 1.10 file format", path);
    }
    errno = 0;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (file < 0) return fail_io(err, path, "cannot create HDF5 file");
    *out = handle(file, path, 1);
    return QA_OK;
}

int qa_h5_create(const char *path, qa_h5 **out, qa_error *err) { return create_file(path, 0, out, err); }

int qa_h5_create_compact(const char *path, qa_h5 **out, qa_error *err) { return create_file(path, 1, out, err); }

int qa_h5_open(const char *path, int writable, qa_h5 **out, qa_error *err) {
    quiet();
    if (!qa_file_exists(path)) return qa_fail(err, QA_ERR_INPUT, "%s: file not found", path);
    if (H5Fis_hdf5(path) <= 0) return qa_fail(err, QA_ERR_INPUT, "%s: not an HDF5 file", path);
    hid_t file = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open HDF5 file (damaged?)", path);
    *out = handle(file, path, writable);
    return QA_OK;
}

int qa_h5_flush(qa_h5 *f, qa_error *err) {
    errno = 0;
    if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) return fail_io(err, f->path, "cannot write the file to disk (flush failed)");
    return QA_OK;
}

int qa_h5_close(qa_h5 *f, qa_error *err) {
    if (!f) return QA_OK;
    errno = 0;
    herr_t rc = H5Fclose(f->file);
    int status = rc < 0 ? fail_io(err, f->path, "cannot close the file (its last writes failed)") : QA_OK;
    /* on disk before anyone renames it finished: a power loss must not leave an empty file */
    if (!status && f->writable) status = qa_fsync_path(f->path, err);
    qa_free(f->path);
    qa_free(f);
    return status;
}

int qa_h5_rename_durable(const char *from, const char *to, qa_error *err) {
    if (rename(from, to) != 0) return qa_fail(err, QA_ERR_RUN, "cannot rename %s to %s: %s", from, to, strerror(errno));
    const char *slash = strrchr(to, '/');
    if (!slash) return qa_fsync_path(".", err);
    size_t n = slash == to ? 1 : (size_t)(slash - to);
    char *dir = qa_alloc(n + 1);
    memcpy(dir, to, n);
    dir[n] = 0;
    int rc = qa_fsync_path(dir, err);
    qa_free(dir);
    return rc;
}

int qa_h5_exists(qa_h5 *f, const char *path) {
    if (strcmp(path, "/") == 0) return 1;
    if (path[0] == '@') return H5Aexists(f->file, path + 1) > 0; /* attribute of the root */
    /* check each prefix: H5Lexists fails on a missing intermediate group */
    char *prefix = text_copy(path);
    int found = 1;
    for (char *p = prefix + 1; found; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            found = H5Lexists(f->file, prefix, H5P_DEFAULT) > 0;
            if (c == 0) break;
            *p = c;
        }
    }
    qa_free(prefix);
    return found;
}

/* Link creation that makes missing groups; < 0 on failure. */
static hid_t lcpl_intermediate(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) < 0) { H5Pclose(lcpl); return -1; }
    return lcpl;
}

/* Object creation properties without timestamps (equal content, equal bytes); < 0 on failure. */
static hid_t untimed(hid_t cls) {
    hid_t pl = H5Pcreate(cls);
    if (pl >= 0 && H5Pset_obj_track_times(pl, 0) < 0) { H5Pclose(pl); return -1; }
    return pl;
}

/* Properties and dataspace of a new dataset; every id is < 0 or valid, close_creation frees them. */
typedef struct { hid_t space, lcpl, dcpl; } creation;

static int open_creation(qa_h5 *f, const char *path, int ndim, const hsize_t *dims, const hsize_t *max_dims, creation *c,
                         qa_error *err) {
    c->space = H5Screate_simple(ndim, dims, max_dims);
    c->lcpl = lcpl_intermediate();
    c->dcpl = untimed(H5P_DATASET_CREATE);
    if (c->space < 0 || c->lcpl < 0 || c->dcpl < 0)
        return qa_fail(err, QA_ERR_RUN, "%s: cannot set up dataset %s (HDF5 properties)", f->path, path);
    return QA_OK;
}

static void close_creation(creation *c) {
    if (c->space >= 0) H5Sclose(c->space);
    if (c->lcpl >= 0) H5Pclose(c->lcpl);
    if (c->dcpl >= 0) H5Pclose(c->dcpl);
}

/* checksummed: chunked (one chunk: Fletcher-32 needs chunked storage) with the Fletcher-32
 * filter, which HDF5 verifies on every read. An empty dataset has no bytes to check (and a
 * chunk cannot be empty): it is stored plain. */
static int write_dataset(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
                         int checksummed, qa_error *err) {
    hsize_t hd[8];
    for (int i = 0; i < ndim; i++) { hd[i] = (hsize_t)dims[i]; if (hd[i] == 0) checksummed = 0; }
    if (qa_h5_exists(f, path) && H5Ldelete(f->file, path, H5P_DEFAULT) < 0)
        return qa_fail(err, QA_ERR_RUN, "%s: cannot replace dataset %s", f->path, path);
    creation c;
    int rc = open_creation(f, path, ndim, hd, NULL, &c, err);
    if (!rc && checksummed && (H5Pset_chunk(c.dcpl, ndim, hd) < 0 || H5Pset_fletcher32(c.dcpl) < 0))
        rc = qa_fail(err, QA_ERR_RUN, "%s: cannot set up the checksum of dataset %s", f->path, path);
    errno = 0;
    hid_t ds = rc ? -1 : H5Dcreate2(f->file, path, type_of(type), c.space, c.lcpl, c.dcpl, H5P_DEFAULT);
    close_creation(&c);
    if (rc) return rc;
    if (ds < 0) return fail_io(err, f->path, "cannot create dataset %s", path);
    errno = 0;
    herr_t wrc = H5Dwrite(ds, type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    int saved = errno;
    H5Dclose(ds);
    errno = saved;
    if (wrc < 0) return fail_io(err, f->path, "cannot write dataset %s", path);
    return QA_OK;
}

int qa_h5_write(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
             qa_error *err) {
    return write_dataset(f, path, type, data, ndim, dims, 0, err);
}

int qa_h5_write_checksummed(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
                         qa_error *err) {
    return write_dataset(f, path, type, data, ndim, dims, 1, err);
}

int qa_h5_checksummed(qa_h5 *f, const char *path) {
    if (!qa_h5_exists(f, path)) return 0;
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return 0;
    hid_t dcpl = H5Dget_create_plist(ds);
    unsigned flags = 0;
    size_t n_values = 0;
    int found = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &n_values, NULL, 0, NULL, NULL) >= 0;
    H5Pclose(dcpl);
    H5Dclose(ds);
    return found;
}

/* The file type of a packed dataset: integers narrowed to `bits` of precision (the N-bit filter
 * then stores only those bits), or IEEE binary16 / binary32 floats. */
static hid_t packed_type(int bits, int is_float, int is_signed) {
    hid_t t;
    if (is_float && bits == 16) {
        t = H5Tcopy(H5T_IEEE_F32LE);
        /* sign bit, exponent at 10 (5 bits), mantissa at 0 (10 bits) */
        if (t >= 0 && (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0)) {
            H5Tclose(t);
            return -1;
        }
        return t;
    }
    if (is_float) return H5Tcopy(H5T_IEEE_F32LE);
    t = H5Tcopy(is_signed ? H5T_STD_I32LE : H5T_STD_U32LE);
    if (t >= 0 && H5Tset_precision(t, (size_t)bits) < 0) { H5Tclose(t); return -1; }
    return t;
}

int qa_h5_write_packed(qa_h5 *f, const char *path, const void *data, int rows, int cols, int bits, int is_float, int is_signed,
                    qa_error *err) {
    if (is_float ? (bits != 16 && bits != 32) : (bits < 1 || bits > 32))
        return qa_fail(err, QA_ERR_INPUT, "%s: %s: cannot store %s at %d bits", f->path, path, is_float ? "floats" : "integers", bits);
    hsize_t hd[2] = {(hsize_t)rows, (hsize_t)cols};
    creation c;
    int rc = open_creation(f, path, 2, hd, NULL, &c, err);
    /* one chunk: filters need chunked storage */
    if (!rc && (H5Pset_chunk(c.dcpl, 2, hd) < 0 || (!is_float && bits < 32 && H5Pset_nbit(c.dcpl) < 0)))
        rc = qa_fail(err, QA_ERR_RUN, "%s: cannot set up the N-bit filter of dataset %s", f->path, path);
    hid_t ft = rc ? -1 : packed_type(bits, is_float, is_signed);
    if (!rc && ft < 0) rc = qa_fail(err, QA_ERR_RUN, "%s: cannot make the %d-bit type of dataset %s", f->path, bits, path);
    errno = 0;
    hid_t ds = rc ? -1 : H5Dcreate2(f->file, path, ft, c.space, c.lcpl, c.dcpl, H5P_DEFAULT);
    if (ft >= 0) H5Tclose(ft);
    close_creation(&c);
    if (rc) return rc;
    if (ds < 0) return fail_io(err, f->path, "cannot create dataset %s", path);
    errno = 0;
    herr_t wrc = H5Dwrite(ds, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    int saved = errno;
    H5Dclose(ds);
    errno = saved;
    if (wrc < 0) return fail_io(err, f->path, "cannot write dataset %s (%d-bit %s)", path, bits, is_float ? "float" : "integer");
    return QA_OK;
}

double qa_h5_storage_bytes(qa_h5 *f, const char *path) {
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hsize_t n = H5Dget_storage_size(ds);
    H5Dclose(ds);
    return (double)n;
}

int qa_h5_read(qa_h5 *f, const char *path, int type, void **data, size_t max_elems, int *ndim,
            int64_t *dims, qa_error *err) {
    if (!qa_h5_exists(f, path)) return qa_fail(err, QA_ERR_INPUT, "%s: missing dataset %s", f->path, path);
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return qa_fail(err, QA_ERR_INPUT, "%s: %s is not a dataset", f->path, path);
    hid_t space = H5Dget_space(ds);
    int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t hd[8] = {0};
    if (nd < 0 || nd > 4 || H5Sget_simple_extent_dims(space, hd, NULL) < 0) {
        if (space >= 0) H5Sclose(space);
        H5Dclose(ds);
        return qa_fail(err, QA_ERR_INPUT, "%s: dataset %s has %d dimensions (at most 4 supported)", f->path, path, nd);
    }
    H5Sclose(space);
    size_t n = 1;
    for (int i = 0; i < nd; i++) { n *= hd[i]; if (dims) dims[i] = (int64_t)hd[i]; }
    if (ndim) *ndim = nd;
    hid_t dt = H5Dget_type(ds);
    H5T_class_t cls = dt < 0 ? H5T_NO_CLASS : H5Tget_class(dt);
    if (dt >= 0) H5Tclose(dt);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        H5Dclose(ds);
        return qa_fail(err, QA_ERR_INPUT, "%s: dataset %s is not numeric", f->path, path);
    }
    int allocated = 0;
    if (!*data) { *data = qa_alloc(n * size_of(type) + 1); allocated = 1; }
    else if (n > max_elems) {
        H5Dclose(ds);
        return qa_fail(err, QA_ERR_INPUT, "%s: dataset %s has %zu elements, expected at most %zu", f->path, path,
                       n, max_elems);
    }
    herr_t rc = H5Dread(ds, type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, *data);
    H5Dclose(ds);
    if (rc < 0) {
        if (allocated) { qa_free(*data); *data = NULL; }
        if (qa_h5_checksummed(f, path))
            return qa_fail(err, QA_ERR_INPUT, "%s: cannot read dataset %s: its Fletcher-32 checksum does not match "
                           "(the stored bytes are damaged)", f->path, path);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot read dataset %s", f->path, path);
    }
    return QA_OK;
}

static hid_t open_obj(qa_h5 *f, const char *obj) {
    return H5Oopen(f->file, obj, H5P_DEFAULT);
}

int qa_h5_has_attr(qa_h5 *f, const char *obj, const char *name) {
    if (!qa_h5_exists(f, obj)) return 0;
    hid_t o = open_obj(f, obj);
    if (o < 0) return 0;
    int r = H5Aexists(o, name) > 0;
    H5Oclose(o);
    return r;
}

/* The group obj, made with its missing parents when it does not exist yet. */
static int ensure_group(qa_h5 *f, const char *obj, qa_error *err) {
    if (qa_h5_exists(f, obj)) return QA_OK;
    hid_t lcpl = lcpl_intermediate(), gcpl = untimed(H5P_GROUP_CREATE);
    errno = 0;
    hid_t g = lcpl < 0 || gcpl < 0 ? -1 : H5Gcreate2(f->file, obj, lcpl, gcpl, H5P_DEFAULT);
    int saved = errno;
    if (lcpl >= 0) H5Pclose(lcpl);
    if (gcpl >= 0) H5Pclose(gcpl);
    errno = saved;
    if (g < 0) return fail_io(err, f->path, "cannot create group %s", obj);
    H5Gclose(g);
    return QA_OK;
}

static int attr_write(qa_h5 *f, const char *obj, const char *name, hid_t type, const void *val, qa_error *err) {
    int rc = ensure_group(f, obj, err);
    if (rc) return rc;
    hid_t o = open_obj(f, obj);
    if (o < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot open %s", f->path, obj);
    if (H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0) {
        H5Oclose(o);
        return qa_fail(err, QA_ERR_RUN, "%s: cannot replace attribute %s of %s", f->path, name, obj);
    }
    hid_t space = H5Screate(H5S_SCALAR);
    errno = 0;
    hid_t a = space < 0 ? -1 : H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t wrc = a < 0 ? -1 : H5Awrite(a, type, val);
    int saved = errno;
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    H5Oclose(o);
    errno = saved;
    if (wrc < 0) return fail_io(err, f->path, "cannot write attribute %s of %s", name, obj);
    return QA_OK;
}

/* A variable-length UTF-8 string type (< 0 on failure); the caller closes it. */
static hid_t text_type(H5T_cset_t cset) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0)) { H5Tclose(t); return -1; }
    return t;
}

int qa_h5_attr_set_str(qa_h5 *f, const char *obj, const char *name, const char *value, qa_error *err) {
    hid_t t = text_type(H5T_CSET_UTF8);
    if (t < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot make the string type of attribute %s", f->path, name);
    int rc = attr_write(f, obj, name, t, &value, err);
    H5Tclose(t);
    return rc;
}

int qa_h5_attr_set_f64(qa_h5 *f, const char *obj, const char *name, double value, qa_error *err) {
    return attr_write(f, obj, name, H5T_NATIVE_DOUBLE, &value, err);
}

/* An open attribute and its file type, checked to hold one value of the expected class. */
typedef struct { hid_t obj, attr, type; } attr_handle;

static void attr_release(attr_handle *h) {
    if (h->type >= 0) H5Tclose(h->type);
    if (h->attr >= 0) H5Aclose(h->attr);
    if (h->obj >= 0) H5Oclose(h->obj);
}

static int attr_acquire(qa_h5 *f, const char *obj, const char *name, int want_text, attr_handle *h, qa_error *err) {
    *h = (attr_handle){-1, -1, -1};
    if (!qa_h5_has_attr(f, obj, name)) return qa_fail(err, QA_ERR_INPUT, "%s: missing attribute '%s' of %s", f->path, name, obj);
    h->obj = open_obj(f, obj);
    h->attr = h->obj < 0 ? -1 : H5Aopen(h->obj, name, H5P_DEFAULT);
    h->type = h->attr < 0 ? -1 : H5Aget_type(h->attr);
    hid_t space = h->attr < 0 ? -1 : H5Aget_space(h->attr);
    hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (space >= 0) H5Sclose(space);
    int rc = QA_OK;
    if (h->type < 0) rc = qa_fail(err, QA_ERR_INPUT, "%s: cannot open attribute '%s' of %s", f->path, name, obj);
    else if (n != 1)
        rc = qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s holds %lld values, expected one", f->path, name, obj, (long long)n);
    else {
        H5T_class_t cls = H5Tget_class(h->type);
        int is_text = cls == H5T_STRING, is_number = cls == H5T_INTEGER || cls == H5T_FLOAT;
        if (want_text ? !is_text : !is_number)
            rc = qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s is not a %s", f->path, name, obj, want_text ? "string" : "number");
    }
    if (rc) attr_release(h);
    return rc;
}

/* The string of an acquired text attribute, allocated (variable or fixed length). */
static int attr_read_text(qa_h5 *f, const char *name, const attr_handle *h, char **text, qa_error *err) {
    int variable = H5Tis_variable_str(h->type) > 0;
    size_t size = variable ? 0 : H5Tget_size(h->type);
    hid_t t = variable ? text_type(H5Tget_cset(h->type)) : H5Tcopy(H5T_C_S1);
    if (t >= 0 && !variable && H5Tset_size(t, size) < 0) { H5Tclose(t); t = -1; }
    if (t < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot read attribute '%s' (string type)", f->path, name);
    char *vs = NULL, *fixed = variable ? NULL : qa_alloc(size + 1);
    herr_t rc = H5Aread(h->attr, t, variable ? (void *)&vs : (void *)fixed);
    if (rc >= 0) *text = variable ? text_copy(vs ? vs : "") : fixed;
    if (variable && rc >= 0 && vs) {
        hid_t space = H5Aget_space(h->attr);
        H5Dvlen_reclaim(t, space, H5P_DEFAULT, &vs);
        H5Sclose(space);
    }
    H5Tclose(t);
    if (rc < 0) {
        qa_free(fixed);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot read attribute '%s'", f->path, name);
    }
    return QA_OK;
}

int qa_h5_attr_get_text(qa_h5 *f, const char *obj, const char *name, char **text, qa_error *err) {
    attr_handle h;
    int rc = attr_acquire(f, obj, name, 1, &h, err);
    if (rc) return rc;
    rc = attr_read_text(f, name, &h, text, err);
    attr_release(&h);
    return rc;
}

int qa_h5_attr_get_str(qa_h5 *f, const char *obj, const char *name, char *buf, size_t len, qa_error *err) {
    char *text;
    int rc = qa_h5_attr_get_text(f, obj, name, &text, err);
    if (rc) return rc;
    snprintf(buf, len, "%s", text);
    qa_free(text);
    return QA_OK;
}

int qa_h5_attr_get_f64(qa_h5 *f, const char *obj, const char *name, double *value, qa_error *err) {
    attr_handle h;
    int rc = attr_acquire(f, obj, name, 0, &h, err);
    if (rc) return rc;
    herr_t rrc = H5Aread(h.attr, H5T_NATIVE_DOUBLE, value);
    attr_release(&h);
    if (rrc < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot read attribute '%s' of %s", f->path, name, obj);
    return QA_OK;
}

/* ---- listing names: allocated, of any length ---- */

typedef struct { char **names; int n, cap; } name_list;

static void name_list_add(name_list *l, const char *name) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        char **grown = qa_alloc(sizeof(char *) * (size_t)l->cap);
        if (l->n) memcpy(grown, l->names, sizeof(char *) * (size_t)l->n);
        qa_free(l->names);
        l->names = grown;
    }
    l->names[l->n++] = text_copy(name);
}

static herr_t link_name_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g; (void)info;
    name_list_add(data, name);
    return 0;
}

static herr_t attr_name_cb(hid_t o, const char *name, const H5A_info_t *info, void *data) {
    (void)o; (void)info;
    name_list_add(data, name);
    return 0;
}

void qa_h5_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) qa_free(names[i]);
    qa_free(names);
}

int qa_h5_members(qa_h5 *f, const char *group, char ***names, qa_error *err) {
    *names = NULL;
    if (!qa_h5_exists(f, group)) return qa_fail(err, QA_ERR_INPUT, "%s: missing group %s", f->path, group);
    hid_t g = H5Gopen2(f->file, group, H5P_DEFAULT);
    if (g < 0) return qa_fail(err, QA_ERR_INPUT, "%s: %s is not a group", f->path, group);
    name_list l = {NULL, 0, 0};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, link_name_cb, &l);
    H5Gclose(g);
    if (rc < 0) { qa_h5_names_free(l.names, l.n); return qa_fail(err, QA_ERR_INPUT, "%s: cannot list %s", f->path, group); }
    *names = l.names;
    return l.n;
}

int qa_h5_attr_names(qa_h5 *f, const char *obj, char ***names, qa_error *err) {
    *names = NULL;
    if (!qa_h5_exists(f, obj)) return qa_fail(err, QA_ERR_INPUT, "%s: missing object %s", f->path, obj);
    hid_t o = open_obj(f, obj);
    if (o < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open %s", f->path, obj);
    name_list l = {NULL, 0, 0};
    hsize_t idx = 0;
    herr_t rc = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name_cb, &l);
    H5Oclose(o);
    if (rc < 0) {
        qa_h5_names_free(l.names, l.n);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot list the attributes of %s", f->path, obj);
    }
    *names = l.names;
    return l.n;
}

/* Copy up to max names into fixed rows; a longer name is an error, not a silent truncation. */
static int copy_names(qa_h5 *f, const char *obj, char **all, int n, char names[][64], int max, qa_error *err) {
    if (n < 0) return n;
    int rc = QA_OK, kept = n < max ? n : max;
    for (int i = 0; i < kept && !rc; i++) {
        if (strlen(all[i]) >= 64) rc = qa_fail(err, QA_ERR_INPUT, "%s: %s has a member name of %zu characters (at most 63 here): %.40s...", f->path, obj, strlen(all[i]), all[i]);
        else snprintf(names[i], 64, "%s", all[i]);
    }
    qa_h5_names_free(all, n);
    return rc ? rc : kept;
}

int qa_h5_list(qa_h5 *f, const char *group, char names[][64], int max, qa_error *err) {
    char **all;
    int n = qa_h5_members(f, group, &all, err);
    return copy_names(f, group, all, n, names, max, err);
}

int qa_h5_attr_list(qa_h5 *f, const char *obj, char names[][64], int max, qa_error *err) {
    char **all;
    int n = qa_h5_attr_names(f, obj, &all, err);
    return copy_names(f, obj, all, n, names, max, err);
}

/* ---- extendible tables ---- */

/* Chunks of 1024 rows, each with a Fletcher-32 checksum that every read verifies. */
int qa_h5_table_create(qa_h5 *f, const char *path, int cols, const char *col_names, qa_error *err) {
    hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols}, chunk[2] = {1024, (hsize_t)cols};
    creation c;
    int rc = open_creation(f, path, 2, dims, maxd, &c, err);
    if (!rc && (H5Pset_chunk(c.dcpl, 2, chunk) < 0 || H5Pset_fletcher32(c.dcpl) < 0))
        rc = qa_fail(err, QA_ERR_RUN, "%s: cannot set the chunks and checksum of table %s", f->path, path);
    errno = 0;
    hid_t ds = rc ? -1 : H5Dcreate2(f->file, path, H5T_NATIVE_DOUBLE, c.space, c.lcpl, c.dcpl, H5P_DEFAULT);
    close_creation(&c);
    if (rc) return rc;
    if (ds < 0) return fail_io(err, f->path, "cannot create table %s", path);
    H5Dclose(ds);
    return qa_h5_attr_set_str(f, path, "columns", col_names, err);
}

/* Write rows [n_rows, dims[1]] after the dims[0] rows the table ds holds. */
static herr_t append_rows(hid_t ds, const hsize_t *dims, const double *rows, int n_rows) {
    hsize_t newd[2] = {dims[0] + (hsize_t)n_rows, dims[1]};
    if (H5Dset_extent(ds, newd) < 0) return -1;
    hid_t fs = H5Dget_space(ds);
    hsize_t start[2] = {dims[0], 0}, count[2] = {(hsize_t)n_rows, dims[1]};
    hid_t ms = H5Screate_simple(2, count, NULL);
    herr_t rc = fs < 0 || ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, rows);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

int qa_h5_table_append(qa_h5 *f, const char *path, const double *rows, int n_rows, qa_error *err) {
    if (n_rows <= 0) return QA_OK;
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return qa_fail(err, QA_ERR_RUN, "%s: missing table %s", f->path, path);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int nd = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    errno = 0;
    herr_t rc = nd == 2 ? append_rows(ds, dims, rows, n_rows) : -1;
    int saved = errno;
    H5Dclose(ds);
    errno = saved;
    if (nd != 2) return qa_fail(err, QA_ERR_RUN, "%s: %s is not a table of rows", f->path, path);
    if (rc < 0) return fail_io(err, f->path, "cannot append to table %s", path);
    return QA_OK;
}

const char *qa_h5_library_version(char *buf, size_t len) {
    unsigned maj, min, rel;
    quiet();
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, len, "HDF5 %u.%u.%u", maj, min, rel);
    return buf;
}
