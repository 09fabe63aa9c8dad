/*
 * Hook: syscall(), the one libc function that reaches any system call by
 * number (Python's threading.get_native_id, InnoDB's futex waits). Numbers
 * corun routes (syscall_route) go where the named hook would take them;
 * every other one goes to libc unchanged. corun's own layers call
 * raw_syscall instead (rawsys.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#include "gfutex.h"
#include "gsignal.h"
#include "guring.h"
#include "gthread.h"
#include "real.h"
#include "sched.h"
#include "gate.h"
#include "rawsys.h"
#include "syscall_route.h"

REAL_DECL(long, syscall, (long, ...));

/* The numbers that name or take a thread id: each green thread has its own
 * (gthread_tid), and tgkill/tkill naming one reach it as pthread_kill does. */
static bool route_thread_id(long nr, const long a[6], const void *ra, long *ret)
{
    struct sched *s = gate_thread(ra);
    if (!s)
        return false;
    if (nr == SYS_gettid) {
        *ret = gthread_tid(s->current);
        return true;
    }
    int r = nr == SYS_tgkill ? gsignal_kill_tid(s, (pid_t)a[0], (pid_t)a[1], (int)a[2])
                             : gsignal_kill_tid(s, getpid(), (pid_t)a[0], (int)a[1]);
    if (r < 0)
        return false;            /* not a green thread's id: the kernel's */
    *ret = -r;
    return true;
}

/* ---- the fd, poll, sleep and child-wait families ---------------------------
 * A routed call is the named hook itself, called with the arguments in the
 * libc wrapper's shape: its gates, hidden fds and green primitives, so the
 * two can never disagree. Where the raw call differs from the wrapper (the
 * sigset size, pselect6's packed mask, the time left written back,
 * clock_nanosleep's error number) the difference is made here; a shape the
 * wrapper cannot express (a sigset size the kernel refuses, waitid's
 * rusage) is not routed: the caller makes the call and the kernel answers. */

/* Calls into the hook `call` (which returns -1 with errno on failure) and
 * stores the kernel's convention in *ret, errno untouched. */
#define VIA_HOOK(call)                                  \
    do {                                                \
        int saved_ = errno;                             \
        long r_ = (long)(call);                         \
        *ret = r_ == -1 ? -(long)errno : r_;            \
        errno = saved_;                                 \
        return true;                                    \
    } while (0)

#define KERNEL_SIGSET_SIZE 8           /* _NSIG / 8: the only size Linux takes */

/* The kernel's sigset (size bytes at p, NULL for none) as a libc sigset_t in
 * *out; false when the kernel would refuse the size (EINVAL). */
static bool kernel_sigset(const void *p, unsigned long size, sigset_t *out, const sigset_t **mask)
{
    *mask = NULL;
    if (!p)
        return true;
    if (size != KERNEL_SIGSET_SIZE)
        return false;
    memset(out, 0, sizeof *out);
    if (!rs_user_read(out, p, KERNEL_SIGSET_SIZE))
        return false;                  /* the kernel's EFAULT */
    *mask = out;
    return true;
}

/* The raw ppoll and pselect6 write the time left back into the caller's
 * timespec (glibc's wrappers pass a copy, so the hooks do not). */
static void time_left_back(struct timespec *ts, uint64_t deadline)
{
    if (ts && deadline != DEADLINE_NONE)
        *ts = ns_to_ts(deadline_left(deadline));
}

static uint64_t ts_deadline(const struct timespec *ts)
{
    return ts && ts_valid(ts) ? deadline_after((int64_t)ts_to_ns(ts)) : DEADLINE_NONE;
}

static bool route_ppoll(const long a[6], long *ret)
{
    sigset_t set;
    const sigset_t *mask;
    if (!kernel_sigset((const void *)a[3], (unsigned long)a[4], &set, &mask))
        return false;
    struct timespec *ts = (struct timespec *)a[2], probe;
    if (ts && !rs_user_read(&probe, ts, sizeof probe))
        return false;                  /* the kernel's EFAULT */
    uint64_t deadline = ts_deadline(ts);
    int saved = errno;
    long r = ppoll((struct pollfd *)a[0], (nfds_t)a[1], ts, mask);
    *ret = r == -1 ? -(long)errno : r;
    errno = saved;
    if (*ret != -EFAULT && *ret != -EINVAL)
        time_left_back(ts, deadline);
    return true;
}

/* pselect6's sixth argument: { const sigset_t *set; size_t size; }. */
static bool route_pselect6(const long a[6], long *ret)
{
    unsigned long pk[2];
    const unsigned long *packed = a[5] ? pk : NULL;
    if (packed && !rs_user_read(pk, (const void *)a[5], sizeof pk))
        return false;                  /* the kernel's EFAULT */
    sigset_t set;
    const sigset_t *mask = NULL;
    if (packed && !kernel_sigset((const void *)packed[0], packed[1], &set, &mask))
        return false;
    struct timespec *ts = (struct timespec *)a[4], probe;
    if (ts && !rs_user_read(&probe, ts, sizeof probe))
        return false;
    uint64_t deadline = ts_deadline(ts);
    int saved = errno;
    long r = pselect((int)a[0], (fd_set *)a[1], (fd_set *)a[2], (fd_set *)a[3], ts, mask);
    *ret = r == -1 ? -(long)errno : r;
    errno = saved;
    if (*ret != -EFAULT && *ret != -EINVAL)
        time_left_back(ts, deadline);
    return true;
}

static bool route_epoll_pwait(long nr, const long a[6], long *ret)
{
    sigset_t set;
    const sigset_t *mask;
    if (!kernel_sigset((const void *)a[4], (unsigned long)a[5], &set, &mask))
        return false;
    if (nr == SYS_epoll_pwait)
        VIA_HOOK(epoll_pwait((int)a[0], (struct epoll_event *)a[1], (int)a[2], (int)a[3], mask));
    VIA_HOOK(epoll_pwait2((int)a[0], (struct epoll_event *)a[1], (int)a[2],
                          (const struct timespec *)a[3], mask));
}

/* The calls that may block: routed only where the named hook would park
 * (gate_blocking); elsewhere the caller's own call is the same thing. */
static bool route_blocking(long nr, const long a[6], long *ret)
{
    if (!gate_blocking())
        return false;
    switch (nr) {
    case SYS_read:
        VIA_HOOK(read((int)a[0], (void *)a[1], (size_t)a[2]));
    case SYS_write:
        VIA_HOOK(write((int)a[0], (const void *)a[1], (size_t)a[2]));
    case SYS_readv:
        VIA_HOOK(readv((int)a[0], (const struct iovec *)a[1], (int)a[2]));
    case SYS_writev:
        VIA_HOOK(writev((int)a[0], (const struct iovec *)a[1], (int)a[2]));
    case SYS_pread64:
        VIA_HOOK(pread64((int)a[0], (void *)a[1], (size_t)a[2], (off_t)a[3]));
    case SYS_pwrite64:
        VIA_HOOK(pwrite64((int)a[0], (const void *)a[1], (size_t)a[2], (off_t)a[3]));
    case SYS_recvfrom:
        VIA_HOOK(recvfrom((int)a[0], (void *)a[1], (size_t)a[2], (int)a[3],
                          (struct sockaddr *)a[4], (socklen_t *)a[5]));
    case SYS_sendto:
        VIA_HOOK(sendto((int)a[0], (const void *)a[1], (size_t)a[2], (int)a[3],
                        (const struct sockaddr *)a[4], (socklen_t)a[5]));
    case SYS_recvmsg:
        VIA_HOOK(recvmsg((int)a[0], (struct msghdr *)a[1], (int)a[2]));
    case SYS_sendmsg:
        VIA_HOOK(sendmsg((int)a[0], (const struct msghdr *)a[1], (int)a[2]));
    case SYS_accept:
        VIA_HOOK(accept((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2]));
    case SYS_accept4:
        VIA_HOOK(accept4((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2], (int)a[3]));
    case SYS_connect:
        VIA_HOOK(connect((int)a[0], (const struct sockaddr *)a[1], (socklen_t)a[2]));
    case SYS_poll:
        VIA_HOOK(poll((struct pollfd *)a[0], (nfds_t)a[1], (int)a[2]));
    case SYS_ppoll:
        return route_ppoll(a, ret);
    case SYS_select:       /* the raw select writes the time left back, as the hook does */
        VIA_HOOK(select((int)a[0], (fd_set *)a[1], (fd_set *)a[2], (fd_set *)a[3],
                        (struct timeval *)a[4]));
    case SYS_pselect6:
        return route_pselect6(a, ret);
    case SYS_epoll_wait:
        VIA_HOOK(epoll_wait((int)a[0], (struct epoll_event *)a[1], (int)a[2], (int)a[3]));
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
        return route_epoll_pwait(nr, a, ret);
    case SYS_nanosleep:
        VIA_HOOK(nanosleep((const struct timespec *)a[0], (struct timespec *)a[1]));
    case SYS_clock_nanosleep: {
        clockid_t clock = (clockid_t)a[0];
        if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME &&
            clock != CLOCK_TAI)
            return false;      /* CPU clocks and the rest: the kernel's own answers */
        /* libc's clock_nanosleep returns the error number; the raw call -errno. */
        *ret = -(long)clock_nanosleep(clock, (int)a[1], (const struct timespec *)a[2],
                                      (struct timespec *)a[3]);
        return true;
    }
    case SYS_wait4:
        VIA_HOOK(wait4((pid_t)a[0], (int *)a[1], (int)a[2], (struct rusage *)a[3]));
    case SYS_waitid:
        if (a[4])
            return false;      /* the raw waitid's rusage: libc's waitid has none */
        VIA_HOOK(waitid((idtype_t)a[0], (id_t)a[1], (siginfo_t *)a[2], (int)a[3]));
    default:
        return false;
    }
}

/* Calls on fds that never block: routed for every caller, as their hooks
 * run for every caller, so that corun's own fds stay hidden (a raw close
 * of one fails EBADF) and the fd table hears of closes and dups. */
static bool route_fd_books(long nr, const long a[6], long *ret)
{
    switch (nr) {
    case SYS_close:
        VIA_HOOK(close((int)a[0]));
    case SYS_dup:
        VIA_HOOK(dup((int)a[0]));
    case SYS_dup2:
        VIA_HOOK(dup2((int)a[0], (int)a[1]));
    case SYS_dup3:
        VIA_HOOK(dup3((int)a[0], (int)a[1], (int)a[2]));
    case SYS_close_range:
        VIA_HOOK(close_range((unsigned)a[0], (unsigned)a[1], (int)a[2]));
    case SYS_fcntl:
        VIA_HOOK(fcntl((int)a[0], (int)a[1], a[2]));
    default:
        return false;
    }
}

/* futex(2): a green thread's wait parks on the address; a wake from any
 * thread reaches green waiters, then the kernel's (gfutex.h). Waits of a
 * thread without green threads, or from libuv or a sanitizer, are the
 * kernel's. */
static bool route_futex(const long a[6], const void *ra, long *ret)
{
    /* The waits read the word and the timeout: a bad pointer is the
     * kernel's EFAULT, not corun's crash. */
    int cmd = (int)a[1] & FUTEX_CMD_MASK;
    uint32_t word;
    struct timespec t;
    if ((cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_CMP_REQUEUE) &&
        (!rs_user_read(&word, (const void *)a[0], sizeof word) ||
         (cmd != FUTEX_CMP_REQUEUE && a[3] && !rs_user_read(&t, (const void *)a[3], sizeof t))))
        return false;
    return gfutex_op(gate_thread_blocking(ra), (uint32_t *)a[0], (int)a[1], (uint32_t)a[2],
                     (const void *)a[3], (uint32_t *)a[4], (uint32_t)a[5], ret);
}

/* The numbers that never block (they never park): the fd books, thread
 * ids, the signal and filter set-ups the catch must hear of. */
static bool route_noblock(long nr, const long a[6], const void *ra, long *ret)
{
    switch (nr) {
    case SYS_rt_sigprocmask:
        return catch_rt_sigprocmask(a, ret);
    case SYS_rt_sigaction:
        return catch_rt_sigaction(a, ret);
    case SYS_prctl:
    case SYS_seccomp:
        catch_notice(nr, a);
        return false;
    case SYS_gettid:
    case SYS_tgkill:
    case SYS_tkill:
        return route_thread_id(nr, a, ra, ret);
    case SYS_close:
    case SYS_dup:
    case SYS_dup2:
    case SYS_dup3:
    case SYS_close_range:
    case SYS_fcntl:
        return route_fd_books(nr, a, ret);
    default:
        return false;
    }
}

bool syscall_may_block(long nr, const long a[6])
{
    switch (nr) {
    case SYS_fcntl:
        return a[1] == F_SETLKW || a[1] == F_OFD_SETLKW;
    case SYS_read: case SYS_write: case SYS_readv: case SYS_writev: case SYS_pread64:
    case SYS_pwrite64: case SYS_preadv: case SYS_pwritev: case SYS_preadv2: case SYS_pwritev2:
    case SYS_open: case SYS_openat: case SYS_openat2: case SYS_creat: case SYS_flock:
    case SYS_ioctl: case SYS_msgrcv: case SYS_msgsnd: case SYS_semop: case SYS_semtimedop:
    case SYS_mq_timedsend: case SYS_mq_timedreceive: case SYS_wait4: case SYS_waitid:
    case SYS_sendfile: case SYS_splice: case SYS_tee: case SYS_vmsplice:
    case SYS_copy_file_range: case SYS_fsync: case SYS_fdatasync: case SYS_sync:
    case SYS_syncfs: case SYS_sync_file_range: case SYS_fallocate: case SYS_connect:
    case SYS_accept: case SYS_accept4: case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg:
    case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg: case SYS_select: case SYS_pselect6:
    case SYS_poll: case SYS_ppoll: case SYS_epoll_wait: case SYS_epoll_pwait:
    case SYS_epoll_pwait2: case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_pause:
    case SYS_rt_sigsuspend: case SYS_rt_sigtimedwait: case SYS_io_getevents:
    case SYS_io_pgetevents: case SYS_io_uring_enter: case SYS_close: case SYS_truncate:
    case SYS_ftruncate:
        return true;
    default:
        return false;
    }
}

/* libuv's and the sanitizers' own calls by number (libuv closes its fds and
 * drives its io_uring with syscall()) are corun's: never routed. */
bool syscall_route_noblock(long nr, const long a[6], const void *ra, long *ret)
{
    return !caller_is_foreign(ra) && route_noblock(nr, a, ra, ret);
}

bool syscall_route(long nr, const long a[6], const void *ra, long *ret)
{
    if (caller_is_foreign(ra))
        return false;
    switch (nr) {
    case SYS_futex:
        return route_futex(a, ra, ret);
    case SYS_io_uring_enter:   /* a wait for completions parks on the ring's fd */
        return guring_enter(gate_blocking(), (int)a[0], (unsigned)a[1], (unsigned)a[2],
                            (unsigned)a[3], (const void *)a[4], (size_t)a[5], ret);
    case SYS_read:
    case SYS_write:
    case SYS_readv:
    case SYS_writev:
    case SYS_pread64:
    case SYS_pwrite64:
    case SYS_recvfrom:
    case SYS_sendto:
    case SYS_recvmsg:
    case SYS_sendmsg:
    case SYS_accept:
    case SYS_accept4:
    case SYS_connect:
    case SYS_poll:
    case SYS_ppoll:
    case SYS_select:
    case SYS_pselect6:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_wait4:
    case SYS_waitid:
        return route_blocking(nr, a, ret);
    default:
        return route_noblock(nr, a, ra, ret);
    }
}

/* Six arguments are always passed on, as libc's syscall() loads six whatever
 * the call takes: reading those the caller did not pass touches its frame,
 * which AddressSanitizer would report. */
HOOK __attribute__((no_sanitize_address)) long syscall(long nr, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    long r;
    if (!syscall_route(nr, a, __builtin_return_address(0), &r)) {
        if (syscall_may_block(nr, a))
            sched_blocking_begin_here((int)nr);
        r = REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        sched_blocking_end();
        return r;
    }
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}
