/* Small helpers shared by the Criterion suites: a deterministic test-local RNG (independent of
 * the harness's GSL wrapper), temp directories, and tolerance checks. Everything is static
 * inline so a suite that does not use a helper gets no unused-function warning. */
#ifndef QA_TEST_COMMON_H
#define QA_TEST_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* xorshift64* : a test-local generator, so references never share state with the units. */
typedef struct { uint64_t s; } trng;

static inline trng trng_new(uint64_t seed) {
    trng r = {seed * 0x9e3779b97f4a7c15ull + 0x1234567ull};
    if (!r.s) r.s = 1;
    return r;
}

static inline uint64_t trng_next(trng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

/* uniform in [lo, hi) */
static inline double trng_unif(trng *r, double lo, double hi) {
    return lo + (hi - lo) * ((double)(trng_next(r) >> 11) / 9007199254740992.0);
}

static inline double trng_normal(trng *r) {
    double u1 = trng_unif(r, 1e-12, 1.0), u2 = trng_unif(r, 0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static inline void fill_unif(trng *r, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)trng_unif(r, lo, hi);
}

static inline void fill_normal(trng *r, float *x, size_t n, double std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * trng_normal(r));
}

static inline double dot_fd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* |a - b| <= rel * max(|a|, |b|) + abs_tol */
static inline int close_rel(double a, double b, double rel, double abs_tol) {
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= rel * m + abs_tol;
}

/* A fresh directory under /tmp (mkdtemp); the caller removes it with rm_rf_dir. */
static inline void make_tmpdir(char *buf, size_t len, const char *tag) {
    snprintf(buf, len, "/tmp/qa-test-%s-XXXXXX", tag);
    if (!mkdtemp(buf)) { perror("mkdtemp"); abort(); }
}

static inline void rm_rf_dir(const char *dir) {
    char cmd[1200];
    if (strncmp(dir, "/tmp/qa-test-", 13) != 0) return; /* never anything else */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline void write_text_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    fputs(text, f);
    fclose(f);
}

/* Run a shell command line; its stdout (and stderr, when the line redirects it) into out[cap];
 * returns its exit status (-1 when it did not exit normally or could not start). */
static inline int capture_command(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) { out[0] = 0; return -1; }
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
