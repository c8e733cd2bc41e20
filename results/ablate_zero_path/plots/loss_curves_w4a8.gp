# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/ablate_zero_path/plots/loss_curves_w4a8' 'Fine-tuning loss at w4a8: mean and 95% CI over 5 seeds (band)' 'training loss (moving average of 20 steps)' '[0:0.2]' '1:1 1:2' '1 1'
