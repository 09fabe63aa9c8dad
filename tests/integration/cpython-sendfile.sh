#!/usr/bin/env bash
# Integration: CPython's own socket.sendfile() tests (Debian's
# libpython3.11-testsuite: test_socket SendfileUsingSendfileTest, 11 cases)
# under coro-run. The client thread sends a file with os.sendfile() to the
# server thread of the same process over a blocking socket: both are green
# threads, so a sendfile that blocks the OS thread instead of parking never
# ends (it hung in testOffset). Must report the same success as natively.
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
[ -x "$py" ] || { echo "SKIP: $py not installed"; exit 77; }
"$py" -c 'import test.test_socket' 2>/dev/null ||
    { echo "SKIP: CPython's test suite (libpython3.11-testsuite) not installed"; exit 77; }
run() {        # label, command prefix...
    local label=$1 status=0
    shift
    (cd "$work" && timeout 60 "$@" "$py" -m test test_socket -m 'SendfileUsingSendfileTest*' -v) \
        > "$work/$label.out" 2>&1 || status=$?
    echo "$label: exit $status, $(grep -c '\.\.\. ok$' "$work/$label.out") cases ok"
    check '[ "$status" = 0 ]' "test_socket SendfileUsingSendfileTest ($label) exited with status $status (124: timed out)"
    check 'grep -q "^Ran 11 tests" "$work/$label.out"' "$label did not run the 11 cases"
    check 'grep -q "Tests result: SUCCESS" "$work/$label.out"' "$label did not succeed"
    [ "$status" = 0 ] || tail -20 "$work/$label.out"
}
run native env
run coro-run "${corun[@]}"
finish
