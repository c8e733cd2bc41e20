#!/usr/bin/env bash
# Sum Criterion's per-suite "Synthesis" lines from a meson test log into one closing line,
# "LABEL: N passed, N failed". A suite that did not exit 0 without reporting a failing test
# (killed by a timeout, a sanitizer abort outside a test) counts as one failure. Exits non-zero
# when anything failed or when no test ran.
set -euo pipefail
log="${1:?usage: test-summary.sh BUILD_DIR/meson-logs/testlog.txt [label]}"
label="${2:-criterion}"
[ -f "$log" ] || { echo "$label: no test log at $log (the build failed?)"; echo "$label: 0 passed, 1 failed"; exit 1; }
awk -v label="$label" '
  /^test: / { suite = $2 }
  /Synthesis: Tested:/ {
    line = $0; sub(/.*Synthesis: /, "", line); gsub(/[|:]/, " ", line); split(line, f, " +")
    tested += f[2]; passed += f[4]; failing += f[6] + f[8]; had[suite] += f[6] + f[8]
  }
  /^result: / { if ($0 !~ /exit status 0$/ && !had[suite]) { broken++; print label ": suite " suite " " $0 > "/dev/stderr" } }
  END {
    failed = failing + broken
    printf "%s: %d passed, %d failed\n", label, passed, failed
    exit (tested > 0 && failed == 0) ? 0 : 1
  }' "$log"
