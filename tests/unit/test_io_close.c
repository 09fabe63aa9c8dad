/*
 * test_io_close.c - waiters on an fd and what wakes them: close() from
 * another coroutine (EBADF), dup2() onto a watched fd, shutdown(), the fd
 * number reused afterwards, and two coroutines (a reader and a writer)
 * waiting on one fd at once.
 *
 * Assertions are made on the main coroutine only; coroutines record.
 * Waits that could hang on a bug are bounded with corun_join_timeout() and
 * then unstuck, so a failure is reported instead of a timeout.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "testutil.h"
#include "io_testutil.h"

TestSuite(io_close, .timeout = 60);

static struct tu_log lg;

static void fill_pipe(int fd)
{
    /* An empty pipe takes exactly its size without blocking. */
    int sz = fcntl(fd, F_GETPIPE_SZ);
    cr_assert_gt(sz, 0);
    char *buf = calloc(1, (size_t)sz);
    cr_assert_eq(write(fd, buf, (size_t)sz), sz);
    free(buf);
}

/* ---- one waiter ------------------------------------------------------------*/

enum wop { W_READ, W_RECV, W_WRITE, W_SEND, W_ACCEPT };

struct waiter {
    int fd;
    enum wop op;
    int tag;
    ssize_t r;
    int err;
    char buf[64];
};

static void *waiter_co(void *arg)
{
    struct waiter *w = arg;
    static char big[4096];
    tu_log_add(&lg, w->tag);
    errno = 0;
    switch (w->op) {
    case W_READ:
        w->r = read(w->fd, w->buf, sizeof w->buf);
        break;
    case W_RECV:
        w->r = recv(w->fd, w->buf, sizeof w->buf, 0);
        break;
    case W_WRITE:
        w->r = write(w->fd, big, sizeof big);
        break;
    case W_SEND:
        w->r = send(w->fd, big, sizeof big, MSG_NOSIGNAL);
        break;
    case W_ACCEPT:
        w->r = accept(w->fd, NULL, NULL);
        break;
    }
    w->err = errno;
    tu_log_add(&lg, w->tag + 1);
    return NULL;
}

struct closer {
    int fd;
    int how;   /* -1: close; else shutdown(how) */
    int tag;
    int r;
};

static void *closer_co(void *arg)
{
    struct closer *c = arg;
    corun_sleep(CORUN_MSEC(20));   /* the waiters are parked by now */
    tu_log_add(&lg, c->tag);
    c->r = c->how < 0 ? close(c->fd) : shutdown(c->fd, c->how);
    tu_log_add(&lg, c->tag + 1);
    return NULL;
}

/* A coroutine parked on fd; another closes fd: EBADF. */
static void close_wakes(int fd, enum wop op)
{
    struct waiter w = { .fd = fd, .op = op, .tag = 10 };
    struct closer c = { .fd = fd, .how = -1, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(closer_co, &c);
    join(b);
    cr_assert_eq(c.r, 0);
    bool woke = join_within(a, CORUN_SEC(2));
    cr_assert(woke, "op %d: the waiter was not woken by close()", op);
    TU_EXPECT(&lg, 10, 20, 21, 11);
    cr_assert_eq(w.r, -1, "op %d returned %zd after close, expected -1/EBADF", op, w.r);
    cr_assert_eq(w.err, EBADF, "op %d: %s after close, expected EBADF", op, strerror(w.err));
}

Test(io_close, close_wakes_reader_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close_wakes(sv[0], W_READ);
    close(sv[1]);
}

Test(io_close, close_wakes_recv_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    close_wakes(t[0], W_RECV);
    close(t[1]);
}

Test(io_close, close_wakes_reader_pipe)
{
    int p[2];
    corun_current();
    cr_assert_eq(pipe(p), 0);
    close_wakes(p[0], W_READ);
    close(p[1]);
}

Test(io_close, close_wakes_writer_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fill(sv[0]);
    close_wakes(sv[0], W_SEND);
    close(sv[1]);
}

Test(io_close, close_wakes_writer_pipe)
{
    int p[2];
    corun_current();
    cr_assert_eq(pipe(p), 0);
    fill_pipe(p[1]);
    close_wakes(p[1], W_WRITE);
    close(p[0]);
}

Test(io_close, close_wakes_accept)
{
    struct sockaddr_in a;
    corun_current();
    int l = tu_tcp_listener(&a, 0, 8);
    close_wakes(l, W_ACCEPT);
}

/* Reader and writer parked on one fd; close wakes both. */
Test(io_close, close_wakes_reader_and_writer)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fill(sv[0]);
    struct waiter r = { .fd = sv[0], .op = W_READ, .tag = 10 };
    struct waiter w = { .fd = sv[0], .op = W_WRITE, .tag = 30 };
    struct closer c = { .fd = sv[0], .how = -1, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &r);
    corun_t *b = go(waiter_co, &w);
    corun_t *d = go(closer_co, &c);
    join(d);
    cr_assert(join_within(a, CORUN_SEC(2)), "the reader was not woken by close()");
    cr_assert(join_within(b, CORUN_SEC(2)), "the writer was not woken by close()");
    cr_assert_eq(r.r, -1);
    cr_assert_eq(r.err, EBADF, "reader: %s", strerror(r.err));
    cr_assert_eq(w.r, -1);
    cr_assert_eq(w.err, EBADF, "writer: %s", strerror(w.err));
    cr_assert_eq(lg.v[0], 10);
    cr_assert_eq(lg.v[1], 30);
    cr_assert_eq(lg.v[2], 20);
    close(sv[1]);
}

/* The closed number reused: by a pipe, then by a socket. The new file works
 * normally, parked waits on it included, and the old waiter saw EBADF. */
static void *delayed_write(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(20));
    return IP(write(fd, "fresh", 5));
}

static void check_reused(int rfd, int wfd)
{
    struct waiter r = { .fd = rfd, .op = W_READ, .tag = 50 };
    corun_t *a = go(waiter_co, &r);
    corun_t *b = go(delayed_write, &wfd);
    cr_assert_eq(PI(join(b)), 5);
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        close(wfd);   /* unstick it */
        join(a);
    }
    cr_assert(woke, "a read parked on the reused fd %d was not woken by data", rfd);
    cr_assert_eq(r.r, 5, "read on the reused fd: %zd (%s)", r.r, strerror(r.err));
    cr_assert_eq(memcmp(r.buf, "fresh", 5), 0);
    assert_blocking(rfd);
}

Test(io_close, fd_number_reused_after_close)
{
    int sv[2];
    corun_current();
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int old = sv[0];
    close_wakes(old, W_READ);
    /* The lowest free number is the one just closed. */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(p[0], old, "pipe got %d, expected the reused number %d", p[0], old);
    check_reused(p[0], p[1]);
    /* Events of the old socket's peer must not disturb the new file. */
    cr_assert_eq(write(sv[1], "stale", 5), -1);   /* peer gone: EPIPE */
    close_wakes(p[0], W_READ);
    close(p[1]);
    int s2[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s2), 0);
    cr_assert(s2[0] == old || s2[1] == old, "socketpair got %d,%d, expected %d", s2[0], s2[1],
              old);
    int other = s2[0] == old ? s2[1] : s2[0];
    check_reused(old, other);
    close(s2[0]);
    close(s2[1]);
    close(sv[1]);
}

/* The old file stays open through a dup: its registration must not follow
 * the number. Data for the old file is read through the dup; the new file
 * under the old number sees only its own. */
Test(io_close, fd_reused_while_old_file_still_open)
{
    int sv[2];
    corun_current();
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int old = sv[0];
    int keep = dup(old);
    cr_assert_geq(keep, 0);
    close_wakes(old, W_READ);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(p[0], old);
    struct waiter r = { .fd = old, .op = W_READ, .tag = 60 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &r);
    corun_sleep(CORUN_MSEC(10));
    /* Make the old file readable: the reader on the new pipe must stay
     * parked (or at least not return the old file's data). */
    cr_assert_eq(write(sv[1], "old!", 4), 4);
    corun_sleep(CORUN_MSEC(20));
    cr_assert_eq(lg.n, 1, "the reader of the new pipe returned on the old file's event "
                 "(r=%zd %s)", r.r, strerror(r.err));
    char buf[8];
    cr_assert_eq(read(keep, buf, sizeof buf), 4);
    cr_assert_eq(memcmp(buf, "old!", 4), 0);
    cr_assert_eq(write(p[1], "new", 3), 3);
    cr_assert(join_within(a, CORUN_SEC(2)), "the reader of the new pipe was not woken");
    cr_assert_eq(r.r, 3);
    cr_assert_eq(memcmp(r.buf, "new", 3), 0);
    close(keep);
    close(p[0]);
    close(p[1]);
    close(sv[1]);
}

/* dup2() onto a watched fd closes it: its waiters get EBADF, and the number
 * then refers to the new file. */
Test(io_close, dup2_onto_watched_fd)
{
    int sv[2], p[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = sv[0], .op = W_READ, .tag = 10 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &w);
    corun_sleep(CORUN_MSEC(10));
    cr_assert_eq(dup2(p[0], sv[0]), sv[0]);
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        cr_assert_eq(write(p[1], "unstick", 7), 7);
        join(a);
    }
    cr_assert(woke, "the reader of the replaced fd was not woken by dup2()");
    cr_assert_eq(w.r, -1, "read returned %zd, expected -1/EBADF", w.r);
    cr_assert_eq(w.err, EBADF, "read: %s, expected EBADF", strerror(w.err));
    /* sv[0] is now the pipe's read end. */
    check_reused(sv[0], p[1]);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

Test(io_close, dup3_onto_watched_fd)
{
    int sv[2], p[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = sv[0], .op = W_READ, .tag = 10 };
    corun_t *a = go(waiter_co, &w);
    corun_sleep(CORUN_MSEC(10));
    cr_assert_eq(dup3(p[0], sv[0], O_CLOEXEC), sv[0]);
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        cr_assert_eq(write(p[1], "unstick", 7), 7);
        join(a);
    }
    cr_assert(woke, "the reader of the replaced fd was not woken by dup3()");
    cr_assert_eq(w.err, EBADF, "read: %zd %s, expected EBADF", w.r, strerror(w.err));
    check_reused(sv[0], p[1]);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

/*
 * The number closed behind the hooks' back (fclose() closes inside glibc,
 * which no hook sees) and reused by open(): the new file must be read as
 * what it is.
 */
Test(io_close, fd_reused_after_fclose_by_regular_file)
{
    int sv[2];
    corun_current();
    char path[] = "/tmp/corun-io-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert_geq(tmp, 0);
    cr_assert_eq(write(tmp, "regular", 7), 7);
    close(tmp);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* Use sv[0] once through a parked read, so corun knows it well. */
    struct waiter w = { .fd = sv[0], .op = W_READ, .tag = 10 };
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(delayed_write, &sv[1]);
    join(b);
    join(a);
    cr_assert_eq(w.r, 5);
    int old = sv[0];
    FILE *f = fdopen(sv[0], "r+");
    cr_assert_not_null(f);
    fclose(f);   /* closes sv[0] inside glibc: no hook sees it */
    int fd = open(path, O_RDONLY);
    unlink(path);
    cr_assert_eq(fd, old, "open got %d, expected the reused number %d", fd, old);
    struct waiter r = { .fd = fd, .op = W_READ, .tag = 10 };
    a = go(waiter_co, &r);
    bool done = join_within(a, CORUN_SEC(2));
    if (!done) {
        close(fd);   /* wakes it with EBADF */
        join(a);
    }
    cr_assert(done, "read of a regular file under a number closed unseen never returned");
    cr_assert_eq(r.r, 7, "read of the regular file under a reused number: %zd (%s)", r.r,
                 strerror(r.err));
    cr_assert_eq(memcmp(r.buf, "regular", 7), 0);
    close(fd);
    close(sv[1]);
}

Test(io_close, fd_reused_after_fclose_by_fifo)
{
    int p[2];
    corun_current();
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = p[0], .op = W_READ, .tag = 10 };
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(delayed_write, &p[1]);
    join(b);
    join(a);
    cr_assert_eq(w.r, 5);
    int old = p[0];
    FILE *f = fdopen(p[0], "r");
    cr_assert_not_null(f);
    fclose(f);   /* closed unseen */
    char path[] = "/tmp/corun-fifo-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert_geq(tmp, 0);
    unlink(path);
    syscall(SYS_close, tmp);   /* raw: no hook sees this one either */
    cr_assert_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDWR);   /* O_RDWR: does not wait for a writer */
    cr_assert_eq(rd, old, "open got %d, expected the reused number %d", rd, old);
    int wr = open(path, O_WRONLY);
    unlink(path);
    cr_assert_geq(wr, 0);
    struct waiter w2 = { .fd = rd, .op = W_READ, .tag = 10 };
    a = go(waiter_co, &w2);
    b = go(delayed_write, &wr);
    cr_assert_eq(PI(join(b)), 5);
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        close(rd);   /* wakes it with EBADF */
        join(a);
    }
    cr_assert(woke, "a read parked on a FIFO under a number closed unseen was never woken "
              "(stale registration)");
    cr_assert_eq(w2.r, 5, "read: %zd (%s)", w2.r, strerror(w2.err));
    close(rd);
    close(wr);
    close(p[1]);
}

/* ---- shutdown wakes waiters -----------------------------------------------*/

static void shutdown_wakes_reader(int fd, int how)
{
    struct waiter w = { .fd = fd, .op = W_READ, .tag = 10 };
    struct closer c = { .fd = fd, .how = how, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(closer_co, &c);
    join(b);
    cr_assert_eq(c.r, 0, "shutdown: %s", strerror(errno));
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        close(fd);
        join(a);
    }
    cr_assert(woke, "shutdown(%d) did not wake the reader", how);
    TU_EXPECT(&lg, 10, 20, 21, 11);
    cr_assert_eq(w.r, 0, "read after shutdown(%d) returned %zd (%s), expected 0", how, w.r,
                 strerror(w.err));
    assert_blocking(fd);
}

Test(io_close, shutdown_rd_wakes_reader_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    shutdown_wakes_reader(sv[0], SHUT_RD);
    close(sv[0]);
    close(sv[1]);
}

Test(io_close, shutdown_rdwr_wakes_reader_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    shutdown_wakes_reader(sv[0], SHUT_RDWR);
    close(sv[0]);
    close(sv[1]);
}

Test(io_close, shutdown_rd_wakes_reader_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    shutdown_wakes_reader(t[0], SHUT_RD);
    close(t[0]);
    close(t[1]);
}

Test(io_close, shutdown_rdwr_wakes_reader_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    shutdown_wakes_reader(t[0], SHUT_RDWR);
    close(t[0]);
    close(t[1]);
}

/* The peer's shutdown(SHUT_WR) is EOF for a parked reader. */
Test(io_close, peer_shutdown_wr_is_eof)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    struct waiter w = { .fd = t[0], .op = W_READ, .tag = 10 };
    struct closer c = { .fd = t[1], .how = SHUT_WR, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(closer_co, &c);
    join(b);
    cr_assert(join_within(a, CORUN_SEC(2)));
    cr_assert_eq(w.r, 0);
    TU_EXPECT(&lg, 10, 20, 21, 11);
    close(t[0]);
    close(t[1]);
}

/* shutdown(SHUT_WR) of the writer's own socket while it is parked on a full
 * buffer: natively the write fails with EPIPE (Linux raises no SIGPIPE for
 * this case on AF_UNIX; TCP neither). */
static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static void shutdown_wr_wakes_writer(int fd)
{
    struct sigaction sa = { .sa_handler = on_sigpipe, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sigpipes = 0;
    fill(fd);
    struct waiter w = { .fd = fd, .op = W_WRITE, .tag = 10 };
    struct closer c = { .fd = fd, .how = SHUT_WR, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &w);
    corun_t *b = go(closer_co, &c);
    join(b);
    cr_assert_eq(c.r, 0);
    bool woke = join_within(a, CORUN_SEC(2));
    if (!woke) {
        close(fd);
        join(a);
    }
    cr_assert(woke, "shutdown(SHUT_WR) did not wake the parked writer (natively: EPIPE)");
    cr_assert_eq(w.r, -1, "write returned %zd, expected -1/EPIPE", w.r);
    cr_assert_eq(w.err, EPIPE, "write: %s, expected EPIPE", strerror(w.err));
}

Test(io_close, shutdown_wr_wakes_writer_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    shutdown_wr_wakes_writer(sv[0]);
    close(sv[0]);
    close(sv[1]);
}

Test(io_close, shutdown_wr_wakes_writer_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    shutdown_wr_wakes_writer(t[0]);
    close(t[0]);
    close(t[1]);
}

/* The signal count of the above, separately: natively no SIGPIPE. */
Test(io_close, shutdown_wr_parked_writer_sigpipe_as_native)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    shutdown_wr_wakes_writer(sv[0]);
    cr_assert_eq(sigpipes, 0, "%d SIGPIPE delivered; a natively blocked write woken by "
                 "shutdown(SHUT_WR) fails with EPIPE and no SIGPIPE", (int)sigpipes);
    close(sv[0]);
    close(sv[1]);
}

/* ---- two coroutines on one fd ---------------------------------------------*/

struct drainer {
    int fd;
    size_t n;
    int tag;
    const char *msg;   /* sent after draining */
};

static void *drain_co(void *arg)
{
    struct drainer *d = arg;
    static char buf[65536];
    corun_sleep(CORUN_MSEC(20));
    tu_log_add(&lg, d->tag);
    size_t got = 0;
    while (got < d->n) {
        ssize_t r = read(d->fd, buf, d->n - got < sizeof buf ? d->n - got : sizeof buf);
        if (r <= 0)
            return IP(1);
        got += (size_t)r;
    }
    tu_log_add(&lg, d->tag + 1);
    corun_sleep(CORUN_MSEC(20));
    tu_log_add(&lg, d->tag + 2);
    if (write(d->fd, d->msg, strlen(d->msg)) != (ssize_t)strlen(d->msg))
        return IP(2);
    return NULL;
}

/* sv[0]: its send buffer full and nothing to read. A reader and a writer
 * park on it; the peer drains (the writer completes), then sends (the
 * reader completes). */
static void reader_and_writer2(int fd, int wfd, int peer)
{
    size_t filled = fill(fd);
    cr_assert_gt(filled, 0);
    struct waiter r = { .fd = fd, .op = W_READ, .tag = 10 };
    struct waiter w = { .fd = wfd, .op = W_WRITE, .tag = 30 };   /* 4096 bytes */
    struct drainer d = { .fd = peer, .n = filled + 4096, .tag = 50, .msg = "wake" };
    lg.n = 0;
    corun_t *a = go(waiter_co, &r);
    corun_t *b = go(waiter_co, &w);
    corun_t *c = go(drain_co, &d);
    bool wd = join_within(b, CORUN_SEC(3));
    bool rd = join_within(a, CORUN_SEC(3));
    if (!wd || !rd)
        close(fd);   /* unstick */
    uintptr_t dr = PI(join(c));
    if (!wd)
        join(b);
    if (!rd)
        join(a);
    cr_assert(wd, "the writer was never woken");
    cr_assert(rd, "the reader was never woken");
    cr_assert_eq(dr, 0, "drainer failed at step %d", (int)dr);
    cr_assert_eq(w.r, 4096, "write: %zd (%s)", w.r, strerror(w.err));
    cr_assert_eq(r.r, 4, "read: %zd (%s)", r.r, strerror(r.err));
    cr_assert_eq(memcmp(r.buf, "wake", 4), 0);
    /* Both parked first; the writer finished before the reader had data;
     * the reader finished after the message. */
    cr_assert_eq(lg.v[0], 10);
    cr_assert_eq(lg.v[1], 30);
    int iw = tu_log_index(&lg, 31), ir = tu_log_index(&lg, 11);
    cr_assert_gt(iw, tu_log_index(&lg, 50));
    cr_assert_lt(iw, tu_log_index(&lg, 52), "writer finished late");
    cr_assert_gt(ir, tu_log_index(&lg, 52));
    assert_blocking(fd);
}

static void reader_and_writer(int fd, int peer)
{
    reader_and_writer2(fd, fd, peer);
}

Test(io_close, reader_and_writer_on_one_socketpair_fd)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    reader_and_writer(sv[0], sv[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(io_close, reader_and_writer_on_one_tcp_fd)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    reader_and_writer(t[0], t[1]);
    close(t[0]);
    close(t[1]);
}

/* The same socket under two numbers: the reader on one, the writer on a
 * dup of it. */
Test(io_close, reader_and_writer_on_fd_and_its_dup)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int d = dup(sv[0]);
    cr_assert_geq(d, 0);
    reader_and_writer2(sv[0], d, sv[1]);
    assert_blocking(d);
    close(d);
    close(sv[0]);
    close(sv[1]);
}

/* Closing a dup does not disturb waiters on the original number: the file
 * stays open. */
Test(io_close, closing_a_dup_leaves_waiters_alone)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int d = dup(sv[0]);
    cr_assert_geq(d, 0);
    struct waiter r = { .fd = sv[0], .op = W_READ, .tag = 10 };
    struct closer c = { .fd = d, .how = -1, .tag = 20 };
    lg.n = 0;
    corun_t *a = go(waiter_co, &r);
    corun_t *b = go(closer_co, &c);
    join(b);
    cr_assert_eq(c.r, 0);
    corun_sleep(CORUN_MSEC(20));
    cr_assert_eq(lg.n, 3, "the reader returned (%zd, %s) when a dup of its fd was closed",
                 r.r, strerror(r.err));
    cr_assert_eq(write(sv[1], "still", 5), 5);
    cr_assert(join_within(a, CORUN_SEC(2)), "the reader was not woken by data");
    cr_assert_eq(r.r, 5, "read: %zd (%s)", r.r, strerror(r.err));
    cr_assert_eq(memcmp(r.buf, "still", 5), 0);
    close(sv[0]);
    close(sv[1]);
}

/* The other order: the reader is served while the writer stays parked,
 * then the writer. */
static void *send_then_drain(void *arg)
{
    struct drainer *d = arg;
    static char buf[65536];
    corun_sleep(CORUN_MSEC(20));
    tu_log_add(&lg, d->tag);
    if (write(d->fd, d->msg, strlen(d->msg)) != (ssize_t)strlen(d->msg))
        return IP(2);
    corun_sleep(CORUN_MSEC(20));
    tu_log_add(&lg, d->tag + 1);
    size_t got = 0;
    while (got < d->n) {
        ssize_t r = read(d->fd, buf, d->n - got < sizeof buf ? d->n - got : sizeof buf);
        if (r <= 0)
            return IP(1);
        got += (size_t)r;
    }
    tu_log_add(&lg, d->tag + 2);
    return NULL;
}

Test(io_close, reader_served_while_writer_stays_parked)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    size_t filled = fill(sv[0]);
    struct waiter r = { .fd = sv[0], .op = W_READ, .tag = 10 };
    struct waiter w = { .fd = sv[0], .op = W_WRITE, .tag = 30 };
    struct drainer d = { .fd = sv[1], .n = filled + 4096, .tag = 50, .msg = "first" };
    lg.n = 0;
    corun_t *a = go(waiter_co, &r);
    corun_t *b = go(waiter_co, &w);
    corun_t *c = go(send_then_drain, &d);
    bool rd = join_within(a, CORUN_SEC(3));
    bool wd = join_within(b, CORUN_SEC(3));
    if (!wd || !rd)
        close(sv[0]);
    uintptr_t dr = PI(join(c));
    if (!wd)
        join(b);
    if (!rd)
        join(a);
    cr_assert(rd, "the reader was never woken");
    cr_assert(wd, "the writer was never woken");
    cr_assert_eq(dr, 0);
    cr_assert_eq(r.r, 5);
    cr_assert_eq(memcmp(r.buf, "first", 5), 0);
    cr_assert_eq(w.r, 4096);
    int ir = tu_log_index(&lg, 11), iw = tu_log_index(&lg, 31);
    cr_assert_lt(ir, tu_log_index(&lg, 51), "the reader was not served while the writer waited");
    cr_assert_gt(iw, tu_log_index(&lg, 51));
    close(sv[0]);
    close(sv[1]);
}

/* Two readers on one fd: each message wakes one of them; neither is lost. */
static void *two_messages(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(20));
    if (write(fd, "A", 1) != 1)
        return IP(1);
    corun_sleep(CORUN_MSEC(20));
    if (write(fd, "B", 1) != 1)
        return IP(2);
    return NULL;
}

Test(io_close, two_readers_on_one_fd)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct waiter r1 = { .fd = sv[0], .op = W_READ, .tag = 10 };
    struct waiter r2 = { .fd = sv[0], .op = W_RECV, .tag = 20 };
    corun_t *a = go(waiter_co, &r1);
    corun_t *b = go(waiter_co, &r2);
    corun_t *c = go(two_messages, &sv[1]);
    cr_assert_eq(PI(join(c)), 0);
    bool ok1 = join_within(a, CORUN_SEC(2)), ok2 = join_within(b, CORUN_SEC(2));
    if (!ok1 || !ok2) {
        close(sv[0]);
        if (!ok1)
            join(a);
        if (!ok2)
            join(b);
    }
    cr_assert(ok1 && ok2, "a second reader on one fd was never woken");
    cr_assert_eq(r1.r, 1);
    cr_assert_eq(r2.r, 1);
    cr_assert(r1.buf[0] != r2.buf[0], "both readers got '%c'", r1.buf[0]);
    cr_assert(strchr("AB", r1.buf[0]) && strchr("AB", r2.buf[0]));
    close(sv[0]);
    close(sv[1]);
}

/* Many readers on one pipe, one byte each. */
static void *one_byte_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return IP(read(fd, &c, 1) == 1 ? (unsigned char)c : 1000);
}

Test(io_close, many_readers_on_one_pipe)
{
    enum { N = 50 };
    int p[2];
    corun_current();
    cr_assert_eq(pipe(p), 0);
    corun_t *co[N];
    for (int i = 0; i < N; i++)
        co[i] = go(one_byte_reader, &p[0]);
    corun_sleep(CORUN_MSEC(10));
    for (int i = 0; i < N; i++) {
        char c = (char)i;
        cr_assert_eq(write(p[1], &c, 1), 1);
        if (i % 7 == 0)
            corun_sleep(CORUN_MSEC(1));
    }
    int seen[N] = { 0 };
    for (int i = 0; i < N; i++) {
        void *ret = NULL;
        bool ok = join_within_ret(co[i], CORUN_SEC(2), &ret);
        cr_assert(ok, "reader %d never woken", i);
        cr_assert_lt(PI(ret), (uintptr_t)N, "reader %d: read failed", i);
        seen[PI(ret)]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "byte %d read %d times", i, seen[i]);
    close(p[0]);
    close(p[1]);
}
