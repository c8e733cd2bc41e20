# Grouped bars: a metric per bit setting (one group each), one bar per series, whiskers = 95% CI.
#     call 'bars.gp' OUT TITLE YLABEL YRANGE NSERIES
# OUT.dat: a header line (the series names), then per bit setting its name and, per series, the
# mean, the low and the high end of its interval ('?' where the series has no such cell).
# YRANGE: e.g. [0:1.05] for a score bounded by 1, [0:*] otherwise.
out = ARG1
title_text = ARG2
ylabel_text = ARG3
yrange_text = ARG4
nseries = ARG5 + 0
if (!exists("formats")) formats = "png svg"

set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set datafile missing '?'
set yrange @yrange_text
set grid ytics
set key outside right top
set xlabel 'weight / activation bits'
set ylabel ylabel_text
set title title_text

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1000 520
    plot for [k=1:nseries] out.'.dat' using 3*k-1:3*k:3*k+1:xtic(1) title columnheader(3*k-1)
}
set output
