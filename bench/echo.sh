#!/usr/bin/env bash
# Thread-per-connection echo server, side by side in one run: native threads,
# the same binary under coro-run, and a hand-written epoll server, natively
# and under coro-run (a program's own event loop must keep its speed). Each server
# is pinned to CPU 0, the client (examples/echo-load, itself under coro-run so
# it is one OS thread) to CPU 1. Median of REPS runs per configuration.
#   bench/echo.sh BUILD_DIR [CONNS] [MSGS] [SIZE] [REPS]
set -euo pipefail
server_pid= port=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT
build=${1:?usage: bench/echo.sh BUILD_DIR [CONNS] [MSGS] [SIZE] [REPS]}
conns=${2:-100} msgs=${3:-2000} size=${4:-64} reps=${5:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
# One fd per connection in the server and in the client, plus a few.
hard=$(ulimit -Hn)
want=$((conns + 100))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    echo "echo: $conns connections need $want open files, the hard limit is $hard" >&2; exit 1
fi
[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -ge "$want" ] || ulimit -n "$want"
corun=("$top/scripts/coro-run" --library "$build/.libs/libcorun.so")

start_server() {   # sets $server_pid and $port
    local out; out=$(mktemp)
    taskset -c 0 "$@" > "$out" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q listening "$out" && break
        sleep 0.05
    done
    port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$out")
    rm -f "$out"
}

run() {            # name, server command...
    local name=$1; shift
    local rates=() p99s=() tasks=""
    for _ in $(seq "$reps"); do
        start_server "$@"
        local line out; out=$(mktemp)
        taskset -c 1 "${corun[@]}" "$build/examples/echo-load" --port "$port" \
            --conns "$conns" --msgs "$msgs" --size "$size" > "$out" &
        local client=$!
        sleep $(( conns >= 1000 ? 1 : 0 )).3   # all connections open: count the server's threads
        tasks=$(ls "/proc/$server_pid/task" 2>/dev/null | wc -l)
        wait "$client" || true
        line=$(cat "$out"); rm -f "$out"
        kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true
        case "$line" in *errors=0*) ;; *) echo "echo: $name: client reported errors: $line" >&2; exit 1 ;; esac
        rates+=("$(sed -n 's/.*trips_per_s=\([0-9]*\).*/\1/p' <<<"$line")")
        p99s+=("$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$line")")
    done
    local rate p99
    rate=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(( (reps + 1) / 2 ))p")
    p99=$(printf '%s\n' "${p99s[@]}" | sort -n | sed -n "$(( (reps + 1) / 2 ))p")
    printf '%-28s %12s %10s %8s\n' "$name" "$rate" "$p99" "$tasks"
    # for scripts/bench: name conns rate p99 threads, then the per-run rates
    echo "@echo $name $conns $rate $p99 $tasks ${rates[*]}"
    eval "rate_${name//[^a-z]/_}=$rate"
}

printf 'echo: %d connections, %d round trips each, %d-byte messages, median of %d runs\n' \
       "$conns" "$msgs" "$size" "$reps"
printf '%-28s %12s %10s %8s\n' server "trips/s" "p99 us" "threads"
run native "$build/examples/echo-threaded"
run corun "${corun[@]}" "$build/examples/echo-threaded"
run epoll "$build/bench/echo-epoll"
run epoll_corun "${corun[@]}" "$build/bench/echo-epoll"
awk -v c="$rate_corun" -v n="$rate_native" -v e="$rate_epoll" -v ec="$rate_epoll_corun" \
    'BEGIN { printf "corun/native %.2fx   corun/epoll %.2fx   epoll under corun/epoll %.2fx\n", c / n, c / e, ec / e }'
