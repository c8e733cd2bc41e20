# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/fig_bits/plots/bits_heldout_loss' 'Bit sweep of held-out loss: mean and 95% CI over 3 seeds' 'held-out denoising loss of the deployed model (lower is better)' '[*:*]' '[1:11]' '(2, 3, 4, 6, 8, ''fp'' 10)' '7' '2'
