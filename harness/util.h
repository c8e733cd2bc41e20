/* Shared small utilities: error reporting, checked allocation, timing.
 * Library functions return 0 on success and a negative code on failure, with a message in a
 * qa_error the caller owns; only the CLI decides the process exit status. */
#ifndef QA_UTIL_H
#define QA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    QA_OK = 0,
    QA_ERR_INPUT = -2,   /* bad user input: recipe, data file, arguments (exit 2) */
    QA_ERR_RUN = -1,     /* a run failed: I/O, numerical, library (exit 1) */
};

typedef struct {
    int code;
    char msg[1024];
} qa_error;

/* Record a failure and return its code, so call sites read `return qa_fail(err, ...)`. */
int qa_fail(qa_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Invariant violations (programming errors) abort with file and line. */
#define QA_ASSERT(cond)                                                                   \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", __FILE__,   \
                    __LINE__, #cond);                                                     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* 64-byte aligned, zeroed allocation; aborts on out-of-memory (nothing sensible to return). */
void *qa_alloc(size_t bytes);
void qa_free(void *p);

double qa_now(void); /* monotonic seconds */

/* Read a whole file into a NUL-terminated buffer (caller frees). */
int qa_read_file(const char *path, char **text, size_t *len, qa_error *err);
int qa_mkdir_p(const char *path, qa_error *err);
/* Strict number tokens, the whole token or nothing (0, else -1): an integer is an optional sign
 * and decimal digits (strtod would read 1e1 as 10 and 0x10 as 16; an overflow saturates at
 * LLONG_MAX or LLONG_MIN, outside every range); a number is decimal and finite (no hex floats,
 * no inf or nan). */
int qa_parse_int_token(const char *v, long long *out);
int qa_parse_number_token(const char *v, double *out);
int qa_file_exists(const char *path);
int qa_dir_exists(const char *path); /* 1 when path is a folder */
int qa_same_file(const char *a, const char *b); /* 1 when both paths exist and name one file or folder */
/* One CSV text field (RFC 4180): as is, or in double quotes with its quotes doubled when it
 * holds a comma, a quote or a line break ("NF4 (merged, re-quantized)" is one field). */
void qa_csv_field(FILE *f, const char *s);

/* Per-purpose seed derivation: a 64-bit mix of (seed, purpose string), never 0. */
uint64_t qa_seed_for(uint64_t seed, const char *purpose);

/* Peak resident set size of this process in bytes (from /proc/self/status). */
size_t qa_peak_rss(void);
/* Reset the peak to the current RSS, so that a sweep measures each run's own peak; -1 where the
 * kernel does not allow it (the peak is then the process's so far). */
int qa_reset_peak_rss(void);

#endif
