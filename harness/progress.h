/* Progress on stderr: a live line with an ETA when stderr is a terminal, plain log lines
 * otherwise (so CI logs and redirected output stay readable). */
#ifndef QA_PROGRESS_H
#define QA_PROGRESS_H

typedef struct {
    const char *what;
    long total;
    double t0;
    int tty;
} qa_progress;

void progress_begin(qa_progress *p, const char *what, long total);
void progress_log(qa_progress *p, long done, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void progress_end(qa_progress *p);

#endif
