#include "harness/schema.h"

#include <math.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/artifact.h"
#include "harness/record.h"
#include "harness/runs.h"

const char *const qa_run_object_suffix[QA_OBJ_COUNT] = {
    [QA_OBJ_ROOT] = "", [QA_OBJ_RUN] = "", [QA_OBJ_EVAL] = "/eval/", [QA_OBJ_MEMORY] = "/memory", [QA_OBJ_TIMING] = "/timing",
};

/* ---- metrics ---- */

/* One row per metric: its MET_* index, attribute name, table title, axis label, LaTeX heading,
 * CSV column stem, better direction, decimals in the tables and in compare / the paper layout.
 * Expanded into qa_metrics and into the parallel arrays the plot units index. */
#define QA_METRIC_ROWS(ROW)                                                                                                \
    ROW(MET_LOSS, "heldout_loss", "held-out loss", "held-out denoising loss of the deployed model (lower is better)",     \
        "held-out loss", "heldout_loss", QA_BETTER_LOWER, 0, HUGE_VAL, 5, 5)                                              \
    ROW(MET_SUBJECT, "subject_fidelity", "subject fidelity", "subject fidelity: evaluator-feature cosine to the item images", \
        "subject", "subject_fidelity", QA_BETTER_HIGHER, -1, 1, 4, 4)                                                     \
    ROW(MET_PROMPT, "prompt_fidelity", "prompt fidelity", "prompt fidelity: evaluator p(asked class)", "prompt",          \
        "prompt_fidelity", QA_BETTER_HIGHER, 0, 1, 4, 4)                                                                  \
    ROW(MET_DIVERSITY, "diversity", "diversity", "diversity: mean pairwise feature distance of samples", "diversity",     \
        "diversity", QA_BETTER_HIGHER, 0, 2, 4, 4)                                                                        \
    ROW(MET_PRIOR, "prior_preservation", "prior preservation",                                                            \
        "prior preservation: class samples still classified as their class", "prior", "prior_preservation",              \
        QA_BETTER_HIGHER, 0, 1, 3, 4)                                                                                     \
    ROW(MET_STYLE, "style_score", "style",                                                                                \
        "style score: the samples' stripe contrast, 1 for the style's own (0 to 1.54: black dark rows)", "style",        \
        "style", QA_BETTER_HIGHER, 0, QA_STYLE_SCORE_MAX, 3, 4)                                                           \
    ROW(MET_FID, "fid", "FID", "FID against the styled test set (evaluator features; lower is better)", "FID", "fid",     \
        QA_BETTER_LOWER, 0, HUGE_VAL, 2, 2)                                                                               \
    ROW(MET_FLOOR, "subject_floor", "subject floor",                                                                      \
        "subject fidelity floor: the FP base's own samples of the item's class, same noise", "floor", "subject_floor",    \
        QA_BETTER_NONE, -1, 1, 4, 4)                                                                                      \
    ROW(MET_GAIN, "subject_gain", "gain over floor", "subject fidelity minus its floor (the base's class samples)",       \
        "gain", "subject_gain", QA_BETTER_HIGHER, -2, 2, 4, 4)                                                            \
    ROW(MET_IDENT, "identification", "identification",                                                                   \
        "identification: share of samples closer to this item than to other items of its class", "ident.",               \
        "identification", QA_BETTER_HIGHER, 0, 1, 3, 4)                                                                   \
    ROW(MET_PRIOR_DIST, "prior_distance", "prior distance",                                                               \
        "prior distance: mean feature distance to the base's class samples under the same noise (lower is better)",       \
        "prior dist.", "prior_distance", QA_BETTER_LOWER, 0, 2, 4, 4)

#define METRIC_ENTRY(id, name_, title_, axis_, tex_, csv_, better_, lo_, hi_, table_, detail_)                            \
    [id] = {.name = name_, .title = title_, .axis = axis_, .tex = tex_, .csv = csv_, .better = better_, .lo = lo_,        \
            .hi = hi_, .table_digits = table_, .detail_digits = detail_},
#define METRIC_NAME(id, name_, ...) [id] = name_,
#define METRIC_TITLE(id, name_, title_, ...) [id] = title_,
#define METRIC_AXIS(id, name_, title_, axis_, ...) [id] = axis_,
#define METRIC_LOWER(id, name_, title_, axis_, tex_, csv_, better_, ...) [id] = (better_) == QA_BETTER_LOWER,

const qa_metric qa_metrics[N_MET] = {QA_METRIC_ROWS(METRIC_ENTRY)};
const char *const qa_met_names[N_MET] = {QA_METRIC_ROWS(METRIC_NAME)};
const char *const qa_met_titles[N_MET] = {QA_METRIC_ROWS(METRIC_TITLE)};
const char *const qa_met_axis[N_MET] = {QA_METRIC_ROWS(METRIC_AXIS)};
const int qa_met_lower_better[N_MET] = {QA_METRIC_ROWS(METRIC_LOWER)};

/* ---- the fields of a run file ---- */

#define AT(type, kind, member) {kind, offsetof(type, member)}
#define PROV(kind, member) AT(qa_record_provenance, kind, member)
#define RUN(kind, member) AT(qa_record_run, kind, member)
#define MERGE(kind, member) AT(qa_record_merge, kind, member)
#define KERNELS(kind, member) AT(qa_record_kernels, kind, member)
#define EVAL(kind, member) AT(qa_record_eval, kind, member)
#define COSTS(kind, member) AT(qa_record_costs, kind, member)
#define ART(kind, member) AT(qa_artifact_size, kind, member)
#define READ(kind, member) AT(qa_run_record, kind, member)
#define READ_EVAL(kind, member) AT(qa_run_eval, kind, member)
#define NUM QA_VAL_F64
#define INT QA_VAL_INT
#define LONG QA_VAL_LONG
#define TEXT QA_VAL_STR

/* In the order the writer writes them (each step's fields together). */
const qa_run_field qa_run_fields[] = {
    /* "/": provenance */
    {.name = QA_RUN_FORMAT_ATTR, .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(NUM, format_version),
     .to = READ(INT, format_version), .absent = 1, .label = "run file format version"},
    {.name = "harness_version", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, harness_version),
     .to = READ(TEXT, provenance.harness_version), .label = "harness version"},
    {.name = "git_commit", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, git_commit),
     .to = READ(TEXT, provenance.git_commit), .label = "git commit"},
    {.name = "recipe", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, recipe), .to = READ(TEXT, provenance.recipe),
     .label = "recipe text"},
    {.name = "recipe_path", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, recipe_path),
     .to = READ(TEXT, provenance.recipe_path), .label = "recipe file"},
    {.name = "created", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, created), .to = READ(TEXT, provenance.created),
     .unit = "UTC", .label = "created"},
    {.name = "host_cpu", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, host_cpu),
     .to = READ(TEXT, provenance.host_cpu), .label = "host CPU"},
    {.name = "host_cores", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(NUM, host_cores),
     .to = READ(NUM, provenance.host_cores), .unit = "cores", .label = "host cores"},
    {.name = "onednn", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, onednn), .to = READ(TEXT, provenance.onednn),
     .label = "oneDNN version"},
    {.name = "hdf5", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(TEXT, hdf5), .to = READ(TEXT, provenance.hdf5),
     .label = "HDF5 version"},
    {.name = "seed", .object = QA_OBJ_ROOT, .step = QA_STEP_PROVENANCE, .from = PROV(NUM, seed), .to = READ(NUM, provenance.seed),
     .label = "seed"},
    {.name = "onednn_kernels", .object = QA_OBJ_ROOT, .step = QA_STEP_END, .from = KERNELS(TEXT, onednn_kernels),
     .to = READ(TEXT, provenance.onednn_kernels), .label = "oneDNN kernels used"},
    {.name = "onednn_reference_kernels", .object = QA_OBJ_ROOT, .step = QA_STEP_END, .from = KERNELS(NUM, reference_kernels),
     .to = READ(NUM, provenance.reference_kernels), .unit = "kernels", .label = "slow reference kernels"},
    /* /runs/<id>: the run's axes, its merge and its status */
    {.name = "method", .required = 1, .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(TEXT, method),
     .to = READ(TEXT, method), .label = "method"},
    {.name = "bits", .required = 1, .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(TEXT, bits), .to = READ(TEXT, bits),
     .label = "bits"},
    {.name = "w_bits", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, w_bits), .to = READ(INT, w_bits),
     .unit = "bits", .label = "weight bits"},
    {.name = "a_bits", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, a_bits), .to = READ(INT, a_bits),
     .unit = "bits", .label = "activation bits"},
    {.name = "rank", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, rank), .to = READ(INT, rank), .label = "rank"},
    {.name = "seed", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(LONG, seed), .to = READ(LONG, seed), .label = "seed"},
    {.name = "task", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(TEXT, task), .to = READ(TEXT, task),
     .absent_text = "subject", .label = "task"},
    {.name = "objective", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(TEXT, objective), .to = READ(TEXT, objective),
     .label = "objective"},
    {.name = "dtype", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(TEXT, dtype), .to = READ(TEXT, dtype),
     .absent_text = "f32", .label = "training dtype"},
    {.name = "item_class", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, item_class), .to = READ(INT, item_class),
     .absent = -1, .label = "item class"},
    {.name = "slot", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, slot), .to = READ(INT, slot), .absent = -1,
     .label = "bound class slot"},
    {.name = "method_version", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .from = RUN(INT, method_version),
     .to = READ(INT, method_version), .label = "method version"},
    /* the rate the run trained at: written with the run's options (qa_run_rate_attrs), so no
     * struct member (from QA_VAL_NONE); NaN in files older than the tuning stage */
    {.name = "learning_rate", .object = QA_OBJ_RUN, .step = QA_STEP_BEGIN, .to = READ(NUM, learning_rate), .absent = NAN,
     .label = "learning rate"},
    {.name = "status", .required = 1, .object = QA_OBJ_RUN, .step = QA_STEP_STATUS, .to = READ(TEXT, status), .label = "status"},
    {.name = "fail_reason", .object = QA_OBJ_RUN, .step = QA_STEP_DIVERGED, .from = AT(qa_record_failure, TEXT, reason),
     .to = READ(TEXT, fail_reason), .label = "why it stopped"},
    {.name = "fail_step", .object = QA_OBJ_RUN, .step = QA_STEP_DIVERGED, .from = AT(qa_record_failure, LONG, step),
     .to = READ(LONG, fail_step), .unit = "steps", .label = "stopped at step"},
    {.name = "merge_arithmetic", .object = QA_OBJ_RUN, .step = QA_STEP_MERGE, .from = MERGE(TEXT, merge_arithmetic),
     .to = READ(TEXT, merge), .label = "merge arithmetic"},
    {.name = "needs_ptq", .object = QA_OBJ_RUN, .step = QA_STEP_MERGE, .from = MERGE(INT, needs_ptq), .to = READ(INT, needs_ptq),
     .label = "PTQ needed"},
    {.name = "method_note", .object = QA_OBJ_RUN, .step = QA_STEP_MERGE, .from = MERGE(TEXT, method_note),
     .written_if = MERGE(TEXT, method_note), .to = READ(TEXT, method_note), .label = "method note"},
    {.name = "method_notes", .object = QA_OBJ_RUN, .step = QA_STEP_MERGE, .from = MERGE(TEXT, method_notes),
     .written_if = MERGE(TEXT, method_note), .to = READ(TEXT, method_notes), .label = "method notes per layer"},
    {.name = "int8_kernel_layers", .object = QA_OBJ_RUN, .step = QA_STEP_INT8, .from = KERNELS(INT, int8_layers),
     .to = READ(INT, int8_kernel_layers), .unit = "layers", .label = "layers on the integer kernels"},
    {.name = "deploy_kernel", .object = QA_OBJ_RUN, .step = QA_STEP_INT8, .from = KERNELS(TEXT, deploy_kernel),
     .to = READ(TEXT, deploy_kernel), .absent_text = "", .label = "kernel of the adapted layers"},
    /* /runs/<id>/eval/<variant>: the deployed model's scores */
    {.metric = 1 + MET_LOSS, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, heldout_loss),
     .to = READ_EVAL(NUM, heldout_loss)},
    {.metric = 1 + MET_SUBJECT, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, subject_fidelity),
     .written_if = EVAL(NUM, subject_fidelity), .to = READ_EVAL(NUM, subject_fidelity)},
    {.metric = 1 + MET_STYLE, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, style_score),
     .to = READ_EVAL(NUM, style_score)},
    {.name = "heldout_loss_se", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, heldout_loss_se),
     .to = READ_EVAL(NUM, heldout_loss_se), .label = "held-out loss standard error"},
    {.name = "prompt_fidelity_se", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, prompt_fidelity_se),
     .to = READ_EVAL(NUM, prompt_fidelity_se), .label = "prompt fidelity standard error"},
    {.name = "subject_fidelity_se", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, subject_fidelity_se),
     .written_if = EVAL(NUM, subject_fidelity), .to = READ_EVAL(NUM, subject_fidelity_se), .label = "subject fidelity standard error"},
    {.metric = 1 + MET_FID, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, fid), .written_if = EVAL(NUM, fid),
     .to = READ_EVAL(NUM, fid), .absent = -1},
    {.metric = 1 + MET_PROMPT, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, prompt_fidelity),
     .to = READ_EVAL(NUM, prompt_fidelity)},
    {.metric = 1 + MET_DIVERSITY, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, diversity),
     .to = READ_EVAL(NUM, diversity)},
    {.metric = 1 + MET_PRIOR, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, prior_preservation),
     .written_if = EVAL(NUM, prior_preservation), .to = READ_EVAL(NUM, prior_preservation), .absent = -1},
    /* the protocol's metrics with a floor (subject) and the continuous prior distance */
    {.metric = 1 + MET_FLOOR, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, subject_floor),
     .written_if = EVAL(NUM, subject_floor), .to = READ_EVAL(NUM, subject_floor), .absent = -1},
    {.metric = 1 + MET_GAIN, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, subject_gain),
     .written_if = EVAL(NUM, subject_floor), .to = READ_EVAL(NUM, subject_gain), .absent = NAN},
    {.metric = 1 + MET_IDENT, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, identification),
     .written_if = EVAL(NUM, identification), .to = READ_EVAL(NUM, identification), .absent = -1},
    {.metric = 1 + MET_PRIOR_DIST, .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, prior_distance),
     .written_if = EVAL(NUM, prior_distance), .to = READ_EVAL(NUM, prior_distance), .absent = -1},
    {.name = "bits_per_weight", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, bits_per_weight),
     .to = READ_EVAL(NUM, bits_per_weight), .unit = "bits", .label = "bits/weight", .better = QA_BETTER_LOWER},
    {.name = "eval_seconds", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, eval_seconds),
     .to = READ_EVAL(NUM, eval_seconds), .unit = "s", .label = "evaluation time", .better = QA_BETTER_LOWER},
    {.name = "sampling_ms_per_image", .object = QA_OBJ_EVAL, .step = QA_STEP_VARIANT, .from = EVAL(NUM, sampling_ms_per_image),
     .to = READ_EVAL(NUM, sampling_ms), .unit = "ms", .label = "sampling ms/img", .better = QA_BETTER_LOWER},
    /* /runs/<id>/memory: bytes of the adapted layers by category, the process, the artifact */
    {.name = "artifact_file_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_ARTIFACT, .from = ART(NUM, file_bytes),
     .to = READ(NUM, artifact_file_bytes), .unit = "B", .label = "artifact on disk", .better = QA_BETTER_LOWER},
    {.name = "artifact_payload_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_ARTIFACT, .from = ART(NUM, payload_bytes),
     .to = READ(NUM, artifact_payload_bytes), .unit = "B", .label = "artifact payload", .better = QA_BETTER_LOWER},
    {.name = "artifact_float_layers", .object = QA_OBJ_MEMORY, .step = QA_STEP_ARTIFACT, .from = ART(INT, float_layers),
     .to = READ(INT, artifact_float_layers), .unit = "layers", .label = "artifact layers stored as float"},
    {.name = "artifact_weights", .object = QA_OBJ_MEMORY, .step = QA_STEP_ARTIFACT, .from = ART(NUM, weights),
     .to = READ(NUM, artifact_weights), .unit = "weights", .label = "artifact weights"},
    {.name = "frozen_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, frozen_bytes),
     .to = READ(NUM, frozen_bytes), .unit = "B", .label = "frozen", .better = QA_BETTER_LOWER},
    {.name = "trainable_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, trainable_bytes),
     .to = READ(NUM, trainable_bytes), .unit = "B", .label = "trainable", .better = QA_BETTER_LOWER},
    {.name = "gradient_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, gradient_bytes),
     .to = READ(NUM, gradient_bytes), .unit = "B", .label = "gradients", .better = QA_BETTER_LOWER},
    {.name = "optimizer_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, optimizer_bytes),
     .to = READ(NUM, optimizer_bytes), .unit = "B", .label = "optimizer", .better = QA_BETTER_LOWER},
    {.name = "deployed_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, deployed_bytes),
     .to = READ(NUM, deployed_bytes), .unit = "B", .label = "deployed", .better = QA_BETTER_LOWER},
    /* the whole model's activations at the largest batch it was created for (not per method) */
    {.name = "activation_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, activation_bytes),
     .to = READ(NUM, activation_bytes), .unit = "B", .label = "model activations", .better = QA_BETTER_LOWER},
    {.name = "activation_batch", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, activation_batch),
     .to = READ(NUM, activation_batch), .unit = "images", .label = "activation batch"},
    {.name = "peak_rss_bytes", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(NUM, peak_rss_bytes),
     .to = READ(NUM, peak_rss_bytes), .unit = "B", .label = "process peak RSS", .better = QA_BETTER_LOWER},
    {.name = "peak_rss_scope", .object = QA_OBJ_MEMORY, .step = QA_STEP_FINISH, .from = COSTS(TEXT, peak_rss_scope),
     .to = READ(TEXT, peak_rss_scope), .label = "peak RSS measured over"},
    /* /runs/<id>/timing */
    {.name = "train_step_median_ms", .object = QA_OBJ_TIMING, .step = QA_STEP_FINISH, .from = COSTS(NUM, train_step_median_ms),
     .to = READ(NUM, step_ms), .unit = "ms", .label = "train step ms", .better = QA_BETTER_LOWER},
    {.name = "train_seconds", .object = QA_OBJ_TIMING, .step = QA_STEP_FINISH, .from = COSTS(NUM, train_seconds),
     .to = READ(NUM, train_seconds), .unit = "s", .label = "training time", .better = QA_BETTER_LOWER},
    {.name = "merge_seconds", .object = QA_OBJ_TIMING, .step = QA_STEP_FINISH, .from = COSTS(NUM, merge_seconds),
     .to = READ(NUM, merge_seconds), .unit = "s", .label = "merge s", .better = QA_BETTER_LOWER},
};
#undef NUM
#undef INT
#undef LONG
#undef TEXT
const int qa_n_run_fields = (int)(sizeof qa_run_fields / sizeof qa_run_fields[0]);

int qa_run_field_is_text(const qa_run_field *f) { return f->to.kind == QA_VAL_STR; }

const char *qa_run_field_name(const qa_run_field *f) { return f->metric ? qa_metrics[f->metric - 1].name : f->name; }

const char *qa_run_field_label(const qa_run_field *f) { return f->metric ? qa_metrics[f->metric - 1].title : f->label; }

qa_better qa_run_field_better(const qa_run_field *f) { return f->metric ? qa_metrics[f->metric - 1].better : f->better; }

const qa_run_field *qa_run_field_find(qa_run_object obj, const char *name) {
    for (int i = 0; i < qa_n_run_fields; i++)
        if (qa_run_fields[i].object == obj && !strcmp(qa_run_field_name(&qa_run_fields[i]), name)) return &qa_run_fields[i];
    return NULL;
}

const qa_run_field *qa_metric_field(int m) {
    for (int i = 0; i < qa_n_run_fields; i++)
        if (qa_run_fields[i].metric == 1 + m) return &qa_run_fields[i];
    QA_ASSERT(!"every metric has a field in qa_run_fields");
    return NULL;
}

const char *qa_metric_arrow(int m) {
    return qa_metrics[m].better == QA_BETTER_NONE ? "" : qa_metrics[m].better == QA_BETTER_LOWER ? "↓" : "↑";
}

void qa_metric_interval(int m, double mean, double ci, double *lo, double *hi) {
    *lo = mean - ci;
    *hi = mean + ci;
    if (*lo < qa_metrics[m].lo) *lo = qa_metrics[m].lo;
    if (*hi > qa_metrics[m].hi) *hi = qa_metrics[m].hi;
}

int qa_run_format_check(const char *path, double version, qa_error *err) {
    if (version == 0) return QA_OK; /* no attribute: version 1 */
    if (!(version >= 1) || version != floor(version))
        return qa_fail(err, QA_ERR_INPUT, "%s: unknown run file format version %g (this build reads versions 1 to %d)", path,
                       version, QA_RUN_FORMAT_VERSION);
    if (version > QA_RUN_FORMAT_VERSION)
        return qa_fail(err, QA_ERR_INPUT,
                       "%s: run file format version %g is newer than this build reads (version %d): use a newer qadapt", path,
                       version, QA_RUN_FORMAT_VERSION);
    return QA_OK;
}
