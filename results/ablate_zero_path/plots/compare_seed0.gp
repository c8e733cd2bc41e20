# Drawn by `qadapt plot` with the template samples.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'samples.gp' 'results/ablate_zero_path/plots/compare_seed0' 'Item bound to a spare class slot, seed 0: the same sampler noise in every row' '3' '8' '25' 'sample'
