/* qadapt: the command-line interface. Exit codes: 0 ok, 1 a run failed, 2 bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/adapt.h"
#include "harness/backend.h"
#include "harness/basecheck.h"
#include "harness/bench.h"
#include "harness/checkpoint.h"
#include "harness/fixture.h"
#include "harness/mpi_sweep.h"
#include "harness/pretrain.h"
#include "harness/recipe.h"
#include "harness/registry.h"
#include "harness/report.h"
#include "harness/plot.h"
#include "harness/verify.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qadapt COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  list [--markdown]         registered adaptation methods and their options\n"
            "                            (--markdown: the options table of experiments/README.md)\n"
            "  help METHOD               one method: what it does and its options (recipe keys\n"
            "                            of [adapt]; a list of values makes a grid axis)\n"
            "  run RECIPE [--out DIR] [--dry-run] [--wait] [--shard r/n] [--reuse DIR ...]\n"
            "                            run a recipe (pretrain | evaluator | adapt); an adapt\n"
            "                            sweep resumes in DIR, skipping finished runs;\n"
            "                            --dry-run: check the recipe and print the plan only;\n"
            "                            --wait: if another sweep holds DIR, wait for it;\n"
            "                            --shard r/n (or a launcher's environment): the runs\n"
            "                            with plan index i mod n == r; under mpirun the ranks\n"
            "                            share them (a pretrain job: data parallel);\n"
            "                            --reuse DIR: copy a finished run from DIR instead of\n"
            "                            training it again, where DIR's recipe makes the same\n"
            "                            run (experiments/README.md)\n"
            "  report DIR [--baseline C] tables of a results folder: markdown to stdout,\n"
            "                            DIR/report.{md,tex,csv}; Δ loss against cell C\n"
            "                            (method:bits[:deploy]; default: the first FP cell)\n"
            "  compare DIR A B           cell A against cell B, every metric, paired by seed\n"
            "                            (A, B = method:bits[:deploy[:setting]], e.g.\n"
            "                            intlora-mul:w8a8 qlora:w8a8:int)\n"
            "  runtime DIR [DIR ...]     run time of results folders together (tune/ included),\n"
            "                            each run once: a copy (--reuse) counts in the first\n"
            "                            folder listed that holds it\n"
            "  plot DIR [--baseline C]   figures of a results folder (PNG + SVG, gnuplot, from the\n"
            "                            templates in plots/ or $QA_PLOTS_DIR); the paired\n"
            "                            differences against cell C (default as for report)\n"
            "  verify DIR CLAIMS         judge each claim of a claims file from the run files of\n"
            "                            DIR and its sibling folders (paired by seed, p adjusted\n"
            "                            by Holm-Bonferroni over the file): the table to stdout,\n"
            "                            DIR/<CLAIMS name>.{md,csv}; a failed claim is a verdict\n"
            "                            (exit 0)\n"
            "  bench-layer --method M --tokens T --in I --out O --rank R --bits N [--json]\n"
            "              [--merge] [--deployed] [--group-kernel f32|u8s8] [--repeats K]\n"
            "                            time one adapted layer (forward + backward, median);\n"
            "                            --method linear: a plain f32 linear (the floor)\n"
            "  bench-model [--checkpoint P] [--batch B] [--steps S] [--repeats K] [--train-only]\n"
            "              [--int8-attention] [--json]\n"
            "                            training steps (f32 and bf16 matmuls, interleaved) and\n"
            "                            deployed sampling throughput of the denoiser, f32\n"
            "                            against W8A8 on the integer kernels (K interleaved\n"
            "                            repeats, medians); --int8-attention: also with\n"
            "                            integer attention (beyond the paper's W8A8)\n"
            "  project-sd [--bits N] [--rank R] [--methods a,b] [--json]\n"
            "             [--weights FILE.safetensors] [--pattern REGEX]\n"
            "                            memory, storage, latency and quantizer statistics of\n"
            "                            each method at the shapes of SD-1.5's 128 attention\n"
            "                            projections, or on a checkpoint's weights (--weights;\n"
            "                            --pattern selects the projections by tensor name)\n"
            "  fixture IN.h5 OUT.h5      recompute reference layer fixtures with the harness's\n"
            "                            method plugins (schema: tests/data/README.md)\n"
            "  basecheck [--samples N] [--guidance W] [--steps S] [--out DIR]\n"
            "                            score the pre-trained base: guided samples per class\n"
            "                            classified by the evaluator (default out: results/pretrained)\n"
            "  checkpoint-upgrade IN OUT rewrite a checkpoint with Fletcher-32 checksums on its\n"
            "                            tensors (weights and provenance unchanged)\n"
            "  --help                    this text\n"
            "\n"
            "exit status: 0 ok, 1 a run failed, 2 bad input\n");
}

static int exit_code(int rc) { return rc == 0 ? 0 : (rc == QA_ERR_INPUT ? 2 : 1); }

/* A usage error already printed (exit 2). */
enum { USAGE_ERROR = 1 };

/* run --dry-run: the runs of the plan this shard owns, in plan order (an adapt sweep), or the job kind. */
static int print_plan(qa_recipe *r, const char *recipe_path, const qa_shard *shard, qa_error *err) {
    const char *kind = qa_recipe_str(r, "job", "kind");
    if (strcmp(kind, "adapt")) {
        printf("%s: a %s job\n", recipe_path, kind);
        return QA_OK;
    }
    qa_sweep_plan plan;
    int n = qa_adapt_plan(r, &plan, err);
    if (n < 0) return n;
    qa_adapt_plan_print(&plan, recipe_path, shard, stdout);
    qa_adapt_plan_free(&plan);
    return QA_OK;
}

/* qa_sweep_sched's functions over MPI (adapt.c never calls MPI itself) */
static int share_runs(void *ctx, int n_runs, qa_run_index_fn run_index, void *run_ctx, qa_run_outcome *outcomes,
                      qa_error *err) {
    return qa_mpi_share_runs(ctx, n_runs, run_index, run_ctx, outcomes, err);
}

static int agree(void *ctx, int rank0_status) { return qa_mpi_agree(ctx, rank0_status); }

#define RUN_USAGE "usage: qadapt run RECIPE [--out DIR] [--dry-run] [--wait] [--shard r/n] [--reuse DIR ...]\n"

/* qadapt run RECIPE [--out DIR] [--dry-run] [--wait] [--shard r/n] [--reuse DIR ...] */
static int cmd_run(int argc, char **argv, const qa_mpi_world *world, qa_error *err) {
    int rc = 0;
    const char *recipe_path = NULL, *out = NULL, *shard_text = NULL;
    int dry = 0;
    qa_sweep_opts opts = {0};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (!strcmp(argv[i], "--wait")) opts.wait = 1;
        else if (!strcmp(argv[i], "--reuse") && i + 1 < argc) {
            if (opts.n_reuse == QA_MAX_REUSE) {
                fprintf(stderr, "qadapt run: at most %d --reuse folders\n", QA_MAX_REUSE);
                return USAGE_ERROR;
            }
            opts.reuse[opts.n_reuse++] = argv[++i];
        }
        else if (!strcmp(argv[i], "--shard") && i + 1 < argc) shard_text = argv[++i];
        else if (argv[i][0] == '-') { fprintf(stderr, "qadapt run: unknown option '%s'\n", argv[i]); return USAGE_ERROR; }
        else if (!recipe_path) recipe_path = argv[i];
        else { fprintf(stderr, "qadapt run: unexpected argument '%s'\n", argv[i]); return USAGE_ERROR; }
    }
    if (!recipe_path) { fprintf(stderr, RUN_USAGE); return USAGE_ERROR; }
    for (int i = 0; i < opts.n_reuse; i++) {
        if (!qa_dir_exists(opts.reuse[i])) {
            fprintf(stderr, "qadapt run: --reuse %s: no such folder (a results folder of finished runs)\n", opts.reuse[i]);
            return USAGE_ERROR;
        }
        if (qa_same_file(opts.reuse[i], out ? out : "results/scratch")) {
            fprintf(stderr, "qadapt run: --reuse %s is the --out folder itself\n", opts.reuse[i]);
            return USAGE_ERROR;
        }
    }
    /* under MPI the ranks share the plan dynamically: only a Slurm array is a static shard */
    qa_shard shard;
    rc = qa_shard_resolve(shard_text, world->under_mpi ? QA_SHARD_ENV_SLURM_ARRAY : QA_SHARD_ENV_ALL, &shard, err);
    if (rc) { fprintf(stderr, "qadapt: %s\n" RUN_USAGE, err->msg); return USAGE_ERROR; }
    /* the ranks of an MPI job share the shard's runs dynamically; alone, this process runs them */
    qa_sweep_sched sched = {.shard = shard, .rank = world->rank, .size = world->size, .ctx = (void *)world,
                            .share = world->under_mpi && world->size > 1 ? share_runs : NULL, .agree = agree};
    qa_recipe *r;
    rc = qa_recipe_load(recipe_path, &r, err);
    if (rc == 0 && opts.n_reuse && strcmp(qa_recipe_str(r, "job", "kind"), "adapt")) {
        fprintf(stderr, "qadapt run: --reuse copies the runs of an adapt sweep; %s is a %s job\n", recipe_path,
                qa_recipe_str(r, "job", "kind"));
        qa_recipe_free(r);
        return USAGE_ERROR;
    }
    if (rc == 0 && dry) {
        rc = print_plan(r, recipe_path, &shard, err);
        qa_recipe_free(r);
    } else if (rc == 0) {
        const char *kind = qa_recipe_str(r, "job", "kind");
        /* a single-run job is shard 0's alone; its MPI ranks all pre-train the denoiser (data
         * parallel, rank 0 writes), and rank 0 alone trains the evaluator */
        int mine = shard.rank == 0 && (world->rank == 0 || !strcmp(kind, "pretrain"));
        qa_grad_reducer reducer;
        if (strcmp(kind, "adapt") && !mine)
            fprintf(stderr, "qadapt: a %s job is one run: shard 0 rank 0 runs it; shard %d/%d rank %d/%d has nothing "
                    "to do\n", kind, shard.rank, shard.count, world->rank, world->size);
        else if (!strcmp(kind, "pretrain"))
            rc = qa_pretrain_dit(r, out ? out : qa_recipe_str(r, "model", "checkpoint"), qa_mpi_grad_reducer(world, &reducer),
                              err);
        else if (!strcmp(kind, "evaluator"))
            rc = qa_pretrain_evaluator(r, out ? out : qa_recipe_str(r, "model", "evaluator"), err);
        else
            rc = qa_adapt_sweep_sched(r, out ? out : "results/scratch", &opts, &sched, err);
        qa_recipe_free(r);
    }
    return rc;
}

static int run_command(int argc, char **argv, const qa_mpi_world *world) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    qa_error err = {0, ""};
    int rc = 0;
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || (!strcmp(cmd, "help") && argc == 2)) {
        usage(stdout);
        return 0;
    } else if (!strcmp(cmd, "help")) {
        const qa_method *m = qa_method_find(argv[2]);
        if (!m || argc != 3) {
            fprintf(stderr, "usage: qadapt help METHOD (the methods: qadapt list)\n");
            return 2;
        }
        printf("%s (version %d): %s\n", m->name, m->version, m->summary);
        if (m->reference_lr > 0) printf("reference learning rate: %g (the centre of a [tune] lr_grid)\n", m->reference_lr);
        if (m->n_options) printf("options ([adapt] keys):\n");
        else printf("no options of its own\n");
        qa_method_print_options(m, stdout, "  ");
        return 0;
    } else if (!strcmp(cmd, "list") && argc == 3 && !strcmp(argv[2], "--markdown")) {
        qa_method_options_markdown(stdout);
        return 0;
    } else if (!strcmp(cmd, "list")) {
        for (const qa_method *const *m = qa_methods(); *m; m++) {
            printf("%-16s %s\n", (*m)->name, (*m)->summary);
            qa_method_print_options(*m, stdout, "                   ");
        }
        return 0;
    } else if (!strcmp(cmd, "run")) {
        rc = cmd_run(argc, argv, world, &err);
        if (rc == USAGE_ERROR) return 2;
    } else if (!strcmp(cmd, "report")) {
        int with_base = argc == 5 && !strcmp(argv[3], "--baseline");
        if (argc != 3 && !with_base) { fprintf(stderr, "usage: qadapt report DIR [--baseline METHOD:BITS[:DEPLOY[:SETTING]]]\n"); return 2; }
        rc = qa_report_write_baseline(argv[2], with_base ? argv[4] : NULL, stdout, &err);
        if (!rc)
            printf("\nwritten: %s/report.{md,tex,csv}, report_paper.md (the paper's layout), efficiency.{md,csv}, summary.h5\n",
                   argv[2]);
    } else if (!strcmp(cmd, "runtime")) {
        if (argc < 3) { fprintf(stderr, "usage: qadapt runtime DIR [DIR ...]\n"); return 2; }
        rc = qa_report_runtime((const char *const *)(argv + 2), argc - 2, stdout, &err);
    } else if (!strcmp(cmd, "compare")) {
        if (argc != 5) { fprintf(stderr, "usage: qadapt compare DIR METHOD:BITS[:DEPLOY[:SETTING]] METHOD:BITS[:DEPLOY[:SETTING]]\n"); return 2; }
        rc = qa_report_compare(argv[2], argv[3], argv[4], stdout, &err);
    } else if (!strcmp(cmd, "plot")) {
        int with_base = argc == 5 && !strcmp(argv[3], "--baseline");
        if (argc != 3 && !with_base) { fprintf(stderr, "usage: qadapt plot DIR [--baseline METHOD:BITS[:DEPLOY[:SETTING]]]\n"); return 2; }
        rc = qa_plot_results(argv[2], with_base ? argv[4] : NULL, &err);
    } else if (!strcmp(cmd, "verify")) {
        if (argc != 4) { fprintf(stderr, "usage: qadapt verify DIR CLAIMS\n"); return 2; }
        rc = qa_verify(argv[2], argv[3], stdout, &err);
    } else if (!strcmp(cmd, "bench-layer")) {
        qa_bench_layer_opts o;
        rc = qa_bench_layer_parse(argc - 2, argv + 2, &o, &err);
        if (!rc) rc = qa_bench_layer(&o, stdout, &err);
    } else if (!strcmp(cmd, "bench-model")) {
        qa_bench_model_opts o;
        rc = qa_bench_model_parse(argc - 2, argv + 2, &o, &err);
        if (!rc) rc = qa_bench_model(&o, stdout, &err);
    } else if (!strcmp(cmd, "project-sd")) {
        qa_project_opts o;
        rc = qa_project_sd_parse(argc - 2, argv + 2, &o, &err);
        if (!rc) rc = qa_project_sd(&o, stdout, &err);
    } else if (!strcmp(cmd, "fixture")) {
        if (argc != 4) { fprintf(stderr, "usage: qadapt fixture IN.h5 OUT.h5\n"); return 2; }
        int done = 0, failed = 0;
        rc = qa_fixture_compute(argv[2], argv[3], stderr, &done, &failed, &err);
        if (done || failed) fprintf(stderr, "fixture: %d cases written to %s, %d could not be computed\n", done, argv[3], failed);
    } else if (!strcmp(cmd, "checkpoint-upgrade")) {
        if (argc != 4) { fprintf(stderr, "usage: qadapt checkpoint-upgrade IN.h5 OUT.h5\n"); return 2; }
        rc = qa_ckpt_upgrade(argv[2], argv[3], &err);
    } else if (!strcmp(cmd, "mpi-selftest")) {
        rc = qa_mpi_selftest(world, argc - 2, argv + 2, stdout, &err);
    } else if (!strcmp(cmd, "basecheck")) {
        qa_basecheck_opts o = {"results/pretrained/dit.h5", "results/pretrained/evaluator.h5", "results/pretrained",
                               100, 50, 3.0f, 7};
        for (int i = 2; i < argc; i++) {
            int more = i + 1 < argc;
            if (!strcmp(argv[i], "--samples") && more) o.samples_per_class = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--guidance") && more) o.guidance = (float)atof(argv[++i]);
            else if (!strcmp(argv[i], "--steps") && more) o.ddim_steps = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--out") && more) o.out_dir = argv[++i];
            else if (!strcmp(argv[i], "--checkpoint") && more) o.checkpoint = argv[++i];
            else { fprintf(stderr, "usage: qadapt basecheck [--samples N] [--guidance W] [--steps S] [--out DIR]\n"); return 2; }
        }
        if (o.samples_per_class < 1 || o.ddim_steps < 1 || o.ddim_steps > 1000 || o.guidance < 1.0f) {
            fprintf(stderr, "qadapt basecheck: need --samples >= 1, 1 <= --steps <= 1000, --guidance >= 1\n");
            return 2;
        }
        int passed = 0;
        rc = qa_mkdir_p(o.out_dir, &err);
        if (!rc) rc = qa_base_check(&o, stdout, &passed, &err);
    } else {
        fprintf(stderr, "qadapt: unknown command '%s'\n\n", cmd);
        usage(stderr);
        return 2;
    }
    if (rc) fprintf(stderr, "qadapt: %s\n", err.msg);
    qa_backend_shutdown();
    return exit_code(rc);
}

int main(int argc, char **argv) {
    qa_mpi_world world;
    qa_error err = {0, ""};
    if (qa_mpi_start(&argc, &argv, &world, &err)) {
        fprintf(stderr, "qadapt: %s\n", err.msg);
        return exit_code(err.code);
    }
    int code = run_command(argc, argv, &world);
    qa_mpi_stop(&world);
    return code;
}
