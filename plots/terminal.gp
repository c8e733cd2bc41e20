# The output of one format, shared by every template:
#     call 'terminal.gp' FORMAT OUT WIDTH HEIGHT
# FORMAT: png | svg | pdf | dumb (a text rendering into OUT.txt, for a look in a terminal);
# OUT: the output path without its extension; WIDTH x HEIGHT: the size in pixels.
# The font, the terminals and the series colours of every figure are set here. Its variable
# names end in '_': gnuplot's variables are global, and these must not overwrite a template's.

# 12 colours for the series (gnuplot's default has 8), each with its own point type
array series_colours_[12] = ['#9400d3', '#009e73', '#56b4e9', '#e69f00', '#b8a000', '#0072b2', \
                            '#e51e10', '#000000', '#8b4513', '#ff69b4', '#7cfc00', '#708090']
do for [lt_=1:12] { set linetype lt_ lc rgb series_colours_[lt_] pt lt_ }
set linetype cycle 12

fmt_ = ARG1
out_ = ARG2
w_ = ARG3 + 0
h_ = ARG4 + 0
if (fmt_ eq 'png') {
    set terminal pngcairo size w_, h_ font 'sans,10' noenhanced
    set output out_.'.png'
} else { if (fmt_ eq 'svg') {
    set terminal svg size w_, h_ font 'sans,10' noenhanced
    set output out_.'.svg'
} else { if (fmt_ eq 'pdf') {
    set terminal pdfcairo size w_ / 96.0, h_ / 96.0 font 'sans,8' noenhanced
    set output out_.'.pdf'
} else { if (fmt_ eq 'dumb') {
    set terminal dumb size int(w_ / 7), (h_ / 10 > 25 ? int(h_ / 10) : 25) noenhanced
    set output out_.'.txt'
} else {
    exit error sprintf("terminal.gp: unknown format '%s' (png, svg, pdf or dumb)", fmt_)
}}}}
