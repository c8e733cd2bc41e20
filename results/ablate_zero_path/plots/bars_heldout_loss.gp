# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/ablate_zero_path/plots/bars_heldout_loss' 'held-out loss: mean and 95% CI over 5 seeds' 'held-out denoising loss of the deployed model\n(lower is better)' '[0:*]' 'w4a8' '1:1' '20'
