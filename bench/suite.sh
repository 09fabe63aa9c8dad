#!/usr/bin/env bash
# The side-by-side suite of real programs, run by scripts/bench: each section
# runs natively, under corun (and against its baseline) in the same run,
# REPS times, and prints a Markdown section of medians on stdout; the data
# behind the plots goes to OUTDIR/*.dat (drawn by bench/plot.gp). Progress
# and raw output go to stderr.
#   bench/suite.sh BUILD_DIR OUTDIR REPS SECTION...
# Sections:
#   echo      examples/echo-threaded natively, under coro-run and
#             bench/echo-epoll, 10 / 100 / 1,000 / 10,000 connections
#   http      bench/http_server.py (ThreadingHTTPServer) natively, under
#             coro-run and under gevent (bench/http_gevent.py), driven by wrk
#   threads   bench/pt_sleepers: 1k to 1M pthreads, natively and under corun
#   pingpong  bench/pt_pingpong: mutex+condvar handoffs, natively and under corun
#   servers   Redis, PostgreSQL and MariaDB natively and under coro-run
#             (bench/servers.sh; raw output in OUTDIR/servers/)
set -euo pipefail
build=$(cd "${1:?usage: bench/suite.sh BUILD_DIR OUTDIR REPS SECTION...}" && pwd)
out=${2:?} reps=${3:?}
shift 3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
lib=$build/.libs/libcorun.so
corun=("$top/scripts/coro-run" --library "$lib")
mkdir -p "$out"
log() { echo "suite: $*" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
field() { sed -n "s/.*[ @]$1=\([0-9.]*\).*/\1/p" | head -n 1; }
group() { printf '%.0f' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }   # 1234567 -> 1,234,567

# ---- echo ------------------------------------------------------------------------
section_echo() {
    echo "### Thread-per-connection echo server: native threads, corun, hand-written epoll"
    echo
    echo "\`bench/echo.sh $build CONNS MSGS 64 $reps\` for each CONNS: the unmodified"
    echo "\`examples/echo-threaded\` natively and under coro-run, and \`bench/echo-epoll\`"
    echo "natively and under coro-run (its own event loop), each pinned to CPU 0; the client (\`examples/echo-load\` under coro-run, every byte"
    echo "checked) on CPU 1; 64-byte messages, MSGS round trips per connection so that"
    echo "each run makes about 200,000; median of $reps runs."
    echo
    echo "| connections | native threads trips/s | corun trips/s | epoll trips/s | native p99 | corun p99 | epoll p99 | corun/native | corun/epoll | epoll under corun trips/s | epoll under corun/epoll | server OS threads (native/corun/epoll) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    : > "$out/echo.dat"
    echo "# conns native corun epoll native_p99_us corun_p99_us epoll_p99_us" >> "$out/echo.dat"
    for conns in 10 100 1000 10000; do
        local msgs=$((200000 / conns)) raw
        log "echo: $conns connections x $msgs round trips, $reps runs each"
        raw=$("$here/echo.sh" "$build" "$conns" "$msgs" 64 "$reps" 2>&1) || { echo "$raw" >&2; return 1; }
        echo "$raw" >&2
        local -A rate=() p99=() thr=()
        while read -r _ name _ r p t _; do rate[$name]=$r p99[$name]=$p thr[$name]=$t
        done < <(grep '^@echo ' <<<"$raw")
        echo "$conns ${rate[native]} ${rate[corun]} ${rate[epoll]} ${p99[native]} ${p99[corun]} ${p99[epoll]}" >> "$out/echo.dat"
        awk -v c="$conns" -v n="${rate[native]}" -v g="${rate[corun]}" -v e="${rate[epoll]}" \
            -v pn="${p99[native]}" -v pg="${p99[corun]}" -v pe="${p99[epoll]}" \
            -v ec="${rate[epoll_corun]}" \
            -v t="${thr[native]}/${thr[corun]}/${thr[epoll]}" 'function ms(u) { return sprintf("%.2f ms", u / 1000) }
            BEGIN { printf "| %d | %d | %d | %d | %s | %s | %s | %.2fx | %.2fx | %d | %.2fx | %s |\n",
                    c, n, g, e, ms(pn), ms(pg), ms(pe), g / n, g / e, ec, ec / e, t }'
    done
    echo
}

# ---- http ------------------------------------------------------------------------
section_http() {
    local py=/usr/bin/python3 conns=100 secs=5
    echo "### Python ThreadingHTTPServer: natively, under coro-run, under gevent"
    echo
    echo "The same script, \`bench/http_server.py\` (stock \`http.server.ThreadingHTTPServer\`,"
    echo "HTTP/1.1 keep-alive, a 20-byte answer), run by Debian's $($py --version 2>&1)"
    echo "natively, under \`scripts/coro-run\`, and under gevent $($py -c 'import gevent; print(gevent.__version__)')"
    echo "(\`bench/http_gevent.py\`: \`monkey.patch_all()\`, then the same script, unchanged),"
    echo "pinned to CPU 0; \`wrk -t1 -c$conns -d${secs}s\` pinned to CPU 1; median of $reps runs,"
    echo "modes alternating. Peak RSS is the server's VmHWM after the run."
    echo
    echo "| mode | requests/s | per run | peak RSS | server OS threads |"
    echo "|---|---|---|---|---|"
    local mode
    declare -A rps=() hwm=() runs=() thr=()
    for ((i = 1; i <= reps; i++)); do
        for mode in native corun gevent; do
            local cmd=()
            case $mode in
                native) cmd=("$py" -u "$here/http_server.py") ;;
                corun) cmd=("${corun[@]}" "$py" -u "$here/http_server.py") ;;
                gevent) cmd=("$py" -u "$here/http_gevent.py") ;;
            esac
            local sout; sout=$(mktemp)
            taskset -c 0 "${cmd[@]}" > "$sout" 2>&1 &
            local spid=$!
            for _ in $(seq 100); do grep -q '^port' "$sout" && break; sleep 0.05; done
            local port; port=$(awk '/^port/ { print $2 }' "$sout")
            [[ -n $port ]] || { log "http: $mode did not start:"; cat "$sout" >&2; kill "$spid"; return 1; }
            local wout; wout=$(mktemp)
            taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" > "$wout" 2>&1 &
            local wpid=$!
            sleep $((secs / 2))        # mid-run: every connection has its thread
            local t; t=$(ls "/proc/$spid/task" | wc -l)
            wait "$wpid" || true
            local w; w=$(cat "$wout"); rm -f "$wout"
            local h; h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$spid/status")
            kill "$spid"; wait "$spid" 2>/dev/null || true; rm -f "$sout"
            local r; r=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$w")
            local errs; errs=$(grep -E 'Socket errors|Non-2xx' <<<"$w" || true)
            log "http: $mode run $i: $r requests/s, VmHWM $h KiB, $t OS threads ${errs:+($errs)}"
            [[ -z $errs ]] || { log "http: $mode: wrk saw errors"; echo "$w" >&2; }
            runs[$mode]+="$r " hwm[$mode]+="$h " thr[$mode]=$t
        done
    done
    : > "$out/http.dat"
    echo "# mode requests_per_s peak_rss_kib" >> "$out/http.dat"
    for mode in native corun gevent; do
        # shellcheck disable=SC2086
        rps[$mode]=$(printf '%s\n' ${runs[$mode]} | median)
        # shellcheck disable=SC2086
        local h; h=$(printf '%s\n' ${hwm[$mode]} | median)
        echo "$mode ${rps[$mode]} $h" >> "$out/http.dat"
        printf '| %s | %s | %s | %.1f MiB | %s |\n' "$mode" "$(group "${rps[$mode]}")" "${runs[$mode]% }" \
            "$(awk -v k="$h" 'BEGIN { print k / 1024 }')" "${thr[$mode]}"
        hwm[$mode]=$h
    done
    echo
    # runs alternate modes, so run i of each mode saw about the same machine
    local ratios; ratios=$(paste -d' ' <(tr ' ' '\n' <<<"${runs[corun]% }") <(tr ' ' '\n' <<<"${runs[gevent]% }") |
        awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $2 }')
    # The bar is judged on the median of these paired ratios: on a shared
    # machine the ratio of two medians can pair runs far apart in time.
    local paired; paired=$(tr ' ' '\n' <<<"$ratios" | median)
    echo "corun / gevent in each run (same moment, modes alternating): $ratios; median **${paired}x**"
    echo "(bar >= 1.3x: $(awk -v r="$paired" 'BEGIN { print (r >= 1.3 ? "meets" : "MISSES") }'))"
    echo
    awk -v c="${rps[corun]}" -v g="${rps[gevent]}" -v n="${rps[native]}" -v rc="${hwm[corun]}" -v rg="${hwm[gevent]}" 'BEGIN {
        printf "ratio of the medians: corun / gevent %.2fx, corun / native %.2fx; ", c / g, c / n
        printf "peak RSS corun %.1f MiB vs gevent %.1f MiB (bar: no higher: %s)\n", rc / 1024, rg / 1024, (rc <= rg ? "meets" : "MISSES") }'
    echo
}

# ---- threads -----------------------------------------------------------------------
section_threads() {
    local secs=1
    echo "### Thread creation and memory: 1k to 1M unmodified pthreads"
    echo
    echo "\`bench/pt_sleepers N $secs\` (N joinable pthreads with default attributes, all alive at"
    echo "once, each sleeping $secs s), natively and with \`LD_PRELOAD=libcorun.so\`"
    echo "(default stack size); median of $reps runs (one native run above 10k: it fails)."
    echo "Create = time to create all N / N; peak RSS per thread = (VmHWM - start VmRSS) / N."
    echo
    echo "| threads | native: created | native create | native peak RSS/thread | corun: completed | corun create | corun peak RSS/thread | corun total time |"
    echo "|---|---|---|---|---|---|---|---|"
    : > "$out/threads.dat"
    echo "# threads native_rss_per_thread native_create_us corun_rss_per_thread corun_create_us (native: 0 = failed)" >> "$out/threads.dat"
    local n
    for n in 1000 10000 100000 1000000; do
        local nreps=$reps
        ((n < 1000000)) || nreps=$(( reps < 3 ? reps : 3 ))
        local ncreated=() ncreate=() nrss=() gdone=() gcreate=() grss=() gtotal=()
        for ((i = 1; i <= nreps; i++)); do
            if ((n <= 10000 || i == 1)) && ((n < 1000000)); then
                local o; o=$(timeout 120 "$build/bench/pt_sleepers" "$n" "$secs" 2>&1 || true)
                log "threads native $n: $(grep '^pt_sleepers: [0-9]' <<<"$o" | tail -n1)"
                ncreated+=("$(field created <<<"$o")")
                ncreate+=("$(field create_s <<<"$o")") nrss+=("$(field peak_rss_per_thread <<<"$o")")
            fi
            # Not preempted: all alive at once (see bench/pt_run.sh).
            o=$(timeout 300 env LD_PRELOAD="$lib" CORUN_THREADS=green CORUN_PREEMPT_MS=0 \
                "$build/bench/pt_sleepers" "$n" "$secs" 2>&1 || true)
            log "threads corun $n: $(grep '^pt_sleepers: [0-9]' <<<"$o" | tail -n1)"
            gdone+=("$(field completed <<<"$o")") gcreate+=("$(field create_s <<<"$o")")
            grss+=("$(field peak_rss_per_thread <<<"$o")") gtotal+=("$(field total_s <<<"$o")")
        done
        local nc="not run" ncr="" nr="" nrv=0 ncv=0
        if ((${#ncreated[@]})); then
            nc=$(printf '%s\n' "${ncreated[@]}" | median)
            if [[ $nc == "$n" ]]; then
                ncv=$(printf '%s\n' "${ncreate[@]}" | median | awk -v n="$n" '{ print $1 * 1e6 / n }')
                nrv=$(printf '%s\n' "${nrss[@]}" | median)
                ncr=$(printf '%.1f µs' "$ncv") nr=$(printf '%.0f B' "$nrv")
                nc=$(group "$nc")
            else
                nc="**fails** at $(group "$nc") (EAGAIN)"; ncv=0 nrv=0
            fi
        fi
        local gd gc gr gt
        gd=$(printf '%s\n' "${gdone[@]}" | median)
        gc=$(printf '%s\n' "${gcreate[@]}" | median | awk -v n="$n" '{ print $1 * 1e6 / n }')
        gr=$(printf '%s\n' "${grss[@]}" | median) gt=$(printf '%s\n' "${gtotal[@]}" | median)
        echo "$n $nrv $ncv $gr $gc" >> "$out/threads.dat"
        printf '| %s | %s | %s | %s | %s | %.2f µs | %s B | %s s |\n' "$(group "$n")" "$nc" "$ncr" "$nr" \
            "$(group "$gd")" "$gc" "$gr" "$gt"
    done
    echo
}

# ---- pingpong ------------------------------------------------------------------------
section_pingpong() {
    local trips=200000
    echo "### Mutex + condvar handoff ping-pong"
    echo
    echo "\`bench/pt_pingpong $trips 3\` (two pthreads handing a turn back and forth under one"
    echo "mutex and two condvars), natively and with \`LD_PRELOAD=libcorun.so\`, both"
    echo "\`taskset -c 0\`, runs alternating; median of $reps runs."
    echo
    local nat=() grn=()
    for ((i = 1; i <= reps; i++)); do
        nat+=("$(taskset -c 0 "$build/bench/pt_pingpong" "$trips" 3 | field handoffs_per_s)")
        grn+=("$(taskset -c 0 env LD_PRELOAD="$lib" CORUN_THREADS=green "$build/bench/pt_pingpong" "$trips" 3 | field handoffs_per_s)")
        log "pingpong run $i: native ${nat[-1]}, corun ${grn[-1]} handoffs/s"
    done
    local n g
    n=$(printf '%s\n' "${nat[@]}" | median) g=$(printf '%s\n' "${grn[@]}" | median)
    echo "| | handoffs/s | ns/handoff | per run |"
    echo "|---|---|---|---|"
    printf '| native threads, one CPU | %s | %.1f | %s |\n' "$(group "$n")" "$(awk -v r="$n" 'BEGIN { print 1e9 / r }')" "${nat[*]}"
    printf '| corun green threads | %s | %.1f | %s |\n' "$(group "$g")" "$(awk -v r="$g" 'BEGIN { print 1e9 / r }')" "${grn[*]}"
    echo
    awk -v g="$g" -v n="$n" 'BEGIN { printf "corun / native: **%.1fx**\n\n", g / n }'
}

# ---- servers -----------------------------------------------------------------------
section_servers() { "$here/servers.sh" "$build" "$out" "$reps"; }

for s in "$@"; do
    case $s in
        echo|http|threads|pingpong|servers) "section_$s" ;;
        *) echo "suite: unknown section '$s' (allowed: echo, http, threads, pingpong, servers)" >&2; exit 2 ;;
    esac
done
