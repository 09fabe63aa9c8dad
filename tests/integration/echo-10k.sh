#!/usr/bin/env bash
# Integration: the unmodified thread-per-connection examples/echo-threaded
# under coro-run with 10,000 concurrent connections (examples/echo-load, also
# under coro-run, checks every byte), twice. After each round every
# connection is closed: the server's fd count must be back to its value
# before the load, and its RSS must not grow from one round to the next (a
# leak of a few hundred bytes per connection would show as megabytes).
# The server must run on CORUN_PROCS OS threads at most throughout.
. "$(dirname "$0")/lib.sh"
conns=10000
# 10,000 sockets in each process (+ a few): within the 20,000 hard limit here.
need_fds=$((conns + 100))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fds" ]; then
    echo "SKIP: the open-files hard limit ($hard) is below $need_fds"; exit 77
fi
ulimit -n "$need_fds"

spawn_bg "${corun[@]}" "$build/examples/echo-threaded" > "$work/server.out" 2>&1
server=${pids[-1]}
wait_for "$work/server.out" 'listening on'
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/server.out")

load() {       # conns msgs size -> echo-load's line; a failed client fails the test
    local out
    out=$(timeout 120 "${corun[@]}" "$build/examples/echo-load" --port "$port" \
          --conns "$1" --msgs "$2" --size "$3") || { echo "FAIL: echo-load: $out"; fail=1; }
    echo "$out"
}
settle() {     # wait (up to 10 s) until the server holds $1 fds again,
               # then (up to 10 s) until its RSS stops falling: a thread that
               # closed its connection may not have ended yet (queued behind
               # thousands of others, or moving to another OS thread), and
               # holds its stack until it does (with stealing, 27 MiB above
               # the settled figure once, gone 0.5 s later)
    for _ in $(seq 200); do [ "$(open_fds "$server")" -le "$1" ] && break; sleep 0.05; done
    local prev now steady=0
    prev=$(rss_kb "$server")
    for _ in $(seq 100); do
        sleep 0.1
        now=$(rss_kb "$server")
        if [ $((prev - now)) -lt 256 ]; then steady=$((steady + 1)); else steady=0; fi
        [ "$steady" -ge 3 ] && return 0
        prev=$now
    done
}

# A warm-up round fills the stack pool and malloc arenas: the baseline.
load 100 10 1000 >/dev/null
settle 1000
base_fds=$(open_fds "$server")
base_rss=$(rss_kb "$server")
echo "server before the load: $base_fds fds, RSS $base_rss KiB"

for round in 1 2; do
    spawn_bg load "$conns" 10 1000 > "$work/load.$round"
    loader=${pids[-1]}
    # While the connections are open: the server holds about 10,000 fds on one OS thread.
    peak_fds=0
    for _ in $(seq 100); do
        n=$(open_fds "$server"); [ "$n" -gt "$peak_fds" ] && peak_fds=$n
        [ "$peak_fds" -ge "$conns" ] && break
        sleep 0.05
    done
    threads=$(os_threads "$server")
    wait "$loader" || true
    line=$(cat "$work/load.$round")
    settle "$base_fds"
    fds=$(open_fds "$server") rss=$(rss_kb "$server")
    eval "rss_$round=$rss"
    echo "round $round: $line"
    echo "round $round: server peak fds $peak_fds, OS threads $threads; after: $fds fds, RSS $rss KiB"
    check '[[ $line == *"conns=$conns trips=$((conns * 10)) errors=0 "* ]]' "round $round: byte errors or missing round trips"
    # Sampled, and the first clients may finish before the server has
    # accepted the last ones: most, not all, must have been open at once.
    check '[ "$peak_fds" -ge $((conns * 9 / 10)) ]' "round $round: the server held at most $peak_fds fds at once"
    check 'os_threads_ok "$threads"' "round $round: the server ran on $threads OS threads"
    check '[ "$fds" = "$base_fds" ]' "round $round: $((fds - base_fds)) fds leaked"
done
# Stacks of finished threads may stay pooled (bounded); nothing may grow
# per connection: 10,000 more connections may not cost 2 MiB more.
check '[ $((rss_2 - rss_1)) -lt 2048 ]' "RSS grew by $((rss_2 - rss_1)) KiB from round 1 to round 2"
check '[ $((rss_2 - base_rss)) -lt 65536 ]' "RSS stayed $((rss_2 - base_rss)) KiB above the baseline"
finish
