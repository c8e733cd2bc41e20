# Fine-tuning loss: per run group the mean over seeds as a line and its 95% CI as a band.
#     call 'loss_curves.gp' OUT TITLE NCURVES
# OUT.dat: NCURVES blocks (apart by two blank lines), each its name on the first line, then per
# step: step, mean, low, high (the band's low end is clipped at 0: a loss is not negative).
out = ARG1
title_text = ARG2
ncurves = ARG3 + 0
if (!exists("formats")) formats = "png svg"

set xlabel 'training step'
set ylabel 'training loss (moving average of 20 steps)'
set yrange [0:*]
set key outside right top
set grid
set style fill transparent solid 0.2 noborder
set title title_text

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1000 520
    plot for [k=0:ncurves-1] out.'.dat' index k using 1:3:4 with filledcurves lc k + 1 notitle, \
         for [k=0:ncurves-1] out.'.dat' index k using 1:2 with lines lw 1.5 lc k + 1 title columnheader(1)
}
set output
