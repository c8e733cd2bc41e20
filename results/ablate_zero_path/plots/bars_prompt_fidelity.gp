# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/ablate_zero_path/plots/bars_prompt_fidelity' 'prompt fidelity: mean and 95% CI over 5 seeds' 'prompt fidelity: evaluator p(asked class)' '[0:1.05]' 'w4a8' '1:1' '20'
