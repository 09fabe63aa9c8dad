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

/* ---- checks and helpers (the same block opens every tests/pt_*.c) -------- */

#define UNUSED __attribute__((unused))

static atomic_int failures;
static atomic_int max_tasks;
static const char *mode_name = "?";

UNUSED static const char *ename(int e)
{
    const char *n = e ? strerrorname_np(e) : "0";
    return n ? n : "?";
}

UNUSED static void failf(int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: [%s] FAIL: %s\n", __FILE__, line, mode_name, buf);
    atomic_fetch_add(&failures, 1);
}

#define CHECK(cond) \
    do { if (!(cond)) failf(__LINE__, "%s", #cond); } while (0)
#define CHECKF(cond, ...) \
    do { if (!(cond)) failf(__LINE__, __VA_ARGS__); } while (0)
/* An errno-returning call must return `want`. */
#define RC(call, want)                                                          \
    do {                                                                        \
        int rc_ = (call), want_ = (want);                                       \
        if (rc_ != want_)                                                       \
            failf(__LINE__, "%s returned %d (%s), expected %d (%s)", #call, rc_, \
                  ename(rc_), want_, ename(want_));                             \
    } while (0)
#define OK(call) RC(call, 0)
/* A -1-and-errno call must fail with `want`. */
#define FAILS_ERRNO(call, want)                                                 \
    do {                                                                        \
        errno = 0;                                                              \
        int rc_ = (call), e_ = errno, want_ = (want);                           \
        if (rc_ != -1 || e_ != want_)                                           \
            failf(__LINE__, "%s returned %d errno %s, expected -1 errno %s",    \
                  #call, rc_, ename(e_), ename(want_));                         \
    } while (0)

UNUSED static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Record how many OS threads the process has now. */
UNUSED static void note_tasks(void)
{
    int n = count_tasks(), m = atomic_load(&max_tasks);
    while (n > m && !atomic_compare_exchange_weak(&max_tasks, &m, n))
        ;
}

UNUSED static bool corun_loaded(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "/libcorun.so") != NULL;
    fclose(f);
    return found;
}

UNUSED static bool green(void)
{
    const char *t = getenv("CORUN_THREADS");
    return corun_loaded() && !(t && !strcmp(t, "native"));
}

UNUSED static int64_t ns_on(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

UNUSED static int64_t mono_ns(void)
{
    return ns_on(CLOCK_MONOTONIC);
}

/* An absolute time `ns` from now on clock `clk`. */
UNUSED static struct timespec abs_in(clockid_t clk, int64_t ns)
{
    int64_t t = ns_on(clk) + ns;
    return (struct timespec){ .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 };
}

#define MS 1000000LL

UNUSED static void summary(void)
{
    note_tasks();
    printf("corun=%d green=%d max_tasks=%d\n", corun_loaded(), green(), atomic_load(&max_tasks));
    if (atomic_load(&failures)) {
        printf("FAILED %s: %d check(s)\n", mode_name, atomic_load(&failures));
        fflush(stdout);
        _exit(1);
    }
    printf("PASS %s\n", mode_name);
    fflush(stdout);
}

/* ---- small helpers ---------------------------------------------------------*/

/* A gate: threads block reading a pipe until the test opens it. */
struct gate {
    int fd[2];
};

UNUSED static void gate_init(struct gate *g)
{
    if (pipe(g->fd) != 0) {
        perror("pipe");
        exit(3);
    }
}

UNUSED static void gate_wait(struct gate *g)
{
    char c;
    ssize_t r;
    while ((r = read(g->fd[0], &c, 1)) < 0 && errno == EINTR)
        ;
    CHECKF(r == 1, "gate read returned %zd (%s)", r, ename(errno));
}

UNUSED static void gate_open(struct gate *g, int n)
{
    for (int i = 0; i < n; i++)
        CHECK(write(g->fd[1], "x", 1) == 1);
}

UNUSED static void *gate_then_return(void *arg)
{
    gate_wait(arg);
    return (void *)0x60;
}

#define IP(x) ((void *)(intptr_t)(x))

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
