#!/usr/bin/env bash
# Integration: socat and nc (netcat-openbsd), every one under coro-run, as
# both ends and the middle of pipe-and-socket chains; the bytes that come out
# must be the bytes that went in, and every process must end by itself.
#  1. pipe -> socat -> TCP -> socat relay -> UNIX socket -> nc -l -> pipe ->
#     socat -> file, 8 MB;
#  2. socat TCP-LISTEN,fork + EXEC:cat as an echo server (fork and exec under
#     the preload), 5 concurrent nc -N clients each sending 1 MB and reading
#     it back while still sending.
. "$(dirname "$0")/lib.sh"
needs socat nc python3
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listen() {   # port: until a socket listens on 127.0.0.1:port (10 s)
    local hex; hex=$(printf '0100007F:%04X' "$1")
    for _ in $(seq 200); do
        awk -v a="$hex" '$2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp && return 0
        sleep 0.05
    done
    echo "FAIL: nothing listens on port $1"; exit 1
}
wait_path() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "FAIL: no socket $1"; exit 1; }

# ---- 1. a chain ----------------------------------------------------------------------
head -c 8000000 /dev/urandom > "$work/in"
port=$(free_port)
# the far end: nc listening on a UNIX socket, its output piped into socat
spawn_bg bash -c "timeout 60 ${corun[*]} nc -lU '$work/sock' < /dev/null |
                  timeout 60 ${corun[*]} socat -u - CREATE:'$work/out'"
sink=${pids[-1]}
wait_path "$work/sock"
# the middle: TCP to UNIX relay
spawn_bg timeout 60 "${corun[@]}" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" \
    "UNIX-CONNECT:$work/sock"
relay=${pids[-1]}
wait_listen "$port"
# the near end: a pipe into socat, which connects to the relay
# shellcheck disable=SC2002  # cat: the sender must read a pipe, not a file
cat "$work/in" | timeout 60 "${corun[@]}" socat -u - "TCP:127.0.0.1:$port" ||
    echo "the sending socat exited with $?"
status=0
wait "$relay" || status=$?
check '[ "$status" = 0 ]' "the relay socat exited with status $status"
status=0
wait "$sink" || status=$?
check '[ "$status" = 0 ]' "nc -l | socat exited with status $status"
check 'cmp -s "$work/in" "$work/out"' "the 8 MB that came out of the chain differ from what went in"
echo "1. pipe | socat | TCP | socat | UNIX | nc -l | socat > file: $(stat -c %s "$work/out") bytes out of 8000000"

# ---- 2. socat fork+exec echo server, nc clients -----------------------------------------
port=$(free_port)
spawn_bg timeout 60 "${corun[@]}" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" EXEC:cat
wait_listen "$port"
head -c 1000000 /dev/urandom > "$work/in2"
clients=()
for i in 1 2 3 4 5; do
    timeout 60 "${corun[@]}" nc -N 127.0.0.1 "$port" < "$work/in2" > "$work/out2.$i" &
    clients+=($!)
done
bad=0
for i in 1 2 3 4 5; do
    wait "${clients[$((i - 1))]}" || { echo "client $i exited with $?"; bad=$((bad + 1)); continue; }
    cmp -s "$work/in2" "$work/out2.$i" || bad=$((bad + 1))
done
echo "2. socat fork/exec cat echo server, 5 nc clients x 1 MB: $bad wrong"
check '[ "$bad" = 0 ]' "$bad of 5 nc clients got back other bytes than they sent"
finish
