#include "harness/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct qa_lock {
    int fd, shard_fd; /* DIR/.lock; DIR/.lock.r-of-n for a shard (-1 for the whole plan) */
    char *dir;
};

int qa_fsync_path(const char *path, qa_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qa_fail(err, QA_ERR_RUN, "%s: cannot open to sync it to disk: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? QA_OK : qa_fail(err, QA_ERR_RUN, "%s: cannot sync to disk: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* "PID n on host h" as the holder wrote it, or a plain phrase while it has not written yet. */
static void read_holder(int fd, char *buf, size_t len) {
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (!buf[0]) snprintf(buf, len, "another process");
}

static void write_holder(int fd, int rank, int count) {
    char host[256] = "unknown", line[400], shard[64] = "";
    gethostname(host, sizeof host - 1);
    if (count > 1) snprintf(shard, sizeof shard, " (shard %d/%d)", rank, count);
    int n = snprintf(line, sizeof line, "PID %ld on host %s%s\n", (long)getpid(), host, shard);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n) return;
    /* the lock holds without its label; a second sweep then says "another process" */
}

/* Take the lock on fd (type F_WRLCK: exclusive, F_RDLCK: shared): at once, or (waiting on)
 * after the holder lets go. */
static int take_lock(int fd, short type, const char *path, const char *dir, int wait, qa_error *err) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl) == 0) return QA_OK;
    if (errno != EACCES && errno != EAGAIN)
        return qa_fail(err, QA_ERR_RUN, "%s: cannot lock: %s", path, strerror(errno));
    char holder[300];
    read_holder(fd, holder, sizeof holder);
    if (!wait)
        return qa_fail(err, QA_ERR_INPUT, "%s is held by %s: another 'qadapt run' is writing to %s (wait for it, "
                       "pass --wait to queue behind it, or choose another --out)", path, holder, dir);
    fprintf(stderr, "waiting for %s (held by %s)\n", path, holder);
    while (fcntl(fd, F_SETLKW, &fl) != 0)
        if (errno != EINTR) return qa_fail(err, QA_ERR_RUN, "%s: cannot lock: %s", path, strerror(errno));
    return QA_OK;
}

/* Open DIR/<name> and lock it (type as take_lock); the descriptor, or -1 with err filled. */
static int open_locked(const char *dir, const char *name, short type, int wait, qa_error *err) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    snprintf(path, len, "%s/%s", dir, name);
    int rc = QA_OK, fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) rc = qa_fail(err, QA_ERR_RUN, "%s: cannot open the folder's lock file: %s", path, strerror(errno));
    if (!rc) rc = take_lock(fd, type, path, dir, wait, err);
    free(path);
    if (rc && fd >= 0) close(fd);
    return rc ? -1 : fd;
}

int qa_lock_acquire_shard(const char *dir, int rank, int count, int wait, qa_lock **out, qa_error *err) {
    QA_ASSERT(count >= 1 && rank >= 0 && rank < count);
    int rc = qa_mkdir_p(dir, err);
    if (rc) return rc;
    /* the whole plan: the folder alone; a shard: the folder shared with its sibling shards */
    int fd = open_locked(dir, ".lock", count > 1 ? F_RDLCK : F_WRLCK, wait, err), shard_fd = -1;
    if (fd < 0) return err->code;
    if (count > 1) {
        char name[64];
        snprintf(name, sizeof name, ".lock.%d-of-%d", rank, count);
        shard_fd = open_locked(dir, name, F_WRLCK, wait, err);
        if (shard_fd < 0) { close(fd); return err->code; }
        write_holder(shard_fd, rank, count);
    }
    write_holder(fd, rank, count);
    qa_lock *l = malloc(sizeof *l);
    l->fd = fd;
    l->shard_fd = shard_fd;
    l->dir = strdup(dir);
    *out = l;
    return QA_OK;
}

int qa_lock_acquire(const char *dir, int wait, qa_lock **out, qa_error *err) {
    return qa_lock_acquire_shard(dir, 0, 1, wait, out, err);
}

void qa_lock_release(qa_lock *lock) {
    if (!lock) return;
    qa_error sync_err; /* the runs are complete files already: a failed folder sync is worth a warning */
    if (qa_fsync_path(lock->dir, &sync_err)) fprintf(stderr, "warning: %s\n", sync_err.msg);
    if (lock->shard_fd >= 0) close(lock->shard_fd);
    close(lock->fd); /* closing the descriptor releases the fcntl lock */
    free(lock->dir);
    free(lock);
}
