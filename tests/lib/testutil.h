/*
 * testutil.h - small helpers shared by the corun unit tests.
 *
 * Everything here is static inline so each test program stays a single
 * translation unit.
 */
#ifndef CORUN_TESTUTIL_H
#define CORUN_TESTUTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "corun.h"

/* Integer <-> pointer round trips for coroutine arguments and results. */
#define IP(x) ((void *)(intptr_t)(x))   /* as pt_common.h's */
#define PI(p) ((uintptr_t)(p))

/* Monotonic clock in nanoseconds, the clock corun's timeouts are measured on. */
static inline int64_t tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Assert a corun call returned 0, printing the errno name otherwise. */
#define OK(call)                                                              \
    do {                                                                      \
        int ok_rc_ = (call);                                                  \
        cr_assert_eq(ok_rc_, 0, "%s returned %d (%s)", #call, ok_rc_,         \
                     strerror(ok_rc_));                                       \
    } while (0)

/* Assert a corun call failed with exactly the given error. */
#define FAILS(call, err)                                                      \
    do {                                                                      \
        int f_rc_ = (call);                                                   \
        cr_assert_eq(f_rc_, (err), "%s returned %d (%s), expected %d (%s)",   \
                     #call, f_rc_, strerror(f_rc_), (err), strerror(err));    \
    } while (0)

/*
 * An event log: coroutines append small integers, the test compares the
 * whole sequence at the end.
 */
#define TU_LOG_MAX 4096
struct tu_log {
    int n;
    int v[TU_LOG_MAX];
};

static inline void tu_log_add(struct tu_log *l, int v)
{
    if (l->n < TU_LOG_MAX)
        l->v[l->n] = v;
    l->n++;
}

static inline void tu_log_fmt(const struct tu_log *l, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n && i < TU_LOG_MAX && off + 16 < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "",
                                l->v[i]);
}

/* Does the log hold exactly the n values of want, in order? Fills got/exp
 * with printable forms of both for the assertion message. */
static inline int tu_log_matches(const struct tu_log *l, const int *want, int n, char *got,
                                 char *exp, size_t len)
{
    struct tu_log w = { .n = n };
    memcpy(w.v, want, (size_t)n * sizeof *want);
    tu_log_fmt(l, got, len);
    tu_log_fmt(&w, exp, len);
    return l->n == n && memcmp(l->v, want, (size_t)n * sizeof *want) == 0;
}

/* Assert the log is exactly the given sequence (reported at the caller). */
#define TU_EXPECT(log, ...)                                                   \
    do {                                                                      \
        const int tu_want_[] = { __VA_ARGS__ };                               \
        char tu_got_[2048], tu_exp_[2048];                                    \
        int tu_ok_ = tu_log_matches((log), tu_want_,                          \
                                    (int)(sizeof tu_want_ / sizeof tu_want_[0]), \
                                    tu_got_, tu_exp_, sizeof tu_got_);        \
        cr_assert(tu_ok_, "wrong sequence: got [%s], expected [%s]", tu_got_, \
                  tu_exp_);                                                   \
    } while (0)

/* Index of the first occurrence of v in the log, or -1. */
static inline int tu_log_index(const struct tu_log *l, int v)
{
    for (int i = 0; i < l->n && i < TU_LOG_MAX; i++)
        if (l->v[i] == v)
            return i;
    return -1;
}

/*
 * Output of a child process: its wait status and what it wrote on stdout and
 * stderr (NUL-terminated, truncated to the buffers' sizes).
 */
struct tu_child {
    int status;
    char out[8192];
    char err[16384];
};

/* A child still running after this long is probably hung (pt_main's alarm
 * ends it at 30 s): its threads' backtraces go to our stderr, the test's
 * log, so a rare hang on a CI machine leaves evidence. */
#ifndef TU_HANG_REPORT_NS
#define TU_HANG_REPORT_NS (27 * 1000000000LL)
#endif

static inline void tu_report_hang(pid_t pid)
{
    char spid[16];
    snprintf(spid, sizeof spid, "%d", (int)pid);
    fprintf(stderr, "--- pid %s still running after %lld s: its threads (gdb) ---\n", spid,
            TU_HANG_REPORT_NS / 1000000000);
    fflush(stderr);
    pid_t g = fork();
    if (g == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(2, 1);
        execlp("gdb", "gdb", "-nx", "-batch", "-p", spid, "-ex", "info threads", "-ex",
               "thread apply all bt 30", (char *)NULL);
        fprintf(stderr, "(gdb not available: %s)\n", strerror(errno));
        _exit(127);
    }
    if (g > 0)
        while (waitpid(g, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Read both pipes until EOF on both, then reap pid. */
static inline void tu_collect(pid_t pid, int outfd, int errfd, struct tu_child *c)
{
    size_t no = 0, ne = 0;
    struct pollfd p[2] = { { .fd = outfd, .events = POLLIN },
                           { .fd = errfd, .events = POLLIN } };
    int open_fds = 2;
    int64_t hang_at = tu_now() + TU_HANG_REPORT_NS;
    while (open_fds > 0) {
        int64_t left = hang_at - tu_now();
        if (hang_at && left <= 0) {
            tu_report_hang(pid);
            hang_at = 0;
        }
        int timeout = hang_at ? (int)(left / 1000000 + 1) : -1;
        int n = poll(p, 2, timeout);
        if (n == 0)
            continue;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char *buf = i ? c->err : c->out;
            size_t cap = (i ? sizeof c->err : sizeof c->out) - 1;
            size_t *len = i ? &ne : &no;
            char scratch[4096];
            ssize_t r = read(p[i].fd, scratch, sizeof scratch);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            size_t take = (size_t)r;
            if (take > cap - *len)
                take = cap - *len;
            memcpy(buf + *len, scratch, take);
            *len += take;
        }
    }
    c->out[no] = '\0';
    c->err[ne] = '\0';
    while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR)
        ;
}

/* Fork a child whose stdout and stderr go to pipes, with a 60 s alarm (it
 * survives execve) so a hung child never lingers; the child runs
 * child(arg), which must not return. The parent collects its outcome. */
static inline void tu_run_captured(void (*child)(void *), void *arg, struct tu_child *c)
{
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        alarm(60);
        child(arg);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    memset(c, 0, sizeof *c);
    tu_collect(pid, po[0], pe[0], c);
}

struct tu_fn_call {
    void (*fn)(void *);
    void *arg;
};

static inline void tu_call_and_exit(void *p)
{
    struct tu_fn_call *call = p;
    call->fn(call->arg);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/*
 * Run fn(arg) in a forked child with stdout and stderr captured. The child
 * exits 0 if fn returns. Returns the child's outcome in *c.
 */
static inline void tu_fork_run(void (*fn)(void *), void *arg, struct tu_child *c)
{
    struct tu_fn_call call = { fn, arg };
    tu_run_captured(tu_call_and_exit, &call, c);
}

struct tu_exec_call {
    const char *path;
    char *const *argv, *const *envp;
};

static inline void tu_exec_and_exit(void *p)
{
    struct tu_exec_call *e = p;
    execve(e->path, e->argv, e->envp);
    dprintf(2, "execve %s: %s\n", e->path, strerror(errno));
    _exit(127);
}

/*
 * Run the program at path with argv and exactly the environment envp,
 * capturing stdout and stderr.
 */
static inline void tu_exec_run(const char *path, char *const argv[],
                               char *const envp[], struct tu_child *c)
{
    struct tu_exec_call e = { path, argv, envp };
    tu_run_captured(tu_exec_and_exit, &e, c);
}

/* Human-readable description of a wait status, for assertion messages. */
/* A TCP listener on 127.0.0.1, any port (socket type flags `type`, e.g.
 * SOCK_NONBLOCK); *a gets its address. */
static inline int tu_tcp_listener(struct sockaddr_in *a, int type, int backlog)
{
    int l = socket(AF_INET, SOCK_STREAM | type, 0);
    cr_assert_geq(l, 0, "socket: %s", strerror(errno));
    *a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof *a;
    cr_assert_eq(bind(l, (struct sockaddr *)a, al), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(l, backlog), 0, "listen: %s", strerror(errno));
    cr_assert_eq(getsockname(l, (struct sockaddr *)a, &al), 0);
    return l;
}

/* A connected TCP pair on loopback: fds[0] the client, fds[1] the server side. */
static inline void tu_tcp_pair(int fds[2])
{
    struct sockaddr_in a;
    int l = tu_tcp_listener(&a, 0, 8);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fds[0], 0, "socket: %s", strerror(errno));
    cr_assert_eq(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
                 strerror(errno));
    fds[1] = accept(l, NULL, NULL);
    cr_assert_geq(fds[1], 0, "accept: %s", strerror(errno));
    close(l);
}

static inline const char *tu_status_str(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "wait status 0x%x", status);
    return buf;
}

#endif /* CORUN_TESTUTIL_H */
