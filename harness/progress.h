/* Progress on stderr: a live line with an ETA when stderr is a terminal, plain log lines
 * otherwise (so CI logs and redirected output stay readable). */
#ifndef QA_PROGRESS_H
#define QA_PROGRESS_H

typedef struct {
    const char *what;
    long total;
    double t0;
    int tty;
    char who[64];     /* " shard r/n", " rank r/N": which part of a sweep this line is ("" alone) */
    int ranks;        /* processes sharing `total` (done counts this one's); 1 alone */
} qa_progress;

void qa_progress_begin(qa_progress *p, const char *what, long total);
/* A sweep shared by `ranks` processes, `who` naming this one: the line shows it, and the ETA is
 * the whole job's, assuming the other ranks keep this one's pace. */
void qa_progress_share(qa_progress *p, const char *who, int ranks);
void qa_progress_log(qa_progress *p, long done, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qa_progress_end(qa_progress *p);

#endif
