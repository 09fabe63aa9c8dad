/*
 * pt_common.h - the harness shared by the plain pthread test programs
 * tests/pt_*.c (not linked with corun): checks that count failures, the OS
 * thread count, whether corun is loaded and green, and a pipe "gate".
 * Each program includes it once, after the system headers it needs.
 */
#ifndef PT_COMMON_H
#define PT_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

/* ---- checks and helpers --------------------------------------------------- */

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

/* For a failure report: where each thread of process `pid` is (its state,
 * kernel wait channel, system call and kernel stack, as /proc shows them). */
UNUSED static void describe_process(pid_t pid)
{
    char path[320], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "  process %d: %s unreadable\n", (int)pid, path);
        return;
    }
    static const char *const files[] = { "stat", "wchan", "syscall", "stack" };
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        fprintf(stderr, "  process %d thread %s:\n", (int)pid, e->d_name);
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "/proc/%d/task/%s/%s", (int)pid, e->d_name, files[i]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0)
                close(fd);
            buf[n > 0 ? n : 0] = '\0';
            fprintf(stderr, "    %s: %s%s", files[i], buf, n > 0 && buf[n - 1] == '\n' ? "" : "\n");
        }
    }
    closedir(d);
    /* And the threads' user-space stacks, where gdb is installed (run
     * without libcorun). */
    fflush(stderr);
    pid_t g = fork();
    if (g == 0) {
        char spid[16];
        snprintf(spid, sizeof spid, "%d", (int)pid);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(2, 1);
        /* Bounded: gdb may wait for good on a thread in uninterruptible sleep. */
        execlp("env", "env", "-u", "LD_PRELOAD", "timeout", "-k", "5", "30", "gdb", "-nx", "-batch",
               "-p", spid, "-ex", "thread apply all bt 30", (char *)NULL);
        _exit(127);
    }
    if (g > 0)
        while (waitpid(g, NULL, 0) < 0 && errno == EINTR)
            ;
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

/* corun's own helper threads, which run no green thread: the monitor of
 * blocking calls, a spare OS thread waiting for a worker's queue and
 * libuv's pool (offloaded file I/O, name lookups: corun names them
 * corun-pool, libuv 1.50 and later names them libuv-worker itself); and
 * glibc's own helper threads, which a test names "pt-glibc-helper" (a
 * SIGEV_THREAD timer's: glibc makes it through no hook). */
/* A thread's name, with its newline; "" if it cannot be read. */
UNUSED static void task_comm(const char *tid, char comm[32])
{
    char path[300];
    comm[0] = '\0';
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, comm, 31);
    close(fd);
    comm[n > 0 ? n : 0] = '\0';
}

UNUSED static bool task_named(const char *tid, const char *name)
{
    char comm[32];
    task_comm(tid, comm);
    size_t len = strlen(name);
    return !strncmp(comm, name, len) && comm[len] == '\n';
}

/* One read of the name per thread: note_tasks runs in every thread of
 * tests that make thousands. */
UNUSED static bool corun_helper_task(const char *tid)
{
    static const char *const helpers[] = { "corun-monitor\n", "corun-spare\n", "corun-pool\n",
                                           "libuv-worker\n", "pt-glibc-helper\n" };
    char comm[32];
    task_comm(tid, comm);
    /* io_uring's workers (the program's own rings punting work) are the kernel's. */
    if (!strncmp(comm, "iou-wrk-", 8) || !strncmp(comm, "iou-sqp-", 8))
        return true;
    for (size_t i = 0; i < sizeof helpers / sizeof *helpers; i++)
        if (!strcmp(comm, helpers[i]))
            return true;
    return false;
}

/* How many of the process's OS threads `pick` takes. */
UNUSED static int count_tasks_if(bool (*pick)(const char *tid, const char *arg), const char *arg)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' && pick(e->d_name, arg);
    closedir(d);
    return n;
}

/* The process's OS threads named `name`. */
UNUSED static int count_tasks_named(const char *name)
{
    return count_tasks_if(task_named, name);
}

UNUSED static bool not_helper_task(const char *tid, const char *unused)
{
    (void)unused;
    return !corun_helper_task(tid);
}

/* The process's OS threads that may run the program's threads. */
UNUSED static int count_tasks(void)
{
    return count_tasks_if(not_helper_task, NULL);
}

UNUSED static bool any_task(const char *tid, const char *unused)
{
    (void)tid;
    (void)unused;
    return true;
}

/* Record how many OS threads the process has now. */
UNUSED static void note_tasks(void)
{
    /* The names are read only when the count with helpers beats the most
     * so far: thousands of native threads each reading every thread's name
     * took half a minute on a loaded machine. */
    int m = atomic_load(&max_tasks);
    if (count_tasks_if(any_task, NULL) <= m)
        return;
    int n = count_tasks();
    while (n > m && !atomic_compare_exchange_weak(&max_tasks, &m, n))
        ;
}

/* ---- the ticker: a second thread counting 1 ms sleeps ---------------------------
 * Alive during a wait, it keeps corun from making the real call (a lone
 * green thread does) and its count shows the wait did not hold the OS
 * thread. It blocks SIGUSR1, so that process signals go to the main thread
 * natively too. */
UNUSED static atomic_long ticks;
UNUSED static atomic_bool pt_ticker_stop;
UNUSED static pthread_t pt_ticker_thread;

UNUSED static void *pt_ticker_main(void *arg)
{
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    while (!atomic_load(&pt_ticker_stop)) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

/* Start the ticker and let it tick once. */
UNUSED static void ticker_start(void)
{
    atomic_store(&pt_ticker_stop, false);
    OK(pthread_create(&pt_ticker_thread, NULL, pt_ticker_main, NULL));
    long t0 = atomic_load(&ticks);
    while (atomic_load(&ticks) == t0)
        sched_yield();
}

UNUSED static void ticker_end(void)
{
    atomic_store(&pt_ticker_stop, true);
    OK(pthread_join(pt_ticker_thread, NULL));
    note_tasks();
}

UNUSED static bool corun_loaded(void)
{
    /* thread-self: /proc/self of a process whose main thread has exited
     * (pthread_exit) shows no mappings. */
    FILE *f = fopen("/proc/thread-self/maps", "r");
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

/* Green threads all on one OS thread (CORUN_PROCS unset or 1): orderings
 * that follow from that are checked only then. */
UNUSED static bool green_one_os_thread(void)
{
    const char *p = getenv("CORUN_PROCS");
    if (p && *p)
        return green() && atoi(p) <= 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    return green() && sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) <= 1;
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

/* The start of a timed wait, read on both clocks before its deadline is
 * computed. A deadline on CLOCK_REALTIME is kept on that clock, whose rate
 * a time service may move away from CLOCK_MONOTONIC's (CI: realtime
 * waits ended 1 % short on the monotonic clock, without corun too). */
struct wait_start {
    int64_t mono, real;
};

UNUSED static struct wait_start wait_start(void)
{
    return (struct wait_start){ mono_ns(), ns_on(CLOCK_REALTIME) };
}

/* How long the wait lasted, not early on either clock: the longer of the
 * two clocks' readings (each kind of deadline is kept on its own clock). */
UNUSED static int64_t waited_ns(struct wait_start w)
{
    int64_t m = mono_ns() - w.mono, r = ns_on(CLOCK_REALTIME) - w.real;
    return m > r ? m : r;
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

/* ---- main ------------------------------------------------------------------ */

struct pt_mode {
    const char *name;
    void (*fn)(void);
};

/* Run the mode named by argv[1] under a 30 s alarm (a hang ends as SIGALRM,
 * not a stuck test), then print the summary. */
static inline __attribute__((unused)) int pt_main(const struct pt_mode *modes, size_t n, int argc,
                                                  char **argv)
{
    for (size_t i = 0; argc == 2 && i < n; i++) {
        if (!strcmp(argv[1], modes[i].name)) {
            mode_name = modes[i].name;
            alarm(30);
            atexit(summary);
            modes[i].fn();
            return 0;
        }
    }
    fprintf(stderr, "usage: %s MODE\nmodes:", argv[0]);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", modes[i].name);
    fputc('\n', stderr);
    return 2;
}

#endif
