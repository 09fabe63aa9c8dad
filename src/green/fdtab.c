#include "fdtab.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "catch.h"
#include "corun.h"
#include "diag.h"
#include "gthread.h"
#include "lock.h"
#include "sched.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS 1024                 /* fds 0 .. 2^20-1 */

static _Atomic(struct fd_entry *) chunks[NCHUNKS];

static struct fd_entry *entry_at(int fd, bool create)
{
    if (fd < 0 || (unsigned)fd >= NCHUNKS * CHUNK_SIZE)
        return NULL;
    unsigned c = (unsigned)fd >> CHUNK_BITS;
    struct fd_entry *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
    if (!chunk) {
        if (!create)
            return NULL;
        struct fd_entry *fresh = calloc(CHUNK_SIZE, sizeof *fresh);
        if (!fresh)
            return NULL;
        if (atomic_compare_exchange_strong(&chunks[c], &chunk, fresh))
            chunk = fresh;
        else
            free(fresh);             /* another thread won; chunk is theirs */
    }
    return &chunk[(unsigned)fd & (CHUNK_SIZE - 1)];
}

/* M:N: an fd's registration and wait lists belong to the scheduler whose
 * epoll set has it (e->reg), and only its OS thread wakes them; another
 * one takes the registration over when no thread waits there, or asks that
 * scheduler to wake them (close, shutdown). These locks keep those steps
 * apart from each other and from the owner's event handling. */
#define FD_LOCKS 64
static cr_lock_t fd_locks[FD_LOCKS];

static inline void fd_lock(int fd)
{
    if (__builtin_expect(mn_active, 0))
        cr_lock(&fd_locks[(unsigned)fd % FD_LOCKS]);
}

static inline void fd_unlock(int fd)
{
    if (__builtin_expect(mn_active, 0))
        cr_unlock(&fd_locks[(unsigned)fd % FD_LOCKS]);
}

void fdtab_lock(int fd)
{
    fd_lock(fd);
}

void fdtab_unlock(int fd)
{
    fd_unlock(fd);
}

static bool has_waiters(const struct fd_entry *e)
{
    return !coq_empty(&e->waiters) || e->pollers.head;
}

struct wake_req {
    int fd;
    struct fd_entry *e;
    int reason;
};

/* Wake every thread waiting on e: with fd's lock held, on the OS thread
 * of e's registration (or none). */
static void wake_locked(struct fd_entry *e, int reason)
{
    while (!coq_empty(&e->waiters))
        sched_wake(e->waiters.head, reason);
    dlist_foreach(&e->pollers, it)
        sched_wake(container_of(it, struct fd_poller, link)->co, WAKE_SIGNALED);
}

/* On the registration's scheduler (sched_run_on). */
static void wake_all_here(struct sched *s, void *arg)
{
    struct wake_req *w = arg;
    fd_lock(w->fd);
    if (w->e->reg == s)
        wake_locked(w->e, w->reason);
    fd_unlock(w->fd);
}

/* Take fd's lock once no thread of another OS thread waits on e: those are
 * woken with `reason` by their own scheduler first (M:N). */
static void lock_woken_elsewhere(int fd, struct fd_entry *e, int reason)
{
    for (;;) {
        fd_lock(fd);
        struct sched *reg = e->reg;
        if (!mn_active || !reg || reg == sched_tls || !has_waiters(e))
            return;
        fd_unlock(fd);
        struct wake_req w = { fd, e, reason };
        sched_run_on(reg, wake_all_here, &w);
    }
}

/* Wake e's waiters with `reason` (and its pollers), wherever they wait. */
static void wake_all(int fd, struct fd_entry *e, int reason)
{
    lock_woken_elsewhere(fd, e, reason);
    wake_locked(e, reason);
    fd_unlock(fd);
}

static void socket_timeouts(int fd, struct fd_entry *e)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    e->rcvtimeo = syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0 ? tv_to_ns(&tv) : 0;
    len = sizeof tv;
    e->sndtimeo = syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 ? tv_to_ns(&tv) : 0;
}

/* Wake everyone waiting on e (the fd is going away) and forget it. */
static void entry_retire(int fd, struct fd_entry *e)
{
    lock_woken_elsewhere(fd, e, WAKE_CLOSED);
    wake_locked(e, WAKE_CLOSED);       /* pollers find POLLNVAL */
    struct dlist pollers = e->pollers;
    if (e->reg)
        syscall(SYS_epoll_ctl, e->reg->epfd, EPOLL_CTL_DEL, fd, NULL);
    uint32_t gen = e->gen + 1;
    memset(e, 0, sizeof *e);
    e->gen = gen;
    e->pollers = pollers;     /* their owners unlink them when they resume */
    fd_unlock(fd);
}

static void entry_fresh(struct fd_entry *e, enum fd_kind kind, bool stream, bool nonblock)
{
    e->kind = (uint8_t)kind;
    e->stream = stream;
    e->nonblock = nonblock;
    e->rd_ready = e->wr_ready = true;   /* unknown: try the call first */
}

struct fd_entry *fdtab_get(int fd)
{
    struct fd_entry *e = entry_at(fd, true);
    if (!e) {
        errno = EBADF;
        return NULL;
    }
    if (e->kind != FD_UNKNOWN)
        return e;

    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0)
        return NULL;
    int fl = (int)syscall(SYS_fcntl, fd, F_GETFL, 0);
    if (fl < 0)
        return NULL;
    enum fd_kind kind;
    bool stream = false;
    switch (st.st_mode & S_IFMT) {
    case S_IFSOCK: {
        int type = 0;
        socklen_t len = sizeof type;
        syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len);
        stream = type == SOCK_STREAM;
        kind = FD_SOCKET;
        break;
    }
    case S_IFIFO: kind = FD_PIPE; break;
    case S_IFCHR: kind = FD_CHAR; break;
    case S_IFREG: case S_IFDIR: case S_IFBLK: kind = FD_REGULAR; break;
    default: kind = FD_OTHER; break;
    }
    if (e->reg || !coq_empty(&e->waiters) || e->pollers.head)   /* stale: closed behind our back */
        entry_retire(fd, e);
    entry_fresh(e, kind, stream, fl & O_NONBLOCK);
    e->shared = true;           /* inherited or opened unseen: others may change its flags */
    if (kind == FD_SOCKET)
        socket_timeouts(fd, e);
    return e;
}

void fdtab_created(int fd, enum fd_kind kind, bool stream, bool nonblock)
{
    struct fd_entry *e = entry_at(fd, true);
    if (!e)
        return;
    if (e->kind != FD_UNKNOWN || e->reg || !coq_empty(&e->waiters) || e->pollers.head)
        entry_retire(fd, e);       /* the number was closed unseen and reused */
    entry_fresh(e, kind, stream, nonblock);
    e->created = true;
}

void fdtab_accepted(int lfd, int fd, int flags)
{
    int saved = errno;
    struct fd_entry *l = fdtab_get(lfd);
    errno = saved;
    fdtab_created(fd, FD_SOCKET, l ? l->stream : true, flags & SOCK_NONBLOCK);
}

void fdtab_opened(int fd)
{
    fdtab_close(fd);
}

void fdtab_shutdown(int fd, int how)
{
    struct fd_entry *e = entry_at(fd, false);
    if (!e)
        return;
    if (how != SHUT_RD)
        e->wr_shutdown = true;
    if (!coq_empty(&e->waiters))
        wake_all(fd, e, WAKE_SIGNALED);
}

void fdtab_dup(int oldfd, int newfd)
{
    struct fd_entry *o = fdtab_get(oldfd);
    struct fd_entry *n = entry_at(newfd, true);
    if (!n)
        return;
    if (n->kind != FD_UNKNOWN || n->reg || !coq_empty(&n->waiters) || n->pollers.head)
        entry_retire(newfd, n);
    if (!o)
        return;                     /* classified on first use instead */
    entry_fresh(n, (enum fd_kind)o->kind, o->stream, o->nonblock);
    n->created = o->created;
    n->no_nowait = o->no_nowait;
    n->wr_no_nowait = o->wr_no_nowait;
    n->file_inline = o->file_inline;
    n->file_sync = o->file_sync;
    n->rcvtimeo = o->rcvtimeo;
    n->sndtimeo = o->sndtimeo;
    n->shared = o->shared = true;
}

void fdtab_close(int fd)
{
    struct fd_entry *e = entry_at(fd, false);
    if (e && (e->kind != FD_UNKNOWN || e->reg || !coq_empty(&e->waiters) || e->pollers.head))
        entry_retire(fd, e);
}

void fdtab_mark_all_shared(void)
{
    for (unsigned c = 0; c < NCHUNKS; c++) {
        struct fd_entry *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
        for (unsigned i = 0; chunk && i < CHUNK_SIZE; i++)
            chunk[i].shared = true;
    }
}

bool fd_is_nonblocking(int fd, struct fd_entry *e)
{
    if (e->shared) {
        int fl = (int)syscall(SYS_fcntl, fd, F_GETFL, 0);
        if (fl >= 0)
            e->nonblock = fl & O_NONBLOCK;
    }
    return e->nonblock;
}

int64_t fd_timeout(int fd, struct fd_entry *e, bool write)
{
    if (e->kind != FD_SOCKET)
        return 0;
    if (e->shared)                    /* another fd may have set it */
        socket_timeouts(fd, e);
    return write ? e->sndtimeo : e->rcvtimeo;
}

void fdtab_set_timeout(int fd, bool write, int64_t ns)
{
    struct fd_entry *e = entry_at(fd, false);
    if (!e || e->kind != FD_SOCKET)
        return;
    if (write)
        e->sndtimeo = ns;
    else
        e->rcvtimeo = ns;
}

void fdtab_set_nonblock(int fd, bool on)
{
    struct fd_entry *e = entry_at(fd, false);
    if (e && e->kind != FD_UNKNOWN)
        e->nonblock = on;
}

/* A scheduler is going away, or its epoll set was replaced (fork): forget
 * every registration in it. */
static void forget_sched(struct sched *s)
{
    for (unsigned c = 0; c < NCHUNKS; c++) {
        struct fd_entry *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
        for (unsigned i = 0; chunk && i < CHUNK_SIZE; i++)
            if (chunk[i].reg == s)
                chunk[i].reg = NULL;
    }
}

static void fd_ready(struct sched *s, uint64_t data, uint32_t events);
static const struct poll_source fd_source = { fd_ready };
POLL_SOURCE(fd_source);

/* The generation's bits that fit in the epoll data beside the fd. */
#define GEN_TAG_MASK 0xFFFFFFu

/* In a fork child only the forking thread lives on, and it was not
 * waiting: every registration (in the parent's epoll sets, of this and the
 * other workers) and every waiter is gone. */
static void on_fork_child(struct sched *s)
{
    (void)s;
    memset(fd_locks, 0, sizeof fd_locks);   /* a thread of another worker may have held one */
    fdtab_mark_all_shared();
    for (unsigned c = 0; c < NCHUNKS; c++) {
        struct fd_entry *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
        for (unsigned i = 0; chunk && i < CHUNK_SIZE; i++) {
            chunk[i].reg = NULL;
            chunk[i].waiters = (struct coq){ 0 };
            chunk[i].pollers.head = NULL;
        }
    }
}

static const struct sched_observer observer = {
    .sched_destroyed = forget_sched,
    .fork_parent = fdtab_mark_all_shared,
    .fork_child = on_fork_child,
};
SCHED_OBSERVER(observer);

/* With fd's lock held. */
static int fd_register(struct sched *s, int fd, struct fd_entry *e)
{
    if (e->reg == s)
        return 0;
    if (e->reg) {
        /* Waited on by another OS thread's scheduler: take it over when
         * nobody waits there (M:N: its last waiter moved, or left). */
        if (!mn_active || !s->mn_member || !sched_is_member(e->reg))
            return ENOTSUP;
        if (has_waiters(e))
            return EBUSY;             /* threads of two workers at once: look again soon */
        syscall(SYS_epoll_ctl, e->reg->epfd, EPOLL_CTL_DEL, fd, NULL);
        e->reg = NULL;
    }
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
        .data.u64 = sched_poll_data(&fd_source, (uint64_t)(e->gen & GEN_TAG_MASK) << 32 | (uint32_t)fd),
    };
    if (syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        /* EEXIST: a registration of this same file under this number that
         * we lost track of; refresh it with the current generation. */
        if (errno != EEXIST || syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            return ENOTSUP;
    }
    e->reg = s;
    s->stats.fds_registered++;
    return 0;
}

#define RECHECK_NS 1000000ull

static uint64_t recheck_deadline(uint64_t deadline)
{
    uint64_t soon = clock_now_ns() + RECHECK_NS;
    return deadline < soon ? deadline : soon;
}

/* M:N: threads of another worker wait on fd, whose registration only one
 * epoll set can hold: wait a millisecond, and the caller tries its call
 * again (slower, never stuck: a real blocking call here could keep this
 * worker from running the thread that would make the fd ready). */
static int recheck_soon(struct sched *s, int fd, short events, uint64_t deadline)
{
    sched_wait_on(s, (events & POLLIN) ? WAIT_READ : WAIT_WRITE, NULL, fd);
    switch (sched_park(s, recheck_deadline(deadline),
                       deadline == DEADLINE_NONE ? PARK_INTR_RESTART : PARK_INTR_ALWAYS)) {
    case WAKE_TIMEOUT: return clock_now_ns() >= deadline ? ETIMEDOUT : 0;
    case WAKE_CANCELED: return ECANCELED;
    case WAKE_INTERRUPTED: return EINTR;
    default: return 0;
    }
}

static int fd_wait(struct sched *s, int fd, struct fd_entry *e, short events, uint64_t deadline)
{
    fd_lock(fd);
    int reg = fd_register(s, fd, e);
    if (reg == EBUSY) {
        fd_unlock(fd);
        return recheck_soon(s, fd, events, deadline);
    }
    if (reg != 0) {
        fd_unlock(fd);
        return ENOTSUP;
    }
    /* An event may have come in since the caller's EAGAIN. */
    if ((events & POLLIN) ? e->rd_ready : e->wr_ready) {
        fd_unlock(fd);
        return 0;
    }
    struct corun *cur = s->current;
    cur->wait_want = events;
    sched_wait_on(s, (events & POLLIN) ? WAIT_READ : WAIT_WRITE, NULL, fd);
    coq_push(&e->waiters, cur);
    fd_unlock(fd);
    /* A deadline here is the socket's SO_RCVTIMEO/SO_SNDTIMEO: such calls
     * are never restarted after a handler (signal(7)). */
    switch (sched_park(s, deadline, deadline == DEADLINE_NONE ? PARK_INTR_RESTART : PARK_INTR_ALWAYS)) {
    case WAKE_TIMEOUT: return ETIMEDOUT;
    case WAKE_CLOSED: return EBADF;
    case WAKE_CANCELED: return ECANCELED;
    case WAKE_INTERRUPTED: return EINTR;
    default: return 0;      /* the caller tries again (WAKE_RESTART too) */
    }
}

int fd_wait_readable(struct sched *s, int fd, struct fd_entry *e, uint64_t deadline)
{
    return fd_wait(s, fd, e, POLLIN, deadline);
}

int fd_wait_writable(struct sched *s, int fd, struct fd_entry *e, uint64_t deadline)
{
    return fd_wait(s, fd, e, POLLOUT, deadline);
}

#define EV_READ (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define EV_WRITE (EPOLLOUT | EPOLLHUP | EPOLLERR)
#define EV_FINAL (EPOLLRDHUP | EPOLLHUP | EPOLLERR)

static void fd_ready(struct sched *s, uint64_t data, uint32_t events)
{
    int fd = (int)(uint32_t)data;
    struct fd_entry *e = entry_at(fd, false);
    if (!e)
        return;
    fd_lock(fd);
    if ((e->gen & GEN_TAG_MASK) != (uint32_t)(data >> 32) || (mn_active && e->reg != s)) {
        fd_unlock(fd);
        return;                        /* an fd closed since, or now waited on elsewhere */
    }
    if (events & EV_READ)
        e->rd_ready = true;
    if (events & EV_FINAL)
        e->hup = true;
    if (events & EV_WRITE)
        e->wr_ready = true;
    struct corun *co = e->waiters.head;
    while (co) {
        struct corun *next = co->next;
        if (((co->wait_want & (POLLIN | POLLPRI)) && (events & EV_READ)) ||
            ((co->wait_want & POLLOUT) && (events & EV_WRITE)))
            sched_wake(co, WAKE_SIGNALED);
        co = next;
    }
    dlist_foreach(&e->pollers, it) {
        struct fd_poller *p = container_of(it, struct fd_poller, link);
        if ((events & (EPOLLERR | EPOLLHUP)) || ((p->events & (POLLIN | POLLPRI)) && (events & EV_READ)) ||
            ((p->events & POLLOUT) && (events & EV_WRITE)))
            sched_wake(p->co, WAKE_SIGNALED);
    }
    fd_unlock(fd);
}

/* ---- waiting on several fds -------------------------------------------------*/

static void poller_unlink(int fd, struct fd_entry *e, struct fd_poller *p)
{
    fd_lock(fd);
    if (dlink_linked(&e->pollers, &p->link))
        dlist_remove(&e->pollers, &p->link);
    fd_unlock(fd);
}

int fd_wait_any(struct sched *s, const struct pollfd *fds, unsigned long n, uint64_t deadline,
                enum park_mode intr)
{
    struct fd_poller local[16];
    struct fd_poller *nodes = n <= 16 ? local : calloc(n, sizeof *nodes);
    struct fd_entry **ents = NULL;
    if (!nodes)
        return ENOMEM;
    struct fd_entry *local_ents[16];
    ents = n <= 16 ? local_ents : calloc(n, sizeof *ents);
    if (!ents) {
        if (nodes != local)
            free(nodes);
        return ENOMEM;
    }
    struct corun *cur = s->current;
    int saved = errno;
    bool ready_now = false, elsewhere = false;
    for (unsigned long i = 0; i < n; i++) {
        ents[i] = NULL;
        if (fds[i].fd < 0)
            continue;
        struct fd_entry *e = fdtab_get(fds[i].fd);
        if (!e || e->kind == FD_REGULAR) {
            ready_now = true;          /* let the kernel's poll answer for it */
            break;
        }
        fd_lock(fds[i].fd);
        int reg = fd_register(s, fds[i].fd, e);
        if (reg == EBUSY) {            /* waited on by another worker's threads */
            fd_unlock(fds[i].fd);
            elsewhere = true;
            continue;
        }
        if (reg != 0) {
            fd_unlock(fds[i].fd);
            ready_now = true;
            break;
        }
        nodes[i] = (struct fd_poller){ .co = cur, .events = fds[i].events };
        dlist_push(&e->pollers, &nodes[i].link);
        fd_unlock(fds[i].fd);
        ents[i] = e;
    }
    sched_wait_on(s, WAIT_POLL, NULL, n == 1 ? fds[0].fd : -1);
    int why = ready_now ? WAKE_SIGNALED
                        : sched_park(s, elsewhere ? recheck_deadline(deadline) : deadline, intr);
    if (why == WAKE_TIMEOUT && elsewhere && clock_now_ns() < deadline)
        why = WAKE_SIGNALED;           /* the caller asks the kernel again */
    for (unsigned long i = 0; i < n; i++)
        if (ents[i])
            poller_unlink(fds[i].fd, ents[i], &nodes[i]);
    if (nodes != local)
        free(nodes);
    if (ents != local_ents)
        free(ents);
    errno = saved;
    switch (why) {
    case WAKE_TIMEOUT: return ETIMEDOUT;
    case WAKE_CANCELED: return ECANCELED;
    case WAKE_INTERRUPTED: return EINTR;
    default: return 0;
    }
}

/* ---- corun_wait_fd -------------------------------------------------------*/

static int wait_fd(int fd, short events, int64_t timeout_ns, short *revents);

static short poll_now(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    struct timespec zero = { 0, 0 };
    while (syscall(SYS_ppoll, &p, 1, &zero, NULL, 8) < 0)
        if (errno != EINTR)
            return POLLNVAL;
    return p.revents;
}

__attribute__((visibility("default"))) int corun_wait_fd(int fd, short events,
                                                         int64_t timeout_ns, short *revents)
{
    if (!(events & (POLLIN | POLLOUT)) || (events & ~(POLLIN | POLLOUT | POLLPRI)))
        return EINVAL;
    if (fd < 0)
        return EBADF;
    CATCH_HOLD();
    int saved = errno;                 /* the API never touches errno */
    int err = wait_fd(fd, events, timeout_ns, revents);
    errno = saved;
    return err;
}

static int wait_fd(int fd, short events, int64_t timeout_ns, short *revents)
{
    struct sched *s = sched_self();
    uint64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        /* Ask the kernel, then park: an edge after the check is queued by
         * epoll and wakes us; one before it is seen by the check. */
        short r = poll_now(fd, events);
        if (r & POLLNVAL)
            return EBADF;
        if (r) {
            if (revents)
                *revents = r;
            return 0;
        }
        if (timeout_ns == 0)
            return EAGAIN;
        struct fd_entry *e = fdtab_get(fd);
        if (!e)
            return EBADF;
        if (events & POLLIN)
            e->rd_ready = false;
        if (events & POLLOUT)
            e->wr_ready = false;
        int err = fd_wait(s, fd, e, events, deadline);
        if (err == ECANCELED)
            gthread_act_on_cancel(WAKE_CANCELED);
        if (err == EINTR)
            continue;                  /* the API restarts after handlers */
        if (err == ENOTSUP)
            return EINVAL;             /* regular files are always ready: not reached */
        if (err)
            return err;
    }
}
