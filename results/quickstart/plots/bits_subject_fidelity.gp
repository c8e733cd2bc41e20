# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/quickstart/plots/bits_subject_fidelity' 'Bit sweep of subject fidelity: mean and 95% CI over 2 seeds' 'subject fidelity:\nevaluator-feature cosine to the item images' '[0:1.05]' '[3:9]' '(4, 8)' '1:1 2:1 2:2 3:1 3:2 3:3 3:4' '7:0:'
