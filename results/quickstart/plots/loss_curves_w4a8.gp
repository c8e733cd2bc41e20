# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/quickstart/plots/loss_curves_w4a8' 'Fine-tuning loss at w4a8: mean over 2 seeds; no CI bands below 3 seeds (median 95% CI: +-0.17)' 'training loss (moving average of 20 steps)\n(axis from 0.046, not 0)' '[0.046:0.085]' '1:1 2:1 3:1' '0 0 0'
