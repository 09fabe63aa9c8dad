/*
 * The poller: each scheduler's epoll set holds libuv's backend fd and the
 * fds of registered poll sources (the fd table's fds, the signal and dump
 * eventfds), so one epoll_pwait2 serves all; libuv runs (without blocking)
 * only when its fd is ready or it has work due. libuv stays the loop for
 * everything it owns (thread pool, async wakeups, its handles).
 *
 * An fd's epoll data is its source's tag (the source's index in the
 * registry, plus one, in the top 8 bits) and the source's own 56 bits; tag
 * 0 is libuv's backend fd.
 *
 * Timers: deadlines are CLOCK_MONOTONIC nanoseconds in a heap; the poll
 * sleeps until the earliest with nanosecond resolution, and expiry is
 * judged against a fresh clock reading, never libuv's cached loop time, so a
 * timeout cannot fire early.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "diag.h"
#include "ownfd.h"
#include "sched_int.h"

#include <uv.h>

#define TAG_SHIFT 56
#define UV_BACKEND_DATA 0              /* tag 0: libuv's backend fd, */
#define WAKE_DATA 1                    /* and the cross-thread wake eventfd */
#define POLL_BATCH 256

uint64_t sched_poll_data(const struct poll_source *src, uint64_t data)
{
    uint64_t tag = 0;
    REGISTRY_FOREACH(poll_sources, p) {
        tag++;
        if (*p == src)
            return tag << TAG_SHIFT | (data & POLL_DATA_MASK);
    }
    diag_fatal("internal error: a poll source that was not registered");
}

int sched_watch_fd(struct sched *s, int fd, uint32_t events, const struct poll_source *src,
                   uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = sched_poll_data(src, data) };
    return syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void poller_open(struct sched *s)
{
    s->epfd = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
    if (s->epfd < 0)
        diag_fatal("epoll_create1 failed: %s", strerror(errno));
    ownfd_own(&s->epfd);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UV_BACKEND_DATA };
    if (syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_ADD, uv_backend_fd(s->loop), &ev) != 0)
        diag_fatal("cannot watch libuv's backend fd: %s", strerror(errno));
    s->wake_fd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    ownfd_own(&s->wake_fd);
    struct epoll_event wev = { .events = EPOLLIN, .data.u64 = WAKE_DATA };
    if (s->wake_fd < 0 || syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_ADD, s->wake_fd, &wev) != 0)
        diag_fatal("cannot set up the wake eventfd: %s", strerror(errno));
}

void poller_close(struct sched *s)
{
    ownfd_release(&s->epfd);
    ownfd_release(&s->wake_fd);
}

/* ---- wakes from other OS threads --------------------------------------------*/

void sched_xwake_post(struct sched_xwake *xw)
{
    struct sched *s = xw->co->sched;
    /* Counted from before the push, so that the scheduler is not destroyed
     * (its eventfd closed) while this thread is still about to poke it. */
    __atomic_add_fetch(&s->xwake_posters, 1, __ATOMIC_SEQ_CST);
    struct sched_xwake *head = __atomic_load_n(&s->xwakes, __ATOMIC_RELAXED);
    do
        xw->next = head;
    while (!__atomic_compare_exchange_n(&s->xwakes, &head, xw, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    uint64_t one = 1;
    int saved = errno;
    syscall(SYS_write, s->wake_fd, &one, sizeof one);
    errno = saved;
    __atomic_sub_fetch(&s->xwake_posters, 1, __ATOMIC_RELEASE);
}

/* Deliver the wakes other threads posted, oldest first. */
static void xwakes_drain(struct sched *s)
{
    if (!__atomic_load_n(&s->xwakes, __ATOMIC_RELAXED))
        return;
    struct sched_xwake *xw = __atomic_exchange_n(&s->xwakes, NULL, __ATOMIC_ACQUIRE), *fifo = NULL;
    while (xw) {
        struct sched_xwake *next = xw->next;
        xw->next = fifo;
        fifo = xw;
        xw = next;
    }
    while (fifo) {
        struct sched_xwake *next = fifo->next;
        struct corun *co = fifo->co;
        bool heap = fifo->heap;
        /* Once delivered, the waiter may leave and its record go. */
        __atomic_store_n(&fifo->delivered, 1, __ATOMIC_RELEASE);
        sched_wake(co, WAKE_SIGNALED);
        if (heap)
            free(fifo);
        fifo = next;
    }
}

/* ---- work from other OS threads (M:N) ----------------------------------------*/

void sched_run_on(struct sched *target, void (*fn)(struct sched *, void *), void *arg)
{
    struct sched *s = sched_tls;
    if (target == s) {
        fn(target, arg);
        return;
    }
    struct sched_call c = { .fn = fn, .arg = arg };
    bool green = s && s->current != s->loop_co;
    if (green)
        c.reply.co = s->current;
    __atomic_add_fetch(&target->xwake_posters, 1, __ATOMIC_SEQ_CST);
    struct sched_call *head = __atomic_load_n(&target->calls, __ATOMIC_RELAXED);
    do
        c.next = head;
    while (!__atomic_compare_exchange_n(&target->calls, &head, &c, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    uint64_t one = 1;
    int saved = errno;
    syscall(SYS_write, target->wake_fd, &one, sizeof one);
    __atomic_sub_fetch(&target->xwake_posters, 1, __ATOMIC_RELEASE);
    if (green) {
        /* Only the reply wakes this park: it is plain, without a deadline. */
        while (!__atomic_load_n(&c.reply.delivered, __ATOMIC_ACQUIRE))
            sched_park(s, DEADLINE_NONE, PARK_PLAIN);
    } else {
        while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE))
            syscall(SYS_sched_yield);
    }
    errno = saved;
}

static void calls_drain(struct sched *s)
{
    if (!__atomic_load_n(&s->calls, __ATOMIC_RELAXED))
        return;
    struct sched_call *c = __atomic_exchange_n(&s->calls, NULL, __ATOMIC_ACQUIRE), *fifo = NULL;
    while (c) {
        struct sched_call *next = c->next;
        c->next = fifo;
        fifo = c;
        c = next;
    }
    while (fifo) {
        struct sched_call *next = fifo->next;
        fifo->fn(s, fifo->arg);
        if (fifo->reply.co)
            sched_xwake_post(&fifo->reply);   /* the record lives until delivered */
        else
            __atomic_store_n(&fifo->done, 1, __ATOMIC_RELEASE);
        fifo = next;
    }
}

static void timers_expire(struct sched *s)
{
    struct timer_node *t = timerheap_min(&s->timers);
    if (!t)
        return;
    uint64_t now = clock_now_ns();
    while ((t = timerheap_min(&s->timers)) && t->deadline <= now)
        sched_wake(container_of(t, struct corun, timer), WAKE_TIMEOUT);
}

static int epoll_wait_ns(int epfd, struct epoll_event *ev, int n, int64_t timeout_ns)
{
    static int have_pwait2 = 1;
    if (have_pwait2) {
        struct timespec ts = ns_to_ts(timeout_ns);
        int r = (int)syscall(SYS_epoll_pwait2, epfd, ev, n, timeout_ns < 0 ? NULL : &ts, NULL, 8);
        if (r >= 0 || errno != ENOSYS)
            return r;
        have_pwait2 = 0;
    }
    /* Millisecond fallback, rounded up so a timeout never fires early. */
    return (int)syscall(SYS_epoll_pwait, epfd, ev, n, ns_to_ms_up(timeout_ns), NULL, 8);
}

static void dispatch(struct sched *s, uint64_t data, uint32_t events)
{
    unsigned tag = (unsigned)(data >> TAG_SHIFT);
    if (tag == 0 || tag > REGISTRY_COUNT(poll_sources))
        return;
    const struct poll_source *src = __start_cr_set_poll_sources[tag - 1];
    src->ready(s, data & POLL_DATA_MASK, events);
}

void poller_poll(struct sched *s, bool block)
{
    int64_t timeout = 0;
    bool uv_alive = uv_loop_alive(s->loop);
    if (block) {
        timeout = -1;
        struct timer_node *t = timerheap_min(&s->timers);
        if (t)
            timeout = deadline_left(t->deadline);
        if (uv_alive) {
            int64_t uv = ms_to_ns(uv_backend_timeout(s->loop));
            if (uv >= 0 && (timeout < 0 || uv < timeout))
                timeout = uv;
        }
    }
    struct epoll_event ev[POLL_BATCH];
    bool uv_ready = false;
    __atomic_store_n(&s->polling, timeout != 0, __ATOMIC_RELAXED);
    int n = epoll_wait_ns(s->epfd, ev, POLL_BATCH, timeout);
    __atomic_store_n(&s->polling, false, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == UV_BACKEND_DATA) {
            uv_ready = true;
        } else if (ev[i].data.u64 == WAKE_DATA) {
            uint64_t v;
            syscall(SYS_read, s->wake_fd, &v, sizeof v);
        } else
            dispatch(s, ev[i].data.u64, ev[i].events);
    }
    calls_drain(s);
    xwakes_drain(s);              /* before timers: a handoff beats a timeout */
    OBSERVERS_CALL(polled, s);
    timers_expire(s);
    if (uv_ready || (uv_alive && uv_backend_timeout(s->loop) == 0))
        uv_run(s->loop, UV_RUN_NOWAIT);
}
