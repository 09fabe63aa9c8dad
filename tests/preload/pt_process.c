/*
 * pt_process.c - a plain pthread program (not linked with corun): child
 * processes from many threads at once (system, popen/pclose, fork + wait,
 * waitpid(-1), WUNTRACED, waitid), fork while other threads are parked,
 * and exit semantics (exit from a thread runs atexit handlers once).
 *
 * Run by tests/test_pthread_green as `pt_process MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 * A ticker thread counts 10 ms sleeps throughout: under corun it keeps
 * counting while the others wait for children (the waits park, they do not
 * block the one OS thread).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_common.h"

static atomic_int slow_ticks;
static atomic_bool stop_ticking;

static void *slow_ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_ticking)) {
        usleep(10000);
        atomic_fetch_add(&slow_ticks, 1);
    }
    return NULL;
}

static pthread_t slow_ticker_start(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, slow_ticker, NULL));
    return t;
}

/* The ticker ran during the last `ms` of waiting (at least a third of the
 * slow_ticks it would have had: proof the wait did not hold the thread). */
static void slow_ticker_stop(pthread_t t, int before, int ms)
{
    int n = atomic_load(&slow_ticks) - before;
    atomic_store(&stop_ticking, true);
    OK(pthread_join(t, NULL));
    CHECKF(n >= ms / 10 / 3, "the ticker counted %d ticks in about %d ms of waiting", n, ms);
}

/* ---- system ------------------------------------------------------------------------*/

static void *run_system(void *arg)
{
    long i = (long)(intptr_t)arg;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sleep 0.3; exit %ld", i % 7);
    return IP(system(cmd));
}

static void m_system_many(void)
{
    pthread_t tk = slow_ticker_start();
    int t0 = atomic_load(&slow_ticks);
    int64_t start = mono_ns();
    pthread_t th[20];
    for (long i = 0; i < 20; i++)
        OK(pthread_create(&th[i], NULL, run_system, IP(i)));
    for (long i = 0; i < 20; i++) {
        void *r;
        OK(pthread_join(th[i], &r));
        int st = (int)(intptr_t)r;
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == i % 7, "system #%ld: status %#x", i, st);
    }
    int64_t el = mono_ns() - start;
    CHECKF(el < 3000 * MS, "20 system() calls of 0.3 s took %lld ms: not concurrent",
           (long long)(el / MS));
    slow_ticker_stop(tk, t0, 300);
    CHECK(system(NULL) != 0);            /* there is a shell */
    int st = system("kill -TERM $$");
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "killed shell: status %#x", st);
}

/* ---- popen -------------------------------------------------------------------------------*/

/* When each popen() thread's steps ended (ns after the start), for a
 * failure report: a slow spawn, a slow child or a slow reap. */
static int64_t popen_start, popen_steps[10][3];

static void *run_popen(void *arg)
{
    long i = (long)(intptr_t)arg;
    char cmd[64], want[32], got[32] = "";
    snprintf(cmd, sizeof cmd, "sleep 0.4; echo line%ld; exit %ld", i, i % 5);
    snprintf(want, sizeof want, "line%ld\n", i);
    FILE *f = popen(cmd, "r");
    popen_steps[i][0] = mono_ns() - popen_start;
    CHECK(f != NULL);
    if (!f)
        return IP(-1);
    CHECK(fgets(got, sizeof got, f) != NULL);
    popen_steps[i][1] = mono_ns() - popen_start;
    CHECKF(!strcmp(got, want), "popen #%ld read [%s]", i, got);
    int st = pclose(f);
    popen_steps[i][2] = mono_ns() - popen_start;
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == i % 5, "pclose #%ld: status %#x", i, st);
    return NULL;
}

static void m_popen_many(void)
{
    pthread_t tk = slow_ticker_start();
    int t0 = atomic_load(&slow_ticks);
    popen_start = mono_ns();
    pthread_t th[10];
    for (long i = 0; i < 10; i++)
        OK(pthread_create(&th[i], NULL, run_popen, IP(i)));
    for (long i = 0; i < 10; i++)
        OK(pthread_join(th[i], NULL));
    int64_t el = mono_ns() - popen_start;
    /* One after another they take 4 s; together 0.4 s and the start-up of
     * ten shells (a loaded machine took 2 s for ten of 0.2 s once). */
    CHECKF(el < 3000 * MS, "10 popen() commands of 0.4 s took %lld ms: not concurrent",
           (long long)(el / MS));
    if (el >= 3000 * MS)
        for (int i = 0; i < 10; i++)
            fprintf(stderr, "  popen #%d: started after %lld ms, read at %lld, reaped at %lld\n", i,
                    (long long)(popen_steps[i][0] / MS), (long long)(popen_steps[i][1] / MS),
                    (long long)(popen_steps[i][2] / MS));
    slow_ticker_stop(tk, t0, 400);
    /* Writing to a child, and the errors. */
    FILE *w = popen("read x; test \"$x\" = hello", "w");
    CHECK(w != NULL);
    if (w) {
        fputs("hello\n", w);
        int st = pclose(w);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pclose(w): status %#x", st);
    }
    errno = 0;
    CHECK(popen("true", "x") == NULL && errno == EINVAL);
}

/* ---- wait family ----------------------------------------------------------------------------*/

static void m_wait_any(void)
{
    pthread_t tk = slow_ticker_start();
    int t0 = atomic_load(&slow_ticks);
    pid_t kids[5];
    for (int i = 0; i < 5; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            usleep((useconds_t)(100000 + 50000 * i));
            _exit(10 + i);
        }
        CHECK(kids[i] > 0);
    }
    int seen = 0;
    for (int n = 0; n < 5; n++) {
        int st;
        pid_t r = wait(&st);
        int i = 0;
        while (i < 5 && kids[i] != r)
            i++;
        CHECKF(i < 5, "wait returned %d (%s)", (int)r, ename(errno));
        if (i < 5) {
            CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 10 + i, "child %d: status %#x", i, st);
            CHECKF(!(seen & (1 << i)), "child %d reported twice", i);
            seen |= 1 << i;
        }
    }
    errno = 0;
    CHECK(wait(NULL) == -1 && errno == ECHILD);
    slow_ticker_stop(tk, t0, 300);
}

static void m_wait_stopped(void)
{
    pthread_t tk = slow_ticker_start();
    pid_t p = fork();
    if (p == 0) {
        raise(SIGSTOP);
        usleep(200000);                   /* the parent sees the continue first */
        _exit(4);
    }
    int st = 0;
    CHECK(waitpid(-1, &st, WUNTRACED) == p && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    CHECK(kill(p, SIGCONT) == 0);
    CHECK(waitpid(p, &st, WCONTINUED) == p && WIFCONTINUED(st));
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 4);
    siginfo_t si;
    p = fork();
    if (p == 0) {
        usleep(100000);
        _exit(5);
    }
    memset(&si, 0, sizeof si);
    OK(waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT));
    CHECK(si.si_pid == p && si.si_code == CLD_EXITED && si.si_status == 5);
    memset(&si, 0, sizeof si);
    OK(waitid(P_ALL, 0, &si, WEXITED));   /* WNOWAIT left it waitable */
    CHECK(si.si_pid == p && si.si_status == 5);
    /* A process group of its own. */
    p = fork();
    if (p == 0) {
        setpgid(0, 0);
        usleep(100000);
        _exit(6);
    }
    setpgid(p, p);
    CHECK(waitpid(-p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 6);
    atomic_store(&stop_ticking, true);
    OK(pthread_join(tk, NULL));
}

/* ---- fork while other threads are parked --------------------------------------------------*/

static void *park_on_pipe(void *arg)
{
    int fd = *(int *)arg;
    char buf[8];
    ssize_t n = read(fd, buf, sizeof buf);
    return IP(n);
}

static void m_fork_while_parked(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pthread_t readers[4];
    for (int i = 0; i < 4; i++)
        OK(pthread_create(&readers[i], NULL, park_on_pipe, &p[0]));
    usleep(50000);
    pid_t c = fork();
    if (c == 0) {
        /* Only this thread lives on here; it can make threads, sleep, wait. */
        pthread_t t = slow_ticker_start();
        usleep(50000);
        atomic_store(&stop_ticking, true);
        pthread_join(t, NULL);
        _exit(atomic_load(&slow_ticks) > 0 ? 7 : 8);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 7);
    CHECK(write(p[1], "abcd", 4) == 4);   /* the parent's readers are still there */
    close(p[1]);                          /* and the others see end of file */
    long total = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        OK(pthread_join(readers[i], &r));
        total += (long)(intptr_t)r;
    }
    CHECKF(total == 4, "the parent's parked readers got %ld bytes", total);
    close(p[0]);
}

/* ---- prefork: workers sharing one listening socket -------------------------------------*/

/* Four forked workers accept on the listening socket they share and
 * answer each connection in a thread of its own; two also keep a thread
 * parked, so that under corun they are never a lone green thread. A
 * blocking accept must never fail with EAGAIN (another process's
 * emulation flipping O_NONBLOCK on the shared file would cause it) nor
 * keep the worker's other threads from running. Workers that fail exit;
 * the others are killed at the end. */
static void *answer_one(void *arg)
{
    int c = (int)(intptr_t)arg;
    char b;
    if (read(c, &b, 1) == 1)
        (void)!write(c, &b, 1);
    close(c);
    return NULL;
}

static void prefork_worker(int l, bool keep_parked)
{
    int p[2];
    pthread_t idle;
    if (keep_parked && (pipe(p) != 0 || pthread_create(&idle, NULL, park_on_pipe, &p[0]) != 0))
        _exit(20);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            _exit(errno == EAGAIN ? 21 : 22);
        pthread_t t;
        if (pthread_create(&t, NULL, answer_one, IP(c)) != 0)
            _exit(23);
        pthread_detach(t);
    }
}

static int prefork_port;

/* One round trip of `byte`, each step bounded by 5 s; 1 on success. */
static int prefork_trip(char byte)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = (in_port_t)prefork_port,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int ok = 0;
    if (connect(c, (struct sockaddr *)&a, sizeof a) == 0 && write(c, &byte, 1) == 1) {
        struct pollfd pf = { .fd = c, .events = POLLIN };
        char b = 0;
        ok = poll(&pf, 1, 5000) == 1 && read(c, &b, 1) == 1 && b == byte;
    }
    close(c);
    return ok;
}

static void *prefork_client(void *arg)
{
    (void)arg;
    long ok = 0;
    for (int i = 0; i < 300; i++)
        ok += prefork_trip('x');
    return IP(ok);
}

static void m_prefork_accept(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 128) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    prefork_port = a.sin_port;
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        CHECK(kids[i] >= 0);
        if (kids[i] == 0)
            prefork_worker(l, i % 2 == 0);
    }
    pthread_t cl[4];
    for (int i = 0; i < 4; i++)
        OK(pthread_create(&cl[i], NULL, prefork_client, NULL));
    long ok = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        OK(pthread_join(cl[i], &r));
        ok += (long)(intptr_t)r;
    }
    CHECKF(ok == 1200, "%ld of 1200 round trips answered", ok);
    for (int i = 0; i < 4; i++) {
        int st = 0;
        pid_t r = waitpid(kids[i], &st, WNOHANG);
        CHECKF(r == 0, "worker %d ended: status %#x (exit 21: accept said EAGAIN)", i, st);
        kill(kids[i], SIGKILL);
        if (r == 0)
            waitpid(kids[i], &st, 0);
    }
    close(l);
}

/* ---- exit -------------------------------------------------------------------------------*/

static void on_exit_handler(void)
{
    static atomic_int runs;
    printf("atexit run %d\n", atomic_fetch_add(&runs, 1) + 1);
    fflush(stdout);
}

static void *exit_from_thread(void *arg)
{
    (void)arg;
    usleep(20000);
    exit(0);                              /* summary() (atexit) prints PASS */
}

static void m_exit_thread(void)
{
    atexit(on_exit_handler);
    pthread_t t;
    OK(pthread_create(&t, NULL, exit_from_thread, NULL));
    pthread_t r[3];
    int p[2];
    CHECK(pipe(p) == 0);
    for (int i = 0; i < 3; i++)
        OK(pthread_create(&r[i], NULL, park_on_pipe, &p[0]));
    pthread_join(t, NULL);                /* never returns: exit() ends it all */
    CHECKF(0, "pthread_join returned after the thread called exit()");
}

static void *finish_later(void *arg)
{
    (void)arg;
    usleep(50000);
    printf("last thread done\n");
    fflush(stdout);
    return NULL;
}

static void m_main_pthread_exit(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, finish_later, NULL));
    pthread_exit(NULL);                   /* the process lives on until t ends, status 0 */
}

static const struct pt_mode modes[] = {
    { "system_many", m_system_many },
    { "popen_many", m_popen_many },
    { "wait_any", m_wait_any },
    { "wait_stopped", m_wait_stopped },
    { "fork_while_parked", m_fork_while_parked },
    { "prefork_accept", m_prefork_accept },
    { "exit_thread", m_exit_thread },
    { "main_pthread_exit", m_main_pthread_exit },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
