#include "fdwait.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "corun.h"
#include "diag.h"
#include "sched.h"

struct fd_entry {
    struct coq waiters;
};

struct fdwait {
    int epfd;
    uv_poll_t watch;
    struct fd_entry **tab;     /* indexed by fd, grown on demand */
    size_t ntab;
};

#define EV_READ (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define EV_WRITE (EPOLLOUT | EPOLLHUP | EPOLLERR)

static struct fd_entry *fd_entry_get(struct fdwait *fw, int fd)
{
    if ((size_t)fd >= fw->ntab) {
        size_t n = fw->ntab ? fw->ntab : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_entry **t = realloc(fw->tab, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + fw->ntab, 0, (n - fw->ntab) * sizeof *t);
        fw->tab = t;
        fw->ntab = n;
    }
    if (!fw->tab[fd])
        fw->tab[fd] = calloc(1, sizeof(struct fd_entry));
    return fw->tab[fd];
}

static void fd_events(uv_poll_t *w, int status, int events)
{
    (void)status;
    (void)events;
    struct fdwait *fw = w->data;
    struct epoll_event ev[128];
    int n;
    do {
        n = (int)syscall(SYS_epoll_pwait, fw->epfd, ev, 128, 0, NULL, 8);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if ((size_t)fd >= fw->ntab || !fw->tab[fd])
                continue;
            uint32_t e = ev[i].events;
            struct corun *co = fw->tab[fd]->waiters.head;
            while (co) {
                struct corun *next = co->next;
                if (((co->wait_events & (POLLIN | POLLPRI)) && (e & EV_READ)) ||
                    ((co->wait_events & POLLOUT) && (e & EV_WRITE)))
                    sched_wake(co, WAKE_SIGNALED);
                co = next;
            }
        }
    } while (n == 128);
}

static struct fdwait *fdwait_get(struct sched *s)
{
    if (s->fdwait)
        return s->fdwait;
    struct fdwait *fw = calloc(1, sizeof *fw);
    if (!fw)
        return NULL;
    fw->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (fw->epfd < 0) {
        free(fw);
        return NULL;
    }
    uv_poll_init(&s->loop, &fw->watch, fw->epfd);
    fw->watch.data = fw;
    uv_poll_start(&fw->watch, UV_READABLE, fd_events);
    s->fdwait = fw;
    return fw;
}

static short poll_now(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    struct timespec zero = { 0, 0 };
    while (syscall(SYS_ppoll, &p, 1, &zero, NULL, 8) < 0)
        if (errno != EINTR)
            return POLLNVAL;
    return p.revents;
}

int fd_wait_ready(struct sched *s, int fd, short events, uint64_t deadline, int dont_wait,
                  short *revents)
{
    struct fdwait *fw = fdwait_get(s);
    if (!fw)
        return ENOMEM;
    for (;;) {
        /* Check first, then park: an edge that arrives after the check is
         * queued by epoll and wakes us; one before it is seen by the check. */
        short r = poll_now(fd, events);
        if (r & POLLNVAL)
            return EBADF;
        if (r) {
            *revents = r;
            return 0;
        }
        if (dont_wait)
            return EAGAIN;
        /* Always ADD: without close() hooks a registered fd number may now
         * name another file. EEXIST means the existing registration, which
         * covers both directions, still applies. */
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
                                  .data.fd = fd };
        if (epoll_ctl(fw->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST)
            return errno == EBADF ? EBADF : EINVAL;
        struct fd_entry *e = fd_entry_get(fw, fd);
        if (!e)
            return ENOMEM;
        struct corun *cur = s->current;
        cur->wait_events = events;
        coq_push(&e->waiters, cur);
        int why = sched_park(s, deadline);
        if (why == WAKE_TIMEOUT)
            return ETIMEDOUT;
        if (why == WAKE_CLOSED)
            return EBADF;
    }
}

__attribute__((visibility("default"))) int corun_wait_fd(int fd, short events,
                                                         int64_t timeout_ns, short *revents)
{
    if (!(events & (POLLIN | POLLOUT)) || (events & ~(POLLIN | POLLOUT | POLLPRI)))
        return EINVAL;
    if (fd < 0)
        return EBADF;
    short r = 0;
    int err = fd_wait_ready(sched_self(), fd, events, deadline_after(timeout_ns),
                            timeout_ns == 0, &r);
    if (!err && revents)
        *revents = r;
    return err;
}
