#!/bin/sh
# The commit a build is made from, as run files record it: HEAD's hash, with "-dirty" when the
# sources that go into the binary differ from HEAD (harness, methods, datasets, the gnuplot
# templates, the meson files). Results and documents do not count: regenerating a report or the
# README does not make the next build "dirty". Called by meson's vcs_tag at every build.
#   scripts/commit-id.sh SOURCE_ROOT
cd "$1" || exit 1
id=$(git rev-parse --short=12 HEAD) || exit 1
git diff --quiet HEAD -- harness methods datasets plots meson.build meson_options.txt || id="$id-dirty"
echo "$id"
