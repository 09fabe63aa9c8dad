#include "fdio.h"

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

/*
 * One call, attempted without blocking (nowait) or as the real blocking call.
 * `extra` adds MSG_* flags on sockets (MSG_NOSIGNAL after partial progress).
 */
struct io_op {
    ssize_t (*attempt)(struct io_op *op, bool nowait, int extra);
    int fd;
    bool sock;
    int flags;
    const struct iovec *iov;
    int cnt;
    void *buf;
    size_t n;
    struct sockaddr *from;
    socklen_t *fromlen;
    const struct sockaddr *to;
    socklen_t tolen;
    struct msghdr *msg;
};

/* The call would block: wait for the fd, unless the program wants EAGAIN.
 * Returns 0 (try again), -1 (return -1, errno set) or 1 (make the real
 * blocking call: this fd cannot be waited on here). */
static int io_await(struct sched *s, int fd, struct fd_entry *e, bool wr, uint64_t *deadline)
{
    if (fd_is_nonblocking(fd, e)) {
        errno = EAGAIN;
        return -1;
    }
    if (sched_alone(s))
        return 1;          /* nothing else to run: the real blocking call is exact */
    if (*deadline == 0) {
        int64_t t = fd_timeout(fd, e, wr);
        *deadline = t > 0 ? clock_now_ns() + (uint64_t)t : DEADLINE_NONE;
    }
    int err = wr ? fd_wait_writable(s, fd, e, *deadline) : fd_wait_readable(s, fd, e, *deadline);
    if (!err)
        return 0;
    if (err == ENOTSUP)
        return 1;
    if (err == ECANCELED)
        gthread_act_on_cancel(WAKE_CANCELED);
    errno = err == ETIMEDOUT ? EAGAIN : err;
    return -1;
}

/* For fds without per-call non-blocking I/O (ttys, some devices): ask poll
 * whether the call can proceed, wait if not, then make the real call. */
static ssize_t io_polled(struct sched *s, struct io_op *op, struct fd_entry *e, bool wr)
{
    uint64_t deadline = 0;
    for (;;) {
        if (rs_poll_now(op->fd, wr ? POLLOUT : POLLIN))
            return op->attempt(op, false, 0);
        if (wr)
            e->wr_ready = false;
        else
            e->rd_ready = false;
        int a = io_await(s, op->fd, e, wr, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            return op->attempt(op, false, 0);
    }
}

/* Known empty since the last event, on an fd whose flags we know: wait
 * before calling, which saves the syscall that would say EAGAIN. */
static inline bool known_unready(struct sched *s, const struct fd_entry *e, bool wr)
{
    return !(wr ? e->wr_ready : e->rd_ready) && e->reg == s && !e->shared && !e->nonblock;
}

/*
 * A read-like call: returns as soon as the call returns anything. `want` is
 * the bytes asked for; if `drains`, a shorter result means the fd had no
 * more (stream sockets, pipes), so the next read waits for an event first.
 */
static ssize_t io_read(struct sched *s, struct io_op *op, struct fd_entry *e, size_t want,
                       bool drains)
{
    /* Character devices: a read with RWF_NOWAIT may stop early where the
     * blocking read would not (/dev/zero gives up at a pending reschedule),
     * so ask poll, then make the real call, whose count is the kernel's. */
    if (e->no_nowait || e->kind == FD_CHAR)
        return io_polled(s, op, e, false);
    uint64_t deadline = 0;
    if (known_unready(s, e, false)) {
        int a = io_await(s, op->fd, e, false, &deadline);
        if (a)
            return a < 0 ? -1 : op->attempt(op, false, 0);
    }
    for (;;) {
        ssize_t r = op->attempt(op, true, 0);
        if (r >= 0) {
            if (drains && r > 0 && (size_t)r < want && !e->hup)
                e->rd_ready = false;
            return r;
        }
        if (errno == EOPNOTSUPP && !op->sock) {
            e->no_nowait = true;
            return io_polled(s, op, e, false);
        }
        if (errno != EAGAIN)
            return -1;
        e->rd_ready = false;
        int a = io_await(s, op->fd, e, false, &deadline);
        if (a)
            return a < 0 ? -1 : op->attempt(op, false, 0);
    }
}

static int sock_domain(int fd)
{
    int d = -1;
    socklen_t l = sizeof d;
    syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &d, &l);
    return d;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

/* Skip `done` bytes of the vector in op, copying it first if it is still
 * the caller's. */
static int iov_advance(struct io_op *op, struct iovec **copy, size_t done)
{
    if (!*copy) {
        *copy = malloc((size_t)op->cnt * sizeof **copy);
        if (!*copy)
            return -1;
        memcpy(*copy, op->iov, (size_t)op->cnt * sizeof **copy);
        op->iov = *copy;
    }
    struct iovec *v = (struct iovec *)op->iov;
    int cnt = op->cnt;
    while (cnt && done >= v->iov_len) {
        done -= v->iov_len;
        v++;
        cnt--;
    }
    if (cnt) {
        v->iov_base = (char *)v->iov_base + done;
        v->iov_len -= done;
    }
    op->iov = v;
    op->cnt = cnt;
    return 0;
}

/*
 * A write-like call over op->iov. On a stream (stream socket, pipe) a
 * blocking write sends everything unless an error or timeout stops it, and
 * then reports what was sent; a datagram goes whole or not at all.
 */
/* Writes to fds without per-call non-blocking I/O (ttys): poll for room,
 * then write a piece small enough for the room poll promises (a tty
 * reports writable once under 256 bytes are queued), until all is written. */
#define POLLED_WRITE_PIECE 256

static ssize_t io_write_polled(struct sched *s, struct io_op *op, struct fd_entry *e)
{
    size_t total = iov_total(op->iov, op->cnt), done = 0;
    struct iovec *copy = NULL;
    uint64_t deadline = 0;
    const struct iovec *whole = op->iov;
    int whole_cnt = op->cnt;
    while (done < total || total == 0) {
        if (!rs_poll_now(op->fd, POLLOUT)) {
            e->wr_ready = false;
            int a = io_await(s, op->fd, e, true, &deadline);
            if (a < 0)
                break;
            if (a > 0) {                       /* cannot wait here: the rest in one real call */
                ssize_t r = op->attempt(op, false, 0);
                if (r > 0)
                    done += (size_t)r;
                break;
            }
            continue;
        }
        while (op->cnt && op->iov[0].iov_len == 0) {
            op->iov++;
            op->cnt--;
        }
        struct iovec piece = { op->cnt ? op->iov[0].iov_base : NULL, 0 };
        if (op->cnt)
            piece.iov_len = op->iov[0].iov_len < POLLED_WRITE_PIECE ? op->iov[0].iov_len : POLLED_WRITE_PIECE;
        const struct iovec *rest = op->iov;
        int rest_cnt = op->cnt;
        op->iov = &piece;
        op->cnt = 1;
        ssize_t r = op->attempt(op, false, 0);
        op->iov = rest;
        op->cnt = rest_cnt;
        if (r < 0)
            break;
        done += (size_t)r;
        if (total == 0 || r == 0 || iov_advance(op, &copy, (size_t)r) != 0)
            break;
    }
    op->iov = whole;
    op->cnt = whole_cnt;
    free(copy);
    return done > 0 || total == 0 ? (ssize_t)done : -1;
}

static ssize_t io_write(struct sched *s, struct io_op *op, struct fd_entry *e, bool stream)
{
    if (e->no_nowait)
        return io_write_polled(s, op, e);
    size_t total = iov_total(op->iov, op->cnt), done = 0;
    struct iovec *copy = NULL;
    uint64_t deadline = 0;
    int extra = 0;
    ssize_t result;
    if (known_unready(s, e, true))
        goto wait;
    for (;;) {
        ssize_t r = op->attempt(op, true, extra);
        if (r >= 0) {
            done += (size_t)r;
            if (!stream || done >= total || r == 0)
                goto finished;
            if (iov_advance(op, &copy, (size_t)r) != 0)
                goto finished;
            /* Once something is sent, a later EPIPE ends the call with the
             * count, without SIGPIPE, as the kernel's own loop does. */
            if (op->sock)
                extra = MSG_NOSIGNAL;
        } else if (errno == EOPNOTSUPP && !op->sock) {
            e->no_nowait = true;
            r = io_write_polled(s, op, e);
            if (r > 0)
                done += (size_t)r;
            else if (done == 0)
                goto failed;
            goto finished;
        } else if (errno != EAGAIN) {
            goto partial_or_fail;
        }
    wait:
        e->wr_ready = false;
        int a = io_await(s, op->fd, e, true, &deadline);
        if (a < 0)
            goto partial_or_fail;
        /* Part sent, and now the connection failed: end with the count and
         * leave the error pending for the next call, as the kernel does (an
         * attempt would consume it; poll only looks). */
        if (done && op->sock && (rs_poll_now(op->fd, POLLOUT) & (POLLERR | POLLHUP)))
            goto finished;
        if (a > 0) {
            r = op->attempt(op, false, extra);
            if (r >= 0)
                done += (size_t)r;
            else
                goto partial_or_fail;
            goto finished;
        }
        /* A blocked AF_UNIX send that our own shutdown(SHUT_WR) ends fails
         * with EPIPE but without SIGPIPE (unlike TCP's): do the same. */
        if (!done && op->sock && e->wr_shutdown && sock_domain(op->fd) == AF_UNIX)
            extra |= MSG_NOSIGNAL;
    }
partial_or_fail:
    if (done == 0)
        goto failed;
finished:
    result = (ssize_t)done;
    free(copy);
    return result;
failed:
    free(copy);
    return -1;
}

/* ---- attempts --------------------------------------------------------------*/

static ssize_t attempt_readv(struct io_op *op, bool nowait, int extra)
{
    (void)extra;
    if (op->sock) {
        int fl = nowait ? MSG_DONTWAIT : 0;
        if (op->cnt == 1)
            return rs_recvfrom(op->fd, op->iov[0].iov_base, op->iov[0].iov_len, fl, NULL, NULL);
        struct msghdr m = { .msg_iov = (struct iovec *)op->iov, .msg_iovlen = (size_t)op->cnt };
        return rs_recvmsg(op->fd, &m, fl);
    }
    return nowait ? rs_readv_nowait(op->fd, op->iov, op->cnt) : rs_readv(op->fd, op->iov, op->cnt);
}

static ssize_t attempt_writev(struct io_op *op, bool nowait, int extra)
{
    if (op->sock) {
        int fl = (nowait ? MSG_DONTWAIT : 0) | extra;
        if (op->cnt == 1)
            return rs_sendto(op->fd, op->iov[0].iov_base, op->iov[0].iov_len, fl, NULL, 0);
        struct msghdr m = { .msg_iov = (struct iovec *)op->iov, .msg_iovlen = (size_t)op->cnt };
        return rs_sendmsg(op->fd, &m, fl);
    }
    return nowait ? rs_writev_nowait(op->fd, op->iov, op->cnt) : rs_writev(op->fd, op->iov, op->cnt);
}

static ssize_t attempt_recvfrom(struct io_op *op, bool nowait, int extra)
{
    (void)extra;
    return rs_recvfrom(op->fd, op->buf, op->n, op->flags | (nowait ? MSG_DONTWAIT : 0), op->from,
                       op->fromlen);
}

static ssize_t attempt_sendto(struct io_op *op, bool nowait, int extra)
{
    int fl = op->flags | (nowait ? MSG_DONTWAIT : 0) | extra;
    if (op->cnt == 1)
        return rs_sendto(op->fd, op->iov[0].iov_base, op->iov[0].iov_len, fl, op->to, op->tolen);
    struct msghdr m = { .msg_name = (void *)op->to, .msg_namelen = op->tolen,
                        .msg_iov = (struct iovec *)op->iov, .msg_iovlen = (size_t)op->cnt };
    return rs_sendmsg(op->fd, &m, fl);
}

static ssize_t attempt_recvmsg(struct io_op *op, bool nowait, int extra)
{
    (void)extra;
    return rs_recvmsg(op->fd, op->msg, op->flags | (nowait ? MSG_DONTWAIT : 0));
}

static ssize_t attempt_sendmsg(struct io_op *op, bool nowait, int extra)
{
    struct msghdr m = *op->msg;
    m.msg_iov = (struct iovec *)op->iov;
    m.msg_iovlen = (size_t)op->cnt;
    if (op->iov != op->msg->msg_iov) {  /* ancillary data goes with the first bytes only */
        m.msg_control = NULL;
        m.msg_controllen = 0;
    }
    return rs_sendmsg(op->fd, &m, op->flags | (nowait ? MSG_DONTWAIT : 0) | extra);
}

/* ---- primitives ------------------------------------------------------------*/

/* Entry for fd if corun should emulate blocking on it, else NULL: the caller
 * then makes the real call (regular files, fds the program made non-blocking,
 * bad fds: the real call reports those exactly). */
static struct fd_entry *io_entry_checked(struct fd_entry *e)
{
    if (!e || e->kind == FD_REGULAR || (e->nonblock && !e->shared))
        return NULL;
    return e;
}

static struct fd_entry *io_entry(int fd)
{
    int saved = errno;
    struct fd_entry *e = fdtab_get(fd);
    errno = saved;
    return io_entry_checked(e);
}

#define RETURN_PRESERVING_ERRNO(expr)          \
    do {                                       \
        int saved_errno_ = errno;              \
        ssize_t r_ = (expr);                   \
        if (r_ >= 0)                           \
            errno = saved_errno_;              \
        return r_;                             \
    } while (0)

ssize_t fdio_readv(struct sched *s, int fd, const struct iovec *iov, int cnt)
{
    struct fd_entry *e;
    if (fileio_is_file(fd, &e))
        return fileio_rw(s, fd, e, false, iov, cnt, -1, 0);
    e = io_entry_checked(e);
    size_t want = e && cnt > 0 ? iov_total(iov, cnt) : 0;
    if (!e || want == 0)
        return rs_readv(fd, iov, cnt);
    struct io_op op = { .attempt = attempt_readv, .fd = fd, .sock = e->kind == FD_SOCKET,
                        .iov = iov, .cnt = cnt };
    RETURN_PRESERVING_ERRNO(io_read(s, &op, e, want, e->stream || e->kind == FD_PIPE));
}

ssize_t fdio_writev(struct sched *s, int fd, const struct iovec *iov, int cnt)
{
    struct fd_entry *e;
    if (fileio_is_file(fd, &e))
        return fileio_rw(s, fd, e, true, iov, cnt, -1, 0);
    e = io_entry_checked(e);
    if (!e || cnt <= 0)
        return rs_writev(fd, iov, cnt);
    struct io_op op = { .attempt = attempt_writev, .fd = fd, .sock = e->kind == FD_SOCKET,
                        .iov = iov, .cnt = cnt };
    RETURN_PRESERVING_ERRNO(io_write(s, &op, e, e->stream || e->kind != FD_SOCKET));
}

ssize_t fdio_recvfrom(struct sched *s, int fd, void *buf, size_t n, int flags,
                      struct sockaddr *from, socklen_t *fromlen)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT))
        return rs_recvfrom(fd, buf, n, flags, from, fromlen);
    int saved = errno;
    struct io_op op = { .attempt = attempt_recvfrom, .fd = fd, .sock = true,
                        .flags = flags & ~MSG_WAITALL, .buf = buf, .n = n, .from = from,
                        .fromlen = fromlen };
    bool drains = e->stream && !(flags & MSG_PEEK);
    if (!(flags & MSG_WAITALL) || !e->stream) {
        ssize_t r = io_read(s, &op, e, n, drains);
        if (r >= 0)
            errno = saved;
        return r;
    }
    /* MSG_WAITALL: gather until full, EOF, error or timeout. */
    size_t done = 0;
    while (done < n) {
        op.buf = (char *)buf + done;
        op.n = n - done;
        ssize_t r = io_read(s, &op, e, op.n, drains);
        if (r <= 0) {
            if (done == 0)
                return r;
            break;
        }
        done += (size_t)r;
    }
    errno = saved;
    return (ssize_t)done;
}

ssize_t fdio_sendto(struct sched *s, int fd, const void *buf, size_t n, int flags,
                    const struct sockaddr *to, socklen_t tolen)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT))
        return rs_sendto(fd, buf, n, flags, to, tolen);
    struct iovec v = { (void *)buf, n };
    struct io_op op = { .attempt = attempt_sendto, .fd = fd, .sock = true, .flags = flags,
                        .iov = &v, .cnt = 1, .to = to, .tolen = tolen };
    RETURN_PRESERVING_ERRNO(io_write(s, &op, e, e->stream));
}

ssize_t fdio_recvmsg(struct sched *s, int fd, struct msghdr *m, int flags)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT) || (flags & MSG_WAITALL))
        return rs_recvmsg(fd, m, flags);   /* WAITALL on recvmsg: rare; the real call is right */
    struct io_op op = { .attempt = attempt_recvmsg, .fd = fd, .sock = true, .flags = flags,
                        .msg = m };
    bool drains = e->stream && !(flags & MSG_PEEK);
    RETURN_PRESERVING_ERRNO(io_read(s, &op, e, iov_total(m->msg_iov, (int)m->msg_iovlen), drains));
}

ssize_t fdio_sendmsg(struct sched *s, int fd, const struct msghdr *m, int flags)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT))
        return rs_sendmsg(fd, m, flags);
    struct io_op op = { .attempt = attempt_sendmsg, .fd = fd, .sock = true, .flags = flags,
                        .msg = (struct msghdr *)m, .iov = m->msg_iov, .cnt = (int)m->msg_iovlen };
    RETURN_PRESERVING_ERRNO(io_write(s, &op, e, e->stream));
}

int fdio_recvmmsg(struct sched *s, int fd, struct mmsghdr *v, unsigned n, int flags,
                  struct timespec *timeout)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT) || timeout || n == 0)
        return (int)syscall(SYS_recvmmsg, fd, v, n, flags, timeout);
    int saved = errno;
    uint64_t deadline = 0;
    for (;;) {
        int r = (int)syscall(SYS_recvmmsg, fd, v, n, flags | MSG_DONTWAIT, NULL);
        if (r >= 0) {
            errno = saved;
            return r;
        }
        if (errno != EAGAIN)
            return -1;
        e->rd_ready = false;
        int a = io_await(s, fd, e, false, &deadline);
        if (a)
            return a < 0 ? -1 : (int)syscall(SYS_recvmmsg, fd, v, n, flags, NULL);
    }
}

int fdio_sendmmsg(struct sched *s, int fd, struct mmsghdr *v, unsigned n, int flags)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || (flags & MSG_DONTWAIT))
        return (int)syscall(SYS_sendmmsg, fd, v, n, flags);
    int saved = errno;
    uint64_t deadline = 0;
    unsigned done = 0;
    /* A blocking sendmmsg sends every message, each as a blocking sendmsg. */
    while (done < n) {
        int r = (int)syscall(SYS_sendmmsg, fd, v + done, n - done, flags | MSG_DONTWAIT);
        if (r > 0) {
            done += (unsigned)r;
            continue;
        }
        if (r == 0 || errno != EAGAIN)
            break;
        e->wr_ready = false;
        int a = io_await(s, fd, e, true, &deadline);
        if (a < 0)
            break;
        if (a > 0) {
            r = (int)syscall(SYS_sendmmsg, fd, v + done, n - done, flags);
            if (r > 0)
                done += (unsigned)r;
            break;
        }
    }
    if (done == 0)
        return -1;
    errno = saved;
    return (int)done;
}

/* accept4 that cannot block: O_NONBLOCK set around this one call, then put
 * back as it was (only on sockets the program created, see fdio.h). */
static int accept_nowait(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int fl = rs_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    if (!(fl & O_NONBLOCK) && rs_fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    int r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    int err = errno;
    if (!(fl & O_NONBLOCK))
        rs_fcntl(fd, F_SETFL, fl);
    errno = err;
    return r;
}

/*
 * accept on a file description other processes may share (inherited, or
 * any after fork): accept has no per-call non-blocking flag, and its
 * O_NONBLOCK is not ours to flip, since another process's blocking accept
 * that starts meanwhile would fail with EAGAIN. So poll first, then make
 * the real call under a one-shot timer whose signal (CORUN_KICK_SIGNAL, a
 * handler without SA_RESTART) interrupts it if another process took the
 * connection poll promised: the OS thread blocks for KICK_NS at most.
 */
#ifndef sigev_notify_thread_id          /* glibc before 2.35 does not name it */
#define sigev_notify_thread_id _sigev_un._tid
#endif
#define KICK_NS 2000000

static __thread volatile sig_atomic_t kicked __attribute__((tls_model("initial-exec")));

/* Each scheduler's kick timer, made on first use. */
struct kick_sched {
    timer_t timer;
    bool made;
};

static struct sched_part part = { .sched_size = sizeof(struct kick_sched) };
SCHED_PART(part);

static inline struct kick_sched *ks(const struct sched *s)
{
    return sched_part(s, &part);
}

static void kick_sched_destroyed(struct sched *s)
{
    if (ks(s)->made)
        timer_delete(ks(s)->timer);
}

static void kick_fork_child(struct sched *s)
{
    if (s)
        ks(s)->made = false;         /* timers are not inherited */
}

static const struct sched_observer observer = {
    .sched_destroyed = kick_sched_destroyed,
    .fork_child = kick_fork_child,
};
SCHED_OBSERVER(observer);

static void kick_handler(int sig)
{
    (void)sig;
    kicked = 1;
}

/* The scheduler's kick timer, made on first use; false if it cannot be. */
static bool kick_timer_ready(struct sched *s)
{
    static int handler_installed;
    if (ks(s)->made)
        return true;
    if (!__atomic_load_n(&handler_installed, __ATOMIC_ACQUIRE)) {
        struct sigaction sa = { .sa_handler = kick_handler };
        sigemptyset(&sa.sa_mask);
        if (libc_sigaction(CORUN_KICK_SIGNAL, &sa, NULL) != 0)
            return false;
        __atomic_store_n(&handler_installed, 1, __ATOMIC_RELEASE);
    }
    struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = CORUN_KICK_SIGNAL };
    ev.sigev_notify_thread_id = s->tid;
    if (timer_create(CLOCK_MONOTONIC, &ev, &ks(s)->timer) != 0)
        return false;
    ks(s)->made = true;
    return true;
}

/* The real accept4, interrupted after KICK_NS; *lost if the timer did it. */
static int accept_kicked(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                         bool *lost)
{
    *lost = false;
    if (!kick_timer_ready(s))
        return (int)syscall(SYS_accept4, fd, addr, len, flags);   /* may block: still right */
    struct itimerspec arm = { .it_value = { 0, KICK_NS } }, off = { 0 };
    kicked = 0;
    timer_settime(ks(s)->timer, 0, &arm, NULL);
    int r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    int err = errno;
    timer_settime(ks(s)->timer, 0, &off, NULL);
    *lost = r < 0 && err == EINTR && kicked;
    errno = err;
    return r;
}

int fdio_accept(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET)
        return (int)syscall(SYS_accept4, fd, addr, len, flags);
    int saved = errno;
    uint64_t deadline = 0;
    int r;
    if (known_unready(s, e, false)) {
        int a = io_await(s, fd, e, false, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            goto blocking;
    }
    for (;;) {
        if (e->created && !e->shared) {
            r = accept_nowait(fd, addr, len, flags);
        } else if (rs_poll_now(fd, POLLIN)) {
            bool lost;
            r = accept_kicked(s, fd, addr, len, flags, &lost);
            if (lost)
                errno = EAGAIN;         /* another process took it: wait again */
        } else {
            r = -1;
            errno = EAGAIN;
        }
        if (r >= 0)
            break;
        if (errno != EAGAIN)
            return -1;
        e->rd_ready = false;
        int a = io_await(s, fd, e, false, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            goto blocking;
    }
    goto accepted;
blocking:
    r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    if (r < 0)
        return -1;
accepted:
    fdtab_accepted(fd, r, flags);
    errno = saved;
    return r;
}

int fdio_connect(struct sched *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || !e->created || e->shared)   /* O_NONBLOCK not ours to flip */
        return (int)syscall(SYS_connect, fd, addr, len);
    int saved = errno;
    int fl = rs_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)                 /* the program's own: it expects EINPROGRESS */
        return (int)syscall(SYS_connect, fd, addr, len);
    if (rs_fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    int r = (int)syscall(SYS_connect, fd, addr, len);
    int err = errno;
    rs_fcntl(fd, F_SETFL, fl);
    if (r == 0) {
        errno = saved;
        return 0;
    }
    if (err == EAGAIN)                   /* AF_UNIX backlog full: only the blocking call waits for room */
        return (int)syscall(SYS_connect, fd, addr, len);
    if (err != EINPROGRESS) {
        errno = err;
        return -1;
    }
    uint64_t deadline = 0;
    do {
        e->wr_ready = false;
        int a = io_await(s, fd, e, true, &deadline);
        if (a < 0) {
            if (errno == EAGAIN)         /* SO_SNDTIMEO expired: as the kernel says it */
                errno = EINPROGRESS;
            return -1;
        }
        if (a > 0) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            syscall(SYS_ppoll, &p, 1, NULL, NULL, 8);
            break;
        }
    } while (!rs_poll_now(fd, POLLOUT));
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        return -1;
    if (soerr) {
        errno = soerr;
        return -1;
    }
    errno = saved;
    return 0;
}

/* Wait (as a blocking call would) until fd can be read or written. */
static int wait_until_ready(struct sched *s, int fd, bool wr)
{
    struct fd_entry *e = io_entry(fd);
    if (!e)
        return 0;
    uint64_t deadline = 0;
    while (!rs_poll_now(fd, wr ? POLLOUT : POLLIN)) {
        if (wr)
            e->wr_ready = false;
        else
            e->rd_ready = false;
        int a = io_await(s, fd, e, wr, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            return 0;
    }
    return 0;
}

/* ---- sendfile, splice, tee, vmsplice -----------------------------------------
 * None has a per-call non-blocking flag for a socket (the kernel looks at
 * the socket's O_NONBLOCK only), but SPLICE_F_NONBLOCK makes their pipe
 * waits say EAGAIN. So each is a loop like write's: pipe waits park on
 * EAGAIN; a blocking socket is written here (sendfile) or under the kick
 * timer (splice into a socket). A lone green thread still gets the real
 * call (io_await says so). */

/* sendfile moves at most this per call (the kernel's MAX_RW_COUNT). */
#define SENDFILE_MAX ((size_t)0x7ffff000)
/* What sendfile_copy reads and sends per round: the kernel's own piece
 * (its internal pipe), each a blocking send with its own SO_SNDTIMEO. */
#define SENDFILE_PIECE ((size_t)64 << 10)
#define USE_REAL_CALL (-2)

/*
 * sendfile from a regular file into a blocking stream socket: the file is
 * read here a piece at a time, each piece sent as a blocking write sends
 * (parking while the socket is full). As the kernel's: all of count
 * unless end of file, an error, SO_SNDTIMEO or a signal stops it, then the
 * count so far (-1 if nothing); *off, or else the file position, moves by
 * what was sent. USE_REAL_CALL if the file cannot be read this way (the
 * real call then fails, or works, as it should).
 */
static ssize_t sendfile_copy(struct sched *s, int out, struct fd_entry *oe, int in,
                             struct fd_entry *ie, off_t *off, size_t count)
{
    off_t start = off ? *off : (off_t)syscall(SYS_lseek, in, 0, SEEK_CUR);
    if (start < 0)
        return USE_REAL_CALL;
    if (count > SENDFILE_MAX)
        count = SENDFILE_MAX;
    size_t piece = count < SENDFILE_PIECE ? count : SENDFILE_PIECE;
    char *buf = malloc(piece);
    if (!buf)
        return USE_REAL_CALL;
    size_t done = 0;
    ssize_t failed = 0;
    while (done < count) {
        struct iovec v = { buf, count - done < piece ? count - done : piece };
        ssize_t n = fileio_rw(s, in, ie, false, &v, 1, start + (off_t)done, 0);
        if (n <= 0) {
            if (n < 0 && done == 0)
                failed = USE_REAL_CALL;
            break;
        }
        v.iov_len = (size_t)n;
        struct io_op op = { .attempt = attempt_writev, .fd = out, .sock = true, .iov = &v, .cnt = 1 };
        ssize_t w = io_write(s, &op, oe, true);
        if (w < 0) {
            if (done == 0)
                failed = -1;
            break;
        }
        done += (size_t)w;
        if (w < n)
            break;                 /* an error, SO_SNDTIMEO or a signal ended the send */
    }
    int err = errno;
    free(buf);
    if (failed) {
        errno = err;
        return failed;
    }
    if (off)
        *off = start + (off_t)done;
    else if (done)
        syscall(SYS_lseek, in, start + (off_t)done, SEEK_SET);
    errno = err;
    return (ssize_t)done;
}

ssize_t fdio_sendfile(struct sched *s, int out, int in, off_t *off, size_t count)
{
    int saved = errno;
    struct fd_entry *oe = io_entry(out), *ie;
    if (oe && oe->kind == FD_SOCKET && oe->stream && count > 0 && (!off || *off >= 0) &&
        fileio_is_file(in, &ie) && !fd_is_nonblocking(out, oe)) {
        ssize_t r = sendfile_copy(s, out, oe, in, ie, off, count);
        if (r != USE_REAL_CALL) {
            if (r >= 0)
                errno = saved;
            return r;
        }
    }
    /* Into a pipe (or a file): the kernel waits for room once, then moves
     * what fits, so once there is room the call does not block. */
    if (wait_until_ready(s, out, true) != 0)
        return -1;
    ssize_t r = syscall(SYS_sendfile, out, in, off, count);
    if (r >= 0)
        errno = saved;
    return r;
}

/* One splice, tee or vmsplice, and the fds whose waits it may make. */
struct splice_op {
    long nr;                       /* SYS_splice, SYS_tee or SYS_vmsplice */
    long a[6];
    int flags_at;                  /* which of a[] holds the SPLICE_F_* flags */
    int len_at;                    /* ... and the length (splice) */
    int rd, wr;                    /* the fd it reads, the fd it writes */
    struct fd_entry *re, *we;      /* their entries when they may make it wait */
    bool rd_polled, wr_polled;     /* not pipes: SPLICE_F_NONBLOCK may not reach them */
};

static ssize_t splice_attempt(const struct splice_op *op, bool nowait)
{
    long a[6];
    memcpy(a, op->a, sizeof a);
    if (nowait)
        a[op->flags_at] |= SPLICE_F_NONBLOCK;
    return syscall(op->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* Park until fd is ready as io_await does (0, -1, or 1: make the real call). */
static int splice_await(struct sched *s, int fd, struct fd_entry *e, bool wr, uint64_t *deadline)
{
    if (wr)
        e->wr_ready = false;
    else
        e->rd_ready = false;
    return io_await(s, fd, e, wr, deadline);
}

/*
 * A call whose waits are on pipes: tried with SPLICE_F_NONBLOCK, parking on
 * EAGAIN for whichever end is not ready, until it returns what the blocking
 * call would (the kernel's blocking splice, tee and vmsplice also return
 * once they moved anything). An end that is no pipe (a socket or device to
 * read, a device to write) is waited for before the call: TCP's splice
 * waits for data whatever the flag says.
 */
static ssize_t splice_waiting(struct sched *s, struct splice_op *op)
{
    uint64_t rd_deadline = 0, wr_deadline = 0;
    for (;;) {
        int a = 0;
        if (op->rd_polled && !rs_poll_now(op->rd, POLLIN))
            a = splice_await(s, op->rd, op->re, false, &rd_deadline);
        else if (op->wr_polled && !rs_poll_now(op->wr, POLLOUT))
            a = splice_await(s, op->wr, op->we, true, &wr_deadline);
        else {
            ssize_t r = splice_attempt(op, true);
            if (r >= 0 || errno != EAGAIN)
                return r;
            if (op->re && !rs_poll_now(op->rd, POLLIN))
                a = splice_await(s, op->rd, op->re, false, &rd_deadline);
            else if (op->we && !rs_poll_now(op->wr, POLLOUT))
                a = splice_await(s, op->wr, op->we, true, &wr_deadline);
            else
                a = 1;             /* nothing to wait for that we can see */
        }
        if (a < 0)
            return -1;
        if (a > 0)
            return splice_attempt(op, false);
    }
}

/*
 * splice from a pipe into a blocking socket: the kernel sends what the pipe
 * holds (up to len) with a blocking send, which no flag makes non-blocking.
 * So wait until the socket has room, then call under the kick timer (see
 * accept_kicked): if the socket fills up, the kick ends the call after
 * KICK_NS with what it sent, and the rest waits here for room. As the
 * kernel's, the call goes on while the pipe has data, up to len.
 */
static ssize_t splice_to_socket(struct sched *s, struct splice_op *op, size_t len)
{
    uint64_t rd_deadline = 0, wr_deadline = 0;
    size_t done = 0;
    bool can_kick = kick_timer_ready(s), eof = false;
    while (done < len) {
        int a = 0;
        op->a[op->len_at] = (long)(len - done);
        if (!can_kick) {
            a = 1;
        } else if (!rs_poll_now(op->wr, POLLOUT)) {
            a = splice_await(s, op->wr, op->we, true, &wr_deadline);
        } else {
            /* Repeating: a kick that comes before the call starts (the
             * thread preempted in between) must not leave it unbounded. */
            struct itimerspec arm = { .it_interval = { 0, KICK_NS }, .it_value = { 0, KICK_NS } };
            struct itimerspec disarm = { 0 };
            kicked = 0;
            timer_settime(ks(s)->timer, 0, &arm, NULL);
            ssize_t r = splice_attempt(op, true);
            int err = errno;
            timer_settime(ks(s)->timer, 0, &disarm, NULL);
            if (r > 0) {
                done += (size_t)r;
                continue;
            }
            if (r == 0) {
                eof = true;        /* the pipe is empty and has no writer */
                break;
            }
            errno = err;
            if (err == EINTR && kicked) {
                /* The socket is full, unless the kick came before the call
                 * started (the thread was preempted): then try again. */
                if (rs_poll_now(op->wr, POLLOUT))
                    continue;
                a = splice_await(s, op->wr, op->we, true, &wr_deadline);
            } else if (err == EAGAIN && !done && !rs_poll_now(op->rd, POLLIN)) {
                a = splice_await(s, op->rd, op->re, false, &rd_deadline);  /* the pipe is empty */
            } else {
                break;             /* the pipe ran dry after some, SO_SNDTIMEO, an error */
            }
        }
        if (a < 0)
            break;
        if (a > 0) {               /* the real call, for the rest */
            ssize_t r = splice_attempt(op, false);
            if (r < 0)
                break;
            done += (size_t)r;
            eof = true;
            break;
        }
    }
    return done > 0 || eof ? (ssize_t)done : -1;
}

/* The ends of a splice or tee: a pipe end the program made non-blocking
 * makes the kernel's call non-blocking (6.x; earlier kernels looked at
 * fewer ends), so the real call is exact; other ends that can make it
 * wait are waited on, unless non-blocking. False if the real call must be
 * made. */
static bool splice_ends(struct splice_op *op, int in, struct fd_entry *ie, int out,
                        struct fd_entry *oe)
{
    if (!ie || !oe || (ie->kind != FD_PIPE && oe->kind != FD_PIPE))
        return false;
    if ((ie->kind == FD_PIPE && fd_is_nonblocking(in, ie)) ||
        (oe->kind == FD_PIPE && fd_is_nonblocking(out, oe)))
        return false;
    op->rd = in;
    op->wr = out;
    if (ie->kind != FD_REGULAR && (ie->kind == FD_PIPE || !fd_is_nonblocking(in, ie))) {
        op->re = ie;
        op->rd_polled = ie->kind != FD_PIPE;
    }
    if (oe->kind != FD_REGULAR && (oe->kind == FD_PIPE || !fd_is_nonblocking(out, oe))) {
        op->we = oe;
        op->wr_polled = oe->kind != FD_PIPE && oe->kind != FD_SOCKET;
    }
    return true;
}

ssize_t fdio_splice(struct sched *s, int in, loff_t *inoff, int out, loff_t *outoff, size_t len,
                    unsigned flags)
{
    struct splice_op op = { .nr = SYS_splice,
                            .a = { in, (long)inoff, out, (long)outoff, (long)len, (long)flags },
                            .flags_at = 5, .len_at = 4, .rd = -1, .wr = -1 };
    int saved = errno;
    struct fd_entry *ie = fdtab_get(in), *oe = fdtab_get(out);
    errno = saved;
    if ((flags & SPLICE_F_NONBLOCK) || len == 0 || !splice_ends(&op, in, ie, out, oe))
        return splice_attempt(&op, false);
    if (ie->kind == FD_PIPE && op.we && oe->kind == FD_SOCKET)
        RETURN_PRESERVING_ERRNO(splice_to_socket(s, &op, len));
    RETURN_PRESERVING_ERRNO(splice_waiting(s, &op));
}

ssize_t fdio_tee(struct sched *s, int in, int out, size_t len, unsigned flags)
{
    struct splice_op op = { .nr = SYS_tee, .a = { in, out, (long)len, (long)flags },
                            .flags_at = 3, .len_at = 2, .rd = -1, .wr = -1 };
    int saved = errno;
    struct fd_entry *ie = fdtab_get(in), *oe = fdtab_get(out);
    errno = saved;
    if ((flags & SPLICE_F_NONBLOCK) || len == 0 || !ie || !oe || ie->kind != FD_PIPE ||
        oe->kind != FD_PIPE || !splice_ends(&op, in, ie, out, oe))
        return splice_attempt(&op, false);
    RETURN_PRESERVING_ERRNO(splice_waiting(s, &op));
}

/* vmsplice: the kernel looks at SPLICE_F_NONBLOCK only, not at the pipe's
 * O_NONBLOCK (with which it still blocks: then the real call does). */
ssize_t fdio_vmsplice(struct sched *s, int fd, const struct iovec *iov, size_t cnt, unsigned flags)
{
    struct splice_op op = { .nr = SYS_vmsplice, .a = { fd, (long)iov, (long)cnt, (long)flags },
                            .flags_at = 3, .len_at = 2, .rd = fd, .wr = fd };
    int saved = errno;
    struct fd_entry *e = fdtab_get(fd);
    errno = saved;
    int fl = e && e->kind == FD_PIPE && !(flags & SPLICE_F_NONBLOCK) && !fd_is_nonblocking(fd, e)
                 ? rs_fcntl(fd, F_GETFL, 0) : -1;
    if (fl < 0)
        return splice_attempt(&op, false);
    if ((fl & O_ACCMODE) == O_RDONLY)
        op.re = e;                 /* out of the pipe */
    else
        op.we = e;                 /* into it (the kernel's choice for O_RDWR too) */
    RETURN_PRESERVING_ERRNO(splice_waiting(s, &op));
}

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
