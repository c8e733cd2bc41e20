#!/bin/sh
# Runs every recipe behind the README's Results section, in order of importance, each into
# results/<recipe name>, then writes its tables and figures. Safe to interrupt and re-run: a
# sweep resumes in its folder, skipping finished runs.
#   scripts/run-paper.sh                 all of them (about 30 hours on 2 cores under the protocol's
#                                        tuning stage and seeds: experiments/README.md)
#   scripts/run-paper.sh fig_bits ...    only the named recipes
#   scripts/run-paper.sh --report-only [NAME ...]
#                                        tables and figures again from the run files, no runs
#   QADAPT_LAUNCH='mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS' OMP_NUM_THREADS=1 scripts/run-paper.sh
#                                        each sweep under a launcher (the ranks share its runs;
#                                        report, plot and verify run once, without it)
# Then the claims are judged from the run files (qadapt verify: the IntLoRA paper's,
# results/table_subject/intlora.claims.{md,csv}, and the other methods' papers',
# literature.claims.{md,csv}) and the README's claims table, between its two marker lines, is
# replaced by intlora.claims.md. results/runtime.md sums the run time of every results folder
# there is (qadapt runtime), each run once.
set -eu
cd "$(dirname "$0")/.."
QADAPT=${QADAPT:-build/qadapt}
RUN=1
if [ "${1:-}" = "--report-only" ]; then RUN=0; shift; fi
ALL="quickstart table_subject table_style fig_bits ablate_alpha ablate_rdist ablate_vmc ablate_zero_path ablate_constant_row ablate_qalora_group table_domain ablate_rank_bits recovery efficiency timing"
RECIPES=${*:-$ALL}
for name in $RECIPES; do
    recipe=experiments/$name.recipe
    [ -f "$recipe" ] || { echo "run-paper: no recipe $recipe" >&2; exit 2; }
    start=$(date +%s)
    # recipes whose settings are table_subject's copy the runs they share with it (and with
    # fig_bits) instead of training them again (qadapt run --reuse: experiments/README.md)
    case $name in
        fig_bits) reuse="--reuse results/table_subject" ;;
        ablate_rank_bits) reuse="--reuse results/fig_bits --reuse results/table_subject" ;;
        *) reuse= ;;
    esac
    for folder in $reuse; do
        [ "$folder" = --reuse ] || [ -d "$folder" ] || reuse=$(echo "$reuse" | sed "s|--reuse $folder||")
    done
    # QADAPT_LAUNCH and reuse are lists of words, split on purpose
    # shellcheck disable=SC2086
    if [ $RUN = 1 ]; then ${QADAPT_LAUNCH:-} "$QADAPT" run "$recipe" --out "results/$name" $reuse
    elif [ ! -d "results/$name" ]; then echo "run-paper: $name has no results folder (not run yet), skipped" >&2; continue
    elif ! ls "results/$name"/*.h5 > /dev/null 2>&1; then
        echo "run-paper: $name has no final runs yet (a sweep in its tuning stage), skipped" >&2; continue
    fi
    # the cell each report's loss differences and the forest figure are taken against
    # (default: the first FP cell)
    case $name in
        quickstart) base=lora:w8a8 ;;
        ablate_alpha) base=intlora-mul:w4a8:int:a1.5 ;;
        ablate_rdist) base=intlora-mul:w4a8:int:laplace ;;
        ablate_vmc) base=intlora-mul:w4a8:int:absmax ;;
        ablate_qalora_group) base=qalora:w4a8:int:g8 ;;
        ablate_zero_path) base=intlora-mul:w4a8:int:none ;;
        ablate_constant_row) base=intlora-mul:w4a8:int:fallback ;;
        ablate_rank_bits) base=lora:w8a8:int:r4 ;;
        recovery) base=qlora:w8a8:int ;;
        table_subject | table_style | fig_bits | table_domain | efficiency) base=lora:fp ;;
        *) base= ;;
    esac
    "$QADAPT" report "results/$name" ${base:+--baseline "$base"} > /dev/null
    "$QADAPT" plot "results/$name" ${base:+--baseline "$base"}
    echo "run-paper: $name done in $(( $(date +%s) - start )) s"
done

# the reproduction's run time: every folder there is of the Results section, each run counted
# once (a --reuse copy in the first folder listed that holds it)
folders=
for name in $ALL; do [ -d "results/$name" ] && folders="$folders results/$name"; done
# shellcheck disable=SC2086
if [ -n "$folders" ]; then
    "$QADAPT" runtime $folders > results/runtime.md
    echo "run-paper: run time -> results/runtime.md"
fi

"$QADAPT" verify results/table_subject experiments/intlora.claims > /dev/null
"$QADAPT" verify results/table_subject experiments/literature.claims > /dev/null
if grep -q '^<!-- claims:begin' README.md && grep -q '^<!-- claims:end' README.md; then
    awk -v table=results/table_subject/intlora.claims.md '
        /^<!-- claims:begin/ { print; while ((getline line < table) > 0) print line; skipping = 1; next }
        /^<!-- claims:end/ { skipping = 0 }
        !skipping' README.md > README.md.tmp && mv README.md.tmp README.md
    echo "run-paper: claims judged; README claims table regenerated"
else
    echo "run-paper: README.md has no claims:begin/claims:end markers; claims table not updated" >&2
fi
