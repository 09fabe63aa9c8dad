/* sendfile, splice, tee, vmsplice: loop like write. */
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
