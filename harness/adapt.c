#include "harness/adapt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/lock.h"
#include "harness/model.h"
#include "harness/progress.h"
#include "harness/record.h"
#include "harness/registry.h"
#include "harness/results.h"
#include "harness/runs.h"
#include "harness/sweep_env.h"



/* Keys whose value does not change any run a folder has: lines setting them are left out when two
 * recipes are compared. [tune] extend and within add runs, or change only the rate a cell's
 * final runs get (a finished final run whose rate they change is caught by check_final_rates).
 * The job's name and the grid's lists (method, bits, rank, seed) decide which runs there are,
 * never what one of them does: a run's id names its value on each, and a run is made from its
 * own seed alone (its item, init, data order and noise), so a run with the same id under a
 * recipe equal in everything else is the same run. (A method option given as a list is an axis
 * too, but its scalar form changes runs without changing their ids, so it is compared.) */
static const struct { const char *section, *key; } keeps_runs[] = {
    {"tune", "extend"}, {"tune", "within"}, {"job", "name"},
    {"adapt", "method"}, {"adapt", "bits"}, {"adapt", "rank"}, {"adapt", "seed"}};

/* 1 when the substance line (no spaces) sets one of keeps_runs in `section`. */
static int line_keeps_runs(const char *section, const char *line, size_t len) {
    for (size_t i = 0; i < sizeof keeps_runs / sizeof keeps_runs[0]; i++) {
        size_t k = strlen(keeps_runs[i].key);
        if (!strcmp(section, keeps_runs[i].section) && len > k && !strncmp(line, keeps_runs[i].key, k) && line[k] == '=')
            return 1;
    }
    return 0;
}

/* A recipe's text without comments, blank lines, spaces and the keeps_runs keys: what decides
 * each run it makes. */
static char *recipe_substance(const char *text) {
    size_t n = strlen(text);
    char *out = qa_alloc(n + 2), *o = out, *line = out;
    char section[64] = "";
    int in_comment = 0;
    for (const char *q = text;; q++) {
        if (*q == '\n' || !*q) { /* the line [line, o) is complete */
            in_comment = 0;
            size_t len = (size_t)(o - line);
            if (len > 2 && line[0] == '[' && line[len - 1] == ']') snprintf(section, sizeof section, "%.*s", (int)(len - 2), line + 1);
            if (line_keeps_runs(section, line, len)) o = line;
            else if (len > 0) { *o++ = '\n'; line = o; }
            if (!*q) break;
            continue;
        }
        if (*q == '#') in_comment = 1;
        if (in_comment || *q == ' ' || *q == '\t' || *q == '\r') continue;
        *o++ = *q;
    }
    *o = 0;
    return out;
}

/* 1 when the recipe recorded in run file `path` makes the same runs as r (comments, the job's
 * name, the grid's lists and the keeps_runs keys aside); *same 0 when it does not. */
static int same_recipe(const qa_recipe *r, const char *path, int *same, qa_error *err) {
    char *old;
    int rc = qa_record_read_recipe(path, strlen(qa_recipe_text(r)) * 2 + 4095, &old, err);
    if (rc) return rc;
    char *a = recipe_substance(old), *b = recipe_substance(qa_recipe_text(r));
    *same = strcmp(a, b) == 0;
    qa_free(a); qa_free(b); qa_free(old);
    return QA_OK;
}

/* A finished run is kept only if a recipe that makes the same runs produced it: a folder of an
 * edited recipe would otherwise mix old and new runs in one table. */
static int check_same_recipe(const qa_recipe *r, const char *path, qa_error *err) {
    int same = 0, rc = same_recipe(r, path, &same, err);
    if (!rc && !same)
        rc = qa_fail(err, QA_ERR_INPUT,
                     "%s was made by a different recipe than %s (settings differ, not just comments or the grid's "
                     "lists): write to another --out folder, or remove the old runs to redo them",
                     path, qa_recipe_path(r));
    return rc;
}

/* 1 when a run file's validation split (`recorded`: whether it has the attribute; `split`: its
 * value) is not this run's, saying why. A file without validation_split predates the split: a
 * final run then (never on the split) is the same run; a tuning run is when the choice reads
 * neither its held-out loss nor its FID (tuned by subject fidelity or the style score), the only
 * numbers the split changes (checked: a subject tuning run made again on the split matches such
 * a file in every metric but the held-out loss); its held-out loss stays on the reported images,
 * as its missing attribute says. */
static int split_mismatch(const qa_run_spec *run, qa_tune_metric metric, int recorded, double split, char *why,
                          size_t len) {
    const double split_now = run->role == QA_RUN_TUNING && run->settings->validation_split;
    const int split_unread = metric == QA_TUNE_SUBJECT_FIDELITY || metric == QA_TUNE_STYLE_SCORE;
    if (!recorded) split = split_unread ? split_now : 0;
    if (split == split_now) return 0;
    if (!recorded)
        snprintf(why, len, "it predates the validation split, and this recipe's [tune] metric (%s) reads the held-out loss "
                 "or FID the split changes", qa_tune_metric_names[metric]);
    else
        snprintf(why, len, "its validation_split is %g, this run's %g (a tuning run takes its held-out loss and FID on the "
                 "validation split)", split, split_now);
    return 1;
}

/* Reads run file f's validation split into *recorded and *split (0 when it has none). */
static int read_split(qa_h5 *f, const char *grp, int *recorded, double *split, qa_error *err) {
    *split = 0;
    *recorded = qa_h5_has_attr(f, grp, "validation_split");
    return *recorded ? qa_h5_attr_get_f64(f, grp, "validation_split", split, err) : QA_OK;
}

/* Where a run's file goes: out_dir for a final run, out_dir/tune for a tuning run; allocated. */
static char *run_folder(const char *out_dir, const qa_run_spec *run) {
    size_t len = strlen(out_dir) + 8;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s%s", out_dir, run->role == QA_RUN_TUNING ? "/tune" : "");
    return p;
}

/* <folder>/<id>.h5, allocated */
static char *run_file(const char *out_dir, const qa_run_spec *run) {
    char *folder = run_folder(out_dir, run);
    size_t len = strlen(folder) + strlen(run->id) + 8;
    char *p = qa_alloc(len);
    snprintf(p, len, "%s/%s.h5", folder, run->id);
    qa_free(folder);
    return p;
}

/* A finished run's file that cannot be read back (not HDF5, cut short, a checksum that does not
 * match, a missing field) is renamed <file>.damaged (.damaged.2, ... when taken), kept for a
 * look, and its run is redone: said on stderr with the reason. */
static int set_aside_damaged(const char *path, const qa_error *why, qa_error *err) {
    size_t len = strlen(path) + 32;
    char *aside = qa_alloc(len);
    snprintf(aside, len, "%s.damaged", path);
    for (int k = 2; qa_file_exists(aside) && k < 1000; k++) snprintf(aside, len, "%s.damaged.%d", path, k);
    int rc = qa_h5_rename_durable(path, aside, err);
    if (!rc) fprintf(stderr, "warning: %s is damaged (%s): moved aside to %s; its run is done again\n", path, why->msg, aside);
    qa_free(aside);
    return rc;
}

/* A finished run was made by this build's version of its method (one that computes otherwise is
 * another run), and holds this run's validation split (split_mismatch): a tuning run made before
 * the split has its held-out loss and FID on the reported images, which a choice by either of
 * them must not read. */
static int check_recorded(const qa_sweep_plan *plan, const qa_run_spec *run, const char *path, qa_error *err) {
    char grp[512], why[400] = "";
    snprintf(grp, sizeof grp, "/runs/%s", run->id);
    qa_h5 *f = NULL;
    qa_error cerr;
    int recorded = 0;
    double split = 0, version = NAN;
    int rc = qa_h5_open(path, 0, &f, err);
    if (!rc) rc = qa_h5_attr_get_f64(f, grp, "method_version", &version, err);
    if (!rc) rc = read_split(f, grp, &recorded, &split, err);
    if (f) qa_h5_close(f, &cerr);
    if (!rc && version != run->method->version)
        rc = qa_fail(err, QA_ERR_INPUT, "%s was made by %s version %g, this build's is %d (it computes otherwise): "
                     "write to another --out folder, or remove the method's runs to redo them", path, run->method->name,
                     version, run->method->version);
    else if (!rc && split_mismatch(run, plan->tune.metric, recorded, split, why, sizeof why))
        rc = qa_fail(err, QA_ERR_INPUT, "%s cannot be resumed: %s; remove it, and the folder's other tuning runs "
                     "without a validation_split attribute, to redo them", path, why);
    return rc;
}

/* Runs of the shard from plan index `from` on still to do (*pending): those without a file, and
 * those whose file is damaged (set aside); a finished run made by another recipe, or by a newer
 * harness, or on another validation split, is an error. */
static int count_pending(const qa_recipe *r, const qa_sweep_plan *plan, const qa_shard *shard, const char *out_dir,
                         int from, int *pending, qa_error *err) {
    *pending = 0;
    for (int i = from; i < plan->n; i++) {
        if (!qa_shard_owns(shard, i)) continue;
        char *p = run_file(out_dir, &plan->runs[i]);
        int rc = QA_OK, damaged = 0;
        qa_error why = {0, ""};
        if (!qa_file_exists(p)) (*pending)++;
        else if (qa_runs_check_file(p, &damaged, &why) == QA_OK) {
            rc = check_same_recipe(r, p, err);
            if (!rc) rc = check_recorded(plan, &plan->runs[i], p, err);
        } else if (damaged) { rc = set_aside_damaged(p, &why, err); if (!rc) (*pending)++; }
        else { *err = why; rc = why.code; }
        qa_free(p);
        if (rc) return rc;
    }
    return QA_OK;
}

/* The owned runs whose file does not exist yet: what a rank other than 0 counts for its progress
 * line (rank 0's count_pending also checks and sets aside files, which one rank does alone). */
static int count_missing(const qa_sweep_plan *plan, const qa_shard *shard, const char *out_dir) {
    int missing = 0;
    for (int i = 0; i < plan->n; i++) {
        if (!qa_shard_owns(shard, i)) continue;
        char *p = run_file(out_dir, &plan->runs[i]);
        missing += !qa_file_exists(p);
        qa_free(p);
    }
    return missing;
}

/* One process's side of a sweep: its plan, what it loaded (on its first unfinished run), its
 * share of the current phase (tuning runs, then final runs) and its progress. Under a shared plan
 * rank 0 calls run_owned from its second thread while the main thread only talks to the other
 * ranks: one thread at a time touches this. */
typedef struct {
    const qa_recipe *r;
    const char *out_dir;
    qa_sweep_plan plan;
    const qa_shard *shard;
    const qa_sweep_opts *opts;  /* --reuse folders among them */
    qa_sweep_env env;
    int loaded, load_rc;
    qa_error load_err;
    qa_task *tasks;
    int n_tasks, done, input_failed;
    int *phase, n_phase;       /* plan indices of this shard's runs of the current phase */
    qa_progress prog;
} sweep_state;

static int check_validation_items(const qa_recipe *r, const qa_sweep_plan *plan, sweep_state *st, qa_error *err);

/* Load what every run needs, once, and check that every task can be made (and, for a tuned
 * recipe, that no validation item overlaps a reported one). */
static int sweep_ensure_loaded(sweep_state *st) {
    if (st->loaded) return st->load_rc;
    st->loaded = 1;
    st->tasks = qa_alloc(sizeof(qa_task) * (size_t)st->plan.n);
    st->load_rc = qa_sweep_env_load(&st->plan.settings, &st->env, &st->load_err);
    if (st->load_rc) return st->load_rc;
    st->load_rc = qa_sweep_env_check_tasks(st->r, &st->plan, &st->env, &st->load_err);
    if (!st->load_rc && st->plan.tune.n_rates) st->load_rc = check_validation_items(st->r, &st->plan, st, &st->load_err);
    return st->load_rc;
}

/* Why run file `path` is not this run ("" when it is): it must record this run's rate, role,
 * method version and validation split (split_mismatch), come from a recipe that makes the same
 * runs, and read back whole (every checksum). The cheap checks go first: a folder lends many
 * files that differ in a recorded attribute. */
static int reuse_mismatch(const qa_recipe *r, const qa_run_spec *run, qa_tune_metric metric, const char *path, char *why,
                          size_t len) {
    qa_error e = {0, ""};
    why[0] = 0;
    char grp[512];
    snprintf(grp, sizeof grp, "/runs/%s", run->id);
    qa_h5 *f = NULL;
    if (qa_h5_open(path, 0, &f, &e)) { snprintf(why, len, "%s", e.msg); return 1; }
    double lr = NAN, tuning = NAN, version = NAN, split = 0;
    int split_recorded = 0;
    int rc = qa_h5_attr_get_f64(f, grp, "learning_rate", &lr, &e);
    if (!rc) rc = qa_h5_attr_get_f64(f, grp, "tuning_run", &tuning, &e);
    if (!rc) rc = qa_h5_attr_get_f64(f, grp, "method_version", &version, &e);
    if (!rc) rc = read_split(f, grp, &split_recorded, &split, &e);
    qa_error cerr;
    qa_h5_close(f, &cerr);
    int damaged = 0, same = 0;
    if (rc) snprintf(why, len, "%s", e.msg);
    else if (lr != (double)run->train.lr) snprintf(why, len, "it trained at rate %g, this run's is %g", lr, (double)run->train.lr);
    else if (tuning != (run->role == QA_RUN_TUNING)) snprintf(why, len, "its tuning_run is %g", tuning);
    else if (version != run->method->version)
        snprintf(why, len, "%s version %g made it, this build's is %d", run->method->name, version, run->method->version);
    else if (!split_mismatch(run, metric, split_recorded, split, why, len)) {
        if (same_recipe(r, path, &same, &e)) snprintf(why, len, "%s", e.msg);
        else if (!same) snprintf(why, len, "a recipe with other settings made it");
        else if (qa_runs_check_file(path, &damaged, &e)) snprintf(why, len, "%s", e.msg);
    }
    return why[0] != 0;
}

/* byte copy of src to dst, synced */
static int copy_file(const char *src, const char *dst, qa_error *err) {
    char *bytes;
    size_t len;
    int rc = qa_read_file(src, &bytes, &len, err);
    if (rc) return rc;
    FILE *out = fopen(dst, "wb");
    int bad = !out || fwrite(bytes, 1, len, out) != len;
    if (out && fclose(out) != 0) bad = 1;
    free(bytes);
    if (bad) return qa_fail(err, QA_ERR_RUN, "cannot write %s: %s", dst, strerror(errno));
    return qa_fsync_path(dst, err);
}

/* --reuse: the first reuse folder holding this run's file, made by a recipe that makes the same
 * runs, is copied in instead of training the run again; *reused says whether it was. The copy
 * goes to <file>.partial, is checked there (what was checked in the source could have changed
 * since), and is renamed when it passes, like a run's own file. A file that is there but is not
 * this run, or a copy that fails, is said on stderr, and the run is made here. A recipe that
 * writes deployed artifacts ([eval] artifact) lends nothing: they are not copied. */
static void try_reuse(sweep_state *st, const qa_run_spec *run, int *reused) {
    *reused = 0;
    if (run->settings->eval.artifact) return;
    for (int i = 0; i < st->opts->n_reuse && !*reused; i++) {
        char *src = run_file(st->opts->reuse[i], run), why[600];
        if (!qa_file_exists(src)) { qa_free(src); continue; }
        char *dst = run_file(st->out_dir, run);
        size_t len = strlen(dst) + 16;
        char *tmp = qa_alloc(len);
        snprintf(tmp, len, "%s.partial", dst);
        qa_error e = {0, ""};
        if (reuse_mismatch(st->r, run, st->plan.tune.metric, src, why, sizeof why)) {
            fprintf(stderr, "not reusing %s: %s\n", src, why);
        } else if (copy_file(src, tmp, &e) || reuse_mismatch(st->r, run, st->plan.tune.metric, tmp, why, sizeof why) ||
                   qa_h5_rename_durable(tmp, dst, &e)) {
            fprintf(stderr, "not reusing %s: the copy %s: %s\n", src, tmp, e.msg[0] ? e.msg : why);
            remove(tmp);
        } else {
            *reused = 1;
        }
        qa_free(tmp); qa_free(dst); qa_free(src);
    }
}

/* qa_run_index_fn over the phase's runs. A run finished already (a resumed sweep) is skipped; a
 * run that fails does not stop the others, except that after a bad-input failure (the same for
 * every run) the rest are not tried. */
static int run_owned(void *ctx, int k, qa_error *err) {
    sweep_state *st = ctx;
    const qa_run_spec *run = &st->plan.runs[st->phase[k]];
    char *p = run_file(st->out_dir, run);
    int finished = qa_file_exists(p);
    qa_free(p);
    if (finished) return QA_OK;
    if (st->input_failed) return qa_fail(err, QA_ERR_INPUT, "%s not run: an earlier run failed on bad input", run->id);
    const char *tune = run->role == QA_RUN_TUNING ? "tune/" : "";
    int reused = 0;
    try_reuse(st, run, &reused);
    if (reused) {
        qa_progress_log(&st->prog, ++st->done, "%s%s reused", tune, run->id);
        return QA_OK;
    }
    if (sweep_ensure_loaded(st)) {
        st->input_failed = st->load_rc == QA_ERR_INPUT;
        return qa_fail(err, st->load_rc, "%s", st->load_err.msg);
    }
    const qa_task *t = qa_sweep_env_task(&st->env, &st->plan.settings, run->seed, st->tasks, &st->n_tasks, err);
    if (!t) { st->input_failed = 1; return err->code; }
    int diverged = 0;
    double t0 = qa_now();
    char *folder = run_folder(st->out_dir, run);
    /* a tuning run is scored on the validation split (sweep_env.h) */
    int rc = qa_run_one(run->role == QA_RUN_TUNING ? &st->env.env_val : &st->env.env, run, t, folder, &diverged, err);
    qa_free(folder);
    st->done++;
    if (rc) {
        fprintf(stderr, "run %s%s failed%s%s: %s\n", tune, run->id, st->prog.who[0] ? " on" : "", st->prog.who, err->msg);
        st->input_failed = rc == QA_ERR_INPUT;
        qa_error named = *err; /* the message that travels to rank 0 names the run */
        snprintf(err->msg, sizeof err->msg, "%s%s: %.*s", tune, run->id, (int)sizeof err->msg - 200, named.msg);
    } else {
        qa_progress_log(&st->prog, st->done, "%s%s %s in %.0fs", tune, run->id, diverged ? "diverged" : "done", qa_now() - t0);
    }
    return rc;
}

static void sweep_state_free(sweep_state *st) {
    if (st->loaded) {
        for (int j = 0; j < st->n_tasks; j++) qa_task_free(&st->tasks[j]);
        qa_free(st->tasks);
        if (st->env.have_model) qa_sweep_env_unload(&st->env);
    }
    qa_free(st->phase);
    qa_adapt_plan_free(&st->plan);
}

/* The failures of a phase as rank 0 reports them: how many, and the first three with their plan
 * index (and rank); bad input when a run failed on it. */
static int report_failures(const sweep_state *st, const qa_run_outcome *outcomes, int shared, qa_error *err) {
    int failed = 0;
    for (int k = 0; k < st->n_phase; k++) failed += outcomes[k].status == QA_RUN_FAILED;
    if (!failed) return QA_OK;
    char list[768] = "";
    size_t used = 0;
    for (int k = 0, named = 0; k < st->n_phase && named < 3 && used < sizeof list; k++) {
        if (outcomes[k].status != QA_RUN_FAILED) continue;
        named++;
        char where[32] = "";
        if (shared) snprintf(where, sizeof where, " on rank %d", outcomes[k].rank);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s run %d%s, %.300s", named > 1 ? ";" : "", st->phase[k],
                                 where, outcomes[k].msg);
    }
    int code = st->input_failed ? QA_ERR_INPUT : QA_ERR_RUN;
    return qa_fail(err, code, "%d of %d runs failed (see the messages above):%s%s", failed, st->n_phase, list,
                   failed > 3 ? "; ..." : "");
}

/* Run this process's share of the runs of one role: by itself (a shard, or the whole plan) or
 * handed out by rank 0 to the ranks (sched->share). */
static int run_phase(sweep_state *st, const qa_sweep_sched *sched, int shared, qa_run_role role, qa_error *err) {
    st->n_phase = 0;
    for (int i = 0; i < st->plan.n; i++)
        if (st->plan.runs[i].role == role && qa_shard_owns(st->shard, i)) st->phase[st->n_phase++] = i;
    qa_run_outcome *outcomes = qa_alloc(sizeof(qa_run_outcome) * (size_t)(st->n_phase > 0 ? st->n_phase : 1));
    int rc;
    if (shared) {
        rc = sched->share(sched->ctx, st->n_phase, run_owned, st, outcomes, err);
    } else {
        qa_shard whole = qa_shard_whole();
        rc = qa_shard_run(&whole, st->n_phase, run_owned, st, outcomes, err);
    }
    if (rc == QA_ERR_RUN && sched->rank == 0) rc = report_failures(st, outcomes, shared, err);
    qa_free(outcomes);
    return rc;
}

/* The first image two items share (-1: none). */
static int shared_image(const qa_task *a, const qa_task *b) {
    for (int i = 0; i < a->k; i++)
        for (int j = 0; j < b->k; j++)
            if (a->item_idx[i] == b->item_idx[j]) return a->item_idx[i];
    return -1;
}

/* A validation item (a tuning seed's) shares no training image with a reported item (an
 * evaluation seed's): the seeds differ, but two items of one class could still overlap. */
static int check_validation_items(const qa_recipe *r, const qa_sweep_plan *plan, sweep_state *st, qa_error *err) {
    for (int i = 0; i < plan->n; i++) {
        if (plan->runs[i].role != QA_RUN_TUNING) continue;
        const qa_task *v = qa_sweep_env_task(&st->env, &plan->settings, plan->runs[i].seed, st->tasks, &st->n_tasks, err);
        if (!v) return err->code;
        for (int j = 0; j < plan->n; j++) {
            if (plan->runs[j].role != QA_RUN_FINAL) continue;
            const qa_task *e = qa_sweep_env_task(&st->env, &plan->settings, plan->runs[j].seed, st->tasks, &st->n_tasks, err);
            if (!e) return err->code;
            int image = shared_image(v, e);
            if (image >= 0)
                return qa_recipe_key_fail(r, "tune", "seeds", err, "the validation item of tuning seed %ld shares training "
                                        "image %d with the item of evaluation seed %ld: choose another tuning seed",
                                        v->seed, image, e->seed);
        }
    }
    return QA_OK;
}

/* The results folder and, for a tuned recipe, its tune/ folder. */
static int make_folders(const qa_sweep_plan *plan, const char *out_dir, qa_error *err) {
    int rc = qa_mkdir_p(out_dir, err);
    if (rc || !plan->tune.n_rates) return rc;
    size_t len = strlen(out_dir) + 8;
    char *dir = qa_alloc(len);
    snprintf(dir, len, "%s/tune", out_dir);
    rc = qa_mkdir_p(dir, err);
    qa_free(dir);
    return rc;
}

/* A shard of a tuned recipe runs its tuning runs, but its final runs need every cell's rate,
 * chosen from every shard's tuning runs: until those are all there, it stops saying so. */
static int tuning_complete(const sweep_state *st, qa_error *err) {
    int missing = 0;
    for (int i = 0; i < st->plan.n; i++) {
        if (st->plan.runs[i].role != QA_RUN_TUNING) continue;
        char *p = run_file(st->out_dir, &st->plan.runs[i]);
        missing += !qa_file_exists(p);
        qa_free(p);
    }
    if (!missing) return QA_OK;
    return qa_fail(err, QA_ERR_RUN, "shard %d/%d: its tuning runs are done, but %d tuning runs of other shards are not: "
                   "the final runs take each cell's rate from all of them, so run this shard again once the other "
                   "shards have finished their tuning runs", st->shard->rank, st->shard->count, missing);
}

/* The tuning runs of the plan (those finished already are skipped), on every rank; then a
 * barrier, since the rates are chosen from every rank's (and every shard's) tuning runs. */
static int tuning_round(sweep_state *st, const qa_sweep_sched *sched, int shared, qa_error *err) {
    int rc = run_phase(st, sched, shared, QA_RUN_TUNING, err);
    if (shared) {
        int rank0 = sched->agree(sched->ctx, rc);
        if (rank0 && !rc) rc = qa_fail(err, rank0, "rank %d: a tuning run failed (rank 0 says which)", sched->rank);
    }
    if (!rc && sched->shard.count > 1) rc = tuning_complete(st, err);
    return rc;
}

/* A finished final run trained at its cell's rate as chosen now: a folder resumed with a wider
 * tuning stage ([tune] extend) may choose another rate than its finished runs had. */
static int check_final_rates(const sweep_state *st, qa_error *err) {
    int rc = QA_OK;
    for (int i = 0; !rc && i < st->plan.n; i++) {
        const qa_run_spec *run = &st->plan.runs[i];
        if (run->role != QA_RUN_FINAL || !qa_shard_owns(st->shard, i)) continue;
        char *p = run_file(st->out_dir, run);
        if (qa_file_exists(p)) {
            double lr = NAN;
            char grp[512];
            snprintf(grp, sizeof grp, "/runs/%s", run->id);
            qa_h5 *f = NULL;
            qa_error cerr;
            rc = qa_h5_open(p, 0, &f, err);
            if (!rc) rc = qa_h5_attr_get_f64(f, grp, "learning_rate", &lr, err);
            if (f) qa_h5_close(f, &cerr);
            if (!rc && lr != (double)run->train.lr)
                rc = qa_fail(err, QA_ERR_INPUT, "%s trained at learning rate %g, but its cell's tuned rate is now %g "
                             "(x%g of the reference; tune/rates.csv): remove the cell's final runs to redo them at it",
                             p, lr, (double)run->train.lr, run->lr_multiplier);
        }
        qa_free(p);
    }
    return rc;
}

/* Rank 0 (or the one process): lock the folder (shards of one sweep share it), count what is
 * left, and load what the runs need, so that a missing checkpoint is said once. */
static int sweep_open(sweep_state *st, const qa_sweep_sched *sched, int wait, qa_lock **lock, int *pending,
                      qa_error *err) {
    int rc = qa_lock_acquire_shard(st->out_dir, sched->shard.rank, sched->shard.count, wait, lock, err);
    if (!rc) rc = make_folders(&st->plan, st->out_dir, err);
    if (!rc) rc = count_pending(st->r, &st->plan, &sched->shard, st->out_dir, 0, pending, err);
    if (!rc && *pending > 0 && sweep_ensure_loaded(st)) { *err = st->load_err; rc = st->load_rc; }
    if (rc) return rc;
    int n_owned = qa_shard_size(&sched->shard, st->plan.n);
    fprintf(stderr, "%s: %d runs (%d tuning)", qa_recipe_path(st->r), st->plan.n, st->plan.n_tuning);
    if (sched->shard.count > 1)
        fprintf(stderr, ", %d in shard %d/%d (%s)", n_owned, sched->shard.rank, sched->shard.count, sched->shard.source);
    fprintf(stderr, ", %d finished already, %d to do%s -> %s\n", n_owned - *pending, *pending,
            sched->share && sched->size > 1 ? " over the ranks" : "", st->out_dir);
    return QA_OK;
}

int qa_adapt_sweep_sched(const qa_recipe *r, const char *out_dir, const qa_sweep_opts *opts, const qa_sweep_sched *sched,
                         qa_error *err) {
    qa_sweep_sched alone = {.shard = qa_shard_whole(), .rank = 0, .size = 1};
    qa_sweep_opts defaults = {0};
    if (!sched) sched = &alone;
    if (!opts) opts = &defaults;
    const int shared = sched->share && sched->size > 1;
    sweep_state st;
    memset(&st, 0, sizeof st);
    st.r = r;
    st.out_dir = out_dir;
    st.shard = &sched->shard;
    st.opts = opts;
    int n = qa_adapt_plan(r, &st.plan, err);
    if (n < 0) return n;
    st.phase = qa_alloc(sizeof(int) * (size_t)n);
    qa_lock *lock = NULL;
    int pending = 0, rc = sched->rank == 0 ? sweep_open(&st, sched, opts->wait, &lock, &pending, err) : QA_OK;
    if (shared) { /* every rank hears whether it may start */
        int rank0 = sched->agree(sched->ctx, rc);
        if (rank0 && sched->rank != 0)
            rc = qa_fail(err, rank0, "rank %d: rank 0 could not start the sweep (its message says why)", sched->rank);
    }
    /* nothing to do, unless the recipe tunes: the extension may add tuning runs past what is
     * finished, and the choice is made again from the files and checked against every finished
     * final run (a tolerance added on resume may change it) */
    if (rc || (!shared && pending == 0 && !st.plan.tune.n_rates)) { sweep_state_free(&st); qa_lock_release(lock); return rc; }
    if (sched->rank != 0) pending = count_missing(&st.plan, &sched->shard, out_dir);
    char who[64] = "";
    if (sched->shard.count > 1) snprintf(who, sizeof who, " shard %d/%d", sched->shard.rank, sched->shard.count);
    if (shared) snprintf(who + strlen(who), sizeof who - strlen(who), " rank %d/%d", sched->rank, sched->size);
    /* under a shared plan every rank's count is its own; the ETA assumes the ranks keep pace */
    qa_progress_begin(&st.prog, "sweep", pending > 0 ? pending : qa_shard_size(&sched->shard, n));
    qa_progress_share(&st.prog, who, shared ? sched->size : 1);
    if (st.plan.tune.n_rates) {
        rc = tuning_round(&st, sched, shared, err);
        for (int round = 0; !rc && round < st.plan.tune.extend; round++) {
            int added = 0, n_before = st.plan.n;
            rc = qa_tune_extend(&st.plan, out_dir, sched->rank == 0 ? stderr : NULL, &added, err); /* every rank reads the same files */
            if (!rc && added && sched->rank == 0) { /* the added runs finished already are checked like the grid's */
                int more = 0;
                rc = count_pending(r, &st.plan, &sched->shard, out_dir, n_before, &more, err);
            }
            if (shared) {
                int rank0 = sched->agree(sched->ctx, rc);
                if (rank0 && !rc) rc = qa_fail(err, rank0, "rank %d: rank 0 could not extend the grid (its message says why)",
                                               sched->rank);
            }
            if (rc || !added) break;
            qa_free(st.phase); /* run_phase fills it */
            st.phase = qa_alloc(sizeof(int) * (size_t)st.plan.n);
            for (int i = n_before; i < st.plan.n; i++) st.prog.total += qa_shard_owns(&sched->shard, i);
            rc = tuning_round(&st, sched, shared, err);
        }
        if (!rc) rc = qa_tune_apply(&st.plan, out_dir, sched->rank == 0, err);
        if (!rc && sched->rank == 0) rc = check_final_rates(&st, err);
        if (shared) { /* every rank goes on to the final runs, or none does (a rank left out would
                       * leave the others waiting for it) */
            int rank0 = sched->agree(sched->ctx, rc);
            if (rank0 && !rc) rc = qa_fail(err, rank0, "rank %d: rank 0 could not choose the rates (its message says why)",
                                           sched->rank);
        }
    }
    if (!rc) rc = run_phase(&st, sched, shared, QA_RUN_FINAL, err);
    qa_progress_end(&st.prog);
    sweep_state_free(&st);
    qa_lock_release(lock);
    return rc;
}

/* One sweep per folder (a second one truncated this one's files): the lock is held around the
 * whole sweep, and its release syncs the folder, where the finished runs were renamed. */
int qa_adapt_sweep_wait(const qa_recipe *r, const char *out_dir, int wait, qa_error *err) {
    qa_sweep_opts opts = {.wait = wait};
    return qa_adapt_sweep_sched(r, out_dir, &opts, NULL, err);
}

int qa_adapt_sweep(const qa_recipe *r, const char *out_dir, qa_error *err) { return qa_adapt_sweep_wait(r, out_dir, 0, err); }
