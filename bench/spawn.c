/*
 * bench/spawn - cost of creating and reaping a coroutine.
 *
 *  1. sequential corun_spawn() + corun_join() of a trivial coroutine with the
 *     default attributes (default stack size), in a loop: after the first
 *     round the runtime can reuse the same stack and control block, so this
 *     is the pooled cost of one spawn+join pair, including the two switches
 *     (to the new coroutine and back to the joiner);
 *  2. the same in batches (default 100: spawn 100, then join 100), so that
 *     many stacks are live at once and the pool has to hold them all;
 *  3. for comparison, pthread_create() + pthread_join() of a trivial native
 *     thread (default attributes).
 *
 * Each measurement is repeated after one warm-up round and the median is
 * reported, with the minimum and maximum.
 *
 * Usage: spawn [-r REPS] [-t TARGET_MS] [-b BATCH] [-P]   (-P: skip pthreads)
 * Lines starting with "@result" are read by scripts/bench.
 */
#include <corun.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 101
#include "benchutil.h"
#define MAX_BATCH 100000

static int batch = 100;

static void check(int err, const char *what)
{
    bench_check("spawn", err, what);
}

static void *trivial(void *arg)
{
    return arg;
}

/* n sequential spawn+join pairs. */
static uint64_t run_sequential(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        corun_t *co;
        void *ret;
        check(corun_spawn(&co, NULL, trivial, (void *)i), "corun_spawn");
        check(corun_join(co, &ret), "corun_join");
        if (ret != (void *)i) {
            fprintf(stderr, "spawn: corun_join returned %p, expected %p\n", ret, (void *)i);
            exit(1);
        }
    }
    return now_ns() - t0;
}

/* n spawn+join pairs, in batches of `batch` (n is a multiple of it). */
static uint64_t run_batched(long n)
{
    static corun_t *co[MAX_BATCH];
    uint64_t t0 = now_ns();
    for (long done = 0; done < n; done += batch) {
        for (int i = 0; i < batch; i++)
            check(corun_spawn(&co[i], NULL, trivial, NULL), "corun_spawn");
        for (int i = 0; i < batch; i++)
            check(corun_join(co[i], NULL), "corun_join");
    }
    return now_ns() - t0;
}

static void *native_trivial(void *arg)
{
    return arg;
}

static uint64_t run_pthread(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        check(pthread_create(&t, NULL, native_trivial, NULL), "pthread_create");
        check(pthread_join(t, NULL), "pthread_join");
    }
    return now_ns() - t0;
}

static long round_batch(long n)
{
    return (n + batch - 1) / batch * batch;
}

/* Find n such that run(n) takes about target_ns (a multiple of batch). */
static long calibrate(uint64_t (*run)(long), uint64_t target_ns)
{
    long n = round_batch(100);
    run(n);                     /* first-use costs stay out of the estimate */
    for (;;) {
        uint64_t t = run(n);
        if (t >= target_ns / 8 || n > (1L << 40)) {
            double scaled = (double)n * (double)target_ns / (double)(t ? t : 1);
            return round_batch(scaled < 1 ? 1 : (long)scaled);
        }
        n *= 4;
    }
}

static struct stats measure(uint64_t (*run)(long), long n, int reps)
{
    double v[MAX_REPS];
    run(n);                     /* warm-up */
    for (int i = 0; i < reps; i++)
        v[i] = (double)run(n) / (double)n;
    return summarise(v, reps);
}

static void usage(void)
{
    fprintf(stderr, "usage: spawn [-r REPS (1..%d, default 9)] [-t TARGET_MS (default 100)]\n"
                    "             [-b BATCH (1..%d, default 100)] [-P]\n",
            MAX_REPS, MAX_BATCH);
    exit(2);
}

int main(int argc, char **argv)
{
    int reps = 9, with_pthread = 1;
    long target_ms = 100;
    int opt;
    while ((opt = getopt(argc, argv, "r:t:b:Ph")) != -1) {
        switch (opt) {
        case 'b': batch = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': target_ms = atol(optarg); break;
        case 'P': with_pthread = 0; break;
        default: usage();
        }
    }
    if (reps < 1 || reps > MAX_REPS || target_ms < 1 || batch < 1 || batch > MAX_BATCH)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t target = (uint64_t)target_ms * 1000000u;

    double pt_median = 0;
    long n_seq = calibrate(run_sequential, target);
    struct stats seq = measure(run_sequential, n_seq, reps);
    long n_bat = calibrate(run_batched, target);
    struct stats bat = measure(run_batched, n_bat, reps);

    printf("spawn: median of %d repetitions (after one warm-up), min..max in brackets\n", reps);
    printf("  corun spawn+join, sequential (pooled)  %9.1f ns/pair  [%.1f .. %.1f]  (%ld pairs/rep)\n",
           seq.median, seq.min, seq.max, n_seq);
    printf("  corun spawn+join, batches of %-6d    %9.1f ns/pair  [%.1f .. %.1f]  (%ld pairs/rep)\n",
           batch, bat.median, bat.min, bat.max, n_bat);
    if (with_pthread) {
        long n_pt = calibrate(run_pthread, target);
        struct stats pt = measure(run_pthread, n_pt, reps);
        printf("  pthread_create+join (native)           %9.1f ns/pair  [%.1f .. %.1f]  (%ld pairs/rep)\n",
               pt.median, pt.min, pt.max, n_pt);
        printf("  pthread/corun (sequential)             %9.1fx\n", pt.median / seq.median);
        pt_median = pt.median;
    }
    printf("@result spawn_join_ns %.1f\n", seq.median);
    printf("@result spawn_join_batch_ns %.1f\n", bat.median);
    if (with_pthread)
        printf("@result pthread_spawn_join_ns %.1f\n", pt_median);
    return 0;
}
