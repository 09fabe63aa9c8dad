/*
 * pt_splice.c - a plain pthread program (not linked with corun) moving
 * 16 MiB with sendfile, splice, tee and vmsplice between threads of one
 * process, checking every byte and the kernel's blocking semantics: a
 * blocking sendfile into a socket sends all of count (unless end of file, an
 * error, SO_SNDTIMEO or a signal stops it: then the count so far, or -1);
 * into a pipe, and splice/tee/vmsplice, it moves what fits and returns.
 * Run as `pt_splice MODE` by test_splice_green.c three ways (green, native
 * threads under the preload, and without corun), with the same
 * expectations each way. In green mode the sender and its reader share one
 * OS thread: a call that blocks the thread instead of parking never ends
 * (the 30 s alarm of pt_main turns that hang into a failure).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "pt_common.h"

#define TOTAL ((size_t)16 << 20)

/* Byte i of the stream: not periodic at any power of two that matters. */
static inline unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 16) * 7 + (i >> 20));
}

static unsigned char *pattern_buf(size_t n)
{
    unsigned char *b = malloc(n);
    if (!b)
        exit(3);
    for (size_t i = 0; i < n; i++)
        b[i] = pattern(i);
    return b;
}

/* A regular file holding the pattern's first n bytes (already unlinked). */
static int pattern_file(size_t n)
{
    char path[] = "/tmp/pt_splice.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(3);
    }
    unlink(path);
    unsigned char *b = pattern_buf(n);
    CHECK(write(fd, b, n) == (ssize_t)n);
    free(b);
    return fd;
}

static void make_pipe(int p[2])
{
    if (pipe(p) != 0) {
        perror("pipe");
        exit(3);
    }
}

static void unix_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        exit(3);
    }
}

/* A connected TCP pair on 127.0.0.1: sv[0] the client, sv[1] the server. */
static void tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    sv[0] = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(sv[0], (struct sockaddr *)&a, sizeof a) == 0);
    sv[1] = accept(l, NULL, NULL);
    CHECK(sv[1] >= 0);
    close(l);
}

/* ---- the other side: a thread reading (or writing) the stream ------------------ */

struct peer {
    pthread_t th;
    int fd;
    size_t want;            /* bytes to read or write */
    size_t from;            /* pattern offset of the first byte */
    size_t got;             /* read: bytes seen, all checked */
    bool bad;               /* read: a byte differed */
    size_t bad_at;
};

static void *reader_main(void *arg)
{
    struct peer *p = arg;
    unsigned char *buf = malloc(65536);
    while (p->got < p->want) {
        ssize_t r = read(p->fd, buf, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && !p->bad; i++)
            if (buf[i] != pattern(p->from + p->got + (size_t)i)) {
                p->bad = true;
                p->bad_at = p->got + (size_t)i;
            }
        p->got += (size_t)r;
    }
    free(buf);
    return NULL;
}

/* A thread that reads `want` bytes from fd, checking them against the
 * pattern from offset `from`. */
static struct peer *reader(int fd, size_t want, size_t from)
{
    struct peer *p = calloc(1, sizeof *p);
    *p = (struct peer){ .fd = fd, .want = want, .from = from };
    OK(pthread_create(&p->th, NULL, reader_main, p));
    return p;
}

static void reader_end(struct peer *p, const char *what)
{
    OK(pthread_join(p->th, NULL));
    CHECKF(p->got == p->want, "%s: the reader got %zu bytes of %zu", what, p->got, p->want);
    CHECKF(!p->bad, "%s: byte %zu differs", what, p->bad_at);
    note_tasks();
    free(p);
}

static void *writer_main(void *arg)
{
    struct peer *p = arg;
    unsigned char *b = pattern_buf(p->want);
    size_t done = 0;
    while (done < p->want) {
        ssize_t w = write(p->fd, b + done, p->want - done);
        if (w < 0 && errno == EINTR)
            continue;
        CHECKF(w > 0, "writer: write returned %zd (%s)", w, ename(errno));
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    p->got = done;
    free(b);
    return NULL;
}

/* A thread that writes the pattern's first `want` bytes into fd. */
static struct peer *writer(int fd, size_t want)
{
    struct peer *p = calloc(1, sizeof *p);
    *p = (struct peer){ .fd = fd, .want = want };
    OK(pthread_create(&p->th, NULL, writer_main, p));
    return p;
}

static void writer_end(struct peer *p)
{
    OK(pthread_join(p->th, NULL));
    CHECKF(p->got == p->want, "the writer wrote %zu of %zu", p->got, p->want);
    free(p);
}

/* ---- sendfile ------------------------------------------------------------------- */

/* Into a socket: one blocking call sends everything; with an offset the
 * file position stays, without one it moves. */
static void sendfile_into_socket(int sv[2])
{
    int f = pattern_file(TOTAL);
    CHECK(lseek(f, 0, SEEK_SET) == 0);
    struct peer *rd = reader(sv[1], TOTAL, 0);
    /* From the file position, which moves: the first quarter. */
    ssize_t r = sendfile(sv[0], f, NULL, TOTAL / 4);
    CHECKF(r == (ssize_t)(TOTAL / 4), "sendfile from the position returned %zd (%s)", r, ename(errno));
    CHECK(lseek(f, 0, SEEK_CUR) == (off_t)(TOTAL / 4));
    /* From an offset, which moves, while the position stays: the rest. */
    off_t off = TOTAL / 4;
    r = sendfile(sv[0], f, &off, TOTAL - TOTAL / 4);
    CHECKF(r == (ssize_t)(TOTAL - TOTAL / 4), "sendfile with an offset returned %zd (%s)", r, ename(errno));
    CHECKF(off == (off_t)TOTAL, "offset %lld after sendfile", (long long)off);
    CHECK(lseek(f, 0, SEEK_CUR) == (off_t)(TOTAL / 4));
    reader_end(rd, "sendfile");
    close(f);
}

static void m_sendfile_unix(void)
{
    int sv[2];
    unix_pair(sv);
    sendfile_into_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

static void m_sendfile_tcp(void)
{
    int sv[2];
    tcp_pair(sv);
    sendfile_into_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

/* Into a pipe: each call moves what fits (at most the pipe's size). */
static void m_sendfile_pipe(void)
{
    int f = pattern_file(TOTAL), p[2];
    make_pipe(p);
    struct peer *rd = reader(p[0], TOTAL, 0);
    off_t off = 0;
    int calls = 0;
    while (off < (off_t)TOTAL) {
        ssize_t r = sendfile(p[1], f, &off, TOTAL - (size_t)off);
        CHECKF(r > 0, "sendfile into a pipe returned %zd (%s)", r, ename(errno));
        if (r <= 0)
            break;
        CHECKF(r <= 1 << 20, "sendfile into a pipe moved %zd bytes at once", r);
        calls++;
    }
    CHECKF(calls >= 16, "16 MiB into a pipe in %d calls", calls);
    close(p[1]);
    reader_end(rd, "sendfile into a pipe");
    close(p[0]);
    close(f);
}

/* End of file: what is left, then 0. */
static void m_sendfile_eof(void)
{
    ticker_start();
    int f = pattern_file(100000), sv[2];
    unix_pair(sv);
    struct peer *rd = reader(sv[1], 100000, 0);
    off_t off = 0;
    CHECK(sendfile(sv[0], f, &off, 60000) == 60000);
    ssize_t r = sendfile(sv[0], f, &off, TOTAL);
    CHECKF(r == 40000, "sendfile past the end returned %zd (%s)", r, ename(errno));
    CHECK(off == 100000);
    CHECK(sendfile(sv[0], f, &off, TOTAL) == 0);
    CHECK(sendfile(sv[0], f, NULL, 0) == 0);
    reader_end(rd, "sendfile to the end");
    close(sv[0]);
    close(sv[1]);
    close(f);
    ticker_end();
}

/* SO_SNDTIMEO with nobody reading: what fit, then EAGAIN; the timeout
 * waited for, parked (the ticker ran). */
static void m_sendfile_sndtimeo(void)
{
    ticker_start();
    int f = pattern_file(TOTAL), sv[2];
    unix_pair(sv);
    struct timeval tv = { 0, 100000 };
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
    off_t off = 0;
    int64_t t = mono_ns();
    long t0 = atomic_load(&ticks);
    ssize_t r = sendfile(sv[0], f, &off, TOTAL);
    CHECKF(r > 0 && r < (ssize_t)TOTAL, "sendfile under SO_SNDTIMEO returned %zd (%s)", r, ename(errno));
    CHECK(off == (off_t)r);
    CHECKF(mono_ns() - t >= 90 * MS, "returned after %lld ms", (long long)((mono_ns() - t) / MS));
    CHECKF(atomic_load(&ticks) - t0 >= 5, "the other thread did not run: %ld ticks", atomic_load(&ticks) - t0);
    errno = 0;
    r = sendfile(sv[0], f, &off, TOTAL);
    CHECKF(r == -1 && errno == EAGAIN, "sendfile into a full socket returned %zd (%s)", r, ename(errno));
    CHECK(off > 0 && off < (off_t)TOTAL);
    /* What was sent is what the offset says. */
    size_t sent = (size_t)off;
    struct peer *rd = reader(sv[1], sent, 0);
    reader_end(rd, "sendfile under SO_SNDTIMEO");
    close(sv[0]);
    close(sv[1]);
    close(f);
    ticker_end();
}

static atomic_int handled;
static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

/* A process-directed SIGUSR1 in `ms` milliseconds (handler without
 * SA_RESTART). */
static timer_t signal_in(int ms)
{
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
    struct itimerspec its = { .it_value = { ms / 1000, (long)(ms % 1000) * 1000000 } };
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    return t;
}

/* A signal while the socket is full: the count so far (the position moved
 * by it), then -1 EINTR when nothing was sent. */
static void m_sendfile_eintr(void)
{
    ticker_start();
    int f = pattern_file(TOTAL), sv[2];
    unix_pair(sv);
    CHECK(lseek(f, 0, SEEK_SET) == 0);
    timer_t tm = signal_in(100);
    ssize_t r = sendfile(sv[0], f, NULL, TOTAL);
    CHECKF(r > 0 && r < (ssize_t)TOTAL, "interrupted sendfile returned %zd (%s)", r, ename(errno));
    CHECK(atomic_load(&handled) == 1);
    CHECK(lseek(f, 0, SEEK_CUR) == (off_t)r);
    timer_delete(tm);
    tm = signal_in(100);
    errno = 0;
    ssize_t r2 = sendfile(sv[0], f, NULL, TOTAL);
    CHECKF(r2 == -1 && errno == EINTR, "sendfile interrupted before sending returned %zd (%s)", r2,
           ename(errno));
    CHECK(atomic_load(&handled) == 2);
    CHECK(lseek(f, 0, SEEK_CUR) == (off_t)r);
    timer_delete(tm);
    struct peer *rd = reader(sv[1], (size_t)r, 0);
    reader_end(rd, "interrupted sendfile");
    close(sv[0]);
    close(sv[1]);
    close(f);
    ticker_end();
}

static atomic_int sigpipes;
static void on_pipe(int sig)
{
    (void)sig;
    atomic_fetch_add(&sigpipes, 1);
}

/* The peer gone: EPIPE and one SIGPIPE, the position unmoved. */
static void m_sendfile_epipe(void)
{
    ticker_start();
    struct sigaction sa = { .sa_handler = on_pipe };
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
    int f = pattern_file(100000), sv[2];
    unix_pair(sv);
    close(sv[1]);
    CHECK(lseek(f, 10, SEEK_SET) == 10);
    errno = 0;
    ssize_t r = sendfile(sv[0], f, NULL, 1000);
    CHECKF(r == -1 && errno == EPIPE, "sendfile to a closed peer returned %zd (%s)", r, ename(errno));
    CHECK(atomic_load(&sigpipes) == 1);
    CHECK(lseek(f, 0, SEEK_CUR) == 10);
    close(sv[0]);
    close(f);
    ticker_end();
}

/* ---- splice, tee, vmsplice --------------------------------------------------------- */

/* File to pipe: each call moves what fits. */
static void m_splice_file_pipe(void)
{
    int f = pattern_file(TOTAL), p[2];
    make_pipe(p);
    struct peer *rd = reader(p[0], TOTAL, 0);
    loff_t off = 0;
    while (off < (loff_t)TOTAL) {
        ssize_t r = splice(f, &off, p[1], NULL, TOTAL - (size_t)off, 0);
        CHECKF(r > 0, "splice from a file returned %zd (%s)", r, ename(errno));
        if (r <= 0)
            break;
    }
    CHECK(lseek(f, 0, SEEK_CUR) == (off_t)TOTAL);   /* pattern_file's write left it there */
    close(p[1]);
    reader_end(rd, "splice from a file into a pipe");
    close(p[0]);
    close(f);
}

/* Pipe to socket: a writer fills the pipe, the reader drains the socket. */
static void splice_into_socket(int sv[2])
{
    int p[2];
    make_pipe(p);
    /* A pipe holding more than the socket takes: one splice must wait for
     * room (as proxies that splice set it). */
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 1 << 20) >= 1 << 20);
    struct peer *wr = writer(p[1], TOTAL), *rd = reader(sv[1], TOTAL, 0);
    size_t done = 0;
    while (done < TOTAL) {
        ssize_t r = splice(p[0], NULL, sv[0], NULL, TOTAL - done, 0);
        CHECKF(r > 0, "splice into a socket returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    writer_end(wr);
    reader_end(rd, "splice from a pipe into a socket");
    close(p[0]);
    close(p[1]);
}

static void m_splice_pipe_unix(void)
{
    int sv[2];
    unix_pair(sv);
    splice_into_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

static void m_splice_pipe_tcp(void)
{
    int sv[2];
    tcp_pair(sv);
    /* Buffers smaller than the pipe (loopback TCP would take 1 MiB). */
    int small = 65536;
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    splice_into_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

/* Socket to pipe. */
static void splice_from_socket(int sv[2])
{
    int p[2];
    make_pipe(p);
    struct peer *wr = writer(sv[1], TOTAL), *rd = reader(p[0], TOTAL, 0);
    size_t done = 0;
    while (done < TOTAL) {
        ssize_t r = splice(sv[0], NULL, p[1], NULL, TOTAL - done, 0);
        CHECKF(r > 0, "splice from a socket returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    writer_end(wr);
    reader_end(rd, "splice from a socket into a pipe");
    close(p[0]);
    close(p[1]);
}

static void m_splice_unix_pipe(void)
{
    int sv[2];
    unix_pair(sv);
    splice_from_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

static void m_splice_tcp_pipe(void)
{
    int sv[2];
    tcp_pair(sv);
    splice_from_socket(sv);
    close(sv[0]);
    close(sv[1]);
}

/* Pipe to pipe. */
static void m_splice_pipe_pipe(void)
{
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct peer *wr = writer(a[1], TOTAL), *rd = reader(b[0], TOTAL, 0);
    size_t done = 0;
    while (done < TOTAL) {
        ssize_t r = splice(a[0], NULL, b[1], NULL, TOTAL - done, 0);
        CHECKF(r > 0, "splice between pipes returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    /* The writer is done and gone: an empty pipe without writers is 0. */
    writer_end(wr);
    close(a[1]);
    CHECK(splice(a[0], NULL, b[1], NULL, 100, 0) == 0);
    reader_end(rd, "splice between pipes");
    close(a[0]);
    close(b[0]);
    close(b[1]);
}

/* A signal while splice waits for room in the socket: -1 EINTR (nothing
 * of this call sent); what was sent before is in the socket, the rest
 * still in the pipe. */
static void m_splice_eintr(void)
{
    ticker_start();
    int sv[2], p[2];
    unix_pair(sv);
    make_pipe(p);
    unsigned char *b = pattern_buf(65536);
    size_t done = 0;
    timer_t tm = signal_in(150);
    ssize_t r;
    for (;;) {
        CHECK(write(p[1], b, 65536) == 65536);
        errno = 0;
        r = splice(p[0], NULL, sv[0], NULL, 65536, 0);
        if (r <= 0)
            break;
        done += (size_t)r;
        CHECKF(r == 65536 || atomic_load(&handled), "splice of a full pipe returned %zd", r);
        if (r < 65536)
            break;
    }
    CHECKF(atomic_load(&handled) == 1, "%d signals handled", atomic_load(&handled));
    CHECKF((r == -1 && errno == EINTR) || r > 0, "interrupted splice returned %zd (%s)", r, ename(errno));
    CHECK(done > 0);
    timer_delete(tm);
    free(b);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    ticker_end();
}

/* tee: the copy goes to the second pipe, the first keeps its data. */
static void m_tee(void)
{
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    struct peer *wr = writer(a[1], TOTAL), *rd = reader(b[0], TOTAL, 0);
    unsigned char *buf = malloc(1 << 20);
    size_t done = 0;
    while (done < TOTAL) {
        ssize_t r = tee(a[0], b[1], TOTAL - done, 0);
        CHECKF(r > 0, "tee returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        /* Consume what was duplicated, from the first pipe itself. */
        size_t got = 0;
        while (got < (size_t)r) {
            ssize_t n = read(a[0], buf + got, (size_t)r - got);
            CHECK(n > 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        for (size_t i = 0; i < got; i++)
            if (buf[i] != pattern(done + i)) {
                CHECKF(0, "tee: byte %zu of the first pipe differs", done + i);
                break;
            }
        done += (size_t)r;
    }
    writer_end(wr);
    reader_end(rd, "tee");
    free(buf);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* vmsplice into a pipe (each call maps what fits), and out of one. */
static void m_vmsplice(void)
{
    int p[2];
    make_pipe(p);
    unsigned char *b = pattern_buf(TOTAL);
    struct peer *rd = reader(p[0], TOTAL, 0);
    size_t done = 0;
    while (done < TOTAL) {
        struct iovec v = { b + done, TOTAL - done };
        ssize_t r = vmsplice(p[1], &v, 1, 0);
        CHECKF(r > 0, "vmsplice into a pipe returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    reader_end(rd, "vmsplice into a pipe");     /* b must stay until it is read */

    struct peer *wr = writer(p[1], TOTAL);
    unsigned char *in = malloc(TOTAL);
    done = 0;
    while (done < TOTAL) {
        struct iovec v = { in + done, TOTAL - done };
        ssize_t r = vmsplice(p[0], &v, 1, 0);
        CHECKF(r > 0, "vmsplice out of a pipe returned %zd (%s) after %zu", r, ename(errno), done);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    writer_end(wr);
    CHECK(done == TOTAL && memcmp(in, b, TOTAL) == 0);
    free(in);
    free(b);
    close(p[0]);
    close(p[1]);
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "sendfile_unix", m_sendfile_unix },
        { "sendfile_tcp", m_sendfile_tcp },
        { "sendfile_pipe", m_sendfile_pipe },
        { "sendfile_eof", m_sendfile_eof },
        { "sendfile_sndtimeo", m_sendfile_sndtimeo },
        { "sendfile_eintr", m_sendfile_eintr },
        { "sendfile_epipe", m_sendfile_epipe },
        { "splice_file_pipe", m_splice_file_pipe },
        { "splice_pipe_unix", m_splice_pipe_unix },
        { "splice_pipe_tcp", m_splice_pipe_tcp },
        { "splice_unix_pipe", m_splice_unix_pipe },
        { "splice_tcp_pipe", m_splice_tcp_pipe },
        { "splice_pipe_pipe", m_splice_pipe_pipe },
        { "splice_eintr", m_splice_eintr },
        { "tee", m_tee },
        { "vmsplice", m_vmsplice },
    };
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
