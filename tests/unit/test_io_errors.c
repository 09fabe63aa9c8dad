/*
 * test_io_errors.c - errors and timeouts of blocking I/O under the hooks:
 * EPIPE with SIGPIPE exactly as natively (MSG_NOSIGNAL honoured),
 * ECONNREFUSED and ECONNRESET as the kernel reports them, and
 * SO_RCVTIMEO / SO_SNDTIMEO expiry (EAGAIN, EINPROGRESS for connect) while
 * other coroutines keep running.
 *
 * Assertions are made on the main coroutine only; coroutines record.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "testutil.h"
#include "io_testutil.h"

TestSuite(io_errors, .timeout = 60);

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static void count_sigpipe(void)
{
    struct sigaction sa = { .sa_handler = on_sigpipe };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    cr_assert_eq(sigaction(SIGPIPE, &sa, NULL), 0);
    sigpipes = 0;
}

/* ---- EPIPE and SIGPIPE ------------------------------------------------------*/

enum op { OP_WRITE, OP_WRITEV, OP_SEND, OP_SENDTO, OP_SENDMSG };

struct res {
    ssize_t r;
    int err;
    int sig;   /* SIGPIPEs delivered during the call */
};

static struct res do_op(int fd, enum op op, const void *buf, size_t n, int flags)
{
    struct res x;
    int before = sigpipes;
    errno = 0;
    switch (op) {
    case OP_WRITE:
        x.r = write(fd, buf, n);
        break;
    case OP_WRITEV: {
        struct iovec v[2] = { { (void *)buf, n / 2 }, { (char *)buf + n / 2, n - n / 2 } };
        x.r = writev(fd, v, 2);
        break;
    }
    case OP_SEND:
        x.r = send(fd, buf, n, flags);
        break;
    case OP_SENDTO:
        x.r = sendto(fd, buf, n, flags, NULL, 0);
        break;
    default: {
        struct iovec v = { (void *)buf, n };
        struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
        x.r = sendmsg(fd, &m, flags);
        break;
    }
    }
    x.err = errno;
    x.sig = sigpipes - before;
    return x;
}

struct epipe_case {
    int fd;
    enum op op;
    int flags;
    struct res res;
};

static void *epipe_co(void *arg)
{
    struct epipe_case *c = arg;
    c->res = do_op(c->fd, c->op, "abcdef", 6, c->flags);
    return NULL;
}

static void expect_epipe(int fd, enum op op, int flags, int want_sig)
{
    struct epipe_case c = { .fd = fd, .op = op, .flags = flags };
    join(go(epipe_co, &c));
    cr_assert_eq(c.res.r, -1, "op %d flags 0x%x: returned %zd, expected -1/EPIPE", op, flags,
                 c.res.r);
    cr_assert_eq(c.res.err, EPIPE, "op %d flags 0x%x: errno %s, expected EPIPE", op, flags,
                 strerror(c.res.err));
    cr_assert_eq(c.res.sig, want_sig, "op %d flags 0x%x: %d SIGPIPE delivered, expected %d", op,
                 flags, c.res.sig, want_sig);
}

static void epipe_all_ops(int fd, int is_socket)
{
    expect_epipe(fd, OP_WRITE, 0, 1);
    expect_epipe(fd, OP_WRITEV, 0, 1);
    if (!is_socket)
        return;
    expect_epipe(fd, OP_SEND, 0, 1);
    expect_epipe(fd, OP_SEND, MSG_NOSIGNAL, 0);
    expect_epipe(fd, OP_SENDTO, 0, 1);
    expect_epipe(fd, OP_SENDTO, MSG_NOSIGNAL, 0);
    expect_epipe(fd, OP_SENDMSG, 0, 1);
    expect_epipe(fd, OP_SENDMSG, MSG_NOSIGNAL, 0);
}

Test(io_errors, epipe_socketpair_peer_closed)
{
    int sv[2];
    corun_current();
    count_sigpipe();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    epipe_all_ops(sv[0], 1);
    assert_blocking(sv[0]);
    close(sv[0]);
}

Test(io_errors, epipe_pipe_reader_closed)
{
    int p[2];
    corun_current();
    count_sigpipe();
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    epipe_all_ops(p[1], 0);
    close(p[1]);
}

Test(io_errors, epipe_tcp_after_shutdown_wr)
{
    int t[2];
    corun_current();
    count_sigpipe();
    tu_tcp_pair(t);
    cr_assert_eq(shutdown(t[0], SHUT_WR), 0);
    epipe_all_ops(t[0], 1);
    close(t[0]);
    close(t[1]);
}

Test(io_errors, sigpipe_ignored_gives_plain_epipe)
{
    int sv[2];
    corun_current();
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    struct epipe_case c = { .fd = sv[0], .op = OP_WRITE };
    join(go(epipe_co, &c));
    cr_assert_eq(c.res.r, -1);
    cr_assert_eq(c.res.err, EPIPE);
    close(sv[0]);
}

/* With SIGPIPE at its default action the process dies of it, as natively. */
static void die_of_sigpipe(void *arg)
{
    (void)arg;
    int sv[2];
    signal(SIGPIPE, SIG_DFL);
    corun_current();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        _exit(3);
    close(sv[1]);
    struct epipe_case c = { .fd = sv[0], .op = OP_WRITE };
    corun_t *co;
    if (corun_spawn(&co, NULL, epipe_co, &c) != 0 || corun_join(co, NULL) != 0)
        _exit(4);
    _exit(5);   /* not reached natively */
}

Test(io_errors, default_sigpipe_kills)
{
    struct tu_child c;
    char st[128];
    tu_fork_run(die_of_sigpipe, NULL, &c);
    cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGPIPE,
              "child %s, expected death by SIGPIPE; stderr: %s",
              tu_status_str(c.status, st, sizeof st), c.err);
}

/* A writer blocked in a large write when the reader closes: the write
 * reports what it sent. Natively (Linux): a socket returns the count
 * without SIGPIPE and the next write fails with EPIPE and SIGPIPE; a pipe
 * raises SIGPIPE at once and returns the count. */
#define BIG (16u << 20)

struct blocked_writer {
    int fd;
    const char *buf;
    struct res first, second;
};

static void *blocked_write_co(void *arg)
{
    struct blocked_writer *w = arg;
    w->first = do_op(w->fd, OP_WRITE, w->buf, BIG, 0);
    w->second = do_op(w->fd, OP_WRITE, w->buf, 10, 0);
    return NULL;
}

static void *read_some_then_close(void *arg)
{
    int fd = *(int *)arg;
    static char buf[65536];
    corun_sleep(CORUN_MSEC(30));    /* the writer is parked by now */
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf, sizeof buf - got);
        if (n <= 0)
            return IP(1);
        got += (size_t)n;
    }
    corun_sleep(CORUN_MSEC(30));    /* the writer refilled and parked again */
    close(fd);
    return NULL;
}

static void blocked_write_peer_closes(int rd, int wr, int is_socket)
{
    char *buf = calloc(1, BIG);
    cr_assert_not_null(buf);
    struct blocked_writer w = { .fd = wr, .buf = buf };
    corun_t *a = go(blocked_write_co, &w);
    corun_t *b = go(read_some_then_close, &rd);
    join(a);
    cr_assert_eq(PI(join(b)), 0);
    cr_assert_gt(w.first.r, 0, "first write: %zd (%s), expected a partial count", w.first.r,
                 strerror(w.first.err));
    cr_assert_lt(w.first.r, (ssize_t)BIG);
    if (is_socket) {
        cr_assert_eq(w.first.sig, 0, "SIGPIPE with a partial count (natively: none)");
        cr_assert_eq(w.second.r, -1);
        cr_assert_eq(w.second.err, EPIPE, "second write: %s", strerror(w.second.err));
        cr_assert_eq(w.second.sig, 1, "second write: %d SIGPIPE, expected 1", w.second.sig);
    } else {
        cr_assert_eq(w.first.sig, 1, "first write: %d SIGPIPE, expected 1 (pipes signal "
                     "even with a partial count)", w.first.sig);
        cr_assert_eq(w.second.r, -1);
        cr_assert_eq(w.second.err, EPIPE);
        cr_assert_eq(w.second.sig, 1);
    }
    assert_blocking(wr);
    close(wr);
    free(buf);
}

Test(io_errors, blocked_write_socketpair_peer_closes)
{
    int sv[2];
    corun_current();
    count_sigpipe();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    blocked_write_peer_closes(sv[1], sv[0], 1);
}

Test(io_errors, blocked_write_pipe_reader_closes)
{
    int p[2];
    corun_current();
    count_sigpipe();
    cr_assert_eq(pipe(p), 0);
    blocked_write_peer_closes(p[0], p[1], 0);
}

/* ---- ECONNREFUSED, ECONNRESET -------------------------------------------*/

struct conn {
    struct sockaddr_in addr;
    int fd;
    int r;
    int err;
};

static void *connect_co(void *arg)
{
    struct conn *c = arg;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    c->r = connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr);
    c->err = errno;
    return NULL;
}

Test(io_errors, connect_refused)
{
    corun_current();
    struct conn c;
    int l = tu_tcp_listener(&c.addr, 0, 1);
    close(l);   /* nothing listens on that port now */
    join(go(connect_co, &c));
    cr_assert_eq(c.r, -1, "connect to a closed port succeeded");
    cr_assert_eq(c.err, ECONNREFUSED, "connect: %s, expected ECONNREFUSED", strerror(c.err));
    assert_blocking(c.fd);
    /* A second attempt on the same socket reports the same. */
    join(go(connect_co, &c));
    cr_assert_eq(c.err, ECONNREFUSED, "connect: %s", strerror(c.err));
    close(c.fd);
}

Test(io_errors, connect_refused_on_main_coroutine)
{
    corun_current();
    struct conn c;
    int l = tu_tcp_listener(&c.addr, 0, 1);
    close(l);
    connect_co(&c);
    cr_assert_eq(c.r, -1);
    cr_assert_eq(c.err, ECONNREFUSED, "connect: %s, expected ECONNREFUSED", strerror(c.err));
    assert_blocking(c.fd);
    close(c.fd);
}

Test(io_errors, connect_succeeds_and_leaves_flags)
{
    corun_current();
    struct conn c;
    int l = tu_tcp_listener(&c.addr, 0, 4);
    join(go(connect_co, &c));
    cr_assert_eq(c.r, 0, "connect: %s", strerror(c.err));
    cr_assert_eq(c.err, 0, "a successful connect changed errno to %s", strerror(c.err));
    assert_blocking(c.fd);
    assert_blocking(l);
    int s = accept(l, NULL, NULL);
    cr_assert_geq(s, 0);
    assert_blocking(s);
    close(s);
    close(c.fd);
    close(l);
}

struct reset_reader {
    int fd;
    ssize_t r1, r2;
    int e1, e2;
    struct res w;
};

static void *reset_reader_co(void *arg)
{
    struct reset_reader *x = arg;
    char buf[16];
    errno = 0;
    x->r1 = read(x->fd, buf, sizeof buf);
    x->e1 = errno;
    errno = 0;
    x->r2 = read(x->fd, buf, sizeof buf);
    x->e2 = errno;
    x->w = do_op(x->fd, OP_WRITE, "x", 1, 0);
    return NULL;
}

static void *linger_close_co(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(20));
    struct linger lin = { .l_onoff = 1, .l_linger = 0 };
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin) != 0)
        return IP(1);
    close(fd);   /* sends RST */
    return NULL;
}

static void check_reset(struct reset_reader *x)
{
    cr_assert_eq(x->r1, -1, "read after RST returned %zd, expected -1/ECONNRESET", x->r1);
    cr_assert_eq(x->e1, ECONNRESET, "read after RST: %s, expected ECONNRESET", strerror(x->e1));
    /* The error is reported once; then the connection reads as closed. */
    cr_assert_eq(x->r2, 0, "second read returned %zd (%s), expected 0", x->r2, strerror(x->e2));
    cr_assert_eq(x->w.r, -1);
    cr_assert_eq(x->w.err, EPIPE, "write after reset: %s", strerror(x->w.err));
    cr_assert_eq(x->w.sig, 1);
}

Test(io_errors, reset_wakes_parked_reader)
{
    int t[2];
    corun_current();
    count_sigpipe();
    tu_tcp_pair(t);
    struct reset_reader x = { .fd = t[0] };
    corun_t *a = go(reset_reader_co, &x);
    corun_t *b = go(linger_close_co, &t[1]);
    cr_assert_eq(PI(join(b)), 0);
    join(a);
    check_reset(&x);
    assert_blocking(t[0]);
    close(t[0]);
}

Test(io_errors, reset_before_read)
{
    int t[2];
    corun_current();
    count_sigpipe();
    tu_tcp_pair(t);
    struct linger lin = { .l_onoff = 1, .l_linger = 0 };
    cr_assert_eq(setsockopt(t[1], SOL_SOCKET, SO_LINGER, &lin, sizeof lin), 0);
    close(t[1]);
    corun_sleep(CORUN_MSEC(10));
    struct reset_reader x = { .fd = t[0] };
    join(go(reset_reader_co, &x));
    check_reset(&x);
    close(t[0]);
}

/*
 * An error that ends a blocked write after part of it went: natively the
 * write returns the count, and the error (kept by the kernel) is reported
 * by the next write, without SIGPIPE: ECONNRESET after the peer's RST,
 * ETIMEDOUT after TCP_USER_TIMEOUT expired.
 */
#define TCPBIG (64u << 20)

static int ticks;
static volatile int stop_ticking;
static void *ticker(void *arg);

struct error_writer {
    int fd;
    const char *buf;
    struct res first, second;
    ssize_t rd;
    int rderr;
};

static void *error_writer_co(void *arg)
{
    struct error_writer *w = arg;
    w->first = do_op(w->fd, OP_WRITE, w->buf, TCPBIG, 0);
    w->second = do_op(w->fd, OP_WRITE, w->buf, TCPBIG, 0);
    char c;
    errno = 0;
    w->rd = read(w->fd, &c, 1);
    w->rderr = errno;
    return NULL;
}

static void *delayed_reset(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(200));   /* the writer is parked on a full window */
    struct linger lin = { .l_onoff = 1, .l_linger = 0 };
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin) != 0)
        return IP(1);
    close(fd);
    return NULL;
}

static void check_error_writer(struct error_writer *w, int err)
{
    cr_assert_gt(w->first.r, 0, "first write: %zd (%s), expected the partial count", w->first.r,
                 strerror(w->first.err));
    cr_assert_lt(w->first.r, (ssize_t)TCPBIG);
    cr_assert_eq(w->first.sig, 0);
    cr_assert_eq(w->second.r, -1, "second write returned %zd", w->second.r);
    cr_assert_eq(w->second.err, err, "second write: %s, expected %s (natively the pending "
                 "error is reported, not EPIPE)", strerror(w->second.err), strerror(err));
    cr_assert_eq(w->second.sig, 0, "%d SIGPIPE on the write that reports %s (natively none)",
                 w->second.sig, strerror(err));
    cr_assert_eq(w->rd, 0, "read after the error: %zd (%s)", w->rd, strerror(w->rderr));
}

Test(io_errors, reset_while_writer_blocked)
{
    int t[2];
    corun_current();
    count_sigpipe();
    tu_tcp_pair(t);
    char *buf = calloc(1, TCPBIG);
    cr_assert_not_null(buf);
    struct error_writer w = { .fd = t[0], .buf = buf };
    corun_t *a = go(error_writer_co, &w);
    corun_t *b = go(delayed_reset, &t[1]);
    cr_assert_eq(PI(join(b)), 0);
    join(a);
    check_error_writer(&w, ECONNRESET);
    close(t[0]);
    free(buf);
}

Test(io_errors, user_timeout_while_writer_blocked)
{
    int t[2];
    corun_current();
    count_sigpipe();
    tu_tcp_pair(t);
    unsigned int ut = 300;   /* ms without progress: the peer never reads */
    cr_assert_eq(setsockopt(t[0], IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut), 0);
    char *buf = calloc(1, TCPBIG);
    cr_assert_not_null(buf);
    struct error_writer w = { .fd = t[0], .buf = buf };
    ticks = 0;
    stop_ticking = 0;
    corun_t *tk = go(ticker, NULL);
    int64_t t0 = tu_now();
    corun_t *wc = go(error_writer_co, &w);
    /* Kernels before 5.11 do not apply TCP_USER_TIMEOUT to zero-window
     * probes: the write would wait forever. */
    int jr = corun_join_timeout(wc, NULL, CORUN_SEC(20));
    if (jr == ETIMEDOUT) {
        close(t[1]);
        shutdown(t[0], SHUT_RDWR);
        join(wc);
    }
    int64_t el = tu_now() - t0;
    stop_ticking = 1;
    join(tk);
    if (jr == ETIMEDOUT)
        cr_skip_test("TCP_USER_TIMEOUT did not end the blocked write within 20 s "
                     "(kernel without zero-window user timeout?)");
    check_error_writer(&w, ETIMEDOUT);
    cr_assert_geq(el, CORUN_MSEC(300));
    cr_assert_lt(el, CORUN_SEC(20));
    cr_assert_gt(ticks, 10, "others ran only %d times", ticks);
    close(t[0]);
    close(t[1]);
    free(buf);
}

/* ---- SO_RCVTIMEO / SO_SNDTIMEO -----------------------------------------*/

static void *ticker(void *arg)
{
    (void)arg;
    while (!stop_ticking) {
        ticks++;
        corun_sleep(CORUN_MSEC(5));
    }
    return NULL;
}

static void set_timeo(int fd, int name, int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, name, &tv, sizeof tv), 0, "setsockopt: %s",
                 strerror(errno));
}

enum rop { ROP_READ, ROP_READV, ROP_RECV, ROP_RECVFROM, ROP_RECVMSG, ROP_ACCEPT, ROP_WAITALL };

struct timed {
    int fd;
    enum rop op;
    ssize_t r;
    int err;
    int64_t elapsed;
    int ticks_during;
    char buf[64];
};

static void *timed_read_co(void *arg)
{
    struct timed *t = arg;
    int t0 = ticks;
    int64_t s = tu_now();
    errno = 0;
    switch (t->op) {
    case ROP_READ:
        t->r = read(t->fd, t->buf, sizeof t->buf);
        break;
    case ROP_READV: {
        struct iovec v = { t->buf, sizeof t->buf };
        t->r = readv(t->fd, &v, 1);
        break;
    }
    case ROP_RECV:
        t->r = recv(t->fd, t->buf, sizeof t->buf, 0);
        break;
    case ROP_RECVFROM:
        t->r = recvfrom(t->fd, t->buf, sizeof t->buf, 0, NULL, NULL);
        break;
    case ROP_RECVMSG: {
        struct iovec v = { t->buf, sizeof t->buf };
        struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
        t->r = recvmsg(t->fd, &m, 0);
        break;
    }
    case ROP_ACCEPT:
        t->r = accept(t->fd, NULL, NULL);
        break;
    case ROP_WAITALL:
        t->r = recv(t->fd, t->buf, sizeof t->buf, MSG_WAITALL);
        break;
    }
    t->err = errno;
    t->elapsed = tu_now() - s;
    t->ticks_during = ticks - t0;
    return NULL;
}

static void run_timed(struct timed *t, corun_fn fn)
{
    ticks = 0;
    stop_ticking = 0;
    corun_t *tk = go(ticker, NULL);
    corun_t *a = go(fn, t);
    join(a);
    stop_ticking = 1;
    join(tk);
}

static void expect_rcv_timeout(int fd, enum rop op, ssize_t partial)
{
    struct timed t = { .fd = fd, .op = op };
    run_timed(&t, timed_read_co);
    if (partial > 0) {
        cr_assert_eq(t.r, partial, "op %d returned %zd (%s), expected the %zd bytes there", op,
                     t.r, strerror(t.err), partial);
    } else {
        cr_assert_eq(t.r, -1, "op %d returned %zd, expected -1/EAGAIN", op, t.r);
        cr_assert(t.err == EAGAIN || t.err == EWOULDBLOCK, "op %d: errno %s, expected EAGAIN", op,
                  strerror(t.err));
    }
    cr_assert_geq(t.elapsed, CORUN_MSEC(100), "op %d: timed out after %lld us (< 100 ms)", op,
                  (long long)(t.elapsed / 1000));
    cr_assert_lt(t.elapsed, CORUN_SEC(3), "op %d: timed out after %lld ms", op,
                 (long long)(t.elapsed / 1000000));
    cr_assert_geq(t.ticks_during, 5, "op %d: other coroutines ran only %d times during the wait",
                  op, t.ticks_during);
}

Test(io_errors, rcvtimeo_expires_with_eagain)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_timeo(sv[0], SO_RCVTIMEO, 100);
    expect_rcv_timeout(sv[0], ROP_READ, 0);
    expect_rcv_timeout(sv[0], ROP_READV, 0);
    expect_rcv_timeout(sv[0], ROP_RECV, 0);
    expect_rcv_timeout(sv[0], ROP_RECVFROM, 0);
    expect_rcv_timeout(sv[0], ROP_RECVMSG, 0);
    /* MSG_WAITALL with some data: the timeout returns what arrived. */
    cr_assert_eq(write(sv[1], "abc", 3), 3);
    expect_rcv_timeout(sv[0], ROP_WAITALL, 3);
    assert_blocking(sv[0]);
    close(sv[0]);
    close(sv[1]);
}

Test(io_errors, rcvtimeo_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    set_timeo(t[0], SO_RCVTIMEO, 100);
    expect_rcv_timeout(t[0], ROP_READ, 0);
    expect_rcv_timeout(t[0], ROP_RECV, 0);
    close(t[0]);
    close(t[1]);
}

Test(io_errors, rcvtimeo_accept)
{
    struct sockaddr_in a;
    corun_current();
    int l = tu_tcp_listener(&a, 0, 4);
    set_timeo(l, SO_RCVTIMEO, 100);
    expect_rcv_timeout(l, ROP_ACCEPT, 0);
    assert_blocking(l);
    close(l);
}

/* The timeout set through a dup of the fd applies to the original (it is
 * a property of the socket). */
Test(io_errors, rcvtimeo_set_through_dup)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int d = dup(sv[0]);
    cr_assert_geq(d, 0);
    set_timeo(d, SO_RCVTIMEO, 100);
    expect_rcv_timeout(sv[0], ROP_READ, 0);
    close(d);
    close(sv[0]);
    close(sv[1]);
}

/* A timeout changed after the socket was already waited on is honoured. */
Test(io_errors, rcvtimeo_changed_later)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_timeo(sv[0], SO_RCVTIMEO, 100);
    expect_rcv_timeout(sv[0], ROP_READ, 0);
    set_timeo(sv[0], SO_RCVTIMEO, 250);
    struct timed t = { .fd = sv[0], .op = ROP_READ };
    run_timed(&t, timed_read_co);
    cr_assert_eq(t.r, -1);
    cr_assert_geq(t.elapsed, CORUN_MSEC(250));
    /* Back to no timeout: data written later is read. */
    set_timeo(sv[0], SO_RCVTIMEO, 0);
    cr_assert_eq(write(sv[1], "z", 1), 1);
    t = (struct timed){ .fd = sv[0], .op = ROP_READ };
    run_timed(&t, timed_read_co);
    cr_assert_eq(t.r, 1);
    close(sv[0]);
    close(sv[1]);
}

static void *timed_write_co(void *arg)
{
    struct timed *t = arg;
    static char big[BIG];
    int t0 = ticks;
    int64_t s = tu_now();
    errno = 0;
    t->r = t->op == ROP_READ ? write(t->fd, big, BIG) : send(t->fd, big, BIG, 0);
    t->err = errno;
    t->elapsed = tu_now() - s;
    t->ticks_during = ticks - t0;
    return NULL;
}

static void sndtimeo(int wr)
{
    set_timeo(wr, SO_SNDTIMEO, 100);
    for (int op = 0; op < 2; op++) {
        /* An empty buffer: part of the 16 MiB goes, then the timeout. */
        struct timed t = { .fd = wr, .op = op ? ROP_RECV : ROP_READ };
        run_timed(&t, timed_write_co);
        if (op == 0) {
            cr_assert_gt(t.r, 0, "write returned %zd (%s), expected a partial count", t.r,
                         strerror(t.err));
            cr_assert_lt(t.r, (ssize_t)BIG);
        } else {
            /* Full buffer: nothing goes. */
            cr_assert_eq(t.r, -1, "send on a full socket returned %zd", t.r);
            cr_assert(t.err == EAGAIN || t.err == EWOULDBLOCK, "send: %s, expected EAGAIN",
                      strerror(t.err));
        }
        cr_assert_geq(t.elapsed, CORUN_MSEC(100), "timed out after %lld us",
                      (long long)(t.elapsed / 1000));
        cr_assert_lt(t.elapsed, CORUN_SEC(3));
        cr_assert_geq(t.ticks_during, 5, "others ran only %d times", t.ticks_during);
    }
    assert_blocking(wr);
}

Test(io_errors, sndtimeo_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sndtimeo(sv[0]);
    close(sv[0]);
    close(sv[1]);
}

Test(io_errors, sndtimeo_tcp)
{
    int t[2];
    corun_current();
    tu_tcp_pair(t);
    sndtimeo(t[0]);
    close(t[0]);
    close(t[1]);
}

Test(io_errors, sndtimeo_full_socket_eagain)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_gt(fill(sv[0]), 0);
    set_timeo(sv[0], SO_SNDTIMEO, 100);
    struct timed t = { .fd = sv[0], .op = ROP_READ };
    run_timed(&t, timed_write_co);
    cr_assert_eq(t.r, -1, "write on a full socket returned %zd", t.r);
    cr_assert(t.err == EAGAIN, "write: %s, expected EAGAIN", strerror(t.err));
    cr_assert_geq(t.elapsed, CORUN_MSEC(100));
    close(sv[0]);
    close(sv[1]);
}

/*
 * connect with SO_SNDTIMEO: when the listener's accept queue is full, the
 * kernel drops SYNs, so the connect stays in progress; a blocking connect
 * then fails with EINPROGRESS when SO_SNDTIMEO expires.
 */
Test(io_errors, connect_sndtimeo_einprogress)
{
    struct sockaddr_in a;
    corun_current();
    int l = tu_tcp_listener(&a, 0, 0);
    int fillers[3];
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        cr_assert_geq(fillers[i], 0);
        int r = connect(fillers[i], (struct sockaddr *)&a, sizeof a);
        cr_assert(r == 0 || errno == EINPROGRESS, "filler connect: %s", strerror(errno));
    }
    corun_sleep(CORUN_MSEC(20));   /* let the handshakes that can complete do so */
    struct conn c = { .addr = a };
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(c.fd, 0);
    set_timeo(c.fd, SO_SNDTIMEO, 200);
    struct timed t = { .fd = c.fd };
    ticks = 0;
    stop_ticking = 0;
    corun_t *tk = go(ticker, NULL);
    int64_t s = tu_now();
    errno = 0;
    int r = connect(c.fd, (struct sockaddr *)&a, sizeof a);
    int err = errno;
    t.elapsed = tu_now() - s;
    stop_ticking = 1;
    join(tk);
    cr_assert_eq(r, -1, "connect to a listener with a full queue succeeded");
    cr_assert_eq(err, EINPROGRESS, "connect: %s, expected EINPROGRESS", strerror(err));
    cr_assert_geq(t.elapsed, CORUN_MSEC(200), "timed out after %lld us",
                  (long long)(t.elapsed / 1000));
    cr_assert_lt(t.elapsed, CORUN_SEC(1) - CORUN_MSEC(1), "took %lld ms",
                 (long long)(t.elapsed / 1000000));
    cr_assert_geq(ticks, 10, "others ran only %d times during the connect", ticks);
    assert_blocking(c.fd);
    close(c.fd);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(l);
}
