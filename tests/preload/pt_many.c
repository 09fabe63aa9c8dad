/*
 * pt_many.c - a plain pthread program (not linked with corun): N threads,
 * all alive at once, each sleeps then bumps a mutex-protected counter.
 *
 *     pt_many N [SLEEP_MS]        (defaults: 1000 threads, 200 ms)
 *
 * Prints "threads=N counter=C peak_sleeping=P max_tasks=T ..." where T is
 * the most OS threads /proc/self/task showed (after creating them all, and
 * from inside a thread half-way through), then the usual corun=/PASS lines.
 * Exit status 0 when every thread was created and counted. Natively this
 * machine stops near 32,000 threads (vm.max_map_count); as green threads
 * under libcorun it runs 100,000 and more on one OS thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pt_common.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter, sleeping, peak_sleeping, nthreads;
static int sleep_ms = 200;

static void *worker(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&lock));
    if (++sleeping > peak_sleeping)
        peak_sleeping = sleeping;
    OK(pthread_mutex_unlock(&lock));

    struct timespec ts = { sleep_ms / 1000, (long)(sleep_ms % 1000) * 1000000 };
    CHECK(nanosleep(&ts, NULL) == 0);

    OK(pthread_mutex_lock(&lock));
    sleeping--;
    if (++counter == nthreads / 2)
        note_tasks();                  /* half-way: the rest still sleep */
    OK(pthread_mutex_unlock(&lock));
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atol(argv[1]) : 1000;
    if (argc > 2)
        sleep_ms = atoi(argv[2]);
    if (nthreads < 1 || sleep_ms < 0) {
        fprintf(stderr, "usage: %s [THREADS [SLEEP_MS]]\n", argv[0]);
        return 2;
    }
    mode_name = "many";
    alarm(600);                           /* a hang ends as SIGALRM */
    atexit(summary);
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    if (!t) {
        perror("calloc");
        return 3;
    }
    int64_t t0 = mono_ns();
    long created = 0;
    for (; created < nthreads; created++) {
        int rc = pthread_create(&t[created], NULL, worker, NULL);
        if (rc) {
            failf(__LINE__, "pthread_create failed at thread %ld: %s (%s)", created + 1,
                  ename(rc), strerror(rc));
            break;
        }
    }
    note_tasks();
    int64_t t1 = mono_ns();
    for (long i = 0; i < created; i++)
        OK(pthread_join(t[i], NULL));
    int64_t t2 = mono_ns();
    free(t);
    CHECKF(counter == nthreads, "counter %ld, expected %ld", counter, nthreads);
    printf("threads=%ld created=%ld counter=%ld peak_sleeping=%ld max_tasks=%d create_ms=%lld "
           "total_ms=%lld\n", nthreads, created, counter, peak_sleeping, atomic_load(&max_tasks),
           (long long)((t1 - t0) / MS), (long long)((t2 - t0) / MS));
    return 0;
}
