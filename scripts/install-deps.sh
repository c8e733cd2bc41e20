#!/usr/bin/env bash
# Install the Debian packages the harness needs, only those missing (with --fuzz, also those of
# the fuzzing target). Safe to run repeatedly;
# needs root (or sudo) when something is missing. No network access beyond Debian's mirrors.
set -euo pipefail
PKGS="gcc make pkg-config meson ninja-build libdnnl-dev libhdf5-dev hdf5-tools libgsl-dev
      gnuplot-nox libcriterion-dev zlib1g-dev libjansson-dev dataset-fashion-mnist openmpi-bin libopenmpi-dev"
# `make fuzz` only (install-deps.sh --fuzz): the libFuzzer target is built with clang
[ "${1:-}" = "--fuzz" ] && PKGS="$PKGS clang libfuzzer-14-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q </dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing </dev/null
