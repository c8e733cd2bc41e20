/* The harness's "new visual style": horizontal stripes with a period of 4 pixels. Rows with
 * y mod 4 in {2, 3} are darkened to 35% of their intensity (background, -1, stays -1), so a
 * styled garment keeps its shape (content) and gains a texture the plain data never has.
 *
 * Style score of an image: with p = (x + 1) / 2 in [0, 1], for each of the 4 phases f compute
 * the contrast 1 - mean(p on rows (y - f) mod 4 in {2,3}) / mean(p on the other rows); the score is
 * the largest contrast over the phases divided by 0.65 (the contrast of a perfectly styled
 * image), so about 1 for styled images and near 0 for plain ones. */
#include "datasets/dataset.h"

#define STRIPE_DARK QA_STYLE_STRIPE_DARK

void qa_style_stripes(float *x, int n, int side) {
    for (int i = 0; i < n; i++)
        for (int y = 0; y < side; y++) {
            if ((y & 3) < 2) continue;
            float *row = x + ((size_t)i * side + y) * side;
            for (int k = 0; k < side; k++) {
                float p = 0.5f * (row[k] + 1.0f);
                row[k] = 2.0f * p * STRIPE_DARK - 1.0f;
            }
        }
}

double qa_style_score(const float *x, int side) {
    double best = 0;
    for (int f = 0; f < 4; f++) {
        double bright = 0, dark = 0;
        int nb = 0, nd = 0;
        for (int y = 0; y < side; y++) {
            int is_dark = ((y - f + 4) & 3) >= 2;
            for (int k = 0; k < side; k++) {
                double p = 0.5 * (x[(size_t)y * side + k] + 1.0);
                if (is_dark) { dark += p; nd++; } else { bright += p; nb++; }
            }
        }
        bright /= nb;
        dark /= nd;
        if (bright < 0.02) continue; /* an empty image has no style */
        double c = 1.0 - dark / bright;
        best = c > best ? c : best;
    }
    return best / (1.0 - STRIPE_DARK);
}
