#!/usr/bin/env bash
# CPU-bound pthreads beside a 10 ms ticker (bench/pt_cpu), side by side in
# one run, alternating: natively (the kernel preempts, both CPUs), under
# libcorun with preemption (CORUN_PREEMPT_MS default 10, one OS thread) and
# under libcorun without it (CORUN_PREEMPT_MS=0). Two loads: one thread
# with 1 s of work (issue 17's bar: the ticker's longest gap <= 20 ms) and
# 8 threads with 100 ms each (wall time: what preemption costs, and what
# one OS thread gives against the machine's cores). Medians and every run.
#   bench/preempt.sh BUILD_DIR [REPS]
set -euo pipefail
build=$(cd "${1:?usage: bench/preempt.sh BUILD_DIR [REPS]}" && pwd)
reps=${2:-5}
make -C "$build" -s bench/pt_cpu >/dev/null
lib=$build/.libs/libcorun.so
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/^@result.* $1=\([0-9]*\).*/\1/p; s/^@result $1=\([0-9]*\).*/\1/p" | head -n 1; }
declare -A runs=()
sides=(native corun corun-nopreempt)
loads=("1 1000" "8 100")
for ((i = 1; i <= reps; i++)); do
    for load in "${loads[@]}"; do
        for side in "${sides[@]}"; do
            case $side in
                native) pre=(env) ;;
                corun) pre=(env LD_PRELOAD="$lib") ;;
                corun-nopreempt) pre=(env LD_PRELOAD="$lib" CORUN_PREEMPT_MS=0) ;;
            esac
            out=$("${pre[@]}" "$build/bench/pt_cpu" $load)
            for f in wall_ms longest_gap_ms ticks; do
                runs["$load|$side|$f"]+="$(field $f <<<"$out") "
            done
        done
    done
    echo "preempt: run $i/$reps done" >&2
done
echo "| load | figure | native | corun | corun, CORUN_PREEMPT_MS=0 | runs (native / corun / no preemption) |"
echo "|---|---|---|---|---|---|"
for load in "${loads[@]}"; do
    set -- $load
    for f in wall_ms longest_gap_ms ticks; do
        row="| $1 thread(s) x $2 ms | $f"
        all=""
        for side in "${sides[@]}"; do
            row+=" | $(median <<<"${runs["$load|$side|$f"]}")"
            all+="${runs["$load|$side|$f"]% }/ "
        done
        echo "$row | ${all%/ } |"
    done
done
