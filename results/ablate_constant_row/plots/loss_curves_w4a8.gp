# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/ablate_constant_row/plots/loss_curves_w4a8' 'Fine-tuning loss at w4a8: one run per curve, no band' 'training loss (moving average of 20 steps)\n(axis from 0.055, not 0)' '[0.055:0.12]' '1:1' '0'
