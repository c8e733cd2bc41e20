# Drawn by `qadapt plot` with the template bars.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'bars.gp' 'results/table_style/plots/bars_style_score' 'style: mean and 95% CI over 10 seeds' 'style score: the samples'' stripe contrast, 1 for the style''s own\n(0 to 1.54: black dark rows)' '[0:1.61538]' 'w4a8 w8a8 fp' '1:1 2:1 3:1' '34'
