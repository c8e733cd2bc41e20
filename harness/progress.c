#include "harness/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "harness/util.h"

void progress_begin(qa_progress *p, const char *what, long total) {
    p->what = what;
    p->total = total;
    p->t0 = qa_now();
    p->tty = isatty(2);
}

void progress_log(qa_progress *p, long done, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    double el = qa_now() - p->t0;
    double eta = done > 0 && p->total > done ? el / done * (p->total - done) : 0;
    if (p->tty)
        fprintf(stderr, "\r%s %ld/%ld  %s  [%.0fs, ETA %.0fs]\033[K", p->what, done, p->total, msg, el, eta);
    else
        fprintf(stderr, "%s %ld/%ld  %s  [%.0fs, ETA %.0fs]\n", p->what, done, p->total, msg, el, eta);
    fflush(stderr);
}

void progress_end(qa_progress *p) {
    if (p->tty) fprintf(stderr, "\n");
}
