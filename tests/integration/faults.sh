#!/usr/bin/env bash
# Integration: faults, nothing hangs and nothing is lost (faults.py).
#  1. the thread-per-connection examples/echo-threaded under coro-run, with
#     misbehaving clients (native Python, then the same under coro-run):
#     50 stalled connections (slowloris) while 20 others are served, 20 resets
#     mid-stream, 20 half-closes that must get every byte back; afterwards the
#     server holds no more fds than before, runs on one OS thread and still
#     serves (examples/echo-load checks every byte);
#  2. under coro-run, both ends in one Python process: close() and shutdown()
#     from another thread while one waits in recv()/accept(), a peer reset
#     while a thread is blocked sending, a receive timeout on a stalled peer.
. "$(dirname "$0")/lib.sh"
needs python3

spawn_bg "${corun[@]}" "$build/examples/echo-threaded" > "$work/server.out" 2>&1
server=${pids[-1]}
wait_for "$work/server.out" 'listening on'
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/server.out")
# One connection first: with CORUN_PROCS > 1 the first thread starts corun's
# workers, whose fds (epoll sets, eventfds) stay.
timeout 30 "$build/examples/echo-load" --port "$port" --conns 2 --msgs 1 --size 10 > /dev/null || true
sleep 0.3
base_fds=$(open_fds "$server")
settle() {     # wait (up to 10 s) until the server holds $1 fds again
    for _ in $(seq 200); do [ "$(open_fds "$server")" -le "$1" ] && return 0; sleep 0.05; done
}

for how in native coro-run; do
    prefix=()
    [ "$how" = coro-run ] && prefix=("${corun[@]}")
    status=0
    timeout 90 "${prefix[@]}" python3 "$here/faults.py" peers "$port" > "$work/peers.out" 2>&1 || status=$?
    sed "s/^/1. ($how clients) /" "$work/peers.out"
    check '[ "$status" = 0 ]' "faults.py peers ($how) exited with status $status"
    settle "$base_fds"
    fds=$(open_fds "$server")
    check '[ "$fds" = "$base_fds" ]' "the server holds $fds fds after the faulty clients left, $base_fds before"
    check 'os_threads_ok "$(os_threads "$server")"' "the server runs on $(os_threads "$server") OS threads"
done
out=$(timeout 60 "${corun[@]}" "$build/examples/echo-load" --port "$port" --conns 100 --msgs 20 --size 1000) ||
    true
echo "1. the server afterwards: $out"
check '[[ $out == *"trips=2000 errors=0 "* ]]' "the server no longer serves right after the faults"

status=0
CORUN_STATS=1 timeout 60 "${corun[@]}" python3 "$here/faults.py" local > "$work/local.out" 2>&1 ||
    status=$?
# Its output without the stats tables (a traceback's lines stay).
awk '/^corun stats \(pid /{t=1;next} t&&/^  /{next} {t=0;print}' "$work/local.out" | sed 's/^/2. /'
check '[ "$status" = 0 ]' "faults.py local exited with status $status"
# A call corun cannot park that stays stuck (flock, a device, a call it
# does not know) hands an M:N worker's scheduler to a spare OS thread: the
# stuck one counts until it returns (the process's first one for good).
handed=$(sed -n 's/^  handed to a spare OS thread *\([0-9]*\)$/\1/p' "$work/local.out" | sort -n | tail -n 1)
threads=$(sed -n "s/^os_threads=\([0-9]*\).*/\1/p" "$work/local.out")
check '[ -n "$handed" ] && [ "$threads" -ge 1 ] && [ "$threads" -le $((corun_procs + handed)) ]' \
    "faults.py local ran on $threads OS threads (CORUN_PROCS $corun_procs, $handed handed over)"
finish
