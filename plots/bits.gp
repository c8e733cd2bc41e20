# The bit sweep: a metric against weight bits, one line per series, whiskers = 95% CI; one panel,
# or a panel per method where the series are too many for one.
#     call 'bits.gp' OUT TITLE YLABEL YRANGE XRANGE XTICS LOOKS PANELS
# OUT.dat: one block per series (blocks apart by two blank lines), its first line the series
# name, then per bit setting: x (the bits, nudged a little per series so that whiskers do not
# hide each other), bits, mean, low, high, n. PANELS: per panel 'L:P:TITLE', its next L blocks
# quantized series, drawn as lines over their bits, then P blocks of full-precision runs, drawn
# as single points at the 'fp' tic; TITLE may be empty. XTICS: e.g. (2, 4, 8, 'fp' 10). LOOKS: a
# look per block (looks.gp). YLABEL: lines parted by \n; it says where the axis does not start at 0.
out = ARG1
title_text = ARG2
ylabel_text = ARG3
yrange_text = ARG4
xrange_text = ARG5
xtics_text = ARG6
looks = ARG7
panels = ARG8
if (!exists("formats")) formats = "png svg"
load 'looks.gp'

# the panels: their first block, numbers of lines and points, titles
npanels = words(panels)
array first_[npanels]
array lines_n_[npanels]
array points_n_[npanels]
array titles_[npanels]
start = 0
most = 0
do for [p=1:npanels] {
    w = word(panels, p)
    rest = w[strstrt(w, ':') + 1:]
    lines_n_[p] = int(w[1:strstrt(w, ':') - 1])
    points_n_[p] = int(rest[1:strstrt(rest, ':') - 1])
    titles_[p] = rest[strstrt(rest, ':') + 1:]
    first_[p] = start
    start = start + lines_n_[p] + points_n_[p]
    most = lines_n_[p] + points_n_[p] > most ? lines_n_[p] + points_n_[p] : most
}
# (a clause over no blocks still evaluates its options and opens its block once, past the last)
look(k) = k < words(looks) ? word(looks, k + 1) : '1:1'
blk(k) = k < words(looks) ? k : words(looks) - 1

set grid
set xtics @xtics_text
set xrange @xrange_text
set yrange @yrange_text
# one panel: the key at the right; several: a grid of panels, five a row, each its key below it
if (npanels == 1) {
    set key outside right top samplen 3
    width = 1000
    height = 520 + (most > 26 ? 17 * (most - 26) : 0)
} else {
    cols = npanels < 5 ? npanels : 5
    rows = int((npanels + cols - 1) / cols)
    # per panel: its title, the plot, the tics, its key (as tall as the fullest panel's)
    left = 115.0  # room for a value-axis label of up to 3 lines beside the tick numbers
    panel_w = 300.0
    plot_h = 210.0
    panel_h = 25 + plot_h + 30 + 15 * most + 25
    width = int(left + cols * panel_w + 20)
    height = int(70 + rows * panel_h)
}

do for [fmt in formats] {
    call 'terminal.gp' fmt out (width) (height)
    if (npanels == 1) {
        set xlabel 'weight bits'
        set ylabel lines_(ylabel_text)
        set title title_text
    } else {
        # one value-axis label for every panel, at the left of the figure
        set label 1 lines_(ylabel_text) at screen 30.0 / width, 0.5 * (1 - 70.0 / height) rotate by 90 center
        set multiplot title title_text
        unset xlabel
        unset ylabel
    }
    do for [p=1:npanels] {
        s = first_[p]
        nl = lines_n_[p]
        np = points_n_[p]
        if (npanels > 1) {
            col = (p - 1) % cols
            row = int((p - 1) / cols)
            x0 = left + col * panel_w
            y0 = 70 + row * panel_h + 25
            set lmargin at screen x0 / width
            set rmargin at screen (x0 + panel_w - 25.0) / width
            set tmargin at screen 1 - y0 / height
            set bmargin at screen 1 - (y0 + plot_h) / height
            set key at screen x0 / width, 1 - (y0 + plot_h + 30.0) / height left top Left reverse samplen 2.5 font ',9'
            set title titles_[p]
            if (p > 1) { unset label 1 }
            # a shared value axis: its numbers on the first panel of a row
            if (col == 0) { set format y '%g' } else { set format y '' }
        }
        plot for [k=s:s+nl-1] out.'.dat' index blk(k) using 1:3 with lines lw 1.5 dt look_dt(look(k)) lc rgb look_rgb(look(k)) notitle, \
             for [k=s:s+nl+np-1] out.'.dat' index blk(k) using 1:3:4:5 with yerrorbars lw 1 ps 1.2 pt look_pt(look(k)) \
                 lc rgb look_rgb(look(k)) notitle, \
             for [k=s:s+nl-1] out.'.dat' index blk(k) using 1:(NaN) with linespoints lw 1.5 ps 1.2 dt look_dt(look(k)) \
                 pt look_pt(look(k)) lc rgb look_rgb(look(k)) title columnheader(1), \
             for [k=s+nl:s+nl+np-1] out.'.dat' index blk(k) using 1:(NaN) with points ps 1.2 pt look_pt(look(k)) \
                 lc rgb look_rgb(look(k)) title columnheader(1)
    }
    if (npanels > 1) { unset multiplot; unset label 1 }
}
set output
