# Drawn by `qadapt plot` with the template bits.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bits.gp' 'results/table_domain/plots/bits_fid' 'Bit sweep of FID: mean and 95% CI over 3 seeds' 'FID against the styled test set (evaluator features; lower is better)' '[*:*]' '[3:11]' '(4, 8, ''fp'' 10)' '7' '2'
