#include "harness/results.h"

#include <errno.h>
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

static void quiet(void) {
    static int done = 0;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
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

const char *h5_path(const qa_h5 *f) { return f->path; }

static int create_file(const char *path, int compact, qa_h5 **out, qa_error *err) {
    quiet();
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* compact: the 1.10 file format, with small indexes for single-chunk datasets (a deployed
     * artifact of small layers would otherwise be half B-tree nodes). It records creation times
     * of groups, so the byte-reproducible result files keep the default format. */
    if (compact) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (file < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create HDF5 file", path);
    qa_h5 *f = qa_alloc(sizeof *f);
    f->file = file;
    f->writable = 1;
    f->path = strdup(path);
    *out = f;
    return QA_OK;
}

int h5_create(const char *path, qa_h5 **out, qa_error *err) { return create_file(path, 0, out, err); }

int h5_create_compact(const char *path, qa_h5 **out, qa_error *err) { return create_file(path, 1, out, err); }

int h5_open(const char *path, int writable, qa_h5 **out, qa_error *err) {
    quiet();
    if (!qa_file_exists(path)) return qa_fail(err, QA_ERR_INPUT, "%s: file not found", path);
    if (H5Fis_hdf5(path) <= 0) return qa_fail(err, QA_ERR_INPUT, "%s: not an HDF5 file", path);
    hid_t file = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open HDF5 file (damaged?)", path);
    qa_h5 *f = qa_alloc(sizeof *f);
    f->file = file;
    f->writable = writable;
    f->path = strdup(path);
    *out = f;
    return QA_OK;
}

int h5_flush(qa_h5 *f, qa_error *err) {
    if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) return qa_fail(err, QA_ERR_RUN, "%s: flush failed", f->path);
    return QA_OK;
}

int h5_close(qa_h5 *f, qa_error *err) {
    if (!f) return QA_OK;
    herr_t rc = H5Fclose(f->file);
    /* on disk before anyone renames it finished: a power loss must not leave an empty file */
    int out = rc < 0 ? qa_fail(err, QA_ERR_RUN, "%s: close failed", f->path)
                     : (f->writable ? qa_fsync_path(f->path, err) : QA_OK);
    free(f->path);
    qa_free(f);
    return out;
}

int h5_rename_durable(const char *from, const char *to, qa_error *err) {
    if (rename(from, to) != 0) return qa_fail(err, QA_ERR_RUN, "cannot rename %s to %s: %s", from, to, strerror(errno));
    const char *slash = strrchr(to, '/');
    if (!slash) return qa_fsync_path(".", err);
    size_t n = slash == to ? 1 : (size_t)(slash - to);
    char *dir = malloc(n + 1);
    memcpy(dir, to, n);
    dir[n] = 0;
    int rc = qa_fsync_path(dir, err);
    free(dir);
    return rc;
}

int h5_exists(qa_h5 *f, const char *path) {
    if (strcmp(path, "/") == 0) return 1;
    if (path[0] == '@') return H5Aexists(f->file, path + 1) > 0; /* attribute of the root */
    /* check each prefix: H5Lexists fails on a missing intermediate group */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (H5Lexists(f->file, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == 0) break;
            *p = c;
        }
    }
    return 1;
}

static hid_t lcpl_intermediate(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

/* checksummed: chunked (one chunk, Fletcher-32 needs chunked storage) with the Fletcher-32
 * filter, which HDF5 verifies on every read. */
static int write_dataset(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
                         int checksummed, qa_error *err) {
    hsize_t hd[8];
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    if (h5_exists(f, path)) H5Ldelete(f->file, path, H5P_DEFAULT);
    hid_t space = H5Screate_simple(ndim, hd, NULL);
    hid_t lcpl = lcpl_intermediate();
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    if (checksummed && (H5Pset_chunk(dcpl, ndim, hd) < 0 || H5Pset_fletcher32(dcpl) < 0)) {
        H5Pclose(lcpl); H5Pclose(dcpl); H5Sclose(space);
        return qa_fail(err, QA_ERR_RUN, "%s: cannot set up the checksum of dataset %s", f->path, path);
    }
    hid_t ds = H5Dcreate2(f->file, path, type_of(type), space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create dataset %s", f->path, path);
    herr_t rc = H5Dwrite(ds, type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    if (rc < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot write dataset %s", f->path, path);
    return QA_OK;
}

int h5_write(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
             qa_error *err) {
    return write_dataset(f, path, type, data, ndim, dims, 0, err);
}

int h5_write_checksummed(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
                         qa_error *err) {
    return write_dataset(f, path, type, data, ndim, dims, 1, err);
}

int h5_checksummed(qa_h5 *f, const char *path) {
    if (!h5_exists(f, path)) return 0;
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
        H5Tset_fields(t, 15, 10, 5, 0, 10); /* sign bit, exponent at 10 (5 bits), mantissa at 0 (10 bits) */
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
        return t;
    }
    if (is_float) return H5Tcopy(H5T_IEEE_F32LE);
    t = H5Tcopy(is_signed ? H5T_STD_I32LE : H5T_STD_U32LE);
    H5Tset_precision(t, (size_t)bits);
    return t;
}

int h5_write_packed(qa_h5 *f, const char *path, const void *data, int rows, int cols, int bits, int is_float, int is_signed,
                    qa_error *err) {
    if (is_float ? (bits != 16 && bits != 32) : (bits < 1 || bits > 32))
        return qa_fail(err, QA_ERR_INPUT, "%s: %s: cannot store %s at %d bits", f->path, path, is_float ? "floats" : "integers", bits);
    hsize_t hd[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t space = H5Screate_simple(2, hd, NULL);
    hid_t lcpl = lcpl_intermediate();
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_chunk(dcpl, 2, hd); /* one chunk: filters need chunked storage */
    if (!is_float && bits < 32) H5Pset_nbit(dcpl);
    hid_t ft = packed_type(bits, is_float, is_signed);
    hid_t ds = H5Dcreate2(f->file, path, ft, space, lcpl, dcpl, H5P_DEFAULT);
    H5Tclose(ft);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create dataset %s", f->path, path);
    herr_t rc = H5Dwrite(ds, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    if (rc < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot write dataset %s (%d-bit %s)", f->path, path, bits, is_float ? "float" : "integer");
    return QA_OK;
}

double h5_storage_bytes(qa_h5 *f, const char *path) {
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hsize_t n = H5Dget_storage_size(ds);
    H5Dclose(ds);
    return (double)n;
}

int h5_read(qa_h5 *f, const char *path, int type, void **data, size_t max_elems, int *ndim,
            int64_t *dims, qa_error *err) {
    if (!h5_exists(f, path)) return qa_fail(err, QA_ERR_INPUT, "%s: missing dataset %s", f->path, path);
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return qa_fail(err, QA_ERR_INPUT, "%s: %s is not a dataset", f->path, path);
    hid_t space = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t hd[8] = {0};
    if (nd < 0 || nd > 4) {
        H5Sclose(space); H5Dclose(ds);
        return qa_fail(err, QA_ERR_INPUT, "%s: dataset %s has %d dimensions (at most 4 supported)", f->path, path, nd);
    }
    H5Sget_simple_extent_dims(space, hd, NULL);
    H5Sclose(space);
    size_t n = 1;
    for (int i = 0; i < nd; i++) { n *= hd[i]; if (dims) dims[i] = (int64_t)hd[i]; }
    if (ndim) *ndim = nd;
    hid_t dt = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(dt);
    H5Tclose(dt);
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
        if (h5_checksummed(f, path))
            return qa_fail(err, QA_ERR_INPUT, "%s: cannot read dataset %s: its Fletcher-32 checksum does not match "
                           "(the stored bytes are damaged)", f->path, path);
        return qa_fail(err, QA_ERR_INPUT, "%s: cannot read dataset %s", f->path, path);
    }
    return QA_OK;
}

static hid_t open_obj(qa_h5 *f, const char *obj) {
    return H5Oopen(f->file, obj, H5P_DEFAULT);
}

/* A value attribute holds exactly one element: reading an array into one value overflows. */
static int attr_check_single(qa_h5 *f, const char *obj, const char *name, hid_t a, qa_error *err) {
    hid_t space = H5Aget_space(a);
    hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (space >= 0) H5Sclose(space);
    if (n != 1)
        return qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s holds %lld values, expected one", f->path, name,
                       obj, (long long)n);
    return QA_OK;
}

int h5_has_attr(qa_h5 *f, const char *obj, const char *name) {
    if (!h5_exists(f, obj)) return 0;
    hid_t o = open_obj(f, obj);
    if (o < 0) return 0;
    int r = H5Aexists(o, name) > 0;
    H5Oclose(o);
    return r;
}

static int attr_write(qa_h5 *f, const char *obj, const char *name, hid_t type, const void *val, qa_error *err) {
    if (!h5_exists(f, obj)) {
        hid_t lcpl = lcpl_intermediate();
        hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_obj_track_times(gcpl, 0);
        hid_t g = H5Gcreate2(f->file, obj, lcpl, gcpl, H5P_DEFAULT);
        H5Pclose(lcpl);
        H5Pclose(gcpl);
        if (g < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create group %s", f->path, obj);
        H5Gclose(g);
    }
    hid_t o = open_obj(f, obj);
    if (o < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot open %s", f->path, obj);
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, val);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Oclose(o);
    if (rc < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot write attribute %s of %s", f->path, name, obj);
    return QA_OK;
}

int h5_attr_set_str(qa_h5 *f, const char *obj, const char *name, const char *value, qa_error *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(f, obj, name, t, &value, err);
    H5Tclose(t);
    return rc;
}

int h5_attr_set_f64(qa_h5 *f, const char *obj, const char *name, double value, qa_error *err) {
    return attr_write(f, obj, name, H5T_NATIVE_DOUBLE, &value, err);
}

/* One string of type ft (variable or fixed length) into buf. */
static int attr_read_str(qa_h5 *f, const char *name, hid_t a, hid_t ft, char *buf, size_t len, qa_error *err) {
    int rc = QA_OK;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5Tget_cset(ft));
        char *s = NULL;
        if (H5Aread(a, t, &s) < 0) rc = qa_fail(err, QA_ERR_INPUT, "%s: cannot read attribute '%s'", f->path, name);
        else {
            snprintf(buf, len, "%s", s ? s : "");
            hid_t space = H5Aget_space(a);
            H5Dvlen_reclaim(t, space, H5P_DEFAULT, &s);
            H5Sclose(space);
        }
        H5Tclose(t);
        return rc;
    }
    size_t sz = H5Tget_size(ft);
    char *tmp = calloc(1, sz + 1);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, sz);
    if (H5Aread(a, t, tmp) < 0) rc = qa_fail(err, QA_ERR_INPUT, "%s: cannot read attribute '%s'", f->path, name);
    else snprintf(buf, len, "%s", tmp);
    H5Tclose(t);
    free(tmp);
    return rc;
}

int h5_attr_get_str(qa_h5 *f, const char *obj, const char *name, char *buf, size_t len, qa_error *err) {
    if (!h5_has_attr(f, obj, name))
        return qa_fail(err, QA_ERR_INPUT, "%s: missing attribute '%s' of %s", f->path, name, obj);
    hid_t o = open_obj(f, obj);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    int rc = attr_check_single(f, obj, name, a, err);
    if (!rc && H5Tget_class(ft) != H5T_STRING)
        rc = qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s is not a string", f->path, name, obj);
    if (!rc) rc = attr_read_str(f, name, a, ft, buf, len, err);
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

int h5_attr_get_f64(qa_h5 *f, const char *obj, const char *name, double *value, qa_error *err) {
    if (!h5_has_attr(f, obj, name))
        return qa_fail(err, QA_ERR_INPUT, "%s: missing attribute '%s' of %s", f->path, name, obj);
    hid_t o = open_obj(f, obj);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(ft);
    H5Tclose(ft);
    int single = attr_check_single(f, obj, name, a, err);
    herr_t rc = -1;
    if (!single && (cls == H5T_INTEGER || cls == H5T_FLOAT)) rc = H5Aread(a, H5T_NATIVE_DOUBLE, value);
    H5Aclose(a);
    H5Oclose(o);
    if (single) return single;
    if (rc < 0) return qa_fail(err, QA_ERR_INPUT, "%s: attribute '%s' of %s is not a number", f->path, name, obj);
    return QA_OK;
}

typedef struct { char (*names)[64]; int n, max; } list_ctx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g; (void)info;
    list_ctx *c = data;
    if (c->n < c->max) snprintf(c->names[c->n], 64, "%s", name);
    c->n++;
    return 0;
}

int h5_list(qa_h5 *f, const char *group, char names[][64], int max, qa_error *err) {
    if (!h5_exists(f, group)) return qa_fail(err, QA_ERR_INPUT, "%s: missing group %s", f->path, group);
    hid_t g = H5Gopen2(f->file, group, H5P_DEFAULT);
    if (g < 0) return qa_fail(err, QA_ERR_INPUT, "%s: %s is not a group", f->path, group);
    list_ctx c = {names, 0, max};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &c);
    H5Gclose(g);
    if (rc < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot list %s", f->path, group);
    return c.n < max ? c.n : max;
}

static herr_t attr_list_cb(hid_t o, const char *name, const H5A_info_t *info, void *data) {
    (void)o; (void)info;
    list_ctx *c = data;
    if (c->n < c->max) snprintf(c->names[c->n], 64, "%s", name);
    c->n++;
    return 0;
}

int h5_attr_list(qa_h5 *f, const char *obj, char names[][64], int max, qa_error *err) {
    if (!h5_exists(f, obj)) return qa_fail(err, QA_ERR_INPUT, "%s: missing object %s", f->path, obj);
    hid_t o = open_obj(f, obj);
    if (o < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open %s", f->path, obj);
    list_ctx c = {names, 0, max};
    hsize_t idx = 0;
    herr_t rc = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_list_cb, &c);
    H5Oclose(o);
    if (rc < 0) return qa_fail(err, QA_ERR_INPUT, "%s: cannot list the attributes of %s", f->path, obj);
    return c.n < max ? c.n : max;
}

int h5_table_create(qa_h5 *f, const char *path, int cols, const char *col_names, qa_error *err) {
    hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols}, chunk[2] = {1024, (hsize_t)cols};
    hid_t space = H5Screate_simple(2, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t lcpl = lcpl_intermediate();
    hid_t ds = H5Dcreate2(f->file, path, H5T_NATIVE_DOUBLE, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot create table %s", f->path, path);
    H5Dclose(ds);
    return h5_attr_set_str(f, path, "columns", col_names, err);
}

int h5_table_append(qa_h5 *f, const char *path, const double *rows, int n_rows, qa_error *err) {
    if (n_rows <= 0) return QA_OK;
    hid_t ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (ds < 0) return qa_fail(err, QA_ERR_RUN, "%s: missing table %s", f->path, path);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2];
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    hsize_t newd[2] = {dims[0] + (hsize_t)n_rows, dims[1]};
    herr_t rc = H5Dset_extent(ds, newd);
    if (rc >= 0) {
        hid_t fs = H5Dget_space(ds);
        hsize_t start[2] = {dims[0], 0}, count[2] = {(hsize_t)n_rows, dims[1]};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(2, count, NULL);
        rc = H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, rows);
        H5Sclose(ms);
        H5Sclose(fs);
    }
    H5Dclose(ds);
    if (rc < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot append to table %s", f->path, path);
    return QA_OK;
}

const char *h5_library_version(void) {
    static char v[32];
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    snprintf(v, sizeof v, "HDF5 %u.%u.%u", maj, min, rel);
    return v;
}
