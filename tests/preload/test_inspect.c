/*
 * test_inspect.c - seeing inside: CORUN_STATS figures on a known workload
 * (tests/pt_stats), the blocking detector on a CPU hog, an unhooked raw
 * read and an unhooked raw nanosleep, and silence otherwise
 * (tests/pt_block), the live dump naming a constructed deadlock cycle
 * (tests/pt_deadlock), and CORUN_LOG_FILE / CORUN_LOG_LEVEL.
 *
 * The programs are plain pthread programs run in a child with
 * LD_PRELOAD=libcorun.so and CORUN_THREADS=green (this binary itself runs
 * with CORUN_THREADS=native under make check).
 */
#include "testutil.h"
#include "preload_run.h"

#if !defined(TEST_BUILDDIR)
#error "TEST_BUILDDIR must name the build directory"
#endif

TestSuite(inspect, .timeout = 120);

/* Run tests/PROG [arg] green under the preload, with our environment minus
 * LD_PRELOAD and CORUN_*, plus `extra` (NULL-terminated): preload_run.h. */
static struct tu_child *run(const char *prog, const char *arg, const char *const *extra)
{
    const char *env[32] = { "CORUN_THREADS=green" };
    int k = 1;
    for (int i = 0; extra && extra[i] && k < 31; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    const char *const args[] = { arg, NULL };
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    pr_run(prog, arg ? args : NULL, true, env, c);
    return c;
}

#define OUT_FMT "%s %s: %s\n--- stdout ---\n%s--- stderr ---\n%s"
#define OUT_ARGS(prog, arg, c, st) prog, arg ? arg : "", tu_status_str((c)->status, st, sizeof st), (c)->out, (c)->err

static void expect_exit0(const char *prog, const char *arg, struct tu_child *c, const char *done)
{
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, done),
              OUT_FMT, OUT_ARGS(prog, arg, c, st));
}

/* The number on the stats line whose label is `label`, or -1. */
static long stat_value(const char *text, const char *label)
{
    const char *p = text;
    size_t n = strlen(label);
    while ((p = strstr(p, label))) {
        const char *q = p + n;
        if (*q == ' ') {
            while (*q == ' ')
                q++;
            return strtol(q, NULL, 10);
        }
        p = q;
    }
    return -1;
}

/* The milliseconds on the stats line `label` ("   300.123 ms"), or -1. */
static double stat_ms(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtod(p + strlen(label), NULL) : -1;
}

static int count(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

/* ---- stats -------------------------------------------------------------------*/

Test(inspect, stats_match_a_known_workload)
{
    /* Its hog keeps the CPU 300 ms: not preempted here, so that the loop's
     * longest block is known (stats_preempted_hog has it preempted). */
    /* One OS thread (CORUN_PROCS=1): the figures are summed over the
     * schedulers, and a peak per scheduler is not the process's. */
    const char *const extra[] = { "CORUN_STATS=1", "CORUN_PREEMPT_MS=0", "CORUN_PROCS=1", NULL };
    struct tu_child *c = run("pt_stats", NULL, extra);
    expect_exit0("pt_stats", NULL, c, "done\n");
    const char *e = c->err;
    cr_assert(strstr(e, "corun stats (pid "), "no stats table: %s", e);
    /* See tests/preload/pt_stats.c for where each figure comes from. */
    struct { const char *label; long want; } exact[] = {
        { "green threads created", 13 }, { "green threads peak alive", 6 },
        { "parks: read", 1 }, { "parks: write", 1 }, { "parks: accept", 1 },
        { "parks: connect", 1 }, { "parks: poll", 1 }, { "parks: sleep", 9 },
        { "parks: dns", 1 }, { "parks: mutex", 1 }, { "parks: cond", 1 },
        { "parks: join", 6 }, { "parks: child", 1 },
        /* the pipes of reader, writer and poller, the listener, the
         * connecting socket and the child's pidfd */
        { "fds tracked (registered)", 6 },
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        cr_expect_eq(stat_value(e, exact[i].label), exact[i].want, "%s: %ld, expected %ld\n%s",
                     exact[i].label, stat_value(e, exact[i].label), exact[i].want, e);
    long parks = stat_value(e, "  parks");
    cr_expect_eq(parks, 24, "parks: %ld, expected the sum 24\n%s", parks, e);
    cr_expect_geq(stat_value(e, "switches"), parks, "fewer switches than parks\n%s", e);
    cr_expect_geq(stat_value(e, "offloads (pool calls)"), 1, "the DNS lookup was not offloaded\n%s", e);
    /* Its mutex and condvar were only ever used on the one OS thread (where
     * the kernel has membarrier, which a second one would need). */
    cr_expect(strstr(e, "sync objects' CAS            no lock prefix (one OS thread)") ||
                  strstr(e, "sync objects' CAS            lock prefix (no membarrier)"), "%s", e);
    /* The hog ran 300 ms of CPU without yielding: the loop was blocked at
     * least that long. */
    cr_expect_geq(stat_ms(e, "longest loop block"), 290.0, "%s", e);
    cr_expect_geq(stat_ms(e, "longest run without a switch"), 290.0, "%s", e);
    cr_expect(strstr(e, "(by green thread 14 'hog')"), "the longest run is not blamed on 'hog'\n%s", e);
    const char *blame = strstr(e, "ms  (by green thread 14 'hog', ");
    cr_expect(blame && strtod(blame + strlen("ms  (by green thread 14 'hog', "), NULL) >= 290.0,
              "the block is not blamed on 'hog'\n%s", e);
    free(c);
}

/* The same workload with preemption (the default): the hog is made to
 * yield every few milliseconds, the loop is never blocked for long, and
 * the table counts the preemptions. Sanitizer builds have no own TLS, so
 * no preemption: the hog keeps the CPU there. */
Test(inspect, stats_preempted_hog)
{
    /* One OS thread: a preempted thread may move to another, whose first
     * signal after it arrives only starts the count of a whole slice; on a
     * loaded machine, where the CPU-time timer's signals come seldom
     * (docs/design.md), a hog moving at every preemption ran 352 ms
     * unpreempted (CI, CORUN_PROCS=4). */
    const char *const extra[] = { "CORUN_STATS=1", "CORUN_PROCS=1", NULL };
    struct tu_child *c = run("pt_stats", NULL, extra);
    expect_exit0("pt_stats", NULL, c, "done\n");
    const char *e = c->err;
#ifdef CORUN_SANITIZERS
    cr_expect_eq(stat_value(e, "preempted (CPU slices)"), 0, "%s", e);
    cr_expect_geq(stat_ms(e, "longest run without a switch"), 290.0, "%s", e);
#else
    /* 300 ms of CPU in slices of 5 to 10 ms: a few dozen on an idle
     * machine. On a loaded one the kernel's CPU-time timer signals far
     * less often (docs/design.md; CI: 16 preemptions and a 117 ms run), so
     * what is checked is that the hog was cut: preempted, and no run as
     * long as its own wall time. */
    const char *ran = strstr(c->out, "hog ran ");
    cr_assert(ran, "%s", c->out);
    double hog_ms = strtod(ran + strlen("hog ran "), NULL);
    cr_expect_geq(stat_value(e, "preempted (CPU slices)"), 1, "%s", e);
    cr_expect_lt(stat_ms(e, "longest run without a switch"), hog_ms * 0.9, "hog ran %.0f ms\n%s",
                 hog_ms, e);
    cr_expect_lt(stat_ms(e, "longest loop block"), hog_ms * 0.9, "hog ran %.0f ms\n%s", hog_ms, e);
#endif
    free(c);
}

/* One OS thread's green threads use a mutex, an rwlock and a semaphore
 * without the lock prefix until a kernel thread joins in (pt_mixed
 * late_kernel): its first call ends that (the table says an owner was
 * ended, not that the objects were never claimed), and every count comes
 * out. */
Test(inspect, stats_sync_cas_after_a_kernel_thread)
{
    const char *const extra[] = { "CORUN_STATS=1", "CORUN_PROCS=1", NULL };
    struct tu_child *c = run("pt_mixed", "late_kernel", extra);
    expect_exit0("pt_mixed", "late_kernel", c, "PASS late_kernel\n");
    cr_expect(strstr(c->err, "sync objects' CAS            lock prefix (used by several OS threads)") ||
                  strstr(c->err, "sync objects' CAS            lock prefix (no membarrier)"),
              "%s", c->err);
    free(c);
}

/* A thread blocked for real (pt_mn stuck: flock, 500 ms) has its OS thread's
 * scheduler handed to a spare: the table counts it (as it counts none where
 * nothing blocks: stats_even_when_nothing_blocked). Sanitizer builds hand
 * nothing over. */
#ifndef CORUN_SANITIZERS
Test(inspect, stats_count_a_hand_over)
{
    /* PT_MOVES: rounds until the stuck thread's OS thread had another
     * thread to hand over (and it checks that it resumed elsewhere). */
    const char *const extra[] = { "CORUN_STATS=1", "CORUN_PROCS=2", "CORUN_STEAL=0", "PT_MOVES=1",
                                  "PT_OWN_TLS=1", NULL };
    struct tu_child *c = run("pt_mn", "stuck", extra);
    expect_exit0("pt_mn", "stuck", c, "PASS stuck\n");
    cr_expect_geq(stat_value(c->err, "handed to a spare OS thread"), 1, "%s", c->err);
    free(c);
}
#endif

Test(inspect, stats_even_when_nothing_blocked)
{
    /* No thread, no blocking call: no scheduler is ever made, the table
     * (all zeros) is printed all the same. */
    const char *const extra[] = { "CORUN_STATS=1", NULL };
    struct tu_child *c = run("pt_block", "nothing", extra);
    expect_exit0("pt_block", "nothing", c, "done nothing\n");
    cr_expect(strstr(c->err, "corun stats (pid "), "no table: [%s]", c->err);
    cr_expect_eq(stat_value(c->err, "green threads created"), 0, "%s", c->err);
    cr_expect_eq(stat_value(c->err, "parks: sleep"), 0, "%s", c->err);
    cr_expect_eq(stat_value(c->err, "handed to a spare OS thread"), 0, "%s", c->err);
    free(c);
}

Test(inspect, no_stats_unless_asked)
{
    struct tu_child *c = run("pt_stats", NULL, NULL);
    expect_exit0("pt_stats", NULL, c, "done\n");
    cr_assert_null(strstr(c->err, "corun stats"), "%s", c->err);
    free(c);
}

Test(inspect, stats_go_to_the_log_file)
{
    char path[] = "/tmp/corun-test-log.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char setting[128];
    snprintf(setting, sizeof setting, "CORUN_LOG_FILE=%s", path);
    const char *const extra[] = { "CORUN_STATS=1", setting, NULL };
    struct tu_child *c = run("pt_stats", NULL, extra);
    expect_exit0("pt_stats", NULL, c, "done\n");
    cr_expect_null(strstr(c->err, "corun stats"), "stats on stderr despite the log file: %s", c->err);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    cr_expect(strstr(buf, "corun stats") && strstr(buf, "parks: sleep"), "log file: [%s]", buf);
    free(c);
}

/* ---- blocking detector ----------------------------------------------------------*/

/* The detector's subjects block the loop with their own syscall
 * instructions: with the catch (the default where the kernel has it) those
 * would park, so these runs have the hooks only (CORUN_CATCH=plt). */
static struct tu_child *run_block(const char *mode, const char *ms)
{
    static char setting[64];
    snprintf(setting, sizeof setting, "CORUN_BLOCK_WARN_MS=%s", ms);
    const char *const extra[] = { setting, "CORUN_CATCH=plt", NULL };
    return run("pt_block", mode, extra);
}

Test(inspect, detector_fires_on_a_cpu_hog_once_per_site)
{
    struct tu_child *c = run_block("spin", "100");
    expect_exit0("pt_block", "spin", c, "done spin\n");
    cr_expect_eq(count(c->err, "has not turned for 100 ms"), 1,
                 "expected one warning for the two spins from one call site:\n%s", c->err);
    cr_expect(strstr(c->err, "green thread 1 (main) is running"), "%s", c->err);
    cr_expect(strstr(c->err, "(spin_for+"), "the backtrace does not name spin_for:\n%s", c->err);
    cr_expect(strstr(c->err, "(main+"), "the backtrace does not reach main:\n%s", c->err);
    free(c);
}

Test(inspect, detector_fires_on_an_unhooked_raw_read)
{
    struct tu_child *c = run_block("rawread", "100");
    /* done + status 0: the read got its byte, the signal did not disturb it */
    expect_exit0("pt_block", "rawread", c, "done rawread\n");
    cr_expect_eq(count(c->err, "has not turned"), 1, "%s", c->err);
    cr_expect(strstr(c->err, "in read (system call 0)"), "%s", c->err);
    cr_expect(strstr(c->err, "(raw_read+"), "the backtrace does not name raw_read:\n%s", c->err);
    free(c);
}

Test(inspect, detector_reports_an_unhooked_raw_nanosleep_without_interrupting_it)
{
    struct tu_child *c = run_block("rawsleep", "100");
    expect_exit0("pt_block", "rawsleep", c, "done rawsleep\n");   /* not EINTR */
    cr_expect_eq(count(c->err, "has not turned"), 1, "%s", c->err);
    cr_expect(strstr(c->err, "in nanosleep (system call 35"), "%s", c->err);
    cr_expect(strstr(c->err, "(raw_sleep+"), "the stack scan does not find raw_sleep:\n%s", c->err);
    free(c);
}

Test(inspect, detector_quiet_for_hooked_waits_and_a_lone_thread)
{
    const char *modes[] = { "quiet", "alone" };
    for (int i = 0; i < 2; i++) {
        struct tu_child *c = run_block(modes[i], "100");
        char done[32];
        snprintf(done, sizeof done, "done %s\n", modes[i]);
        expect_exit0("pt_block", modes[i], c, done);
        cr_expect_null(strstr(c->err, "has not turned"), "%s: %s", modes[i], c->err);
        free(c);
    }
}

Test(inspect, detector_gives_up_its_signal_to_the_program)
{
    /* The program's own SIGRTMAX-1 handler never runs for the detector, and
     * the hog is still reported, without a backtrace. */
    struct tu_child *c = run_block("ownsig", "100");
    expect_exit0("pt_block", "ownsig", c, "done ownsig\n");
    cr_expect_eq(count(c->err, "sets its own action for signal"), 1, "%s", c->err);
    cr_expect(strstr(c->err, "(SIGRTMAX-1), which the blocking detector"), "%s", c->err);
    cr_expect_eq(count(c->err, "has not turned for 100 ms"), 1, "%s", c->err);
    cr_expect(strstr(c->err, "no backtrace: the program uses SIGRTMAX-1"), "%s", c->err);
    free(c);
}

Test(inspect, detector_off_by_default)
{
    struct tu_child *c = run("pt_block", "spin", NULL);
    expect_exit0("pt_block", "spin", c, "done spin\n");
    cr_expect_null(strstr(c->err, "has not turned"), "%s", c->err);
    free(c);
}

/* ---- live dump ---------------------------------------------------------------*/

Test(inspect, dump_names_the_deadlock_cycle)
{
    const char *const extra[] = { "CORUN_DUMP_SIGNAL=USR1", NULL };
    struct tu_child *c = run("pt_deadlock", NULL, extra);
    expect_exit0("pt_deadlock", NULL, c, "done\n");
    const char *e = c->err;
    /* main is 1, taker 2, holder 3 (created in that order). */
    cr_expect(strstr(e, "green thread 2 'taker': parked: mutex 0x"), "%s", e);
    cr_expect(strstr(e, "held by green thread 3 'holder'"), "%s", e);
    cr_expect(strstr(e, "green thread 3 'holder': parked: join of green thread 2 'taker'"), "%s", e);
    cr_expect(strstr(e, "green thread 1 (main): parked: sleep, timeout in"), "%s", e);
    cr_expect(strstr(e, "DEADLOCK: 2 'taker' waits for mutex 0x"), "%s", e);
    cr_expect(strstr(e, "held by 3 'holder', 3 'holder' waits for join of 2 'taker'"), "%s", e);
    cr_expect_eq(count(e, "DEADLOCK"), 1, "%s", e);
    /* Backtraces reach the program's own functions through corun's frames. */
    cr_expect(strstr(e, "(taker_main+"), "%s", e);
    cr_expect(strstr(e, "(holder_main+"), "%s", e);
    free(c);
}

Test(inspect, dump_names_functions_of_a_program_without_dynamic_symbols)
{
    /* Linked without -export-dynamic: taker_main and holder_main are only
     * in the program's .symtab. corun's own park frames are elided. */
    const char *const extra[] = { "CORUN_DUMP_SIGNAL=USR1", NULL };
    struct tu_child *c = run("pt_deadlock_plain", NULL, extra);
    expect_exit0("pt_deadlock_plain", NULL, c, "done\n");
    const char *e = c->err;
    cr_expect(strstr(e, "pt_deadlock_plain(taker_main+0x"), "%s", e);
    cr_expect(strstr(e, "pt_deadlock_plain(holder_main+0x"), "%s", e);
    cr_expect(strstr(e, "pt_deadlock_plain(main+0x"), "%s", e);
    cr_expect(strstr(e, "frames inside corun)") || strstr(e, "frame inside corun)"), "%s", e);
    cr_expect_null(strstr(e, "(sched_park+"), "corun's park frames are shown:\n%s", e);
    cr_expect(strstr(e, "DEADLOCK: 2 'taker' waits for mutex 0x"), "%s", e);
    free(c);
}

/* Two threads joining each other on two OS threads: one graph over both
 * (each OS thread's own graph had neither edge: a join's target was looked
 * for among its own threads only). */
Test(inspect, dump_finds_a_cycle_across_os_threads)
{
    const char *const extra[] = { "CORUN_DUMP_SIGNAL=USR1", "CORUN_PROCS=2", NULL };
    struct tu_child *c = run("pt_deadlock", "joins", extra);
    expect_exit0("pt_deadlock", "joins", c, "done\n");
    const char *e = c->err;
    cr_expect(strstr(e, "  2 'taker' -> 3 'holder' (join of 3 'holder')"), "%s", e);
    cr_expect(strstr(e, "  3 'holder' -> 2 'taker' (join of 2 'taker')"), "%s", e);
    cr_expect(strstr(e, "DEADLOCK: 2 'taker' waits for join of 3 'holder', 3 'holder' waits for "
                        "join of 2 'taker'"), "%s", e);
    cr_expect_eq(count(e, "DEADLOCK"), 1, "%s", e);
    cr_expect_eq(count(e, "corun: wait-for graph:"), 1, "%s", e);
    free(c);
}

Test(inspect, dump_without_a_cycle_says_so)
{
    const char *const extra[] = { "CORUN_DUMP_SIGNAL=SIGUSR1", NULL };
    struct tu_child *c = run("pt_deadlock", "nocycle", extra);
    expect_exit0("pt_deadlock", "nocycle", c, "done\n");
    const char *e = c->err;
    cr_expect(strstr(e, "  2 'taker' -> 3 'holder' (mutex 0x"), "%s", e);
    cr_expect(strstr(e, "green thread 3 'holder': parked: sleep, timeout in"), "%s", e);
    cr_expect(strstr(e, "corun: no deadlock cycle"), "%s", e);
    cr_expect_null(strstr(e, "DEADLOCK"), "%s", e);
    free(c);
}

Test(inspect, dump_signal_taken_by_the_program_stays_its_own)
{
    const char *const extra[] = { "CORUN_DUMP_SIGNAL=USR1", NULL };
    struct tu_child *c = run("pt_deadlock", "own", extra);
    expect_exit0("pt_deadlock", "own", c, "own handler\ndone\n");
    cr_expect_eq(count(c->err, "sets its own action for signal 10 (USR1), the live dump's"), 1,
                 "%s", c->err);
    cr_expect_null(strstr(c->err, "dump of the green threads"), "%s", c->err);
    free(c);
}

Test(inspect, no_dump_handler_unless_asked)
{
    /* pt_deadlock raises SIGUSR1: without CORUN_DUMP_SIGNAL its default
     * action ends the program, and nothing is dumped. */
    struct tu_child *c = run("pt_deadlock", NULL, NULL);
    cr_expect(WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGUSR1, "status %d", c->status);
    cr_expect_null(strstr(c->err, "dump of the green threads"), "%s", c->err);
    free(c);
}

/* ---- log level ---------------------------------------------------------------*/

Test(inspect, log_level_error_still_shows_setting_errors)
{
    const char *const extra[] = { "CORUN_LOG_LEVEL=error", "CORUN_POOL_SIZE=0", NULL };
    struct tu_child *c = run("pt_stats", NULL, extra);
    char st[128];
    cr_expect(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 2, OUT_FMT,
              OUT_ARGS("pt_stats", "", c, st));
    cr_expect(strstr(c->err, "invalid CORUN_POOL_SIZE='0'"), "%s", c->err);
    free(c);
}
