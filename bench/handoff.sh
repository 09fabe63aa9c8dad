#!/usr/bin/env bash
# Threads beside one stuck in a real blocking call (a 500 ms lock wait corun
# cannot park), side by side in one run, alternating: natively, under
# libcorun with the hand-off (CORUN_HANDOFF_MS default 10) and without it
# (CORUN_HANDOFF_MS=0). The figure is the longest wait of the other
# threads for a tick (2 ms in pt_mn, 5 ms in Python): how long the stuck
# OS thread held them. Two programs: tests/pt_mn stuck (C, 8 threads, the
# blocked one on a worker: PT_STUCK_MAIN=0) and a Python program
# (tests/integration/flock_tickers.py, 8 tickers, the lock held by the
# flock(1) command). Medians and every run.
#   bench/handoff.sh BUILD_DIR [REPS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: bench/handoff.sh BUILD_DIR [REPS]}" && pwd)
reps=${2:-5}
make -C "$build" -s tests/pt_mn >/dev/null
lib=$build/.libs/libcorun.so
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A runs=()
sides=(native corun corun-nohandoff)
progs=(pt_mn python)
for ((i = 1; i <= reps; i++)); do
    for prog in "${progs[@]}"; do
        for side in "${sides[@]}"; do
            case $side in
                native) pre=(env) ;;
                corun) pre=(env LD_PRELOAD="$lib" CORUN_THREADS=green) ;;
                corun-nohandoff) pre=(env LD_PRELOAD="$lib" CORUN_THREADS=green CORUN_HANDOFF_MS=0) ;;
            esac
            if [ "$prog" = pt_mn ]; then
                out=$(timeout 60 "${pre[@]}" PT_STUCK_MAIN=0 "$build/tests/pt_mn" stuck 2>/dev/null || true)
            else
                : > "$work/lock"
                out=$(timeout 60 "${pre[@]}" python3 "$top/tests/integration/flock_tickers.py" \
                      "$work/lock" 2>/dev/null || true)
            fi
            gap=$(sed -n 's/.*worst_gap_ms=\([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
            runs["$prog|$side"]+="${gap:-x} "
        done
    done
    echo "handoff: run $i/$reps done" >&2
done
echo "| program | native | corun | corun, CORUN_HANDOFF_MS=0 | runs (native / corun / no hand-off) |"
echo "|---|---|---|---|---|"
for prog in "${progs[@]}"; do
    row="| $prog: longest tick wait, ms"
    all=""
    for side in "${sides[@]}"; do
        row+=" | $(median <<<"${runs["$prog|$side"]}")"
        all+="${runs["$prog|$side"]% }/ "
    done
    echo "$row | ${all%/ } |"
done
