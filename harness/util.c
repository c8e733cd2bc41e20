#include "harness/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int qa_fail(qa_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void *qa_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded) != 0 || !p) {
        fprintf(stderr, "out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    memset(p, 0, rounded);
    return p;
}

void qa_free(void *p) { free(p); }

double qa_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qa_read_file(const char *path, char **text, size_t *len, qa_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qa_fail(err, QA_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); abort(); }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); abort(); }
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return qa_fail(err, QA_ERR_INPUT, "%s: read error", path); }
    buf[n] = 0;
    *text = buf;
    if (len) *len = n;
    return QA_OK;
}

int qa_mkdir_p(const char *path, qa_error *err) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return qa_fail(err, QA_ERR_INPUT, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return qa_fail(err, QA_ERR_RUN, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    return QA_OK;
}

int qa_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int qa_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int qa_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t qa_seed_for(uint64_t seed, const char *purpose) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the purpose, then mixed with the seed */
    for (const char *p = purpose; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    uint64_t s = splitmix64(h ^ splitmix64(seed));
    /* GSL's mt19937 uses the low 32 bits and replaces 0 by 4357: avoid both pitfalls. */
    s = (s ^ (s >> 32)) & 0xffffffffull;
    return s ? s : 1;
}

int qa_reset_peak_rss(void) {
    /* Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

size_t qa_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) { kb = strtoull(line + 6, NULL, 10); break; }
    fclose(f);
    return kb * 1024;
}

int qa_parse_int_token(const char *v, long long *out) {
    const char *digits = (*v == '-' || *v == '+') ? v + 1 : v;
    if (*digits == 0 || strspn(digits, "0123456789") != strlen(digits)) return -1;
    *out = strtoll(v, NULL, 10);
    return 0;
}

int qa_parse_number_token(const char *v, double *out) {
    if (*v == 0 || strspn(v, "0123456789+-.eE") != strlen(v)) return -1;
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    return *end == 0 && errno == 0 && isfinite(*out) ? 0 : -1;
}

void qa_csv_field(FILE *f, const char *s) {
    if (!s[strcspn(s, ",\"\n\r")]) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
