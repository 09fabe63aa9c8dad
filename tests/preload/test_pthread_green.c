/*
 * test_pthread_green.c - pthreads as green threads, seen from unmodified
 * programs.
 *
 * The programs are tests/pt_thread, pt_mutex, pt_cond, pt_sync and pt_signal: plain
 * pthread programs, not linked with corun, each run as `PROG MODE`. Every
 * mode is run three ways, as three suites:
 *
 *   pthread_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green
 *   pthread_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   pthread_plain   no libcorun at all: proves the program's expectations
 *                   are what glibc and the kernel really do
 *
 * A mode passes when the program exits 0 and prints "PASS MODE"; in the
 * green runs it must also report that libcorun was loaded and that the
 * process never had more than one OS thread (max_tasks=1, counted from
 * /proc/self/task while its threads ran).
 *
 * The pthread_scale suite runs tests/pt_many: 100,000 threads that each sleep
 * and bump a mutex-protected counter, on one OS thread; the same program
 * with CORUN_THREADS=native (kernel threads), green by default, through
 * scripts/coro-run, and a bad CORUN_THREADS (exit status 2).
 *
 * Sanitizer builds: see preload_run.h for how the instrumented programs
 * are preloaded, and pt_skip() for the known ASan false positives
 * that is skipped.
 *
 * This binary links libcorun and `make check` runs it with
 * CORUN_THREADS=native; the children get their CORUN_THREADS explicitly.
 */
#include "testutil.h"
#include "preload_how.h"

#if !defined(TEST_BUILDDIR) || !defined(TEST_SRCDIR)
#error "TEST_BUILDDIR and TEST_SRCDIR must name the build and source directories"
#endif


static bool green_on_procs(const char *out);

TestSuite(pthread_green, .timeout = 120);
TestSuite(pthread_native, .timeout = 120);
TestSuite(pthread_plain, .timeout = 120);

/* The sanitizer build's known false positives: these modes are checked by
 * the other builds (see matrix_check in preload_run.h). */
static void pt_skip(const char *prog, const char *mode, enum pt_how how)
{
    (void)prog, (void)mode, (void)how;
#ifdef CORUN_SANITIZERS
    if (how != PT_GREEN && !strncmp(mode, "cancel_", 7))
        cr_skip_test("sanitizer build: glibc's cancellation of a kernel thread trips a known ASan "
                     "false positive (stack-buffer-underflow reported from sigaltstack in "
                     "__asan_handle_no_return, google/sanitizers#1399); the green run of this "
                     "mode, and the non-sanitizer builds, check it");
#endif
#ifdef CORUN_SANITIZERS
    if (how == PT_NATIVE && !strcmp(prog, "pt_process"))
        cr_skip_test("sanitizer build: a child forked while another kernel thread holds ASan's "
                     "allocator lock can deadlock in its first calloc (seen about 2 in 10 runs); "
                     "the green and plain runs, and the other builds, check it");
    if (how == PT_NATIVE && !strcmp(prog, "pt_thread") && !strcmp(mode, "detach"))
        cr_skip_test("sanitizer build: 2,000 short detached kernel threads hung once in CI "
                     "(30 s; the main thread gone, the rest not attachable), as the plain run "
                     "under ASan did, for which it is skipped too (matrix_check); 20 runs here "
                     "did not hang. The green run, and the other builds, check it");
#endif
}
#define MATRIX_SKIP(prog, mode, how) pt_skip(prog, mode, how)

#include "preload_run.h"

/* One mode, three suites (pthread_green, pthread_native, pthread_plain). */
#define PT_ENV(prog, mode, ...) MATRIX(pthread, prog##_##mode, prog, mode, __VA_ARGS__)
#define PT(prog, mode) PT_ENV(prog, mode, NULL)

/* ---- thread lifecycle (tests/preload/pt_thread.c) --------------------------------------*/

PT(pt_thread, create_join)
PT(pt_thread, join_errors)
PT(pt_thread, tryjoin)
PT(pt_thread, timedjoin)
PT(pt_thread, detach)
PT(pt_thread, exit)
PT(pt_thread, names)
/* A new thread's name is the process's (as the kernel names a new thread). */
PT(pt_thread, name_default)
/* Green: strict alternation A0B0A1B1A2B2 of two yielding threads. */
PT(pt_thread, yield)
PT(pt_thread, once)
PT(pt_thread, keys)

/* Deferred cancellation of a thread parked in each kind of blocking call:
 * cleanup handlers (innermost first), then key destructors, and the joiner
 * gets PTHREAD_CANCELED. In pthread_cond_wait the victim holds the mutex
 * again before its handlers run. */
PT(pt_thread, cancel_sleep)
PT(pt_thread, cancel_usleep)
PT(pt_thread, cancel_nanosleep)
PT(pt_thread, cancel_clock_nanosleep)
PT(pt_thread, cancel_read)
PT(pt_thread, cancel_cond)
PT(pt_thread, cancel_cond_timed)
PT(pt_thread, cancel_join)
PT(pt_thread, cancel_sem)
PT(pt_thread, cancel_sem_timed)
PT(pt_thread, cancel_disabled)
PT(pt_thread, cancel_early)
PT(pt_thread, cancel_mutex)
PT(pt_thread, cancel_finished)
PT(pt_thread, cleanup)

PT(pt_thread, sigmask)
PT(pt_thread, kill)
/* pthread_kill's handler runs on the target and interrupts its read(), and a
 * signal the target blocks stays pending until it unblocks it: signal
 * delivery to one green thread belongs to the signals issue (README). */
PT(pt_thread, kill_target)
PT(pt_thread, kill_masked)

/* Explicit stack sizes win over a small CORUN_STACK_SIZE. */
PT_ENV(pt_thread, attr_stack, "CORUN_STACK_SIZE=64K", NULL)
/* ... including an explicit size equal to glibc's default (8 MiB). */
PT_ENV(pt_thread, attr_stack_default_size, "CORUN_STACK_SIZE=64K", NULL)
/* A stack given with pthread_attr_setstack is the one the thread runs on. */
PT(pt_thread, attr_setstack)
PT(pt_thread, guard_none)
PT(pt_thread, tid)
PT(pt_thread, tid_kill)
PT(pt_thread, tid_sched)
/* The stack pthread_getattr_np reports is the thread's own, corun's canary
 * outside it (HotSpot guards its lowest pages). */
PT(pt_thread, stack_guard_own)
PT(pt_thread, stack_fill)

/* main calls pthread_exit while 5 threads run: its cleanup handler and key
 * destructor run, the process lives until the last thread ends, then exits
 * 0 with every thread's output. */
static void main_exit(enum pt_how how)
{
    struct tu_child *c = calloc(1, sizeof *c);
    const char *args[] = { "main_exit", NULL };
    pt_run("pt_thread", args, how, NULL, c);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0,
              PT_FMT, PT_ARGS("pt_thread", "main_exit", how, c, st));
    static const char *const order[] = {
        "main exiting\n", "main cleanup ran\n", "main key destructor ran\n",
    };
    const char *at = c->out;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *p = strstr(at, order[i]);
        cr_assert(p, "missing or out of order: %s" PT_FMT, order[i],
                  PT_ARGS("pt_thread", "main_exit", how, c, st));
        at = p + strlen(order[i]);
    }
    /* The threads' sleeps are 30 ms apart, but a loaded machine may wake two
     * at once (natively too): each line after main's, in any order, and the
     * summary after the last of them. */
    const char *last = at;
    for (int i = 0; i < 5; i++) {
        char line[32];
        snprintf(line, sizeof line, "thread %d done\n", i);
        const char *p = strstr(at, line);
        cr_assert(p, "missing or before main's lines: %s" PT_FMT, line,
                  PT_ARGS("pt_thread", "main_exit", how, c, st));
        if (p + strlen(line) > last)
            last = p + strlen(line);
    }
    cr_assert(strstr(last, "PASS main_exit\n"), "no summary after the threads' lines" PT_FMT,
              PT_ARGS("pt_thread", "main_exit", how, c, st));
    if (how == PT_GREEN)
        cr_assert(green_on_procs(c->out),
                  PT_FMT, PT_ARGS("pt_thread", "main_exit", how, c, st));
    free(c);
}

Test(pthread_green, pt_thread_main_exit) { main_exit(PT_GREEN); }
Test(pthread_native, pt_thread_main_exit) { main_exit(PT_NATIVE); }
Test(pthread_plain, pt_thread_main_exit) { main_exit(PT_PLAIN); }

/* A 64 KiB stack with a 256 KiB guard: a write 128 KiB below the stack
 * faults. Natively: SIGSEGV; green: corun reports the overflow and aborts. */
static void guard(enum pt_how how)
{
    struct tu_child *c = calloc(1, sizeof *c);
    const char *args[] = { "guard", NULL };
    pt_run("pt_thread", args, how, NULL, c);
    char st[128];
    cr_assert(strstr(c->out, "touching"), PT_FMT, PT_ARGS("pt_thread", "guard", how, c, st));
    cr_assert(!strstr(c->out, "no fault"), "no guard region below the stack: " PT_FMT,
              PT_ARGS("pt_thread", "guard", how, c, st));
#ifdef CORUN_SANITIZERS
    /* ASan may report the fault itself and exit 1 */
    bool died = WIFSIGNALED(c->status) || (WIFEXITED(c->status) && WEXITSTATUS(c->status) != 0 &&
                                           (strstr(c->err, "AddressSanitizer") ||
                                            strstr(c->err, "stack overflow")));
#else
    bool died = WIFSIGNALED(c->status);
#endif
    cr_assert(died, "the fault did not end the process: " PT_FMT,
              PT_ARGS("pt_thread", "guard", how, c, st));
    if (how == PT_GREEN && !strstr(c->err, "AddressSanitizer"))
        cr_assert(strstr(c->err, "stack overflow") && strstr(c->err, "guard"),
                  "corun did not report an overflow into the guard: " PT_FMT,
                  PT_ARGS("pt_thread", "guard", how, c, st));
    free(c);
}

Test(pthread_green, pt_thread_guard) { guard(PT_GREEN); }
Test(pthread_native, pt_thread_guard) { guard(PT_NATIVE); }
Test(pthread_plain, pt_thread_guard) { guard(PT_PLAIN); }

/* ---- mutexes (tests/preload/pt_mutex.c) ------------------------------------------------*/

PT(pt_mutex, normal)
PT(pt_mutex, recursive)
PT(pt_mutex, errorcheck)
/* trylock by the holder of an error-checking mutex: EBUSY, not EDEADLK. */
PT(pt_mutex, errorcheck_trylock)
/* Recursive and error-checking mutexes tell green threads apart. */
PT(pt_mutex, ownership)
PT(pt_mutex, timed)
/* A lock held across read() and sleep while other threads run. */
PT(pt_mutex, across_block)
PT(pt_mutex, contention)

/* ---- condition variables (tests/preload/pt_cond.c) -----------------------------------------*/

PT(pt_cond, signal)
PT(pt_cond, broadcast)
PT(pt_cond, timedwait_realtime)
PT(pt_cond, timedwait_monotonic)
PT(pt_cond, clockwait)
PT(pt_cond, signaled_in_time)
PT(pt_cond, timeout_contended)
PT(pt_cond, errors)
PT(pt_cond, pingpong)

/* ---- signals: EINTR, SA_RESTART, which thread, waits (tests/preload/pt_signal.c) ----------*/

PT(pt_signal, accept_eintr)
PT(pt_signal, accept_restart)
PT(pt_signal, read_itimer)
PT(pt_signal, poll_always_eintr)
PT(pt_signal, nanosleep_rem)
PT(pt_signal, sem_eintr)
PT(pt_signal, pselect_mask)
PT(pt_signal, mask_pending)
PT(pt_signal, worker_interrupted)
PT(pt_signal, kill_restart)
PT(pt_signal, rcvtimeo_eintr)
PT(pt_signal, sigwait_thread)
PT(pt_signal, sigsuspend)
PT(pt_signal, pause)
PT(pt_signal, signal_siginterrupt)

/* ---- child processes and exit (tests/preload/pt_process.c) ---------------------------------*/

PT(pt_process, system_many)
PT(pt_process, popen_many)
PT(pt_process, wait_any)
PT(pt_process, wait_stopped)
PT(pt_process, fork_while_parked)
PT(pt_process, prefork_accept)
PT(pt_process, main_pthread_exit)

/* ---- corun's own fds are not the program's (tests/preload/pt_fds.c) ------------------------*/

PT(pt_fds, first_fd)
PT(pt_fds, scan)
PT(pt_fds, close_range)
PT(pt_fds, closefrom)
PT(pt_fds, lowered_limit)
PT(pt_fds, listing)
PT(pt_fds, exec_child)
/* Eight OS threads' worth of corun's fds made at once stay below FD_SETSIZE. */
PT_ENV(pt_fds, fdsize, "CORUN_PROCS=8", NULL)

/* dup_onto makes name lookups, which start corun's thread pool: the thread
 * count is not checked. */
static void fds_pool_check(enum pt_how how, const char *mode)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { mode, NULL };
    const char *const extra[] = { NULL };
    pt_run("pt_fds", args, how, extra, c);
    char st[128], pass[64];
    snprintf(pass, sizeof pass, "PASS %s\n", mode);
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, pass) &&
                  strstr(c->out, how == PT_PLAIN    ? "corun=0 green=0"
                                 : how == PT_GREEN ? "corun=1 green=1"
                                                   : "corun=1 green=0"),
              PT_FMT, PT_ARGS("pt_fds", mode, how, c, st));
    free(c);
}

Test(pthread_green, pt_fds_dup_onto) { fds_pool_check(PT_GREEN, "dup_onto"); }
Test(pthread_native, pt_fds_dup_onto) { fds_pool_check(PT_NATIVE, "dup_onto"); }
Test(pthread_plain, pt_fds_dup_onto) { fds_pool_check(PT_PLAIN, "dup_onto"); }

/* ---- fork, signal handlers and settings as real servers use them (tests/preload/pt_fork.c) ------*/

/* PostgreSQL's postmaster: select's EINTR survives the sigprocmask after it. */
PT(pt_fork, select_sigchld_fork)
PT(pt_fork, select_sigchld_fork_busy)
PT(pt_fork, sigmask_errno)
/* OpenSSL's locks first used in a handler, then in main, then at exit from a handler. */
PT(pt_fork, locks_in_handler)
/* Redis/jemalloc: mutexes locked in an atfork prepare handler, released in parent and child. */
PT(pt_fork, atfork_mutexes)
PT(pt_fork, fork_mutex_held)
/* fork while threads on other OS threads are inside a mutex's, rwlock's, semaphore's and
 * condvar's own bookkeeping: the child once spun forever on its first use of one. */
PT(pt_fork, fork_in_sections)
/* setproctitle: CORUN_LOG_FILE still names the log after the environment is wiped. */
PT(pt_fork, environ_rewrite)

/* A jemalloc-like allocator initialised under a mutex: initialised once,
 * its atfork handlers registered once (tests/preload/pt_alloc.c). It replaces
 * malloc, which an ASan-built program cannot. */
#ifndef CORUN_SANITIZERS
PT(pt_alloc, atfork_once)
#endif

/* exit() from a thread while others are parked: the process ends at once
 * with the status, each atexit handler runs once. */
static void exit_thread_check(enum pt_how how)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { "exit_thread", NULL };
    const char *const extra[] = { NULL };
    pt_run("pt_process", args, how, extra, c);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 &&
                  strstr(c->out, "PASS exit_thread\n") && strstr(c->out, "atexit run 1\n") &&
                  !strstr(c->out, "atexit run 2"),
              PT_FMT, PT_ARGS("pt_process", "exit_thread", how, c, st));
    free(c);
}

Test(pthread_green, pt_process_exit_thread) { exit_thread_check(PT_GREEN); }
Test(pthread_native, pt_process_exit_thread) { exit_thread_check(PT_NATIVE); }
Test(pthread_plain, pt_process_exit_thread) { exit_thread_check(PT_PLAIN); }

/* ---- objects shared with kernel threads made behind corun's back (tests/preload/pt_mixed.c) --
 * Those threads are real in every run, so the green run is checked for green
 * threads being used (green=1), not for one OS thread. */

static void pt_mixed_check(const char *mode, enum pt_how how)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { mode, NULL };
    pt_run("pt_mixed", args, how, NULL, c);
    char st[128], pass[128];
    snprintf(pass, sizeof pass, "PASS %s\n", mode);
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, pass),
              PT_FMT, PT_ARGS("pt_mixed", mode, how, c, st));
    const char *want = how == PT_PLAIN ? "corun=0 green=0" : how == PT_NATIVE ? "corun=1 green=0"
                                                                          : "corun=1 green=1";
    cr_assert(strstr(c->out, want), "expected %s: " PT_FMT, want,
              PT_ARGS("pt_mixed", mode, how, c, st));
    free(c);
}

#define PT_MIXED(mode)                                                                       \
    Test(pthread_green, pt_mixed_##mode) { pt_mixed_check(#mode, PT_GREEN); }               \
    Test(pthread_native, pt_mixed_##mode) { pt_mixed_check(#mode, PT_NATIVE); }             \
    Test(pthread_plain, pt_mixed_##mode) { pt_mixed_check(#mode, PT_PLAIN); }

PT_MIXED(pingpong)
PT_MIXED(cond)
PT_MIXED(cond_timeout)
PT_MIXED(mutex)
PT_MIXED(sem)
PT_MIXED(rwlock)
PT_MIXED(barrier)
PT_MIXED(once)
PT_MIXED(late_kernel)

/* ---- rwlocks, spinlocks, barriers, semaphores (tests/preload/pt_sync.c) -------------------*/

PT(pt_sync, rwlock_shared)
PT(pt_sync, rwlock_errors)
/* tryrdlock/trywrlock by the write holder: EBUSY, not EDEADLK. */
PT(pt_sync, rwlock_trylock_own)
PT(pt_sync, rwlock_timed)
PT(pt_sync, rwlock_exclusion)
PT(pt_sync, spin)
PT(pt_sync, barrier)
PT(pt_sync, sem_basic)
PT(pt_sync, sem_block)
PT(pt_sync, sem_timed)
/* sem_open'ed (glibc-initialised, shared) semaphores keep working. */
PT(pt_sync, sem_named)
/* A process-shared semaphore: a child's sem_post wakes the parent. */
PT(pt_sync, sem_pshared)
PT(pt_sync, pshared_objects)

/* ---- 100,000 threads; CORUN_THREADS (tests/preload/pt_many.c) -------------------------------*/

TestSuite(pthread_scale, .timeout = 300);

/* The number after "name=" in out, or -1. */
static long field(const char *out, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = out;
    while ((p = strstr(p, key))) {
        if (p == out || p[-1] == ' ' || p[-1] == '\n')
            return atol(p + strlen(key));
        p++;
    }
    return -1;
}

/* Green, and on no more OS threads than corun's CORUN_PROCS workers. */
static bool green_on_procs(const char *out)
{
    long t = field(out, "max_tasks");
    return strstr(out, "corun=1 green=1 max_tasks=") && t >= 1 && t <= pr_procs();
}

/* pt_many THREADS SLEEP_MS */
static struct tu_child *many_ms(const char *threads, const char *ms, enum pt_how how,
                                const char *const *extra)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { threads, ms, NULL };
    pt_run("pt_many", args, how, extra, c);
    return c;
}

static struct tu_child *many(const char *threads, enum pt_how how, const char *const *extra)
{
    return many_ms(threads, "200", how, extra);
}

static void many_ok(struct tu_child *c, long n, enum pt_how how)
{
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, "PASS many"),
              PT_FMT, PT_ARGS("pt_many", "", how, c, st));
    cr_assert_eq(field(c->out, "created"), n, PT_FMT, PT_ARGS("pt_many", "", how, c, st));
    cr_assert_eq(field(c->out, "counter"), n, PT_FMT, PT_ARGS("pt_many", "", how, c, st));
}

/* An unmodified program spawning 100,000 threads that each sleep and bump a
 * mutex-protected counter (natively this machine stops near 32,000): all
 * sleep at once (1 s: long enough for all of them to start, even in a
 * sanitizer build), on one OS thread. Its creation loop keeps the CPU for
 * about a second (several on a loaded machine): preempted, it would let the
 * first threads start, and wake, before the last exist, as natively; this
 * test is about all of them at once, so preemption is off. */
Test(pthread_scale, green_100000_threads_on_one_os_thread)
{
    /* On one OS thread (CORUN_PROCS=1): with workers, threads handed to
     * them start, and wake, while the creation loop goes on. */
    const char *const extra[] = { "CORUN_PREEMPT_MS=0", "CORUN_PROCS=1", NULL };
    struct tu_child *c = many_ms("100000", "1000", PT_GREEN, extra);
    char st[128];
    many_ok(c, 100000, PT_GREEN);
    cr_assert_eq(field(c->out, "peak_sleeping"), 100000, "not all asleep at once: " PT_FMT,
                 PT_ARGS("pt_many", "100000", PT_GREEN, c, st));
    cr_assert_eq(field(c->out, "max_tasks"), 1, "more than one OS thread: " PT_FMT,
                 PT_ARGS("pt_many", "100000", PT_GREEN, c, st));
    cr_assert(strstr(c->out, "corun=1 green=1"), PT_FMT,
              PT_ARGS("pt_many", "100000", PT_GREEN, c, st));
    free(c);
}

/* CORUN_THREADS=native: the same program's threads are kernel threads. */
Test(pthread_scale, native_1000_threads_are_kernel_threads)
{
    struct tu_child *c = many("1000", PT_NATIVE, NULL);
    char st[128];
    many_ok(c, 1000, PT_NATIVE);
    cr_assert(strstr(c->out, "corun=1 green=0"), "libcorun not loaded: " PT_FMT,
              PT_ARGS("pt_many", "1000", PT_NATIVE, c, st));
    cr_assert_gt(field(c->out, "max_tasks"), 1, "one OS thread with CORUN_THREADS=native: " PT_FMT,
                 PT_ARGS("pt_many", "1000", PT_NATIVE, c, st));
    free(c);
}

Test(pthread_scale, green_1000_threads_on_one_os_thread)
{
    struct tu_child *c = many("1000", PT_GREEN, NULL);
    char st[128];
    many_ok(c, 1000, PT_GREEN);
    cr_assert(green_on_procs(c->out), PT_FMT,
                 PT_ARGS("pt_many", "1000", PT_GREEN, c, st));
    free(c);
}

/* Green is the default; an empty CORUN_THREADS means the default. */
Test(pthread_scale, green_is_the_default)
{
    struct tu_child *c = many("1000", PT_PRELOAD, NULL);
    char st[128];
    many_ok(c, 1000, PT_PRELOAD);
    cr_assert(green_on_procs(c->out), PT_FMT,
              PT_ARGS("pt_many", "1000", PT_PRELOAD, c, st));
    free(c);
    const char *const empty[] = { "CORUN_THREADS=", NULL };
    c = many("1000", PT_PRELOAD, empty);
    many_ok(c, 1000, PT_PRELOAD);
    cr_assert(green_on_procs(c->out), "CORUN_THREADS='': " PT_FMT,
              PT_ARGS("pt_many", "1000", PT_PRELOAD, c, st));
    free(c);
}

/* A bad CORUN_THREADS stops the program before it runs: status 2 and a
 * message naming the variable, the value and the allowed values. */
Test(pthread_scale, bogus_corun_threads_exits_2)
{
    const char *const bogus[] = { "CORUN_THREADS=bogus", NULL };
    struct tu_child *c = many("10", PT_PRELOAD, bogus);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 2, "CORUN_THREADS=bogus: " PT_FMT,
              PT_ARGS("pt_many", "10", PT_PRELOAD, c, st));
    cr_assert(strstr(c->err, "CORUN_THREADS") && strstr(c->err, "bogus") &&
              strstr(c->err, "green") && strstr(c->err, "native"),
              "the message must name CORUN_THREADS, the value and 'green'/'native': " PT_FMT,
              PT_ARGS("pt_many", "10", PT_PRELOAD, c, st));
    cr_assert_eq(c->out[0], '\0', "the program ran: " PT_FMT,
                 PT_ARGS("pt_many", "10", PT_PRELOAD, c, st));
    free(c);
}

/* The same through scripts/coro-run (which preloads the library itself). */
Test(pthread_scale, coro_run_1000_threads_on_one_os_thread)
{
    static char prog[1024], lib[1024];
    snprintf(prog, sizeof prog, "%s/tests/pt_many", TEST_BUILDDIR);
    snprintf(lib, sizeof lib, "%s/.libs/libcorun.so", TEST_BUILDDIR);
    char *argv[] = { "bash", TEST_SRCDIR "/scripts/coro-run", "--library", lib, prog, "1000",
                     "200", NULL };
    char **env = pr_env(false, NULL);
    struct tu_child *c = calloc(1, sizeof *c);
    tu_exec_run("/bin/bash", argv, env, c);
    free(env);
    char st[128];
    many_ok(c, 1000, PT_PRELOAD);
    cr_assert(green_on_procs(c->out), PT_FMT,
              PT_ARGS("coro-run pt_many", "1000", PT_PRELOAD, c, st));
    free(c);
}
