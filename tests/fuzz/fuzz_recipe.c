/* libFuzzer target for the recipe parser: any bytes must parse or give a clean error with a
 * message, never a crash, a sanitizer report or a hang. Build and run: `make fuzz` (see the
 * README's testing section). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "harness/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qa_recipe *r = NULL;
    qa_error err = {0, ""};
    int rc = qa_recipe_parse_buffer("fuzz.recipe", (const char *)data, size, &r, &err);
    if (rc == QA_OK) {
        /* what a sweep reads first: the job kind and every grid axis */
        const char *const *vals;
        const char *axes[] = {"method", "bits", "rank", "seed", "vmc_alpha", "aux_dist", "vmc_stat"};
        (void)qa_recipe_str(r, "job", "kind");
        for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++) (void)qa_recipe_values(r, "adapt", axes[i], &vals);
        qa_recipe_free(r);
        return 0;
    }
    if (rc != QA_ERR_INPUT || err.msg[0] == 0 || r != NULL) abort(); /* an error must be bad input, explained */
    return 0;
}
