# Drawn by `qadapt plot` with the template forest.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'forest.gp' 'results/quickstart/plots/forest' 'Each cell minus lora w8a8 INT (+PTQ): mean and 95% CI of the differences paired by seed (n = 2)' '3' '"subject fidelity: higher is better" "prompt fidelity: higher is better" "held-out loss: lower is better"' '11' '37'
