# Drawn by `qadapt plot` with the template pareto.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'pareto.gp' 'results/efficiency/plots/pareto_storage_subject_fidelity' 'subject fidelity against storage: one run per cell, no interval; dashed: the Pareto front' 'deployed bits per weight of the adapted layers' 'subject fidelity: evaluator-feature cosine to the item images' '[0:1.05]' '15' '1 1 2 2 3 3 4 4 4 5 5 6 6 6 6' '1 2 1 2 1 2 3 4 5 1 2 3 4 6 5'
