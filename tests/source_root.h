/* The repository's root, for tests that read committed files (results/pretrained, experiments):
 * compiled in where the build defines QA_TEST_SOURCE_ROOT, else from $QA_SOURCE_ROOT. */
#ifndef QA_TEST_SOURCE_ROOT_H
#define QA_TEST_SOURCE_ROOT_H

#include <stdlib.h>

static inline const char *test_source_root(void) {
#ifdef QA_TEST_SOURCE_ROOT
    return QA_TEST_SOURCE_ROOT;
#else
    return getenv("QA_SOURCE_ROOT");
#endif
}

#endif
