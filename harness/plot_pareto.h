/* Quality against a cost (training memory, or deployed storage): one point per deployed cell
 * with its 95% CI, and the Pareto front through the means: the points no other point beats on
 * both, cheaper or as cheap and better or as good. */
#ifndef QA_PLOT_PARETO_H
#define QA_PLOT_PARETO_H

#include "harness/cells.h"

/* pdir/pareto_{training_memory,storage}_<metric>.{dat,gp,png,svg} (storage: 1 for bits per
 * weight); nothing where fewer than two cells are deployed or every cell costs the same. */
int qa_plot_pareto(const char *pdir, const qa_cell *cells, int nc, int met, int storage, qa_error *err);

#endif
