# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/fig_bits/plots/loss_curves_w6a8' 'Fine-tuning loss at w6a8: mean and 95% CI over 3 seeds (band)' '4'
