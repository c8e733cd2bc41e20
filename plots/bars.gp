# Grouped bars: a group per series (its name under it), a bar per bit setting in the setting's
# look, whiskers = 95% CI.
#     call 'bars.gp' OUT TITLE YLABEL YRANGE BITS LOOKS LABEL_CHARS
# OUT.dat: block 0, one line per bar: x, mean, the low and the high end of its interval, the
# bit setting (1-based, in the order of BITS), the series; block 1, per group the x of its middle
# and the series' name. BITS: the bit settings as named in the key, e.g. 'w4a8 w8a8 fp'; LOOKS:
# a look per bit setting (looks.gp); LABEL_CHARS: the longest series name. YLABEL: lines parted by \n.
# YRANGE: e.g. [0:1.05] for a score bounded by 1, [0:*] otherwise.
out = ARG1
title_text = ARG2
ylabel_text = ARG3
yrange_text = ARG4
bits = ARG5
looks = ARG6
label_chars = ARG7 + 0
if (!exists("formats")) formats = "png svg"
load 'looks.gp'

nbits = words(bits)
stats out.'.dat' index 0 using 1 nooutput
xmax = STATS_max
# 15 pixels a bar; room below for the slanted names
width = int(260 + 15 * (xmax + 2))
width = width < 640 ? 640 : width
height = int(440 + 3.8 * label_chars)

set boxwidth 0.85
set xrange [-1:xmax + 1]
set yrange @yrange_text
set xtics rotate by 40 right scale 0 font ',9' nomirror
set grid ytics
set key outside right top vertical samplen 2 title 'bits'
set xlabel 'series (method, deploy); a bar per bit setting'
set ylabel lines_(ylabel_text)
set title lines_(title_text)

do for [fmt in formats] {
    call 'terminal.gp' fmt out (width) (height)
    # the whiskers as candlesticks of no box: error bars would leave a gap at the mean
    plot for [b=1:nbits] out.'.dat' index 0 using 1:($5 == b ? $2 : NaN) with boxes \
             fs pattern look_fill(word(looks, b)) border lc rgb 'black' lc rgb look_rgb(word(looks, b)) title word(bits, b), \
         out.'.dat' index 0 using 1:2:3:4:2 with candlesticks whiskerbars 0.35 lc rgb 'black' fs empty notitle, \
         out.'.dat' index 1 using 1:(NaN):xtic(2) notitle
}
set output
