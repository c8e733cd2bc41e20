# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/efficiency/plots/bits_prompt_fidelity' 'Bit sweep of prompt fidelity: mean and 95% CI over 5 seeds' 'prompt fidelity: evaluator p(asked class)' '[0:1.05]' '[3:11]' '(4, 8, ''fp'' 10)' '19' '3'
