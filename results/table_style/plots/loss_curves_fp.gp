# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/table_style/plots/loss_curves_fp' 'Fine-tuning loss at fp: mean and 95% CI over 10 seeds (band)\nir-qlora fp, lora fp and qlora fp coincide (largest gap 0.00012)' 'training loss (moving average of 20 steps)\n(axis from 0.026, not 0)' '[0.026:0.081]' '4:1 5:1 2:1' '1 0 0'
