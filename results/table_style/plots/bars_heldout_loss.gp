# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/table_style/plots/bars_heldout_loss' 'held-out loss: mean and 95% CI over 10 seeds' 'held-out denoising loss of the deployed model\n(lower is better)' '[0:*]' 'w4a8 w8a8 fp' '1:1 2:1 3:1' '34'
