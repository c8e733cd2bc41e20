/* Writes the seed run files of the run-file fuzzer into a folder: `runfile_seeds DIR`. */
#include <stdio.h>

#include "tests/fuzz/runfile_seed.h"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: runfile_seeds DIR\n"); return 2; }
    for (int kind = 0; kind < 2; kind++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%d.h5", argv[1], kind);
        qa_error err = {0, ""};
        if (write_seed_run(path, kind, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    }
    return 0;
}
