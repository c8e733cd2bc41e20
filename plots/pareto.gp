# Quality against a cost (training memory, or deployed storage): one point per deployed cell with
# its 95% CI in its look, and the Pareto front through the means as a dashed step line.
#     call 'pareto.gp' OUT TITLE XLABEL YLABEL XRANGE XTICS YRANGE LOOKS KEY
# OUT.dat: a block per cell (apart by two blank lines), its name on its first line, then cost, x
# (where it is drawn: points of equal cost side by side), mean, low, high; then a block of the
# front: cost, x, mean, cell; then a block per key entry, its name and a line 'NaN NaN'.
# LOOKS: a look per cell (looks.gp). KEY: a look per key entry, '-' for a heading (no sample).
# XTICS: 'log2 (4, 8, 16, 32)' for a log2 axis with those tics, or 'linear'. TITLE: lines parted by \n.
out = ARG1
title_text = ARG2
xlabel_text = ARG3
ylabel_text = ARG4
xrange_text = ARG5
xtics_text = ARG6
yrange_text = ARG7
looks = ARG8
key = ARG9
if (!exists("formats")) formats = "png svg"
load 'looks.gp'

ncells = words(looks)
nkey = words(key)
key_pt(j) = word(key, j) eq '-' ? 7 : look_pt(word(key, j))
key_ps(j) = word(key, j) eq '-' ? 0 : (look_mark(word(key, j)) == 0 ? 2.2 : 1.3)
key_rgb(j) = word(key, j) eq '-' ? '#ffffff' : look_rgb(word(key, j))

# (eval: a macro inside a block is expanded before the block runs)
if (xtics_text[1:4] eq 'log2') {
    set logscale x 2
    eval 'set xtics '.xtics_text[6:]
}
set grid
set key outside right top Left reverse samplen 1 spacing 1.1
set xlabel xlabel_text
set ylabel lines_(ylabel_text)
set xrange @xrange_text
set yrange @yrange_text
set title lines_(title_text)
height = 600 > 150 + 17 * nkey ? 600 : 150 + 17 * nkey

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1200 (height)
    plot out.'.dat' index ncells using 2:3 with steps lw 1.5 dt 2 lc rgb '#555555' title 'Pareto front (means)', \
         for [k=0:ncells-1] out.'.dat' index k using 2:3:4:5 with yerrorbars ps 1.3 \
             pt look_pt(word(looks, k + 1)) lc rgb look_rgb(word(looks, k + 1)) notitle, \
         for [j=1:nkey] out.'.dat' index ncells + j using 1:2 with points pt key_pt(j) ps key_ps(j) lc rgb key_rgb(j) \
             title columnheader(1)
}
set output
