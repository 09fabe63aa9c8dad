/* Hooks: poll, ppoll, select, pselect and the epoll_wait family park the
 * green thread until one of the fds is ready or the timeout passes. A zero
 * timeout never parks (the real call), but lets the other threads run when
 * nothing was ready (fdio_polled_now); a lone green thread makes the real
 * call. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include "fdio.h"
#include "rawsys.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(int, poll, (struct pollfd *, nfds_t, int));
REAL_DECL(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *));
REAL_DECL(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *));
REAL_DECL(int, pselect, (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *));
REAL_DECL(int, epoll_wait, (int, struct epoll_event *, int, int));
REAL_DECL(int, epoll_pwait, (int, struct epoll_event *, int, int, const sigset_t *));
REAL_DECL(int, epoll_pwait2, (int, struct epoll_event *, int, const struct timespec *, const sigset_t *));
REAL_DECL(void, __chk_fail, (void));

/* The scheduler to park on, or NULL to make the real call. */
static struct sched *poll_gate(int64_t timeout_ns)
{
    struct sched *s = gate_blocking();
    return timeout_ns == 0 ? NULL : s;
}

/* Seconds beyond this are forever (as the kernel's saturating deadline). */
#define FOREVER_SEC (INT64_MAX / 1000000000 - 1)

static int64_t ts_ns(const struct timespec *ts)
{
    if (!ts || ts->tv_sec > FOREVER_SEC)
        return -1;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* No timeout (NULL) or one the kernel accepts. */
static bool timeout_valid(const struct timespec *ts)
{
    return !ts || ts_valid(ts);
}

HOOK int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (timeout == 0)
        return fdio_polled_now(gate_blocking(), REAL(poll)(fds, n, 0));
    struct sched *s = poll_gate(ms_to_ns(timeout));
    if (!s)
        return REAL(poll)(fds, n, timeout);
    return fdio_poll(s, fds, n, ms_to_ns(timeout), NULL);
}

HOOK int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (n > fdslen / sizeof *fds)
        REAL(__chk_fail)();
    return poll(fds, n, timeout);
}

HOOK int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    if (ts_ns(ts) == 0)
        return fdio_polled_now(gate_blocking(), REAL(ppoll)(fds, n, ts, mask));
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !timeout_valid(ts))
        return REAL(ppoll)(fds, n, ts, mask);
    return fdio_poll(s, fds, n, ts_ns(ts), mask);
}

HOOK int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                     const sigset_t *mask, size_t fdslen)
{
    if (n > fdslen / sizeof *fds)
        REAL(__chk_fail)();
    return ppoll(fds, n, ts, mask);
}

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

HOOK int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    /* Linux carries whole seconds out of tv_usec (0.1200000 is 1.2 s) and
     * refuses what is negative after that. */
    int64_t sec = 0, t = -1;
    bool bad = false;
    if (tv) {
        bad = __builtin_add_overflow((int64_t)tv->tv_sec, (int64_t)(tv->tv_usec / 1000000), &sec) ||
              sec < 0 || tv->tv_usec % 1000000 < 0;
        if (sec <= FOREVER_SEC)
            t = sec * 1000000000 + (int64_t)(tv->tv_usec % 1000000) * 1000;
    }
    if (t == 0)
        return fdio_polled_now(gate_blocking(), REAL(select)(nfds, r, w, e, tv));
    struct sched *s = poll_gate(t);
    if (!s || bad)
        return REAL(select)(nfds, r, w, e, tv);
    uint64_t deadline = deadline_after(t);
    int res = select_via_poll(s, nfds, r, w, e, t, NULL);
    if (tv && deadline != DEADLINE_NONE) {   /* Linux reports the time left */
        uint64_t now = clock_now_ns();
        uint64_t left = deadline > now ? deadline - now : 0;
        tv->tv_sec = (time_t)(left / 1000000000);
        tv->tv_usec = (suseconds_t)(left % 1000000000 / 1000);
    }
    return res;
}

HOOK int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                 const sigset_t *mask)
{
    if (ts_ns(ts) == 0)
        return fdio_polled_now(gate_blocking(), REAL(pselect)(nfds, r, w, e, ts, mask));
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !timeout_valid(ts))
        return REAL(pselect)(nfds, r, w, e, ts, mask);
    return select_via_poll(s, nfds, r, w, e, ts_ns(ts), mask);
}

HOOK int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (timeout == 0)
        return fdio_polled_now(gate_blocking(), REAL(epoll_wait)(epfd, ev, max, 0));
    struct sched *s = poll_gate(ms_to_ns(timeout));
    if (!s || max <= 0)
        return REAL(epoll_wait)(epfd, ev, max, timeout);
    return fdio_epoll_wait(s, epfd, ev, max, ms_to_ns(timeout), NULL);
}

HOOK int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
    if (timeout == 0)
        return fdio_polled_now(gate_blocking(), REAL(epoll_pwait)(epfd, ev, max, 0, mask));
    struct sched *s = poll_gate(ms_to_ns(timeout));
    if (!s || max <= 0)
        return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return fdio_epoll_wait(s, epfd, ev, max, ms_to_ns(timeout), mask);
}

HOOK int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
                      const sigset_t *mask)
{
    if (ts && ts_ns(ts) == 0)
        return fdio_polled_now(gate_blocking(), REAL(epoll_pwait2)(epfd, ev, max, ts, mask));
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || max <= 0 || !timeout_valid(ts))
        return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
    return fdio_epoll_wait(s, epfd, ev, max, ts_ns(ts), mask);
}
