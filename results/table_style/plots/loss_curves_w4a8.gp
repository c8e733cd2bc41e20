# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/table_style/plots/loss_curves_w4a8' 'Fine-tuning loss at w4a8: mean over 10 seeds; 10 curves, so no CI bands (median 95% CI: +-0.0064)' 'training loss (moving average of 20 steps)\n(axis from 0.025, not 0)' '[0.025:0.084]' '1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 1:2 2:2' '0 0 0 0 0 0 0 0 0 0'
