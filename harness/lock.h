/* One sweep per output folder. Two sweeps on one folder truncated each other's files; the
 * second now gets a message naming the lock file and its holder, or waits for it (--wait).
 * The lock is fcntl's on DIR/.lock, which also holds the holder's PID and host; the kernel
 * releases it when the holder exits, however it exits, so a stale file never blocks a sweep.
 *
 * Shards of one sweep share a folder (each writes only the runs it owns). A process running
 * shard r of n (n > 1) takes DIR/.lock shared and DIR/.lock.r-of-n exclusively: the other
 * shards of the sweep are let in, a second process of the same shard is refused, and a sweep
 * of the whole plan (which takes DIR/.lock exclusively) excludes every shard and is excluded
 * by any. Under mpirun only rank 0 takes the lock, for the job's shard (the whole plan unless
 * a Slurm array task divides it); its ranks never run the same run, by construction. Shards
 * of different counts (0/2 beside 0/3) are not told apart: they overlap, and are the
 * caller's error.
 * Also here: making a finished file and a rename in a folder durable (fsync). */
#ifndef QA_LOCK_H
#define QA_LOCK_H

#include "harness/util.h"

typedef struct qa_lock qa_lock;

/* Create dir if needed and lock it. Held by another process: QA_ERR_INPUT naming DIR/.lock and
 * the holder's PID and host; or, with wait (the CLI's --wait), wait until it is free. */
int qa_lock_acquire(const char *dir, int wait, qa_lock **out, qa_error *err);
/* The lock of shard `rank` of `count` (count 1: qa_lock_acquire, the whole plan). Refused
 * (QA_ERR_INPUT naming the lock file and its holder) while the same shard or a whole-plan sweep
 * holds the folder; with wait, waits instead. */
int qa_lock_acquire_shard(const char *dir, int rank, int count, int wait, qa_lock **out, qa_error *err);
/* Sync the folder (the renames that marked runs finished), then unlock. NULL does nothing. */
void qa_lock_release(qa_lock *lock);

/* fsync a file or a folder by path; QA_ERR_RUN with the path and strerror on failure. */
int qa_fsync_path(const char *path, qa_error *err);

#endif
