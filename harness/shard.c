#include "harness/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAX_COUNT 1000000

qa_shard qa_shard_whole(void) {
    qa_shard s = {0, 1, "none"};
    return s;
}

/* A non-negative decimal integer with nothing around it (no sign, no spaces, no "0x"). */
static int parse_count(const char *text, long *value) {
    if (!text || !*text) return 0;
    for (const char *c = text; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    errno = 0;
    long v = strtol(text, NULL, 10);
    if (errno || v > SHARD_MAX_COUNT) return 0;
    *value = v;
    return 1;
}

int qa_shard_parse(const char *text, qa_shard *shard, qa_error *err) {
    const char *slash = text ? strchr(text, '/') : NULL;
    char rank_text[32];
    long r = -1, n = -1;
    if (!slash || (size_t)(slash - text) >= sizeof rank_text)
        return qa_fail(err, QA_ERR_INPUT, "--shard '%s': expected r/n, e.g. 0/4\n%s", text ? text : "",
                       QA_SHARD_USAGE);
    memcpy(rank_text, text, (size_t)(slash - text));
    rank_text[slash - text] = 0;
    if (!parse_count(rank_text, &r) || !parse_count(slash + 1, &n))
        return qa_fail(err, QA_ERR_INPUT, "--shard '%s': r and n must be decimal integers\n%s", text,
                       QA_SHARD_USAGE);
    if (n < 1) return qa_fail(err, QA_ERR_INPUT, "--shard '%s': n must be at least 1\n%s", text, QA_SHARD_USAGE);
    if (r >= n)
        return qa_fail(err, QA_ERR_INPUT, "--shard '%s': r must be below n (shards are 0..%ld)\n%s", text, n - 1,
                       QA_SHARD_USAGE);
    shard->rank = (int)r;
    shard->count = (int)n;
    snprintf(shard->source, sizeof shard->source, "--shard");
    return QA_OK;
}

/* The variable's integer value; 0 when it is not set, QA_ERR_INPUT when it is not a number. */
static int env_int(const char *name, long *value, int *is_set, qa_error *err) {
    const char *text = getenv(name);
    *is_set = text != NULL;
    if (!text) return QA_OK;
    if (!parse_count(text, value))
        return qa_fail(err, QA_ERR_INPUT, "environment: %s='%s' is not a non-negative integer\n%s", name, text,
                       QA_SHARD_USAGE);
    return QA_OK;
}

/* A rank/size pair of variables: both set (found = 1), neither (found = 0), or an error. */
static int env_pair(const char *rank_var, const char *size_var, qa_shard *s, int *found, qa_error *err) {
    long r = 0, n = 0;
    int has_r, has_n;
    int rc = env_int(rank_var, &r, &has_r, err);
    if (!rc) rc = env_int(size_var, &n, &has_n, err);
    if (rc) return rc;
    *found = has_r && has_n;
    if (has_r != has_n)
        return qa_fail(err, QA_ERR_INPUT, "environment: %s is set but %s is not\n%s", has_r ? rank_var : size_var,
                       has_r ? size_var : rank_var, QA_SHARD_USAGE);
    if (!*found) return QA_OK;
    if (n < 1 || r >= n)
        return qa_fail(err, QA_ERR_INPUT, "environment: %s=%ld is not a rank of %s=%ld\n%s", rank_var, r, size_var, n,
                       QA_SHARD_USAGE);
    s->rank = (int)r;
    s->count = (int)n;
    snprintf(s->source, sizeof s->source, "%s/%s", rank_var, size_var);
    return QA_OK;
}

/* Open MPI's and PMI's variables; when both are set they must name the same rank. */
static int env_launcher(qa_shard *s, int *found, qa_error *err) {
    qa_shard ompi, pmi;
    int has_ompi = 0, has_pmi = 0;
    int rc = env_pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", &ompi, &has_ompi, err);
    if (!rc) rc = env_pair("PMI_RANK", "PMI_SIZE", &pmi, &has_pmi, err);
    if (rc) return rc;
    if (has_ompi && has_pmi && (ompi.rank != pmi.rank || ompi.count != pmi.count))
        return qa_fail(err, QA_ERR_INPUT, "environment: Open MPI says rank %d of %d, PMI says rank %d of %d\n%s",
                       ompi.rank, ompi.count, pmi.rank, pmi.count, QA_SHARD_USAGE);
    *found = has_ompi || has_pmi;
    if (*found) *s = has_ompi ? ompi : pmi;
    return QA_OK;
}

/* A Slurm job array: task id, and the array's size from _COUNT or from _MIN/_MAX (and _STEP). */
static int env_slurm_array(qa_shard *s, int *found, qa_error *err) {
    long id = 0, count = 0, lo = 0, hi = 0, step = 1;
    int has_id, has_count, has_lo, has_hi, has_step;
    int rc = env_int("SLURM_ARRAY_TASK_ID", &id, &has_id, err);
    if (!rc) rc = env_int("SLURM_ARRAY_TASK_COUNT", &count, &has_count, err);
    if (!rc) rc = env_int("SLURM_ARRAY_TASK_MIN", &lo, &has_lo, err);
    if (!rc) rc = env_int("SLURM_ARRAY_TASK_MAX", &hi, &has_hi, err);
    if (!rc) rc = env_int("SLURM_ARRAY_TASK_STEP", &step, &has_step, err);
    if (rc) return rc;
    *found = has_id;
    if (!has_id) return QA_OK;
    if (!has_count && !(has_lo && has_hi))
        return qa_fail(err, QA_ERR_INPUT, "environment: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT "
                       "nor SLURM_ARRAY_TASK_MIN/_MAX\n%s", QA_SHARD_USAGE);
    if (step < 1 || (has_lo && has_hi && hi < lo))
        return qa_fail(err, QA_ERR_INPUT, "environment: SLURM_ARRAY_TASK_MIN/_MAX/_STEP = %ld/%ld/%ld is not an array\n%s",
                       lo, hi, step, QA_SHARD_USAGE);
    if (!has_count) count = (hi - lo) / step + 1;
    long offset = id - lo;
    if (offset < 0 || offset % step || offset / step >= count)
        return qa_fail(err, QA_ERR_INPUT, "environment: SLURM_ARRAY_TASK_ID=%ld is not task 0..%ld of an array from %ld "
                       "in steps of %ld (use --array=0-%ld, or --shard)\n%s", id, count - 1, lo, step, count - 1,
                       QA_SHARD_USAGE);
    s->rank = (int)(offset / step);
    s->count = (int)count;
    snprintf(s->source, sizeof s->source, "SLURM_ARRAY_TASK_ID/%s",
             has_count ? "SLURM_ARRAY_TASK_COUNT" : "SLURM_ARRAY_TASK_MIN..MAX");
    return QA_OK;
}

int qa_shard_from_env(unsigned sources, qa_shard *shard, qa_error *err) {
    qa_shard launcher = qa_shard_whole(), array = qa_shard_whole();
    int has_launcher = 0, has_array = 0, rc = QA_OK;
    if (sources & QA_SHARD_ENV_LAUNCHER) rc = env_launcher(&launcher, &has_launcher, err);
    if (!rc && (sources & QA_SHARD_ENV_SLURM_ARRAY)) rc = env_slurm_array(&array, &has_array, err);
    if (rc) return rc;
    if (has_launcher && has_array) { /* ranks of one array task divide that task's shard */
        if ((long)array.count * launcher.count > SHARD_MAX_COUNT)
            return qa_fail(err, QA_ERR_INPUT, "environment: %d array tasks x %d ranks is too many shards", array.count,
                           launcher.count);
        shard->rank = array.rank * launcher.count + launcher.rank;
        shard->count = array.count * launcher.count;
        snprintf(shard->source, sizeof shard->source, "%.72s x %.72s", array.source, launcher.source);
    } else {
        *shard = has_launcher ? launcher : array;
    }
    return QA_OK;
}

int qa_shard_resolve(const char *flag_text, unsigned env_sources, qa_shard *shard, qa_error *err) {
    qa_shard env;
    int rc = qa_shard_from_env(env_sources, &env, err);
    if (rc || !flag_text) {
        if (!rc) *shard = env;
        return rc;
    }
    rc = qa_shard_parse(flag_text, shard, err);
    if (rc) return rc;
    int env_set = strcmp(env.source, "none") != 0;
    if (env_set && (env.rank != shard->rank || env.count != shard->count))
        return qa_fail(err, QA_ERR_INPUT, "--shard %d/%d disagrees with the environment (%s: shard %d/%d); drop --shard "
                       "or make the job script pass the launcher's rank\n%s", shard->rank, shard->count, env.source,
                       env.rank, env.count, QA_SHARD_USAGE);
    return QA_OK;
}

int qa_shard_owns(const qa_shard *shard, int index) {
    return index >= 0 && index % shard->count == shard->rank;
}

int qa_shard_size(const qa_shard *shard, int n_runs) {
    if (n_runs <= shard->rank) return 0;
    return (n_runs - 1 - shard->rank) / shard->count + 1;
}

int qa_run_failures(const qa_run_outcome *outcomes, int n_runs, qa_error *err) {
    int failed = 0;
    size_t used = 0;
    char list[768] = "";
    for (int i = 0; i < n_runs; i++) {
        if (outcomes[i].status != QA_RUN_FAILED) continue;
        failed++;
        if (failed <= 3 && used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s run %d (rank %d): %s", failed > 1 ? ";" : "", i,
                                     outcomes[i].rank, outcomes[i].msg);
    }
    if (!failed) return QA_OK;
    return qa_fail(err, QA_ERR_RUN, "%d of %d runs failed:%s%s", failed, n_runs, list, failed > 3 ? "; ..." : "");
}

int qa_shard_run(const qa_shard *shard, int n_runs, qa_run_index_fn run_index, void *ctx,
                 qa_run_outcome *outcomes, qa_error *err) {
    memset(outcomes, 0, sizeof *outcomes * (size_t)n_runs);
    for (int i = shard->rank; i < n_runs; i += shard->count) {
        qa_error run_err = {0, ""};
        int rc = run_index(ctx, i, &run_err);
        outcomes[i].status = rc ? QA_RUN_FAILED : QA_RUN_OK;
        outcomes[i].rank = shard->rank;
        snprintf(outcomes[i].msg, sizeof outcomes[i].msg, "%s", rc ? run_err.msg : "");
    }
    return qa_run_failures(outcomes, n_runs, err);
}
