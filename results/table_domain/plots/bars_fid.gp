# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/table_domain/plots/bars_fid' 'FID: mean and 95% CI over 3 seeds' 'FID against the styled test set (evaluator features; lower is better)' '[0:*]' '9'
