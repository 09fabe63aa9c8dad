#!/usr/bin/env bash
# Integration: name lookups under corun, against a slow local DNS server,
# without touching the machine's resolver. The script re-runs itself in a
# private mount and network namespace (unshare -m -n; SKIP, exit 77, when
# that is not allowed) where only loopback exists and /etc/hosts,
# /etc/nsswitch.conf ("hosts: files dns") and /etc/resolv.conf are the
# test's own (bind mounts); dns_server.py answers on 127.0.0.53:53 after
# 200 ms. The program is tests/pt_dns (a plain pthread program):
#  1. `each`: every lookup function (getaddrinfo, getnameinfo,
#     gethostbyname, gethostbyname2, gethostbyaddr and the _r variants) on
#     /etc/hosts names and on DNS names, forward and reverse, failures
#     included: it passes its own checks green, native and plain, and the
#     three transcripts are identical;
#  2. 200 threads resolving at once: every answer right, in well under the
#     200 x 200 ms = 40 s of one lookup at a time (about 4 x 200 ms with the
#     default pool of 64; bound 10 s), with the server never seeing more
#     than 64 queries at once; native and plain too;
#  3. CORUN_POOL_SIZE=4: 40 lookups take at least 10 rounds of 200 ms and
#     the server never sees more than 4 at once (the setting is honoured).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
lib="$build/.libs/libcorun.so"
prog="$build/tests/pt_dns"

if [ "${CORUN_DNS_INSIDE:-}" != 1 ]; then
    for tool in python3 unshare ip mount timeout; do
        command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
    done
    [ -x "$prog" ] || { echo "FAIL: $prog not built (make check builds it)"; exit 1; }
    if ! unshare -m -n true 2>/dev/null; then
        echo "SKIP: cannot make a private mount+network namespace (unshare -m -n needs root" \
             "or CAP_SYS_ADMIN); the test must not touch the machine's resolver"
        exit 77
    fi
    exec timeout 300 unshare -m -n env CORUN_DNS_INSIDE=1 CORUN_TEST_BUILDDIR="$build" \
        bash "$0" "$@"
fi

# ---- inside the namespace ---------------------------------------------------
mount --make-rprivate /
ip link set lo up
work=$(mktemp -d)
server=
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost
127.0.1.7	alpha.corun.test alpha
127.0.1.8	beta.corun.test beta betty
EOF
printf 'hosts: files dns\nservices: files\n' > "$work/nsswitch.conf"
printf 'nameserver 127.0.0.53\noptions timeout:5 attempts:2\n' > "$work/resolv.conf"
for f in hosts nsswitch.conf resolv.conf; do
    mount --bind "$work/$f" "/etc/$f"
done
grep -q '^ssh[[:space:]]*22/tcp' /etc/services 2>/dev/null ||
    { echo "SKIP: /etc/services lacks ssh (netbase not installed)"; exit 77; }

start_server() {   # start the DNS server afresh (its statistics start at zero)
    [ -z "$server" ] || { kill "$server"; wait "$server" 2>/dev/null || true; }
    rm -f "$work/stats" "$work/server.out"
    : > "$work/server.out"        # before the server starts: no stale "ready"
    python3 -u "$here/dns_server.py" 127.0.0.53 53 0.2 "$work/stats" > "$work/server.out" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q ready "$work/server.out" && return 0; sleep 0.05; done
    echo "FAIL: the DNS server did not start:"; cat "$work/server.out"; exit 1
}

stat_of() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$work/stats" 2>/dev/null || echo 0; }

asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:verify_asan_link_order=0"
run() {   # how (green|native|plain) args...: output in $work/out, status in $rc
    local how=$1; shift
    local env=(env -u LD_PRELOAD -u CORUN_THREADS -u CORUN_POOL_SIZE ASAN_OPTIONS="$asan")
    [ "$how" = plain ] || env+=(LD_PRELOAD="$lib" CORUN_THREADS="$how")
    rc=0
    timeout 60 "${env[@]}" ${extra_env[@]+"${extra_env[@]}"} "$prog" "$@" > "$work/out" 2> "$work/err" || rc=$?
}

show() { echo "--- stdout"; cat "$work/out"; echo "--- stderr"; cat "$work/err"; }

fail=0
extra_env=()
# ---- 1. every function, three ways, same transcript ----------------------------
start_server
for how in green native plain; do
    run "$how" each
    if [ "$rc" != 0 ] || ! grep -q '^PASS each' "$work/out"; then
        echo "FAIL: pt_dns each ($how) exited $rc"; show; fail=1
    fi
    grep '^T ' "$work/out" > "$work/transcript.$how" || true
done
for how in green native; do
    if ! diff -u "$work/transcript.plain" "$work/transcript.$how"; then
        echo "FAIL: lookups under corun ($how) differ from the real calls (above: - plain, + $how)"
        fail=1
    fi
done
echo "each: $(wc -l < "$work/transcript.plain") lookups identical green, native and plain"

# ---- 2. 200 lookups at once ------------------------------------------------------
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$work/out"; }
for how in green native plain; do
    start_server
    run "$how" many 200
    ok=$(field ok); ms=$(field ms)
    echo "many 200 ($how): ok=$ok ms=$ms server: $(cat "$work/stats" 2>/dev/null)"
    if [ "$rc" != 0 ] || [ "$ok" != 200 ]; then
        echo "FAIL: pt_dns many 200 ($how): exit $rc"; show; fail=1; continue
    fi
    # serially 200 x 200 ms = 40 s
    [ "$ms" -lt 10000 ] || { echo "FAIL: 200 lookups took $ms ms ($how): not concurrent"; fail=1; }
    [ "$(stat_of queries)" -ge 200 ] || { echo "FAIL: the server saw $(stat_of queries) queries"; fail=1; }
    if [ "$how" = green ]; then
        grep -q 'corun=1 green=1' "$work/out" || { echo "FAIL: not run green"; show; fail=1; }
        m=$(stat_of max_outstanding)
        # the default pool (64) runs 64 lookups at once, and no more
        [ "$m" = 64 ] ||
            { echo "FAIL: $m queries at once with the default pool of 64"; fail=1; }
    fi
done

# ---- 3. CORUN_POOL_SIZE is honoured ----------------------------------------------
start_server
extra_env=(CORUN_POOL_SIZE=4)
run green many 40
extra_env=()
ok=$(field ok); ms=$(field ms); m=$(stat_of max_outstanding)
echo "many 40 (green, CORUN_POOL_SIZE=4): ok=$ok ms=$ms server: $(cat "$work/stats" 2>/dev/null)"
if [ "$rc" != 0 ] || [ "$ok" != 40 ]; then
    echo "FAIL: pt_dns many 40 with CORUN_POOL_SIZE=4: exit $rc"; show; cat "$work/server.out"; fail=1
else
    [ "$m" -le 4 ] || { echo "FAIL: $m queries at once with CORUN_POOL_SIZE=4"; fail=1; }
    # 40 lookups, 4 at a time, 200 ms each: at least 10 rounds
    [ "$ms" -ge 1900 ] || { echo "FAIL: 40 lookups on 4 pool threads took only $ms ms"; fail=1; }
fi

[ "$fail" = 0 ] && echo "PASS: dns"
exit "$fail"
