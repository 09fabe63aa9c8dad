/* Waiting on several fds: poll, select (through poll), epoll_wait, and
 * stdio's wait for input. */
#include "fdio_int.h"

#include <stdlib.h>
#include <sys/select.h>

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

static int poll_wait(struct sched *s, struct gsignal_mark mark, struct pollfd *fds,
                     unsigned long n, int64_t timeout_ns, const sigset_t *mask);
static int epoll_wait_green(struct sched *s, struct gsignal_mark mark, int epfd,
                            struct epoll_event *ev, int max, int64_t timeout_ns,
                            const sigset_t *mask);

int fdio_poll(struct sched *s, struct pollfd *fds, unsigned long n, int64_t timeout_ns,
              const sigset_t *mask)
{
    /* Taken before the mask is swapped in: a pending signal the wait's
     * mask unblocks has its handler run by the swap, and ends the wait
     * with EINTR unless an fd is ready, as the kernel's ppoll does (where
     * an fd is ready the kernel puts the old mask back without running the
     * handler: here it ran). */
    struct gsignal_mark mark = gsignal_mark(s->current);
    sigset_t old;
    bool swapped = mask_swap(s, &mask, &old);
    int r = poll_wait(s, mark, fds, n, timeout_ns, mask);
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
    struct gsignal_mark mark = gsignal_mark(s->current);   /* as in fdio_poll */
    sigset_t old;
    bool swapped = mask_swap(s, &mask, &old);
    int r = epoll_wait_green(s, mark, epfd, ev, max, timeout_ns, mask);
    if (swapped) {
        int e = errno;
        gsignal_setmask(s, SIG_SETMASK, &old, NULL);
        errno = e;
    }
    return r;
}

/* Handlers run for the calling thread since `mark`: the wait's EINTR. */
static bool handled_since(struct sched *s, struct gsignal_mark mark)
{
    return gsignal_interrupted_since(s->current, mark, PARK_INTR_ALWAYS);
}

/* The kernel's zero-timeout ppoll fails EINTR when a signal reaches the
 * OS thread during it, and green threads share the OS thread: the signal
 * may be for another of them. Only a handler run for the caller is its
 * EINTR (seen here, or by its park once the loop names the signal's
 * thread); the rest is looked again. With native threads the kernel's
 * EINTR (the call's own mask applied) is the caller's own. */
static int ppoll_now(struct sched *s, struct gsignal_mark mark, struct pollfd *fds,
                     unsigned long n, const sigset_t *mask)
{
    struct timespec zero = { 0, 0 };
    int r;
    while ((r = (int)syscall(SYS_ppoll, fds, n, &zero, mask, 8)) < 0 && errno == EINTR &&
           !cr_config.threads_native && !handled_since(s, mark))
        ;
    return r;
}

static int poll_wait(struct sched *s, struct gsignal_mark mark, struct pollfd *fds,
                     unsigned long n, int64_t timeout_ns, const sigset_t *mask)
{
    uint64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        int r = ppoll_now(s, mark, fds, n, mask);
        if (r > 0)
            sched_yield_if_due(s);     /* ready at once: maybe a loop that never waits */
        if (r == 0 && handled_since(s, mark)) {
            errno = EINTR;             /* nothing ready, a handler ran: the kernel's order */
            return -1;
        }
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
            struct timespec ts = ns_to_ts((int64_t)left);
            return (int)syscall(SYS_ppoll, fds, n, left < 0 ? NULL : &ts, mask, 8);
        }
        errno = saved;
        if (err == ETIMEDOUT)              /* the kernel has the last word */
            return ppoll_now(s, mark, fds, n, mask);
    }
}

static int epoll_wait_green(struct sched *s, struct gsignal_mark mark, int epfd,
                            struct epoll_event *ev, int max, int64_t timeout_ns,
                            const sigset_t *mask)
{
    /* The program's epoll fd is itself pollable: wait for it to have events,
     * whichever fds are in it, then let the kernel hand them out. */
    struct pollfd p = { .fd = epfd, .events = POLLIN };
    uint64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        /* A zero-timeout epoll_pwait never fails EINTR; one with time
         * does once no event is there and a handler ran (the mask's). */
        int r = (int)syscall(SYS_epoll_pwait, epfd, ev, max, 0, mask, 8);
        if (r > 0)
            sched_yield_if_due(s);     /* ready at once: maybe a loop that never waits */
        if (r != 0 || timeout_ns == 0)
            return r;
        if (handled_since(s, mark)) {
            errno = EINTR;
            return -1;
        }
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

/* ---- select ----------------------------------------------------------------*/

/* fd_set bits by hand: programs may pass sets larger than FD_SETSIZE
 * (allocated themselves), where FD_ISSET would be out of bounds. */
#define SET_WORD_BITS (8 * (int)sizeof(unsigned long))

static bool set_has(const fd_set *set, int fd)
{
    const unsigned long *w = (const unsigned long *)set;
    return set && (w[fd / SET_WORD_BITS] >> (fd % SET_WORD_BITS)) & 1;
}

static void set_add(fd_set *set, int fd)
{
    ((unsigned long *)set)[fd / SET_WORD_BITS] |= 1UL << (fd % SET_WORD_BITS);
}

static void set_clear(fd_set *set, int nfds)
{
    if (set)
        memset(set, 0, (size_t)(nfds + SET_WORD_BITS - 1) / SET_WORD_BITS * sizeof(unsigned long));
}

/* The size of the process's fd table (FDSize in /proc/self/status), or -1. */
static int fd_table_size(void)
{
    char buf[4096];
    if (rs_read_file("/proc/self/status", buf, sizeof buf) <= 0)
        return -1;
    const char *p = strstr(buf, "\nFDSize:");
    return p ? atoi(p + 8) : -1;
}

/* select on top of poll: the sets become a pollfd array and back. */
static int select_via_poll(struct sched *s, int nfds, fd_set *r, fd_set *w, fd_set *e,
                           int64_t timeout_ns, const sigset_t *mask)
{
    if (nfds < 0) {
        errno = EINVAL;
        return -1;
    }
    /* The kernel looks at no more fds than its fd table holds: programs
     * pass getdtablesize() with a FD_SETSIZE set and rely on that. */
    if (nfds > FD_SETSIZE) {
        int size = fd_table_size();
        if (size > 0 && size < nfds)
            nfds = size;
    }
    struct pollfd local[64], *p = local;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        if (set_has(r, fd) || set_has(w, fd) || set_has(e, fd))
            n++;
    if (n > 64 && !(p = malloc((size_t)n * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((set_has(r, fd) ? POLLIN : 0) | (set_has(w, fd) ? POLLOUT : 0) |
                           (set_has(e, fd) ? POLLPRI : 0));
        if (ev)
            p[n++] = (struct pollfd){ .fd = fd, .events = ev };
    }
    int res = fdio_poll(s, p, (unsigned long)n, timeout_ns, mask);
    if (res >= 0) {
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLNVAL)
                bad = 1;
        if (bad) {                     /* select says EBADF and leaves the sets alone */
            errno = EBADF;
            res = -1;
        } else {
            res = 0;
            set_clear(r, nfds);
            set_clear(w, nfds);
            set_clear(e, nfds);
            for (int i = 0; i < n; i++) {
                short rv = p[i].revents;
                /* As select(2) on Linux: errors and hang-ups count as readable/writable. */
                if (r && (p[i].events & POLLIN) && (rv & (POLLIN | POLLHUP | POLLERR)))
                    set_add(r, p[i].fd), res++;
                if (w && (p[i].events & POLLOUT) && (rv & (POLLOUT | POLLERR)))
                    set_add(w, p[i].fd), res++;
                if (e && (p[i].events & POLLPRI) && (rv & POLLPRI))
                    set_add(e, p[i].fd), res++;
            }
        }
    }
    if (p != local)
        free(p);
    return res;
}

/* Seconds beyond this are forever (as the kernel's saturating deadline). */
#define SELECT_FOREVER_SEC (INT64_MAX / NS_PER_SEC - 1)

bool fdio_select_timeout(const struct timeval *tv, int64_t *ns)
{
    /* Linux carries whole seconds out of tv_usec (0.1200000 is 1.2 s) and
     * refuses what is negative after that. */
    int64_t sec = 0;
    *ns = -1;
    if (!tv)
        return true;
    bool bad = __builtin_add_overflow((int64_t)tv->tv_sec, (int64_t)(tv->tv_usec / 1000000), &sec) ||
               sec < 0 || tv->tv_usec % 1000000 < 0;
    if (sec <= SELECT_FOREVER_SEC)
        *ns = sec * NS_PER_SEC + (int64_t)(tv->tv_usec % 1000000) * NS_PER_US;
    return !bad;
}

int fdio_select(struct sched *s, int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t timeout_ns,
                const sigset_t *mask, struct timeval *left)
{
    uint64_t deadline = deadline_after(timeout_ns);
    int res = select_via_poll(s, nfds, r, w, e, timeout_ns, mask);
    if (left && deadline != DEADLINE_NONE)   /* Linux reports the time left */
        *left = ns_to_tv(deadline_left(deadline));
    return res;
}
