#!/usr/bin/env bash
# Integration: MariaDB 10.11 (Debian's mariadb-server, mariadb-client) with a
# private datadir (mariadb-install-db into the work directory), on 127.0.0.1,
# a free port and its socket in the work directory. Each run:
#  1. the server is ready (mariadb-admin ping);
#  2. mariadb-slap --concurrency=50 (the client runs natively) inserts 5000
#     rows, 100 per client: count, sum and distinct ids checked; then 5000
#     SELECTs at concurrency 50 succeed;
#  3. OS threads and peak RSS (VmHWM) of the server are printed side by side;
#  4. mariadb-admin shutdown; the server exits 0.
# Three runs, all with MariaDB's default options (InnoDB's io_uring native
# aio included): natively; under coro-run --threads native (the I/O hooks
# with kernel threads); under coro-run with its defaults: green threads,
# each with TLS of its own (MariaDB keeps the current connection, tpool's
# worker data and InnoDB's group-commit waiter in thread_local variables;
# with shared TLS it crashed at start-up), InnoDB's latches waiting in raw
# syscall(SYS_futex) calls (green futexes) and liburing's own
# io_uring_enter instructions caught (CORUN_CATCH) and parked. Where own TLS
# and the catch cannot be had (a sanitizer build) the green run is skipped,
# saying so. Everything is bounded; the servers are killed by pid on exit.
source "$(dirname "$0")/lib.sh"
server_bin=/usr/sbin/mariadbd
[ -x "$server_bin" ] || { echo "SKIP: $server_bin not installed (mariadb-server)"; exit 77; }
needs mariadb-install-db mariadb mariadb-admin mariadb-slap python3 timeout
as_user=()
[ "$(id -u)" = 0 ] && as_user=(--user=root)    # mariadbd refuses root otherwise

# One datadir made once, copied for each run so every run starts the same.
timeout 60 mariadb-install-db --no-defaults --datadir="$work/seed" "${as_user[@]}" \
    --auth-root-authentication-method=normal --skip-test-db > "$work/install.log" 2>&1 ||
    { echo "FAIL: mariadb-install-db"; tail -n 20 "$work/install.log"; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server LABEL "MARIADBD OPTIONS" PREFIX...: start mariadbd (exec'd
# by PREFIX, so $server is its pid) and wait up to 30 s until it answers.
# Returns 1 (with $why set) if it died or never answered.
start_server() {
    local label=$1 opts=$2; shift 2
    dir="$work/$label"
    mkdir -p "$dir"
    cp -a "$work/seed" "$dir/data"
    port=$(free_port)
    sock="$dir/sock"
    # shellcheck disable=SC2086  # the options are words
    "$@" "$server_bin" --no-defaults --datadir="$dir/data" "${as_user[@]}" --socket="$sock" \
        --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/pid" \
        --log-error="$dir/err.log" $opts > "$dir/out" 2>&1 &
    server=$!
    pids+=("$server")
    why=
    local deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        # -k: a ping to a hung server ignored timeout's SIGTERM (seen: 40 min)
        timeout -k 1 2 mariadb-admin --no-defaults -uroot --socket="$sock" --connect-timeout=2 \
            ping > /dev/null 2>&1 && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    stopped_where "never ready"
    return 1
}

# stopped_where WHAT: $why = what the server was doing when it stopped.
stopped_where() {
    if kill -0 "$server" 2>/dev/null; then
        why="$1: alive, its OS threads in: $(for t in /proc/"$server"/task/*; do
            echo -n "$(cat "$t/wchan" 2>/dev/null) (syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)); "; done)"
        if [ -n "${dump_sig:-}" ]; then
            kill -s "$dump_sig" "$server" 2>/dev/null || true
            sleep 1
            why+=$'\n'"live dump: $(grep -v '^ *#[0-9]' "$dir/corun.log" 2>/dev/null | head -n 40 || true)"
        fi
        kill -9 "$server" 2>/dev/null || true
    else
        local st=0
        wait "$server" 2>/dev/null || st=$?
        why="$1: exited with status $st; $(grep -m1 'got signal' "$dir/err.log" 2>/dev/null || true)"
        why+=$'\n'"$(sed -n '/^Thread pointer/,/^Writing a core/p' "$dir/err.log" 2>/dev/null |
            grep -v -e addr2line -e 'Printing to' | head -n 16 || true)"
        if [ -s "$dir/out" ]; then why+=$'\n'"$(head -n 10 "$dir/out")"; fi
    fi
}

sql() { timeout -k 1 20 mariadb --no-defaults -uroot --socket="$sock" -N -B "$@"; }

slap() {   # QUERY: 5000 queries from 50 clients over TCP
    timeout -k 1 60 mariadb-slap --no-defaults -uroot -h127.0.0.1 -P"$port" --protocol=tcp \
        --concurrency=50 --iterations=1 --number-of-queries=5000 --create-schema=slap \
        --query="$1" >> "$dir/slap.log" 2>&1
}

# workload LABEL: steps 2-4; a failing step sets $why and returns 1.
workload() {
    sql -e 'create database slap; create table slap.t (id int auto_increment primary key, c int not null) engine=innodb' \
        > "$dir/sql.log" 2>&1 || { stopped_where "create table failed: $(cat "$dir/sql.log")"; return 1; }
    local t0 t1
    t0=$(date +%s%N)
    slap 'INSERT INTO t (c) VALUES (7)' || { stopped_where "mariadb-slap INSERT failed: $(tail -n 3 "$dir/slap.log")"; return 1; }
    t1=$(date +%s%N)
    insert_ms=$(((t1 - t0) / 1000000))
    rows=$(sql -e 'select count(*), sum(c), count(distinct id) from slap.t' 2>&1 | tr '\t' ' ') ||
        { stopped_where "count query failed: $rows"; return 1; }
    [ "$rows" = '5000 35000 5000' ] || { why="rows after 5000 INSERTs (count sum distinct): $rows"; return 1; }
    slap 'SELECT COUNT(*) FROM t WHERE c = 7' || { stopped_where "mariadb-slap SELECT failed: $(tail -n 3 "$dir/slap.log")"; return 1; }
    threads=$(os_threads "$server")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
    timeout -k 1 30 mariadb-admin --no-defaults -uroot --socket="$sock" shutdown > /dev/null 2>&1 ||
        { stopped_where "mariadb-admin shutdown failed"; return 1; }
    timeout 30 tail --pid="$server" -f /dev/null || { stopped_where "no exit 30 s after shutdown"; return 1; }
    local st=0
    wait "$server" || st=$?
    [ "$st" = 0 ] || { why="exit status $st after shutdown: $(tail -n 5 "$dir/err.log")"; return 1; }
    echo "$1: ready, 5000 rows checked, INSERT slap ${insert_ms} ms, OS threads $threads, VmHWM $hwm kB"
}

# 1. Natively, with MariaDB's defaults.
start_server native '' || { echo "FAIL: native: $why"; exit 1; }
workload native || { echo "FAIL: native: $why"; exit 1; }
native_line="native: INSERT slap ${insert_ms} ms, OS threads $threads, VmHWM $hwm kB"

# 2. coro-run --threads native: the hooks, kernel threads, MariaDB's defaults.
if start_server corun-native '' "${corun[@]}" --threads native; then
    check "grep -q libcorun.so /proc/$server/maps" "coro-run --threads native: libcorun.so not loaded in the server"
    if workload corun-native; then
        corun_native_line="coro-run --threads native: INSERT slap ${insert_ms} ms, OS threads $threads, VmHWM $hwm kB"
    else
        echo "FAIL: coro-run --threads native: $why"; fail=1
    fi
else
    echo "FAIL: coro-run --threads native: $why"; fail=1
fi

# 3. coro-run with its defaults: green threads, own TLS, the catch.
dump_sig=RTMIN+2
tls_mode=$(CORUN_CHECK_ONLY=tls LD_PRELOAD="$lib" /bin/true 2>/dev/null || true)
green=pass
if [[ $tls_mode == own* ]]; then
    mkdir -p "$work/corun-green"
    if start_server corun-green '' "${corun[@]}" \
            --dump-signal "$dump_sig" --log-file "$work/corun-green/corun.log"; then
        workload corun-green || green=fail
    else
        green=fail
    fi
else
    green=skip
fi

echo "$native_line"
echo "${corun_native_line:-coro-run --threads native: failed}"
if [ "$green" = fail ]; then
    echo "FAIL: coro-run (green threads, own TLS) stopped: $why"
    fail=1
elif [ "$green" = skip ]; then
    echo "coro-run (green threads): not run: green threads need their own TLS and the catch," \
         "which this build does not give by default ($tls_mode)"
    if [ "$fail" = 0 ]; then
        echo "SKIP: the green-thread run needs own TLS and the catch; natively and under coro-run" \
             "--threads native it passed"
        exit 77
    fi
else
    echo "coro-run (green threads, own TLS): ready, 5000 rows checked, INSERT slap ${insert_ms} ms, OS threads $threads, VmHWM $hwm kB"
fi
finish
