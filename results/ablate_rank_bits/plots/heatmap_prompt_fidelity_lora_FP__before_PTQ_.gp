# Drawn by `qadapt plot` with the template heatmap.gp of the plots/ folder from OUT.dat (OUT: the
# first argument). Redraw from the repository root: GNUPLOT_LIB=plots gnuplot THIS_FILE
call 'heatmap.gp' 'results/ablate_rank_bits/plots/heatmap_prompt_fidelity_lora_FP__before_PTQ_' 'lora FP (before PTQ), prompt fidelity: mean and 95% CI over 2 seeds' 'prompt fidelity' '5' '3'
