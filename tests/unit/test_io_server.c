/*
 * test_io_server.c - many blocking I/O callers at once on one OS thread.
 *
 * A server written the thread-per-connection way (blocking accept(), read(),
 * write()) and its clients, all as coroutines of the explicit API: 100
 * clients each doing 100 request/response round trips over TCP loopback,
 * every byte verified; a ring of pipes passing tokens through hundreds of
 * blocked readers; and hundreds of readers parked in read() at once, woken
 * together. Everything must run on the test's one OS thread.
 *
 * Assertions are made on the main coroutine only; coroutines record.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "testutil.h"
#include "io_testutil.h"

TestSuite(io_server, .timeout = 120);

static pid_t main_tid;
static int wrong_thread;   /* a coroutine ran on another OS thread */

static void check_thread(void)
{
    if ((pid_t)syscall(SYS_gettid) != main_tid)
        wrong_thread++;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static corun_t *go_small(corun_fn fn, void *arg)
{
    corun_t *co;
    corun_attr_t a = { .stack_size = 128 * 1024 };
    OK(corun_spawn(&co, &a, fn, arg));
    return co;
}

/* Read exactly n bytes (a blocking read may return fewer). 0: EOF at the
 * start, 1: all read, -1: error or EOF in the middle. */
static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r == 0 && got == 0)
            return 0;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 1;
}

/* ---- 100 clients x 100 round trips over TCP ----------------------------------*/

enum { NCLIENTS = 100, NROUNDS = 100, REQ = 48, RESP = 96 };

struct server {
    int l;
    corun_t *handlers[NCLIENTS];
    int accepted;
    int accept_err;
    long handler_errors;
    long requests;
};

struct client {
    struct sockaddr_in addr;
    int id;
    int err;            /* step that failed, 0 if none */
    int errnum;
    long rounds;
    long bytes;
};

static int active, max_active;

static void make_request(unsigned char *req, int id, int seq)
{
    for (int i = 0; i < REQ; i++)
        req[i] = (unsigned char)(id * 131 + seq * 7 + i * 13);
    memcpy(req, &id, sizeof id);
    memcpy(req + 4, &seq, sizeof seq);
}

/* The response: the request, then the request reversed with every byte
 * complemented. */
static void make_response(const unsigned char *req, unsigned char *resp)
{
    memcpy(resp, req, REQ);
    for (int i = 0; i < REQ; i++)
        resp[REQ + i] = (unsigned char)~req[REQ - 1 - i];
}

static void *handler(void *arg)
{
    int fd = (int)PI(arg);
    unsigned char req[REQ], resp[RESP];
    long n = 0;
    check_thread();
    /* Two small writes per response: without TCP_NODELAY, Nagle and the
     * peer's delayed ACK would add 40 ms per round trip (natively too). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        int r = read_full(fd, req, REQ);
        if (r == 0)
            break;
        if (r < 0) {
            close(fd);
            return IP(-1L);
        }
        make_response(req, resp);
        /* The response in two writes, to make the client see partial
         * reads now and then. */
        if (write(fd, resp, 10) != 10 || write(fd, resp + 10, RESP - 10) != RESP - 10) {
            close(fd);
            return IP(-1L);
        }
        n++;
    }
    check_thread();
    close(fd);
    return IP(n);
}

static void *server_co(void *arg)
{
    struct server *s = arg;
    check_thread();
    for (int i = 0; i < NCLIENTS; i++) {
        int fd = accept(s->l, NULL, NULL);
        if (fd < 0) {
            s->accept_err = errno;
            return NULL;
        }
        corun_t *h;
        corun_attr_t a = { .stack_size = 128 * 1024 };
        if (corun_spawn(&h, &a, handler, IP(fd)) != 0) {
            close(fd);
            return NULL;
        }
        s->handlers[s->accepted++] = h;
    }
    return NULL;
}

static void *client_co(void *arg)
{
    struct client *c = arg;
    unsigned char req[REQ], resp[RESP], want[RESP];
    check_thread();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        c->err = 1;
        c->errnum = errno;
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
        c->err = 2;
        c->errnum = errno;
        close(fd);
        return NULL;
    }
    if (++active > max_active)
        max_active = active;
    for (int seq = 0; seq < NROUNDS; seq++) {
        make_request(req, c->id, seq);
        ssize_t w = write(fd, req, REQ);
        if (w != REQ) {
            c->err = 3;
            c->errnum = errno;
            break;
        }
        if (read_full(fd, resp, RESP) != 1) {
            c->err = 4;
            c->errnum = errno;
            break;
        }
        make_response(req, want);
        if (memcmp(resp, want, RESP) != 0) {
            c->err = 5;
            break;
        }
        c->rounds++;
        c->bytes += REQ + RESP;
    }
    active--;
    check_thread();
    close(fd);
    return NULL;
}

Test(io_server, hundred_clients_hundred_round_trips_one_thread)
{
    corun_current();
    main_tid = (pid_t)syscall(SYS_gettid);
    wrong_thread = 0;
    active = max_active = 0;
    int threads_before = count_threads();

    struct server srv = { 0 };
    struct sockaddr_in a;
    srv.l = tu_tcp_listener(&a, 0, 256);

    static struct client cl[NCLIENTS];
    corun_t *cc[NCLIENTS];
    int64_t t0 = tu_now();
    corun_t *sc = go_small(server_co, &srv);
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (struct client){ .addr = a, .id = i };
        cc[i] = go_small(client_co, &cl[i]);
    }
    for (int i = 0; i < NCLIENTS; i++)
        join(cc[i]);
    join(sc);
    cr_assert_eq(srv.accepted, NCLIENTS, "accepted %d (%s)", srv.accepted,
                 strerror(srv.accept_err));
    long served = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        long n = (long)PI(join(srv.handlers[i]));
        cr_assert_geq(n, 0, "handler %d failed", i);
        served += n;
    }
    int64_t el = tu_now() - t0;
    long bytes = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        cr_assert_eq(cl[i].err, 0, "client %d failed at step %d (%s) after %ld rounds", i,
                     cl[i].err, strerror(cl[i].errnum), cl[i].rounds);
        cr_assert_eq(cl[i].rounds, NROUNDS);
        bytes += cl[i].bytes;
    }
    cr_assert_eq(served, (long)NCLIENTS * NROUNDS);
    cr_assert_eq(bytes, (long)NCLIENTS * NROUNDS * (REQ + RESP));
    cr_assert_eq(wrong_thread, 0, "%d coroutine steps ran on another OS thread", wrong_thread);
    cr_assert_eq(count_threads(), threads_before, "OS threads: %d before, %d after",
                 threads_before, count_threads());
    /* The clients really were served at the same time. */
    cr_assert_geq(max_active, NCLIENTS / 2, "at most %d clients were connected at once",
                  max_active);
    cr_assert_lt(el, CORUN_SEC(60));
    close(srv.l);
}

/* ---- hundreds of readers parked at once ----------------------------------*/

enum { NREADERS = 300 };

struct parked_reader {
    int fd;
    int64_t entered, returned;
    ssize_t r;
    char buf[16];
};

static void *parked_reader_co(void *arg)
{
    struct parked_reader *p = arg;
    check_thread();
    p->entered = tu_now();
    p->r = read(p->fd, p->buf, sizeof p->buf);
    p->returned = tu_now();
    check_thread();
    return NULL;
}

Test(io_server, hundreds_of_readers_parked_at_once)
{
    corun_current();
    main_tid = (pid_t)syscall(SYS_gettid);
    wrong_thread = 0;
    int threads_before = count_threads();
    static int fds[NREADERS][2];
    static struct parked_reader pr[NREADERS];
    corun_t *co[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        if (i % 2)
            cr_assert_eq(pipe(fds[i]), 0, "pipe: %s", strerror(errno));
        else
            cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
        pr[i] = (struct parked_reader){ .fd = fds[i][0] };
        co[i] = go_small(parked_reader_co, &pr[i]);
    }
    corun_sleep(CORUN_MSEC(100));
    int64_t wake = tu_now();
    for (int i = 0; i < NREADERS; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "r%d", i);
        cr_assert_eq(write(fds[i][1], msg, (size_t)n), n);
    }
    for (int i = 0; i < NREADERS; i++)
        join(co[i]);
    int64_t done = tu_now();
    int64_t first_return = INT64_MAX, last_enter = 0;
    for (int i = 0; i < NREADERS; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "r%d", i);
        cr_assert_eq(pr[i].r, n, "reader %d: %zd", i, pr[i].r);
        cr_assert_eq(memcmp(pr[i].buf, msg, (size_t)n), 0);
        if (pr[i].returned < first_return)
            first_return = pr[i].returned;
        if (pr[i].entered > last_enter)
            last_enter = pr[i].entered;
    }
    /* All readers were inside read() before any returned, and none
     * returned before its data was written. */
    cr_assert_lt(last_enter, first_return);
    cr_assert_geq(first_return, wake);
    cr_assert_lt(done - wake, CORUN_SEC(5));
    cr_assert_eq(wrong_thread, 0);
    cr_assert_eq(count_threads(), threads_before);
    for (int i = 0; i < NREADERS; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
}

/* ---- a ring of pipes: tokens through many blocked readers --------------------*/

enum { RING = 400, LAPS = 5, TOKENS = 3 };

struct ring_node {
    int in, out;
    int owns_out;
    int passes;
    int err;
};

static void *ring_co(void *arg)
{
    struct ring_node *n = arg;
    check_thread();
    for (;;) {
        unsigned int tok;
        int r = read_full(n->in, &tok, sizeof tok);
        if (r == 0)
            break;
        if (r < 0) {
            n->err = 1;
            break;
        }
        n->passes++;
        /* A token carries its remaining hop count; 0 retires it. */
        if (tok == 0)
            continue;
        tok--;
        if (write(n->out, &tok, sizeof tok) != sizeof tok) {
            n->err = 2;
            break;
        }
    }
    if (n->owns_out)
        close(n->out);   /* EOF travels round the ring */
    return NULL;
}

Test(io_server, ring_of_pipes)
{
    corun_current();
    main_tid = (pid_t)syscall(SYS_gettid);
    wrong_thread = 0;
    static int p[RING][2];
    static struct ring_node nodes[RING];
    corun_t *co[RING];
    for (int i = 0; i < RING; i++)
        cr_assert_eq(pipe(p[i]), 0, "pipe %d: %s", i, strerror(errno));
    /* Node i reads pipe i and writes pipe i+1; the main coroutine injects
     * tokens into pipe 0, which node RING-1 writes into too (same fd: the
     * main coroutine closes it at the end). */
    for (int i = 0; i < RING; i++) {
        nodes[i] = (struct ring_node){ .in = p[i][0], .out = p[(i + 1) % RING][1],
                                       .owns_out = i != RING - 1 };
        co[i] = go_small(ring_co, &nodes[i]);
    }
    corun_sleep(CORUN_MSEC(10));   /* every node is parked in read() */
    int64_t t0 = tu_now();
    unsigned int hops = RING * LAPS - 1;
    for (int t = 0; t < TOKENS; t++)
        cr_assert_eq(write(p[0][1], &hops, sizeof hops), (ssize_t)sizeof hops);
    /* Each token makes RING * LAPS passes. Wait for all of them. */
    for (;;) {
        long total = 0;
        for (int i = 0; i < RING; i++)
            total += nodes[i].passes;
        if (total >= (long)RING * LAPS * TOKENS)
            break;
        cr_assert_lt(tu_now() - t0, CORUN_SEC(30), "tokens stalled after %ld passes", total);
        corun_sleep(CORUN_MSEC(5));
    }
    /* Shut the ring: closing pipe 0's only write end gives node 0 EOF;
     * each node then closes its output, and EOF travels round. */
    close(p[0][1]);
    for (int i = 0; i < RING; i++)
        join(co[i]);
    for (int i = 0; i < RING; i++) {
        cr_assert_eq(nodes[i].err, 0, "node %d failed at step %d", i, nodes[i].err);
        cr_assert_eq(nodes[i].passes, LAPS * TOKENS, "node %d saw %d tokens", i,
                     nodes[i].passes);
        close(p[i][0]);
    }
    cr_assert_eq(wrong_thread, 0);
}
