#include "harness/basecheck.h"
#include "commit.h"

#include <string.h>

#include "datasets/dataset.h"
#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/plot.h"
#include "harness/results.h"

int qa_base_check(const qa_basecheck_opts *o, FILE *out, int *passed, qa_error *err) {
    qa_dit m;
    int rc = qa_dit_load(o->checkpoint, &m, 128, err);
    if (rc) return rc;
    qa_classifier clf;
    rc = qa_clf_load(o->evaluator, &clf, 128, err);
    if (rc) { qa_dit_free(&m); return rc; }
    qa_images test;
    rc = qa_fmnist_load(NULL, "t10k", &test, err);
    if (rc) { qa_clf_free(&clf); qa_dit_free(&m); return rc; }
    double real_pc[QA_CLF_CLASSES];
    double real_acc = qa_evaluator_accuracy(&clf, &test, real_pc);
    qa_images_free(&test);

    qa_schedule s;
    qa_schedule_default(&s);
    const int n = o->samples_per_class, C = m.cfg.n_classes, grid_cols = 10;
    float *x = qa_alloc(sizeof(float) * (size_t)n * 784);
    float *probs = qa_alloc(sizeof(float) * (size_t)n * QA_CLF_CLASSES);
    uint8_t *tiles = qa_alloc((size_t)C * grid_cols * 784);
    double gen_pc[QA_CLF_CLASSES], mean_conf[QA_CLF_CLASSES];
    long total_ok = 0;
    double t0 = qa_now();
    for (int k = 0; k < C; k++) {
        qa_sample_images(&m, &s, k, n, o->ddim_steps, o->guidance, qa_seed_for(o->seed, "basecheck") + (uint64_t)k, x);
        qa_clf_embed(&clf, x, n, NULL, probs);
        int ok = 0;
        double conf = 0;
        for (int i = 0; i < n; i++) {
            const float *p = probs + (size_t)i * QA_CLF_CLASSES;
            int best = 0;
            for (int j = 1; j < QA_CLF_CLASSES; j++) if (p[j] > p[best]) best = j;
            ok += best == k;
            conf += p[k];
        }
        gen_pc[k] = (double)ok / n;
        mean_conf[k] = conf / n;
        total_ok += ok;
        qa_to_pixels(x, (size_t)(n < grid_cols ? n : grid_cols) * 784, tiles + (size_t)k * grid_cols * 784);
    }
    double wall = qa_now() - t0;
    double gen_acc = (double)total_ok / ((double)n * C);
    int ok_all = gen_acc >= 0.85 * real_acc;
    for (int k = 0; k < C; k++) ok_all &= gen_pc[k] >= 0.5 * real_pc[k];
    *passed = ok_all;

    const char *const *names = qa_fmnist_class_names();
    char md_path[4096];
    snprintf(md_path, sizeof md_path, "%s/basecheck.md", o->out_dir);
    FILE *md = fopen(md_path, "w");
    FILE *outs[2] = {out, md};
    for (int w = 0; w < 2; w++) {
        FILE *f = outs[w];
        if (!f) continue;
        fprintf(f, "Base model check: %d guided samples per class (guidance %.1f, %d DDIM steps), classified by the evaluator.\n\n",
                n, o->guidance, o->ddim_steps);
        fprintf(f, "| class | evaluator on real test images | samples classified as asked | share of real | mean p(asked class) |\n|---|---|---|---|---|\n");
        for (int k = 0; k < C; k++)
            fprintf(f, "| %d %s | %.3f | %.3f | %.2f | %.3f |\n", k, names[k], real_pc[k], gen_pc[k],
                    real_pc[k] > 0 ? gen_pc[k] / real_pc[k] : 0, mean_conf[k]);
        fprintf(f, "| **all** | **%.3f** | **%.3f** | **%.2f** | |\n\n", real_acc, gen_acc, gen_acc / real_acc);
        fprintf(f, "Bar: overall >= 0.85 x %.3f = %.3f and every class >= half its real-image accuracy: %s. Sampling took %.0f s.\n",
                real_acc, 0.85 * real_acc, ok_all ? "MET" : "NOT MET", wall);
    }
    if (md) fclose(md);

    char h5p[4096];
    snprintf(h5p, sizeof h5p, "%s/basecheck.h5", o->out_dir);
    qa_h5 *f;
    rc = qa_h5_create(h5p, &f, err);
    if (!rc) {
        int64_t dims[1] = {C};
        rc = qa_h5_write(f, "/real_accuracy_per_class", QA_H5_F64, real_pc, 1, dims, err);
        if (!rc) rc = qa_h5_write(f, "/generated_accuracy_per_class", QA_H5_F64, gen_pc, 1, dims, err);
        if (!rc) rc = qa_h5_attr_set_f64(f, "/", "real_accuracy", real_acc, err);
        if (!rc) rc = qa_h5_attr_set_f64(f, "/", "generated_accuracy", gen_acc, err);
        if (!rc) rc = qa_h5_attr_set_f64(f, "/", "samples_per_class", n, err);
        if (!rc) rc = qa_h5_attr_set_f64(f, "/", "guidance", o->guidance, err);
        if (!rc) rc = qa_h5_attr_set_f64(f, "/", "ddim_steps", o->ddim_steps, err);
        if (!rc) rc = qa_h5_attr_set_str(f, "/", "checkpoint", o->checkpoint, err);
        if (!rc) rc = qa_h5_attr_set_str(f, "/", "git_commit", QA_GIT_COMMIT, err);
        qa_error e2;
        int crc = qa_h5_close(f, &e2);
        if (!rc && crc) { *err = e2; rc = crc; }
    }
    if (!rc) {
        char gp[4096];
        snprintf(gp, sizeof gp, "%s/base_samples", o->out_dir);
        rc = qa_plot_image_grid(gp, tiles, C, grid_cols, (const char *const *)names, NULL,
                             "Guided samples of the pre-trained base, one row per class", err);
    }
    qa_free(x); qa_free(probs); qa_free(tiles);
    qa_clf_free(&clf);
    qa_dit_free(&m);
    return rc;
}
