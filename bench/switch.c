/*
 * bench/switch - cost of a context switch.
 *
 *  1. corun_switch() ping-pong between two coroutines (A switches to B, B
 *     switches back to A, ...): nanoseconds per switch. A and B are
 *     different functions, so each switch returns to a different call site
 *     than the one it left from, as in most real uses (a producer and a
 *     consumer, greenlet-style generators);
 *  2. the same ping-pong between two glibc ucontexts with swapcontext(), in
 *     the same run, and the ratio of 2 to 1;
 *  3. corun_switch() ping-pong in which both coroutines run the same loop,
 *     so every switch returns to the call site it left from. The CPU's
 *     return-address predictor then guesses right every time; the gap
 *     between 1 and 3 is what a mispredicted return costs;
 *  4. corun_yield() between two runnable coroutines running the same loop
 *     (each yield hands the thread to the other one): nanoseconds per yield.
 *
 * Each measurement is repeated (the repetitions of 1 and 2 interleaved, so
 * both see the same machine state) after one warm-up round; the median is
 * reported, with the minimum and maximum. The number of switches per
 * repetition is calibrated so that one repetition takes about 100 ms.
 *
 * Usage: switch [-r REPS] [-t TARGET_MS]
 * Lines starting with "@result" are read by scripts/bench.
 */
#include <corun.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_REPS 101
#include "benchutil.h"

static void check(int err, const char *what)
{
    bench_check("switch", err, what);
}

/* ---- corun_switch ping-pong ------------------------------------------- */

static corun_t *co_a, *co_b;
static long sw_rounds;          /* round trips: two switches each */
static uint64_t sw_t0, sw_t1;
static char stop_token;

static void *ping(void *arg)
{
    (void)arg;
    /* The first switch starts pong; every later one resumes it. */
    corun_switch(co_b, NULL);
    sw_t0 = now_ns();
    for (long i = 0; i < sw_rounds; i++)
        corun_switch(co_b, NULL);
    sw_t1 = now_ns();
    return NULL;        /* back to main, suspended in corun_switch() */
}

static void *pong(void *arg)
{
    (void)arg;
    for (;;) {
        void *v = corun_switch(co_a, NULL);
        if (v == &stop_token)
            return NULL; /* back to main */
    }
}

/* Nanoseconds for 2 * rounds corun_switch() calls. */
static uint64_t run_corun_switch(long rounds)
{
    sw_rounds = rounds;
    check(corun_spawn(&co_a, &(corun_attr_t){ .name = "ping" }, ping, NULL), "spawn ping");
    check(corun_spawn(&co_b, &(corun_attr_t){ .name = "pong" }, pong, NULL), "spawn pong");
    corun_switch(co_a, NULL);            /* returns when ping finishes */
    corun_switch(co_b, &stop_token);     /* returns when pong finishes */
    check(corun_join(co_a, NULL), "join ping");
    check(corun_join(co_b, NULL), "join pong");
    return sw_t1 - sw_t0;
}

/* ---- corun_switch ping-pong, one call site ----------------------------- */

static corun_t *same_co[2];
static long same_rounds;
static uint64_t same_t0, same_t1;

/* Both coroutines run this; arg is 0 for the one that counts, 1 for the
 * other. Every switch is made from the same corun_switch() call. */
static void *same_site(void *arg)
{
    int me = (int)(intptr_t)arg;
    corun_t *other = same_co[!me];
    long n = me == 0 ? same_rounds + 1 : -1;    /* round 0 starts the other */
    if (me == 0)
        same_t0 = now_ns();
    for (long i = 0; i != n; i++)
        if (corun_switch(other, NULL) == &stop_token)
            break;
    if (me == 0)
        same_t1 = now_ns();
    return NULL;        /* back to main */
}

static uint64_t run_corun_switch_same_site(long rounds)
{
    same_rounds = rounds;
    for (intptr_t i = 0; i < 2; i++)
        check(corun_spawn(&same_co[i], NULL, same_site, (void *)i), "spawn same_site");
    corun_switch(same_co[0], NULL);
    corun_switch(same_co[1], &stop_token);
    check(corun_join(same_co[0], NULL), "join same_site");
    check(corun_join(same_co[1], NULL), "join same_site");
    return same_t1 - same_t0;
}

/* ---- swapcontext ping-pong --------------------------------------------- */

#define UC_STACK (256 * 1024)
static ucontext_t uc_main, uc_a, uc_b;
static long uc_rounds;
static uint64_t uc_t0, uc_t1;

static void uc_ping(void)
{
    swapcontext(&uc_a, &uc_b);          /* start uc_pong */
    uc_t0 = now_ns();
    for (long i = 0; i < uc_rounds; i++)
        swapcontext(&uc_a, &uc_b);
    uc_t1 = now_ns();
    /* returning follows uc_link to uc_main */
}

static void uc_pong(void)
{
    for (;;)
        swapcontext(&uc_b, &uc_a);
}

static uint64_t run_swapcontext(long rounds)
{
    static char *stack_a, *stack_b;
    if (!stack_a) {
        stack_a = malloc(UC_STACK);
        stack_b = malloc(UC_STACK);
        if (!stack_a || !stack_b)
            check(ENOMEM, "malloc");
    }
    uc_rounds = rounds;
    if (getcontext(&uc_a) || getcontext(&uc_b))
        check(errno, "getcontext");
    uc_a.uc_stack.ss_sp = stack_a;
    uc_a.uc_stack.ss_size = UC_STACK;
    uc_a.uc_link = &uc_main;
    uc_b.uc_stack.ss_sp = stack_b;
    uc_b.uc_stack.ss_size = UC_STACK;
    uc_b.uc_link = &uc_main;
    makecontext(&uc_a, uc_ping, 0);
    makecontext(&uc_b, uc_pong, 0);
    if (swapcontext(&uc_main, &uc_a))
        check(errno, "swapcontext");
    return uc_t1 - uc_t0;               /* uc_pong is simply abandoned */
}

/* ---- corun_yield between two coroutines -------------------------------- */

static long y_count;

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < y_count; i++)
        corun_yield();
    return NULL;
}

/* Nanoseconds for 2 * count corun_yield() calls (main waits in join). */
static uint64_t run_yield(long count)
{
    corun_t *a, *b;
    y_count = count;
    uint64_t t0 = now_ns();
    check(corun_spawn(&a, NULL, yielder, NULL), "spawn yielder");
    check(corun_spawn(&b, NULL, yielder, NULL), "spawn yielder");
    check(corun_join(a, NULL), "join yielder");
    check(corun_join(b, NULL), "join yielder");
    return now_ns() - t0;
}

/* ---- driver ------------------------------------------------------------- */

/* Find n such that run(n) takes about target_ns. */
static long calibrate(uint64_t (*run)(long), uint64_t target_ns)
{
    long n = 1000;
    for (;;) {
        uint64_t t = run(n);
        if (t >= target_ns / 8 || n > (1L << 40)) {
            double scaled = (double)n * (double)target_ns / (double)(t ? t : 1);
            return scaled < 1000 ? 1000 : (long)scaled;
        }
        n *= 4;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: switch [-r REPS (1..%d, default 9)] [-t TARGET_MS (default 100)]\n",
            MAX_REPS);
    exit(2);
}

int main(int argc, char **argv)
{
    int reps = 9;
    long target_ms = 100;
    int opt;
    while ((opt = getopt(argc, argv, "r:t:h")) != -1) {
        switch (opt) {
        case 'r': reps = atoi(optarg); break;
        case 't': target_ms = atol(optarg); break;
        default: usage();
        }
    }
    if (reps < 1 || reps > MAX_REPS || target_ms < 1)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t target = (uint64_t)target_ms * 1000000u;

    long n_sw = calibrate(run_corun_switch, target / 2);
    long n_uc = calibrate(run_swapcontext, target / 2);
    long n_ss = calibrate(run_corun_switch_same_site, target / 2);
    long n_y = calibrate(run_yield, target / 2);

    double sw[MAX_REPS], uc[MAX_REPS], ratio[MAX_REPS], ss[MAX_REPS], y[MAX_REPS];
    run_corun_switch(n_sw);     /* warm-up */
    run_swapcontext(n_uc);
    for (int i = 0; i < reps; i++) {
        sw[i] = (double)run_corun_switch(n_sw) / (2.0 * (double)n_sw);
        uc[i] = (double)run_swapcontext(n_uc) / (2.0 * (double)n_uc);
        ratio[i] = uc[i] / sw[i];
    }
    run_corun_switch_same_site(n_ss);   /* warm-up */
    for (int i = 0; i < reps; i++)
        ss[i] = (double)run_corun_switch_same_site(n_ss) / (2.0 * (double)n_ss);
    run_yield(n_y);             /* warm-up */
    for (int i = 0; i < reps; i++)
        y[i] = (double)run_yield(n_y) / (2.0 * (double)n_y);

    struct stats s_sw = summarise(sw, reps), s_uc = summarise(uc, reps);
    struct stats s_r = summarise(ratio, reps), s_y = summarise(y, reps);
    struct stats s_ss = summarise(ss, reps);
    double ratio_of_medians = s_uc.median / s_sw.median;

    printf("switch: median of %d repetitions (after one warm-up), min..max in brackets\n", reps);
    printf("  corun_switch ping-pong            %8.2f ns/switch  [%.2f .. %.2f]  (%ld switches/rep)\n",
           s_sw.median, s_sw.min, s_sw.max, 2 * n_sw);
    printf("  swapcontext ping-pong             %8.2f ns/switch  [%.2f .. %.2f]  (%ld switches/rep)\n",
           s_uc.median, s_uc.min, s_uc.max, 2 * n_uc);
    printf("  swapcontext / corun_switch        %8.1fx           (ratio of medians; per-rep [%.1f .. %.1f])\n",
           ratio_of_medians, s_r.min, s_r.max);
    printf("  corun_switch, same call site      %8.2f ns/switch  [%.2f .. %.2f]  (%ld switches/rep)\n",
           s_ss.median, s_ss.min, s_ss.max, 2 * n_ss);
    printf("  corun_yield, 2 coroutines         %8.2f ns/yield   [%.2f .. %.2f]  (%ld yields/rep)\n",
           s_y.median, s_y.min, s_y.max, 2 * n_y);

    printf("@result switch_ns %.2f\n", s_sw.median);
    printf("@result swapcontext_ns %.2f\n", s_uc.median);
    printf("@result switch_speedup %.1f\n", ratio_of_medians);
    printf("@result switch_same_site_ns %.2f\n", s_ss.median);
    printf("@result yield_ns %.2f\n", s_y.median);
    return 0;
}
