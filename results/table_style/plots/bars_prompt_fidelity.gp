# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/table_style/plots/bars_prompt_fidelity' 'prompt fidelity: mean and 95% CI over 10 seeds' 'prompt fidelity: evaluator p(asked class)' '[0:1.05]' 'w4a8 w8a8 fp' '1:1 2:1 3:1' '34'
