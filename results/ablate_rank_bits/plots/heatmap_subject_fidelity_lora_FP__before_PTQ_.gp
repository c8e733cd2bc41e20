# Drawn by `qadapt plot` with the template heatmap.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'heatmap.gp' 'results/ablate_rank_bits/plots/heatmap_subject_fidelity_lora_FP__before_PTQ_' 'lora FP (before PTQ), subject fidelity: mean and 95% CI over 2 seeds' 'subject fidelity' '5' '3'
