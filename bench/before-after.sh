#!/usr/bin/env bash
# Two builds of corun side by side in one run (a refactor's "no figure
# worse"): context switch and yield, a hooked read with data ready, spawn +
# join, the mutex+condvar ping-pong between two pthreads (and natively), the
# echo server with 100 connections (native threads, coro-run, epoll), and
# 1,000,000 sleeping pthreads. The two builds' runs alternate (A B A B ...),
# so drift in the machine's load hits both alike. Prints a Markdown table of
# medians with every run's figure. BA_ENV_A and BA_ENV_B, if set, are
# settings for each side's runs (one build, two modes:
# BA_ENV_A=CORUN_TLS=shared BA_ENV_B=CORUN_TLS=own bench/before-after.sh B B).
#   bench/before-after.sh BUILD_A BUILD_B [REPS] [SLEEPERS]
set -euo pipefail
a=$(cd "${1:?usage: bench/before-after.sh BUILD_A BUILD_B [REPS] [SLEEPERS]}" && pwd)
b=$(cd "${2:?}" && pwd)
reps=${3:-5} sleepers=${4:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
for d in "$a" "$b"; do
    make -C "$d" -s bench/switch bench/hookcost bench/spawn bench/pt_pingpong bench/pt_sleepers \
        examples/echo-threaded examples/echo-load bench/echo-epoll >/dev/null
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A runs=()
keys=()
note() {   # note KEY BUILD VALUE
    [[ -v runs["$1|A"] || -v runs["$1|B"] ]] || keys+=("$1")
    runs["$1|$2"]+="$3 "
}
result() { sed -n "s/^@result $1 \([0-9.]*\).*/\1/p" | head -n 1; }
field() { sed -n "s/.*[ @]$1=\([0-9.]*\).*/\1/p" | head -n 1; }
for ((i = 1; i <= reps; i++)); do
    for side in A B; do
        d=$a; [ "$side" = B ] && d=$b
        for v in ${BA_ENV_A:-} ${BA_ENV_B:-}; do unset "${v%%=*}"; done
        if [ "$side" = A ]; then envs=${BA_ENV_A:-}; else envs=${BA_ENV_B:-}; fi
        [ -z "$envs" ] || export $envs
        echo "before-after: run $i/$reps, build $side" >&2
        out=$(cd "$d" && CORUN_THREADS=native taskset -c 0 ./bench/switch 2>&1)
        note "switch between two functions (ns)" $side "$(result switch_ns <<<"$out")"
        note "switch, same call site (ns)" $side "$(result switch_same_site_ns <<<"$out")"
        note "corun_yield (ns)" $side "$(result yield_ns <<<"$out")"
        out=$(cd "$d" && CORUN_THREADS=native taskset -c 0 ./bench/hookcost 2>&1)
        note "hooked read(), data ready (ns)" $side "$(sed -n 's/.*corun hook *\([-0-9.]*\) ns.*/\1/p' <<<"$out")"
        note "raw read syscall, same run (ns)" $side "$(sed -n 's/.*raw syscall *\([-0-9.]*\) ns.*/\1/p' <<<"$out")"
        note "hooked read(), data ready, over the raw syscall (ns)" $side \
            "$(sed -n 's/.*hook overhead *\([-0-9.]*\) ns.*/\1/p' <<<"$out")"
        note "read by syscall instruction beside a green thread (ns)" $side \
            "$(sed -n 's/.*read, routed *\([-0-9.]*\) ns.*/\1/p' <<<"$out")"
        note "getppid by syscall instruction beside a green thread (ns)" $side \
            "$(sed -n 's/.*getppid *\([-0-9.]*\) ns.*/\1/p' <<<"$out")"
        out=$(cd "$d" && CORUN_THREADS=native taskset -c 0 ./bench/spawn 2>&1)
        note "spawn + join, explicit API (ns)" $side "$(result spawn_join_ns <<<"$out")"
        out=$(LD_PRELOAD=$d/.libs/libcorun.so CORUN_THREADS=green taskset -c 0 "$d/bench/pt_pingpong" 2>&1)
        note "mutex+condvar ping-pong, green (ns per handoff)" $side "$(field ns_per_handoff <<<"$out")"
        out=$("$here/echo.sh" "$d" 100 2000 64 1 2>/dev/null)
        note "echo 100 conns, coro-run (trips/s)" $side "$(awk '$1 == "@echo" && $2 == "corun" { print $4 }' <<<"$out")"
        note "echo 100 conns, native threads (trips/s)" $side "$(awk '$1 == "@echo" && $2 == "native" { print $4 }' <<<"$out")"
        note "echo 100 conns, epoll native (trips/s)" $side "$(awk '$1 == "@echo" && $2 == "epoll" { print $4 }' <<<"$out")"
        note "echo 100 conns, epoll under coro-run (trips/s)" $side "$(awk '$1 == "@echo" && $2 == "epoll_corun" { print $4 }' <<<"$out")"
        if ((i <= 2)); then    # the million sleepers take a while: two runs each
            # Not preempted: all alive at once (see bench/pt_run.sh).
            out=$(LD_PRELOAD=$d/.libs/libcorun.so CORUN_THREADS=green CORUN_PREEMPT_MS=0 \
                  "$d/bench/pt_sleepers" "$sleepers" 2>&1 || true)
            note "$sleepers sleeping pthreads: peak RSS per thread (bytes)" $side "$(field peak_rss_per_thread <<<"$out")"
            note "$sleepers sleeping pthreads: completed" $side "$(field completed <<<"$out")"
        fi
    done
    for v in ${BA_ENV_A:-} ${BA_ENV_B:-}; do unset "${v%%=*}"; done
    out=$(taskset -c 0 "$a/bench/pt_pingpong" 2>&1)
    note "mutex+condvar ping-pong, native threads pinned (ns per handoff)" N "$(field ns_per_handoff <<<"$out")"
done
echo "| figure | A: median | B: median | B / A | A runs | B runs |"
echo "|---|---|---|---|---|---|"
for k in "${keys[@]}"; do
    ma=$(median <<<"${runs[$k|A]:-}") mb=$(median <<<"${runs[$k|B]:-}")
    if [[ -n ${runs[$k|N]:-} ]]; then
        echo "| $k | $(median <<<"${runs[$k|N]}") (native) | | | ${runs[$k|N]}| |"
        continue
    fi
    ratio=$(awk -v x="$ma" -v y="$mb" 'BEGIN { if (x + 0 != 0) printf "%.3f", y / x; else print "n/a" }')
    echo "| $k | $ma | $mb | $ratio | ${runs[$k|A]:-}| ${runs[$k|B]:-}|"
done
