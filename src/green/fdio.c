/* The fd I/O engine: each blocking read/write/recv/send family call is
 * tried without blocking and, on EAGAIN, waits for readiness and tries
 * again until the blocking semantics are met (design: never O_NONBLOCK on
 * the program's descriptions). */
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

/* The call would block: wait for the fd, unless the program wants EAGAIN.
 * Returns 0 (try again), -1 (return -1, errno set) or 1 (make the real
 * blocking call: this fd cannot be waited on here). */
int io_await(struct sched *s, int fd, struct fd_entry *e, bool wr, uint64_t *deadline)
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
        if (a > 0) {
            /* It cannot be waited on: the real call, which may block. */
            sched_blocking_begin(s, -1);
            ssize_t r = op->attempt(op, false, 0);
            sched_blocking_end();
            return r;
        }
    }
}

/* Known empty since the last event, on an fd whose flags we know: wait
 * before calling, which saves the syscall that would say EAGAIN. */
bool known_unready(struct sched *s, const struct fd_entry *e, bool wr)
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

ssize_t io_write(struct sched *s, struct io_op *op, struct fd_entry *e, bool stream)
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

ssize_t attempt_writev(struct io_op *op, bool nowait, int extra)
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

ssize_t attempt_sendto(struct io_op *op, bool nowait, int extra)
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
struct fd_entry *io_entry_checked(struct fd_entry *e)
{
    if (!e || e->kind == FD_REGULAR || (e->nonblock && !e->shared))
        return NULL;
    return e;
}

struct fd_entry *io_entry(int fd)
{
    int saved = errno;
    struct fd_entry *e = fdtab_get(fd);
    errno = saved;
    return io_entry_checked(e);
}


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
