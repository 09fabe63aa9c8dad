#!/usr/bin/env bash
# Integration: PostgreSQL 15 under coro-run (Debian's postgresql-15).
#  A private cluster (initdb into the work directory, owned by the postgres
#  user: initdb refuses root), listening on 127.0.0.1 on a free port with its
#  unix socket in the work directory; the postmaster under coro-run (its
#  signal handlers fork the server processes: PostgreSQL's select() must see
#  EINTR, not a stale errno). pgbench runs natively: `pgbench -i`, then
#  `pgbench -c 10 -T 10` with 0 failed transactions, and the TPC-B balance
#  invariant holds (sum of abalance = bbalance = tbalance = history delta).
#  `pg_ctl stop -m fast` shuts it down and the postmaster exits 0.
# Loopback only, bounded by timeouts, the cluster removed on exit.
source "$(dirname "$0")/lib.sh"
bin=/usr/lib/postgresql/15/bin
for t in initdb postgres pg_ctl pgbench psql; do
    [ -x "$bin/$t" ] || { echo "SKIP: $bin/$t not installed (postgresql-15)"; exit 77; }
done
needs python3 timeout
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "SKIP: no postgres user to run the server as"; exit 77; }
    as=(runuser -u postgres --)
    chown postgres "$work"
    # The library and the wrapper must be readable by that user.
    "${as[@]}" test -r "$lib" || { echo "SKIP: $lib is not readable by the postgres user"; exit 77; }
else
    as=()
fi
chmod 755 "$work"
# A hung postmaster ignores the SIGTERM that lib.sh's clean-up sends: kill
# it and its server processes by the pid it wrote.
kill_cluster() {
    local pm
    pm=$(head -1 "$work/data/postmaster.pid" 2>/dev/null) || return 0
    [ -n "$pm" ] || return 0
    pkill -KILL -P "$pm" 2>/dev/null || true
    kill -KILL "$pm" 2>/dev/null || true
}
trap 'kill_cluster; cleanup' EXIT
data="$work/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 60 "${as[@]}" "$bin/initdb" -D "$data" -A trust -U postgres > "$work/initdb.log" 2>&1 ||
    { echo "FAIL: initdb"; cat "$work/initdb.log"; exit 1; }

"${as[@]}" timeout -k 2 90 "${corun[@]}" "$bin/postgres" -D "$data" -k "$work" \
    -c listen_addresses=127.0.0.1 -p "$port" > "$work/pg.log" 2>&1 &
pg=$!
pids+=("$pg")
wait_for "$work/pg.log" 'database system is ready to accept connections'
pq() { timeout 20 "${as[@]}" "$bin/psql" -X -q -t -A -h 127.0.0.1 -p "$port" -U postgres "$@"; }
pq -c 'create database bench' postgres ||
    { echo "FAIL: the server does not answer"; tail -20 "$work/pg.log"; exit 1; }
timeout 60 "${as[@]}" "$bin/pgbench" -q -i -s 1 -h 127.0.0.1 -p "$port" -U postgres bench \
    > "$work/init.log" 2>&1 || { echo "FAIL: pgbench -i"; cat "$work/init.log" "$work/pg.log"; exit 1; }
timeout 40 "${as[@]}" "$bin/pgbench" -c 10 -T 10 -h 127.0.0.1 -p "$port" -U postgres bench \
    > "$work/run.log" 2>&1 || { echo "FAIL: pgbench run"; cat "$work/run.log" "$work/pg.log"; exit 1; }
grep -E 'processed|failed|tps' "$work/run.log"
processed=$(awk -F': *' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]}' "$work/run.log")
failed=$(awk -F': *' '/number of failed transactions/ {split($2, a, " "); print a[1]}' "$work/run.log")
check '[ "${processed:-0}" -gt 0 ]' "no transactions processed"
check '[ "${failed:-x}" = 0 ]' "failed transactions: ${failed:-none reported}"
sums=$(pq -c 'select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers), (select sum(delta) from pgbench_history), (select count(*) from pgbench_history)' bench)
echo "abalance|bbalance|tbalance|delta|history rows: $sums"
IFS='|' read -r a b t d h <<< "$sums"
check '[ "$h" = "$processed" ]' "history has $h rows for $processed transactions"
check '[ "$a" = "$b" ] && [ "$b" = "$t" ] && [ "$t" = "$d" ]' "balances disagree: $sums"

timeout 30 "${as[@]}" "$bin/pg_ctl" -D "$data" stop -m fast -w > "$work/stop.log" 2>&1 ||
    { echo "FAIL: pg_ctl stop"; cat "$work/stop.log"; }
status=0
wait "$pg" || status=$?
check '[ "$status" = 0 ]' "postmaster exited with status $status"
check '! grep -q "select() failed\|terminated by signal\|corun:" "$work/pg.log"' \
    "the server log reports trouble: $(grep -m3 'select() failed\|terminated by signal\|corun:' "$work/pg.log")"
[ "$fail" = 0 ] || tail -20 "$work/pg.log"
finish
