/*
 * pt_block MODE: loops kept from turning, for the blocking detector
 * (CORUN_BLOCK_WARN_MS), run under the preload by test_inspect. A 'ticker'
 * thread sleeps in short steps throughout, so something could always run.
 *   spin      spin_for() burns 400 ms of CPU, twice from one call site
 *   rawread   raw_read(): a read system call (its own syscall instruction,
 *             which no hook sees) on a pipe a child process
 *             writes after 400 ms (corun never sees it); must return 1 byte
 *   rawsleep  raw_sleep(): the same for nanosleep, 400 ms; must not be
 *             interrupted
 *   quiet     the same time spent in ordinary (hooked) sleeps and pipe I/O
 *   alone     no other thread: a 300 ms sleep by the only thread
 *   ownsig    as spin, once, after installing its own handler for
 *             SIGRTMAX-1 (the detector's signal), which must never run
 *   nothing   no thread, no blocking call (for the stats of such a program)
 * Linked with -export-dynamic so backtraces can name the functions.
 * Prints "done MODE".
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "insn_syscall.h"

static volatile int stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t own_calls;

static void own_handler(int sig)
{
    (void)sig;
    own_calls++;
}

static void *ticker(void *arg)
{
    (void)arg;
    while (!stop)
        usleep(5000);
    return NULL;
}

__attribute__((noinline)) void spin_for(double secs)
{
    volatile unsigned long x = 0;
    double end = now_s() + secs;
    while (now_s() < end)
        x++;
}

__attribute__((noinline)) long raw_read(int fd, char *c)
{
    long r = insn_syscall(SYS_read, fd, (long)c, 1, 0, 0, 0);   /* unseen by corun */
    if (r < 0) {
        errno = (int)-r;
        r = -1;
    }
    __asm__ volatile("" ::: "memory");   /* no tail call: keep this frame */
    return r;
}

__attribute__((noinline)) long raw_sleep(double secs)
{
    struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
    long r = insn_syscall(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);   /* unseen by corun */
    if (r < 0) {
        errno = (int)-r;
        r = -1;
    }
    __asm__ volatile("" ::: "memory");   /* no tail call: keep this frame */
    return r;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "alone") || !strcmp(mode, "nothing")) {
        if (!strcmp(mode, "alone"))
            usleep(300000);
        printf("done %s\n", mode);
        return 0;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, ticker, NULL) != 0)
        return 1;
    usleep(20000);
    int rc = 0;
    if (!strcmp(mode, "spin")) {
        for (int i = 0; i < 2; i++) {
            spin_for(0.4);
            usleep(20000);            /* the loop turns between the two */
        }
    } else if (!strcmp(mode, "ownsig")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigaction(SIGRTMAX - 1, &sa, NULL);
        spin_for(0.4);
        if (own_calls) {
            fprintf(stderr, "the program's SIGRTMAX-1 handler ran %d times\n", (int)own_calls);
            rc = 1;
        }
    } else if (!strcmp(mode, "rawread")) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            struct timespec ts = { 0, 400000000 };
            syscall(SYS_nanosleep, &ts, NULL);
            _exit(syscall(SYS_write, p[1], "x", 1) == 1 ? 0 : 1);
        }
        char c = 0;
        long n = raw_read(p[0], &c);
        if (n != 1 || c != 'x') {
            fprintf(stderr, "raw read returned %ld (%s)\n", n, n < 0 ? strerror(errno) : "");
            rc = 1;
        }
        waitpid(pid, NULL, 0);
    } else if (!strcmp(mode, "rawsleep")) {
        if (raw_sleep(0.4) != 0) {
            fprintf(stderr, "raw nanosleep failed: %s\n", strerror(errno));
            rc = 1;
        }
    } else if (!strcmp(mode, "quiet")) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        for (int i = 0; i < 40; i++) {
            char c;
            usleep(10000);
            if (write(p[1], "y", 1) != 1 || read(p[0], &c, 1) != 1)
                rc = 1;
        }
    } else {
        fprintf(stderr, "pt_block: unknown mode '%s'\n", mode);
        return 2;
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("done %s\n", mode);
    return rc;
}
