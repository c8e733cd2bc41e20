# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/efficiency/plots/bits_heldout_loss' 'Bit sweep of held-out loss: mean and 95% CI over 5 seeds' 'held-out denoising loss of the deployed model (lower is better)' '[*:*]' '[3:11]' '(4, 8, ''fp'' 10)' '19' '3'
