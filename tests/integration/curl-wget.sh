#!/usr/bin/env bash
# Integration: curl and wget (Debian's) under coro-run as clients of a native
# server, natively as clients of servers under coro-run, and both sides under
# coro-run.
#  1. downloads of a 3 MB random file, byte-compared: curl and wget under
#     coro-run from a native python3 -m http.server (curl by the name
#     "localhost", so its resolver thread and getaddrinfo run green too);
#  2. curl --parallel under coro-run, 40 URLs from a native server whose every
#     answer takes 0.5 s: curl's multi interface polls them all at once (20 s
#     serially);
#  3. native curl (40 at once) and wget against the slow server under
#     coro-run: one OS thread serves them concurrently;
#  4. curl --parallel under coro-run against the slow server under coro-run.
. "$(dirname "$0")/lib.sh"
needs python3 curl wget
mkdir -p "$work/www"
head -c 3000000 /dev/urandom > "$work/www/blob"
n=40

start_http() {   # name, command... -> sets $port (the server prints its port)
    local name=$1; shift
    spawn_bg "$@" > "$work/$name.out" 2>&1
    wait_for "$work/$name.out" 'port'
    port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/$name.out" | head -n 1)
}
secs_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
urls() { for i in $(seq "$n"); do echo "http://127.0.0.1:$1/$i"; done; }
check_answers() {   # dir label: every file i holds "ok /i"
    local bad=0
    for i in $(seq "$n"); do [ "$(cat "$1/$i" 2>/dev/null)" = "ok /$i" ] || bad=$((bad + 1)); done
    check '[ "$bad" = 0 ]' "$2: $bad of $n answers wrong or missing"
}

# ---- 1. curl and wget under coro-run, native server ----------------------------
start_http files python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/www"
files=$port
timeout 30 "${corun[@]}" curl -sS -o "$work/curl.blob" "http://localhost:$files/blob" ||
    echo "curl exited with $?"
check 'cmp -s "$work/www/blob" "$work/curl.blob"' "curl under coro-run: download differs"
timeout 30 "${corun[@]}" wget -nv --tries=1 -O "$work/wget.blob" "http://127.0.0.1:$files/blob" 2> "$work/wget.log" ||
    { echo "wget exited with $?; its messages:"; cat "$work/wget.log"; }
check 'cmp -s "$work/www/blob" "$work/wget.blob"' "wget under coro-run: download differs"
# wget fetching a list of URLs one after the other on one connection
urls "$files" | sed 's|/[0-9]*$|/blob|' | head -n 5 > "$work/list"
mkdir -p "$work/wl"
timeout 60 "${corun[@]}" wget -nv --tries=1 -P "$work/wl" -i "$work/list" 2> "$work/wget-i.log" ||
    { echo "wget -i exited with $?; its messages:"; cat "$work/wget-i.log"; }
got=$(find "$work/wl" -type f | wc -l) same=0
for f in "$work"/wl/*; do cmp -s "$f" "$work/www/blob" && same=$((same + 1)); done
check '[ "$got" = 5 ] && [ "$same" = 5 ]' "wget -i under coro-run: $same of 5 downloads right ($got files)"
echo "1. curl and wget under coro-run from a native server: 7 downloads of 3 MB compared"

# ---- 2. curl --parallel under coro-run, native slow server ---------------------------
start_http slow python3 -u "$here/slow_server.py" 0.5
slow=$port
mkdir -p "$work/p2"
t0=$(date +%s.%N)
(cd "$work/p2" && urls "$slow" | sed 's/^/url = /; s|.*/\([0-9]*\)$|&\noutput = \1|' > ../p2.cfg &&
    timeout 60 "${corun[@]}" curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max "$n" -K ../p2.cfg) ||
    echo "curl --parallel exited with $?"
secs=$(secs_since "$t0")
echo "2. curl --parallel under coro-run, $n answers of 0.5 s each: $secs s"
check_answers "$work/p2" "curl --parallel under coro-run"
check 'awk -v s="$secs" "BEGIN { exit !(s < 8) }"' "curl --parallel took $secs s: not concurrent"

# ---- 3. native clients, slow server under coro-run -------------------------------------
start_http cslow "${corun[@]}" python3 -u "$here/slow_server.py" 0.5
cslow=$port cslow_pid=${pids[-1]}
mkdir -p "$work/p3"
t0=$(date +%s.%N)
clients=()
for i in $(seq "$n"); do
    timeout 30 curl -sS -o "$work/p3/$i" "http://127.0.0.1:$cslow/$i" & clients+=($!)
done
timeout 30 wget -q --tries=1 -O "$work/p3.wget" "http://127.0.0.1:$cslow/wget" & clients+=($!)
sleep 0.25
threads=$(os_threads "$cslow_pid")
for c in "${clients[@]}"; do wait "$c" || true; done
secs=$(secs_since "$t0")
echo "3. $n native curl + 1 wget against the slow server under coro-run: $secs s, server OS threads $threads"
check_answers "$work/p3" "native curl against coro-run server"
check '[ "$(cat "$work/p3.wget")" = "ok /wget" ]' "native wget against coro-run server: wrong answer"
check 'awk -v s="$secs" "BEGIN { exit !(s < 8) }"' "the coro-run server took $secs s: not concurrent"
check 'os_threads_ok "$threads"' "the coro-run server ran on $threads OS threads"

# ---- 4. both under coro-run ---------------------------------------------------------------
mkdir -p "$work/p4"
t0=$(date +%s.%N)
(cd "$work/p4" && urls "$cslow" | sed 's/^/url = /; s|.*/\([0-9]*\)$|&\noutput = \1|' > ../p4.cfg &&
    timeout 60 "${corun[@]}" curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max "$n" -K ../p4.cfg) ||
    echo "curl --parallel exited with $?"
secs=$(secs_since "$t0")
echo "4. curl --parallel under coro-run against the coro-run slow server: $secs s"
check_answers "$work/p4" "curl --parallel against coro-run server"
check 'awk -v s="$secs" "BEGIN { exit !(s < 8) }"' "took $secs s: not concurrent"
finish
