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
 *  - 'hog' spinning 300 ms of CPU while main waits to join it: 1 join, and
 *    the longest run without a switch, by 'hog'.
 * Totals: 10 created, peak 6 alive; sleep 8, join 6, read 1, mutex 1,
 * cond 1, dns 1.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *hog(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    double end = now_s() + 0.3;
    while (now_s() < end)
        x++;
    return NULL;
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

    check(pthread_create(&one, NULL, hog, NULL), "pthread_create");
    pthread_setname_np(one, "hog");
    check(pthread_join(one, NULL), "pthread_join");
    puts("done");
    return 0;
}
