/*
 * pt_stats: a workload whose scheduler figures are known, run under the
 * preload with CORUN_STATS=1 by test_inspect. Prints "done" at the end;
 * every park below is forced by the order of events, never by a race:
 *  - 5 sleepers of 50 ms each; main joins the last one first: 5 sleep parks,
 *    1 join park (the others' deadlines come first, and the timer queue
 *    wakes them first, so they are done when main runs again, however late
 *    the wakeup);
 *  - a reader on an empty pipe, fed after main sleeps: 1 read, 1 sleep,
 *    1 join;
 *  - a thread blocked on a mutex main holds while sleeping: 1 mutex, 1 sleep,
 *    1 join;
 *  - a condition-variable waiter, signalled after main sleeps: 1 cond,
 *    1 sleep, 1 join;
 *  - a getaddrinfo("localhost"): 1 dns (an offload), 1 join;
 *  - 'writer' writing 64 KiB + 1 byte into an empty pipe, 'acceptor' in
 *    accept() on a loopback listener, 'poller' in poll() on an empty pipe,
 *    then main sleeps: 1 write (the pipe holds 64 KiB), 1 accept, 1 poll,
 *    1 sleep; main connects to the listener (a non-blocking connect is in
 *    progress, so it parks: 1 connect), drains the full pipe in one read,
 *    feeds the poller, and waits for a child that sleeps 50 ms: 1 child.
 *    The three are done long before the child is (they only wait for the
 *    loop's next turn), so joining them parks nothing;
 *  - 'hog' spinning 300 ms of CPU while main waits to join it: 1 join, and
 *    the longest run without a switch, by 'hog'.
 * Totals: 13 created, peak 6 alive; sleep 9, join 6, read 1, write 1,
 * accept 1, connect 1, poll 1, child 1, mutex 1, cond 1, dns 1 (24 parks).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int signalled;
static int pipefd[2];

static void *sleeper(void *arg)
{
    (void)arg;
    usleep(50000);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    char ch;
    return read(pipefd[0], &ch, 1) == 1 ? NULL : (void *)1;
}

static void *locker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    while (!signalled)
        pthread_cond_wait(&c, &m);
    pthread_mutex_unlock(&m);
    return NULL;
}

static void *resolver(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    if (getaddrinfo("localhost", "80", &hints, &res) == 0)
        freeaddrinfo(res);
    return NULL;
}

static int wpipe[2], ppipe[2], lfd;
static char big[65536 + 1];

static void *writer(void *arg)
{
    (void)arg;
    return write(wpipe[1], big, sizeof big) == (ssize_t)sizeof big ? NULL : (void *)1;
}

static void *acceptor(void *arg)
{
    (void)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return (void *)1;
    close(fd);
    return NULL;
}

static void *poller(void *arg)
{
    (void)arg;
    struct pollfd p = { .fd = ppipe[0], .events = POLLIN };
    return poll(&p, 1, -1) == 1 ? NULL : (void *)1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 300 ms of CPU (more wall time on a loaded machine); its wall time in
 * ms comes back. */
static void *hog(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    double start = now_s(), end = cpu_s() + 0.3;
    while (cpu_s() < end)
        x++;
    return (void *)(intptr_t)((now_s() - start) * 1000);
}

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "pt_stats: %s failed: %s\n", what, strerror(r));
        exit(1);
    }
}

int main(void)
{
    pthread_t t[5], one;
    for (int i = 0; i < 5; i++)
        check(pthread_create(&t[i], NULL, sleeper, NULL), "pthread_create");
    for (int i = 4; i >= 0; i--)
        check(pthread_join(t[i], NULL), "pthread_join");

    if (pipe(pipefd) != 0)
        return 1;
    check(pthread_create(&one, NULL, reader, NULL), "pthread_create");
    usleep(20000);
    if (write(pipefd[1], "x", 1) != 1)
        return 1;
    void *rv;
    check(pthread_join(one, &rv), "pthread_join");
    if (rv)
        return 1;

    pthread_mutex_lock(&m);
    check(pthread_create(&one, NULL, locker, NULL), "pthread_create");
    usleep(20000);
    pthread_mutex_unlock(&m);
    check(pthread_join(one, NULL), "pthread_join");

    check(pthread_create(&one, NULL, waiter, NULL), "pthread_create");
    usleep(20000);
    pthread_mutex_lock(&m);
    signalled = 1;
    pthread_cond_signal(&c);
    pthread_mutex_unlock(&m);
    check(pthread_join(one, NULL), "pthread_join");

    check(pthread_create(&one, NULL, resolver, NULL), "pthread_create");
    check(pthread_join(one, NULL), "pthread_join");

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof sa;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (pipe(wpipe) != 0 || pipe(ppipe) != 0 || lfd < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0)
        return 1;
    pthread_t w, a, p;
    check(pthread_create(&w, NULL, writer, NULL), "pthread_create");
    check(pthread_create(&a, NULL, acceptor, NULL), "pthread_create");
    check(pthread_create(&p, NULL, poller, NULL), "pthread_create");
    usleep(20000);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return 1;
    static char sink[65536];
    if (read(wpipe[0], sink, sizeof sink) != (ssize_t)sizeof sink || write(ppipe[1], "x", 1) != 1)
        return 1;
    pid_t kid = fork();
    if (kid < 0)
        return 1;
    if (kid == 0) {
        usleep(50000);
        _exit(3);
    }
    int st;
    if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 3)
        return 1;
    void *r1, *r2, *r3;
    check(pthread_join(w, &r1), "pthread_join");
    check(pthread_join(a, &r2), "pthread_join");
    check(pthread_join(p, &r3), "pthread_join");
    if (r1 || r2 || r3 || read(wpipe[0], sink, 2) != 1)
        return 1;
    close(cfd);
    close(lfd);

    check(pthread_create(&one, NULL, hog, NULL), "pthread_create");
    pthread_setname_np(one, "hog");
    void *hog_ms;
    check(pthread_join(one, &hog_ms), "pthread_join");
    printf("hog ran %ld ms\n", (long)(intptr_t)hog_ms);
    puts("done");
    return 0;
}
