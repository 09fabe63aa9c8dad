/*
 * bench/rss - memory per parked coroutine.
 *
 * Spawns N coroutines (default 1,000,000) with the DEFAULT attributes, so the
 * default stack size, and lets each run until it parks in corun_chan_recv()
 * on one shared channel. Then reports, from /proc/self/status deltas against
 * a baseline taken just before the first spawn:
 *   - VmRSS per coroutine (resident memory: touched stack pages, control
 *     blocks, runtime bookkeeping),
 *   - VmPTE per coroutine (page tables, which VmRSS does not include),
 *   - VmSize per coroutine (address space reserved, mostly untouched stack),
 * as well as the time to spawn them and the time for them to start and park.
 * Finally it closes the channel, which wakes every coroutine (EPIPE), and
 * joins them all, timing that too.
 *
 * Coroutines are spawned and started in batches (default 65536), and the
 * run stops early, reporting how far it got, if a spawn fails or if
 * MemAvailable falls below 512 MiB, instead of running the machine out of
 * memory.
 *
 * Usage: rss [N] [-b BATCH]
 * Lines starting with "@result" are read by scripts/bench.
 */
#include <corun.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MIN_AVAILABLE_KB (512L * 1024)

static corun_chan_t *chan;
static long started, woken;

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "rss: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Read a small /proc file into buf (NUL-terminated). */
static void read_proc(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        check(errno, path);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            check(errno, path);
        if (r == 0 || (len += (size_t)r) == size - 1)
            break;
    }
    buf[len] = '\0';
    close(fd);
}

/* The value in kB of "key:" in a /proc status-like text, or -1. */
static long field_kb(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return strtol(p + klen + 1, NULL, 10);
    return -1;
}

struct mem {
    long rss_kb, pte_kb, size_kb;
};

static struct mem read_mem(void)
{
    char buf[8192];
    read_proc("/proc/self/status", buf, sizeof buf);
    return (struct mem){
        .rss_kb = field_kb(buf, "VmRSS"),
        .pte_kb = field_kb(buf, "VmPTE"),
        .size_kb = field_kb(buf, "VmSize"),
    };
}

static long mem_available_kb(void)
{
    char buf[8192];
    read_proc("/proc/meminfo", buf, sizeof buf);
    return field_kb(buf, "MemAvailable");
}

/* Number of lines of /proc/self/maps: the process's memory mappings. */
static long count_mappings(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static char buf[1 << 16];
    long lines = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

static void *parked(void *arg)
{
    (void)arg;
    void *msg;
    started++;
    int err = corun_chan_recv(chan, &msg, CORUN_FOREVER);
    if (err == EPIPE)
        woken++;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: rss [N (default 1000000)] [-b BATCH (default 65536)]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = 1000000, batch = 65536;
    int opt;
    while ((opt = getopt(argc, argv, "b:h")) != -1) {
        switch (opt) {
        case 'b': batch = atol(optarg); break;
        default: usage();
        }
    }
    if (optind < argc)
        n = atol(argv[optind++]);
    if (optind < argc || n < 1 || batch < 1)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct rlimit rl;
    getrlimit(RLIMIT_STACK, &rl);
    const char *env = getenv("CORUN_STACK_SIZE");
    printf("rss: %ld coroutines, default attributes (CORUN_STACK_SIZE=%s, RLIMIT_STACK soft=",
           n, env ? env : "unset");
    if (rl.rlim_cur == RLIM_INFINITY)
        printf("unlimited)\n");
    else
        printf("%lu KiB)\n", (unsigned long)(rl.rlim_cur / 1024));

    /* Everything the benchmark itself needs is allocated and touched before
     * the baseline, so the deltas are the runtime's alone. */
    corun_t **co = malloc((size_t)n * sizeof *co);
    if (!co)
        check(ENOMEM, "malloc");
    memset(co, 0, (size_t)n * sizeof *co);
    check(corun_chan_new(&chan, 0), "corun_chan_new");
    {   /* warm up: scheduler, stack pool, ... */
        corun_t *w;
        check(corun_spawn(&w, NULL, parked, NULL), "corun_spawn (warm-up)");
        check(corun_chan_send(chan, NULL, CORUN_FOREVER), "corun_chan_send (warm-up)");
        check(corun_join(w, NULL), "corun_join (warm-up)");
        started = 0;
    }
    long maps0 = count_mappings();
    struct mem m0 = read_mem();

    uint64_t spawn_ns = 0, park_ns = 0;
    long spawned = 0;
    const char *stopped = NULL;
    int spawn_err = 0;
    while (spawned < n && !stopped) {
        long end = spawned + batch < n ? spawned + batch : n;
        uint64_t t0 = now_ns();
        for (; spawned < end; spawned++) {
            spawn_err = corun_spawn(&co[spawned], NULL, parked, NULL);
            if (spawn_err) {
                stopped = "corun_spawn failed";
                break;
            }
        }
        uint64_t t1 = now_ns();
        /* Let every new coroutine run until it parks. corun_yield() runs
         * each runnable coroutine once; loop in case some need more. */
        for (int tries = 0; started < spawned; tries++) {
            if (tries == 1000) {
                fprintf(stderr, "rss: only %ld of %ld coroutines started after 1000 yields\n",
                        started, spawned);
                exit(1);
            }
            corun_yield();
        }
        uint64_t t2 = now_ns();
        spawn_ns += t1 - t0;
        park_ns += t2 - t1;
        if (!stopped && spawned < n && mem_available_kb() < MIN_AVAILABLE_KB)
            stopped = "MemAvailable below 512 MiB";
    }

    struct mem m1 = read_mem();
    long maps1 = count_mappings();
    double per_rss = (double)(m1.rss_kb - m0.rss_kb) * 1024.0 / (double)spawned;
    double per_pte = (double)(m1.pte_kb - m0.pte_kb) * 1024.0 / (double)spawned;
    double per_size = (double)(m1.size_kb - m0.size_kb) * 1024.0 / (double)spawned;

    if (stopped) {
        printf("  STOPPED EARLY after %ld of %ld coroutines: %s", spawned, n, stopped);
        if (spawn_err)
            printf(" (%s, error %d)", strerror(spawn_err), spawn_err);
        printf("\n  figures below are for the %ld coroutines that were spawned\n", spawned);
    }
    printf("  parked coroutines       %ld\n", spawned);
    printf("  spawn time              %.3f s  (%.1f ns per coroutine)\n",
           (double)spawn_ns / 1e9, (double)spawn_ns / (double)spawned);
    printf("  start+park time         %.3f s  (%.1f ns per coroutine)\n",
           (double)park_ns / 1e9, (double)park_ns / (double)spawned);
    printf("  VmRSS   %9ld -> %9ld kB   %8.0f bytes/coroutine (%.2f KiB)\n",
           m0.rss_kb, m1.rss_kb, per_rss, per_rss / 1024);
    printf("  VmPTE   %9ld -> %9ld kB   %8.0f bytes/coroutine (page tables)\n",
           m0.pte_kb, m1.pte_kb, per_pte);
    printf("  RSS+PTE                                 %8.0f bytes/coroutine (%.2f KiB)\n",
           per_rss + per_pte, (per_rss + per_pte) / 1024);
    printf("  VmSize  %9ld -> %9ld kB   %8.0f bytes/coroutine (address space)\n",
           m0.size_kb, m1.size_kb, per_size);
    printf("  mappings %8ld -> %9ld      (vm.max_map_count applies)\n", maps0, maps1);

    /* Wake them all and reap them. */
    uint64_t t0 = now_ns();
    check(corun_chan_close(chan), "corun_chan_close");
    for (long i = 0; i < spawned; i++)
        check(corun_join(co[i], NULL), "corun_join");
    uint64_t t1 = now_ns();
    struct mem m2 = read_mem();
    printf("  close+join time         %.3f s  (%.1f ns per coroutine; %ld woke with EPIPE)\n",
           (double)(t1 - t0) / 1e9, (double)(t1 - t0) / (double)spawned, woken);
    printf("  VmRSS after joining all %ld kB, VmPTE %ld kB, VmSize %ld kB\n",
           m2.rss_kb, m2.pte_kb, m2.size_kb);
    if (woken != spawned)
        fprintf(stderr, "rss: %ld coroutines did not see EPIPE\n", spawned - woken);
    check(corun_chan_free(chan), "corun_chan_free");
    free(co);

    printf("@result rss_coroutines %ld\n", spawned);
    printf("@result rss_bytes_per_coroutine %.0f\n", per_rss);
    printf("@result pte_bytes_per_coroutine %.0f\n", per_pte);
    printf("@result rss_spawn_ns %.1f\n", (double)spawn_ns / (double)spawned);
    printf("@result rss_park_ns %.1f\n", (double)park_ns / (double)spawned);
    printf("@result rss_close_join_ns %.1f\n", (double)(t1 - t0) / (double)spawned);
    return stopped ? 3 : 0;
}
