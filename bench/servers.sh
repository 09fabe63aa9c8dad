#!/usr/bin/env bash
# Real servers natively and under coro-run, side by side in one run (issue 14):
#   bench/servers.sh BUILD_DIR OUTDIR REPS [SECTION...]
# Sections (default: all three):
#   redis     redis-server 7, Debian's defaults but --save '' (no dump files
#             mid-run); redis-benchmark -n 20000 -c 50 -t set,get,incr,lpush
#   postgres  PostgreSQL 15 as the postgres user: pgbench -i -s 1, then
#             pgbench -c 10 -T 10 (tps)
#   mariadb   MariaDB 10.11 with its default options: mariadb-slap
#             --concurrency=50, 5000 INSERTs then 5000 SELECTs (seconds),
#             natively, under coro-run --threads native and under coro-run's
#             defaults (green threads, own TLS, the catch). Other modes by
#             BENCH_MARIADB_MODES (native-gopts, corun-green-gopts,
#             corun-green-pool4, corun-green-offload: the options
#             tests/integration/mariadb.sh used before green threads ran
#             MariaDB's defaults); BENCH_MARIADB_TRIES=1 adds one try of
#             shared TLS, which crashes it.
# Only the server runs under coro-run; clients run natively. The server is
# pinned to CPU 0 and the client to CPU 1, as in bench/echo.sh (BENCH_PIN=0:
# no pinning). Each of the REPS rounds runs every mode once, in turn, so the
# modes alternate. OS threads: the most seen in /proc/PID/status (server and
# its child processes) while the load ran, sampled every 0.1 s; peak RSS: the
# server's VmHWM after the load. Markdown on stdout, progress on stderr, raw
# client and server output kept under OUTDIR/servers/.
# Loopback only, ports from 17xxx up (the first free one), private data
# directories in a temporary directory removed on exit; every server runs
# under timeout and is killed by its pid on exit, every client under timeout.
set -euo pipefail
usage="usage: bench/servers.sh BUILD_DIR OUTDIR REPS [redis|postgres|mariadb...]"
build=$(cd "${1:?$usage}" && pwd)
out=${2:?$usage} reps=${3:?$usage}
shift 3
(($#)) || set -- redis postgres mariadb
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "servers: REPS must be a positive integer" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
lib=$build/.libs/libcorun.so
[[ -f $lib ]] || { echo "servers: $lib not built" >&2; exit 1; }
corun=("$top/scripts/coro-run" --library "$lib")
raw=$out/servers
mkdir -p "$raw"
log() { echo "servers: $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

srv_limit=300    # seconds any one server may live (timeout kills it after)
spin=() cpin=()
if [[ ${BENCH_PIN:-1} != 0 ]] && (($(nproc) >= 2)); then spin=(taskset -c 0) cpin=(taskset -c 1); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/corun-servers.XXXXXX")
chmod 755 "$work"          # the postgres user must reach its data directory
pidfiles=()                # pid files of servers we started: killed on exit
# Our background jobs (timeout, runuser, samplers) get TERM first (timeout
# passes it on to its server), then each job's process tree gets KILL (a
# server hung before writing its pid file blocks TERM: MariaDB with green
# threads), and every server still named in its pid file and its children.
kill_tree() { local c; for c in $(pgrep -P "$1" || true); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null || true; }
cleanup() {
    local f p
    for p in $(jobs -p); do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $(jobs -p); do kill_tree "$p"; done
    for f in ${pidfiles[@]+"${pidfiles[@]}"}; do
        p=$(head -n 1 "$f" 2>/dev/null) || continue
        [[ $p =~ ^[0-9]+$ ]] || continue
        pkill -KILL -P "$p" 2>/dev/null || true    # a postmaster's backends
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port BASE: the first port from BASE up that nothing holds on 127.0.0.1
# (other test runs may have servers on their own ports meanwhile).
free_port() {
    python3 - "$1" <<'EOF'
import socket, sys
for p in range(int(sys.argv[1]), int(sys.argv[1]) + 500):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()
else:
    sys.exit("no free port")
EOF
}

# sample_start PID FILE: in the background, every 0.1 s, writes to FILE the
# most OS threads and processes seen in PID and its children, and the largest
# VmHWM of a child (postgres backends), until sample_stop.
sample_start() {
    local pid=$1 file=$2
    echo "0 0 0" > "$file"
    (
        mt=0 mp=0 mh=0
        while kill -0 "$pid" 2>/dev/null; do
            read -r t p h < <(for q in "$pid" $(pgrep -P "$pid" || true); do
                                  { echo "pid $q"; cat "/proc/$q/status"; } 2>/dev/null
                              done | awk -v main="$pid" '
                /^pid / { cur = $2 } /^Threads:/ { t += $2; p++ }
                /^VmHWM:/ && cur != main && $2 > h { h = $2 }
                END { print t + 0, p + 0, h + 0 }')
            ((t > mt)) && mt=$t
            ((p > mp)) && mp=$p
            ((h > mh)) && mh=$h
            echo "$mt $mp $mh" > "$file.new" && mv "$file.new" "$file"
            sleep 0.1
        done
    ) &
    sampler=$!
}
sample_stop() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }

hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Results: one line per figure, "SERVER MODE REP KEY VALUE", in $work/results.
results=$work/results
: > "$results"
put() { echo "$1 $2 $3 $4 $5" >> "$results"; }
fails=$work/fails     # "SERVER MODE REP reason..."
: > "$fails"
failed() {   # SERVER MODE ROUND WHAT...: one line in $fails
    local s=$1 m=$2 r=$3 what; shift 3
    what=$(printf '%s' "$*" | tr '\n' ' ')
    echo "$s $m $r $what" >> "$fails"; log "$s $m run $r FAILED: $what"
}

# vals SERVER MODE KEY: the values over the rounds, in round order.
vals() { awk -v s="$1" -v m="$2" -v k="$3" '$1 == s && $2 == m && $3 > 0 && $4 == k { print $5 }' "$results"; }
# stat: median (of the middle two for an even count: a failed round leaves
# two), min and max of stdin's numbers ("n/a" if none).
stat() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "n/a"; exit }
         m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
         print m, v[1], v[NR] }'; }
# cell SERVER MODE KEY [SCALE] [FMT]: "median (min-max)" of the values / SCALE.
cell() {
    local st; st=$(vals "$1" "$2" "$3" | stat)
    [[ $st == n/a ]] && { echo "n/a"; return; }
    awk -v st="$st" -v sc="${4:-1}" -v f="${5:-%.0f}" 'BEGIN { split(st, a, " ")
        med = sprintf(f, a[1] / sc); lo = sprintf(f, a[2] / sc); hi = sprintf(f, a[3] / sc)
        print (lo == hi ? med : med " (" lo "–" hi ")") }'
}
# ratio SERVER MODE_A MODE_B KEY: median(A)/median(B), then the per-round
# ratios A/B (rounds alternate modes, so round i of each saw the same machine).
ratio() {
    local a b; a=$(vals "$1" "$2" "$4" | stat) b=$(vals "$1" "$3" "$4" | stat)
    [[ $a == n/a || $b == n/a ]] && { echo "n/a"; return; }
    local paired
    paired=$(awk -v s="$1" -v ma="$2" -v mb="$3" -v k="$4" '$3 == 0 { next }
        $1 == s && $4 == k && $2 == ma { A[$3] = $5 }
        $1 == s && $4 == k && $2 == mb { B[$3] = $5 }
        END { for (r in A) if ((r in B) && B[r] > 0) printf "%s %.2f\n", r, A[r] / B[r] }' "$results" |
        sort -n | cut -d' ' -f2 | paste -sd' ')
    awk -v a="${a%% *}" -v b="${b%% *}" -v p="$paired" 'BEGIN { printf "**%.2fx** (per round: %s)", a / b, p }'
}
# runs_ok SERVER MODE KEY: rounds that gave KEY and had no failure.
runs_ok() {
    local r n=0
    for ((r = 1; r <= reps; r++)); do
        awk -v s="$1" -v m="$2" -v r="$r" -v k="$3" '$1 == s && $2 == m && $3 == r && $4 == k { f = 1 } END { exit !f }' "$results" &&
            ! awk -v s="$1" -v m="$2" -v r="$r" '$1 == s && $2 == m && $3 == r { f = 1 } END { exit !f }' "$fails" &&
            n=$((n + 1))
    done
    echo "$n"
}

# ---- redis -------------------------------------------------------------------------
redis_cmds=(set get incr lpush)
redis_run() {   # MODE ROUND
    local mode=$1 r=$2 d="$work/redis-$1-$2" prefix=()
    [[ $mode == corun ]] && prefix=("${corun[@]}" --threads green)
    mkdir -p "$d"
    local port; port=$(free_port 17379)
    timeout -k 5 "$srv_limit" "${spin[@]}" "${prefix[@]}" redis-server --port "$port" \
        --bind 127.0.0.1 --dir "$d" --save '' --pidfile "$d/pid" --logfile "$d/log" > "$d/out" 2>&1 &
    pidfiles+=("$d/pid")
    local ok=0
    for _ in $(seq 100); do
        [[ $(timeout -k 1 2 redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && { ok=1; break; }
        sleep 0.1
    done
    ((ok)) || { failed redis "$mode" "$r" "never answered PING: $(tail -n 3 "$d/log" "$d/out" | paste -sd' ')"; return; }
    local pid; pid=$(cat "$d/pid")
    sample_start "$pid" "$d/threads"
    timeout -k 5 120 "${cpin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -c 50 \
        -t "$(IFS=,; echo "${redis_cmds[*]}")" --csv > "$d/bench" 2>&1 || true
    sample_stop
    local h; h=$(hwm "$pid")
    local t p _h; read -r t p _h < "$d/threads"
    local c v got=0
    for c in "${redis_cmds[@]}"; do
        v=$(awk -F'"' -v c="${c^^}" '$2 == c { print $4 }' "$d/bench")
        [[ -n $v ]] && { put redis "$mode" "$r" "$c" "$v"; got=$((got + 1)); }
    done
    ((got == ${#redis_cmds[@]})) || failed redis "$mode" "$r" "redis-benchmark: $(tr '\r' '\n' < "$d/bench" | tail -n 3 | paste -sd' ')"
    put redis "$mode" "$r" threads "$t"
    put redis "$mode" "$r" hwm "$h"
    [[ $(timeout -k 1 5 redis-cli -p "$port" ping 2>/dev/null) == PONG ]] ||
        failed redis "$mode" "$r" "no PONG after the benchmark"
    timeout -k 1 10 redis-cli -p "$port" shutdown nosave > /dev/null 2>&1 || true
    timeout 20 tail --pid="$pid" -f /dev/null || failed redis "$mode" "$r" "still running 20 s after SHUTDOWN"
    grep -q 'crashed by signal' "$d/log" && failed redis "$mode" "$r" "crashed: $(grep -m1 -A2 crashed "$d/log" | paste -sd' ')"
    cp "$d/bench" "$raw/redis-$mode-$r.csv"; cp "$d/log" "$raw/redis-$mode-$r.log"
    log "redis $mode run $r (load $(load1)): $(for c in "${redis_cmds[@]}"; do printf '%s %s  ' "${c^^}" "$(vals redis "$mode" "$c" | tail -n 1)"; done)OS threads $t, VmHWM $h kB"
}

section_redis() {
    if ! command -v redis-server > /dev/null || ! command -v redis-benchmark > /dev/null; then
        log "redis: redis-server or redis-benchmark not installed, skipped"; return
    fi
    local r m
    redis_run native 0    # warm-up (page cache, CPU frequency), not counted
    for ((r = 1; r <= reps; r++)); do for m in native corun; do redis_run "$m" "$r"; done; done
    echo "### Redis: redis-benchmark against redis-server natively and under coro-run"
    echo
    echo "\`$(redis-server --version | cut -d' ' -f1-3)\` with Debian's default configuration"
    echo "(jemalloc background threads on), \`--save ''\`, a private directory, 127.0.0.1;"
    echo "\`redis-benchmark -n 20000 -c 50 -t $(IFS=,; echo "${redis_cmds[*]}") --csv\` natively."
    echo "corun: \`coro-run --threads green redis-server ...\`. Median (min–max) of $reps rounds."
    echo
    echo "| mode | SET req/s | GET req/s | INCR req/s | LPUSH req/s | OS threads under load | peak RSS (VmHWM) | rounds |"
    echo "|---|---|---|---|---|---|---|---|"
    for m in native corun; do
        echo "| $m | $(cell redis $m set) | $(cell redis $m get) | $(cell redis $m incr) | $(cell redis $m lpush) | $(cell redis $m threads) | $(cell redis $m hwm 1024 %.1f) MiB | $(runs_ok redis $m set)/$reps |"
    done
    echo
    local c
    for c in "${redis_cmds[@]}"; do echo "- coro-run / native, ${c^^}: $(ratio redis corun native "$c")"; done
    echo
}

# ---- postgres ----------------------------------------------------------------------
pgbin=/usr/lib/postgresql/15/bin
pg_run() {   # MODE ROUND
    local mode=$1 r=$2 d="$work/pg-$1-$2" prefix=()
    [[ $mode == corun ]] && prefix=("${corun[@]}" --threads green)
    mkdir -p "$d"
    cp -a "$work/pg-seed" "$d/data"
    ((${#as[@]})) && chown postgres "$d"
    local port; port=$(free_port 17432)
    pidfiles+=("$d/data/postmaster.pid")
    "${as[@]}" timeout -k 5 "$srv_limit" "${spin[@]}" "${prefix[@]}" "$pgbin/postgres" -D "$d/data" \
        -k "$d" -c listen_addresses=127.0.0.1 -p "$port" > "$d/log" 2>&1 &
    local starter=$!
    local ok=0
    for _ in $(seq 300); do
        grep -q 'ready to accept connections' "$d/log" 2>/dev/null && { ok=1; break; }
        kill -0 "$starter" 2>/dev/null || break
        sleep 0.1
    done
    ((ok)) || { failed postgres "$mode" "$r" "never ready: $(tail -n 3 "$d/log" | paste -sd' ')"; return; }
    local pm; pm=$(head -n 1 "$d/data/postmaster.pid")
    local pg=("${as[@]}" env PGHOST=127.0.0.1 PGPORT="$port" PGUSER=postgres)
    timeout -k 1 20 "${pg[@]}" "$pgbin/psql" -X -q -c 'create database bench' postgres > "$d/psql" 2>&1 ||
        { failed postgres "$mode" "$r" "create database: $(cat "$d/psql")"; return; }
    timeout -k 1 120 "${cpin[@]}" "${pg[@]}" "$pgbin/pgbench" -q -i -s 1 bench > "$d/init" 2>&1 ||
        { failed postgres "$mode" "$r" "pgbench -i: $(tail -n 3 "$d/init" | paste -sd' ')"; return; }
    local init_s; init_s=$(sed -n 's/^done in \([0-9.]*\) s.*/\1/p' "$d/init")
    sample_start "$pm" "$d/threads"
    timeout -k 1 60 "${cpin[@]}" "${pg[@]}" "$pgbin/pgbench" -c 10 -T 10 bench > "$d/run" 2>&1 ||
        failed postgres "$mode" "$r" "pgbench -c 10 -T 10: $(tail -n 3 "$d/run" | paste -sd' ')"
    sample_stop
    local h; h=$(hwm "$pm")
    local t p bh; read -r t p bh < "$d/threads"
    local tps failed_tx
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$d/run")
    failed_tx=$(awk -F': *' '/number of failed transactions/ { split($2, a, " "); print a[1] }' "$d/run")
    [[ -n $tps ]] && put postgres "$mode" "$r" tps "$tps"
    [[ -n $init_s ]] && put postgres "$mode" "$r" init_s "$init_s"
    [[ ${failed_tx:-0} == 0 ]] || failed postgres "$mode" "$r" "$failed_tx failed transactions"
    put postgres "$mode" "$r" threads "$t"
    put postgres "$mode" "$r" procs "$p"
    put postgres "$mode" "$r" hwm "$h"
    put postgres "$mode" "$r" backend_hwm "$bh"
    timeout -k 1 30 "${as[@]}" "$pgbin/pg_ctl" -D "$d/data" stop -m fast -w > "$d/stop" 2>&1 ||
        failed postgres "$mode" "$r" "pg_ctl stop: $(tail -n 2 "$d/stop" | paste -sd' ')"
    local st=0
    timeout 20 tail --pid="$starter" -f /dev/null || true
    wait "$starter" || st=$?
    [[ $st == 0 ]] || failed postgres "$mode" "$r" "postmaster exited with status $st"
    ! grep -q 'terminated by signal\|select() failed\|corun:' "$d/log" ||
        failed postgres "$mode" "$r" "server log: $(grep -m2 'terminated by signal\|select() failed\|corun:' "$d/log" | paste -sd' ')"
    cp "$d/run" "$raw/pgbench-$mode-$r.txt"; cp "$d/log" "$raw/postgres-$mode-$r.log"
    log "postgres $mode run $r (load $(load1)): tps ${tps:-none}, pgbench -i ${init_s:-?} s, $p processes / $t OS threads, postmaster VmHWM $h kB, largest backend $bh kB"
}

section_postgres() {
    [[ -x $pgbin/postgres && -x $pgbin/pgbench ]] || { log "postgres: $pgbin not installed, skipped"; return; }
    as=()
    if [[ $(id -u) == 0 ]]; then    # initdb and postgres refuse root
        id postgres > /dev/null 2>&1 || { log "postgres: no postgres user, skipped"; return; }
        runuser -u postgres -- test -r "$lib" || { log "postgres: $lib not readable by postgres, skipped"; return; }
        as=(runuser -u postgres --)
        install -d -o postgres "$work/pg-seed"
    fi
    timeout -k 1 120 "${as[@]}" "$pgbin/initdb" -D "$work/pg-seed" -A trust -U postgres > "$work/initdb.log" 2>&1 ||
        { log "postgres: initdb failed: $(tail -n 5 "$work/initdb.log")"; return; }
    local r m
    pg_run native 0       # warm-up, not counted
    for ((r = 1; r <= reps; r++)); do for m in native corun; do pg_run "$m" "$r"; done; done
    echo "### PostgreSQL: pgbench against the postmaster natively and under coro-run"
    echo
    echo "\`$("$pgbin/postgres" --version)\` as the postgres user, default settings, a private"
    echo "data directory (one \`initdb\`, copied for each round), 127.0.0.1; natively"
    echo "\`pgbench -i -s 1\` then \`pgbench -c 10 -T 10\` (tps without the connection time)."
    echo "corun: \`coro-run --threads green postgres -D ...\` (its forked server processes"
    echo "inherit the preload). Threads and processes: the postmaster and its children"
    echo "during \`pgbench -c 10\`. Median (min–max) of $reps rounds."
    echo
    echo "| mode | tps | \`pgbench -i -s 1\` | server processes / OS threads under load | postmaster VmHWM | largest child VmHWM | rounds |"
    echo "|---|---|---|---|---|---|---|"
    for m in native corun; do
        echo "| $m | $(cell postgres $m tps 1 %.1f) | $(cell postgres $m init_s 1 %.2f) s | $(cell postgres $m procs) / $(cell postgres $m threads) | $(cell postgres $m hwm 1024 %.1f) MiB | $(cell postgres $m backend_hwm 1024 %.1f) MiB | $(runs_ok postgres $m tps)/$reps |"
    done
    echo
    echo "- coro-run / native, tps: $(ratio postgres corun native tps)"
    echo "- coro-run / native, \`pgbench -i\` time: $(ratio postgres corun native init_s)"
    echo
}

# ---- mariadb -----------------------------------------------------------------------
# The options tests/integration/mariadb.sh gave MariaDB with green threads
# before liburing's own io_uring_enter was caught: no native aio, one purge,
# read and write i/o thread, no buffer pool load/dump.
green_opts='--innodb-use-native-aio=0 --skip-grant-tables --innodb-purge-threads=1
    --innodb-read-io-threads=1 --innodb-write-io-threads=1
    --innodb-buffer-pool-load-at-startup=0 --innodb-buffer-pool-dump-at-shutdown=0
    --thread-handling=one-thread-per-connection'
declare -A my_prefix=() my_opts=() my_desc=()
read -r -a my_modes <<<"${BENCH_MARIADB_MODES:-native corun-native corun-green}"
dump_sig=RTMIN+2
my_desc[native]="natively, MariaDB's defaults"
my_desc[corun-native]="\`coro-run --threads native\`, defaults"
my_desc[native-gopts]="natively, the green run's options"
my_desc[corun-green]="\`coro-run\` (green threads, own TLS, the catch), defaults"
my_desc[corun-green-gopts]="\`coro-run --threads green --tls own\`, the old green run's options"
my_desc[corun-green-pool4]="\`coro-run --threads green --tls own --pool-size 4\`, the old green run's options"
my_desc[corun-green-offload]="\`coro-run --threads green --tls own --file-io offload\`, the old green run's options"
my_desc[try-green-shared]="\`coro-run --threads green --tls shared\`, defaults"

# slap_s LOGFILE: mariadb-slap's "Average number of seconds to run all queries".
slap_s() { sed -n 's/.*Average number of seconds to run all queries: \([0-9.]*\) seconds.*/\1/p' "$1" | tail -n 1; }

my_run() {   # MODE ROUND
    local mode=$1 r=$2 d="$work/my-$1-$2"
    mkdir -p "$d"
    cp -a "$work/my-seed" "$d/data"
    local port; port=$(free_port 17306)
    local sock=$d/sock extra=()
    pidfiles+=("$d/pid")
    [[ $mode == try-* ]] && { : > "$d/corun.log"; extra=(--dump-signal "$dump_sig" --log-file "$d/corun.log"); }
    # shellcheck disable=SC2086  # the options are words
    timeout -k 5 "$srv_limit" "${spin[@]}" ${my_prefix[$mode]} ${extra[@]+"${extra[@]}"} /usr/sbin/mariadbd --no-defaults \
        --datadir="$d/data" "${as_user[@]}" --socket="$sock" --port="$port" --bind-address=127.0.0.1 \
        --pid-file="$d/pid" --log-error="$d/err.log" ${my_opts[$mode]} > "$d/out" 2>&1 &
    local starter=$!
    local deadline=$((SECONDS + 30)) ok=0
    while ((SECONDS < deadline)); do
        timeout -k 1 2 mariadb-admin --no-defaults -uroot --socket="$sock" --connect-timeout=2 ping \
            > /dev/null 2>&1 && { ok=1; break; }
        kill -0 "$starter" 2>/dev/null || break
        sleep 0.1
    done
    ((ok)) || { failed mariadb "$mode" "$r" "never ready in 30 s: $(my_why "$d" "$starter")"; return; }
    local pid; pid=$(cat "$d/pid")
    local sql=(timeout -k 1 20 mariadb --no-defaults -uroot --socket="$sock" -N -B)
    "${sql[@]}" -e 'create database slap; create table slap.t (id int auto_increment primary key, c int not null) engine=innodb' \
        > "$d/sql" 2>&1 || { failed mariadb "$mode" "$r" "create table: $(cat "$d/sql")"; return; }
    local slap=(timeout -k 1 60 "${cpin[@]}" mariadb-slap --no-defaults -uroot -h127.0.0.1 -P"$port"
                --protocol=tcp --concurrency=50 --iterations=1 --number-of-queries=5000 --create-schema=slap)
    sample_start "$pid" "$d/threads"
    # mariadb-slap exits 0 after a failed query too: its figure must be there
    local st=0
    "${slap[@]}" --query='INSERT INTO t (c) VALUES (7)' > "$d/insert" 2>&1 || st=$?
    if [[ $st != 0 || -z $(slap_s "$d/insert") ]]; then
        sample_stop
        ((st == 124)) && echo "timed out after 60 s" >> "$d/insert"
        failed mariadb "$mode" "$r" "mariadb-slap INSERT: $(tail -n 2 "$d/insert" | paste -sd' '); $(my_why "$d" "$starter")"
        return
    fi
    local rows; rows=$("${sql[@]}" -e 'select count(*), sum(c), count(distinct id) from slap.t' 2>&1 | tr '\t' ' ') || true
    [[ $rows == '5000 35000 5000' ]] || failed mariadb "$mode" "$r" "rows after 5000 INSERTs (count sum distinct): $rows"
    st=0
    "${slap[@]}" --query='SELECT COUNT(*) FROM t WHERE c = 7' > "$d/select" 2>&1 || st=$?
    [[ $st == 0 && -n $(slap_s "$d/select") ]] ||
        failed mariadb "$mode" "$r" "mariadb-slap SELECT (status $st): $(tail -n 2 "$d/select" | paste -sd' ')"
    sample_stop
    local h; h=$(hwm "$pid")
    local t p _h; read -r t p _h < "$d/threads"
    local ins sel; ins=$(slap_s "$d/insert") sel=$(slap_s "$d/select")
    [[ -n $ins ]] && put mariadb "$mode" "$r" insert_s "$ins"
    [[ -n $sel ]] && put mariadb "$mode" "$r" select_s "$sel"
    put mariadb "$mode" "$r" threads "$t"
    put mariadb "$mode" "$r" hwm "$h"
    timeout -k 1 30 mariadb-admin --no-defaults -uroot --socket="$sock" shutdown > /dev/null 2>&1 ||
        failed mariadb "$mode" "$r" "mariadb-admin shutdown failed"
    st=0
    timeout 30 tail --pid="$starter" -f /dev/null || true
    wait "$starter" || st=$?
    [[ $st == 0 ]] || failed mariadb "$mode" "$r" "exit status $st after shutdown: $(tail -n 2 "$d/err.log" | paste -sd' ')"
    cat "$d/insert" "$d/select" > "$raw/mariadb-slap-$mode-$r.txt"; cp "$d/err.log" "$raw/mariadb-$mode-$r.err"
    log "mariadb $mode run $r (load $(load1)): INSERT ${ins:-?} s, SELECT ${sel:-?} s, OS threads $t, VmHWM $h kB"
}

# my_why DIR STARTER: what a server that failed was doing (its threads' wait
# channels and, under coro-run, corun's dump of its green threads, or how it
# exited); kills it if still alive. Before it is ready there is no pid file:
# the server is then the child of STARTER (timeout).
my_why() {
    local d=$1 pid
    pid=$(cat "$d/pid" 2>/dev/null) || pid=$(pgrep -P "$2" 2>/dev/null | head -n 1) || pid=
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        if [[ -e $d/corun.log ]]; then    # ask corun for its dump (--dump-signal)
            kill -s "$dump_sig" "$pid" 2>/dev/null || true
            sleep 1
        fi
        echo "alive, $(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l) OS threads, waiting in: $(for t in /proc/"$pid"/task/*; do
            cat "$t/wchan" 2>/dev/null; echo; done | sed 's/^0$/(running)/' | sort | uniq -c | sort -rn | head -n 4 | awk '{ printf "%s x%s; ", $2, $1 }')"
        kill -KILL "$pid" 2>/dev/null || true
    else
        local st=0
        wait "$2" 2>/dev/null || st=$?
        echo "exited with status $st; $(grep -m1 -e 'got signal' -e ERROR "$d/err.log" 2>/dev/null || tail -n 1 "$d/err.log" 2>/dev/null)"
    fi
    if [[ -s $d/corun.log ]]; then
        cp "$d/corun.log" "$raw/corun-$(basename "$d").log"
        echo "corun's log: $(head -n 1 "$d/corun.log" | cut -c1-200)"
    fi
    return 0
}

section_mariadb() {
    if [[ ! -x /usr/sbin/mariadbd ]] || ! command -v mariadb-slap > /dev/null; then
        log "mariadb: mariadbd or mariadb-slap not installed, skipped"; return
    fi
    as_user=()
    [[ $(id -u) == 0 ]] && as_user=(--user=root)    # mariadbd refuses root otherwise
    timeout -k 1 120 mariadb-install-db --no-defaults --datadir="$work/my-seed" "${as_user[@]}" \
        --auth-root-authentication-method=normal --skip-test-db > "$work/install.log" 2>&1 ||
        { log "mariadb: mariadb-install-db failed: $(tail -n 5 "$work/install.log")"; return; }
    my_prefix[native]='' my_opts[native]=''
    my_prefix[corun-native]="${corun[*]} --threads native" my_opts[corun-native]=''
    my_prefix[native-gopts]='' my_opts[native-gopts]=$green_opts
    my_prefix[corun-green]="${corun[*]}" my_opts[corun-green]=''
    my_prefix[corun-green-gopts]="${corun[*]} --threads green --tls own" my_opts[corun-green-gopts]=$green_opts
    my_prefix[corun-green-pool4]="${my_prefix[corun-green-gopts]} --pool-size 4" my_opts[corun-green-pool4]=$green_opts
    my_prefix[corun-green-offload]="${my_prefix[corun-green-gopts]} --file-io offload" my_opts[corun-green-offload]=$green_opts
    my_prefix[try-green-shared]="${corun[*]} --threads green --tls shared" my_opts[try-green-shared]=''
    local modes=("${my_modes[@]}") tls
    tls=$(CORUN_CHECK_ONLY=tls LD_PRELOAD="$lib" /bin/true 2>/dev/null || true)
    if [[ $tls != own* ]]; then
        log "mariadb: this build gives no own TLS by default ($tls): green-thread runs skipped"
        local m; modes=()
        for m in "${my_modes[@]}"; do [[ $m == *green* ]] || modes+=("$m"); done
    fi
    local r m
    my_run native 0       # warm-up (the first server after install is slow), not counted
    for ((r = 1; r <= reps; r++)); do for m in "${modes[@]}"; do my_run "$m" "$r"; done; done
    # What does not run yet: one bounded try each, not timed.
    local tries=()
    if [[ $tls == own* && ${BENCH_MARIADB_TRIES:-0} != 0 ]]; then
        tries=(try-green-shared)
        for m in "${tries[@]}"; do my_run "$m" 1; done
    fi
    echo "### MariaDB: mariadb-slap against mariadbd natively and under coro-run"
    echo
    echo "\`mariadbd $(/usr/sbin/mariadbd --version | sed 's/^.* Ver /Ver /; s/ *$//')\`, a private datadir (one"
    echo "\`mariadb-install-db\`, copied for each round), 127.0.0.1; natively \`mariadb-slap"
    echo "--concurrency=50 --iterations=1 --number-of-queries=5000\` over TCP, first"
    echo "\`INSERT INTO t (c) VALUES (7)\` into an empty InnoDB table (rows checked after),"
    echo "then \`SELECT COUNT(*) FROM t WHERE c = 7\`; the figure is mariadb-slap's \"average"
    echo "number of seconds to run all queries\" (lower is better). MariaDB's default"
    echo "options (InnoDB's io_uring aio included) in every mode but those naming the old"
    echo "green run's options (\`$(tr -s ' \n' ' ' <<<"$green_opts" | sed 's/ $//')\`), whose"
    echo "baseline is the same options natively. Median (min–max) of $reps rounds."
    echo
    echo "| mode | INSERT slap | SELECT slap | OS threads under load | peak RSS (VmHWM) | rounds |"
    echo "|---|---|---|---|---|---|"
    for m in "${modes[@]}"; do
        echo "| ${my_desc[$m]} | $(cell mariadb "$m" insert_s 1 %.3f) s | $(cell mariadb "$m" select_s 1 %.3f) s | $(cell mariadb "$m" threads) | $(cell mariadb "$m" hwm 1024 %.1f) MiB | $(runs_ok mariadb "$m" select_s)/$reps |"
    done
    echo
    local base
    for m in corun-native corun-green corun-green-gopts corun-green-pool4 corun-green-offload; do
        base=native-gopts
        [[ $m == corun-native || $m == corun-green ]] && base=native
        [[ " ${modes[*]} " == *" $m "* && " ${modes[*]} " == *" $base "* ]] || continue
        echo "- ${my_desc[$m]} / ${my_desc[$base]}, INSERT time: $(ratio mariadb "$m" "$base" insert_s); SELECT time: $(ratio mariadb "$m" "$base" select_s)"
    done
    for m in "${tries[@]}"; do
        if grep -q "^mariadb $m " "$fails"; then
            echo "- ${my_desc[$m]} (one try): **does not run**: $(grep "^mariadb $m " "$fails" | cut -d' ' -f4- | paste -sd'|' | sed 's/|/; then /g')"
        else
            echo "- ${my_desc[$m]} (one try): ran, INSERT $(vals mariadb "$m" insert_s) s, SELECT $(vals mariadb "$m" select_s) s"
        fi
    done
    echo
}

for s in "$@"; do
    case $s in
        redis|postgres|mariadb) log "section $s, $reps rounds"; "section_$s" ;;
        *) echo "servers: unknown section '$s' (allowed: redis, postgres, mariadb)" >&2; exit 2 ;;
    esac
done
# (the one-off MariaDB tries are reported in their section)
if grep -qv '^mariadb try-' "$fails"; then
    echo "Failures (server mode round: what):"
    echo
    grep -v '^mariadb try-' "$fails" | sed 's/^\([^ ]*\) \([^ ]*\) \([^ ]*\) /- \1 \2 round \3: /'
    echo
fi
cp "$results" "$raw/results.txt"
