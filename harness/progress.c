#include "harness/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "harness/util.h"

void qa_progress_begin(qa_progress *p, const char *what, long total) {
    p->what = what;
    p->total = total;
    p->t0 = qa_now();
    p->tty = isatty(2);
    p->who[0] = 0;
    p->ranks = 1;
}

void qa_progress_share(qa_progress *p, const char *who, int ranks) {
    snprintf(p->who, sizeof p->who, "%s", who);
    p->ranks = ranks > 1 ? ranks : 1;
}

void qa_progress_log(qa_progress *p, long done, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    double el = qa_now() - p->t0;
    if (p->ranks > 1) { /* done is this rank's; the job has done about ranks times as many */
        long all = done * p->ranks < p->total ? done * p->ranks : p->total;
        double eta = done > 0 && p->total > all ? el / done * (double)(p->total - all) / p->ranks : 0;
        fprintf(stderr, "%s%s%s %ld here, ~%ld/%ld overall  %s  [%.0fs, overall ETA ~%.0fs]%s", p->tty ? "\r" : "",
                p->what, p->who, done, all, p->total, msg, el, eta, p->tty ? "\033[K" : "\n");
    } else {
        double eta = done > 0 && p->total > done ? el / done * (p->total - done) : 0;
        fprintf(stderr, "%s%s%s %ld/%ld  %s  [%.0fs, ETA %.0fs]%s", p->tty ? "\r" : "", p->what, p->who, done, p->total,
                msg, el, eta, p->tty ? "\033[K" : "\n");
    }
    fflush(stderr);
}

void qa_progress_end(qa_progress *p) {
    if (p->tty) fprintf(stderr, "\n");
}
