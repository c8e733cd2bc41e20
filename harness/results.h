/* HDF5 I/O: the only unit that includes hdf5.h. A thin, checked API over files, datasets and
 * attributes; checkpoints, run files, summaries and fixtures are all built on it.
 * Paths like "/runs/x/train" create intermediate groups. Files are written without object
 * timestamps so equal content gives equal bytes. */
#ifndef QA_RESULTS_H
#define QA_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "harness/util.h"

typedef struct qa_h5 qa_h5;

enum { QA_H5_F32 = 0, QA_H5_F64, QA_H5_I32, QA_H5_U8 };

int qa_h5_create(const char *path, qa_h5 **out, qa_error *err);      /* truncates */
/* Same, in the 1.10 format (smaller metadata for many small chunked datasets; not byte-reproducible). */
int qa_h5_create_compact(const char *path, qa_h5 **out, qa_error *err);
int qa_h5_open(const char *path, int writable, qa_h5 **out, qa_error *err);
/* Write failures (flush, close, datasets, attributes) name the file and, when the system gave
 * one, its reason (e.g. "No space left on device"). */
int qa_h5_flush(qa_h5 *f, qa_error *err);
/* Always frees f, also when the close fails (the library then keeps no handle that its shutdown
 * at exit would retry).
 * A file created or opened writable is synced to disk (fsync) after it is closed, so a rename
 * that marks it finished never points at data still in the page cache. */
int qa_h5_close(qa_h5 *f, qa_error *err);
/* rename(from, to), then sync to's folder so the rename itself survives a power loss. */
int qa_h5_rename_durable(const char *from, const char *to, qa_error *err);
const char *qa_h5_path(const qa_h5 *f);

int qa_h5_exists(qa_h5 *f, const char *path); /* group, dataset (or attribute of "/" with '@name') */
int qa_h5_write(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
             qa_error *err);
/* Same, stored with a Fletcher-32 checksum that every read verifies (a mismatch is a read error
 * that says so; an empty dataset is stored plain). h5_checksummed: 1 when a dataset carries one. */
int qa_h5_write_checksummed(qa_h5 *f, const char *path, int type, const void *data, int ndim, const int64_t *dims,
                         qa_error *err);
int qa_h5_checksummed(qa_h5 *f, const char *path);
/* Read a dataset of any stored numeric type converted to `type`. *data is allocated (qa_alloc)
 * when *data is NULL; otherwise it must hold max_elems. dims (up to 4) and ndim are returned. */
/* A [rows, cols] dataset stored packed: integers (int32 in memory) at `bits` bits each through
 * HDF5's N-bit filter, or floats (float in memory) as binary16 (bits 16) or binary32. Values
 * must fit (integers in their width; binary16 floats exactly, or they are rounded). */
int qa_h5_write_packed(qa_h5 *f, const char *path, const void *data, int rows, int cols, int bits, int is_float, int is_signed,
                    qa_error *err);
/* Bytes a dataset occupies in the file (after filters); -1 if it cannot be opened. */
double qa_h5_storage_bytes(qa_h5 *f, const char *path);
int qa_h5_read(qa_h5 *f, const char *path, int type, void **data, size_t max_elems, int *ndim,
            int64_t *dims, qa_error *err);

int qa_h5_attr_set_str(qa_h5 *f, const char *obj, const char *name, const char *value, qa_error *err);
int qa_h5_attr_set_f64(qa_h5 *f, const char *obj, const char *name, double value, qa_error *err);
/* Reading an attribute checks it holds one value of the expected class (string or number). */
int qa_h5_attr_get_str(qa_h5 *f, const char *obj, const char *name, char *buf, size_t len, qa_error *err);
/* The same, the whole string allocated (qa_alloc; the caller frees it with qa_free). */
int qa_h5_attr_get_text(qa_h5 *f, const char *obj, const char *name, char **text, qa_error *err);
int qa_h5_attr_get_f64(qa_h5 *f, const char *obj, const char *name, double *value, qa_error *err);
int qa_h5_has_attr(qa_h5 *f, const char *obj, const char *name);

/* The names of the members of a group, in name order, each of any length: returns the count (or
 * negative) and *names allocated; free with h5_names_free. */
int qa_h5_members(qa_h5 *f, const char *group, char ***names, qa_error *err);
/* The same for the names of an object's attributes. */
int qa_h5_attr_names(qa_h5 *f, const char *obj, char ***names, qa_error *err);
void qa_h5_names_free(char **names, int n);
/* The first max of them into fixed rows of 64: returns the count or negative; a name of 64 or
 * more characters is bad input naming the file (never cut short). */
int qa_h5_list(qa_h5 *f, const char *group, char names[][64], int max, qa_error *err);
int qa_h5_attr_list(qa_h5 *f, const char *obj, char names[][64], int max, qa_error *err);

/* An extendible 2-D f64 table [rows, cols] with column names as an attribute; append batches.
 * Stored with Fletcher-32 checksums (per chunk), verified by h5_read as for h5_write_checksummed. */
int qa_h5_table_create(qa_h5 *f, const char *path, int cols, const char *col_names, qa_error *err);
int qa_h5_table_append(qa_h5 *f, const char *path, const double *rows, int n_rows, qa_error *err);

const char *qa_h5_library_version(char *buf, size_t len); /* into buf, which it returns */

#endif
