# shellcheck shell=bash disable=SC2034  # the variables are for the sourcing test
# Shared set-up of the integration tests (sourced, not run): finds the build,
# skips in the ASan build, makes a work directory, and kills every process
# registered in $pids and removes the work directory on exit.
#   needs TOOL...    skip (exit 77) unless every TOOL is on PATH
#   spawn_bg CMD...  start CMD in the background, register it for clean-up
#   wait_for FILE RE wait (up to 10 s) until FILE has a line matching RE
#   check COND MSG   record a failure with MSG unless COND (a shell test) holds
#   finish           print PASS/FAIL and exit with the verdict
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
lib="$build/.libs/libcorun.so"
if grep -q -- '-fsanitize' "$build/Makefile" 2>/dev/null; then
    echo "SKIP: preloading an ASan-built libcorun needs the ASan runtime first"; exit 77
fi
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
export CORUN_THREADS=green    # make check sets native for the unit tests
corun=("$top/scripts/coro-run" --library "$lib")
work=$(mktemp -d)
pids=()
fail=0
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do    # up to 1 s to go, then forced
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

needs() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
    done
}

spawn_bg() { "$@" & pids+=("$!"); }

wait_for() {   # file pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "FAIL: timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

check() {      # "shell test" message
    if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi
}

# OS threads of process $1 that may run its threads: not corun's helpers
# (the monitor of blocking calls, spare OS threads waiting for work, the
# pool of offloaded calls), nor io_uring's kernel workers.
os_threads() {
    local n=0 t
    for t in /proc/"$1"/task/*; do
        case "$(cat "$t/comm" 2>/dev/null)" in
            corun-monitor|corun-spare|corun-pool|libuv-worker) ;;   # corun's helpers
            iou-wrk-*|iou-sqp-*) ;;                                 # io_uring's workers
            *) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}
# A green program runs on CORUN_PROCS OS threads at most (corun's workers
# start with its second thread), plus any the test expects besides.
corun_procs=${CORUN_PROCS:-$(nproc)}
os_threads_ok() { [ "$1" -ge 1 ] && [ "$1" -le "$corun_procs" ]; }
open_fds() { ls "/proc/$1/fd" | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

finish() {
    if [ "$fail" = 0 ]; then echo "PASS"; else echo "FAIL"; fi
    exit "$fail"
}
