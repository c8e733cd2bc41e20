# Paired differences (a forest plot): each cell minus the baseline cell, one panel per metric,
# one row per cell; the point is the mean difference, the whiskers its 95% CI, the dashed line
# zero. Filled points: paired by seed; open points: Welch (the cells do not share every seed).
#     call 'forest.gp' OUT TITLE NPANELS PANEL_TITLES NROWS LABEL_CHARS
# OUT.dat: NPANELS blocks (apart by two blank lines), one per metric, each with a line per row:
# row (0 = bottom), mean, low, high, paired (1 or 0), row label. PANEL_TITLES: one quoted title
# per panel, e.g. "subject fidelity ↑" "held-out loss ↓". LABEL_CHARS: the longest row label.
out = ARG1
title_text = ARG2
npanels = ARG3 + 0
panel_titles = ARG4
nrows = ARG5 + 0
label_chars = ARG6 + 0
if (!exists("formats")) formats = "png svg"

label_px = 40 + 6.5 * label_chars
panel_px = 270
width = int(label_px + npanels * panel_px + 20)
height = 120 + 22 * (nrows > 6 ? nrows : 6)
# each panel's x range: every interval and zero, with a margin
array xlow[npanels]
array xhigh[npanels]
do for [k=1:npanels] {
    stats out.'.dat' index k-1 using 3 nooutput
    low = STATS_min < 0 ? STATS_min : 0
    stats out.'.dat' index k-1 using 4 nooutput
    high = STATS_max > 0 ? STATS_max : 0
    pad = (high - low) > 0 ? 0.08 * (high - low) : 0.01
    xlow[k] = low - pad
    xhigh[k] = high + pad
}

# about three tics per panel (long labels such as 0.0002 stay apart), at 1, 2 or 5 times a power of ten
nice_step(x) = (decade = 10**floor(log10(x)), x / decade < 1.5 ? decade : x / decade < 3.5 ? 2 * decade : x / decade < 7.5 ? 5 * decade : 10 * decade)

unset key
set grid xtics
set yrange [-0.7:nrows-0.3]
set tmargin 4
set bmargin 3
set xtics font ',8'
point_colour = '#1f5fa8'

do for [fmt in formats] {
    call 'terminal.gp' fmt out (width) (height)
    set multiplot title title_text
    do for [k=1:npanels] {
        set xrange [xlow[k]:xhigh[k]]
        set xtics nice_step((xhigh[k] - xlow[k]) / 3)
        set lmargin at screen (label_px + (k-1) * panel_px) / width
        set rmargin at screen (label_px + k * panel_px - 25) / width
        set title word(panel_titles, k)
        set arrow 1 from first 0, graph 0 to first 0, graph 1 nohead dt 2 lw 1.2 lc rgb 'black'
        if (k == 1) {
            set ytics scale 0 font ',9'
            plot out.'.dat' index k-1 using ($5 == 1 ? $2 : NaN):1:3:4:ytic(6) with xerrorbars pt 7 lc rgb point_colour, \
                 '' index k-1 using ($5 == 1 ? NaN : $2):1:3:4 with xerrorbars pt 6 lc rgb point_colour
        } else {
            set ytics 1 format '' scale 0
            plot out.'.dat' index k-1 using ($5 == 1 ? $2 : NaN):1:3:4 with xerrorbars pt 7 lc rgb point_colour, \
                 '' index k-1 using ($5 == 1 ? NaN : $2):1:3:4 with xerrorbars pt 6 lc rgb point_colour
        }
    }
    unset multiplot
}
set output
