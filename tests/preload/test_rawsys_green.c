/*
 * test_rawsys_green.c - system calls made by number through libc's
 * syscall() (tests/pt_rawsys, a plain pthread program not linked with
 * corun), run as `pt_rawsys MODE` three ways, as three suites:
 *
 *   rawsys_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green
 *   rawsys_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   rawsys_plain   no libcorun: proves the program's expectations are the
 *                  kernel's
 *
 * A mode passes when the program exits 0 and prints "PASS MODE"; the green
 * runs must also have been green on one OS thread.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(rawsys_green, .timeout = 60);
TestSuite(rawsys_native, .timeout = 60);
TestSuite(rawsys_plain, .timeout = 60);

#define RAWSYS(mode) MATRIX(rawsys, mode, pt_rawsys, mode, NULL)

/* syscall(SYS_read) on a pipe another thread fills later (parks: the
 * ticker ticks), and the rest of the read/write family by number. */
RAWSYS(raw_read)
/* poll, ppoll, select, pselect6, epoll_wait, epoll_pwait by number: they
 * park; the raw ppoll/pselect6 write the time left back; a sigset size the
 * kernel refuses is EINVAL. */
RAWSYS(raw_poll)
/* nanosleep, clock_nanosleep (-1/errno, not an error number), wait4 and
 * waitid by number park. */
RAWSYS(raw_sleep_wait)
/* A close, dup, dup3 or fcntl by number of one of corun's own fds fails
 * EBADF and leaves it open. */
RAWSYS(raw_hidden_fds)
