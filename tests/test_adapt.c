/* End to end on a tiny model and synthetic data the test makes itself: a sweep writes one
 * finished file per run, resumes after a run's file is removed (redoing only that run), skips
 * finished runs, cleans a stale .partial, and report/plot read the folder back. */
#include <criterion/criterion.h>
#include <hdf5.h> /* only to remove an attribute (as files made before it lack it) and to test for one */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/adapt.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/model.h"
#include "harness/plot.h"
#include "harness/report.h"
#include "harness/results.h"
#include "harness/runs.h"
#include "datasets/dataset.h"
#include "fake_runs.h"

static char dir[256];

static void make_checkpoints(void) {
    snprintf(dir, sizeof dir, "/tmp/qa-test-adapt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    qa_error err;
    qa_dit m;
    qa_dit_config c = {28, 7, 16, 1, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(&m, &c, 4, &err), 0);
    qa_dit_init_weights(&m, 1);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.01f * (float)((i * 2654435761u) % 1000) / 1000.0f;
    char p[512];
    snprintf(p, sizeof p, "%s/dit.h5", dir);
    qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(p, &m, NULL, &meta, &err), 0, "%s", err.msg);
    qa_dit_free(&m);
    qa_classifier clf;
    qa_clf_create(&clf, 8, &err);
    qa_clf_init_weights(&clf, 2);
    snprintf(p, sizeof p, "%s/evaluator.h5", dir);
    cr_assert_eq(qa_clf_save(p, &clf, 0.5, "test", 0, 0, &err), 0, "%s", err.msg);
    qa_clf_free(&clf);
}

static qa_recipe *tiny_recipe(const char *extra) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = lora\nbits = [fp, w8a8]\nrank = 2\nseed = [0, 1]\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 4\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\n%s",
             dir, dir, extra);
    qa_recipe *r;
    qa_error err;
    cr_assert_eq(qa_recipe_parse("tiny.recipe", text, &r, &err), 0, "%s", err.msg);
    return r;
}

static time_t mtime_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mtime : 0;
}

TestSuite(adapt, .init = make_checkpoints, .timeout = 240);

Test(adapt, plan_expands_the_grid) {
    qa_recipe *r = tiny_recipe("");
    qa_sweep_plan plan;
    qa_error err;
    int n = qa_adapt_plan(r, &plan, &err);
    const qa_run_spec *runs = plan.runs;
    cr_assert_eq(n, 4, "2 bits x 2 seeds");
    cr_expect_str_eq(runs[0].id, "lora-fp-r2-s0");
    cr_expect_str_eq(runs[1].id, "lora-w8a8-r2-s0");
    cr_expect_eq(runs[1].w_bits, 8);
    cr_expect_eq(runs[1].a_bits, 8);
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

Test(adapt, sweep_writes_runs_resumes_and_reports) {
    qa_recipe *r = tiny_recipe("");
    char out[512], p[600];
    snprintf(out, sizeof out, "%s/sweep", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    const char *ids[4] = {"lora-fp-r2-s0", "lora-w8a8-r2-s0", "lora-fp-r2-s1", "lora-w8a8-r2-s1"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s.h5", out, ids[i]);
        cr_assert(access(p, F_OK) == 0, "missing %s", p);
        snprintf(p, sizeof p, "%s/%s.h5.partial", out, ids[i]);
        cr_expect(access(p, F_OK) != 0, "a .partial file was left behind: %s", p);
    }
    qa_run_record *runs;
    int n;
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(runs[i].status, "done");
        cr_expect_eq(runs[i].n_train, 4, "one training-table row per step");
        int want_variants = runs[i].w_bits ? 2 : 1; /* FP deploy, and the INT deploy after PTQ */
        cr_expect_eq(runs[i].n_eval, want_variants, "%s variants", runs[i].id);
        for (int v = 0; v < runs[i].n_eval; v++) {
            cr_expect(runs[i].eval[v].heldout_loss > 0 && runs[i].eval[v].heldout_loss < 100, "loss %g",
                      runs[i].eval[v].heldout_loss);
            cr_expect_eq(runs[i].eval[v].n_images, 8);
        }
        cr_expect(runs[i].trainable_bytes > 0 && runs[i].peak_rss_bytes > 0);
    }
    /* the held-out loss is paired: the FP deploy of w8a8 and the fp run share images/noise,
     * so two runs of the same seed differ only by the model */
    qa_runs_free(runs, n);

    /* resume: remove one run, leave a stale .partial of another, run again */
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s1.h5", out);
    cr_assert_eq(unlink(p), 0);
    char keep[600];
    snprintf(keep, sizeof keep, "%s/lora-fp-r2-s0.h5", out);
    time_t before = mtime_of(keep);
    sleep(1);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s1.h5.partial", out);
    FILE *f = fopen(p, "w");
    fputs("half a file", f);
    fclose(f);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s1.h5", out);
    cr_expect(access(p, F_OK) == 0, "the removed run was redone");
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s1.h5.partial", out);
    cr_expect(access(p, F_OK) != 0, "the stale .partial was replaced");
    cr_expect_eq(mtime_of(keep), before, "finished runs are not redone");

    /* report: markdown to a stream plus the files */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "| lora | FP | fp | 2 | 2 |") != NULL, "report:\n%s", buf);
    cr_expect(strstr(buf, "INT (+PTQ)") != NULL, "report:\n%s", buf);
    free(buf);
    const char *files[] = {"report.md", "report.tex", "report.csv", "summary.h5", "report_paper.md"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        cr_expect(access(p, F_OK) == 0, "missing %s", p);
    }
    /* the paper layout: one row per method and deploy, bit settings as column groups */
    snprintf(p, sizeof p, "%s/report_paper.md", out);
    FILE *pf = fopen(p, "r");
    cr_assert_not_null(pf);
    char paper[8192] = "";
    size_t pn = fread(paper, 1, sizeof paper - 1, pf);
    paper[pn] = 0;
    fclose(pf);
    cr_expect(strstr(paper, "| w8a8 subject ↑ |") && strstr(paper, "| lora | INT (+PTQ) | 2 | - | - | - |"), "%s", paper);
    /* figures: the bit sweep has both deploys of the w8a8 runs and the FP run as its own point
     * at the 'fp' tic (8 + 2), 2 seeds each */
    if (system("gnuplot --version > /dev/null 2>&1") == 0) {
        cr_assert_eq(qa_plot_results(out, NULL, &err), 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s/plots/bits_heldout_loss.dat", out);
        FILE *bf = fopen(p, "r");
        cr_assert_not_null(bf);
        char bd[4096] = "";
        size_t bn = fread(bd, 1, sizeof bd - 1, bf);
        bd[bn] = 0;
        fclose(bf);
        cr_expect(strstr(bd, "\"lora FP (before PTQ)\"\n7.95 w8a8 ") && strstr(bd, "\"lora INT (+PTQ)\"\n8.05 w8a8 ") &&
                      strstr(bd, "\"lora fp\"\n10 fp ") && strstr(bd, " 2\n"),
                  "%s", bd);
        const char *figs[] = {"loss_curves_w8a8.png", "bits_subject_fidelity.svg", "compare_seed0.png", "lora-w8a8-r2-s1_int_samples.png"};
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/plots/%s", out, figs[i]);
            cr_expect(access(p, F_OK) == 0, "missing %s", p);
        }
    }
    qa_recipe_free(r);
}

Test(adapt, missing_checkpoint_is_bad_input) {
    const char *text = "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = /nonexistent/dit.h5\n";
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("x.recipe", text, &r, &err), 0);
    char out[512];
    snprintf(out, sizeof out, "%s/none", dir);
    cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "/nonexistent/dit.h5") && strstr(err.msg, "pretrain.recipe"), "message: %s", err.msg);
    qa_recipe_free(r);
}

Test(adapt, distillation_objective_trains_against_the_fp_teacher) {
    qa_recipe *r = tiny_recipe("");
    qa_recipe_free(r);
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = intlora-mul\nbits = w8a8\nrank = 2\nseed = 0\nimages = 3\nprior_images = 0\n"
             "[train]\nobjective = distill\nsteps = 5\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\n",
             dir, dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("distill.recipe", text, &r, &err), 0, "%s", err.msg);
    char out[512];
    snprintf(out, sizeof out, "%s/distill", dir);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    qa_run_record *runs;
    int n;
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(runs[0].status, "done");
    cr_expect_eq(runs[0].n_train, 5);
    /* 2 DDIM steps per trajectory: timesteps alternate; the loss is finite and non-negative */
    for (int s = 0; s < runs[0].n_train; s++) cr_expect(runs[0].train[s * 5 + 1] >= 0 && isfinite(runs[0].train[s * 5 + 1]));
    cr_expect_eq(runs[0].n_eval, 1, "IntLoRA deploys once: the integer merge, no PTQ");
    cr_expect_str_eq(runs[0].eval[0].variant, "int");
    qa_runs_free(runs, n);
    qa_recipe_free(r);
}

static void run_task(const char *task, const char *sub, const char *extra_eval) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\ntask = %s\nmethod = lora\nbits = w8a8\nrank = 2\nseed = 0\nimages = 3\n"
             "[train]\nsteps = 3\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 10\n%s",
             dir, dir, task, extra_eval);
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("task.recipe", text, &r, &err), 0, "%s", err.msg);
    char out[512];
    snprintf(out, sizeof out, "%s/%s", dir, sub);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    qa_recipe_free(r);
}

/* The protocol's metrics in a real run: the floor (the FP base's samples of the item's class,
 * once per task, the same in every variant), the gain over it, identification among the other
 * items of the class, and the prior distance to the base's class samples. */
Test(adapt, subject_run_records_floor_gain_identification_and_prior_distance) {
    run_task("subject", "subject_metrics", "");
    char out[512];
    snprintf(out, sizeof out, "%s/subject_metrics", dir);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_geq(runs[0].n_eval, 1);
    for (int v = 0; v < runs[0].n_eval; v++) {
        const qa_run_eval *e = &runs[0].eval[v];
        double x;
        cr_expect(qa_runs_eval_metric(e, MET_FLOOR, &x) && x >= -1 && x <= 1, "floor %g", x);
        cr_expect_eq(e->subject_floor, runs[0].eval[0].subject_floor, "one floor per task");
        cr_expect(qa_runs_eval_metric(e, MET_GAIN, &x) && fabs(x - (e->subject_fidelity - e->subject_floor)) < 1e-12);
        cr_expect(qa_runs_eval_metric(e, MET_IDENT, &x) && x >= 0 && x <= 1, "identification %g", x);
        cr_expect(qa_runs_eval_metric(e, MET_PRIOR_DIST, &x) && x >= 0 && x <= 2, "prior distance %g", x);
    }
    qa_runs_free(runs, n);
}

Test(adapt, style_task_binds_styled_images_of_several_classes) {
    run_task("style", "style", "");
    char out[512];
    snprintf(out, sizeof out, "%s/style", dir);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(runs[0].task, "style");
    cr_expect_eq(runs[0].item_class, -1, "no single class is asked for");
    for (int v = 0; v < runs[0].n_eval; v++) {
        cr_expect(runs[0].eval[v].prior_preservation >= 0 && runs[0].eval[v].prior_preservation <= 1);
        cr_expect(runs[0].eval[v].fid < 0, "FID is for the domain task only");
        double x;
        cr_expect(!qa_runs_eval_metric(&runs[0].eval[v], MET_FLOOR, &x), "no item: no floor");
        cr_expect(!qa_runs_eval_metric(&runs[0].eval[v], MET_IDENT, &x), "no item: no identification");
        cr_expect(qa_runs_eval_metric(&runs[0].eval[v], MET_PRIOR_DIST, &x) && x >= 0, "prior distance %g", x);
    }
    uint8_t *ref = NULL;
    int nref = 0;
    cr_assert_eq(qa_runs_samples(&runs[0], "references", &ref, &nref, &err), 0, "%s", err.msg);
    cr_expect_eq(nref, 3);
    float x[784];
    for (int i = 0; i < 784; i++) x[i] = ref[i] / 127.5f - 1.0f;
    cr_expect(qa_style_score(x, 28) > 0.8, "the references are styled: score %g", qa_style_score(x, 28));
    qa_free(ref);
    qa_runs_free(runs, n);
}

Test(adapt, domain_task_is_scored_with_fid) {
    run_task("domain", "domain", "fid_samples = 20\nfid_reference = 50\n");
    char out[512];
    snprintf(out, sizeof out, "%s/domain", dir);
    qa_run_record *runs;
    int n;
    qa_error err = {0, ""};
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(runs[0].task, "domain");
    for (int v = 0; v < runs[0].n_eval; v++) cr_expect(runs[0].eval[v].fid > 0, "FID %g", runs[0].eval[v].fid);
    qa_runs_free(runs, n);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "| style ↑ | FID ↓ |") != NULL, "style and FID columns for a domain folder:\n%s", buf);
    free(buf);
}

Test(adapt, a_diverged_run_is_recorded_and_the_sweep_goes_on) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = lora\nbits = fp\nrank = 2\nseed = [0, 1]\nimages = 3\nprior_images = 4\n"
             "[train]\nsteps = 4\nbatch = 4\nlr = 1e-3\ninject_nan_step = 2\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\n",
             dir, dir);
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("nan.recipe", text, &r, &err), 0, "%s", err.msg);
    char out[512];
    snprintf(out, sizeof out, "%s/nan", dir);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "a diverged run is a finished run: %s", err.msg);
    qa_run_record *runs;
    int n;
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2, "the sweep went on to the second seed");
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(runs[i].status, "diverged");
        cr_expect(strstr(runs[i].fail_reason, "step 1") != NULL, "reason: %s", runs[i].fail_reason);
        cr_expect_eq(runs[i].n_eval, 0, "a diverged run is evaluated as nothing");
        cr_expect_eq(runs[i].n_train, 1, "the steps before the divergence are logged");
    }
    qa_runs_free(runs, n);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "Not evaluated:") && strstr(buf, "lora-fp-r2-s0: diverged"), "%s", buf);
    free(buf);
    qa_recipe_free(r);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

Test(adapt, a_sweep_killed_mid_run_resumes_to_the_same_tables, .timeout = 240) {
    qa_recipe *r = tiny_recipe("");
    char killed[512], clean[512], p[700];
    snprintf(killed, sizeof killed, "%s/killed", dir);
    snprintf(clean, sizeof clean, "%s/clean", dir);
    qa_error err = {0, ""};
    /* a child runs the sweep; it is killed with SIGKILL once its first run file exists, i.e.
     * while the second run is in progress (its .partial open) or about to start */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        qa_error e2;
        int rc = qa_adapt_sweep(r, killed, &e2);
        _exit(rc ? 1 : 0);
    }
    snprintf(p, sizeof p, "%s/lora-fp-r2-s0.h5", killed);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 12000 && access(p, F_OK) != 0; i++) nanosleep(&tick, NULL);
    cr_assert(access(p, F_OK) == 0, "the first run never finished");
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) || WIFEXITED(status));
    /* resume, and an uninterrupted sweep to compare with */
    cr_assert_eq(qa_adapt_sweep(r, killed, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_adapt_sweep(r, clean, &err), 0, "%s", err.msg);
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(qa_report_write(killed, devnull, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_report_write(clean, devnull, &err), 0, "%s", err.msg);
    fclose(devnull);
    snprintf(p, sizeof p, "%s/report.md", killed);
    char *a = slurp(p);
    snprintf(p, sizeof p, "%s/report.md", clean);
    char *b = slurp(p);
    cr_expect_str_eq(a, b, "the tables of a killed-and-resumed sweep equal an uninterrupted one");
    snprintf(p, sizeof p, "%s/report.csv", killed);
    char *c = slurp(p);
    snprintf(p, sizeof p, "%s/report.csv", clean);
    char *d = slurp(p);
    cr_expect_str_eq(c, d);
    free(a); free(b); free(c); free(d);
    qa_recipe_free(r);
}

/* A folder holds the runs of one recipe: running an edited recipe (other settings) on it is bad
 * input naming the old run's file, before anything is trained; an edit of comments alone is not. */
Test(adapt, a_folder_of_another_recipe_is_refused) {
    char out[400];
    snprintf(out, sizeof out, "%s/samerecipe", dir);
    qa_error err = {0, ""};
    qa_recipe *r = tiny_recipe("");
    qa_recipe *one;
    char text[4096];
    snprintf(text, sizeof text, "%s", qa_recipe_text(r));
    /* one run only (fp, seed 0) to keep it short */
    char *b = strstr(text, "bits = [fp, w8a8]");
    cr_assert_not_null(b);
    memcpy(b, "bits = fp        ", strlen("bits = [fp, w8a8]"));
    char *sd = strstr(text, "seed = [0, 1]");
    memcpy(sd, "seed = 0     ", strlen("seed = [0, 1]"));
    cr_assert_eq(qa_recipe_parse("one.recipe", text, &one, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_adapt_sweep(one, out, &err), 0, "%s", err.msg);
    /* comments and spacing only: the finished run is reused */
    char commented[4200];
    snprintf(commented, sizeof commented, "# the same recipe, annotated\n%s", text);
    char *st = strstr(commented, "steps = 4");
    memcpy(st, "steps=4  ", strlen("steps = 4"));
    qa_recipe *same;
    cr_assert_eq(qa_recipe_parse("one.recipe", commented, &same, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_adapt_sweep(same, out, &err), 0, "a comment is not a different recipe: %s", err.msg);
    /* another number of steps: refused, naming the file */
    st = strstr(text, "steps = 4");
    memcpy(st, "steps = 5", strlen("steps = 4"));
    qa_recipe *other;
    cr_assert_eq(qa_recipe_parse("one.recipe", text, &other, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_adapt_sweep(other, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "lora-fp-r2-s0.h5") != NULL && strstr(err.msg, "different recipe") != NULL, "%s", err.msg);
    qa_recipe_free(r); qa_recipe_free(one); qa_recipe_free(same); qa_recipe_free(other);
}

/* ---- the grid: method options as axes, run ids ---- */

static qa_recipe *grid_recipe(const char *adapt_lines) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[train]\nsteps = 3\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\nprior_samples = 0\n"
             "[adapt]\nimages = 3\nprior_images = 4\nrank = 2\n%s",
             dir, dir, adapt_lines);
    qa_recipe *r;
    qa_error err;
    cr_assert_eq(qa_recipe_parse("grid.recipe", text, &r, &err), 0, "%s", err.msg);
    return r;
}

static void expect_ids(const char *adapt_lines, const char *const want[], int n_want) {
    qa_recipe *r = grid_recipe(adapt_lines);
    qa_sweep_plan plan;
    qa_error err;
    cr_assert_eq(qa_adapt_plan(r, &plan, &err), n_want, "%s", adapt_lines);
    for (int i = 0; i < n_want; i++) cr_expect_str_eq(plan.runs[i].id, want[i]);
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

/* The ids of the committed ablations stay what their result files are named. */
Test(adapt, option_axes_keep_the_existing_run_ids) {
    expect_ids("method = intlora-mul\nbits = w4a8\nseed = 0\nvmc_alpha = [0.5, 1]\n",
               (const char *const[]){"intlora-mul-w4a8-r2-a0.5-s0", "intlora-mul-w4a8-r2-a1-s0"}, 2);
    expect_ids("method = intlora-mul\nbits = w4a8\nseed = 3\naux_dist = [laplace, zero]\n",
               (const char *const[]){"intlora-mul-w4a8-r2-laplace-s3", "intlora-mul-w4a8-r2-zero-s3"}, 2);
    expect_ids("method = [intlora-mul, intlora-shift]\nbits = w4a8\nseed = 0\nvmc_stat = [absmax, std]\n",
               (const char *const[]){"intlora-mul-w4a8-r2-absmax-s0", "intlora-mul-w4a8-r2-std-s0",
                                     "intlora-shift-w4a8-r2-absmax-s0", "intlora-shift-w4a8-r2-std-s0"}, 4);
    /* one value, or a one-element list, is no axis */
    expect_ids("method = intlora-mul\nbits = w4a8\nseed = 0\nvmc_alpha = [2]\n", (const char *const[]){"intlora-mul-w4a8-r2-s0"}, 1);
}

/* The plan is seed-major: every method and bit setting of seed 0, then of seed 1, ... so a sweep
 * interleaves the methods, and the repeats of a timing (one per seed) are spread over the sweep's
 * wall time instead of one method's runs following another's (experiments/README.md, timings). */
Test(adapt, the_plan_interleaves_methods_seed_by_seed) {
    expect_ids("method = [lora, intlora-mul]\nbits = w8a8\nseed = [0, 1, 2]\n",
               (const char *const[]){"lora-w8a8-r2-s0", "intlora-mul-w8a8-r2-s0", "lora-w8a8-r2-s1", "intlora-mul-w8a8-r2-s1",
                                     "lora-w8a8-r2-s2", "intlora-mul-w8a8-r2-s2"}, 6);
}

/* IntLoRA-MUL's zero_path and constant_row axes: the value alone in the id (cells name it). */
Test(adapt, intlora_zero_path_and_constant_row_axes) {
    expect_ids("method = [intlora-mul, intlora-shift]\nbits = w4a8\nseed = 0\nzero_path = [none, additive]\n",
               (const char *const[]){"intlora-mul-w4a8-r2-none-s0", "intlora-mul-w4a8-r2-additive-s0", "intlora-shift-w4a8-r2-s0"}, 3);
    expect_ids("method = intlora-mul\nbits = w4a8\nseed = 0\naux_dist = zero\nconstant_row = [fallback, reference]\n",
               (const char *const[]){"intlora-mul-w4a8-r2-fallback-s0", "intlora-mul-w4a8-r2-reference-s0"}, 2);
}

/* R = 0 with the authors' constant-row behaviour: NaN weights from the first forward, so the run
 * is recorded as diverged at the first step, step 0 (not a crash, not evaluated); the fallback run trains. */
Test(adapt, intlora_reference_constant_row_run_is_recorded_as_diverged) {
    qa_recipe *r = grid_recipe("method = intlora-mul\nbits = w8a8\nseed = 0\naux_dist = zero\nconstant_row = [fallback, reference]\n");
    char out[512];
    snprintf(out, sizeof out, "%s/constant_row", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "a diverged run is a finished run: %s", err.msg);
    qa_run_record *runs;
    int n;
    cr_assert_eq(qa_runs_load(out, &runs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    for (int i = 0; i < n; i++) {
        int reference = strstr(runs[i].id, "-reference-") != NULL;
        cr_expect_str_eq(runs[i].status, reference ? "diverged" : "done", "%s", runs[i].id);
        if (!reference) continue;
        cr_expect(strstr(runs[i].fail_reason, "at step 0") != NULL, "the first step (0): %s", runs[i].fail_reason);
        cr_expect_eq(runs[i].n_eval, 0, "a diverged run is evaluated as nothing");
    }
    qa_runs_free(runs, n);
    qa_recipe_free(r);
}

/* An option varies only the runs of the methods that have it. */
Test(adapt, option_axes_apply_to_the_methods_that_declare_them) {
    expect_ids("method = [lora, qalora, intlora-mul]\nbits = w8a8\nseed = 0\nvmc_alpha = [1, 2]\ngroup_size = [8, 16]\n",
               (const char *const[]){"lora-w8a8-r2-s0", "qalora-w8a8-r2-g8-s0", "qalora-w8a8-r2-g16-s0",
                                     "intlora-mul-w8a8-r2-a1-s0", "intlora-mul-w8a8-r2-a2-s0"}, 5);
}

/* A long list value once overflowed a 96-byte id or cut its "-s<seed>" suffix, so that two seeds
 * shared one id and the second was skipped as finished. */
Test(adapt, a_long_option_value_keeps_every_id_whole_and_distinct) {
    char lines[1024], longv[200] = "1.";
    for (int i = 0; i < 150; i++) strcat(longv, "0");
    strcat(longv, "1");
    snprintf(lines, sizeof lines, "method = intlora-mul\nbits = w4a8\nseed = [0, 1]\nvmc_alpha = [1.5, %s]\n", longv);
    qa_recipe *r = grid_recipe(lines);
    qa_sweep_plan plan;
    qa_error err;
    cr_assert_eq(qa_adapt_plan(r, &plan, &err), 4, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        char tail[8];
        snprintf(tail, sizeof tail, "-s%d", i / 2);
        size_t n = strlen(plan.runs[i].id);
        cr_expect(n > 3 && !strcmp(plan.runs[i].id + n - 3, tail), "id %s lacks %s", plan.runs[i].id, tail);
        for (int j = 0; j < i; j++) cr_expect_str_neq(plan.runs[i].id, plan.runs[j].id);
    }
    cr_expect(strstr(plan.runs[1].id, longv) != NULL, "the whole value is in the id: %s", plan.runs[1].id);
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

/* ---- a method defined here, outside methods/: no harness edit to parse, sweep and report it ----
 * y = (x W^T) (1 + g) + b with a trainable per-output gain g (initial value: its one option);
 * the merge is W (1 + g) in float, so the harness deploys it through PTQ as it does LoRA. */

typedef struct {
    float gain_init;
} toy_options;

typedef struct {
    int in, out;
    float *W, *b, *g, *dg;   /* [out, in], [out], [out], [out] */
    const float *x;          /* the last forward's input [M, in] */
    float *xw;               /* x W^T [M, out] */
    int xw_rows;
} toy_state;

extern const qa_method toy_method;

static int toy_init(void *state, const qa_layer_init *li, qa_error *err) {
    (void)err;
    toy_state *s = state;
    toy_options o;
    qa_method_options_of(&toy_method, li->cfg, &o);
    s->in = li->in;
    s->out = li->out;
    s->W = qa_alloc(sizeof(float) * (size_t)li->in * li->out);
    memcpy(s->W, li->W, sizeof(float) * (size_t)li->in * li->out);
    s->b = qa_alloc(sizeof(float) * li->out);
    if (li->bias) memcpy(s->b, li->bias, sizeof(float) * li->out);
    s->g = qa_alloc(sizeof(float) * li->out);
    s->dg = qa_alloc(sizeof(float) * li->out);
    for (int o2 = 0; o2 < li->out; o2++) s->g[o2] = o.gain_init;
    return QA_OK;
}

static void toy_forward(void *state, const float *x, float *y, int M) {
    toy_state *s = state;
    if (M > s->xw_rows) { qa_free(s->xw); s->xw = qa_alloc(sizeof(float) * (size_t)M * s->out); s->xw_rows = M; }
    s->x = x;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < s->out; o++) {
            double acc = 0;
            for (int i = 0; i < s->in; i++) acc += (double)x[(size_t)m * s->in + i] * s->W[(size_t)o * s->in + i];
            s->xw[(size_t)m * s->out + o] = (float)acc;
            y[(size_t)m * s->out + o] = (float)acc * (1.0f + s->g[o]) + s->b[o];
        }
}

static void toy_backward(void *state, const float *dy, float *dx, int M) {
    toy_state *s = state;
    for (int m = 0; m < M; m++)
        for (int o = 0; o < s->out; o++) {
            float d = dy[(size_t)m * s->out + o];
            s->dg[o] += d * s->xw[(size_t)m * s->out + o];
            if (dx)
                for (int i = 0; i < s->in; i++) dx[(size_t)m * s->in + i] += d * (1.0f + s->g[o]) * s->W[(size_t)o * s->in + i];
        }
}

static int toy_params(void *state, qa_param *out, int max) {
    toy_state *s = state;
    if (max < 1) return 0;
    out[0] = (qa_param){"toy_gain", s->g, s->dg, (size_t)s->out, 1.0f};
    return 1;
}

static int toy_merge(void *state, qa_deployed *d, qa_error *err) {
    (void)err;
    toy_state *s = state;
    memset(d, 0, sizeof *d);
    d->in = s->in;
    d->out = s->out;
    d->w_fp = qa_alloc(sizeof(float) * (size_t)s->in * s->out);
    for (int o = 0; o < s->out; o++)
        for (int i = 0; i < s->in; i++) d->w_fp[(size_t)o * s->in + i] = s->W[(size_t)o * s->in + i] * (1.0f + s->g[o]);
    d->needs_ptq = 1;
    d->merge = QA_MERGE_FLOAT_ADD_PTQ;
    d->bits_per_weight = 32;
    return QA_OK;
}

static void toy_bytes(const void *state, qa_bytes *b) {
    const toy_state *s = state;
    size_t w = sizeof(float) * (size_t)s->in * s->out, g = sizeof(float) * (size_t)s->out;
    *b = (qa_bytes){.frozen = w, .trainable = g, .gradients = g, .optimizer = 2 * g, .deployed = w};
}

static void toy_destroy(void *state) {
    toy_state *s = state;
    qa_free(s->W); qa_free(s->b); qa_free(s->g); qa_free(s->dg); qa_free(s->xw);
}

static const qa_option toy_option_table[] = {
    {"toy_gain", QA_OPT_FLOAT, "0", 0, 1, NULL, "initial gain g of every output", 1, "g", offsetof(toy_options, gain_init)},
};

const qa_method toy_method = {
    .name = "toy",
    .summary = "a trainable gain per output over the frozen FP weight (tests)",
    .version = 1,
    .state_size = sizeof(toy_state),
    .init = toy_init,
    .forward = toy_forward,
    .backward = toy_backward,
    .params = toy_params,
    .merge = toy_merge,
    .bytes = toy_bytes,
    .destroy = toy_destroy,
    .options = toy_option_table,
    .n_options = 1,
    .options_size = sizeof(toy_options),
};

Test(adapt, a_method_defined_in_a_test_is_parsed_swept_and_reported) {
    qa_error err = {0, ""};
    cr_assert_eq(qa_method_register(&toy_method, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_method_register(&toy_method, &err), QA_ERR_INPUT, "a name is registered once");
    /* its option is validated like any method's */
    qa_recipe *bad = NULL;
    cr_expect_eq(qa_recipe_parse("bad.recipe", "[job]\nkind = adapt\n[adapt]\nmethod = toy\ntoy_gain = 3\n", &bad, &err),
                 QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "bad.recipe:5:") && strstr(err.msg, "toy_gain") && strstr(err.msg, "0..1"), "%s", err.msg);
    qa_recipe *r = grid_recipe("method = [lora, toy]\nbits = w8a8\nseed = 0\ntoy_gain = [0, 0.5]\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/toy", dir);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    const char *ids[] = {"lora-w8a8-r2-s0", "toy-w8a8-r2-g0-s0", "toy-w8a8-r2-g0.5-s0"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s.h5", out, ids[i]);
        cr_expect(access(p, F_OK) == 0, "missing %s", p);
    }
    /* the run file records the option's value */
    snprintf(p, sizeof p, "%s/toy-w8a8-r2-g0.5-s0.h5", out);
    qa_h5 *f;
    cr_assert_eq(qa_h5_open(p, 0, &f, &err), 0, "%s", err.msg);
    double gain = -1;
    cr_expect_eq(qa_h5_attr_get_f64(f, "/runs/toy-w8a8-r2-g0.5-s0", "toy_gain", &gain, &err), 0, "%s", err.msg);
    cr_expect_float_eq(gain, 0.5, 1e-9);
    qa_h5_close(f, &err);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "| toy |") && strstr(buf, "g0.5") && strstr(buf, "| lora |"), "report:\n%s", buf);
    free(buf);
    qa_recipe_free(r);
}

/* ---- the tuning stage ---------------------------------------------------------------------- */

/* A tiny recipe with a [tune] section (and no [train] lr: the tuning stage chooses it). */
static int parse_tuned_named(const char *name, const char *adapt_lines, const char *tune_lines, qa_recipe **r,
                             qa_error *err) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n%s%s%s[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[train]\nsteps = 3\nbatch = 4\n"
             "[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\nloss_draws = 1\nprior_samples = 0\n"
             "[adapt]\nimages = 3\nprior_images = 4\nrank = 2\n%s[tune]\n%s",
             name ? "name = " : "", name ? name : "", name ? "\n" : "", dir, dir, adapt_lines, tune_lines);
    return qa_recipe_parse("tune.recipe", text, r, err);
}

static int parse_tuned(const char *adapt_lines, const char *tune_lines, qa_recipe **r, qa_error *err) {
    return parse_tuned_named(NULL, adapt_lines, tune_lines, r, err);
}

static qa_recipe *tuned_recipe(const char *adapt_lines, const char *tune_lines) {
    qa_recipe *r;
    qa_error err;
    cr_assert_eq(parse_tuned(adapt_lines, tune_lines, &r, &err), 0, "%s", err.msg);
    return r;
}

Test(adapt, tuning_plans_each_cells_grid_on_the_tuning_seeds) {
    qa_recipe *r = tuned_recipe("method = [lora, qlora]\nbits = w8a8\nseed = [0, 1]\n",
                                "lr_grid = [10, 0.1, 1]\nseeds = [100, 101]\nsteps = 2\n");
    qa_sweep_plan plan;
    qa_error err;
    int n = qa_adapt_plan(r, &plan, &err);
    cr_assert_eq(n, 4 + 2 * 3 * 2, "%s", err.msg); /* 2 cells x 2 seeds final; 2 cells x 3 rates x 2 seeds tuning */
    cr_expect_eq(plan.n_tuning, 12);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(plan.runs[i].role, QA_RUN_FINAL);
        cr_expect_eq(plan.runs[i].train.lr, 0.0f, "a final run's rate waits for the tuning stage");
        cr_expect_eq(plan.runs[i].train.steps, 3);
    }
    /* rates ascending (outer), tuning seeds inner; the rate is a multiple of the method's reference */
    const qa_run_spec *t = &plan.runs[4];
    cr_expect_str_eq(t->id, "lora-w8a8-r2-lrx0.1-s100");
    cr_expect_str_eq(plan.runs[5].id, "lora-w8a8-r2-lrx0.1-s101");
    cr_expect_str_eq(plan.runs[9].id, "lora-w8a8-r2-lrx10-s101");
    cr_expect_str_eq(plan.runs[10].id, "qlora-w8a8-r2-lrx0.1-s100");
    cr_expect_str_eq(t->cell, "lora-w8a8-r2");
    cr_expect_eq(t->role, QA_RUN_TUNING);
    cr_expect_float_eq(t->train.lr, 0.1 * qa_method_find("lora")->reference_lr, 1e-9);
    cr_expect_float_eq(plan.runs[9].train.lr, 10 * qa_method_find("lora")->reference_lr, 1e-9);
    cr_expect_eq(t->train.steps, 2, "[tune] steps");
    cr_expect_eq(t->train.batch, 4);
    cr_expect_eq(plan.tune.metric, QA_TUNE_HELDOUT_LOSS, "the default validation metric");
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

Test(adapt, every_method_of_a_table_gets_the_same_budget) {
    qa_recipe *r = tuned_recipe("method = [lora, qlora, qalora, efficientdm, intlora-mul, intlora-shift]\n"
                                "bits = [w8a8, w4a8]\nseed = [0, 1]\n",
                                "lr_grid = [0.1, 1, 10]\nseeds = [100]\n");
    qa_sweep_plan plan;
    qa_error err;
    int n = qa_adapt_plan(r, &plan, &err);
    cr_assert_gt(n, 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        const qa_run_spec *x = &plan.runs[i];
        cr_expect(x->train.steps == 3 && x->train.batch == 4 && x->train.warmup == plan.runs[0].train.warmup &&
                      x->train.cosine == plan.runs[0].train.cosine && x->train.weight_decay == plan.runs[0].train.weight_decay &&
                      x->train.clip == plan.runs[0].train.clip && x->settings == &plan.settings,
                  "%s: the table's steps, batch, schedule and data", x->id);
        cr_expect(x->method->reference_lr > 0, "%s declares its reference rate", x->method->name);
    }
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

/* The recipe (adapt lines + tune lines) is bad input naming the file, the line and each of want. */
static void expect_tune_error(const char *adapt_lines, const char *tune_lines, const char *const want[]) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = parse_tuned(adapt_lines, tune_lines, &r, &err);
    if (rc == 0) {
        qa_sweep_plan plan;
        rc = qa_adapt_plan(r, &plan, &err);
        if (rc >= 0) qa_adapt_plan_free(&plan);
        qa_recipe_free(r);
    }
    cr_expect_eq(rc, QA_ERR_INPUT, "accepted: %s", tune_lines);
    for (int i = 0; want[i]; i++) cr_expect(strstr(err.msg, want[i]) != NULL, "'%s' not in: %s", want[i], err.msg);
}

Test(adapt, tuning_errors_name_the_file_line_and_key) {
    const char *one = "method = lora\nbits = w8a8\nseed = [0, 1]\n";
    /* the [tune] section starts on line 24: lr_grid is line 25, seeds 26, metric 27 */
    expect_tune_error(one, "lr_grid = []\nseeds = [100]\n", (const char *const[]){"tune.recipe:25:", "lr_grid", "empty", NULL});
    expect_tune_error(one, "lr_grid = [0, 1]\nseeds = [100]\n",
                      (const char *const[]){"tune.recipe:25:", "[tune] lr_grid", "positive", NULL});
    expect_tune_error(one, "lr_grid = [-1, 1]\nseeds = [100]\n", (const char *const[]){"tune.recipe:25:", "lr_grid", NULL});
    expect_tune_error(one, "lr_grid = [1, 1.0]\nseeds = [100]\n",
                      (const char *const[]){"tune.recipe:25:", "lr_grid", "repeated", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100, 1]\n",
                      (const char *const[]){"tune.recipe:26:", "[tune] seeds", "seed 1 is also an evaluation seed", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\n", (const char *const[]){"tune.recipe:25:", "needs its seeds", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100]\nmetric = psnr\n",
                      (const char *const[]){"tune.recipe:27:", "metric", "psnr", "heldout_loss", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100]\nmetric = fid\n",
                      (const char *const[]){"tune.recipe:27:", "[tune] metric", "subject task does not measure fid", NULL});
    expect_tune_error(one, "seeds = [100]\n", (const char *const[]){"tune.recipe:25:", "[tune] seeds", "lr_grid", NULL});
    /* a tuned recipe does not also fix the rate */
    expect_tune_error("method = lora\nbits = w8a8\nseed = 0\n[train]\nlr = 1e-3\n", "lr_grid = [0.1, 1]\nseeds = [100]\n",
                      (const char *const[]){"tune.recipe:", "[train] lr", "remove", NULL});
}

Test(adapt, the_best_mean_score_wins_and_a_tie_goes_to_the_smaller_rate) {
    const double loss[] = {0.30, 0.20, 0.25, 0.20};
    cr_expect_eq(qa_adapt_choose_rate(loss, 4, 1), 1, "lowest loss; rates 1 and 3 tie: the smaller");
    cr_expect_eq(qa_adapt_choose_rate(loss, 4, 0), 0, "highest score");
    const double fidelity[] = {0.5, NAN, 0.7, 0.7};
    cr_expect_eq(qa_adapt_choose_rate(fidelity, 4, 0), 2, "a diverged rate is never chosen; the tie to the smaller");
    const double none[] = {NAN, NAN};
    cr_expect_eq(qa_adapt_choose_rate(none, 2, 1), -1, "every rate diverged");
}

/* The numeric attribute name of run id in the file path. */
static double run_attr(const char *path, const char *id, const char *name) {
    qa_h5 *f;
    qa_error err;
    char grp[256];
    snprintf(grp, sizeof grp, "/runs/%s", id);
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), 0, "%s", err.msg);
    double v = NAN;
    cr_expect_eq(qa_h5_attr_get_f64(f, grp, name, &v, &err), 0, "%s: %s", path, err.msg);
    qa_h5_close(f, &err);
    return v;
}

/* [tune] within: the smallest rate whose mean score is within the tolerance of the best's; a
 * diverged rate is never chosen, and 0 is the best itself. */
Test(adapt, within_chooses_the_smallest_rate_near_the_best) {
    const double style[] = {0.5, 0.95, NAN, 1.0};
    cr_expect_eq(qa_adapt_choose_rate_within(style, 4, 0, 0), 3, "the best itself");
    cr_expect_eq(qa_adapt_choose_rate_within(style, 4, 0, 0.06), 1, "0.95 is within 0.06 of 1.0, 0.5 is not");
    cr_expect_eq(qa_adapt_choose_rate_within(style, 4, 0, 0.6), 0, "every scored rate is within 0.6");
    const double loss[] = {0.30, 0.21, 0.20};
    cr_expect_eq(qa_adapt_choose_rate_within(loss, 3, 1, 0.015), 1, "lower is better: 0.21 is within 0.015 of 0.20");
    cr_expect_eq(qa_adapt_choose_rate_within(loss, 3, 1, 0.005), 2);
    const double none[] = {NAN, NAN};
    cr_expect_eq(qa_adapt_choose_rate_within(none, 2, 0, 1), -1, "every rate diverged");
}

/* A folder tuned by the best score resumes with [tune] within added (not "a different recipe"):
 * with a tolerance wider than any difference the smallest rate is chosen, and a finished final
 * run at another rate is refused until removed. */
Test(adapt, within_added_on_resume_changes_only_the_choice) {
    const char *adapt = "method = lora\nbits = w8a8\nseed = 0\n";
    qa_recipe *best = tuned_recipe(adapt, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n");
    qa_recipe *near = tuned_recipe(adapt, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\nwithin = 1000\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/within", dir);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    qa_error err = {0, ""};
    qa_sweep_plan plan; /* a dry run says the rule */
    cr_assert_eq(qa_adapt_plan(near, &plan, &err), 3, "%s", err.msg);
    char *said = NULL;
    size_t said_len = 0;
    FILE *mem = open_memstream(&said, &said_len);
    qa_adapt_plan_print(&plan, "near.recipe", NULL, mem);
    fclose(mem);
    cr_expect(strstr(said, "chosen by heldout_loss: the smallest rate within 1000 of the best)") != NULL, "%s", said);
    free(said);
    qa_adapt_plan_free(&plan);
    cr_assert_eq(qa_adapt_sweep(best, out, &err), 0, "%s", err.msg);
    const double first = run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier");
    int rc = qa_adapt_sweep(near, out, &err);
    if (first == 0.5) cr_expect_eq(rc, 0, "%s", err.msg);
    else {
        cr_expect_eq(rc, QA_ERR_INPUT);
        cr_expect(strstr(err.msg, "lora-w8a8-r2-s0.h5") && strstr(err.msg, "tuned rate"), "%s", err.msg);
        remove(p);
        cr_assert_eq(qa_adapt_sweep(near, out, &err), 0, "%s", err.msg);
    }
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier"), 0.5, 1e-12, "the smaller rate");
    qa_recipe_free(near);
    qa_recipe_free(best);
}

Test(adapt, a_tuned_sweep_trains_at_each_cells_chosen_rate_and_resumes) {
    qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/tuned", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    /* the tuning runs in tune/, out of the report's folder, each with its rate and role */
    const char *tuning[] = {"lora-w8a8-r2-lrx0.5-s100", "lora-w8a8-r2-lrx50-s100"};
    const double mult[] = {0.5, 50};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/tune/%s.h5", out, tuning[i]);
        cr_assert(access(p, F_OK) == 0, "missing %s", p);
        cr_expect_float_eq(run_attr(p, tuning[i], "learning_rate"), mult[i] * 1e-3, 1e-9);
        cr_expect_eq(run_attr(p, tuning[i], "tuning_run"), 1);
        cr_expect_eq(run_attr(p, tuning[i], "validation_split"), 1, "scored on the validation images");
    }
    /* the choice: the rate of the lower mean held-out loss, as rates.csv says */
    qa_run_record *recs;
    int n_recs;
    snprintf(p, sizeof p, "%s/tune", out);
    cr_assert_eq(qa_runs_load(p, &recs, &n_recs, &err), 0, "%s", err.msg);
    cr_assert_eq(n_recs, 2);
    double loss[2];
    for (int i = 0; i < 2; i++)
        for (int v = 0; v < recs[i].n_eval; v++)
            if (!strcmp(recs[i].eval[v].variant, "int")) loss[strstr(recs[i].id, "lrx50") ? 1 : 0] = recs[i].eval[v].heldout_loss;
    qa_runs_free(recs, n_recs);
    const double want = loss[1] < loss[0] ? 50 : 0.5;
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    cr_assert(access(p, F_OK) == 0, "missing %s", p);
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier"), want, 1e-12);
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "learning_rate"), want * 1e-3, 1e-9);
    cr_expect_eq(run_attr(p, "lora-w8a8-r2-s0", "tuning_run"), 0);
    cr_expect_eq(run_attr(p, "lora-w8a8-r2-s0", "validation_split"), 0, "scored on the reported images");
    snprintf(p, sizeof p, "%s/tune/rates.csv", out);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "missing %s", p);
    char csv[2048] = "";
    size_t len = fread(csv, 1, sizeof csv - 1, f);
    csv[len] = 0;
    fclose(f);
    char row[128];
    snprintf(row, sizeof row, "lora-w8a8-r2,heldout_loss,%g,%g,1,", want, want * 1e-3);
    cr_expect(strstr(csv, "cell,metric,lr_multiplier,learning_rate,seeds,mean_score,chosen\n") && strstr(csv, row), "%s", csv);
    cr_expect(strstr(strstr(csv, row), ",1\n") != NULL, "the chosen row is marked: %s", csv);
    /* the report of the folder holds the final run only */
    char *buf = NULL;
    size_t blen = 0;
    FILE *mem = open_memstream(&buf, &blen);
    cr_assert_eq(qa_report_write(out, mem, &err), 0, "%s", err.msg);
    fclose(mem);
    cr_expect(strstr(buf, "lrx") == NULL, "no tuning run in the report:\n%s", buf);
    free(buf);
    /* resume: nothing is redone */
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    time_t before = mtime_of(p);
    sleep(1);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    cr_expect_eq(mtime_of(p), before);
    qa_recipe_free(r);
}

/* Mean held-out loss (INT deploy) of each tuning run file in <out>/tune, by its rate: rate[k],
 * loss[k] for k < *n (one tuning seed: the run's own loss; NAN: diverged). */
static void tuning_losses(const char *out, double *rate, double *loss, int *n) {
    char p[600];
    snprintf(p, sizeof p, "%s/tune", out);
    qa_run_record *recs;
    int n_recs;
    qa_error err;
    cr_assert_eq(qa_runs_load(p, &recs, &n_recs, &err), 0, "%s", err.msg);
    *n = 0;
    for (int i = 0; i < n_recs; i++) {
        const char *x = strstr(recs[i].id, "-lrx");
        cr_assert_not_null(x, "%s", recs[i].id);
        rate[*n] = strtod(x + 4, NULL);
        loss[*n] = NAN;
        for (int v = 0; v < recs[i].n_eval; v++)
            if (!strcmp(recs[i].status, "done") && !strcmp(recs[i].eval[v].variant, "int")) loss[*n] = recs[i].eval[v].heldout_loss;
        (*n)++;
    }
    qa_runs_free(recs, n_recs);
}

/* The rate of the lowest loss (ties: the smaller rate; NAN never wins) among rate[0..n). */
static double best_rate(const double *rate, const double *loss, int n) {
    int best = -1;
    for (int k = 0; k < n; k++)
        if (!isnan(loss[k]) && (best < 0 || loss[k] < loss[best] || (loss[k] == loss[best] && rate[k] < rate[best]))) best = k;
    return best < 0 ? NAN : rate[best];
}

/* [tune] extend: a grid of two rates always has its best at an end, so one round adds the rate a
 * grid step past it (0.5 / 100 or 50 x 100); the final run trains at the best of all three. A
 * folder swept without the key resumes with it (the grid's runs stay), and a finished final run
 * whose rate is not its cell's choice is refused, naming it. */
Test(adapt, the_extension_steps_past_the_end_that_is_best_and_resumes) {
    const char *adapt = "method = lora\nbits = w8a8\nseed = 0\n";
    qa_recipe *plain = tuned_recipe(adapt, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n");
    qa_recipe *extended = tuned_recipe(adapt, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\nextend = 1\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/extended", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(plain, out, &err), 0, "%s", err.msg);
    double rate[8], loss[8];
    int n;
    tuning_losses(out, rate, loss, &n);
    cr_assert_eq(n, 2);
    const double first = best_rate(rate, loss, 2);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier"), first, 1e-12);
    /* the same folder with extend = 1: no "different recipe"; one more rate past the best end */
    qa_sweep_plan plan;
    cr_assert_eq(qa_adapt_plan(extended, &plan, &err), 3);
    const double next = first == 50 ? 5000 : 0.005;
    int rc = qa_adapt_sweep(extended, out, &err);
    tuning_losses(out, rate, loss, &n);
    cr_assert_eq(n, 3, "the grid's two rates and one past its end");
    int found = 0;
    for (int k = 0; k < n; k++) found += fabs(rate[k] - next) < 1e-12 * next;
    cr_expect_eq(found, 1, "a rate of x%g (best of the grid: x%g)", next, first);
    const double chosen = best_rate(rate, loss, n);
    if (chosen == first) {
        cr_expect_eq(rc, 0, "%s", err.msg);
    } else { /* the finished final run trained at the grid's choice: refused, named */
        cr_expect_eq(rc, QA_ERR_INPUT);
        cr_expect(strstr(err.msg, "lora-w8a8-r2-s0.h5") && strstr(err.msg, "remove the cell's final runs"), "%s", err.msg);
        remove(p);
        cr_assert_eq(qa_adapt_sweep(extended, out, &err), 0, "%s", err.msg);
    }
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier"), chosen, 1e-12);
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "learning_rate"), (double)(float)(chosen * 1e-3), 1e-15);
    /* rates.csv lists the three rates of the cell, the chosen one marked */
    char csv_path[700], csv[4096] = "", row[128];
    snprintf(csv_path, sizeof csv_path, "%s/tune/rates.csv", out);
    FILE *f = fopen(csv_path, "r");
    cr_assert_not_null(f);
    csv[fread(csv, 1, sizeof csv - 1, f)] = 0;
    fclose(f);
    int rows = 0;
    for (const char *q = csv; (q = strstr(q, "\nlora-w8a8-r2,")); q++) rows++;
    cr_expect_eq(rows, 3, "%s", csv);
    snprintf(row, sizeof row, "lora-w8a8-r2,heldout_loss,%g,", chosen);
    cr_expect(strstr(csv, row) && strstr(strstr(csv, row), ",1\n") == strchr(strstr(csv, row), '\n') - 2, "%s", csv);
    /* a finished final run at another rate than its cell's choice is refused on resume */
    qa_h5 *h;
    cr_assert_eq(qa_h5_open(p, 1, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(h, "/runs/lora-w8a8-r2-s0", "learning_rate", 0.123, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_close(h, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_adapt_sweep(extended, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "lora-w8a8-r2-s0.h5") && strstr(err.msg, "trained at learning rate 0.123") &&
                  strstr(err.msg, "tuned rate"), "%s", err.msg);
    /* while a changed [tune] grid is still a different recipe */
    qa_recipe *wider = tuned_recipe(adapt, "lr_grid = [0.5, 5, 50]\nseeds = [100]\nsteps = 2\nextend = 1\n");
    cr_expect_eq(qa_adapt_sweep(wider, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "different recipe") != NULL, "%s", err.msg);
    qa_adapt_plan_free(&plan);
    qa_recipe_free(wider);
    qa_recipe_free(extended);
    qa_recipe_free(plain);
}

/* With [tune] within the extension also steps down past a choice at the grid's lowest rate
 * (a smaller rate may be within the tolerance too), while a best score at the top still steps
 * up. A tolerance wider than any difference chooses the lowest rate; on [0.5, 50, 5000] the best
 * held-out loss after 2 steps is x50's (x5000 trains far worse or diverges), so the best-score
 * rule alone would add nothing, and the choice adds x0.005 below the grid; the final run trains
 * there. */
Test(adapt, within_extends_down_past_a_choice_at_the_lowest_rate) {
    qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n",
                                "lr_grid = [0.5, 50, 5000]\nseeds = [100]\nsteps = 2\nwithin = 1000\nextend = 1\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/within-down", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    double rate[8], loss[8];
    int n;
    tuning_losses(out, rate, loss, &n);
    cr_assert_eq(n, 4, "the grid's three rates and one past its low end");
    double grid_loss[3] = {NAN, NAN, NAN}, added = 0;
    const double grid_rates[3] = {0.5, 50, 5000};
    for (int k = 0; k < n; k++) {
        int g = rate[k] == 0.5 ? 0 : rate[k] == 50 ? 1 : rate[k] == 5000 ? 2 : -1;
        if (g >= 0) grid_loss[g] = loss[k];
        else added = rate[k];
    }
    cr_assert_eq(best_rate(grid_rates, grid_loss, 3), 50, "the premise: x50 scores best (losses %g %g %g)", grid_loss[0],
                 grid_loss[1], grid_loss[2]);
    cr_expect_float_eq(added, 0.005, 1e-15, "added x%g", added);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    cr_expect_float_eq(run_attr(p, "lora-w8a8-r2-s0", "lr_multiplier"), 0.005, 1e-15);
    qa_recipe_free(r);
}

Test(adapt, extension_errors_name_the_file_line_and_key) {
    const char *one = "method = lora\nbits = w8a8\nseed = [0, 1]\n";
    expect_tune_error(one, "lr_grid = [1]\nseeds = [100]\nextend = 2\n",
                      (const char *const[]){"tune.recipe:27:", "[tune] extend", "at least 2 rates", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100]\nextend = 9\n",
                      (const char *const[]){"tune.recipe:27:", "extend", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100]\nextend = -1\n",
                      (const char *const[]){"tune.recipe:27:", "extend", NULL});
    expect_tune_error(one, "seeds = [100]\nextend = 1\n", (const char *const[]){"tune.recipe:", "[tune]", "lr_grid", NULL});
    expect_tune_error(one, "lr_grid = [0.1, 1]\nseeds = [100]\nwithin = -0.1\n",
                      (const char *const[]){"tune.recipe:27:", "within", NULL});
    expect_tune_error(one, "seeds = [100]\nwithin = 0.1\n", (const char *const[]){"tune.recipe:", "[tune]", "lr_grid", NULL});
    char many[512] = "lr_grid = [";
    for (int k = 0; k < 30; k++) snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", k ? ", " : "", k + 1);
    strcat(many, "]\nseeds = [100]\nextend = 3\n");
    expect_tune_error(one, many, (const char *const[]){"tune.recipe:27:", "30 grid rates + 3 extension rates", NULL});
}

/* ---- items stratified over the classes ------------------------------------------------------- */

Test(adapt, seed_s_picks_its_item_from_class_s_mod_10) {
    qa_error err;
    qa_dit m;
    qa_dit_config c = {28, 7, 16, 1, 2, 2, 10, 2};
    cr_assert_eq(qa_dit_create(&m, &c, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    qa_classifier clf;
    qa_clf_create(&clf, 8, &err);
    qa_clf_init_weights(&clf, 2);
    qa_images train;
    qa_synthetic_images(&train, 400, 28, 10, 1);
    qa_task_spec spec = {.kind = QA_TASK_SUBJECT, .images = 3, .prior_images = 0};
    int seen[10] = {0};
    const long seeds[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 100, 4294967295L};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        qa_task t;
        cr_assert_eq(qa_task_build(&t, &spec, seeds[i], &m, &clf, &train, 2, 1.0f, &err), 0, "%s", err.msg);
        cr_expect_eq(t.item_class, (int)(seeds[i] % 10), "seed %ld", seeds[i]);
        cr_expect_eq(t.slot, 10, "the first spare slot");
        for (int j = 0; j < t.k; j++) cr_expect_eq(train.labels[t.item_idx[j]], t.item_class, "the item's images are of its class");
        if (i < 10) seen[t.item_class]++;
        qa_task_free(&t);
    }
    for (int k = 0; k < 10; k++) cr_expect_eq(seen[k], 1, "seeds 0..9 cover class %d once", k);
    qa_images_free(&train);
    qa_clf_free(&clf);
    qa_dit_free(&m);
}

Test(adapt, a_checkpoint_without_a_spare_slot_is_bad_input_for_a_subject_task) {
    qa_error err = {0, ""};
    qa_dit m;
    qa_dit_config c = {28, 7, 16, 1, 2, 2, 10, 0};
    cr_assert_eq(qa_dit_create(&m, &c, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    char ckpt[512], text[2048], out[512];
    snprintf(ckpt, sizeof ckpt, "%s/dit-nospare.h5", dir);
    qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
    cr_assert_eq(qa_dit_save(ckpt, &m, NULL, &meta, &err), 0, "%s", err.msg);
    qa_dit_free(&m);
    snprintf(text, sizeof text, "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = lora\n[train]\nsteps = 1\nbatch = 2\n", ckpt, dir);
    qa_recipe *r;
    cr_assert_eq(qa_recipe_parse("nospare.recipe", text, &r, &err), 0, "%s", err.msg);
    snprintf(out, sizeof out, "%s/nospare", dir);
    cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "dit-nospare.h5") && strstr(err.msg, "spare class slot"), "%s", err.msg);
    qa_recipe_free(r);
}

/* ---- the committed recipes follow the protocol ------------------------------------------------- */

/* recipe: experiments/<name>.recipe; min_seeds: evaluation seeds per cell (their items cover
 * min(min_seeds, 10) classes). */
static void expect_protocol(const char *name, int min_seeds) {
    char path[1024];
    snprintf(path, sizeof path, "%s/experiments/%s.recipe", QA_TEST_SOURCE_ROOT, name);
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_load(path, &r, &err), 0, "%s", err.msg);
    qa_sweep_plan plan;
    int n = qa_adapt_plan(r, &plan, &err);
    cr_assert_gt(n, 0, "%s: %s", name, err.msg);
    const qa_tune_spec *t = &plan.tune;
    cr_expect(t->n_rates >= 5 && t->rates[0] <= 0.1 + 1e-9 && t->rates[t->n_rates - 1] >= 10 - 1e-9,
              "%s: a tuning grid of >= 5 rates from 0.1x to 10x the reference", name);
    for (int k = 1; k < t->n_rates; k++)
        cr_expect(fabs(log(t->rates[k] / t->rates[k - 1]) - log(t->rates[1] / t->rates[0])) < 0.01, "%s: log-spaced", name);
    cr_expect_geq(t->n_seeds, 2, "%s: tuning seeds", name);
    cr_expect_geq(t->extend, 1, "%s: the grid extends past an end that is still best", name);
    cr_expect_geq(plan.settings.eval.samples, 64, "%s: samples per deployed model", name);
    if (plan.settings.task.kind == QA_TASK_DOMAIN) cr_expect_geq(plan.settings.eval.fid_samples, 1000, "%s: FID samples", name);
    /* every cell has min_seeds evaluation seeds over min(min_seeds, 10) classes */
    for (int i = 0; i < plan.n; i++) {
        const qa_run_spec *x = &plan.runs[i];
        if (x->role != QA_RUN_FINAL) continue;
        int seeds = 0, classes[10] = {0}, n_classes = 0;
        for (int j = 0; j < plan.n; j++)
            if (plan.runs[j].role == QA_RUN_FINAL && !strcmp(plan.runs[j].cell, x->cell)) {
                seeds++;
                n_classes += classes[plan.runs[j].seed % 10]++ == 0;
            }
        cr_expect_geq(seeds, min_seeds, "%s: cell %s", name, x->cell);
        cr_expect_geq(n_classes, min_seeds < 10 ? min_seeds : 10, "%s: classes of cell %s", name, x->cell);
        cr_expect_eq(x->train.steps, plan.runs[0].train.steps, "%s: one budget", name);
    }
    qa_adapt_plan_free(&plan);
    qa_recipe_free(r);
}

Test(adapt, the_tables_and_ablations_follow_the_protocol) {
    const char *tables[] = {"table_subject", "table_style", "fig_bits", "table_domain"};
    const char *ablations[] = {"ablate_alpha", "ablate_rdist", "ablate_vmc", "ablate_rank_bits", "ablate_qalora_group",
                               "recovery"};
    for (int i = 0; i < 4; i++) expect_protocol(tables[i], 10);
    for (int i = 0; i < 6; i++) expect_protocol(ablations[i], 5);
}

Test(adapt, the_style_table_runs_the_style_task_with_the_subject_tables_methods) {
    qa_recipe *r[2];
    qa_error err = {0, ""};
    const char *names[2] = {"table_subject", "table_style"};
    const char *const *methods[2];
    int n[2];
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/experiments/%s.recipe", QA_TEST_SOURCE_ROOT, names[k]);
        cr_assert_eq(qa_recipe_load(path, &r[k], &err), 0, "%s", err.msg);
        n[k] = qa_recipe_values(r[k], "adapt", "method", &methods[k]);
    }
    cr_expect_str_eq(qa_recipe_str(r[1], "adapt", "task"), "style");
    cr_assert_eq(n[0], n[1]);
    for (int i = 0; i < n[0]; i++) cr_expect_str_eq(methods[1][i], methods[0][i]);
    qa_recipe_free(r[0]);
    qa_recipe_free(r[1]);
}

/* A recipe on the test's checkpoints and synthetic data: sections follow [model]. */
static qa_recipe *recipe_on_checkpoints(const char *name, const char *sections) {
    char text[4096];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n%s",
             dir, dir, sections);
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse(name, text, &r, &err), 0, "%s", err.msg);
    return r;
}

/* The sweep of r into <dir>/<folder>: its status; err says why. */
static int sweep_into(const qa_recipe *r, const char *folder, qa_error *err) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s", dir, folder);
    return qa_adapt_sweep(r, out, err);
}

/* A tuned domain recipe takes its tuning runs' FID against test images other than the reported
 * reference: a reference of more than half the (500 synthetic) test images leaves no room. */
Test(adapt, a_tuned_fid_needs_a_disjoint_validation_reference) {
    qa_recipe *r = recipe_on_checkpoints("fidval.recipe",
                                         "[train]\nsteps = 1\nbatch = 2\n[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 8\n"
                                         "fid_samples = 4\nfid_reference = 300\n"
                                         "[adapt]\ntask = domain\nmethod = lora\nbits = w8a8\nrank = 2\nseed = 0\n"
                                         "prior_images = 0\n[tune]\nlr_grid = [1, 2]\nseeds = [10]\nmetric = fid\n");
    qa_error err = {0, ""};
    cr_expect_eq(sweep_into(r, "fidval", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "fidval.recipe") && strstr(err.msg, "fid_reference = 300") && strstr(err.msg, "at most 250"),
              "%s", err.msg);
    qa_recipe_free(r);
}

Test(adapt, a_validation_item_that_shares_an_image_with_a_reported_item_is_bad_input) {
    /* seeds 0 and 10 both draw class 0; two items of 150 of its 200 synthetic images must overlap */
    qa_recipe *r = recipe_on_checkpoints("overlap.recipe",
                                         "[train]\nsteps = 1\nbatch = 2\n[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 8\n"
                                         "[adapt]\nmethod = lora\nbits = w8a8\nrank = 2\nseed = 0\nimages = 150\n"
                                         "prior_images = 0\n[tune]\nlr_grid = [1, 2]\nseeds = [10]\n");
    qa_error err = {0, ""};
    cr_expect_eq(sweep_into(r, "overlap", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "overlap.recipe:24: [tune] seeds") && strstr(err.msg, "tuning seed 10") &&
                  strstr(err.msg, "evaluation seed 0"), "%s", err.msg);
    char p[600];
    snprintf(p, sizeof p, "%s/overlap/tune/lora-w8a8-r2-lrx1-s10.h5", dir);
    cr_expect(access(p, F_OK) != 0, "no tuning run was made");
    qa_recipe_free(r);
}

Test(adapt, an_item_larger_than_its_class_is_bad_input) {
    /* 200 synthetic images per class: an item of 250 cannot be drawn */
    qa_recipe *r = recipe_on_checkpoints("big.recipe", "[train]\nsteps = 1\nbatch = 2\n"
                                         "[adapt]\nmethod = lora\nimages = 250\nprior_images = 0\n");
    qa_error err = {0, ""};
    cr_expect_eq(sweep_into(r, "big", &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "big.recipe") && strstr(err.msg, "hold 200 of that class") && strstr(err.msg, "needs 250"),
              "%s", err.msg);
    qa_recipe_free(r);
}

/* ---- a task the training images cannot make (issue 14, item 5) ---- */

/* A small train_limit read past the item's class members (subject, k > images of the class),
 * aborted in GSL (no image of the class: a draw below 0), or looped for ever waiting for a class
 * that was not there (style); a base without a spare slot bound the item to the null slot.
 * Each is now bad input saying which task needs how many images of which class. */
Test(adapt, a_task_without_enough_images_of_its_classes_is_bad_input) {
    const qa_dit_config cfg = {28, 7, 16, 1, 2, 2, 10, 2};
    qa_images im;
    qa_synthetic_images(&im, 2000, 28, 10, 1);
    const int full = im.n;
    qa_error err = {0, ""};
    qa_task_spec subject = {QA_TASK_SUBJECT, 3, 0, 1}, style = {QA_TASK_STYLE, 3, 0, 0}, domain = {QA_TASK_DOMAIN, 0, 0, 0};
    cr_expect_eq(qa_task_check(&subject, 0, &cfg, &im, &err), QA_OK, "%s", err.msg);
    cr_expect_eq(qa_task_check(&style, 0, &cfg, &im, &err), QA_OK, "%s", err.msg);
    /* 1 to 3 images: one of each of the first classes, never 3 of one */
    qa_dit m;
    qa_classifier clf;
    cr_assert_eq(qa_dit_create(&m, &cfg, 4, &err), 0, "%s", err.msg);
    qa_dit_init_weights(&m, 1);
    cr_assert_eq(qa_clf_create(&clf, 8, &err), 0, "%s", err.msg);
    qa_clf_init_weights(&clf, 2);
    for (int n = 1; n <= 3; n++) {
        im.n = n;
        qa_task t;
        err = (qa_error){0, ""};
        cr_expect_eq(qa_task_build(&t, &subject, 0, &m, &clf, &im, 2, 1.0f, &err), QA_ERR_INPUT, "%d images", n);
        cr_expect(strstr(err.msg, "subject task of seed 0 needs 3 images of its item's class") &&
                  strstr(err.msg, "hold"), "%s", err.msg);
    }
    /* style: every image of one class */
    im.n = full;
    for (int i = 0; i < im.n; i++) im.labels[i] = 4;
    err = (qa_error){0, ""};
    cr_expect_eq(qa_task_check(&style, 0, &cfg, &im, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "style task of seed 0 needs one image of each of 3 classes") && strstr(err.msg, "none of class"),
              "%s", err.msg);
    qa_task t;
    cr_expect_eq(qa_task_build(&t, &style, 0, &m, &clf, &im, 2, 1.0f, &err), QA_ERR_INPUT, "built, not looped");
    cr_expect_eq(qa_task_check(&domain, 0, &cfg, &im, &err), QA_OK, "%s", err.msg);
    /* no spare slot */
    qa_dit_config no_spare = cfg;
    no_spare.n_spare = 0;
    err = (qa_error){0, ""};
    cr_expect_eq(qa_task_check(&subject, 0, &no_spare, &im, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, "n_spare = 0") != NULL, "%s", err.msg);
    cr_expect_eq(qa_task_check(&domain, 0, &no_spare, &im, &err), QA_OK, "the domain task binds no slot");
    qa_clf_free(&clf);
    qa_dit_free(&m);
    qa_images_free(&im);
}

/* The sweep says so before any run trains: the recipe's train_limit, or the checkpoint. */
Test(adapt, a_small_train_limit_or_a_base_without_spare_slots_stops_the_sweep) {
    char text[4096], out[512], p[700], ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/dit.h5", dir);
    for (int k = 0; k < 3; k++) {
        if (k == 2) { /* the base again, without a spare slot */
            qa_dit m;
            qa_dit_config c = {28, 7, 16, 1, 2, 2, 10, 0};
            qa_error e = {0, ""};
            cr_assert_eq(qa_dit_create(&m, &c, 4, &e), 0, "%s", e.msg);
            qa_dit_init_weights(&m, 1);
            snprintf(ckpt, sizeof ckpt, "%s/dit-no-spare.h5", dir);
            qa_ckpt_meta meta = {"dit", "test", 0, 0, 0, 0, -1};
            cr_assert_eq(qa_dit_save(ckpt, &m, NULL, &meta, &e), 0, "%s", e.msg);
            qa_dit_free(&m);
        }
        snprintf(text, sizeof text,
                 "[job]\nkind = adapt\n[data]\nsynthetic = 1\ntrain_limit = %s\n"
                 "[model]\ncheckpoint = %s\nevaluator = %s/evaluator.h5\n"
                 "[adapt]\ntask = %s\nmethod = lora\nbits = fp\nrank = 2\nseed = 0\nimages = 3\nprior_images = 2\n"
                 "[train]\nsteps = 2\nbatch = 4\nlr = 1e-3\n"
                 "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 0\n",
                 k == 2 ? "0" : "3", ckpt, dir, k == 1 ? "style" : "subject");
        qa_recipe *r;
        qa_error err = {0, ""};
        cr_assert_eq(qa_recipe_parse("limit.recipe", text, &r, &err), 0, "%s", err.msg);
        snprintf(out, sizeof out, "%s/limit%d", dir, k);
        cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT, "case %d", k);
        if (k == 2)
            cr_expect(strstr(err.msg, ckpt) && strstr(err.msg, "n_spare = 0"), "%s", err.msg);
        else
            cr_expect(strstr(err.msg, "limit.recipe") && strstr(err.msg, k ? "style task" : "subject task") &&
                      strstr(err.msg, "train_limit = 3"), "%s", err.msg);
        snprintf(p, sizeof p, "%s/lora-fp-r2-s0.h5", out);
        cr_expect(access(p, F_OK) != 0, "no run was recorded");
        qa_recipe_free(r);
    }
}

/* ---- damaged run files: checksums (item 8) and resume (item 7) ---- */

/* One run (lora, fp, seed 0) into <dir>/<sub>; returns its file in path. */
static void one_run_sweep(const char *sub, char *path, size_t len, int expect_rc) {
    char text[4096], out[512];
    snprintf(text, sizeof text,
             "[job]\nkind = adapt\n[data]\nsynthetic = 1\n"
             "[model]\ncheckpoint = %s/dit.h5\nevaluator = %s/evaluator.h5\n"
             "[adapt]\nmethod = lora\nbits = fp\nrank = 2\nseed = 0\nimages = 3\nprior_images = 2\n"
             "[train]\nsteps = 2\nbatch = 4\nlr = 1e-3\n"
             "[eval]\nsamples = 2\nddim_steps = 2\nloss_images = 4\nloss_draws = 1\nprior_samples = 0\n",
             dir, dir);
    qa_recipe *r;
    qa_error err = {0, ""};
    cr_assert_eq(qa_recipe_parse("one.recipe", text, &r, &err), 0, "%s", err.msg);
    snprintf(out, sizeof out, "%s/%s", dir, sub);
    cr_assert_eq(qa_adapt_sweep(r, out, &err), expect_rc, "%s", err.msg);
    snprintf(path, len, "%s/lora-fp-r2-s0.h5", out);
    qa_recipe_free(r);
}

/* Flip one byte of the stored values of dataset ds (found by their bytes in the file). */
static void flip_dataset_byte(const char *path, const char *ds) {
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), 0, "%s", err.msg);
    void *values = NULL;
    int nd;
    int64_t dims[4];
    cr_assert_eq(qa_h5_read(f, ds, QA_H5_F64, &values, 0, &nd, dims, &err), 0, "%s", err.msg);
    qa_h5_close(f, &err);
    char *bytes;
    size_t len;
    cr_assert_eq(qa_read_file(path, &bytes, &len, &err), 0, "%s", err.msg);
    size_t n = (size_t)dims[0] * sizeof(double);
    char *at = NULL;
    for (size_t i = 0; !at && i + n <= len; i++)
        if (memcmp(bytes + i, values, n) == 0) at = bytes + i;
    cr_assert_not_null(at, "the values of %s are not in the file as stored", ds);
    at[n / 2] ^= 0x10;
    FILE *out = fopen(path, "wb");
    cr_assert_eq(fwrite(bytes, 1, len, out), len);
    fclose(out);
    free(bytes);
    qa_free(values);
}

Test(adapt, run_files_carry_checksums_and_a_flipped_byte_is_named) {
    char path[700], p[800];
    one_run_sweep("sum", path, sizeof path, 0);
    const char *datasets[] = {"train", "eval/fp/heldout_per_image", "samples/fp", "samples/references"};
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 0, &f, &err), 0, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "/runs/lora-fp-r2-s0/%s", datasets[i]);
        cr_expect_eq(qa_h5_checksummed(f, p), 1, "%s has no checksum", p);
    }
    qa_h5_close(f, &err);
    flip_dataset_byte(path, "/runs/lora-fp-r2-s0/eval/fp/heldout_per_image");
    qa_run_record rec;
    cr_expect_eq(qa_runs_load_file(path, &rec, &err), QA_ERR_INPUT, "a flipped byte was read as a number");
    cr_expect(strstr(err.msg, path) && strstr(err.msg, "heldout_per_image") && strstr(err.msg, "Fletcher-32"), "%s", err.msg);
    /* the report leaves it out, listed with the reason, instead of using the wrong numbers */
    char out[300];
    snprintf(out, sizeof out, "%s/sum", dir);
    run_def other = {"lora-fp-r2-s1", "lora", "fp", "done", "fp", 0, 0, 2, 0, 1, 0.9, 0.5, 0.5, 32};
    write_run(out, &other);
    char *md = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&md, &len);
    err = (qa_error){0, ""};
    qa_report_write(out, mem, &err);
    fclose(mem);
    cr_expect(md && strstr(md, "Files left out") && strstr(md, "lora-fp-r2-s0.h5") && strstr(md, "Fletcher-32"), "%s\n%s",
              md ? md : "", err.msg);
    free(md);
}

/* A damaged finished run blocked the resume with no hint; now it is set aside as .damaged and
 * redone, whether cut short or with a checksum that does not match. */
Test(adapt, a_damaged_finished_run_is_set_aside_and_redone) {
    char path[700], aside[800];
    one_run_sweep("damaged", path, sizeof path, 0);
    char *bytes;
    size_t len;
    qa_error err = {0, ""};
    cr_assert_eq(qa_read_file(path, &bytes, &len, &err), 0, "%s", err.msg);
    FILE *f = fopen(path, "wb");
    cr_assert_eq(fwrite(bytes, 1, len / 2, f), len / 2);
    fclose(f);
    free(bytes);
    one_run_sweep("damaged", path, sizeof path, 0);
    qa_run_record rec;
    cr_assert_eq(qa_runs_load_file(path, &rec, &err), 0, "the run was redone: %s", err.msg);
    qa_runs_record_free(&rec);
    snprintf(aside, sizeof aside, "%s.damaged", path);
    struct stat st;
    cr_expect(stat(aside, &st) == 0 && (size_t)st.st_size == len / 2, "the damaged file is kept as %s", aside);
    flip_dataset_byte(path, "/runs/lora-fp-r2-s0/eval/fp/heldout_per_image");
    one_run_sweep("damaged", path, sizeof path, 0);
    cr_expect_eq(qa_runs_load_file(path, &rec, &err), 0, "redone again: %s", err.msg);
    qa_runs_record_free(&rec);
    snprintf(aside, sizeof aside, "%s.damaged.2", path);
    cr_expect(access(aside, F_OK) == 0, "the second damaged file is kept as %s", aside);
}

/* Run files written before the checksums (tests/legacy: one of the quickstart's first runs)
 * read as before. */
Test(adapt, run_files_without_checksums_still_load) {
    char quick[1024], p[1200];
    snprintf(quick, sizeof quick, "%s/tests/legacy", QA_TEST_SOURCE_ROOT);
    snprintf(p, sizeof p, "%s/lora-w8a8-r4-s0.h5", quick);
    qa_h5 *f;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(p, 0, &f, &err), 0, "%s", err.msg);
    cr_expect_eq(qa_h5_checksummed(f, "/runs/lora-w8a8-r4-s0/train"), 0, "an old file, written without checksums");
    qa_h5_close(f, &err);
    qa_run_record *runs;
    int n;
    cr_assert_eq(qa_runs_load(quick, &runs, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 2);
    cr_expect(n == 2 && !strcmp(runs[0].id, "lora-w8a8-r4-s0") && runs[0].n_eval == 2 && runs[1].n_eval == 3,
              "the runs and their deploys");
    qa_runs_free(runs, n);
}

/* The job's name and the grid's lists decide which runs a folder holds, never what a run does
 * (its id names its method, bits, rank and seed): a folder resumes with them changed, keeps its
 * finished runs and makes the new ones. */
Test(adapt, a_folder_resumes_with_the_grids_lists_changed) {
    char out[400], p[600], text[2][2048];
    snprintf(out, sizeof out, "%s/gridlists", dir);
    const char *names[2] = {"one", "more"}, *grid[2] = {"method = lora\nbits = fp\nrank = 2\nseed = 0\n",
                                                     "method = [lora, qlora]\nbits = [fp]\nrank = [2]\nseed = [0]\n"};
    qa_recipe *r[2];
    qa_error err = {0, ""};
    for (int i = 0; i < 2; i++) {
        snprintf(text[i], sizeof text[i],
                 "[job]\nkind = adapt\nname = %s\n[data]\nsynthetic = 1\n[model]\ncheckpoint = %s/dit.h5\n"
                 "evaluator = %s/evaluator.h5\n[adapt]\n%simages = 3\nprior_images = 4\n"
                 "[train]\nsteps = 2\nbatch = 4\nlr = 1e-3\n[eval]\nsamples = 4\nddim_steps = 2\nloss_images = 8\n"
                 "loss_draws = 1\n", names[i], dir, dir, grid[i]);
        cr_assert_eq(qa_recipe_parse("grid.recipe", text[i], &r[i], &err), 0, "%s", err.msg);
    }
    cr_assert_eq(qa_adapt_sweep(r[0], out, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/lora-fp-r2-s0.h5", out);
    time_t before = mtime_of(p);
    sleep(1);
    cr_expect_eq(qa_adapt_sweep(r[1], out, &err), 0, "another name and method list is the same runs: %s", err.msg);
    cr_expect_eq(mtime_of(p), before, "the finished run is kept");
    snprintf(p, sizeof p, "%s/qlora-fp-r2-s0.h5", out);
    cr_expect(access(p, F_OK) == 0, "the new method's run is made");
    qa_recipe_free(r[0]);
    qa_recipe_free(r[1]);
}

/* The whole of a file, its length in *len (NULL when it cannot be read). */
static char *file_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* to: a byte copy of from */
static void copy_bytes(const char *from, const char *to) {
    size_t len = 0;
    char *bytes = file_bytes(from, &len);
    FILE *f = fopen(to, "wb");
    cr_assert(bytes && f, "%s -> %s", from, to);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(bytes);
}

static int same_bytes(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = file_bytes(a, &la), *y = file_bytes(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x); free(y);
    return same;
}

/* --reuse: a run another folder finished under a recipe that makes the same runs (here one of
 * another name and method list) is copied, tuning runs and final runs alike, and the folder
 * resumes with the copies; a run of the other method is made. A folder whose recipe differs in
 * anything else, or a file that does not record this run's validation split, lends nothing. */
Test(adapt, reuse_copies_the_same_runs_from_another_folder) {
    const char *tune = "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n";
    qa_recipe *a = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", tune);
    char src[512], out[512], p[700], q[700];
    snprintf(src, sizeof src, "%s/reuse_src", dir);
    snprintf(out, sizeof out, "%s/reuse_out", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(a, src, &err), 0, "%s", err.msg);
    qa_recipe *b;
    cr_assert_eq(parse_tuned_named("another", "method = [lora, qlora]\nbits = [w8a8]\nseed = [0]\n", tune, &b, &err), 0,
                 "%s", err.msg);
    qa_sweep_opts opts = {.n_reuse = 1, .reuse = {src}};
    cr_assert_eq(qa_adapt_sweep_sched(b, out, &opts, NULL, &err), 0, "%s", err.msg);
    const char *copied[] = {"tune/lora-w8a8-r2-lrx0.5-s100.h5", "tune/lora-w8a8-r2-lrx50-s100.h5", "lora-w8a8-r2-s0.h5"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", src, copied[i]);
        snprintf(q, sizeof q, "%s/%s", out, copied[i]);
        cr_expect(same_bytes(p, q), "%s is a copy of %s", q, p);
    }
    snprintf(q, sizeof q, "%s/qlora-w8a8-r2-s0.h5", out);
    cr_expect(access(q, F_OK) == 0, "qlora's run is made here");
    snprintf(q, sizeof q, "%s/lora-w8a8-r2-s0.h5.partial", out);
    cr_expect(access(q, F_OK) != 0, "no copy is left half done");
    /* the folder resumes with the copies (made by another recipe's text) */
    cr_expect_eq(qa_adapt_sweep(b, out, &err), 0, "%s", err.msg);

    /* another tuning length: nothing is the same run */
    qa_recipe *c = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 1\n");
    snprintf(out, sizeof out, "%s/reuse_other", dir);
    cr_assert_eq(qa_adapt_sweep_sched(c, out, &opts, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", src, copied[i]);
        snprintf(q, sizeof q, "%s/%s", out, copied[i]);
        cr_expect(access(q, F_OK) == 0 && !same_bytes(p, q), "%s is trained here", q);
    }

    /* a folder lending copies of the source's files, two of them with an attribute changed: a
     * tuning run that does not record this run's validation split, and a final run at another
     * rate, are not these runs and are made here; the unchanged copy is lent */
    char lender[512];
    snprintf(lender, sizeof lender, "%s/reuse_lender", dir);
    snprintf(p, sizeof p, "%s/tune", lender);
    cr_assert_eq(qa_mkdir_p(p, &err), 0, "%s", err.msg);
    const char *changed_attr[] = {"validation_split", NULL, "learning_rate"};
    const char *run_id[] = {"lora-w8a8-r2-lrx0.5-s100", "lora-w8a8-r2-lrx50-s100", "lora-w8a8-r2-s0"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", src, copied[i]);
        snprintf(q, sizeof q, "%s/%s", lender, copied[i]);
        copy_bytes(p, q);
        if (!changed_attr[i]) continue;
        char grp[128];
        snprintf(grp, sizeof grp, "/runs/%s", run_id[i]);
        qa_h5 *h;
        cr_assert_eq(qa_h5_open(q, 1, &h, &err), 0, "%s", err.msg);
        cr_assert_eq(qa_h5_attr_set_f64(h, grp, changed_attr[i], 0.25 * run_attr(p, run_id[i], changed_attr[i]), &err), 0,
                     "%s", err.msg);
        qa_h5_close(h, &err);
    }
    qa_sweep_opts from_lender = {.n_reuse = 1, .reuse = {lender}};
    snprintf(out, sizeof out, "%s/reuse_some", dir);
    cr_assert_eq(qa_adapt_sweep_sched(a, out, &from_lender, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", lender, copied[i]);
        snprintf(q, sizeof q, "%s/%s", out, copied[i]);
        cr_expect_eq(same_bytes(p, q), changed_attr[i] == NULL, "%s: lent only when unchanged", copied[i]);
    }
    snprintf(q, sizeof q, "%s/%s", out, copied[0]);
    cr_expect_eq(run_attr(q, run_id[0], "validation_split"), 1, "made here, on the validation split");
    snprintf(p, sizeof p, "%s/%s", src, copied[2]);
    snprintf(q, sizeof q, "%s/%s", out, copied[2]);
    cr_expect_eq(run_attr(q, run_id[2], "learning_rate"), run_attr(p, run_id[2], "learning_rate"), "made at the chosen rate");
    qa_recipe_free(a);
    qa_recipe_free(b);
    qa_recipe_free(c);
}

/* A copy of run file `from` in folder `to_dir` (its tune/ made), without its validation_split
 * attribute: a file made before the split. */
static void copy_without_split(const char *from, const char *to_dir, const char *name, const char *id) {
    char p[700];
    qa_error err = {0, ""};
    snprintf(p, sizeof p, "%s/tune", to_dir);
    cr_assert_eq(qa_mkdir_p(p, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s", to_dir, name);
    copy_bytes(from, p);
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    char grp[200];
    snprintf(grp, sizeof grp, "/runs/%s", id);
    cr_assert_geq(H5Adelete_by_name(h, grp, "validation_split", H5P_DEFAULT), 0);
    H5Fclose(h);
}

/* A tuning run made before the validation split (no validation_split) is lent where the choice
 * reads neither its held-out loss nor its FID (tuned by subject fidelity), and is not where it
 * does (tuned by the held-out loss). */
Test(adapt, a_tuning_run_from_before_the_split_is_lent_where_the_split_does_not_matter) {
    const char *name = "tune/lora-w8a8-r2-lrx0.5-s100.h5", *id = "lora-w8a8-r2-lrx0.5-s100";
    const char *metric[2] = {"metric = subject_fidelity\n", "metric = heldout_loss\n"};
    for (int m = 0; m < 2; m++) {
        char tune[200], src[512], lender[512], out[512], p[700], q[700];
        snprintf(tune, sizeof tune, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n%s", metric[m]);
        qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", tune);
        snprintf(src, sizeof src, "%s/presplit_src%d", dir, m);
        snprintf(lender, sizeof lender, "%s/presplit_lender%d", dir, m);
        snprintf(out, sizeof out, "%s/presplit_out%d", dir, m);
        qa_error err = {0, ""};
        cr_assert_eq(qa_adapt_sweep(r, src, &err), 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s/%s", src, name);
        copy_without_split(p, lender, name, id);
        qa_sweep_opts opts = {.n_reuse = 1, .reuse = {lender}};
        cr_assert_eq(qa_adapt_sweep_sched(r, out, &opts, NULL, &err), 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s/%s", lender, name);
        snprintf(q, sizeof q, "%s/%s", out, name);
        cr_expect_eq(same_bytes(p, q), m == 0, "%s: lent only when the choice does not read the split", metric[m]);
        qa_recipe_free(r);
    }
}

/* Run file `path`'s /runs/<id> attribute `name` set to `value` (a file as another build or
 * another split would have written it). */
static void set_run_attr(const char *path, const char *id, const char *name, double value) {
    char grp[200];
    snprintf(grp, sizeof grp, "/runs/%s", id);
    qa_h5 *h;
    qa_error err = {0, ""};
    cr_assert_eq(qa_h5_open(path, 1, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(qa_h5_attr_set_f64(h, grp, name, value, &err), 0, "%s", err.msg);
    qa_h5_close(h, &err);
}

static int has_split(const char *path, const char *id) {
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(h, 0);
    char grp[200];
    snprintf(grp, sizeof grp, "/runs/%s", id);
    int has = H5Aexists_by_name(h, grp, "validation_split", H5P_DEFAULT) > 0;
    H5Fclose(h);
    return has;
}

/* Resuming a folder whose tuning run predates the validation split (no validation_split): kept
 * as it is where the choice reads neither its held-out loss nor its FID (tuned by subject
 * fidelity), an input error naming the file where it does (tuned by the held-out loss). */
Test(adapt, a_resumed_tuning_run_from_before_the_split_is_refused_where_the_split_matters) {
    const char *name = "tune/lora-w8a8-r2-lrx0.5-s100.h5", *id = "lora-w8a8-r2-lrx0.5-s100";
    const char *metric[2] = {"metric = subject_fidelity\n", "metric = heldout_loss\n"};
    for (int m = 0; m < 2; m++) {
        char tune[200], src[512], out[512], p[700], q[700];
        snprintf(tune, sizeof tune, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n%s", metric[m]);
        qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", tune);
        snprintf(src, sizeof src, "%s/resume_presplit_src%d", dir, m);
        snprintf(out, sizeof out, "%s/resume_presplit_out%d", dir, m);
        qa_error err = {0, ""};
        cr_assert_eq(qa_adapt_sweep(r, src, &err), 0, "%s", err.msg);
        snprintf(p, sizeof p, "%s/%s", src, name);
        copy_without_split(p, out, name, id);
        snprintf(q, sizeof q, "%s/%s", out, name);
        int rc = qa_adapt_sweep(r, out, &err);
        if (m == 0) {
            cr_expect_eq(rc, 0, "%s", err.msg);
        } else {
            cr_expect_eq(rc, QA_ERR_INPUT);
            cr_expect(strstr(err.msg, q) && strstr(err.msg, "predates the validation split"), "%s", err.msg);
        }
        cr_expect(access(q, F_OK) == 0 && !has_split(q, id), "%s: the file is left as it was", metric[m]);
        qa_recipe_free(r);
    }
}

/* A finished tuning run that records another validation split than its run's (0 where a tuning
 * run takes 1) is refused whatever the metric: it is not the run. */
Test(adapt, a_resumed_tuning_run_on_another_split_is_refused) {
    const char *name = "tune/lora-w8a8-r2-lrx0.5-s100.h5", *id = "lora-w8a8-r2-lrx0.5-s100";
    qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n",
                                "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\nmetric = subject_fidelity\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/resume_othersplit", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/%s", out, name);
    set_run_attr(p, id, "validation_split", 0);
    cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "validation_split is 0"), "%s", err.msg);
    qa_recipe_free(r);
}

/* A tuning run the extension adds is checked like the grid's when its file is there already: one
 * made before the split is refused in a folder tuned by the held-out loss. */
Test(adapt, a_resumed_extension_run_from_before_the_split_is_refused) {
    const char *adapt = "method = lora\nbits = w8a8\nseed = 0\n";
    qa_recipe *r = tuned_recipe(adapt, "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\nextend = 1\nmetric = heldout_loss\n");
    char src[400], out[400], p[1200], name[300], id[200];
    snprintf(src, sizeof src, "%s/resume_ext_src", dir);
    snprintf(out, sizeof out, "%s/resume_ext_out", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, src, &err), 0, "%s", err.msg);
    double rate[8], loss[8];
    int n;
    tuning_losses(src, rate, loss, &n);
    cr_assert_eq(n, 3, "the grid's two rates and the extension's");
    const double next = best_rate(rate, loss, 2) == 50 ? 5000 : 0.005;
    snprintf(id, sizeof id, "lora-w8a8-r2-lrx%g-s100", next);
    snprintf(name, sizeof name, "tune/%s.h5", id);
    snprintf(p, sizeof p, "%s/%s", src, name);
    copy_without_split(p, out, name, id); /* the grid's runs are made in out, the same as in src */
    cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT);
    snprintf(p, sizeof p, "%s/%s", out, name);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "predates the validation split"), "%s", err.msg);
    qa_recipe_free(r);
}

/* A finished run made by another version of its method (one that computes otherwise) is not
 * resumed as this run: an input error naming the file and both versions. */
Test(adapt, a_finished_run_of_another_method_version_is_refused) {
    qa_recipe *r = tuned_recipe("method = lora\nbits = w8a8\nseed = 0\n", "lr_grid = [0.5, 50]\nseeds = [100]\nsteps = 2\n");
    char out[512], p[700];
    snprintf(out, sizeof out, "%s/resume_version", dir);
    qa_error err = {0, ""};
    cr_assert_eq(qa_adapt_sweep(r, out, &err), 0, "%s", err.msg);
    snprintf(p, sizeof p, "%s/lora-w8a8-r2-s0.h5", out);
    set_run_attr(p, "lora-w8a8-r2-s0", "method_version", 0);
    cr_expect_eq(qa_adapt_sweep(r, out, &err), QA_ERR_INPUT);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "lora version 0, this build's is 1"), "%s", err.msg);
    qa_recipe_free(r);
}
