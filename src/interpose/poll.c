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
#include "gsignal.h"
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

/* For a zero timeout with a mask: the scheduler when the mask frees a
 * signal pending for the green thread (its handler runs and the call
 * fails EINTR unless an fd is ready, fdio_poll), else NULL for the real
 * call. */
static struct sched *zero_mask_gate(const sigset_t *mask)
{
    struct sched *s = mask ? gate_blocking() : NULL;
    return gsignal_mask_frees_pending(s, mask) ? s : NULL;
}

/* Seconds beyond this are forever (as the kernel's saturating deadline). */
#define FOREVER_SEC (INT64_MAX / NS_PER_SEC - 1)

static int64_t ts_ns(const struct timespec *ts)
{
    if (!ts || ts->tv_sec > FOREVER_SEC)
        return -1;
    return (int64_t)ts_to_ns(ts);
}

/* No timeout (NULL) or one the kernel accepts. */
static bool timeout_valid(const struct timespec *ts)
{
    return !ts || ts_valid(ts);
}

HOOK int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    CATCH_HOLD();
    if (timeout == 0)
        return fdio_polled_now(gate_blocking(), REAL(poll)(fds, n, 0));
    struct sched *s = poll_gate(ms_to_ns(timeout));
    if (!s)
        return REAL(poll)(fds, n, timeout);
    return fdio_poll(s, fds, n, ms_to_ns(timeout), NULL);
}

HOOK int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    CATCH_HOLD();
    if (n > fdslen / sizeof *fds)
        REAL(__chk_fail)();
    return poll(fds, n, timeout);
}

HOOK int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    CATCH_HOLD();
    if (ts_ns(ts) == 0) {
        struct sched *z = timeout_valid(ts) ? zero_mask_gate(mask) : NULL;
        if (z)
            return fdio_poll(z, fds, n, 0, mask);
        return fdio_polled_now(gate_blocking(), REAL(ppoll)(fds, n, ts, mask));
    }
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !timeout_valid(ts))
        return REAL(ppoll)(fds, n, ts, mask);
    return fdio_poll(s, fds, n, ts_ns(ts), mask);
}

HOOK int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
                     const sigset_t *mask, size_t fdslen)
{
    CATCH_HOLD();
    if (n > fdslen / sizeof *fds)
        REAL(__chk_fail)();
    return ppoll(fds, n, ts, mask);
}

HOOK int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    CATCH_HOLD();
    int64_t t;
    bool valid = fdio_select_timeout(tv, &t);
    if (t == 0)
        return fdio_polled_now(gate_blocking(), REAL(select)(nfds, r, w, e, tv));
    struct sched *s = poll_gate(t);
    if (!s || !valid)
        return REAL(select)(nfds, r, w, e, tv);
    return fdio_select(s, nfds, r, w, e, t, NULL, tv);
}

HOOK int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                 const sigset_t *mask)
{
    CATCH_HOLD();
    if (ts_ns(ts) == 0) {
        struct sched *z = timeout_valid(ts) ? zero_mask_gate(mask) : NULL;
        if (z)
            return fdio_select(z, nfds, r, w, e, 0, mask, NULL);
        return fdio_polled_now(gate_blocking(), REAL(pselect)(nfds, r, w, e, ts, mask));
    }
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || !timeout_valid(ts))
        return REAL(pselect)(nfds, r, w, e, ts, mask);
    return fdio_select(s, nfds, r, w, e, ts_ns(ts), mask, NULL);
}

HOOK int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    CATCH_HOLD();
    if (timeout == 0)
        return fdio_polled_now(gate_blocking(), REAL(epoll_wait)(epfd, ev, max, 0));
    struct sched *s = poll_gate(ms_to_ns(timeout));
    if (!s || max <= 0)
        return REAL(epoll_wait)(epfd, ev, max, timeout);
    return fdio_epoll_wait(s, epfd, ev, max, ms_to_ns(timeout), NULL);
}

HOOK int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
    CATCH_HOLD();
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
    CATCH_HOLD();
    if (ts && ts_ns(ts) == 0)
        return fdio_polled_now(gate_blocking(), REAL(epoll_pwait2)(epfd, ev, max, ts, mask));
    struct sched *s = poll_gate(ts_ns(ts));
    if (!s || max <= 0 || !timeout_valid(ts))
        return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
    return fdio_epoll_wait(s, epfd, ev, max, ts_ns(ts), mask);
}
