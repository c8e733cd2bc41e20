/* Sanity checks on the committed pre-trained checkpoints (a missing one fails, naming the file):
 * the evaluator scores the base model's guided samples of each trained class higher for the
 * asked class than it scores random-noise images for that class, and metrics are deterministic
 * for a seed. Small sample counts keep it to a few seconds. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness/checkpoint.h"
#include "harness/classifier.h"
#include "harness/diffusion.h"
#include "harness/eval.h"
#include "harness/rng.h"

/* QA_TEST_SOURCE_ROOT is compiled in by tests/meson.build. */
static const char dit_path[] = QA_TEST_SOURCE_ROOT "/results/pretrained/dit.h5";
static const char clf_path[] = QA_TEST_SOURCE_ROOT "/results/pretrained/evaluator.h5";

Test(pretrained, guided_samples_beat_noise_on_prompt_fidelity, .timeout = 120) {
    cr_assert(access(dit_path, R_OK) == 0, "committed checkpoint missing: %s", dit_path);
    cr_assert(access(clf_path, R_OK) == 0, "committed checkpoint missing: %s", clf_path);
    qa_error err = {0, ""};
    qa_dit m;
    cr_assert_eq(qa_dit_load(dit_path, &m, 16, &err), 0, "%s", err.msg);
    qa_classifier c;
    cr_assert_eq(qa_clf_load(clf_path, &c, 16, &err), 0, "%s", err.msg);
    qa_schedule s;
    qa_schedule_linear(&s, 1000, 1e-4f, 0.02f);
    enum { N = 8 };
    float x[N * 784], probs[N * 10], noise_probs[N * 10];
    qa_rng *r = qa_rng_new(3);
    int better = 0;
    for (int k = 0; k < m.cfg.n_classes; k++) {
        qa_sample_images(&m, &s, k, N, 10, 3.0f, 100 + (uint64_t)k, x);
        qa_clf_embed(&c, x, N, NULL, probs);
        qa_rng_fill_uniform(r, x, N * 784, -1.0f, 1.0f);
        qa_clf_embed(&c, x, N, NULL, noise_probs);
        double pg = 0, pn = 0;
        for (int i = 0; i < N; i++) { pg += probs[i * 10 + k]; pn += noise_probs[i * 10 + k]; }
        better += pg > pn;
        cr_log_info("class %d: p(asked) samples %.3f vs noise %.3f", k, pg / N, pn / N);
    }
    cr_expect_geq(better, 8, "guided samples beat noise on %d of 10 classes", better);
    /* deterministic for a seed */
    float a[4 * 784], b[4 * 784];
    qa_sample_images(&m, &s, 3, 4, 5, 3.0f, 42, a);
    qa_sample_images(&m, &s, 3, 4, 5, 3.0f, 42, b);
    cr_expect_arr_eq(a, b, sizeof a, "the same seed gives the same samples");
    qa_rng_free(r);
    qa_clf_free(&c);
    qa_dit_free(&m);
}
