# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/quickstart/plots/loss_curves_w8a8' 'Fine-tuning loss at w8a8: mean and 95% CI over 2 seeds (band)\nintlora-mul and lora coincide (largest gap 0.00021)' 'training loss (moving average of 20 steps)' '[0:0.17]' '1:1 2:1 3:1' '1 0 1'
