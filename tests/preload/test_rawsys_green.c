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

/* syscall(SYS_futex): EAGAIN, ETIMEDOUT (relative, absolute monotonic and
 * realtime), EINVAL, private and shared, all parked. */
RAWSYS(futex_basic)
/* Wake counts: 2 of 3 green waiters, then the last; the other kind
 * (private/shared) is another futex. */
RAWSYS(futex_wake)
/* WAKE_BITSET wakes the waiters whose bitset it shares. */
RAWSYS(futex_bitset)
/* CMP_REQUEUE moves green waiters to the second word (EAGAIN on a
 * mismatch); the result counts woken and moved. */
RAWSYS(futex_requeue)
/* EINTR without SA_RESTART; an untimed wait restarts after an SA_RESTART
 * handler; a timed one fails EINTR after any. */
RAWSYS(futex_eintr)
/* A kernel thread made behind corun's back waits; a green wake reaches it. */
RAWSYS(futex_kernel_waiter)
/* A green thread waits; a kernel thread's syscall(SYS_futex) wakes it (1). */
RAWSYS(futex_kernel_waker)
/* A kernel thread waits first, then a green one: a wake of one reaches the
 * kernel thread, as natively (corun's own allocation, waiting in the kernel
 * for the malloc lock a green thread of its OS thread waited for, hung). */
RAWSYS(futex_kernel_first)
/* A kernel thread's own syscall instruction wakes: corun does not see it;
 * the green waiter's backstop does, in well under a second. */
RAWSYS(futex_inline_wake)

/* io_uring_enter(GETEVENTS) by number on a ring made with the raw calls:
 * a pipe read another thread satisfies later, two completions waited for
 * together, the EXT_ARG timeout (ETIME); parked, the ticker ticks. */
RAWSYS(uring_wait)

/* A thread canceled in FUTEX_WAIT stays until woken (syscall() is no
 * cancellation point). */
RAWSYS(futex_cancel)
/* A completion wait: EINTR after a handler; a cancel waits for the
 * completion (the other threads keep running meanwhile). */
RAWSYS(uring_eintr_cancel)
RAWSYS(eintr_woken)
/* io_uring completion waits and polls of a thread that blocks SIGUSR2
 * while another process floods the process with it: never EINTR. One OS
 * thread, so that the signals reach the waiter's. */
MATRIX(rawsys, signal_storm, pt_rawsys, signal_storm, "CORUN_PROCS=1", NULL)
/* Bad pointers to rt_sigaction, rt_sigprocmask, clone3, futex and the
 * ppoll/pselect6 masks and timeouts by number: EFAULT, as natively. */
RAWSYS(bad_pointers)
