#!/usr/bin/env bash
# Green pthreads, unmodified programs, side by side in one run:
#  1. bench/pt_pingpong: two threads handing a mutex+condvar turn back and
#     forth, natively pinned to CPU 0 (taskset -c 0) and under
#     LD_PRELOAD=libcorun.so (CORUN_THREADS=green, also pinned), runs
#     alternating; handoffs per second and the ratio (bar: corun >= 30x).
#  2. bench/pt_sleepers: THREADS pthreads (default 1,000,000) each sleeping
#     2 s at once under libcorun, with the default stack size and with
#     CORUN_STACK_SIZE=64K: completes? peak RSS (VmHWM) per thread (bar:
#     <= 5 KiB); page tables (VmPTE) per thread shown apart.
#  3. For reference, the same sleepers natively (one run; expect
#     pthread_create to fail near 32,000 threads on a 65530 vm.max_map_count).
# Figures are medians of REPS runs (default 5 for the ping-pong, 3 for the
# sleepers).
#   bench/pt_run.sh BUILD_DIR [REPS] [THREADS]
set -euo pipefail
build=$(cd "${1:?usage: bench/pt_run.sh BUILD_DIR [REPS] [THREADS]}" && pwd)
reps=${2:-5} threads=${3:-1000000}
lib=$build/.libs/libcorun.so
make -C "$build" -s bench/pt_pingpong bench/pt_sleepers >/dev/null
for f in "$lib" "$build/bench/pt_pingpong" "$build/bench/pt_sleepers"; do
    [[ -e $f ]] || { echo "pt_run: $f is missing (build the tree first)" >&2; exit 1; }
done
green=(env LD_PRELOAD="$lib" CORUN_THREADS=green)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() {      # the number after NAME= on the @result line
    sed -n "s/^@result\(.* \| \)$1=\([0-9.]*\).*/\2/p" | head -n 1
}

echo "pt_run: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
     "kernel $(uname -r), load average $(cut -d' ' -f1 /proc/loadavg)"

# ---- 1. ping-pong ---------------------------------------------------------------
trips=200000
native_rates=() green_rates=() native_ns=() green_ns=()
for ((i = 1; i <= reps; i++)); do
    out=$(taskset -c 0 "$build/bench/pt_pingpong" "$trips" 3)
    native_rates+=("$(field handoffs_per_s <<<"$out")") native_ns+=("$(field ns_per_handoff <<<"$out")")
    out=$(taskset -c 0 "${green[@]}" "$build/bench/pt_pingpong" "$trips" 3)
    green_rates+=("$(field handoffs_per_s <<<"$out")") green_ns+=("$(field ns_per_handoff <<<"$out")")
done
nr=$(printf '%s\n' "${native_rates[@]}" | median) gr=$(printf '%s\n' "${green_rates[@]}" | median)
nn=$(printf '%s\n' "${native_ns[@]}" | median) gn=$(printf '%s\n' "${green_ns[@]}" | median)
echo
echo "ping-pong (mutex + 2 condvars, 2 threads), pinned to CPU 0, median of $reps runs:"
printf '  %-34s %14s %12s   per run (handoffs/s)\n' "" "handoffs/s" "ns/handoff"
printf '  %-34s %14s %12s   %s\n' "native (taskset -c 0)" "$nr" "$nn" "${native_rates[*]}"
printf '  %-34s %14s %12s   %s\n' "corun green (LD_PRELOAD)" "$gr" "$gn" "${green_rates[*]}"
awk -v g="$gr" -v n="$nr" 'BEGIN {
    r = g / n
    printf "  corun / native: %.1fx (bar >= 30x: %s)\n", r, (r >= 30 ? "meets" : "MISSES") }'

# ---- 2. sleepers ----------------------------------------------------------------------
sleepers() {    # label, env...
    local label=$1; shift
    local per=() pte=() comp=() tot=()
    for ((i = 1; i <= (reps < 3 ? reps : 3); i++)); do
        local out
        # CORUN_PREEMPT_MS=0: main's creation loop is CPU-bound for seconds;
        # preempted, the first sleepers would wake and exit before the last
        # exist, and the peak would no longer be all of them at once.
        out=$("$@" env CORUN_PREEMPT_MS=0 "$build/bench/pt_sleepers" "$threads" 2) || true
        per+=("$(field peak_rss_per_thread <<<"$out")") pte+=("$(field pte_per_thread <<<"$out")")
        comp+=("$(field completed <<<"$out")") tot+=("$(field total_s <<<"$out")")
    done
    local p t
    p=$(printf '%s\n' "${per[@]}" | median) t=$(printf '%s\n' "${tot[@]}" | median)
    printf '  %-34s %10s %12s B %10s B %8s s   completed per run: %s\n' "$label" \
           "$(printf '%s\n' "${comp[@]}" | median)" "$p" \
           "$(printf '%s\n' "${pte[@]}" | median)" "$t" "${comp[*]}"
    awk -v p="$p" 'BEGIN {
        printf "  %-34s peak RSS per thread %.2f KiB (bar <= 5 KiB: %s)\n", "", p / 1024,
               (p <= 5120 ? "meets" : "MISSES") }'
}
echo
echo "$threads threads each sleeping 2 s at once (median of $((reps < 3 ? reps : 3)) runs):"
printf '  %-34s %10s %14s %12s %10s\n' "" "completed" "VmHWM/thread" "VmPTE/thr." "total"
sleepers "corun green, default stack" "${green[@]}"
sleepers "corun green, CORUN_STACK_SIZE=64K" "${green[@]}" CORUN_STACK_SIZE=64K

# ---- 3. native, for reference -------------------------------------------------------------
echo
echo "natively (no libcorun), one run:"
out=$(timeout 300 "$build/bench/pt_sleepers" "$threads" 2 || true)
sed -n 's/^pt_sleepers: /  /p' <<<"$out"
