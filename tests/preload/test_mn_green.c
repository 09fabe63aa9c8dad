/*
 * test_mn_green.c - green threads that move between corun's OS threads
 * (tests/pt_mn, a plain pthread program), run as `pt_mn MODE`:
 *
 *   mn_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green, CORUN_PROCS=2
 *              and 4 (more workers than this machine's CPUs)
 *   mn_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   mn_plain   no libcorun: the reference
 *
 * Each mode checks TLS, errno and pthread_self after every CPU burst and
 * wait; PT_MOVES=1 (green, where threads can move: own TLS and preemption,
 * so not in a sanitizer build) also requires that the threads ran on more
 * than one OS thread.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(mn_green, .timeout = 120);
TestSuite(mn_native, .timeout = 120);
TestSuite(mn_plain, .timeout = 120);

/* A sanitizer build has no own TLS: green threads stay on one OS thread
 * and share its thread-locals (what pt_mn checks then: errno, pthread_self,
 * and the waits). */
#ifdef CORUN_SANITIZERS
#define MOVES "PT_MOVES=0", "PT_OWN_TLS=0"
#else
#define MOVES "PT_MOVES=1", "PT_OWN_TLS=1"
#endif

/* Eight CPU-bound threads, each checking its thread-locals and errno
 * after every 3 ms burst; at 2 workers one goes idle while the other has
 * threads queued, and some must move (PT_MUST_MOVE). */
MATRIX(mn, spread, pt_mn, spread, MOVES, "PT_MUST_MOVE=1", "CORUN_PROCS=2", NULL)
MATRIX(mn, spread4, pt_mn, spread, MOVES, "CORUN_PROCS=4", NULL)
/* The spread's threads, made by main while it runs (its own queue holds
 * the earlier ones), go through the global queue: CORUN_STATS counts the
 * threads taken from it, and they ran on both OS threads. Not in sanitizer
 * builds (N:1 there). */
#ifndef CORUN_SANITIZERS
Test(mn_green, spread_through_global_queue)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { "spread", NULL };
    const char *const extra[] = { MOVES, "PT_MUST_MOVE=1", "CORUN_PROCS=2", "CORUN_STATS=1",
                                  NULL };
    pt_run("pt_mn", args, PT_GREEN, extra, c);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 &&
                  strstr(c->out, "PASS spread\n"),
              PT_FMT, PT_ARGS("pt_mn", "spread", PT_GREEN, c, st));
    const char *g = strstr(c->err, "taken from the global queue ");
    cr_assert(g, "no global queue line in the stats" PT_FMT,
              PT_ARGS("pt_mn", "spread", PT_GREEN, c, st));
    long n = strtol(g + strlen("taken from the global queue "), NULL, 10);
    cr_assert(n >= 1, "no thread taken from the global queue" PT_FMT,
              PT_ARGS("pt_mn", "spread", PT_GREEN, c, st));
    free(c);
}
#endif

/* A mutex (with a burst inside), a rwlock, a semaphore, a condvar and a
 * barrier shared by six threads in CPU bursts: counts exact, holders alone. */
MATRIX(mn, sync, pt_mn, sync, MOVES, "CORUN_PROCS=2", NULL)
MATRIX(mn, sync4, pt_mn, sync, MOVES, "CORUN_PROCS=4", NULL)
/* A ring of six threads passing numbers through pipes (blocking reads
 * and writes between threads on different OS threads). */
MATRIX(mn, pipes, pt_mn, pipes, MOVES, "CORUN_PROCS=2", NULL)
MATRIX(mn, pipes4, pt_mn, pipes, MOVES, "CORUN_PROCS=4", NULL)
/* Threads parked in read() after a CPU burst, canceled or sent SIGUSR1
 * (no SA_RESTART: EINTR) by main, wherever they are. */
MATRIX(mn, cancel_kill, pt_mn, cancel_kill, MOVES, "CORUN_PROCS=2", NULL)
MATRIX(mn, cancel_kill4, pt_mn, cancel_kill, MOVES, "CORUN_PROCS=4", NULL)
/* fork from threads in CPU bursts: the child makes and joins threads of
 * its own and exits 7; the parent goes on. Not in sanitizer builds (where
 * threads do not move anyway): a child forked while other threads of an
 * ASan-built program run hung once in CI (native mode), in a runtime whose
 * locks corun does not see. */
#ifndef CORUN_SANITIZERS
MATRIX(mn, fork, pt_mn, fork, MOVES, "CORUN_PROCS=2", NULL)
#endif
/* Four threads accepting on one listener while two connect 3,000 times:
 * corun's O_NONBLOCK around each accept never shows to another OS thread's
 * accept (one would block its OS thread, or fail EAGAIN), and is never left
 * set. */
MATRIX(mn, accept, pt_mn, accept, MOVES, "CORUN_PROCS=2", NULL)
/* fork while threads (some on the other OS thread) wait on a pipe: the
 * child makes a thread and closes the pipe without waiting for them (not in
 * sanitizer builds, as fork above). */
#ifndef CORUN_SANITIZERS
MATRIX(mn, fork_close, pt_mn, fork_close, MOVES, "CORUN_PROCS=2", NULL)
#endif
/* tgkill naming a green thread's id from a thread on another OS thread:
 * its handler runs, and its read goes on (SA_RESTART). */
MATRIX(mn, tgkill, pt_mn, tgkill, MOVES, "CORUN_PROCS=2", NULL)
/* Eight threads, a random half of them woken each round for a 2 ms burst
 * (never preempted): a worker out of threads takes one from the other as
 * it leaves its wait. */
MATRIX(mn, woken, pt_mn, woken, MOVES, "PT_MUST_MOVE=1", "CORUN_PROCS=2", "CORUN_STEAL=1", NULL)
/* setresuid from main while threads run on several OS threads: every OS
 * thread changes its ids (glibc's SIGSETXID reaches corun's workers). */
MATRIX(mn, setxid, pt_mn, setxid, MOVES, "CORUN_PROCS=2", NULL)
MATRIX(mn, setxid4, pt_mn, setxid, MOVES, "CORUN_PROCS=4", NULL)
/* The setuid family from a thread that is not main, at 1, 2 and 4 OS
 * threads, beside glibc's own helper thread (a SIGEV_THREAD timer's):
 * each call changes every kernel thread (corun's hooks make it on each),
 * the refused ones fail as natively. And from a thread after main's
 * pthread_exit. */
MATRIX(mn, setxid_thread1, pt_mn, setxid_thread, MOVES, "CORUN_PROCS=1", NULL)
MATRIX(mn, setxid_thread, pt_mn, setxid_thread, MOVES, "CORUN_PROCS=2", NULL)
MATRIX(mn, setxid_thread4, pt_mn, setxid_thread, MOVES, "CORUN_PROCS=4", NULL)
MATRIX(mn, setxid_main_exit, pt_mn, setxid_main_exit, MOVES, "CORUN_PROCS=2", NULL)
/* A real blocking call (no hand-off without M:N: in a sanitizer build the
 * one OS thread would wait for good, as it always did there). */
#ifndef CORUN_SANITIZERS
/* One thread blocked for real (flock, 500 ms) on a worker while the
 * others tick every 2 ms: those that shared its OS thread go on after
 * CORUN_HANDOFF_MS (another OS thread takes over its scheduler); it
 * returns 0 and resumes there, its state intact. */
/* Without stealing (CORUN_STEAL=0) here: an idle worker pulling the tickers
 * off the blocked thread's scheduler before the bound leaves nothing to
 * hand over (the thread then resumes where it blocked, as it should, and
 * the hand-off is not exercised); stuck_steal runs it with stealing on and
 * checks only that no ticker waited. */
MATRIX(mn, stuck, pt_mn, stuck, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1", "CORUN_STEAL=0", NULL)
MATRIX(mn, stuck4, pt_mn, stuck, MOVES, "CORUN_PROCS=4", "PT_EXTRA_TASKS=1", "CORUN_STEAL=0", NULL)
MATRIX(mn, stuck_steal, pt_mn, stuck, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1",
       "PT_STUCK_ANY_OS=1", NULL)
/* The same blocked in fcntl(F_OFD_SETLKW), which goes through corun's
 * fcntl hook. */
MATRIX(mn, stuck_ofd, pt_mn, stuck, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1", "PT_STUCK_OFD=1",
       "CORUN_STEAL=0", NULL)
/* The same with the blocked thread on the main OS thread, whose TCB is the
 * program's main thread's (it goes with the scheduler; that OS thread gets
 * one of corun's). */
MATRIX(mn, stuck_on_main, pt_mn, stuck, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1",
       "PT_STUCK_MAIN=1", "CORUN_STEAL=0", NULL)
/* The program's main thread itself blocked in flock for 500 ms, until a
 * thread that sleeps meanwhile unlocks: threads beside it tick on, and the
 * sleeper wakes even if it shared main's OS thread. */
MATRIX(mn, stuck_main, pt_mn, stuck_main, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1",
       "CORUN_STEAL=0", NULL)
/* The same, and a signal for the OS thread it blocked on 100 ms in: the
 * handler there finds the scheduler gone and follows it; the call goes on
 * (SIGURG, ignored) and returns 0 at the unlock. */
MATRIX(mn, stuck_signal, pt_mn, stuck_signal, MOVES, "CORUN_PROCS=2", "PT_EXTRA_TASKS=1",
       "CORUN_STEAL=0", NULL)
#endif
