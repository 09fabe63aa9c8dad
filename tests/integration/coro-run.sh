#!/usr/bin/env bash
# Integration: the coro-run command. Every option sets its CORUN_* variable;
# every invalid value, unknown option and missing value is a clear message
# and exit status 2 (from coro-run and from a plain LD_PRELOAD alike); the
# program's status comes back; a preload the loader would ignore (static,
# setuid) is reported; --doctor gives the right verdicts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${CORUN_TEST_BUILDDIR:-$(pwd)}
lib="$build/.libs/libcorun.so"
if grep -q -- '-fsanitize' "$build/Makefile" 2>/dev/null; then
    echo "SKIP: preloading an ASan-built libcorun needs the ASan runtime first"; exit 77
fi
unset $(env | sed -n 's/^\(CORUN_[A-Z_]*\)=.*/\1/p')
corun=("$top/scripts/coro-run" --library "$lib")
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# ---- options become settings ------------------------------------------------------------
check_var() {   # EXPECTED-ASSIGNMENT OPTION...
    local want=$1; shift
    local out
    out=$("${corun[@]}" "$@" env) || { bad "$* env: status $?"; return; }
    grep -qx -- "$want" <<<"$out" || bad "$*: environment lacks $want"
}
check_var CORUN_THREADS=native --threads native
check_var CORUN_THREADS=green --threads=green
check_var CORUN_TLS=own --tls own
check_var CORUN_TLS=shared --tls=shared
check_var CORUN_CATCH=plt --catch plt
check_var CORUN_STACK_SIZE=64K --stack-size 64K
check_var CORUN_POOL_SIZE=4 --pool-size 4
check_var CORUN_POOL_SIZE=7 --pool-size=7
check_var CORUN_INHERIT=1 --inherit
# Inheritance off: the program keeps corun, its environment (so its
# children) loses it.
for opt in --no-inherit --inherit=no; do
    out=$("${corun[@]}" "$opt" sh -c 'grep -c libcorun /proc/$$/maps; env | grep -c "^CORUN_" || true') ||
        bad "$opt: status $?"
    [ "$(sed -n 1p <<<"$out")" -gt 0 ] && [ "$(sed -n 2p <<<"$out")" = 0 ] ||
        bad "$opt: the program lost corun or its environment kept CORUN_*: $out"
done
check_var CORUN_FILE_IO=offload --file-io offload
check_var "CORUN_OFFLOAD=libz.so.1:crc32:L(Lpi)" --offload "libz.so.1:crc32:L(Lpi)"
check_var CORUN_STATS=1 --stats
check_var CORUN_BLOCK_WARN_MS=100 --block-warn 100
check_var CORUN_BLOCK_WARN_MS=50 --block-warn-ms=50
check_var CORUN_PREEMPT_MS=5 --preempt 5
check_var CORUN_PROCS=3 --procs 3
check_var CORUN_PREEMPT_MS=0 --preempt-ms=0
check_var CORUN_HANDOFF_MS=25 --handoff 25
check_var CORUN_HANDOFF_MS=0 --handoff-ms=0
check_var CORUN_DUMP_SIGNAL=SIGUSR1 --dump-signal SIGUSR1
check_var CORUN_LOG_LEVEL=debug --log-level debug
check_var CORUN_LOG_FILE="$work/log" --log-file "$work/log"
out=$("${corun[@]}" env)
grep -q "^LD_PRELOAD=$lib" <<<"$out" || bad "LD_PRELOAD does not start with the library"

# ---- exit status, help, version ------------------------------------------------------
st=0; "${corun[@]}" sh -c 'exit 7' || st=$?
[ "$st" = 7 ] || bad "program status 7 came back as $st"
"${corun[@]}" --help | grep -q -- '--dump-signal' || bad "--help does not list --dump-signal"
for o in --threads --tls --catch --stack-size --pool-size --inherit --file-io --offload --stats \
         --block-warn --dump-signal --log-level --log-file --doctor; do
    "${corun[@]}" --help | grep -q -- "$o" || bad "--help does not describe $o"
done
"${corun[@]}" --version | grep -q '^coro-run (corun) [0-9]' || bad "--version"

# ---- errors: message and exit 2 -------------------------------------------------------
expect_error() {   # PATTERN ARGS...   (the program, if reached, would print "RAN")
    local pat=$1; shift
    local st=0 err
    err=$("${corun[@]}" "$@" 2>&1 >/dev/null) || st=$?
    [ "$st" = 2 ] || { bad "coro-run $*: status $st, expected 2 ($err)"; return; }
    grep -q -- "$pat" <<<"$err" || bad "coro-run $*: message [$err] lacks [$pat]"
}
expect_error "unknown option '--bogus'" --bogus echo RAN
expect_error "needs a value" --pool-size
expect_error "no program given"
expect_error "no program given" --stats
expect_error "CORUN_THREADS='blue' (--threads): expected 'green'" --threads blue echo RAN
expect_error "CORUN_TLS='mine' (--tls): expected 'own'" --tls mine echo RAN
expect_error "CORUN_CATCH='seccomp' (--catch): expected 'auto'.*'plt'.*'sud'" --catch seccomp echo RAN
expect_error "CORUN_STACK_SIZE='1' (--stack-size).*16K" --stack-size 1 echo RAN
expect_error "CORUN_POOL_SIZE='0' (--pool-size).*1 to 1024" --pool-size 0 echo RAN
expect_error "CORUN_POOL_SIZE='2000'" --pool-size=2000 echo RAN
expect_error "CORUN_INHERIT='maybe' (--inherit)" --inherit=maybe echo RAN
expect_error "CORUN_FILE_IO='sometimes' (--file-io).*'inline'" --file-io sometimes echo RAN
expect_error "CORUN_STATS='2' (--stats)" --stats=2 echo RAN
expect_error "CORUN_BLOCK_WARN_MS='-5' (--block-warn)" --block-warn -5 echo RAN
expect_error "CORUN_BLOCK_WARN_MS='fast'" --block-warn fast echo RAN
expect_error "CORUN_PREEMPT_MS='60001' (--preempt)" --preempt 60001 echo RAN
expect_error "CORUN_PROCS='0' (--procs).*1 to 256" --procs 0 echo RAN
expect_error "CORUN_HANDOFF_MS='60001' (--handoff).*or 0 (never)" --handoff 60001 echo RAN
expect_error "CORUN_HANDOFF_MS='soon'" --handoff soon echo RAN
expect_error "CORUN_PROCS='many' (--procs)" --procs many echo RAN
expect_error "CORUN_PROCS='257'" --procs=257 echo RAN
expect_error "CORUN_DUMP_SIGNAL='SIGKILL' (--dump-signal)" --dump-signal SIGKILL echo RAN
expect_error "CORUN_DUMP_SIGNAL='NOPE'" --dump-signal NOPE echo RAN
expect_error "CORUN_LOG_LEVEL='loud' (--log-level).*'debug'" --log-level loud echo RAN
expect_error "CORUN_LOG_FILE='$work/no/dir/log' (--log-file): cannot open it for appending (No such file or directory)" \
    --log-file "$work/no/dir/log" echo RAN
expect_error "CORUN_LOG_FILE='$work' (--log-file): cannot open it for appending (Is a directory)" \
    --log-file "$work" echo RAN
expect_error "CORUN_DUMP_SIGNAL='RTMAX-1' (--dump-signal): this signal (SIGRTMAX-1) is the blocking detector's" \
    --block-warn 100 --dump-signal RTMAX-1 echo RAN
check_var CORUN_DUMP_SIGNAL=RTMAX-1 --dump-signal RTMAX-1   # without the detector it is free
expect_error "CORUN_DUMP_SIGNAL='RTMAX-2' (--dump-signal): this signal (SIGRTMAX-2) is corun's own" \
    --dump-signal RTMAX-2 echo RAN
expect_error "does not exist" --library "$work/nope.so" echo RAN
echo 'not a library' > "$work/fake.so"
expect_error "could not be loaded" --library "$work/fake.so" echo RAN
# A setting from the environment is checked the same way.
st=0; err=$(CORUN_POOL_SIZE=zero "${corun[@]}" echo RAN 2>&1) || st=$?
[ "$st" = 2 ] && grep -q "CORUN_POOL_SIZE='zero'" <<<"$err" && ! grep -q RAN <<<"$err" ||
    bad "CORUN_POOL_SIZE=zero from the environment: status $st [$err]"
# Plain LD_PRELOAD users get the same checks from the library.
for setting in CORUN_THREADS=blue CORUN_TLS=mine CORUN_CATCH=x CORUN_STACK_SIZE=1 CORUN_POOL_SIZE=0 CORUN_INHERIT=x \
               CORUN_FILE_IO=x CORUN_STATS=x CORUN_BLOCK_WARN_MS=x CORUN_DUMP_SIGNAL=KILL \
               CORUN_LOG_LEVEL=x CORUN_LOG_FILE=/nonexistent/log CORUN_OFFLOAD=x CORUN_PROCS=0 \
               CORUN_HANDOFF_MS=-1; do
    st=0; err=$(env "$setting" LD_PRELOAD="$lib" sh -c 'echo RAN' 2>&1) || st=$?
    [ "$st" = 2 ] && grep -q "invalid ${setting%%=*}=" <<<"$err" && ! grep -q RAN <<<"$err" ||
        bad "LD_PRELOAD with $setting: status $st [$err]"
done

# ---- --doctor says which TLS mode a program would get ----------------------------
# The default: own where the catch of system calls is in force, else shared
# with the reason.
tls_default=$(CORUN_CHECK_ONLY=tls LD_PRELOAD="$lib" /bin/true)
out=$("${corun[@]}" --doctor "$build/tests/pt_tls" 2>&1) || bad "--doctor pt_tls: status $?"
grep -qF "thread-local storage of green threads: $tls_default" <<<"$out" || bad "--doctor: no TLS mode line [$out]"
if [ "$(CORUN_CHECK_ONLY=catch LD_PRELOAD="$lib" /bin/true)" = sud ]; then
    [ "$tls_default" = own ] || bad "own TLS is not the default with the catch in force: $tls_default"
fi
out=$("${corun[@]}" --tls shared --doctor "$build/tests/pt_tls" 2>&1) || bad "--doctor --tls shared: status $?"
grep -q 'thread-local storage of green threads: shared' <<<"$out" || bad "--doctor --tls shared: [$out]"
grep -q 'limit: has __thread' <<<"$out" || bad "--doctor: no __thread limit with shared TLS [$out]"
out=$("${corun[@]}" --catch plt --doctor "$build/tests/pt_tls" 2>&1) || bad "--doctor --catch plt: status $?"
grep -q 'thread-local storage of green threads: shared: system calls no hook sees are not caught' <<<"$out" ||
    bad "--doctor --catch plt: TLS not shared with the reason [$out]"
if CORUN_TLS=own CORUN_CHECK_ONLY=tls LD_PRELOAD="$lib" /bin/true | grep -q '^own'; then
    out=$("${corun[@]}" --tls own --doctor "$build/tests/pt_tls" 2>&1) || bad "--doctor --tls own: status $?"
    grep -q 'thread-local storage of green threads: own' <<<"$out" || bad "--doctor --tls own: [$out]"
    ! grep -q 'limit: has __thread' <<<"$out" || bad "--doctor --tls own still lists the __thread limit"
fi

# ---- a preload the loader ignores is reported --------------------------------------
printf 'int main(void) { return 5; }\n' > "$work/five.c"
if ${CC:-cc} -static -o "$work/static5" "$work/five.c" 2>/dev/null; then
    st=0; err=$("${corun[@]}" "$work/static5" 2>&1) || st=$?
    [ "$st" = 5 ] || bad "static program: status $st, expected 5"
    grep -q "statically linked.*LD_PRELOAD.*ignored" <<<"$err" || bad "static program: no warning [$err]"
    st=0; out=$("${corun[@]}" --doctor "$work/static5") || st=$?
    [ "$st" = 1 ] && grep -q "verdict: corun cannot work" <<<"$out" && grep -q "statically linked" <<<"$out" ||
        bad "doctor on a static program: status $st [$out]"
else
    echo "note: no static libc: the static-program checks are skipped"
fi
${CC:-cc} -o "$work/dyn5" "$work/five.c"
st=0; err=$("${corun[@]}" "$work/dyn5" 2>&1) || st=$?
[ "$st" = 5 ] && [ -z "$err" ] || bad "dynamic program: status $st, stderr [$err]"
st=0; out=$("${corun[@]}" --doctor "$work/dyn5") || st=$?
[ "$st" = 0 ] && grep -q "verdict: corun can work on $work/dyn5\$" <<<"$out" ||
    bad "doctor on a plain dynamic program: status $st [$out]"
# A script is judged by its interpreter.
printf '#!%s\n' "$work/static5" > "$work/script"
chmod +x "$work/script"
if [ -x "$work/static5" ]; then
    out=$("${corun[@]}" --doctor "$work/script") || true
    grep -q "interpreter $work/static5" <<<"$out" && grep -q "cannot work" <<<"$out" ||
        bad "doctor on a script with a static interpreter [$out]"
fi
# Imports: a program calling read() and fgets()/syscall().
cat > "$work/imports.c" <<'C'
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/file.h>
int main(int argc, char **argv) {
    char b[8];
    if (argc > 5) { read(0, b, 1); flock(0, LOCK_EX); syscall(SYS_getpid); }
    return argc > 6 ? !fgets(b, 8, stdin) : 0;
}
C
${CC:-cc} -o "$work/imports" "$work/imports.c"
# Without the catch, an unhooked blocking function is a limit; with it
# (where this machine has it), a note: its system calls are caught.
out=$("${corun[@]}" --catch plt --doctor "$work/imports") || bad "doctor on imports: status $?"
grep -q "interposes: .*read" <<<"$out" || bad "doctor: read not listed as interposed [$out]"
grep -q "does NOT interpose: .*flock" <<<"$out" || bad "doctor: flock not listed as not interposed [$out]"
grep -q "syscall()" <<<"$out" || bad "doctor: syscall() not reported [$out]"
grep -q "system calls no hook sees: not caught (plt: CORUN_CATCH=plt)" <<<"$out" || bad "doctor: no catch line for plt [$out]"
grep -q "with the limits above" <<<"$out" || bad "doctor: no limited verdict [$out]"
catch_here=$(CORUN_CHECK_ONLY=catch LD_PRELOAD="$lib" /bin/true)
if [ "$catch_here" = sud ]; then
    out=$("${corun[@]}" --doctor "$work/imports") || bad "doctor on imports: status $?"
    grep -q "system calls no hook sees: caught" <<<"$out" || bad "doctor: no catch line [$out]"
    grep -q "note: imports blocking functions corun does not interpose (flock)" <<<"$out" ||
        bad "doctor: flock not a note with the catch [$out]"
else
    echo "note: no catch of system calls here ($catch_here): the doctor's catch checks are skipped"
fi
# Thread-local variables: a limit, not a refusal.
printf 'static __thread int n;\nint main(void) { return n++; }\n' > "$work/tls.c"
${CC:-cc} -o "$work/tls" "$work/tls.c"
st=0; out=$("${corun[@]}" --tls shared --doctor "$work/tls") || st=$?
[ "$st" = 0 ] && grep -q "limit: has __thread" <<<"$out" && grep -q "with the limits above" <<<"$out" ||
    bad "doctor on a __thread program: status $st [$out]"
! grep -q "__thread" <<<"$("${corun[@]}" --doctor "$work/dyn5")" || bad "doctor: __thread reported for dyn5"
# io_uring through liburing (scripts/setup installs liburing-dev).
printf '#include <liburing.h>\nint main(void) { struct io_uring r; return io_uring_queue_init(4, &r, 0); }\n' > "$work/uring.c"
if ${CC:-cc} -o "$work/uring" "$work/uring.c" -luring 2>/dev/null; then
    st=0; out=$("${corun[@]}" --catch plt --doctor "$work/uring") || st=$?
    [ "$st" = 0 ] && grep -q "limit: uses io_uring" <<<"$out" || bad "doctor on an io_uring program: status $st [$out]"
    if [ "$catch_here" = sud ]; then
        st=0; out=$("${corun[@]}" --doctor "$work/uring") || st=$?
        [ "$st" = 0 ] && grep -q "note: uses io_uring: a wait for completions parks" <<<"$out" ||
            bad "doctor on an io_uring program with the catch: status $st [$out]"
    fi
else
    echo "note: no liburing-dev: the io_uring doctor check is skipped"
fi
# A real Go program, static and cgo (when a Go toolchain is installed: not by
# scripts/setup, it is large).
if command -v go >/dev/null; then
    printf 'package main\nimport "fmt"\nfunc main() { fmt.Println("hi") }\n' > "$work/hello.go"
    for mode in static cgo; do
        flags=(); [ "$mode" = cgo ] && flags=(-ldflags=-linkmode=external)
        if (cd "$work" && HOME=$work GOCACHE=$work/gocache GOPATH=$work/gopath GO111MODULE=off \
                CGO_ENABLED=$([ "$mode" = cgo ] && echo 1 || echo 0) \
                go build "${flags[@]}" -o "go-$mode" hello.go) >/dev/null 2>&1; then
            st=0; out=$("${corun[@]}" --doctor "$work/go-$mode") || st=$?
            [ "$st" = 1 ] && grep -q "is a Go program" <<<"$out" && grep -q "verdict: corun cannot work" <<<"$out" ||
                bad "doctor on a $mode Go program: status $st [$out]"
        else
            bad "go build ($mode) failed"
        fi
    done
else
    echo "note: no Go toolchain: the Go doctor checks are skipped"
fi
# setuid: only root can make a file owned by someone else.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    suiddir=$(mktemp -d /tmp/corun-suid.XXXXXX)
    cp "$work/dyn5" "$suiddir/suid5"
    chown nobody "$suiddir/suid5"; chmod 4755 "$suiddir/suid5"; chmod 755 "$suiddir"
    st=0; err=$("${corun[@]}" "$suiddir/suid5" 2>&1) || st=$?
    [ "$st" = 5 ] && grep -q "setuid.*ignores LD_PRELOAD" <<<"$err" || bad "setuid program: status $st [$err]"
    st=0; out=$("${corun[@]}" --doctor "$suiddir/suid5") || st=$?
    [ "$st" = 1 ] && grep -q "setuid" <<<"$out" || bad "doctor on a setuid program: status $st [$out]"
    rm -rf "$suiddir"
elif [ -u /usr/bin/passwd ]; then
    st=0; out=$("${corun[@]}" --doctor /usr/bin/passwd) || st=$?
    [ "$st" = 1 ] && grep -q "setuid" <<<"$out" || bad "doctor on passwd: status $st [$out]"
fi
expect_error "not found" --doctor "$work/missing"

# ---- --dump-signal from outside, into --log-file ------------------------------------------
# Every green thread waits, with no timer: the signal alone must wake the loop.
if [ -x "$build/tests/pt_deadlock" ]; then
    CORUN_THREADS=green "${corun[@]}" --dump-signal SIGQUIT --log-file "$work/dump.log" \
        "$build/tests/pt_deadlock" wait > "$work/dl.out" 2> "$work/dl.err" &
    dl=$!
    for _ in $(seq 100); do grep -q deadlocked "$work/dl.out" 2>/dev/null && break; sleep 0.05; done
    kill -QUIT "$dl"
    for _ in $(seq 100); do grep -q "no deadlock cycle\|DEADLOCK" "$work/dump.log" 2>/dev/null && break; sleep 0.05; done
    kill -KILL "$dl" 2>/dev/null || true
    wait "$dl" 2>/dev/null || true
    grep -q "DEADLOCK: 2 'taker' waits for mutex .* held by 3 'holder', 3 'holder' waits for join of 2 'taker'" "$work/dump.log" ||
        bad "no deadlock named in the dump: [$(cat "$work/dump.log" 2>/dev/null)]"
    grep -q "green thread 1 (main): parked: join of green thread 3 'holder'" "$work/dump.log" ||
        bad "main's join not in the dump"
    ! grep -q "dump of the green threads" "$work/dl.err" || bad "the dump went to stderr, not the log file"
fi

[ "$fail" = 0 ] && echo "PASS: coro-run options, errors, preload checks, doctor"
exit "$fail"
