/*
 * pt_pingpong.c - an unmodified two-thread ping-pong over one mutex and two
 * condition variables: each round trip is two handoffs (main -> ponger ->
 * main), every one a pthread_cond_signal + pthread_cond_wait. A plain
 * pthread program, not linked with corun: bench/pt_run.sh runs it natively
 * (pinned to one CPU with taskset) and under LD_PRELOAD=libcorun.so, where
 * the two threads are green threads on one OS thread.
 *
 *     pt_pingpong [ROUND_TRIPS [REPS]]     (defaults 200000, 5)
 *
 * After a warm-up it times REPS runs of ROUND_TRIPS round trips, each with a
 * fresh ponger thread, and prints the median; the last line is
 *     @result ns_per_handoff=N handoffs_per_s=N
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ping = PTHREAD_COND_INITIALIZER, pong = PTHREAD_COND_INITIALIZER;
static int turn;              /* 1: the ponger's move, 0: main's */
static long rounds;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *ponger(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    for (long i = 0; i < rounds; i++) {
        while (turn != 1)
            pthread_cond_wait(&ping, &m);
        turn = 0;
        pthread_cond_signal(&pong);
    }
    pthread_mutex_unlock(&m);
    return NULL;
}

/* ns per handoff over n round trips */
static double run(long n)
{
    rounds = n;
    turn = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, ponger, NULL) != 0) {
        perror("pthread_create");
        exit(1);
    }
    pthread_mutex_lock(&m);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        turn = 1;
        pthread_cond_signal(&ping);
        while (turn != 0)
            pthread_cond_wait(&pong, &m);
    }
    double t1 = now_s();
    pthread_mutex_unlock(&m);
    pthread_join(t, NULL);
    return (t1 - t0) * 1e9 / (2.0 * (double)n);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: %s [ROUND_TRIPS [REPS]]\n", argv[0]);
        return 2;
    }
    run(n / 10 + 1);                     /* warm-up */
    double v[100];
    printf("pt_pingpong: %ld round trips (%ld handoffs) x %d runs, ns/handoff:", n, 2 * n, reps);
    for (int i = 0; i < reps; i++) {
        v[i] = run(n);
        printf(" %.1f", v[i]);
    }
    qsort(v, (size_t)reps, sizeof v[0], cmp);
    double med = v[reps / 2];
    printf("\n@result ns_per_handoff=%.2f handoffs_per_s=%.0f\n", med, 1e9 / med);
    return 0;
}
