# The output of one format, shared by every template:
#     call 'terminal.gp' FORMAT OUT WIDTH HEIGHT
# FORMAT: png | svg | pdf | dumb (a text rendering into OUT.txt, for a look in a terminal);
# OUT: the output path without its extension; WIDTH x HEIGHT: the size in pixels.
# The font and the terminals of every figure are set here (the series' colours and marks: looks.gp).
# Its variable names end in '_': gnuplot's variables are global, and these must not overwrite a
# template's.

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
