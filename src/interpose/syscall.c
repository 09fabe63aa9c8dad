/*
 * Hook: syscall(), the one libc function that reaches any system call by
 * number (Python's threading.get_native_id, InnoDB's futex waits). Numbers
 * corun routes (syscall_route) go where the named hook would take them;
 * every other one goes to libc unchanged. corun's own layers call
 * raw_syscall instead (rawsys.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gsignal.h"
#include "gthread.h"
#include "real.h"
#include "sched.h"
#include "gate.h"
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

bool syscall_route(long nr, const long a[6], const void *ra, long *ret)
{
    switch (nr) {
    case SYS_gettid:
    case SYS_tgkill:
    case SYS_tkill:
        return route_thread_id(nr, a, ra, ret);
    default:
        return false;
    }
}

/* Six arguments are always passed on, as libc's syscall() loads six whatever
 * the call takes: reading those the caller did not pass touches its frame,
 * which AddressSanitizer would report. */
HOOK __attribute__((no_sanitize_address)) long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    long r;
    if (!syscall_route(nr, a, __builtin_return_address(0), &r))
        return REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}
