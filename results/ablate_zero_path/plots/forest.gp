# Drawn by `qadapt plot` with the template forest.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'forest.gp' 'results/ablate_zero_path/plots/forest' 'Each cell minus intlora-mul w4a8 none: mean and 95% CI of the differences paired by seed (n = 5)' '3' '"subject fidelity: higher is better" "prompt fidelity: higher is better" "held-out loss: lower is better"' '1' '25'
