# A grid of generated 28x28 images: one row per run (or per part of a run's samples), a label
# left of each row; the columns numbered above the grid where COL_LABEL is given. Places without
# an image are a flat mid-grey (the harness fills them so), the gutters a darker grey.
#     call 'samples.gp' OUT TITLE ROWS COLS LABEL_CHARS COL_LABEL
# OUT.dat: block 0, the picture as a matrix of grey levels (0-255, its first line the bottom);
# block 1, the row labels: height of the row's middle in pixels, label. LABEL_CHARS: the longest.
# COL_LABEL: the heading of the column numbers (e.g. 'sample'), or empty for none.
out = ARG1
title_text = ARG2
rows = ARG3 + 0
cols = ARG4 + 0
label_chars = ARG5 + 0
col_label = ARG6
if (!exists("formats")) formats = "png svg"

# the layout in pixels: labels, then the tiles (44 px each) at the right, the title above, the
# column numbers between them
tile = 30
tile_px = 44
label_px = 24 + 6.5 * (label_chars > strlen(col_label) ? label_chars : strlen(col_label))
top_px = strlen(col_label) ? 68.0 : 50.0
width = label_px + tile_px * cols + 16
width = width > 40 + 7 * strlen(title_text) ? width : 40 + 7 * strlen(title_text)
height = top_px + tile_px * rows + 12
set lmargin at screen (width - 16.0 - tile_px * cols) / width
set rmargin at screen (width - 16.0) / width
set tmargin at screen (height - top_px) / height
set bmargin at screen 12.0 / height
set label 1 title_text at screen 0.5, screen (height - 24.0) / height center
if (strlen(col_label)) {
    set x2range [-0.5:cols*tile-0.5]
    set x2tics scale 0 font ',9' ()
    do for [c=1:cols] { set x2tics add (sprintf('%d', c) (c - 1) * tile + 14) }
    set label 2 col_label at screen (width - 22.0 - tile_px * cols) / width, screen (height - top_px + 9) / height right font ',9'
}

unset border
unset xtics
if (!strlen(col_label)) { unset x2tics }
unset colorbox
unset key
set ytics scale 0 font ',9'
set palette gray
set cbrange [0:255]
set xrange [-0.5:cols*tile-0.5]
set yrange [-0.5:rows*tile-0.5]

do for [fmt in formats] {
    call 'terminal.gp' fmt out (width) (height)
    plot out.'.dat' index 0 matrix with image, '' index 1 using (NaN):1:ytic(2) notitle
}
set output
