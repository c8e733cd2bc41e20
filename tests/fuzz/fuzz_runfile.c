/* libFuzzer target for the run-file reader (runs.c over results.c): any bytes, written to a
 * temporary file and loaded as a run file, must load or give a clean bad-input error naming the
 * file, never a crash, a sanitizer report or a hang. What loads is read through to the end of
 * every array it declares, so a count the loader did not check shows as an overflow. Seeds:
 * small run files of the recorder (runfile_seeds.c) and the committed quickstart runs. Build
 * and run: `make fuzz FUZZ_TARGET=runfile` (see the README's testing section). Only our code is
 * instrumented: libhdf5 is the system's, so its coverage does not guide the fuzzer, and a crash
 * inside it is reported with its stack as any other. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/runs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

/* Sum everything a loaded record says it holds (ASan watches each read). */
static double touch(const qa_run_record *r) {
    double s = (double)strlen(r->id) + (double)strlen(r->axes) + (double)strlen(r->status);
    for (int i = 0; i < r->n_train * 5; i++) s += r->train[i];
    for (int v = 0; v < r->n_eval; v++) {
        s += (double)strlen(r->eval[v].variant);
        for (int i = 0; i < r->eval[v].n_images; i++) s += r->eval[v].heldout_per_image[i];
    }
    for (int k = 0; k < r->n_stats; k++) s += (double)strlen(r->stat_name[k]) + r->stat_value[k];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/qa-fuzz-runfile-%ld.h5", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    qa_run_record rec;
    qa_error err = {0, ""};
    int rc = qa_runs_load_file(path, &rec, &err);
    if (rc == QA_OK) {
        volatile double sink = touch(&rec);
        (void)sink;
        qa_runs_record_free(&rec);
        return 0;
    }
    /* an error must be bad input that names the file */
    if (rc != QA_ERR_INPUT || strstr(err.msg, path) == NULL) {
        fprintf(stderr, "unclean error (rc %d): %s\n", rc, err.msg);
        abort();
    }
    return 0;
}
