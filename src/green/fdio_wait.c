/* Waiting on several fds: poll, select (through poll), epoll_wait, and
 * stdio's wait for input. */
#include "fdio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"
#include "fileio.h"
#include "gsignal.h"
#include "gthread.h"
#include "rawsys.h"
#include "real.h"
#include "sched.h"

/* ---- waiting on several fds ------------------------------------------------*/

/* ppoll/pselect/epoll_pwait's mask: the green thread's own for the wait. */
static bool mask_swap(struct sched *s, const sigset_t **mask, sigset_t *old)
{
    if (!*mask || cr_config.threads_native)
        return false;            /* a kernel thread's own: the syscall applies it */
    gsignal_setmask(s, SIG_SETMASK, *mask, old);
    *mask = NULL;
    return true;
}

static int poll_wait(struct sched *s, struct pollfd *fds, unsigned long n, int64_t timeout_ns,
                     const sigset_t *mask);
static int epoll_wait_green(struct sched *s, int epfd, struct epoll_event *ev, int max,
                            int64_t timeout_ns, const sigset_t *mask);

int fdio_poll(struct sched *s, struct pollfd *fds, unsigned long n, int64_t timeout_ns,
              const sigset_t *mask)
{
    sigset_t old;
    bool swapped = mask_swap(s, &mask, &old);
    int r = poll_wait(s, fds, n, timeout_ns, mask);
    if (swapped) {
        int e = errno;
        gsignal_setmask(s, SIG_SETMASK, &old, NULL);
        errno = e;
    }
    return r;
}

int fdio_epoll_wait(struct sched *s, int epfd, struct epoll_event *ev, int max,
                    int64_t timeout_ns, const sigset_t *mask)
{
    sigset_t old;
    bool swapped = mask_swap(s, &mask, &old);
    int r = epoll_wait_green(s, epfd, ev, max, timeout_ns, mask);
    if (swapped) {
        int e = errno;
        gsignal_setmask(s, SIG_SETMASK, &old, NULL);
        errno = e;
    }
    return r;
}

static int poll_wait(struct sched *s, struct pollfd *fds, unsigned long n, int64_t timeout_ns,
                     const sigset_t *mask)
{
    uint64_t deadline = deadline_after(timeout_ns);
    struct timespec zero = { 0, 0 };
    for (;;) {
        int r = (int)syscall(SYS_ppoll, fds, n, &zero, mask, 8);
        if (r > 0)
            sched_yield_if_due(s);     /* ready at once: maybe a loop that never waits */
        if (r != 0 || timeout_ns == 0)
            return r;
        int saved = errno;
        int err = fd_wait_any(s, fds, n, deadline, PARK_INTR_ALWAYS);
        if (err == ECANCELED)
            gthread_act_on_cancel(WAKE_CANCELED);
        if (err == EINTR) {
            errno = EINTR;
            return -1;
        }
        if (err == ENOMEM) {               /* the real call, for what time is left */
            int64_t left = deadline == DEADLINE_NONE ? -1 : (int64_t)(deadline - clock_now_ns());
            struct timespec ts = { (time_t)(left / 1000000000), (long)(left % 1000000000) };
            return (int)syscall(SYS_ppoll, fds, n, left < 0 ? NULL : &ts, mask, 8);
        }
        errno = saved;
        if (err == ETIMEDOUT)              /* the kernel has the last word */
            return (int)syscall(SYS_ppoll, fds, n, &zero, mask, 8);
    }
}

static int epoll_wait_green(struct sched *s, int epfd, struct epoll_event *ev, int max,
                            int64_t timeout_ns, const sigset_t *mask)
{
    /* The program's epoll fd is itself pollable: wait for it to have events,
     * whichever fds are in it, then let the kernel hand them out. */
    struct pollfd p = { .fd = epfd, .events = POLLIN };
    uint64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        int r = (int)syscall(SYS_epoll_pwait, epfd, ev, max, 0, mask, 8);
        if (r > 0)
            sched_yield_if_due(s);     /* ready at once: maybe a loop that never waits */
        if (r != 0 || timeout_ns == 0)
            return r;
        int saved = errno;
        int err = fd_wait_any(s, &p, 1, deadline, PARK_INTR_ALWAYS);
        if (err == ECANCELED)
            gthread_act_on_cancel(WAKE_CANCELED);
        if (err == EINTR) {
            errno = EINTR;
            return -1;
        }
        errno = saved;
        if (err == ETIMEDOUT || err == ENOMEM) {
            int ms = 0;
            if (err == ENOMEM)
                ms = deadline == DEADLINE_NONE ? -1 : (int)((deadline - clock_now_ns() + 999999) / 1000000);
            return (int)syscall(SYS_epoll_pwait, epfd, ev, max, ms, mask, 8);
        }
    }
}

int fdio_polled_now(struct sched *s, int r)
{
    if (s && r == 0)
        sched_yield_current(s);
    else if (s && r > 0)
        sched_yield_if_due(s);
    return r;
}

int fdio_wait_input(struct sched *s, int fd)
{
    struct fd_entry *e = fdtab_get(fd);
    if (!e || e->kind == FD_REGULAR || fd_is_nonblocking(fd, e) || sched_alone(s))
        return 0;
    while (!rs_poll_now(fd, POLLIN)) {
        e->rd_ready = false;
        int err = fd_wait_readable(s, fd, e, DEADLINE_NONE);
        if (err == ECANCELED)
            gthread_act_on_cancel(WAKE_CANCELED);
        if (err == ENOTSUP)
            return 0;              /* cannot be waited on here: the read blocks */
        if (err)
            return err;
    }
    return 0;
}
