# Drawn by `qadapt plot` with the template pareto.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'pareto.gp' 'results/fig_bits/plots/pareto_storage_subject_fidelity' 'subject fidelity against storage: mean and 95% CI over 3 seeds; dashed: the Pareto front' 'deployed bits per weight of the adapted layers' 'subject fidelity: evaluator-feature cosine to the item images' '[0:1.05]' '23' '1 1 1 1 1 2 2 2 2 2 3 3 3 3 3 3 4 4 4 4 4 4 4' '1 2 3 4 5 1 2 3 4 5 6 7 8 9 10 11 6 7 8 9 12 10 11'
