# Drawn by `qadapt plot` with the template loss_curves.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'loss_curves.gp' 'results/efficiency/plots/loss_curves_fp' 'Fine-tuning loss at fp: mean and 95% CI over 5 seeds (band)\nir-qlora fp, lora fp and qlora fp coincide (largest gap 3e-05)' 'training loss (moving average of 20 steps)' '[0:0.14]' '4:1 5:1 2:1' '1 0 0'
