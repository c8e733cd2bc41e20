# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/table_domain/plots/bars_style_score' 'style: mean and 95% CI over 3 seeds' 'style score: share of samples the style probe calls striped' '[0:1.05]' '9'
