# Quality against a cost (training memory, or deployed storage): one point per deployed cell with
# its 95% CI, a colour per method and a shape per bit setting and deploy, named in the key; the
# Pareto front (no other point costs less and scores better) as a dashed step line.
#     call 'pareto.gp' OUT TITLE XLABEL YLABEL YRANGE NCELLS COLOURS SHAPES
# OUT.dat: NCELLS blocks (apart by two blank lines), each the cell's name on its first line, then
# cost, mean, low, high; then one block of the front: cost, mean. COLOURS and SHAPES: per cell,
# the 1-based index of its method and of its (bits, deploy) kind, separated by spaces.
out = ARG1
title_text = ARG2
xlabel_text = ARG3
ylabel_text = ARG4
yrange_text = ARG5
ncells = ARG6 + 0
colours = ARG7
shapes = ARG8
if (!exists("formats")) formats = "png svg"

# filled circle, square, triangle, diamond, then their open forms, then crosses
array shape_points[10] = [7, 5, 9, 13, 6, 4, 8, 12, 1, 2]
shape(k) = shape_points[(word(shapes, k + 1) - 1) % 10 + 1]
colour(k) = word(colours, k + 1) + 0

set grid
# the key right of the plot; below it, in columns, when it is long
height = 560
if (ncells > 16) {
    set key below center maxcols 3 title ' '
    height = 580 + 18 * int((ncells + 3) / 3)
} else {
    set key outside right top
}
set xlabel xlabel_text
set ylabel ylabel_text
set yrange @yrange_text
set offsets graph 0.03, graph 0.03, 0, 0
set title title_text

do for [fmt in formats] {
    call 'terminal.gp' fmt out 1100 (height)
    plot out.'.dat' index ncells using 1:2 with steps lw 1.5 dt 2 lc rgb '#888888' title 'Pareto front', \
         for [k=0:ncells-1] out.'.dat' index k using 1:2:3:4 with yerrorbars pt shape(k) ps 1.2 lc colour(k) \
             title columnheader(1)
}
set output
