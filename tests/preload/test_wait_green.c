/*
 * test_wait_green.c - the waiting calls (poll, ppoll, select, pselect, the
 * epoll_wait family, the sleep family, sched_yield) seen from an unmodified
 * program: tests/pt_wait, a plain pthread program not linked with corun,
 * run as `pt_wait MODE` three ways, as three suites:
 *
 *   wait_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green
 *   wait_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   wait_plain   no libcorun: proves the program's expectations (return
 *                values, errno, revents, fd_set contents, time left) are
 *                what glibc and the kernel really do
 *
 * A mode passes when the program exits 0 and prints "PASS MODE"; the green
 * runs must also have had libcorun loaded, green, on one OS thread.
 *
 * This binary links libcorun and `make check` runs it with
 * CORUN_THREADS=native; the children get their CORUN_THREADS explicitly.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(wait_green, .timeout = 60);
TestSuite(wait_native, .timeout = 60);
TestSuite(wait_plain, .timeout = 60);

/* A mode run all three ways (preload_run.h). */
#define WAIT(mode) MATRIX(wait, mode, pt_wait, mode, NULL)

/* poll, ppoll, select, pselect, epoll_wait, epoll_pwait and epoll_pwait2
 * with zero timeouts: the right answer at once, whether something is ready
 * or not. */
WAIT(zero_timeout)

/* A thread looping on each of those with a zero timeout (and on
 * sched_yield) until another thread sets a flag: the other thread runs,
 * whether it is runnable, asleep (a timer) or blocked reading a pipe (I/O
 * the loop must poll). In green mode it never ran before: the loop spun
 * until its bound. */
WAIT(zero_spin_runnable)
WAIT(zero_spin_sleeper)
WAIT(zero_spin_reader)
/* The same with a timeout of 1 s on an fd that is always ready (an event
 * the program never consumes: the calls never wait), as in redis-benchmark
 * --threads, whose threads that issued their share of requests loop on
 * epoll_wait returning EPOLLOUT until the others have their replies. */
WAIT(ready_spin_runnable)
WAIT(ready_spin_sleeper)
WAIT(ready_spin_reader)

/* revents: POLLIN, POLLOUT, POLLHUP, POLLERR, POLLNVAL, POLLRDHUP, ignored
 * negative fds, fields overwritten, the count, EFAULT. */
WAIT(poll_revents)
/* The same events arriving while poll/ppoll wait (POLLPRI from TCP urgent
 * data too); timeouts return 0 and are not early. */
WAIT(poll_wakeups)

/* fd_set contents after select: only ready fds stay set, bits at or above
 * nfds are ignored, exceptfds from urgent data, the time left written back
 * to the timeval (not to pselect's timespec). */
WAIT(select_sets)
WAIT(select_wakeups)
/* A closed fd in any set: EBADF at once with the sets untouched; negative
 * nfds and negative timeouts: EINVAL. */
WAIT(select_errors)

/* Linux normalises a timeval of 1,000,000 microseconds or more (0.1200000 s
 * is 1.2 s) rather than refusing it: a wait like any other, which parks. */
WAIT(select_usec_overflow)

/* Programs may allocate fd sets larger than FD_SETSIZE and pass a larger
 * nfds (the kernel accepts any nfds up to the fd table). */
WAIT(select_large_nfds)

/* The program's own epoll fd, with members corun tracks and members made
 * with raw system calls it has never seen; epoll_pwait and epoll_pwait2;
 * EPOLLHUP; edge-triggered members; an epoll fd inside another; errors. */
WAIT(epoll_own)

/* A signal whose handler has no SA_RESTART interrupts the waiting call with
 * EINTR (nanosleep/clock_nanosleep write the time left; sleep returns the
 * seconds left): "_alone" with a lone green thread (corun makes the real
 * call), the others with another green thread alive (the caller parks and
 * corun delivers the signal into the parked call). */
WAIT(eintr_poll_alone)
WAIT(eintr_ppoll_alone)
WAIT(eintr_select_alone)
WAIT(eintr_pselect_alone)
WAIT(eintr_epoll_wait_alone)
WAIT(eintr_epoll_pwait2_alone)
WAIT(eintr_nanosleep_alone)
WAIT(eintr_clock_nanosleep_alone)
WAIT(eintr_clock_nanosleep_abs_alone)
WAIT(eintr_sleep_alone)
WAIT(eintr_usleep_alone)
WAIT(eintr_poll)
WAIT(eintr_ppoll)
/* ppoll's mask unblocks the signal only while it waits. */
WAIT(eintr_ppoll_mask)
WAIT(eintr_select)
WAIT(eintr_pselect)
WAIT(eintr_epoll_wait)
WAIT(eintr_epoll_pwait2)
WAIT(eintr_nanosleep)
WAIT(eintr_clock_nanosleep)
WAIT(eintr_clock_nanosleep_abs)
WAIT(eintr_sleep)
WAIT(eintr_usleep)

/* usleep, nanosleep, clock_nanosleep (relative and TIMER_ABSTIME, on
 * CLOCK_MONOTONIC and CLOCK_REALTIME), select and poll as sleeps of 50 ms,
 * measured with clock_gettime, while another thread burns CPU in 2 ms
 * slices: never early. */
WAIT(sleep_not_early)

/* The same with 20 ms busy slices, each ending in sched_yield: natively the
 * sleeps end within a few ms of 50; under corun within about one slice
 * (the loop polls at a yield once the coarse clock has ticked), not 64
 * (POLL_EVERY dispatches); bound 500 ms. */
WAIT(sleep_not_late)

/* sleep(1), usleep: they park (the ticker runs meanwhile); sleep(0). */
WAIT(sleep_parks)
/* EINVAL for bad timespecs and clocks, without touching errno for
 * clock_nanosleep or rem for nanosleep; absolute times in the past. */
WAIT(sleep_errors)

/* clock_nanosleep(TIMER_ABSTIME) with a negative tv_sec: EINVAL, not
 * "already past". */
WAIT(sleep_abs_negative)

/* sched_yield returns 0 and lets the other thread run. */
WAIT(yield)

/* A program's own event loop (non-blocking socket, epoll_wait with a
 * timeout, read until EAGAIN) serving 20,000 round trips to a thread using
 * blocking calls: every byte right, within a generous time. */
WAIT(event_loop)

/* 100 threads at once in poll, select, epoll_wait, nanosleep with 1 s
 * timeouts: each batch of 100 takes well under 5 s, on one OS thread when
 * green. */
WAIT(many)
