/*
 * pt_preempt.c - threads that keep the CPU without blocking, beside
 * threads that need it now and then: a plain pthread program, run by
 * test_preempt_green natively, under libcorun with green threads (where a
 * CPU-bound green thread is preempted after CORUN_PREEMPT_MS of CPU time)
 * and under libcorun with native threads.
 */
#include <math.h>
#include <signal.h>
#include <sys/syscall.h>

#include "pt_common.h"

/* A ticker that asks for 10 ms sleeps and notes the longest gap between
 * two of its wake-ups. */
struct gap_ticker {
    atomic_bool stop;
    atomic_long longest_ms;       /* wall time */
    atomic_long longest_cpu_ms;   /* the process's CPU time: what a loaded machine cannot stretch */
    atomic_long ticks;
};

static void *gap_ticker_main(void *arg)
{
    struct gap_ticker *t = arg;
    int64_t last = mono_ns(), last_cpu = ns_on(CLOCK_PROCESS_CPUTIME_ID);
    while (!atomic_load(&t->stop)) {
        usleep(10000);
        int64_t now = mono_ns(), cpu = ns_on(CLOCK_PROCESS_CPUTIME_ID);
        long gap = (long)((now - last) / MS), cpu_gap = (long)((cpu - last_cpu) / MS);
        if (gap > atomic_load(&t->longest_ms))
            atomic_store(&t->longest_ms, gap);
        if (cpu_gap > atomic_load(&t->longest_cpu_ms))
            atomic_store(&t->longest_cpu_ms, cpu_gap);
        atomic_fetch_add(&t->ticks, 1);
        last = now;
        last_cpu = cpu;
    }
    return NULL;
}

/* Whether a CPU-bound thread is preempted: natively always; green, when
 * the harness says corun can here (PT_PREEMPTS=1: not in a sanitizer
 * build, where there is no own TLS) and CORUN_PREEMPT_MS is not 0. */
static bool preempting(void)
{
    if (!green())
        return true;
    const char *can = getenv("PT_PREEMPTS"), *ms = getenv("CORUN_PREEMPT_MS");
    return can && !strcmp(can, "1") && !(ms && !strcmp(ms, "0"));
}

/* Keep the CPU for `arg` ms of the process's CPU time (wall time on a
 * loaded machine would give less work, and a shorter starvation). */
static void *hog_main(void *arg)
{
    int64_t end = ns_on(CLOCK_PROCESS_CPUTIME_ID) + (long)(intptr_t)arg * MS;
    do
        for (volatile int i = 0; i < 20000; i++)
            ;
    while (ns_on(CLOCK_PROCESS_CPUTIME_ID) < end);
    return NULL;
}

/* A thread in a 1 s CPU loop beside a 10 ms ticker: the ticker keeps
 * ticking (its longest gap far below the loop's second; natively the
 * kernel preempts, under corun a CPU-time slice does). With
 * CORUN_PREEMPT_MS=0 under corun nothing preempts: the ticker waits for
 * the whole loop, which shows the bound is what made the difference. */
static void mode_hog_ticker(void)
{
    struct gap_ticker t = { 0 };
    pthread_t tick, hog;
    OK(pthread_create(&tick, NULL, gap_ticker_main, &t));
    usleep(30000);
    OK(pthread_create(&hog, NULL, hog_main, IP(1000)));
    OK(pthread_join(hog, NULL));
    atomic_store(&t.stop, true);
    OK(pthread_join(tick, NULL));
    /* The gap in CPU time: the loop's CPU between two ticks (wall time
     * on a loaded machine stretches both cases alike). */
    long gap = atomic_load(&t.longest_cpu_ms);
    if (preempting())
        CHECKF(gap < 300, "the ticker's longest gap beside a 1 s CPU loop: %ld ms of CPU", gap);
    else
        CHECKF(gap >= 900, "no preemption (CORUN_PREEMPT_MS=0), yet the ticker's longest gap "
               "was only %ld ms of CPU", gap);
    printf("longest gap %ld ms (%ld ms of CPU), %ld ticks\n", atomic_load(&t.longest_ms), gap,
           atomic_load(&t.ticks));
}

/* The same from a main thread that blocks every signal before its first
 * thread (the threads inherit the mask): the signal corun preempts with
 * is not the program's to block, and the loop is still cut into slices. */
static void mode_masked_hog_ticker(void)
{
    sigset_t all;
    sigfillset(&all);
    OK(pthread_sigmask(SIG_BLOCK, &all, NULL));
    mode_hog_ticker();
}

/* Four CPU-bound threads (300 ms of CPU each) beside the ticker: they
 * share the CPU in slices and the ticker still ticks (without preemption
 * it would wait for all 1.2 s). */
/* Four threads running hog(ms) beside the ticker; returns the ticker's
 * longest gap in CPU ms, and prints its figures. */
static long ticker_beside_4(void *(*hog)(void *), long ms)
{
    struct gap_ticker t = { 0 };
    pthread_t tick, hogs[4];
    OK(pthread_create(&tick, NULL, gap_ticker_main, &t));
    usleep(30000);
    for (int i = 0; i < 4; i++)
        OK(pthread_create(&hogs[i], NULL, hog, IP(ms)));
    for (int i = 0; i < 4; i++)
        OK(pthread_join(hogs[i], NULL));
    atomic_store(&t.stop, true);
    OK(pthread_join(tick, NULL));
    long gap = atomic_load(&t.longest_cpu_ms);
    printf("longest gap %ld ms (%ld ms of CPU), %ld ticks\n", atomic_load(&t.longest_ms), gap,
           atomic_load(&t.ticks));
    return gap;
}

static void mode_hogs_ticker(void)
{
    long gap = ticker_beside_4(hog_main, 300);
    if (preempting())
        CHECKF(gap < 400, "the ticker's longest gap beside 4 CPU loops: %ld ms of CPU", gap);
}

/* Threads that keep the CPU while calling into corun most of the time
 * (timed locks of a held mutex whose deadline has passed: each returns
 * ETIMEDOUT at once), 600 ms of CPU each, beside the ticker. A slice's
 * signal rarely finds such a thread in its own code: it yields when it
 * next leaves corun (before, the ticker waited 300 ms of CPU on one OS
 * thread). */
static pthread_mutex_t held_by_main = PTHREAD_MUTEX_INITIALIZER;

static void *hook_hog_main(void *arg)
{
    const struct timespec past = { 1, 0 };
    int64_t end = ns_on(CLOCK_PROCESS_CPUTIME_ID) + (long)(intptr_t)arg * MS;
    do
        for (int i = 0; i < 100; i++)
            RC(pthread_mutex_timedlock(&held_by_main, &past), ETIMEDOUT);
    while (ns_on(CLOCK_PROCESS_CPUTIME_ID) < end);
    return NULL;
}

static void mode_hook_hogs_ticker(void)
{
    OK(pthread_mutex_lock(&held_by_main));
    long gap = ticker_beside_4(hook_hog_main, 600);
    OK(pthread_mutex_unlock(&held_by_main));
    if (preempting())
        CHECKF(gap < 400, "the ticker's longest gap beside 4 loops of calls: %ld ms of CPU", gap);
}

/* Two CPU-bound threads that print lines with stdio into one file, each
 * line in two pieces under flockfile with the work between them (a thread
 * preempted while it holds the FILE's lock makes the other wait its turn,
 * parked in its caught futex wait), checking floating-point work
 * and errno across their preemptions; then every line is read back whole
 * and in order per printer. (A file, not a pipe: with a reader thread, a
 * build without the catch would block the OS thread in stdio's own write.) */
#define LINES 20000

struct printer {
    FILE *f;
    int id;
    double sum;
    int errno_seen;
    long other_done_at_start;   /* the other printer's lines when this one started */
};

static atomic_long printed[2];

static void *printer_main(void *arg)
{
    struct printer *p = arg;
    p->other_done_at_start = atomic_load(&printed[1 - p->id]);
    errno = 1000 + p->id;
    double sum = 0;
    for (int i = 0; i < LINES; i++) {
        /* The line in two pieces with the work between them, under
         * flockfile: preempted there, the thread holds the FILE's lock. */
        flockfile(p->f);
        fprintf(p->f, "printer %d line %05d ", p->id, i);
        for (int k = 1; k <= 2000; k++)
            sum += sqrt((double)k * (i + 1));
        fputs("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n",
              p->f);
        funlockfile(p->f);
        atomic_fetch_add(&printed[p->id], 1);
        if (errno != 1000 + p->id && !p->errno_seen)
            p->errno_seen = errno;
        errno = 1000 + p->id;
    }
    p->sum = sum;
    return NULL;
}

static void mode_hog_stdio(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    struct printer pr[2] = { { f, 0, 0, 0, 0 }, { f, 1, 0, 0, 0 } };
    pthread_t pt[2];
    for (int i = 0; i < 2; i++)
        OK(pthread_create(&pt[i], NULL, printer_main, &pr[i]));
    for (int i = 0; i < 2; i++)
        OK(pthread_join(pt[i], NULL));
    CHECK(fflush(f) == 0);
    rewind(f);
    char line[512];
    int next[2] = { 0, 0 };
    long bad = 0;
    while (fgets(line, sizeof line, f)) {
        int id, n;
        char tail[200];
        if (sscanf(line, "printer %d line %d %199s", &id, &n, tail) != 3 || id < 0 || id > 1 ||
            n != next[id] || strlen(tail) != 78) {
            if (bad++ < 3)
                printf("bad line: %s", line);
            continue;
        }
        next[id]++;
    }
    /* Without preemption the second printer would start only once the
     * first had written all its lines (a file write never parks). (Which
     * one holds the lock afterwards is up to glibc's lock, which lets the
     * holder take it again before a woken waiter runs.) */
    long seen = pr[0].other_done_at_start > pr[1].other_done_at_start ? pr[0].other_done_at_start
                                                                        : pr[1].other_done_at_start;
    if (preempting())
        CHECKF(seen < LINES, "the second printer started after the first had written all "
               "%ld lines: not preempted", seen);
    fclose(f);
    CHECKF(bad == 0 && next[0] == LINES && next[1] == LINES, "lines: %d and %d of %d, %ld bad",
           next[0], next[1], LINES, bad);
    double want = 0;
    for (int i = 0; i < LINES; i++)
        for (int k = 1; k <= 2000; k++)
            want += sqrt((double)k * (i + 1));
    for (int i = 0; i < 2; i++) {
        CHECKF(pr[i].sum == want, "printer %d: sum %.17g, expected %.17g", i, pr[i].sum, want);
        CHECKF(pr[i].errno_seen == 0, "printer %d: errno %d after a line", i, pr[i].errno_seen);
    }
}

/* Threads that malloc and free in a CPU loop (malloc's arena lock is
 * glibc's own, taken inline): every block keeps its contents. */
static void *allocator_main(void *arg)
{
    long id = (long)arg, bad = 0;
    int64_t end = mono_ns() + 300 * MS;
    unsigned seed = (unsigned)id;
    while (mono_ns() < end) {
        size_t n = 16 + rand_r(&seed) % 4000;
        unsigned char *b = malloc(n);
        if (!b)
            return (void *)-1L;
        memset(b, (int)id, n);
        for (size_t i = 0; i < n; i += 97)
            bad += b[i] != (unsigned char)id;
        free(b);
    }
    return (void *)bad;
}

static void mode_hog_malloc(void)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        OK(pthread_create(&t[i], NULL, allocator_main, (void *)(i + 1)));
    for (int i = 0; i < 4; i++) {
        void *bad;
        OK(pthread_join(t[i], &bad));
        CHECKF(bad == NULL, "allocator %d: %ld bad bytes", i, (long)bad);
    }
}

/* The program's own SIGURG handler: before it, the action reads as the
 * default; after it, the handler runs for the SIGURGs the program raises,
 * and for no other (corun's preemption stops using the signal). */
static atomic_int urgs;

static void on_urg(int sig)
{
    (void)sig;
    atomic_fetch_add(&urgs, 1);
}

/* The handler is set while threads exist and a CPU loop runs (corun's
 * timers are armed), by sigaction or (raw) by the system call itself. */
static void sigurg_taken(bool raw)
{
    struct gap_ticker t = { 0 };
    pthread_t tick, hog;
    OK(pthread_create(&tick, NULL, gap_ticker_main, &t));
    OK(pthread_create(&hog, NULL, hog_main, IP(100)));
    usleep(20000);
    struct sigaction old;
    OK(sigaction(SIGURG, NULL, &old));
    CHECKF(old.sa_handler == SIG_DFL, "SIGURG's action at start: %p", (void *)old.sa_handler);
    struct sigaction sa = { .sa_handler = on_urg };
    sigemptyset(&sa.sa_mask);
    if (raw) {
        /* The kernel's layout, with the restorer glibc gave another handler. */
        struct { void (*h)(int); unsigned long flags; void (*restorer)(void); uint64_t mask; } k, u2;
        OK(sigaction(SIGUSR2, &sa, NULL));
        CHECK(syscall(SYS_rt_sigaction, SIGUSR2, NULL, &u2, 8) == 0);
        k = (typeof(k)){ on_urg, 0x04000000 /* SA_RESTORER */, u2.restorer, 0 };
        CHECK(syscall(SYS_rt_sigaction, SIGURG, &k, NULL, 8) == 0);
    } else {
        OK(sigaction(SIGURG, &sa, &old));
        CHECK(old.sa_handler == SIG_DFL);
    }
    OK(pthread_create(&hog, NULL, hog_main, IP(300)));
    OK(pthread_join(hog, NULL));
    atomic_store(&t.stop, true);
    OK(pthread_join(tick, NULL));
    CHECKF(atomic_load(&urgs) == 0, "the handler ran %d times unasked", atomic_load(&urgs));
    OK(raise(SIGURG));
    CHECKF(atomic_load(&urgs) == 1, "after raise: %d", atomic_load(&urgs));
    if (!raw) {
        OK(sigaction(SIGURG, NULL, &old));
        CHECK(old.sa_handler == on_urg);
    }
}

static void mode_sigurg_own(void)
{
    sigurg_taken(false);
}

static void mode_sigurg_raw(void)
{
    sigurg_taken(true);
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "hog_ticker", mode_hog_ticker },
        { "masked_hog_ticker", mode_masked_hog_ticker },
        { "hogs_ticker", mode_hogs_ticker },
        { "hook_hogs_ticker", mode_hook_hogs_ticker },
        { "hog_stdio", mode_hog_stdio },
        { "hog_malloc", mode_hog_malloc },
        { "sigurg_own", mode_sigurg_own },
        { "sigurg_raw", mode_sigurg_raw },
    };
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
