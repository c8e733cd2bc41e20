# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/quickstart/plots/bits_heldout_loss' 'Bit sweep of held-out loss: mean and 95% CI over 2 seeds' 'held-out denoising loss of the deployed model\n(lower is better)\n(axis from 0.024, not 0)' '[0.024:0.101]' '[3:9]' '(4, 8)' '1:1 2:1 2:2 3:1 3:2 3:3 3:4' '7:0:'
