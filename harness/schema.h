/* The run file's schema: one const table of every field a run file holds (its HDF5 object and
 * attribute name, its type, the record step that writes it and from which value, where the
 * reader puts it, its unit, report label and better direction), and the table of metrics the
 * report, compare, the cell summaries and the plots show. The writer (record.c), the reader
 * (runs.c), the cells and the report iterate these tables instead of naming fields.
 *
 * A run file records its format version as the root attribute "format_version"; a file
 * without it is version 1 (every file written before the attribute existed). */
#ifndef QA_SCHEMA_H
#define QA_SCHEMA_H

#include <stddef.h>

#include "harness/util.h"

#define QA_RUN_FORMAT_VERSION 2
#define QA_RUN_FORMAT_ATTR "format_version"

/* The HDF5 object a field is an attribute of, relative to the run group /runs/<id>. */
typedef enum {
    QA_OBJ_ROOT,   /* "/": provenance */
    QA_OBJ_RUN,    /* /runs/<id>: axes and status */
    QA_OBJ_EVAL,   /* /runs/<id>/eval/<variant>: one deploy variant's scores */
    QA_OBJ_MEMORY, /* /runs/<id>/memory */
    QA_OBJ_TIMING, /* /runs/<id>/timing */
    QA_OBJ_COUNT
} qa_run_object;
extern const char *const qa_run_object_suffix[QA_OBJ_COUNT]; /* "" | "/eval/" | "/memory" | ... */

/* The record call (record.h) that writes a field, and so the struct its value comes from. */
typedef enum {
    QA_STEP_PROVENANCE, /* qa_record_begin: qa_record_provenance */
    QA_STEP_BEGIN,    /* qa_record_begin: qa_record_run */
    QA_STEP_DIVERGED, /* qa_record_diverged: qa_record_failure */
    QA_STEP_MERGE,    /* qa_record_merge_info: qa_record_merge */
    QA_STEP_INT8,     /* qa_record_int8_layers: qa_record_kernels */
    QA_STEP_VARIANT,  /* qa_record_variant: qa_record_eval */
    QA_STEP_ARTIFACT, /* qa_record_artifact: qa_artifact_size */
    QA_STEP_FINISH,   /* qa_record_finish: qa_record_costs */
    QA_STEP_END,      /* qa_record_end: qa_record_kernels */
    QA_STEP_STATUS,   /* the run's life cycle: "running", "diverged", "done" (no struct) */
    QA_STEP_COUNT
} qa_record_step;

/* The C type of a value in a struct; strings are stored as HDF5 strings, numbers as f64. */
typedef enum { QA_VAL_NONE, QA_VAL_F64, QA_VAL_INT, QA_VAL_LONG, QA_VAL_STR } qa_value_kind;

/* A value in a struct: its C type and offset. Reader strings are allocated (char *). */
typedef struct {
    qa_value_kind kind;
    size_t offset;
} qa_value_slot;

typedef enum { QA_BETTER_NONE, QA_BETTER_LOWER, QA_BETTER_HIGHER } qa_better;

typedef struct {
    const char *name;        /* the attribute's name (NULL for a metric: its qa_metrics name) */
    int metric;              /* 1 + its MET_* index for a metric of the eval object, else 0 */
    int required;            /* a file without it is not a run file */
    qa_run_object object;
    qa_record_step step;
    qa_value_slot from;      /* in the step's struct */
    /* written only when this value of the step's struct is measured (a number >= 0, a
     * non-empty string); kind QA_VAL_NONE: always written */
    qa_value_slot written_if;
    qa_value_slot to;        /* in qa_run_record, or qa_run_eval for QA_OBJ_EVAL */
    double absent;           /* what the reader stores when a file lacks the field */
    const char *absent_text; /* the same for a string (NULL: "") */
    const char *unit;        /* "" for a pure number or text */
    const char *label;       /* how a report names it (a metric: its title) */
    qa_better better;        /* a metric: its direction */
} qa_run_field;

extern const qa_run_field qa_run_fields[];
extern const int qa_n_run_fields;

/* The HDF5 file type of a field: 1 for a string, 0 for f64. */
int qa_run_field_is_text(const qa_run_field *f);
/* Its attribute name, report label and direction (a metric's come from qa_metrics). */
const char *qa_run_field_name(const qa_run_field *f);
const char *qa_run_field_label(const qa_run_field *f);
qa_better qa_run_field_better(const qa_run_field *f);
/* The field named name of object obj; NULL if the schema has none. */
const qa_run_field *qa_run_field_find(qa_run_object obj, const char *name);

/* ---- metrics: the deployed model's scores that the tables, compare and the plots show ---- */

enum {
    MET_LOSS, MET_SUBJECT, MET_PROMPT, MET_DIVERSITY, MET_PRIOR, MET_STYLE, MET_FID,
    MET_FLOOR, MET_GAIN, MET_IDENT, MET_PRIOR_DIST, /* the protocol's: absent from older run files */
    N_MET
};

typedef struct {
    const char *name;        /* its attribute under /runs/<id>/eval/<variant> (a qa_run_fields entry) */
    const char *title;       /* short table heading */
    const char *axis;        /* an axis label saying what the number means */
    const char *tex;         /* LaTeX heading (before the arrow) */
    const char *csv;         /* CSV column stem: <csv>_mean, <csv>_ci95 */
    qa_better better;        /* QA_BETTER_NONE: a reference value (no best, no arrow) */
    double lo, hi;           /* its range: intervals are clipped to it (+-HUGE_VAL: unbounded) */
    int table_digits;        /* decimals in the report's tables */
    int detail_digits;       /* decimals in compare and the paper layout */
} qa_metric;

extern const qa_metric qa_metrics[N_MET];
/* The same as parallel arrays, for the plot units that index them. */
extern const char *const qa_met_names[N_MET];
extern const char *const qa_met_titles[N_MET];
extern const char *const qa_met_axis[N_MET];
extern const int qa_met_lower_better[N_MET];

/* The run field behind metric m (never NULL). */
const qa_run_field *qa_metric_field(int m);
/* "↓" or "↑" ("" for a reference value) */
const char *qa_metric_arrow(int m);

/* [mean - ci, mean + ci] clipped to metric m's range */
void qa_metric_interval(int m, double mean, double ci, double *lo, double *hi);

/* Check a file's format version (0: the file has no version attribute, i.e. version 1):
 * a version newer than this build reads, or below 1, is bad input naming the file and both. */
int qa_run_format_check(const char *path, double version, qa_error *err);

#endif
