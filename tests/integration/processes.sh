#!/usr/bin/env bash
# Integration: processes and signals under coro-run.
#  1. a prefork Python server (listen, fork 4 workers that accept): 40
#     clients at once all answered right, each worker on one OS thread;
#  2. a thread-per-connection Python server stops cleanly on SIGTERM, with
#     connections parked in recv(): the signal interrupts the main thread's
#     accept() (EINTR), the handler's exception ends the loop, exit status 3;
#  3. a shell script under coro-run: its child programs are under corun too,
#     and not with CORUN_INHERIT=0 (nor do they see LD_PRELOAD or CORUN_*).
# Loopback only, bounded by timeouts, servers killed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
procs=${CORUN_PROCS:-$(nproc)}   # a green program runs on at most this many OS threads
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
lib="$build/.libs/libcorun.so"
if grep -q -- '-fsanitize' "$build/Makefile" 2>/dev/null; then
    echo "SKIP: preloading an ASan-built libcorun needs the ASan runtime first"; exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
export CORUN_THREADS=green    # make check sets native for the unit tests
corun=("$top/scripts/coro-run" --library "$lib")
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do pkill -KILL -P "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() {   # file pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "FAIL: timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}

fail=0
# ---- 1. prefork ------------------------------------------------------------------
"${corun[@]}" python3 -u "$here/prefork_server.py" > "$work/prefork.out" 2>&1 &
pids+=($!)
wait_for "$work/prefork.out" '^workers '
port=$(awk '/^port/ {print $2}' "$work/prefork.out")
out=$(timeout 30 python3 - "$port" "$procs" <<'PY'
import socket, sys, threading
port, procs = int(sys.argv[1]), int(sys.argv[2])
answers, bad = {}, []
def client(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(b"hello %d" % i)
    data = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        data += d
    pid, threads, msg = data.split(b" ", 2)
    if msg != b"hello %d" % i or not 1 <= int(threads) <= procs:
        bad.append(data)
    answers[i] = int(pid)
ts = [threading.Thread(target=client, args=(i,)) for i in range(40)]
for t in ts: t.start()
for t in ts: t.join()
print("answers=%d bad=%d workers_used=%d" % (len(answers), len(bad), len(set(answers.values()))))
PY
)
echo "prefork under coro-run: $out"
grep -q "answers=40 bad=0" <<<"$out" || { echo "FAIL: prefork server answers: $out"; fail=1; }
for w in $(awk '/^workers/ {for (i = 2; i <= NF; i++) print $i}' "$work/prefork.out"); do
    grep -q libcorun "/proc/$w/maps" || { echo "FAIL: worker $w is not under corun"; fail=1; }
done

# ---- 2. SIGTERM ---------------------------------------------------------------------
"${corun[@]}" python3 -u "$here/sigterm_server.py" > "$work/term.out" 2>&1 &
srv=$!
pids+=("$srv")
wait_for "$work/term.out" '^port '
port=$(awk '/^port/ {print $2}' "$work/term.out")
# Five idle connections whose threads stay parked in recv().
timeout 30 python3 - "$port" > "$work/clients.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
for i, s in enumerate(socks):
    s.sendall(b"x%d" % i)
    assert s.recv(10) == b"x%d" % i
print("connected", flush=True)
for s in socks:
    s.settimeout(20)
    assert s.recv(10) == b""       # the server shut them down
print("closed by server", flush=True)
PY
clients=$!
wait_for "$work/clients.out" '^connected'
threads=0   # but corun's helpers (monitor, spares), which run none of its threads
for t in /proc/"$srv"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in corun-monitor|corun-spare) ;; *) threads=$((threads + 1)) ;; esac
done
[ "$threads" -le "$procs" ] || { echo "FAIL: the server runs on $threads OS threads"; fail=1; }
kill -TERM "$srv"
status=0
timeout 20 tail --pid="$srv" -f /dev/null || { echo "FAIL: the server did not stop on SIGTERM"; fail=1; }
wait "$srv" || status=$?
wait "$clients" || { echo "FAIL: clients:"; cat "$work/clients.out"; fail=1; }
echo "SIGTERM server: $(cat "$work/term.out" | tail -n 1), status $status"
[ "$status" = 3 ] && grep -q "stopped cleanly after 5 connections" "$work/term.out" ||
    { echo "FAIL: the server did not stop cleanly:"; cat "$work/term.out"; fail=1; }

# ---- 3. inheritance ------------------------------------------------------------------
script='grep -c libcorun /proc/self/maps || true; env | grep -c "^CORUN_\|^LD_PRELOAD=" || true'
on=$(CORUN_STATS=0 timeout 20 "${corun[@]}" sh -c "$script")
off=$(CORUN_INHERIT=0 timeout 20 "${corun[@]}" sh -c "$script")
echo "children of a script: inherit on: $(echo $on), off: $(echo $off)"
[ "$(sed -n 1p <<<"$on")" -gt 0 ] || { echo "FAIL: the script's children are not under corun"; fail=1; }
[ "$(sed -n 1p <<<"$off")" = 0 ] && [ "$(sed -n 2p <<<"$off")" = 0 ] ||
    { echo "FAIL: with CORUN_INHERIT=0 the children still have corun: $off"; fail=1; }
# The shell itself is under corun either way.
shell_maps=$(CORUN_INHERIT=0 timeout 20 "${corun[@]}" sh -c 'read -r l < /proc/$$/maps; grep -c libcorun /proc/$$/maps')
[ "$shell_maps" -gt 0 ] || { echo "FAIL: with CORUN_INHERIT=0 the program itself lost corun"; fail=1; }

exit "$fail"
