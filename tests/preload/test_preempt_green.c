/*
 * test_preempt_green.c - CPU-bound threads beside threads that need the
 * CPU now and then (tests/pt_preempt, a plain pthread program not linked
 * with corun), run as `pt_preempt MODE` three ways, as three suites:
 *
 *   preempt_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green: a green
 *                   thread that keeps the CPU for CORUN_PREEMPT_MS (10 ms)
 *                   without a switch is made to yield
 *   preempt_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   preempt_plain   no libcorun: the kernel's preemption, the reference
 *
 * A mode passes when the program exits 0 and prints "PASS MODE".
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(preempt_green, .timeout = 90);
TestSuite(preempt_native, .timeout = 90);
TestSuite(preempt_plain, .timeout = 90);

/* Preemption needs own TLS, which a sanitizer build does not have. */
#ifdef CORUN_SANITIZERS
#define PREEMPTS "PT_PREEMPTS=0"
#else
#define PREEMPTS "PT_PREEMPTS=1"
#endif

/* A thread in a 1 s CPU loop beside a 10 ms ticker: the ticker's longest
 * gap stays far below the second (before preemption, green threads
 * starved the ticker for the whole loop). */
MATRIX(preempt, hog_ticker, pt_preempt, hog_ticker, PREEMPTS, NULL)
/* The same with CORUN_PREEMPT_MS=0 on one OS thread: under corun the
 * ticker now waits for the whole loop (the setting is what made the
 * difference; with more OS threads the loop would get one of its own). */
MATRIX(preempt, hog_ticker_off, pt_preempt, hog_ticker, PREEMPTS, "CORUN_PREEMPT_MS=0",
       "CORUN_PROCS=1", NULL)
/* The same after main blocked every signal, on one OS thread (where a
 * loop that is never cut starves the ticker). */
MATRIX(preempt, masked_hog_ticker, pt_preempt, masked_hog_ticker, PREEMPTS, "CORUN_PROCS=1", NULL)
/* Four CPU-bound threads beside the ticker: they share the CPU in slices
 * and the ticker keeps ticking. */
MATRIX(preempt, hogs_ticker, pt_preempt, hogs_ticker, PREEMPTS, NULL)
/* The same with threads that spend their time in calls into corun: they
 * yield on their way out of one (a signal rarely finds them in their own
 * code). On one OS thread, where the process's CPU time between two ticks
 * is what the ticker waited for even on a loaded machine. */
MATRIX(preempt, hook_hogs_ticker, pt_preempt, hook_hogs_ticker, PREEMPTS, "CORUN_PROCS=1", NULL)
/* Two CPU-bound threads printing whole lines into one file through one
 * FILE (a thread preempted while it holds the FILE's lock makes the other
 * wait its turn), with floating-point sums and errno checked across
 * preemptions; every line read back whole. */
MATRIX(preempt, hog_stdio, pt_preempt, hog_stdio, PREEMPTS, NULL)
/* Threads that malloc and free in a CPU loop: preempted while glibc's
 * arena lock is held, the others wait their turn; every block intact. */
MATRIX(preempt, hog_malloc, pt_preempt, hog_malloc, PREEMPTS, NULL)
/* The program's own SIGURG handler (the signal preemption uses), set
 * while a CPU loop runs: the default action before, its handler after,
 * run only when the program raises SIGURG itself. */
MATRIX(preempt, sigurg_own, pt_preempt, sigurg_own, PREEMPTS, NULL)
/* The same with the handler set by the system call itself (as Go's
 * runtime does, unseen by the sigaction hook). */
MATRIX(preempt, sigurg_raw, pt_preempt, sigurg_raw, PREEMPTS, NULL)
