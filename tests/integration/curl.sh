#!/usr/bin/env bash
# Integration: libcurl (Debian's) inside a threaded program, green, with
# native threads under the preload, and without corun: tests/pt_curl. curl
# runs its own event loop (non-blocking sockets and poll, a resolver thread)
# and the same process' other thread must keep running meanwhile:
#  1. 40 threads each fetch a page the server answers after 0.5 s: every
#     body right, all in well under the 20 s of one at a time;
#  2. a 4 MiB download throttled by curl to 8 MiB/s: every byte right;
#  3. a fetch by host name (http://localhost:...), through curl's resolver.
# In green runs the program has one OS thread. Servers (python3, not under
# corun) on 127.0.0.1, clients bounded by timeout, servers killed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
lib="$build/.libs/libcorun.so"
prog="$build/tests/pt_curl"
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
[ -x "$prog" ] || { echo "SKIP: tests/pt_curl not built (libcurl4-openssl-dev missing at configure time)"; exit 77; }
work=$(mktemp -d)
pids=()
cleanup() { for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for() {   # file pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "FAIL: timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

python3 -u "$here/slow_server.py" 0.5 > "$work/slow.out" 2>&1 &
pids+=($!)
mkdir "$work/www"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 255 for i in range(4 << 20)))' \
    > "$work/www/blob"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www" > "$work/http.out" 2>&1 &
pids+=($!)
wait_for "$work/slow.out" '^port '
wait_for "$work/http.out" 'Serving HTTP'
export SLOW_PORT FILE_PORT
SLOW_PORT=$(awk '/^port/ {print $2}' "$work/slow.out")
FILE_PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.out" | head -n 1)

asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:verify_asan_link_order=0"
fail=0
for mode in parallel throttled localhost; do
    for how in green native plain; do
        env=(env -u LD_PRELOAD -u CORUN_THREADS ASAN_OPTIONS="$asan" no_proxy='*')
        [ "$how" = plain ] || env+=(LD_PRELOAD="$lib" CORUN_THREADS="$how")
        rc=0
        timeout 60 "${env[@]}" "$prog" "$mode" > "$work/out" 2> "$work/err" || rc=$?
        echo "$mode ($how): $(grep -v '^PASS' "$work/out" | tr '\n' ' ')"
        ok=1
        [ "$rc" = 0 ] && grep -q "^PASS $mode" "$work/out" || ok=0
        if [ "$how" = green ]; then
            tasks=$(sed -n 's/.*corun=1 green=1 max_tasks=\([0-9]*\)$/\1/p' "$work/out")
            [ -n "$tasks" ] && [ "$tasks" -le "${CORUN_PROCS:-$(nproc)}" ] || ok=0
        fi
        if [ "$ok" = 0 ]; then
            echo "FAIL: pt_curl $mode ($how) exited $rc"
            echo "--- stdout"; cat "$work/out"; echo "--- stderr"; cat "$work/err"
            fail=1
        fi
    done
done
[ "$fail" = 0 ] && echo "PASS: curl"
exit "$fail"
