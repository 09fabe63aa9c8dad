#!/usr/bin/env bash
# Integration: OpenJDK 17 (Debian's openjdk-17-jdk-headless) under coro-run.
# `java -version` must exit 0 with the same output as natively, and a
# thread-per-connection echo server (EchoServer.java, compiled with javac
# into the work directory) must serve 50 concurrent clients (a Python
# client run natively, echo_clients.py, every byte compared) and exit 0.
# Both run with CORUN_THREADS=native (the JVM's threads stay kernel
# threads, its blocking I/O goes through corun) and with green threads.
#
# Green threads run with coro-run's defaults: TLS of their own (HotSpot
# keeps Thread::current() in a thread_local; with shared TLS the JVM
# stopped at start-up in an internal check, "guarantee(Heap_lock->
# owned_by_self()) failed"), its safepoint barrier's raw syscall(SYS_futex)
# waits parked (green futexes), and the calls no hook sees caught (HotSpot
# fills its signal handlers' masks: corun keeps SIGSYS out of them). Where
# own TLS is not the default (a sanitizer build) the green part is skipped,
# saying so, and if nothing else failed the test exits 77.
. "$(dirname "$0")/lib.sh"
needs java javac python3
conns=50 per_conn=262144

classes="$work/classes"
mkdir -p "$classes"
timeout 120 javac -d "$classes" "$here/EchoServer.java" || { echo "FAIL: javac"; exit 1; }
native_version=$(timeout 60 java -version 2>&1) || { echo "FAIL: java -version natively"; exit 1; }
limitation=

# java -version under coro-run with CORUN_THREADS=$1; true if it passed.
version_under() {
    local out rc=0 report="$work/hs_err_version_$1.log"
    out=$(timeout -k 10 60 "${corun[@]}" --threads "$1" "${tls_opt[@]}" java -XX:ErrorFile="$report" -version 2>&1) || rc=$?
    if [ "$rc" = 0 ] && [ "$out" = "$native_version" ]; then
        echo "java -version, $1 threads: same output as natively, exit 0"
        return 0
    fi
    echo "FAIL: java -version, $1 threads: exit $rc (124, 137: timed out), output:"
    echo "$out"
    [ -f "$report" ] && sed -n '1,40p' "$report"
    fail=1
    return 1
}

# The echo server under coro-run with CORUN_THREADS=$1.
echo_under() {
    local out="$work/server.$1" report="$work/hs_err_echo_$1.log" port= line rc=0
    spawn_bg timeout -k 10 90 "${corun[@]}" --threads "$1" "${tls_opt[@]}" java -XX:ErrorFile="$report" \
        -cp "$classes" EchoServer "$conns" > "$out" 2>&1
    local server=${pids[-1]}
    for _ in $(seq 600); do   # up to 60 s: the JVM starts slowly on a busy machine
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
        [ -n "$port" ] || ! kill -0 "$server" 2>/dev/null && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "FAIL: echo server, $1 threads: not listening; its output:"; cat "$out"
        fail=1
        return
    fi
    line=$(timeout 60 python3 "$here/echo_clients.py" "$port" "$conns" "$per_conn" 2>&1) || true
    wait "$server" || rc=$?
    echo "echo server, $1 threads: clients: $line; server: $(tail -n1 "$out"), exit $rc"
    check '[[ $line == *"conns=$conns bytes=$((conns * per_conn)) errors=0"* ]]' \
        "echo server, $1 threads: bytes lost or wrong"
    check '[ "$rc" = 0 ] && grep -q "^served $conns connections, $((conns * per_conn)) bytes$" "$out"' \
        "echo server, $1 threads: exit $rc, output: $(cat "$out")"
}

tls_mode=$(CORUN_CHECK_ONLY=tls LD_PRELOAD="$lib" /bin/true 2>/dev/null || true)
for mode in native green; do
    tls_opt=()
    if [ "$mode" = green ]; then
        if [[ $tls_mode != own* ]]; then
            limitation="green threads need their own TLS, which this build does not give by default ($tls_mode)"
            continue
        fi
    fi
    if version_under "$mode"; then
        echo_under "$mode"
    fi
done
if [ "$fail" = 0 ] && [ -n "$limitation" ]; then
    echo "SKIP (the rest passed): $limitation"
    exit 77
fi
finish
