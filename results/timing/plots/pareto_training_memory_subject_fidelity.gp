# Drawn by `qadapt plot` with the template pareto.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'pareto.gp' 'results/timing/plots/pareto_training_memory_subject_fidelity' 'subject fidelity against training memory: mean and 95% CI over 5 seeds; dashed: the Pareto front' 'training memory of the adapted layers (MiB: frozen + trainable + gradients + optimizer)' 'subject fidelity: evaluator-feature cosine to the item images' '[0:1.05]' '6' '1 2 2 3 3 3' '1 2 3 2 4 3'
