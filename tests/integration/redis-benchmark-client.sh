#!/usr/bin/env bash
# Integration: redis-benchmark --threads 4 under coro-run, against a
# redis-server run natively (loopback, a free port, a private directory).
# Its four threads become green threads on one OS thread; a thread that has
# issued its share of requests loops on epoll_wait, which returns at once
# (EPOLLOUT it never consumes), until the others have their replies: before
# such calls let the other green threads run, the benchmark spun at 100%
# CPU forever. It must finish, report both tests, and the server must have
# served exactly 20,000 SETs and 20,000 GETs.
. "$(dirname "$0")/lib.sh"
needs redis-server redis-cli redis-benchmark python3
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
mkdir "$work/data"
spawn_bg redis-server --port "$port" --bind 127.0.0.1 --dir "$work/data" --save '' \
    --appendonly no --daemonize no --logfile "$work/server.log"
for _ in $(seq 200); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
[ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || { echo "FAIL: redis-server did not start"; cat "$work/server.log"; exit 1; }

calls() {      # command -> calls counted by the server since the last reset
    redis-cli -p "$port" info commandstats | tr -d '\r' |
        sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"
}
bench() {      # label, command prefix...
    local label=$1 status=0
    shift
    redis-cli -p "$port" config resetstat >/dev/null
    timeout 60 "$@" redis-benchmark -h 127.0.0.1 -p "$port" --threads 4 -n 20000 -c 50 \
        -t set,get -q > "$work/$label.out" 2>&1 || status=$?
    tr '\r' '\n' < "$work/$label.out" | grep 'requests per second' > "$work/$label.rps" || true
    echo "$label: exit $status; $(tr '\n' ' ' < "$work/$label.rps")"
    check '[ "$status" = 0 ]' "redis-benchmark ($label) exited with status $status (124: timed out)"
    check 'grep -q "^SET: .* requests per second" "$work/$label.rps"' "no SET result ($label)"
    check 'grep -q "^GET: .* requests per second" "$work/$label.rps"' "no GET result ($label)"
    local sets gets
    sets=$(calls set) gets=$(calls get)
    check '[ "$sets" = 20000 ] && [ "$gets" = 20000 ]' \
        "the server served ${sets:-0} SETs and ${gets:-0} GETs for $label, not 20000 each"
}
bench native env
bench coro-run "${corun[@]}"
check '[ "$(redis-cli -p "$port" get key:__rand_int__ | wc -c)" = 4 ]' "the benchmark's key does not hold its 3-byte value"
finish
