# The bit sweep: a metric against weight bits, one line per series, whiskers = 95% CI.
#     call 'bits.gp' OUT TITLE YLABEL YRANGE XRANGE XTICS NLINES NPOINTS
# OUT.dat: one block per series (blocks apart by two blank lines), its first line the series
# name, then per bit setting: x (the bits, nudged a little per series so that whiskers do not
# hide each other), bits, mean, low, high, n. The first NLINES blocks are quantized series, drawn
# as lines over their bits; the NPOINTS after them are full-precision runs, drawn as single
# points at the 'fp' tic. XTICS: e.g. (2, 4, 8, 'fp' 10).
out = ARG1
title_text = ARG2
ylabel_text = ARG3
yrange_text = ARG4
xrange_text = ARG5
xtics_text = ARG6
nlines = ARG7 + 0
npoints = ARG8 + 0
if (!exists("formats")) formats = "png svg"

set xlabel 'weight bits'
set ylabel ylabel_text
set key outside right top
set grid
set xtics @xtics_text
set xrange @xrange_text
set yrange @yrange_text
set title title_text

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1000 520
    plot for [k=0:nlines-1] out.'.dat' index k using 1:3:4:5 with yerrorlines lw 1.5 title columnheader(1), \
         for [k=nlines:nlines+npoints-1] out.'.dat' index k using 1:3:4:5 with yerrorbars pt 7 ps 1.2 lw 1.5 \
             title columnheader(1)
}
set output
