/* Small, valid run files written by the run recorder itself (record.h): the starting points of
 * the run-file reader's fuzzers (tests/test_runfile_fuzz.c and fuzz_runfile.c). kind 0: a
 * finished run with an FP and an INT variant, method statistics, references and samples; kind 1:
 * a run that diverged at step 3. Values are fixed, so the same kind gives the same content. */
#ifndef QA_TEST_RUNFILE_SEED_H
#define QA_TEST_RUNFILE_SEED_H

#include <string.h>

#include "harness/record.h"

static inline int write_seed_run(const char *path, int kind, qa_error *err) {
    enum { N_SAMPLES = 2, N_HELDOUT = 4, N_ROWS = 6 };
    static float images[N_SAMPLES * 784];
    for (int i = 0; i < N_SAMPLES * 784; i++) images[i] = (float)((i * 37) % 200) / 100.0f - 1.0f;
    const qa_record_attr options[1] = {{"lora_bits", 4}};
    const char *id = kind ? "lora-w4a8-r2-s1" : "qlora-w4a8-r2-a1.5-s0";
    const qa_record_run run = {.id = id, .method = kind ? "lora" : "qlora", .bits = "w4a8", .task = "subject",
                               .objective = "task", .w_bits = 4, .a_bits = 8, .rank = 2, .seed = kind,
                               .item_class = 3, .slot = 10, .method_version = 1, .options = options, .n_options = 1,
                               .recipe_text = "[job]\nkind = adapt\n", .recipe_path = "seed.recipe",
                               .references = images, .n_references = N_SAMPLES};
    qa_record *rec;
    int rc = qa_record_begin(path, &run, &rec, err);
    if (rc) return rc;
    double rows[N_ROWS * 5];
    for (int s = 0; s < N_ROWS; s++) {
        double row[5] = {s, 1.0 / (s + 1), 1e-3, 0.5 + s, 0.01 * s};
        memcpy(rows + 5 * s, row, sizeof row);
    }
    rc = qa_record_train_rows(rec, rows, kind ? 3 : N_ROWS, err);
    if (!rc && kind) return qa_record_end(rec, qa_record_diverged(rec, "loss is NaN at step 3", 3, err), err);
    const char *stat_name[2] = {"alpha_mean", "clip_share"};
    const double stat_value[2] = {1.5, 0.02};
    const qa_record_merge merge = {"float", 1, "note", "note\nnote", 2, stat_name, stat_value};
    if (!rc) rc = qa_record_merge_info(rec, &merge, err);
    double per_image[N_HELDOUT] = {0.11, 0.12, 0.13, 0.14};
    for (int v = 0; v < 2 && !rc; v++) {
        const qa_record_eval ev = {.variant = v ? "int" : "fp", .heldout_loss = 0.125, .heldout_loss_se = 0.01,
                                   .subject_fidelity = 0.8, .subject_fidelity_se = 0.02, .prompt_fidelity = 0.9,
                                   .prompt_fidelity_se = 0.03, .style_score = 0.2, .diversity = 0.3, .fid = -1,
                                   .prior_preservation = 0.7, .bits_per_weight = v ? 4.25 : 32, .eval_seconds = 1,
                                   .sampling_ms_per_image = 2, .heldout_per_image = per_image, .n_heldout = N_HELDOUT,
                                   .samples = images, .n_samples = N_SAMPLES};
        rc = qa_record_variant(rec, &ev, err);
    }
    if (!rc) rc = qa_record_int8_layers(rec, 0, "f32", err);
    const qa_record_costs costs = {1e6, 1e4, 1e4, 2e4, 5e5, 3e5, 4, 1e8, "this run", 12.5, 3.0, 0.5};
    if (!rc) rc = qa_record_finish(rec, &costs, err);
    return qa_record_end(rec, rc, err);
}

#endif
