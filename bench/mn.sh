#!/usr/bin/env bash
# M:N (CORUN_PROCS) side by side in one run: each program natively and
# under corun at 1 worker and at the default (the CPUs), REPS rounds each,
# interleaved; medians with [min-max].
#   bench/mn.sh BUILD_DIR [REPS]
#  1. 8 CPU-bound pthreads of 100 ms each (bench/pt_cpu), wall time;
#  2. mutex+condvar ping-pong (bench/pt_pingpong), ns per handoff, natively
#     unpinned and pinned to one CPU;
#  3. a 1 s CPU loop beside a 10 ms ticker (pt_cpu 1 1000): the ticker's
#     longest gap;
#  4. the thread-per-connection echo server (examples/echo-threaded),
#     unpinned, 100 and 1000 connections, with the load generator
#     (examples/echo-load under coro-run, one OS thread) pinned to CPU 1.
set -euo pipefail
build=${1:?usage: bench/mn.sh BUILD_DIR [REPS]}
reps=${2:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
lib=$build/.libs/libcorun.so
cpus=$(nproc)
server_pid=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT

med() { sort -n | awk '{ v[NR] = $1 } END { printf "%s [%s-%s]", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
val() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

declare -A runs
note() { runs[$1]+="$2 "; }      # name value

echo "bench/mn.sh: $(date -u +%F\ %H:%M) UTC, $cpus CPUs, $reps rounds, default CORUN_PROCS=$cpus"
for ((r = 0; r < reps; r++)); do
    note cpu_native "$("$build/bench/pt_cpu" 8 100 | val wall_ms)"
    note cpu_1 "$(CORUN_PROCS=1 LD_PRELOAD=$lib "$build/bench/pt_cpu" 8 100 | val wall_ms)"
    note cpu_n "$(LD_PRELOAD=$lib "$build/bench/pt_cpu" 8 100 | val wall_ms)"
    note pp_native "$("$build/bench/pt_pingpong" 20000 3 | val ns_per_handoff)"
    note pp_pinned "$(taskset -c 0 "$build/bench/pt_pingpong" 100000 3 | val ns_per_handoff)"
    note pp_1 "$(CORUN_PROCS=1 LD_PRELOAD=$lib "$build/bench/pt_pingpong" 200000 3 | val ns_per_handoff)"
    note pp_n "$(LD_PRELOAD=$lib "$build/bench/pt_pingpong" 200000 3 | val ns_per_handoff)"
    note gap_native "$("$build/bench/pt_cpu" 1 1000 | val longest_gap_ms)"
    note gap_1 "$(CORUN_PROCS=1 LD_PRELOAD=$lib "$build/bench/pt_cpu" 1 1000 | val longest_gap_ms)"
    note gap_n "$(LD_PRELOAD=$lib "$build/bench/pt_cpu" 1 1000 | val longest_gap_ms)"
done

echo_round() {     # procs conns -> trips/s
    local out port
    out=$(mktemp)
    CORUN_PROCS=$1 "$top/scripts/coro-run" --library "$lib" "$top/build/examples/echo-threaded" \
        > "$out" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$out")
    local line
    line=$(CORUN_PROCS=1 taskset -c 1 "$top/scripts/coro-run" --library "$lib" \
           "$build/examples/echo-load" --port "$port" --conns "$2" --msgs $((200000 / $2)) --size 64)
    kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
    server_pid=
    rm -f "$out"
    case "$line" in *errors=0*) ;; *) echo "mn: echo reported errors: $line" >&2; exit 1 ;; esac
    val trips_per_s <<<"$line"
}
ulimit -n 4096
for ((r = 0; r < reps; r++)); do
    for c in 100 1000; do
        note "echo${c}_1" "$(echo_round 1 "$c")"
        note "echo${c}_n" "$(echo_round "$cpus" "$c")"
    done
done

m() { tr ' ' '\n' <<<"${runs[$1]}" | grep . | med; }
mv() { tr ' ' '\n' <<<"${runs[$1]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$(mv "$1")" -v b="$(mv "$2")" 'BEGIN { printf "%.2f", a / b }'; }

echo "8 CPU-bound threads x 100 ms, wall ms: native $(m cpu_native); corun 1 worker $(m cpu_1); corun $cpus workers $(m cpu_n)"
echo "  $cpus workers vs 1: $(ratio cpu_1 cpu_n)x faster; vs native: $(ratio cpu_n cpu_native)x the time"
echo "ping-pong ns/handoff: native unpinned $(m pp_native); native pinned $(m pp_pinned); corun 1 worker $(m pp_1); corun $cpus workers $(m pp_n)"
echo "  corun $cpus workers vs native unpinned: $(ratio pp_native pp_n)x; vs pinned: $(ratio pp_pinned pp_n)x"
echo "1 s CPU loop beside a 10 ms ticker, longest gap ms: native $(m gap_native); corun 1 worker $(m gap_1); corun $cpus workers $(m gap_n)"
for c in 100 1000; do
    echo "echo $c connections, trips/s: corun 1 worker $(m "echo${c}_1"); corun $cpus workers $(m "echo${c}_n"); ratio $(ratio "echo${c}_n" "echo${c}_1")x"
done
