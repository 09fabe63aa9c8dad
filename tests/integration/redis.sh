#!/usr/bin/env bash
# Integration: Debian's redis-server with its default configuration under
# coro-run. Redis is linked with jemalloc, whose background threads (on by
# default) are started with the pthread_create jemalloc finds by
# dlsym(RTLD_NEXT): glibc's, so they are kernel threads corun did not make,
# waiting on condvars that Redis's green threads signal (before corun's sync
# objects served every caller, Redis crashed on its first requests):
#  1. SET/GET through redis-cli, values checked (binary-safe, 1 MiB too);
#  2. redis-benchmark -n 20000 -c 50 -t set,get (the client runs natively),
#     every figure above a sane floor, natively and under coro-run in this
#     run (requests/s printed side by side);
#  3. the server still answers PING; SHUTDOWN NOSAVE, exit status 0.
# Private directory, 127.0.0.1, a free port, --save '' (no dump files).
source "$(dirname "$0")/lib.sh"
needs redis-server redis-cli redis-benchmark python3

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_server LABEL CMD...: start redis-server, wait until it answers.
run_server() {
    local label=$1; shift
    port=$(free_port)
    mkdir -p "$work/$label"
    "$@" redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$label" --save '' \
        --logfile "$work/$label/log" > "$work/$label/out" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do
        [ "$(timeout 2 redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    echo "FAIL: $label redis-server never answered"; cat "$work/$label/out" "$work/$label/log"; exit 1
}

cli() { timeout 10 redis-cli -p "$port" "$@"; }

# bench LABEL: redis-benchmark's requests/s for SET and GET into $set $get.
bench() {
    timeout 60 redis-benchmark -p "$port" -n 20000 -c 50 -t set,get -q > "$work/$1/bench" 2>&1 || true
    set_rps=$(tr '\r' '\n' < "$work/$1/bench" | awk '/^SET: [0-9.]+ requests per second/ { print int($2) }')
    get_rps=$(tr '\r' '\n' < "$work/$1/bench" | awk '/^GET: [0-9.]+ requests per second/ { print int($2) }')
}

stop_server() {   # label
    check "[ \"\$(cli shutdown nosave 2>&1)\" = '' ]" "$1: SHUTDOWN NOSAVE answered something"
    local st=0
    timeout 20 tail --pid="$server" -f /dev/null || true
    wait "$server" || st=$?
    check "[ $st = 0 ]" "$1: redis-server exited with status $st: $(tail -n 20 "$work/$1/log")"
}

# Natively first, for the figures.
run_server native
bench native
native_set=$set_rps native_get=$get_rps
stop_server native

run_server corun "${corun[@]}"
threads=$(os_threads "$(pgrep -P "$server" redis-server || echo "$server")" 2>/dev/null || echo '?')
check "[ \"\$(cli set greeting 'hello, corun')\" = OK ]" "SET answered"
check "[ \"\$(cli get greeting)\" = 'hello, corun' ]" "GET returned the value"
python3 -c 'import sys; sys.stdout.write("".join(chr(97 + i * 7 % 26) for i in range(1 << 20)))' > "$work/big"
cli -x set big < "$work/big" > /dev/null
cli --raw get big > "$work/big.raw"        # then cut: a pipe into head could SIGPIPE redis-cli
head -c $((1 << 20)) "$work/big.raw" > "$work/big.back"
check "cmp -s '$work/big' '$work/big.back'" "a 1 MiB value came back different"
for i in $(seq 100); do echo "SET key:$i value:$((i * i))"; done | cli > /dev/null
check "[ \"\$(cli dbsize)\" = 102 ]" "DBSIZE after 100 pipelined SETs: $(cli dbsize)"
check "[ \"\$(cli get key:77)\" = value:5929 ]" "GET key:77"
bench corun
check "[ '${set_rps:-0}' -gt 1000 ] && [ '${get_rps:-0}' -gt 1000 ]" \
    "redis-benchmark under coro-run: SET ${set_rps:-none} GET ${get_rps:-none} requests/s: $(tr '\r' '\n' < "$work/corun/bench" | tail -n 5)"
check "[ \"\$(cli ping)\" = PONG ]" "PING after the benchmark"
check "grep -q 'jemalloc-bg-thread yes' <(cli config get jemalloc-bg-thread | paste -sd' ')" \
    "jemalloc background threads are not on"
stop_server corun
check "! grep -q 'crashed by signal' '$work/corun/log'" "redis crashed: $(grep -A3 'crashed' "$work/corun/log" | head -n 4)"

echo "redis-benchmark -n 20000 -c 50 (requests/s): native SET $native_set GET $native_get;" \
     "coro-run SET ${set_rps:-none} GET ${get_rps:-none}; coro-run OS threads: $threads"
finish
