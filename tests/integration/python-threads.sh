#!/usr/bin/env bash
# Integration: unmodified Python threads under coro-run.
#  1. the gevent crawler: 200 urllib threads against a ThreadingHTTPServer
#     whose every answer takes 0.5 s, both under coro-run: all 200 answers,
#     in well under the 100 s a serial fetch would take, on one OS thread each;
#  2. python3 -m http.server under coro-run serving 50 concurrent curl clients
#     correctly with one OS thread;
#  3. a thread parked in recv() while others run subprocesses: the children
#     (vfork, close_fds) must leave the parent's waiter alone;
#  4. a thread waiting for a child (waitpid) parks only itself.
# Loopback only, bounded by timeouts, servers killed on exit.
. "$(dirname "$0")/lib.sh"
needs python3 curl
# ---- 1. the crawler --------------------------------------------------------------
# Servers are started without a wrapper, so $! is the server itself (coro-run
# execs it); clients are bounded with timeout, servers killed on exit.
"${corun[@]}" python3 -u "$here/slow_server.py" 0.5 > "$work/slow.out" 2>&1 &
slow=$!
pids+=("$slow")
wait_for "$work/slow.out" '^port '
port=$(awk '/^port/ {print $2}' "$work/slow.out")
out=$(timeout 60 "${corun[@]}" python3 "$here/crawler.py" "$port" 200)
echo "crawler under coro-run: $out"
ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$out")
secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
threads=$(sed -n 's/.*threads=\([0-9]*\).*/\1/p' <<<"$out")
server_threads=$(os_threads "$slow")
[ "$ok" = 200 ] || { echo "FAIL: $ok of 200 answers right"; fail=1; }
# Concurrency, with a generous bound: serially this is 200 x 0.5 s = 100 s.
awk -v s="$secs" 'BEGIN { exit !(s < 10) }' || { echo "FAIL: took $secs s: not concurrent"; fail=1; }
os_threads_ok "$threads" || { echo "FAIL: the crawler ran on $threads OS threads"; fail=1; }
os_threads_ok "$server_threads" || { echo "FAIL: the server runs on $server_threads OS threads"; fail=1; }

# ---- 2. http.server and curl ----------------------------------------------------------
mkdir -p "$work/www"
head -c 100000 /dev/urandom > "$work/www/blob"
# CORUN_FILE_IO=inline: on a loaded machine the file's pages (or Python's
# modules) may leave the page cache, and a read that misses it runs on
# libuv's pool, whose threads would be counted below; this check is about
# the program's own threads.
CORUN_FILE_IO=inline "${corun[@]}" python3 -u -m http.server 0 --bind 127.0.0.1 \
    --directory "$work/www" > "$work/http.out" 2>&1 &
server=$!
pids+=("$server")
wait_for "$work/http.out" 'Serving HTTP'
port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.out" | head -n 1)
clients=()
for i in $(seq 50); do
    timeout 30 curl -s -o "$work/got.$i" "http://127.0.0.1:$port/blob" &
    clients+=($!)
done
sleep 0.2
server_threads=$(os_threads "$server")
for c in "${clients[@]}"; do wait "$c" || true; done
bad=0
for i in $(seq 50); do cmp -s "$work/www/blob" "$work/got.$i" || bad=$((bad + 1)); done
echo "http.server under coro-run: 50 curl downloads, $bad wrong, server OS threads $server_threads"
[ "$bad" = 0 ] || fail=1
os_threads_ok "$server_threads" || { echo "FAIL: http.server runs on $server_threads OS threads"; fail=1; }
# ---- 3. subprocesses while a thread waits ---------------------------------------
out=$(timeout 60 "${corun[@]}" python3 "$here/subprocess_while_waiting.py" 2>&1)
echo "subprocess while waiting: $out"
[ "$out" = "reader got b'hello' " ] || { echo "FAIL: the parked reader was disturbed"; fail=1; }

# ---- 4. waiting for a child parks only the waiting thread ------------------------
out=$(timeout 60 "${corun[@]}" python3 "$here/wait_child.py" 2>&1)
echo "wait for a child while another thread ticks: $out"
ticks=$(sed -n 's/.*ticks=\([0-9]*\).*/\1/p' <<<"$out")
[[ $out == rc=0* ]] && [ "${ticks:-0}" -ge 10 ] ||
    { echo "FAIL: the other thread did not run while one waited for its child"; fail=1; }

# ---- 5. a thread stuck in flock() holds up no other ------------------------------
# flock() on a lock another process holds for 0.5 s blocks its OS thread
# (corun cannot park it); with several OS threads the threads beside it go
# on once another OS thread takes over theirs (CORUN_HANDOFF_MS, 10 ms).
if command -v flock >/dev/null && [ "$corun_procs" -ge 2 ]; then
    : > "$work/lockfile"
    out=$(timeout 60 "${corun[@]}" python3 "$here/flock_tickers.py" "$work/lockfile" 2>&1)
    echo "a thread in flock beside 8 tickers: $out"
    gap=$(sed -n 's/.*worst_gap_ms=\([0-9]*\).*/\1/p' <<<"$out")
    [[ $out == rc=0\ waited=0.[3-9]* ]] && [ -n "$gap" ] && [ "$gap" -lt 250 ] ||
        { echo "FAIL: threads beside the one in flock waited (without the hand-off: ~450 ms)"; fail=1; }
fi

finish
