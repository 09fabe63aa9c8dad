#!/usr/bin/env bash
# Integration: Redis 7 under coro-run (Debian's redis-server, linked with
# jemalloc), with jemalloc's background threads off (`jemalloc-bg-thread
# no`: with them on, jemalloc starts kernel threads behind corun's back,
# which is another issue). On a unix socket in the work directory:
#  1. SET/GET of 200 keys, values read back and compared;
#  2. BGSAVE: the fork runs jemalloc's atfork handlers (locks taken in
#     prepare, released in parent and child), the save completes
#     (LASTSAVE moves, rdb_last_bgsave_status:ok) and the server still
#     answers;
#  3. the dump loads: a second redis-server (natively) started on it has
#     the same values.
# Bounded by timeouts, servers killed and files removed on exit.
source "$(dirname "$0")/lib.sh"
needs redis-server redis-cli timeout
conf() {    # dir socket
    printf '%s\n' "port 0" "unixsocket $2" "dir $1" "dbfilename dump.rdb" "save \"\"" \
        "pidfile $1/redis.pid" \
        "daemonize no" "jemalloc-bg-thread no" "appendonly no" "logfile \"\""
}
# A hung server ignores the SIGTERM that lib.sh's clean-up sends its wrapper.
trap 'for f in "$work"/*/redis.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done; cleanup' EXIT
mkdir -p "$work/a" "$work/b"
conf "$work/a" "$work/a/redis.sock" > "$work/a/redis.conf"
spawn_bg timeout -k 2 90 "${corun[@]}" redis-server "$work/a/redis.conf" > "$work/a/log" 2>&1
wait_for "$work/a/log" 'Ready to accept connections\|ready to accept connections'
cli() { timeout 3 redis-cli -s "$1" "${@:2}"; }
sock="$work/a/redis.sock"

# 1. set/get
for i in $(seq 200); do echo "SET key:$i value-$i-$((i * 7919))"; done | cli "$sock" > "$work/set.out"
check '[ "$(grep -c "^OK$" "$work/set.out")" = 200 ]' "SET replies: $(sort "$work/set.out" | uniq -c | head -3)"
bad=0
for i in 1 17 100 200; do
    [ "$(cli "$sock" GET "key:$i")" = "value-$i-$((i * 7919))" ] || bad=$((bad + 1))
done
check '[ "$bad" = 0 ]' "$bad GETs returned a wrong value"

# 2. BGSAVE
before=$(cli "$sock" LASTSAVE)
sleep 1.1                      # LASTSAVE has one-second resolution
check '[ "$(cli "$sock" BGSAVE)" = "Background saving started" ]' "BGSAVE not started"
saved=0
end=$((SECONDS + 15))
while [ "$SECONDS" -lt "$end" ]; do
    info=$(cli "$sock" INFO persistence || true)
    if echo "$info" | grep -q '^rdb_bgsave_in_progress:0' &&
        [ "$(cli "$sock" LASTSAVE || echo 0)" != "$before" ]; then
        saved=1; break
    fi
    sleep 0.1
done
check '[ "$saved" = 1 ]' "BGSAVE did not complete within 15 s (the server hangs after its fork?)"
if [ "$saved" = 0 ]; then tail -20 "$work/a/log"; finish; fi
check 'cli "$sock" INFO persistence | grep -q "^rdb_last_bgsave_status:ok"' "the save failed"
check '[ "$(cli "$sock" PING)" = PONG ]' "the server does not answer after BGSAVE"
check '[ "$(cli "$sock" GET key:42)" = "value-42-$((42 * 7919))" ]' "GET after BGSAVE"
check '[ -s "$work/a/dump.rdb" ]' "no dump written"

# 3. the dump loads in a second server
cp "$work/a/dump.rdb" "$work/b/dump.rdb"
conf "$work/b" "$work/b/redis.sock" > "$work/b/redis.conf"
spawn_bg timeout -k 2 60 redis-server "$work/b/redis.conf" > "$work/b/log" 2>&1
wait_for "$work/b/log" 'Ready to accept connections\|ready to accept connections'
check '[ "$(cli "$work/b/redis.sock" DBSIZE)" = 200 ]' "the loaded dump has $(cli "$work/b/redis.sock" DBSIZE) keys"
check '[ "$(cli "$work/b/redis.sock" GET key:123)" = "value-123-$((123 * 7919))" ]' "a value from the dump"
[ "$fail" = 0 ] || tail -20 "$work/a/log"
finish
