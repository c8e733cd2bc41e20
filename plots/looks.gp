# The looks of series, shared by the templates (load 'looks.gp'). The harness gives each series
# of a figure a look 'C:M' that no other series of the figure has:
#   C, the colour: 1-8, the Okabe-Ito palette (told apart with the common colour-vision
#      deficiencies, yellow last: faint on white); 0, a neutral grey for key entries that show
#      only a mark;
#   M, the mark: 1-15, a point type (filled circle, square, triangle, diamond, inverted triangle,
#      pentagon, the same six open, then plus, cross, star) for markers; the same point type and
#      a dash type for lines; a fill for bars (solid, then hatchings, then empty); 0, no mark
#      (a key entry showing a colour alone, as a filled square).
# Names end in '_' where gnuplot's global variables could meet a template's.
array look_rgb_[9] = ['#777777', '#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000', '#f0e442']
array look_points_[16] = [5, 7, 5, 9, 13, 11, 15, 6, 4, 8, 12, 10, 14, 1, 2, 3]
array look_fills_[8] = [3, 4, 1, 5, 2, 6, 7, 0]

look_colour(w) = int(w[1:strstrt(w, ':') - 1])
look_mark(w) = int(w[strstrt(w, ':') + 1:])
# a look's colour, point type, dash type and bar fill pattern (mark 0 has point type 5)
look_rgb(w) = look_rgb_[look_colour(w) + 1]
look_pt(w) = look_points_[look_mark(w) + 1]
look_dt(w) = (look_mark(w) + 4) % 5 + 1
look_fill(w) = look_fills_[(look_mark(w) + 7) % 8 + 1]

# a title whose lines are parted by the two characters \n
lines_(s) = (i_ = strstrt(s, '\n'), i_ ? s[1:i_-1]."\n".lines_(s[i_+2:]) : s)
