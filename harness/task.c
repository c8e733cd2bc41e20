#include "harness/task.h"

#include <math.h>
#include <string.h>

#include "harness/diffusion.h"
#include "harness/eval.h"

#define D_IMG QA_IMAGE_PIXELS

const char *const qa_task_names[QA_TASK_COUNT] = {
    [QA_TASK_SUBJECT] = "subject",
    [QA_TASK_STYLE] = "style",
    [QA_TASK_DOMAIN] = "domain",
};

int qa_load_images(const qa_data_spec *data, const char *split, qa_images *im, qa_error *err) {
    const int is_train = strcmp(split, "train") == 0;
    if (data->synthetic) qa_synthetic_images(im, is_train ? 2000 : 500, QA_IMAGE_SIDE, 10, is_train ? 1 : 2);
    else {
        int rc = qa_fmnist_load(data->dir && *data->dir ? data->dir : NULL, split, im, err);
        if (rc) return rc;
    }
    /* the limit is on the training images only: the test set scores every run the same way */
    if (is_train && data->train_limit > 0 && data->train_limit < im->n) im->n = (int)data->train_limit;
    return QA_OK;
}

/* The name of class c for messages ("?" past Fashion-MNIST's ten). */
static const char *class_name(int c) { return c >= 0 && c < QA_FMNIST_CLASSES ? qa_fmnist_class_names()[c] : "?"; }

static int count_of_class(const qa_images *train, int c) {
    int n = 0;
    for (int i = 0; i < train->n; i++) n += train->labels[i] == c;
    return n;
}

/* The seed's item class, seed mod classes (stratified), and the subject-item stream from which
 * task_build_item draws the anchor image. */
static qa_rng *item_stream(long seed, int n_classes, int *item_class) {
    *item_class = (int)(seed % n_classes);
    return qa_rng_new(qa_seed_for((uint64_t)seed, "subject-item"));
}

/* The style task's classes in the seed's order: images j takes class classes[j % n_classes]. */
static qa_rng *style_stream(long seed, int n_classes, int *classes) {
    qa_rng *r = qa_rng_new(qa_seed_for((uint64_t)seed, "style-images"));
    for (int c = 0; c < n_classes; c++) classes[c] = c;
    qa_rng_shuffle(r, classes, (size_t)n_classes);
    return r;
}

int qa_task_check(const qa_task_spec *spec, long seed, const qa_dit_config *base, const qa_images *train, qa_error *err) {
    const char *task = qa_task_names[spec->kind];
    if (train->n < 1) return qa_fail(err, QA_ERR_INPUT, "the %s task needs training images, but there are none", task);
    if (spec->kind == QA_TASK_DOMAIN) return QA_OK;
    if (base->n_spare < 1)
        return qa_fail(err, QA_ERR_INPUT, "the %s task binds its images to a spare class slot, but the base model has "
                       "n_spare = %d (pre-train one with [model] n_spare >= 1)", task, base->n_spare);
    if (spec->images < 1) return qa_fail(err, QA_ERR_INPUT, "the %s task needs images >= 1, got %d", task, spec->images);
    if (spec->kind == QA_TASK_SUBJECT) {
        int c;
        qa_rng_free(item_stream(seed, base->n_classes, &c));
        int have = count_of_class(train, c);
        if (have < spec->images)
            return qa_fail(err, QA_ERR_INPUT, "the subject task of seed %ld needs %d images of its item's class %d (%s), "
                           "but the %d training images hold %d of that class", seed, spec->images, c, class_name(c),
                           train->n, have);
        return QA_OK;
    }
    int *classes = qa_alloc(sizeof(int) * (size_t)base->n_classes), rc = QA_OK;
    qa_rng_free(style_stream(seed, base->n_classes, classes));
    int n_distinct = spec->images < base->n_classes ? spec->images : base->n_classes;
    for (int j = 0; j < n_distinct && !rc; j++)
        if (count_of_class(train, classes[j]) == 0)
            rc = qa_fail(err, QA_ERR_INPUT, "the style task of seed %ld needs one image of each of %d classes, but the %d "
                         "training images hold none of class %d (%s)", seed, n_distinct, train->n, classes[j],
                         class_name(classes[j]));
    qa_free(classes);
    return rc;
}

void qa_task_free(qa_task *t) {
    qa_free(t->item_x); qa_free(t->item_feat); qa_free(t->item_idx); qa_free(t->prior_x); qa_free(t->other_feat);
    if (t->base) { qa_free(t->base->feat); qa_free(t->base->prior_feat); qa_free(t->base); }
    memset(t, 0, sizeof *t);
}

/* K images of K different classes (cycling if K > classes), in the new style; qa_task_check
 * made sure each class drawn has an image. */
static void task_build_style(qa_task *t, qa_classifier *clf, const qa_images *train, int k, int n_classes) {
    int *classes = qa_alloc(sizeof(int) * n_classes);
    qa_rng *r = style_stream(t->seed, n_classes, classes);
    t->item_idx = qa_alloc(sizeof(int) * k);
    for (int j = 0; j < k; j++) {
        int want = classes[j % n_classes], pick;
        do pick = (int)qa_rng_below(r, (unsigned long)train->n); while (train->labels[pick] != want);
        t->item_idx[j] = pick;
    }
    t->item_x = qa_alloc(sizeof(float) * (size_t)k * D_IMG);
    t->item_feat = qa_alloc(sizeof(float) * (size_t)k * QA_CLF_FEATURES);
    qa_images_to_float(train, t->item_idx, k, t->item_x);
    qa_style_stripes(t->item_x, k, QA_IMAGE_SIDE);
    qa_clf_embed(clf, t->item_x, k, t->item_feat, NULL);
    qa_free(classes);
    qa_rng_free(r);
}

/* The k members of the class most similar (cosine of evaluator features f [n_cls, F]) to the
 * anchor, the anchor first, by selection; into sel [k]. */
static void nearest_members(const float *f, int n_cls, int anchor, int k, int *sel) {
    double *sim = qa_alloc(sizeof(double) * n_cls);
    for (int i = 0; i < n_cls; i++) sim[i] = qa_mean_cosine(f + (size_t)anchor * QA_CLF_FEATURES, 1, f + (size_t)i * QA_CLF_FEATURES, 1, QA_CLF_FEATURES);
    sim[anchor] = 2.0; /* the anchor itself first */
    for (int j = 0; j < k; j++) { /* k largest similarities, by selection */
        int best = -1;
        for (int i = 0; i < n_cls; i++) if (sim[i] > -5 && (best < 0 || sim[i] > sim[best])) best = i;
        sel[j] = best;
        sim[best] = -10;
    }
    qa_free(sim);
}

/* The seed's anchor: a member of its class drawn from its subject-item stream. */
static int item_anchor(long seed, int n_classes, int n_cls) {
    int c;
    qa_rng *r = item_stream(seed, n_classes, &c);
    int anchor = (int)qa_rng_below(r, (unsigned long)n_cls);
    qa_rng_free(r);
    return anchor;
}

/* The item: a training image of class (seed mod classes) drawn by the seed, and its k-1 nearest
 * neighbours of the same class in evaluator feature space (cosine). The classes are stratified
 * over the seeds: any 10 consecutive seeds cover all 10 classes once, so a table's seeds spread
 * over the classes rather than falling on a few by chance. qa_task_check made sure the class has
 * k images. The other items of identification are built the same way from the seeds
 * seed + j * classes (j = 1, 2, ...: the same class), skipping an anchor already used. */
static void task_build_item(qa_task *t, qa_classifier *clf, const qa_images *train, int k, int n_classes) {
    qa_rng_free(item_stream(t->seed, n_classes, &t->item_class));
    int n_cls = count_of_class(train, t->item_class);
    int *members = qa_alloc(sizeof(int) * n_cls);
    for (int i = 0, j = 0; i < train->n; i++) if (train->labels[i] == t->item_class) members[j++] = i;
    float *x = qa_alloc(sizeof(float) * (size_t)n_cls * D_IMG), *f = qa_alloc(sizeof(float) * (size_t)n_cls * QA_CLF_FEATURES);
    qa_images_to_float(train, members, n_cls, x);
    qa_clf_embed(clf, x, n_cls, f, NULL);
    int anchors[1 + QA_TASK_OTHER_ITEMS], n_anchors = 0;
    anchors[n_anchors++] = item_anchor(t->seed, n_classes, n_cls);
    for (int j = 1; j <= 4 * QA_TASK_OTHER_ITEMS && n_anchors < 1 + QA_TASK_OTHER_ITEMS; j++) {
        int a = item_anchor(t->seed + (long)j * n_classes, n_classes, n_cls), seen = 0;
        for (int q = 0; q < n_anchors; q++) seen |= anchors[q] == a;
        if (!seen) anchors[n_anchors++] = a;
    }
    int *sel = qa_alloc(sizeof(int) * k);
    nearest_members(f, n_cls, anchors[0], k, sel);
    t->item_idx = qa_alloc(sizeof(int) * k);
    t->item_x = qa_alloc(sizeof(float) * (size_t)k * D_IMG);
    t->item_feat = qa_alloc(sizeof(float) * (size_t)k * QA_CLF_FEATURES);
    for (int j = 0; j < k; j++) {
        t->item_idx[j] = members[sel[j]];
        memcpy(t->item_x + (size_t)j * D_IMG, x + (size_t)sel[j] * D_IMG, sizeof(float) * D_IMG);
        memcpy(t->item_feat + (size_t)j * QA_CLF_FEATURES, f + (size_t)sel[j] * QA_CLF_FEATURES, sizeof(float) * QA_CLF_FEATURES);
    }
    t->n_other = n_anchors - 1;
    t->other_feat = qa_alloc(sizeof(float) * (size_t)(t->n_other > 0 ? t->n_other : 1) * k * QA_CLF_FEATURES);
    for (int o = 0; o < t->n_other; o++) {
        nearest_members(f, n_cls, anchors[1 + o], k, sel);
        for (int j = 0; j < k; j++)
            memcpy(t->other_feat + ((size_t)o * k + j) * QA_CLF_FEATURES, f + (size_t)sel[j] * QA_CLF_FEATURES,
                   sizeof(float) * QA_CLF_FEATURES);
    }
    qa_free(sel); qa_free(x); qa_free(f); qa_free(members);
}

int qa_task_build(qa_task *t, const qa_task_spec *spec, long seed, qa_dit *base, qa_classifier *clf,
                  const qa_images *train, int ddim_steps, float guidance, qa_error *err) {
    memset(t, 0, sizeof *t);
    int rc = qa_task_check(spec, seed, &base->cfg, train, err);
    if (rc) return rc;
    t->kind = spec->kind;
    t->seed = seed;
    t->item_class = -1;
    t->base = qa_alloc(sizeof *t->base);
    if (spec->kind == QA_TASK_DOMAIN) { t->slot = -1; return QA_OK; }
    t->k = spec->images;
    QA_ASSERT(base->cfg.n_spare >= 1); /* slot n_classes would be the null slot of guidance */
    t->slot = base->cfg.n_classes; /* first spare slot */
    if (spec->kind == QA_TASK_STYLE) { task_build_style(t, clf, train, t->k, base->cfg.n_classes); return QA_OK; }
    task_build_item(t, clf, train, t->k, base->cfg.n_classes);
    /* the prior: samples of the item's class from the FP base with guidance */
    t->n_prior = spec->prior_images;
    if (t->n_prior > 0) {
        qa_schedule s;
        qa_schedule_default(&s);
        t->prior_x = qa_alloc(sizeof(float) * (size_t)t->n_prior * D_IMG);
        qa_sample_images(base, &s, t->item_class, t->n_prior, ddim_steps, guidance, qa_seed_for((uint64_t)seed, "prior"), t->prior_x);
    }
    return QA_OK;
}

/* The spare slot never saw a gradient in pre-training, so its embedding is still its tiny
 * initial draw and the model can barely tell it from the others. As DreamBooth binds a subject
 * to a rare-token identifier, the slot gets a fresh identifier: a seeded random direction with
 * the mean norm of the trained class embeddings. Every method of a seed gets the same one. */
void qa_task_bind_identifier(const qa_task *t, float *params, const qa_dit *m) {
    if (t->slot < 0) return;
    const int d = m->cfg.dim;
    float *table = params + (m->class_table - m->params);
    double norm = 0;
    for (int k = 0; k < m->cfg.n_classes; k++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)table[(size_t)k * d + j] * table[(size_t)k * d + j];
        norm += sqrt(s) / m->cfg.n_classes;
    }
    qa_rng *r = qa_rng_new(qa_seed_for((uint64_t)t->seed, "slot-identifier"));
    float *row = table + (size_t)t->slot * d;
    qa_rng_fill_normal(r, row, (size_t)d, 1.0f);
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)row[j] * row[j];
    for (int j = 0; j < d; j++) row[j] = (float)(row[j] * norm / sqrt(s));
    qa_rng_free(r);
}

/* subject, style: half the batch item images bound to the spare slot, half prior images with
 * the item's class (DreamBooth); domain: the styled training set under its own class slots */
void qa_task_batch(const qa_task *t, const qa_images *train, qa_rng *rng, int B, float *x0, int *labels, int *B_main) {
    if (t->kind == QA_TASK_DOMAIN) {
        int *idx = labels; /* each label is read from its index in place */
        for (int b = 0; b < B; b++) idx[b] = (int)qa_rng_below(rng, (unsigned long)train->n);
        qa_images_to_float(train, idx, B, x0);
        for (int b = 0; b < B; b++) labels[b] = train->labels[idx[b]];
        qa_style_stripes(x0, B, QA_IMAGE_SIDE);
        *B_main = B;
        return;
    }
    int B_prior = t->n_prior > 0 ? B / 2 : 0, B_item = B - B_prior;
    for (int b = 0; b < B_item; b++) {
        int j = (int)qa_rng_below(rng, (unsigned long)t->k);
        memcpy(x0 + (size_t)b * D_IMG, t->item_x + (size_t)j * D_IMG, sizeof(float) * D_IMG);
        labels[b] = t->slot;
    }
    for (int b = 0; b < B_prior; b++) {
        int j = (int)qa_rng_below(rng, (unsigned long)t->n_prior);
        memcpy(x0 + (size_t)(B_item + b) * D_IMG, t->prior_x + (size_t)j * D_IMG, sizeof(float) * D_IMG);
        labels[B_item + b] = t->item_class;
    }
    *B_main = B_item;
}

float *qa_task_fid_reference(const qa_images *test, qa_classifier *clf, int *n) {
    return qa_task_fid_reference_from(test, clf, 0, n);
}

float *qa_task_fid_reference_from(const qa_images *test, qa_classifier *clf, int first, int *n) {
    int nref = *n > test->n - first ? test->n - first : *n;
    if (nref < 0) nref = 0;
    int *idx = qa_alloc(sizeof(int) * (nref > 0 ? nref : 1));
    for (int i = 0; i < nref; i++) idx[i] = first + i;
    const size_t held = (size_t)(nref > 0 ? nref : 1);
    float *xr = qa_alloc(sizeof(float) * held * D_IMG);
    float *feat = qa_alloc(sizeof(float) * held * QA_CLF_FEATURES);
    if (nref > 0) {
        qa_images_to_float(test, idx, nref, xr);
        qa_style_stripes(xr, nref, QA_IMAGE_SIDE);
        qa_clf_embed(clf, xr, nref, feat, NULL);
    }
    qa_free(xr);
    qa_free(idx);
    *n = nref;
    return feat;
}
