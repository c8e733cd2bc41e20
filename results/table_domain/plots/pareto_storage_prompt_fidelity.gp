# Drawn by `qadapt plot` with the template pareto.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'pareto.gp' 'results/table_domain/plots/pareto_storage_prompt_fidelity' 'prompt fidelity against storage: mean and 95% CI over 3 seeds; dashed: the Pareto front' 'deployed bits per weight of the adapted layers' 'prompt fidelity: evaluator p(asked class)' '[0:1.05]' '11' '1 1 2 2 3 3 3 4 4 4 4' '1 2 1 2 3 4 5 3 4 6 5'
