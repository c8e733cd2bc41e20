# Fine-tuning loss: per run group the mean over seeds as a line, and its 95% CI as a band where
# the harness asks for one (few curves: stacked bands would hide each other).
#     call 'loss_curves.gp' OUT TITLE YLABEL YRANGE LOOKS BANDS
# OUT.dat: a block per curve (apart by two blank lines), each its name on the first line, then per
# step: step, mean, low, high (the band's low end is clipped at 0: a loss is not negative).
# LOOKS: a look per curve (looks.gp): its colour, dash and marker (a marker every 15 steps, each
# curve's starting at another step, so that curves drawn over each other still show theirs).
# BANDS: per curve 1 (draw its band) or 0. TITLE and YLABEL: lines parted by \n; YLABEL says
# where the axis does not start at 0.
out = ARG1
title_text = ARG2
ylabel_text = ARG3
yrange_text = ARG4
looks = ARG5
bands = ARG6
if (!exists("formats")) formats = "png svg"
load 'looks.gp'

ncurves = words(looks)
set xlabel 'training step'
set ylabel lines_(ylabel_text)
set yrange @yrange_text
set key outside right top samplen 3
set grid
set style fill transparent solid 0.2 noborder
set title lines_(title_text)

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1000 520
    plot for [k=0:ncurves-1] out.'.dat' index k using 1:(word(bands, k + 1) eq '1' ? $3 : NaN):4 with filledcurves \
             lc rgb look_rgb(word(looks, k + 1)) notitle, \
         for [k=0:ncurves-1] out.'.dat' index k using 1:2 with lines lw 1.5 \
             lc rgb look_rgb(word(looks, k + 1)) dt look_dt(word(looks, k + 1)) notitle, \
         for [k=0:ncurves-1] out.'.dat' index k using 1:(int($0) % 15 == (4 * k) % 15 ? $2 : NaN) with points ps 0.9 \
             lc rgb look_rgb(word(looks, k + 1)) pt look_pt(word(looks, k + 1)) notitle, \
         for [k=0:ncurves-1] out.'.dat' index k using 1:(NaN) with linespoints lw 1.5 ps 0.9 \
             lc rgb look_rgb(word(looks, k + 1)) dt look_dt(word(looks, k + 1)) pt look_pt(word(looks, k + 1)) \
             title columnheader(1)
}
set output
