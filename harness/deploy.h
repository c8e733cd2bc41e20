/* The deploy step of a run: merge every adapted layer into deployable weights (the method's
 * merge()), put a deploy variant in place in the model (the main deploy, PTQ'd to W bits when
 * the merge ends in float, or one of the method's extra variants), and write the artifact. */
#ifndef QA_DEPLOY_H
#define QA_DEPLOY_H

#include "harness/artifact.h"
#include "harness/model.h"
#include "harness/registry.h"

typedef struct {
    qa_deployed *layers;     /* [n_layers], in the order of the model's adapted slots */
    int n_layers;
    int needs_ptq;           /* the merge ends in float: PTQ to W bits deploys it */
    double bits_per_weight;  /* over all adapted layers, weighted by their size (32 with none) */
    double merge_seconds;    /* every layer's merge (a PTQ pass adds to it) */
    char *notes;             /* every adapted layer's note, one a line; NULL when the method has none */
    int n_stats;             /* the method's own measurements, pooled over layers: sum(num) / sum(den) */
    const char *stat_name[QA_MAX_DEPLOY_STATS];
    double stat_value[QA_MAX_DEPLOY_STATS];
} qa_deploy;

/* Merge every adapted layer of m. On failure d holds nothing to free. */
int qa_deploy_merge(qa_dit *m, qa_deploy *d, qa_error *err);
void qa_deploy_free(qa_deploy *d);
/* The merge arithmetic's name (qa_merge_names) and the first layer's note ("" when none). */
const char *qa_deploy_merge_name(const qa_deploy *d);
const char *qa_deploy_note(const qa_deploy *d);

/* Put the deployed weights in place: the main deploy (PTQ'd at ptq_bits when > 0), or with
 * extra >= 0 the method's extra variant of that index. */
void qa_deploy_set(qa_dit *m, const qa_deploy *d, int ptq_bits, int extra);

/* Write the deployed artifact to path and measure it. */
int qa_deploy_artifact(const char *path, const qa_dit *m, const qa_deploy *d, int ptq_bits, qa_artifact_size *size,
                       qa_error *err);

#endif
