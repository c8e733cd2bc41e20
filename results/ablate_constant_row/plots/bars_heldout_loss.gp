# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/ablate_constant_row/plots/bars_heldout_loss' 'held-out loss: one run per cell, no interval' 'held-out denoising loss of the deployed model\n(lower is better)' '[0:*]' 'w4a8' '1:1' '20'
