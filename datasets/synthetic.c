#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/rng.h"

void qa_synthetic_images(qa_images *out, int n, int side, int n_classes, uint64_t seed) {
    memset(out, 0, sizeof *out);
    out->n = n; out->rows = side; out->cols = side;
    out->pixels = malloc((size_t)n * side * side);
    out->labels = malloc(sizeof(int) * n);
    qa_rng *r = qa_rng_new(qa_seed_for(seed, "synthetic"));
    for (int i = 0; i < n; i++) {
        int k = i % n_classes;
        out->labels[i] = k;
        double ang = 3.14159265 * k / n_classes;
        double cx = side / 2.0 + qa_rng_normal(r), cy = side / 2.0 + qa_rng_normal(r);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                double dx = x - cx, dy = y - cy;
                double dist = fabs(-sin(ang) * dx + cos(ang) * dy);
                double v = dist < 1.5 ? 230.0 : 10.0;
                v += 8.0 * qa_rng_normal(r);
                v = v < 0 ? 0 : (v > 255 ? 255 : v);
                out->pixels[((size_t)i * side + y) * side + x] = (uint8_t)v;
            }
    }
    qa_rng_free(r);
}
