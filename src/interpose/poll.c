/* Hooks: poll, ppoll, select, pselect and the epoll_wait family park the
 * green thread until one of the fds is ready or the timeout passes. A zero
 * timeout never parks; a lone green thread makes the real call. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include "fdio.h"
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
    struct sched *s = sched_for_blocking_hook();
    return timeout_ns == 0 ? NULL : s;
}

static int64_t ms_ns(int ms)
{
    return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

static int64_t ts_ns(const struct timespec *ts)
{
    return ts ? (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec : -1;
}

static bool ts_valid(const struct timespec *ts)
{
    return !ts || (ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000);
}

HOOK int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    struct sched *s = poll_gate(ms_ns(timeout));
    if (!s)
        return REAL(poll)(fds, n, timeout);
    return fdio_poll(s, fds, n, ms_ns(timeout), NULL);
}

HOOK int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (n > fdslen / sizeof *fds)
        REAL(__chk_fail)();
    return poll(fds, n, timeout);
}

HOOK int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !ts_valid(ts))
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

/* select on top of poll: the sets become a pollfd array and back. */
static int select_via_poll(struct sched *s, int nfds, fd_set *r, fd_set *w, fd_set *e,
                           int64_t timeout_ns, const sigset_t *mask)
{
    if (nfds < 0 || nfds > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd local[64], *p = local;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
            n++;
    if (n > 64 && !(p = malloc((size_t)n * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) | (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
                           (e && FD_ISSET(fd, e) ? POLLPRI : 0));
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
            if (r) FD_ZERO(r);
            if (w) FD_ZERO(w);
            if (e) FD_ZERO(e);
            for (int i = 0; i < n; i++) {
                short rv = p[i].revents;
                /* As select(2) on Linux: errors and hang-ups count as readable/writable. */
                if (r && (p[i].events & POLLIN) && (rv & (POLLIN | POLLHUP | POLLERR)))
                    FD_SET(p[i].fd, r), res++;
                if (w && (p[i].events & POLLOUT) && (rv & (POLLOUT | POLLERR)))
                    FD_SET(p[i].fd, w), res++;
                if (e && (p[i].events & POLLPRI) && (rv & POLLPRI))
                    FD_SET(p[i].fd, e), res++;
            }
        }
    }
    if (p != local)
        free(p);
    return res;
}

HOOK int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    int64_t t = tv ? (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000 : -1;
    struct sched *s = poll_gate(t);
    if (!s || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)))
        return REAL(select)(nfds, r, w, e, tv);
    uint64_t deadline = deadline_after(t);
    int res = select_via_poll(s, nfds, r, w, e, t, NULL);
    if (tv) {                          /* Linux reports the time left */
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
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !ts_valid(ts))
        return REAL(pselect)(nfds, r, w, e, ts, mask);
    return select_via_poll(s, nfds, r, w, e, ts_ns(ts), mask);
}

HOOK int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    struct sched *s = poll_gate(ms_ns(timeout));
    if (!s || max <= 0)
        return REAL(epoll_wait)(epfd, ev, max, timeout);
    return fdio_epoll_wait(s, epfd, ev, max, ms_ns(timeout), NULL);
}

HOOK int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
    struct sched *s = poll_gate(ms_ns(timeout));
    if (!s || max <= 0)
        return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
    return fdio_epoll_wait(s, epfd, ev, max, ms_ns(timeout), mask);
}

HOOK int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
                      const sigset_t *mask)
{
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || max <= 0 || !ts_valid(ts))
        return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
    return fdio_epoll_wait(s, epfd, ev, max, ts_ns(ts), mask);
}
