# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/efficiency/plots/loss_curves_w8a8' 'Fine-tuning loss at w8a8: one run per curve, no band' '6'
