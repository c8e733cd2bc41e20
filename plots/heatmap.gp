# A bits x rank heatmap of a metric: colour = the mean over seeds, the text in each cell the mean
# and its 95% CI.
#     call 'heatmap.gp' OUT TITLE CBLABEL NRANKS NBITS
# OUT.dat: per cell its rank index, bits index, mean, CI half-width, rank and bits name.
out = ARG1
title_text = ARG2
cblabel_text = ARG3
nranks = ARG4 + 0
nbits = ARG5 + 0
if (!exists("formats")) formats = "png svg"

unset key
set palette rgbformulae 33,13,10
set xlabel 'LoRA rank'
set ylabel 'bits'
set cblabel cblabel_text
set xrange [-0.5:nranks-0.5]
set yrange [-0.5:nbits-0.5]
set title title_text

do for [fmt in formats] {
    call 'terminal.gp' fmt out (160+110*nranks) (140+70*nbits)
    plot out.'.dat' using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette, \
         '' using 1:2:(sprintf("%.3f\n± %.3f", $3, $4)):xtic(5):ytic(6) with labels font ',9'
}
set output
