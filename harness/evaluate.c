#include "harness/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define D_IMG QA_IMAGE_PIXELS

/* x [n_gen, D] and the class each sample asks for (-1: none, the style task's slot) */
static void generate_samples(qa_dit *m, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed,
                             int n_gen, float *x, int *asked) {
    const int n_classes = m->cfg.n_classes;
    if (t->kind != QA_TASK_DOMAIN) {
        qa_sample_images(m, refs->sched, t->slot, n_gen, spec->ddim_steps, spec->guidance, qa_seed_for((uint64_t)seed, "eval-samples"), x);
        for (int i = 0; i < n_gen; i++) asked[i] = t->item_class;
        return;
    }
    int per = (n_gen + n_classes - 1) / n_classes;
    float *tmp = qa_alloc(sizeof(float) * (size_t)per * D_IMG);
    for (int k = 0; k < n_classes; k++) {
        char purpose[32];
        snprintf(purpose, sizeof purpose, "eval-samples-class-%d", k);
        qa_sample_images(m, refs->sched, k, per, spec->ddim_steps, spec->guidance, qa_seed_for((uint64_t)seed, purpose), tmp);
        for (int i = 0; i < per; i++) { /* interleave classes so the first n saved show all */
            int at = i * n_classes + k;
            if (at >= n_gen) continue;
            memcpy(x + (size_t)at * D_IMG, tmp + (size_t)i * D_IMG, sizeof(float) * D_IMG);
            asked[at] = k;
        }
    }
    qa_free(tmp);
}

/* standard error of the mean of v[n] */
static double std_error(double acc, double acc2, int n) {
    double var = n > 1 ? (acc2 - acc * acc / n) / (n - 1) : 0;
    return sqrt(var > 0 ? var / n : 0);
}

/* Prompt fidelity: p(asked class) (subject, domain); style, where no class is asked: the
 * evaluator's confidence that the sample is some garment (content kept). Style score. Subject
 * fidelity: cosine of the first n samples to the references (subject: the item; style: the
 * styled images). Each with the standard error of its per-sample mean, so a reader can see
 * whether the sample counts are large enough. */
static void score_samples(const qa_task *t, const float *x, const float *feat, const float *probs, const int *asked,
                          int n_gen, int n, qa_record_eval *ev) {
    double prompt = 0, style = 0, acc = 0, acc2 = 0;
    for (int i = 0; i < n_gen; i++) {
        const float *p = probs + (size_t)i * QA_CLF_CLASSES;
        if (asked[i] >= 0) prompt += p[asked[i]];
        else {
            float mx = p[0];
            for (int k = 1; k < QA_CLF_CLASSES; k++) mx = p[k] > mx ? p[k] : mx;
            prompt += mx;
        }
        style += qa_style_score(x + (size_t)i * D_IMG, QA_IMAGE_SIDE);
        double v = asked[i] >= 0 ? p[asked[i]] : 0;
        if (asked[i] < 0) for (int k = 0; k < QA_CLF_CLASSES; k++) v = p[k] > v ? p[k] : v;
        acc += v; acc2 += v * v;
    }
    ev->prompt_fidelity = prompt / n_gen;
    ev->style_score = style / n_gen;
    ev->prompt_fidelity_se = std_error(acc, acc2, n_gen);
    ev->subject_fidelity = t->k > 0 ? qa_mean_cosine(feat, n, t->item_feat, t->k, QA_CLF_FEATURES) : -1;
    ev->subject_fidelity_se = 0;
    if (t->k > 0) {
        acc = acc2 = 0;
        for (int i = 0; i < n; i++) {
            double v = qa_mean_cosine(feat + (size_t)i * QA_CLF_FEATURES, 1, t->item_feat, t->k, QA_CLF_FEATURES);
            acc += v; acc2 += v * v;
        }
        ev->subject_fidelity_se = std_error(acc, acc2, n);
    }
}

/* The class-prompt samples of prior preservation (subject: the item's class; style, domain:
 * every class in turn), each class under its own eval-prior noise: their evaluator features
 * feat [n_prior, F] (may be NULL), and the share the evaluator classifies as their class.
 * Returns the samples drawn (0: not measured). */
static int prior_samples(qa_dit *m, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed, float *feat,
                         double *share) {
    const int n_prior = spec->prior_samples;
    if (n_prior <= 0) return 0;
    float *xp = qa_alloc(sizeof(float) * (size_t)n_prior * D_IMG);
    float *pp = qa_alloc(sizeof(float) * (size_t)n_prior * QA_CLF_CLASSES);
    int ok = 0;
    int n_cls = t->kind == QA_TASK_SUBJECT ? 1 : m->cfg.n_classes, per = (n_prior + n_cls - 1) / n_cls, done = 0;
    for (int k = 0; k < n_cls && done < n_prior; k++) {
        int cls = t->kind == QA_TASK_SUBJECT ? t->item_class : k, cnt = per < n_prior - done ? per : n_prior - done;
        char purpose[40];
        snprintf(purpose, sizeof purpose, "eval-prior-samples-%d", cls);
        qa_sample_images(m, refs->sched, cls, cnt, spec->ddim_steps, spec->guidance, qa_seed_for((uint64_t)seed, purpose), xp);
        qa_clf_embed(refs->clf, xp, cnt, feat ? feat + (size_t)done * QA_CLF_FEATURES : NULL, pp);
        for (int i = 0; i < cnt; i++) {
            const float *p = pp + (size_t)i * QA_CLF_CLASSES;
            int best = 0;
            for (int j = 1; j < QA_CLF_CLASSES; j++) if (p[j] > p[best]) best = j;
            ok += best == cls;
        }
        done += cnt;
    }
    qa_free(xp);
    qa_free(pp);
    *share = (double)ok / done;
    return done;
}

void qa_evaluate_base(qa_dit *base, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed) {
    qa_task_base *b = t->base;
    if (!b || b->filled) return;
    b->filled = 1;
    b->floor = -1;
    if (t->kind == QA_TASK_SUBJECT && t->k > 0 && spec->samples > 0) {
        /* the adapted model's samples ask for the bound slot; the base's for the item's class */
        b->n = spec->samples;
        float *x = qa_alloc(sizeof(float) * (size_t)b->n * D_IMG);
        b->feat = qa_alloc(sizeof(float) * (size_t)b->n * QA_CLF_FEATURES);
        qa_sample_images(base, refs->sched, t->item_class, b->n, spec->ddim_steps, spec->guidance,
                      qa_seed_for((uint64_t)seed, "eval-samples"), x);
        qa_clf_embed(refs->clf, x, b->n, b->feat, NULL);
        b->floor = qa_mean_cosine(b->feat, b->n, t->item_feat, t->k, QA_CLF_FEATURES);
        qa_free(x);
    }
    if (spec->prior_samples > 0) {
        double share;
        b->prior_feat = qa_alloc(sizeof(float) * (size_t)spec->prior_samples * QA_CLF_FEATURES);
        b->n_prior = prior_samples(base, refs, spec, t, seed, b->prior_feat, &share);
    }
}

/* Prior preservation (the share kept), and the prior distance to the base's samples of the same
 * prompts and noise when the task holds them (else -1). */
static void score_prior(qa_dit *m, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed,
                        qa_record_eval *ev) {
    ev->prior_preservation = ev->prior_distance = -1;
    if (spec->prior_samples <= 0) return;
    float *feat = qa_alloc(sizeof(float) * (size_t)spec->prior_samples * QA_CLF_FEATURES);
    int done = prior_samples(m, refs, spec, t, seed, feat, &ev->prior_preservation);
    if (t->base && t->base->filled && t->base->n_prior == done)
        ev->prior_distance = qa_mean_paired_distance(feat, t->base->prior_feat, done, QA_CLF_FEATURES);
    qa_free(feat);
}

/* Subject fidelity's floor and the gain over it, and identification (subject task). */
static void score_floor(const qa_task *t, const float *feat, int n, qa_record_eval *ev) {
    ev->subject_floor = -1;
    ev->subject_gain = 0;
    ev->identification = -1;
    if (t->kind != QA_TASK_SUBJECT || t->k < 1) return;
    if (t->n_other > 0) ev->identification = qa_identification_score(feat, n, t->item_feat, t->k, t->other_feat, t->n_other, QA_CLF_FEATURES);
    const qa_task_base *b = t->base;
    if (!b || !b->filled || b->floor < 0 || b->n < n) return;
    ev->subject_floor = b->n == n ? b->floor : qa_mean_cosine(b->feat, n, t->item_feat, t->k, QA_CLF_FEATURES);
    ev->subject_gain = ev->subject_fidelity - ev->subject_floor;
}

void qa_evaluate(qa_dit *m, const qa_eval_refs *refs, const qa_eval_spec *spec, const qa_task *t, long seed,
                 qa_record_eval *ev) {
    const char *variant = ev->variant;
    double bits_pw = ev->bits_per_weight;
    memset(ev, 0, sizeof *ev);
    ev->variant = variant;
    ev->bits_per_weight = bits_pw;
    const int n = spec->samples;
    double t0 = qa_now();
    double *per_image = qa_alloc(sizeof(double) * refs->heldout->n_images);
    ev->heldout_loss = qa_heldout_loss(m, refs->heldout, per_image);
    int n_gen = t->kind == QA_TASK_DOMAIN ? spec->fid_samples : n;
    if (n_gen < n) n_gen = n;
    float *x = qa_alloc(sizeof(float) * (size_t)n_gen * D_IMG);
    int *asked = qa_alloc(sizeof(int) * n_gen);
    generate_samples(m, refs, spec, t, seed, n_gen, x, asked);
    double t_sample = qa_now() - t0;
    float *feat = qa_alloc(sizeof(float) * (size_t)n_gen * QA_CLF_FEATURES);
    float *probs = qa_alloc(sizeof(float) * (size_t)n_gen * QA_CLF_CLASSES);
    qa_clf_embed(refs->clf, x, n_gen, feat, probs);
    score_samples(t, x, feat, probs, asked, n_gen, n, ev);
    double acc = 0, acc2 = 0;
    const int ni = refs->heldout->n_images;
    for (int i = 0; i < ni; i++) { acc += per_image[i]; acc2 += per_image[i] * per_image[i]; }
    ev->heldout_loss_se = std_error(acc, acc2, ni);
    ev->diversity = qa_mean_pairwise_distance(feat, n, QA_CLF_FEATURES);
    ev->fid = t->kind == QA_TASK_DOMAIN ? qa_frechet_distance(feat, n_gen, refs->fid_ref_feat, refs->n_fid_ref, QA_CLF_FEATURES) : -1;
    score_floor(t, feat, n, ev);
    score_prior(m, refs, spec, t, seed, ev);
    ev->eval_seconds = qa_now() - t0;
    ev->sampling_ms_per_image = 1e3 * t_sample / n;
    ev->heldout_per_image = per_image;
    ev->n_heldout = ni;
    ev->samples = x; /* the first n of n_gen are saved */
    ev->n_samples = n;
    qa_free(feat); qa_free(probs); qa_free(asked);
}

void qa_evaluate_free(qa_record_eval *ev) {
    qa_free((void *)ev->heldout_per_image);
    qa_free((void *)ev->samples);
    ev->heldout_per_image = NULL;
    ev->samples = NULL;
}

void qa_evaluate_log(const char *run_id, const qa_record_eval *ev) {
    fprintf(stderr, "  %-24s %-4s loss %.5f (se %.5f)", run_id, ev->variant, ev->heldout_loss, ev->heldout_loss_se);
    if (ev->subject_fidelity >= 0) fprintf(stderr, "  subject %.4f (se %.4f)", ev->subject_fidelity, ev->subject_fidelity_se); /* none for domain */
    fprintf(stderr, "  prompt %.4f (se %.4f)  diversity %.4f", ev->prompt_fidelity, ev->prompt_fidelity_se, ev->diversity);
    if (ev->prior_preservation >= 0) fprintf(stderr, "  prior %.3f", ev->prior_preservation);
    if (ev->prior_distance >= 0) fprintf(stderr, "  prior distance %.4f", ev->prior_distance);
    if (ev->subject_floor >= 0) fprintf(stderr, "  floor %.4f (gain %+.4f)", ev->subject_floor, ev->subject_gain);
    if (ev->identification >= 0) fprintf(stderr, "  identification %.3f", ev->identification);
    fprintf(stderr, "  style %.3f", ev->style_score);
    if (ev->fid >= 0) fprintf(stderr, "  FID %.3f", ev->fid);
    fprintf(stderr, "\n");
}
