# Drawn by `qadapt plot` with the template samples.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'samples.gp' 'results/table_domain/plots/compare_seed0' 'Domain task (every class in a new style), seed 0: the same sampler noise in every row' '15' '8' '37'
