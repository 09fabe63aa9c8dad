/*
 * test_io_basic.c - blocking read/write semantics under the I/O hooks.
 *
 * The test program is linked with libcorun, so its own read(), write(),
 * send(), ... go through corun's hooks: inside a coroutine a blocking call
 * parks only that coroutine. These tests check that the results are exactly
 * those of the blocking system calls: partial reads, EOF, zero-length reads,
 * full writes of large buffers, and regular files passing straight through.
 *
 * Assertions are made on the main coroutine only (the test body); coroutines
 * record what they saw.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "testutil.h"
#define IO_OWN_ASSERT_BLOCKING
#include "io_testutil.h"

TestSuite(io_basic, .timeout = 60);

static struct tu_log lg;

/* O_NONBLOCK as the kernel has it (not through the fcntl hook). */
static int kernel_flags(int fd)
{
    return (int)syscall(SYS_fcntl, fd, F_GETFL, 0);
}

static void assert_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert_neq(fl, -1, "F_GETFL(%d): %s", fd, strerror(errno));
    cr_assert_eq(fl, kernel_flags(fd), "fcntl(F_GETFL) does not tell the truth");
    cr_assert_eq(fl & O_NONBLOCK, 0, "O_NONBLOCK left set on fd %d", fd);
}

enum pairkind { UNIX_STREAM, PIPE, TCP };

/* fds[0] is read, fds[1] is written. */
static void make_pair(enum pairkind k, int fds[2])
{
    if (k == UNIX_STREAM) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    } else if (k == PIPE) {
        cr_assert_eq(pipe(fds), 0);
    } else {
        int t[2];
        tu_tcp_pair(t);
        fds[0] = t[1];
        fds[1] = t[0];
    }
}

/* ---- partial reads, EOF, zero-length reads ---------------------------------*/

struct rd {
    int fd;
    size_t len;
    ssize_t r;
    int err;
    ssize_t r2;   /* second read: EOF */
    int err2;
    char buf[128];
};

static void *partial_reader(void *arg)
{
    struct rd *x = arg;
    tu_log_add(&lg, 1);
    errno = 0;
    x->r = read(x->fd, x->buf, x->len);
    x->err = errno;
    tu_log_add(&lg, 5);
    x->r2 = read(x->fd, x->buf + 64, 64);
    x->err2 = errno;
    tu_log_add(&lg, 7);
    return NULL;
}

static void *ten_byte_writer(void *arg)
{
    int fd = *(int *)arg;
    tu_log_add(&lg, 2);
    corun_yield();
    tu_log_add(&lg, 3);
    ssize_t w = write(fd, "0123456789", 10);
    tu_log_add(&lg, 4);
    corun_sleep(CORUN_MSEC(20));   /* the reader wakes, then parks again */
    tu_log_add(&lg, 6);
    close(fd);
    return IP(w);
}

static void partial_read_then_eof(enum pairkind k)
{
    int fds[2];
    corun_current();
    make_pair(k, fds);
    lg.n = 0;
    struct rd x = { .fd = fds[0], .len = 100 };
    corun_t *a = go(partial_reader, &x);
    corun_t *b = go(ten_byte_writer, &fds[1]);
    join(a);
    cr_assert_eq(PI(join(b)), 10);
    /* The reader parked in read() while the writer ran; it woke with what
     * was there, and its second read parked until the writer closed. */
    TU_EXPECT(&lg, 1, 2, 3, 4, 5, 6, 7);
    cr_assert_eq(x.r, 10, "read returned %zd (%s), expected the 10 bytes there", x.r,
                 strerror(x.err));
    cr_assert_eq(x.err, 0, "errno changed by a successful read: %s", strerror(x.err));
    cr_assert_eq(memcmp(x.buf, "0123456789", 10), 0);
    cr_assert_eq(x.r2, 0, "read after the peer closed returned %zd (%s), expected EOF", x.r2,
                 strerror(x.err2));
    /* EOF stays EOF. */
    char c;
    cr_assert_eq(read(fds[0], &c, 1), 0);
    assert_blocking(fds[0]);
    close(fds[0]);
}

Test(io_basic, partial_read_then_eof_unix_stream) { partial_read_then_eof(UNIX_STREAM); }
Test(io_basic, partial_read_then_eof_pipe) { partial_read_then_eof(PIPE); }
Test(io_basic, partial_read_then_eof_tcp) { partial_read_then_eof(TCP); }

static void *zero_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    tu_log_add(&lg, 1);
    ssize_t r = read(fd, &c, 0);
    tu_log_add(&lg, 2);
    return IP(r + 1);
}

static void *marker(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    return NULL;
}

/* read(fd, buf, 0) returns 0 at once, without data and without parking. */
static void zero_length_read(enum pairkind k)
{
    int fds[2];
    corun_current();
    make_pair(k, fds);
    lg.n = 0;
    corun_t *a = go(zero_reader, &fds[0]);
    corun_t *b = go(marker, IP(3));
    cr_assert_eq(PI(join(a)), 1, "read of 0 bytes did not return 0");
    join(b);
    TU_EXPECT(&lg, 1, 2, 3);
    /* Also with data waiting: 0 bytes read, the data stays. */
    cr_assert_eq(write(fds[1], "ab", 2), 2);
    char buf[4];
    cr_assert_eq(read(fds[0], buf, 0), 0);
    struct iovec v = { buf, 0 };
    cr_assert_eq(readv(fds[0], &v, 1), 0);
    cr_assert_eq(read(fds[0], buf, sizeof buf), 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    close(fds[0]);
    close(fds[1]);
}

Test(io_basic, zero_length_read_unix_stream) { zero_length_read(UNIX_STREAM); }
Test(io_basic, zero_length_read_pipe) { zero_length_read(PIPE); }
Test(io_basic, zero_length_read_tcp) { zero_length_read(TCP); }

/* ---- a reader parks while others run ----------------------------------------*/

struct parked {
    int fd;
    ssize_t r;
    int ticks_seen;
    char buf[64];
};

static int ticks;

static void *parked_reader(void *arg)
{
    struct parked *p = arg;
    tu_log_add(&lg, 100);
    p->r = recv(p->fd, p->buf, sizeof p->buf, 0);
    p->ticks_seen = ticks;
    tu_log_add(&lg, 101);
    return NULL;
}

static void *ticker(void *arg)
{
    int n = (int)PI(arg);
    for (int i = 0; i < n; i++) {
        ticks++;
        tu_log_add(&lg, i);
        corun_sleep(CORUN_MSEC(2));
    }
    return NULL;
}

static void *delayed_send(void *arg)
{
    int fd = *(int *)arg;
    while (ticks < 5)
        corun_sleep(CORUN_MSEC(1));
    corun_sleep(CORUN_MSEC(10));
    tu_log_add(&lg, 200);
    return IP(send(fd, "hello", 5, 0));
}

Test(io_basic, reader_parks_while_others_run)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    lg.n = 0;
    ticks = 0;
    struct parked p = { .fd = sv[0] };
    corun_t *a = go(parked_reader, &p);
    corun_t *t = go(ticker, IP(5));
    corun_t *w = go(delayed_send, &sv[1]);
    join(t);
    join(a);
    cr_assert_eq(PI(join(w)), 5);
    cr_assert_eq(p.r, 5);
    cr_assert_eq(memcmp(p.buf, "hello", 5), 0);
    cr_assert_eq(p.ticks_seen, 5);
    /* All five ticks ran while the reader was parked in recv(). */
    TU_EXPECT(&lg, 100, 0, 1, 2, 3, 4, 200, 101);
    close(sv[0]);
    close(sv[1]);
}

/* No hidden timeout: a read without SO_RCVTIMEO waits as long as it takes
 * (earlier systems returned after 1 s). */
static void *late_writer(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(1300));
    return IP(write(fd, "late", 4));
}

static void *plain_reader(void *arg)
{
    struct parked *p = arg;
    errno = 0;
    p->r = read(p->fd, p->buf, sizeof p->buf);
    p->ticks_seen = errno;
    return NULL;
}

Test(io_basic, no_hidden_read_timeout)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct parked p = { .fd = sv[0] };
    int64_t t0 = tu_now();
    corun_t *a = go(plain_reader, &p);
    corun_t *w = go(late_writer, &sv[1]);
    join(a);
    int64_t el = tu_now() - t0;
    cr_assert_eq(PI(join(w)), 4);
    cr_assert_eq(p.r, 4, "read returned %zd (%s) after %lld ms", p.r, strerror(p.ticks_seen),
                 (long long)(el / 1000000));
    cr_assert_geq(el, CORUN_MSEC(1300));
    close(sv[0]);
    close(sv[1]);
}

/* ---- 16 MiB through a socketpair, a pipe and TCP, read concurrently -------*/

#define BIG (16u << 20)

static inline unsigned char pat(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    return (unsigned char)(x >> 24 ^ x >> 13 ^ i >> 16);
}

static unsigned char *pattern_buf(void)
{
    unsigned char *b = malloc(BIG);
    cr_assert_not_null(b);
    for (size_t i = 0; i < BIG; i++)
        b[i] = pat(i);
    return b;
}

enum wmode { W_WRITE, W_WRITEV, W_SEND, W_SENDMSG };
enum rmode { R_READ, R_READV, R_RECV, R_RECV_WAITALL };

struct big_writer {
    int fd;
    enum wmode mode;
    const unsigned char *buf;
    ssize_t result;
    int err;
    int reader_done_first;  /* the reader finished before the write returned */
};

struct big_reader {
    int fd;
    enum rmode mode;
    size_t got;
    int calls;
    int bad;            /* 1: wrong byte at bad_at; 2: read error; 3: early EOF */
    size_t bad_at;
    int err;
    ssize_t eof;        /* the read after all bytes: 0 once the writer closed */
    int writer_done_at_first_read;
    int done;
};

static struct big_writer *the_writer;

static void *big_write_co(void *arg)
{
    struct big_writer *w = arg;
    errno = 0;
    const unsigned char *b = w->buf;
    switch (w->mode) {
    case W_WRITE:
        w->result = write(w->fd, b, BIG);
        break;
    case W_WRITEV: {
        /* Odd-sized pieces, so partial progress ends mid-vector. */
        struct iovec v[4] = { { (void *)b, 1 }, { (void *)(b + 1), 65537 },
                              { (void *)(b + 65538), 5u << 20 },
                              { (void *)(b + 65538 + (5u << 20)), BIG - 65538 - (5u << 20) } };
        w->result = writev(w->fd, v, 4);
        break;
    }
    case W_SEND:
        w->result = send(w->fd, b, BIG, 0);
        break;
    case W_SENDMSG: {
        struct iovec v[2] = { { (void *)b, 3333 }, { (void *)(b + 3333), BIG - 3333 } };
        struct msghdr m = { .msg_iov = v, .msg_iovlen = 2 };
        w->result = sendmsg(w->fd, &m, 0);
        break;
    }
    }
    w->err = errno;
    return NULL;
}

static void *big_read_co(void *arg)
{
    struct big_reader *r = arg;
    static unsigned char buf[300000];
    size_t sizes[] = { 1, 7, 4096, 65536, 100000, 299999, 300000, 13 };
    while (r->got < BIG) {
        size_t want = sizes[r->calls % 8];
        if (want > BIG - r->got && r->mode != R_RECV_WAITALL)
            want = BIG - r->got;
        ssize_t n;
        if (r->calls == 0)
            r->writer_done_at_first_read = the_writer->result != 0;
        switch (r->mode) {
        case R_READ:
            n = read(r->fd, buf, want);
            break;
        case R_READV: {
            size_t h = want / 2;
            struct iovec v[2] = { { buf, h }, { buf + h, want - h } };
            n = readv(r->fd, v, 2);
            break;
        }
        case R_RECV:
            n = recv(r->fd, buf, want, 0);
            break;
        default:
            want = BIG - r->got < sizeof buf ? BIG - r->got : sizeof buf;
            n = recv(r->fd, buf, want, MSG_WAITALL);
            if (n >= 0 && (size_t)n != want) {
                r->bad = 4;    /* MSG_WAITALL returned short without EOF */
                r->bad_at = (size_t)n;
                return NULL;
            }
            break;
        }
        r->calls++;
        if (n < 0) {
            r->bad = 2;
            r->err = errno;
            return NULL;
        }
        if (n == 0) {
            r->bad = 3;
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat(r->got + (size_t)i)) {
                r->bad = 1;
                r->bad_at = r->got + (size_t)i;
                return NULL;
            }
        r->got += (size_t)n;
    }
    r->done = 1;
    /* Wait for the writer's close: EOF. */
    r->eof = read(r->fd, buf, 1);
    return NULL;
}

static void *closer_after_write(void *arg)
{
    struct big_writer *w = arg;
    while (w->result == 0)
        corun_sleep(CORUN_MSEC(1));
    close(w->fd);
    return NULL;
}

static void big_transfer(enum pairkind k, enum wmode wm, enum rmode rm)
{
    int fds[2];
    corun_current();
    make_pair(k, fds);
    unsigned char *buf = pattern_buf();
    struct big_writer w = { .fd = fds[1], .mode = wm, .buf = buf };
    struct big_reader r = { .fd = fds[0], .mode = rm, .eof = -2 };
    the_writer = &w;
    corun_t *wc = go(big_write_co, &w);
    corun_t *rc = go(big_read_co, &r);
    corun_t *cc = go(closer_after_write, &w);
    join(wc);
    join(cc);
    join(rc);
    cr_assert_eq(w.result, (ssize_t)BIG, "the blocking write returned %zd (%s), expected %u",
                 w.result, strerror(w.err), BIG);
    cr_assert_eq(w.err, 0, "a successful write changed errno to %s", strerror(w.err));
    cr_assert_eq(r.bad, 0, "reader: failure %d at byte %zu (%s), %zu bytes read in %d calls",
                 r.bad, r.bad_at, strerror(r.err), r.got, r.calls);
    cr_assert_eq(r.got, BIG);
    cr_assert_eq(r.writer_done_at_first_read, 0,
                 "the reader did not run until the whole write was done");
    cr_assert_gt(r.calls, 1);
    cr_assert_eq(r.eof, 0, "read after the writer closed returned %zd", r.eof);
    assert_blocking(fds[0]);
    close(fds[0]);
    free(buf);
}

Test(io_basic, write_16mib_socketpair) { big_transfer(UNIX_STREAM, W_WRITE, R_READ); }
Test(io_basic, write_16mib_pipe) { big_transfer(PIPE, W_WRITE, R_READ); }
Test(io_basic, write_16mib_tcp) { big_transfer(TCP, W_WRITE, R_READ); }
Test(io_basic, writev_16mib_socketpair) { big_transfer(UNIX_STREAM, W_WRITEV, R_READV); }
Test(io_basic, writev_16mib_pipe) { big_transfer(PIPE, W_WRITEV, R_READV); }
Test(io_basic, send_16mib_socketpair) { big_transfer(UNIX_STREAM, W_SEND, R_RECV); }
Test(io_basic, sendmsg_16mib_tcp) { big_transfer(TCP, W_SENDMSG, R_RECV_WAITALL); }
Test(io_basic, send_16mib_socketpair_recv_waitall)
{
    big_transfer(UNIX_STREAM, W_SEND, R_RECV_WAITALL);
}

/* Both directions of one socketpair at once: each side writes 16 MiB and
 * reads 16 MiB (a native program would need two threads per side). */
struct duplex {
    int fd;
    const unsigned char *buf;
    ssize_t wrote;
    struct big_reader r;
};

static void *duplex_writer(void *arg)
{
    struct duplex *d = arg;
    d->wrote = write(d->fd, d->buf, BIG);
    return NULL;
}

static void *duplex_reader(void *arg)
{
    struct duplex *d = arg;
    static unsigned char buf[2][65536];
    size_t got = 0;
    unsigned char *b = buf[d->r.mode];
    while (got < BIG) {
        ssize_t n = read(d->fd, b, sizeof buf[0]);
        if (n <= 0) {
            d->r.bad = n < 0 ? 2 : 3;
            d->r.err = errno;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != pat(got + (size_t)i)) {
                d->r.bad = 1;
                d->r.bad_at = got + (size_t)i;
                return NULL;
            }
        got += (size_t)n;
    }
    d->r.got = got;
    return NULL;
}

Test(io_basic, duplex_16mib_socketpair)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    unsigned char *buf = pattern_buf();
    struct duplex d[2] = { { .fd = sv[0], .buf = buf, .r.mode = 0 },
                           { .fd = sv[1], .buf = buf, .r.mode = 1 } };
    corun_t *c[4] = { go(duplex_writer, &d[0]), go(duplex_writer, &d[1]),
                      go(duplex_reader, &d[0]), go(duplex_reader, &d[1]) };
    for (int i = 0; i < 4; i++)
        join(c[i]);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(d[i].wrote, (ssize_t)BIG, "side %d wrote %zd", i, d[i].wrote);
        cr_assert_eq(d[i].r.bad, 0, "side %d reader: failure %d at %zu (%s)", i, d[i].r.bad,
                     d[i].r.bad_at, strerror(d[i].r.err));
        cr_assert_eq(d[i].r.got, BIG);
        assert_blocking(sv[i]);
    }
    close(sv[0]);
    close(sv[1]);
    free(buf);
}

/* ---- regular files and character devices pass straight through -------------*/

static void *file_io(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char buf[1 << 20];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = pat(i);
    tu_log_add(&lg, 1);
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
        return IP(1);
    if (lseek(fd, 0, SEEK_SET) != 0)
        return IP(2);
    memset(buf, 0, sizeof buf);
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf + got, 4096 + 17);
        if (n <= 0)
            return IP(3);
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != pat(i))
            return IP(4);
    char c;
    if (read(fd, &c, 1) != 0)   /* EOF of a regular file */
        return IP(5);
    struct iovec v[2] = { { buf, 10 }, { buf + 10, 10 } };
    if (lseek(fd, 100, SEEK_SET) != 100 || readv(fd, v, 2) != 20)
        return IP(6);
    for (int i = 0; i < 20; i++)
        if (buf[i] != pat(100 + (size_t)i))
            return IP(7);
    tu_log_add(&lg, 2);
    return NULL;
}

Test(io_basic, regular_file_passes_through)
{
    char path[] = "/tmp/corun-io-XXXXXX";
    corun_current();
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    lg.n = 0;
    corun_t *a = go(file_io, &fd);
    corun_t *b = go(marker, IP(3));
    uintptr_t step = PI(join(a));
    cr_assert_eq(step, 0, "file I/O step %d failed", (int)step);
    join(b);
    /* (Whether the file's I/O parked is not asserted: decision 8 allows
     * offloading I/O that would block to the thread pool.) */
    cr_assert_eq(lg.n, 3);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 1 << 20);
    assert_blocking(fd);
    close(fd);
}

Test(io_basic, regular_file_opened_nonblocking)
{
    /* O_NONBLOCK means nothing for regular files: reads still return data. */
    char path[] = "/tmp/corun-io-XXXXXX";
    corun_current();
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "file data", 9), 9);
    int fd2 = open(path, O_RDONLY | O_NONBLOCK);
    unlink(path);
    cr_assert_geq(fd2, 0);
    char buf[16];
    cr_assert_eq(read(fd2, buf, sizeof buf), 9);
    cr_assert_eq(memcmp(buf, "file data", 9), 0);
    cr_assert_eq(read(fd2, buf, sizeof buf), 0);
    cr_assert(fcntl(fd2, F_GETFL) & O_NONBLOCK);
    close(fd);
    close(fd2);
}

static void *devices(void *arg)
{
    (void)arg;
    static unsigned char buf[1 << 20];
    int z = open("/dev/zero", O_RDONLY);
    int n = open("/dev/null", O_WRONLY);
    if (z < 0 || n < 0)
        return IP(1);
    memset(buf, 0xaa, sizeof buf);
    /* One read, all of it, as the blocking read gives (no signal is sent
     * here; a read with RWF_NOWAIT could stop early at a reschedule). */
    if (read(z, buf, sizeof buf) != (ssize_t)sizeof buf)
        return IP(2);
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i])
            return IP(3);
    if (write(n, buf, sizeof buf) != (ssize_t)sizeof buf)
        return IP(4);
    close(z);
    close(n);
    int n2 = open("/dev/null", O_RDONLY);
    if (read(n2, buf, 10) != 0)
        return IP(5);
    close(n2);
    return NULL;
}

Test(io_basic, dev_zero_and_dev_null)
{
    corun_current();
    corun_t *a = go(devices, NULL);
    uintptr_t r = PI(join(a));
    cr_assert_eq(r, 0, "device I/O step %d failed", (int)r);
}
