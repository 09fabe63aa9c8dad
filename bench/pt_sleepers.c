/*
 * pt_sleepers.c - an unmodified pthread program: THREADS threads, all alive
 * at once, each sleeps SECONDS (nanosleep) and bumps a mutex-protected
 * counter; main joins them all. Memory is read from /proc/self/status:
 * VmRSS at the start (the baseline) and VmHWM (peak RSS) at the end; the
 * thread that is the last to fall asleep also samples VmRSS and VmPTE (page
 * tables) while every thread sleeps. Not linked with corun: bench/pt_run.sh
 * runs it under LD_PRELOAD=libcorun.so (and natively, where this machine
 * stops near 32,000 threads).
 *
 *     pt_sleepers [THREADS [SECONDS]]      (defaults 1000000, 2)
 *
 * Last line:
 *     @result threads=N created=N completed=N peak_rss_per_thread=BYTES
 *             pte_per_thread=BYTES hwm_kib=N base_kib=N create_s=S total_s=S
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long nthreads, asleep, completed;
static long rss_all_asleep_kib = -1, pte_all_asleep_kib = -1;
static struct timespec nap;

/* A "Name:   N kB" field of /proc/self/status, in KiB, or -1. */
static long status_kib(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    fclose(f);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *sleeper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m);
    if (++asleep == nthreads) {          /* the last one: everybody is here */
        rss_all_asleep_kib = status_kib("VmRSS");
        pte_all_asleep_kib = status_kib("VmPTE");
    }
    pthread_mutex_unlock(&m);
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&m);
    completed++;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atol(argv[1]) : 1000000;
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    if (nthreads < 1 || secs < 0) {
        fprintf(stderr, "usage: %s [THREADS [SECONDS]]\n", argv[0]);
        return 2;
    }
    nap.tv_sec = (time_t)secs;
    nap.tv_nsec = (long)((secs - (double)nap.tv_sec) * 1e9);
    long base = status_kib("VmRSS");
    pthread_t *t = malloc((size_t)nthreads * sizeof *t);
    if (!t) {
        perror("malloc");
        return 1;
    }
    double t0 = now_s();
    long created = 0;
    int err = 0;
    for (; created < nthreads; created++)
        if ((err = pthread_create(&t[created], NULL, sleeper, NULL)) != 0)
            break;
    double t1 = now_s();
    if (err) {
        printf("pt_sleepers: pthread_create failed at thread %ld of %ld: %s\n", created + 1,
               nthreads, strerror(err));
        nthreads = created;              /* wait for those that exist */
    }
    for (long i = 0; i < created; i++)
        pthread_join(t[i], NULL);
    double t2 = now_s();
    free(t);
    long hwm = status_kib("VmHWM");
    double per = created ? (double)(hwm - base) * 1024.0 / (double)created : 0;
    double pte = created && pte_all_asleep_kib >= 0
                     ? (double)pte_all_asleep_kib * 1024.0 / (double)created
                     : 0;
    printf("pt_sleepers: %ld threads each sleeping %.1f s: created %ld, completed %ld; "
           "VmHWM %ld KiB (start %ld KiB, all asleep %ld KiB) = %.0f bytes per thread; "
           "VmPTE all asleep %ld KiB = %.0f bytes per thread; create %.2f s, total %.2f s\n",
           err ? created : nthreads, secs, created, completed, hwm, base, rss_all_asleep_kib, per,
           pte_all_asleep_kib, pte, t1 - t0, t2 - t0);
    printf("@result threads=%ld created=%ld completed=%ld peak_rss_per_thread=%.0f "
           "pte_per_thread=%.0f hwm_kib=%ld base_kib=%ld create_s=%.6f total_s=%.3f\n",
           argc > 1 ? atol(argv[1]) : 1000000, created, completed, per, pte, hwm, base, t1 - t0,
           t2 - t0);
    return err || completed != created ? 1 : 0;
}
