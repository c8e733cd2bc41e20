# A grid of generated 28x28 images: one row per run (or per part of a run's samples), a label
# left of each row.
#     call 'samples.gp' OUT TITLE ROWS COLS LABEL_CHARS
# OUT.dat: block 0, the picture as a matrix of grey levels (0-255, its first line the bottom);
# block 1, the row labels: height of the row's middle in pixels, label. LABEL_CHARS: the longest.
out = ARG1
title_text = ARG2
rows = ARG3 + 0
cols = ARG4 + 0
label_chars = ARG5 + 0
if (!exists("formats")) formats = "png svg"

# the layout in pixels: labels, then the tiles (44 px each) at the right, the title above
tile = 30
tile_px = 44
label_px = 24 + 6.5 * label_chars
width = label_px + tile_px * cols + 16
width = width > 40 + 7 * strlen(title_text) ? width : 40 + 7 * strlen(title_text)
height = 50 + tile_px * rows + 12
set lmargin at screen (width - 16.0 - tile_px * cols) / width
set rmargin at screen (width - 16.0) / width
set tmargin at screen (height - 50.0) / height
set bmargin at screen 12.0 / height
set label 1 title_text at screen 0.5, screen (height - 24.0) / height center

unset border
unset xtics
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
