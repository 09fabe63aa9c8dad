#!/usr/bin/env bash
# Integration: CPython's own test_subprocess test_pass_fds_redirected under
# coro-run (Debian's libpython3.11-testsuite). Its child, a Python that is
# under coro-run too, fstats every fd below the soft RLIMIT_NOFILE and must
# find only the ones passed to it: corun's own fds must not exist for it.
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3.11
[ -x "$py" ] || { echo "SKIP: $py not installed"; exit 77; }
"$py" -c 'import test.test_subprocess' 2>/dev/null ||
    { echo "SKIP: CPython's test suite not installed (libpython3.11-testsuite)"; exit 77; }
cd "$work"
status=0
timeout 100 "${corun[@]}" "$py" -m test -v test_subprocess -m test_pass_fds_redirected \
    > "$work/out" 2>&1 || status=$?
check '[ "$status" = 0 ]' "python3 -m test test_subprocess -m test_pass_fds_redirected exited with $status"
check 'grep -q "Tests result: SUCCESS" "$work/out"' "the test did not pass"
check 'grep -q "^test_pass_fds_redirected " "$work/out" && grep -q "^Ran 1 test" "$work/out"' \
    "the test did not run (filtered out?)"
[ "$fail" = 0 ] || cat "$work/out"
finish
