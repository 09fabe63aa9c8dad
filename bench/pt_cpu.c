/*
 * pt_cpu.c - CPU-bound pthreads beside a ticker: an unmodified pthread
 * program (not linked with corun), run natively and under
 * LD_PRELOAD=libcorun.so by bench/preempt.sh.
 *
 *     pt_cpu THREADS MS_OF_WORK_EACH
 *
 * THREADS threads each do a fixed amount of arithmetic (calibrated once to
 * take MS_OF_WORK_EACH ms on one CPU), while a ticker asks for 10 ms
 * sleeps and notes the longest gap between two of its wake-ups. The last
 * line is
 *     @result wall_ms=N longest_gap_ms=N ticks=N
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile uint64_t sink;

/* Work without calls or system calls: a xorshift chain. */
static uint64_t work(uint64_t rounds)
{
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static uint64_t rounds_each;
static atomic_bool stop;
static atomic_long longest_ms, ticks;

static void *worker(void *arg)
{
    (void)arg;
    sink = work(rounds_each);
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    int64_t last = now_ns();
    while (!atomic_load(&stop)) {
        usleep(10000);
        int64_t t = now_ns();
        long gap = (long)((t - last) / 1000000);
        if (gap > atomic_load(&longest_ms))
            atomic_store(&longest_ms, gap);
        atomic_fetch_add(&ticks, 1);
        last = t;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8;
    long ms = argc > 2 ? atol(argv[2]) : 100;
    if (n < 1 || n > 1024 || ms < 1) {
        fprintf(stderr, "usage: pt_cpu THREADS MS_OF_WORK_EACH\n");
        return 2;
    }
    /* Calibrate on this thread, alone: rounds per ms. */
    uint64_t probe = 20000000;
    int64_t t0 = now_ns();
    sink = work(probe);
    double per_ms = (double)probe / ((double)(now_ns() - t0) / 1e6);
    rounds_each = (uint64_t)(per_ms * (double)ms);

    pthread_t tick, t[1024];
    pthread_create(&tick, NULL, ticker, NULL);
    usleep(20000);
    int64_t start = now_ns();
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    long wall = (long)((now_ns() - start) / 1000000);
    atomic_store(&stop, true);
    pthread_join(tick, NULL);
    printf("%d threads x %ld ms of work: %ld ms; ticker: longest gap %ld ms, %ld ticks\n", n, ms,
           wall, atomic_load(&longest_ms), atomic_load(&ticks));
    printf("@result wall_ms=%ld longest_gap_ms=%ld ticks=%ld\n", wall, atomic_load(&longest_ms),
           atomic_load(&ticks));
    return 0;
}
