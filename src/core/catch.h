/* The catch of system calls that no hook sees (Syscall User Dispatch, Linux
 * 5.11+): an OS thread running green threads asks the kernel to turn every
 * system call made outside corun into a SIGSYS, whose handler
 * (src/interpose/catch.c) routes the blocking ones to the green primitives
 * and makes the others itself.
 *
 * "Outside corun" is a byte per OS thread (the selector) that the kernel
 * reads at each system call: ALLOW while corun's code runs (every entry
 * from the program, hooks first, holds it), BLOCK while the program's own
 * code does. corun's raw system calls and the stubs below sit in one
 * section (`corun_allowed`), which the kernel always lets through, whatever
 * the byte says.
 */
#ifndef CR_CATCH_H
#define CR_CATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "sched.h"

#define CATCH_ALLOW 0        /* the kernel's SYSCALL_DISPATCH_FILTER_ALLOW */
#define CATCH_BLOCK 1        /* ... _BLOCK: the call becomes a SIGSYS */
#define CATCH_NO_SCHED 0xff  /* held where the thread had no scheduler yet */
#define CATCH_NR_MAX 512     /* numbers counted for CORUN_STATS */

/* The catch is wanted (CORUN_CATCH, decided at load by the handler's
 * layer): schedulers arm it when they get a second green thread. */
extern bool catch_wanted;
/* Calls caught, by number (CORUN_STATS); the last slot counts the rest. */
extern unsigned long catch_counts[CATCH_NR_MAX + 1];

/* Why the catch cannot be had in this process (CORUN_CATCH=plt, a
 * sanitizer build, valgrind, a kernel without the dispatch, SIGSYS taken
 * already), or NULL. Decided once, at load. */
const char *catch_unavailable(void);
/* SIGSYS was ignored when the program started (an inherited SIG_IGN). */
extern bool catch_sigsys_ignored;

/* Arm the catch on the calling OS thread, whose scheduler is s (the
 * selector is s->catch_sel). Returns 0 or an errno value. */
int catch_arm(struct sched *s);
/* Disarm it on the calling OS thread (its scheduler goes, or the program
 * takes SIGSYS or the dispatch for itself). */
void catch_disarm(struct sched *s);

/*
 * Preemption (CORUN_PREEMPT_MS): a green thread that keeps its OS thread's
 * CPU for that long without a switch while others exist is made to yield,
 * so a busy loop no longer starves the rest. A timer of the OS thread's
 * CPU time (it never fires while the thread sleeps, and the kernel sends
 * its signal on the way back to user space, so no waiting call is cut
 * short) sends PREEMPT_SIGNAL every slice; the hooks' layer's handler
 * yields only where that is safe: the program's own code (the selector
 * says BLOCK), not corun's, not ld.so's, not a signal handler that
 * interrupted corun. Glibc's internal lock waits must park for that
 * (another green thread may want the lock the preempted one holds), so
 * preemption needs the catch and own TLS: `preempt_wanted` is set at load
 * by the hooks' layer where the catch may be had and the kernel sends
 * CPU-timer signals on the way back to user space (5.12); each scheduler
 * arms its timer with the catch, the first installing the handler if own
 * TLS is in force and the signal's action is still the default.
 */
#define PREEMPT_SIGNAL SIGURG
extern bool preempt_wanted;
/* The hooks' layer's handler, installed by the first preempt_arm. */
extern void (*preempt_handler_fn)(int, siginfo_t *, void *);
/* Arm the calling OS thread's timer (s its scheduler). Returns 0 or an
 * errno value. */
int preempt_arm(struct sched *s);
/* Preemption was given up (its signal taken by the program): armed
 * schedulers' timers are gone, their preempt_armed left as it was. */
extern bool preempt_given_up;
void preempt_disarm(struct sched *s);
/* The program takes PREEMPT_SIGNAL for itself: preemption stops in the
 * whole process (every timer deleted). */
void preempt_give_up(void);
/* The signal came where the thread may not yield (glibc, ld.so): the next
 * one after PREEMPT_RETRY_NS of CPU time rather than a whole slice. */
#define PREEMPT_RETRY_NS 500000
void preempt_retry_soon(struct sched *s);
/* The preempted thread runs again, or the thread running switched since
 * the last signal: the next signal a little after the earliest timer of s
 * comes due if that is within a slice, else after half a slice. */
void preempt_resumed(struct sched *s);
/* The program's view of PREEMPT_SIGNAL's action while corun has it. */
bool preempt_owns_signal(void);
/* In a fork child (timers are not inherited). */
void preempt_fork_child(struct sched *s);

/* A signal frame delivered on another OS thread than the one its
 * handler now runs on (a thread that moved inside the handler): make the
 * mask and alternate stack its sigreturn puts back this thread's (never
 * with SIGSYS blocked, as a dispatch with it blocked kills). */
void catch_frame_refresh(void *ucontext);

/* Entry from the program into corun: the calling OS thread's system calls
 * are corun's until catch_release. Nests (the value held is restored). */
static inline uint8_t catch_hold(void)
{
    /* A handler that interrupted a real blocking call: this OS thread may
     * have lost the scheduler meanwhile (handoff.c). */
    (void)sched_blocking_end_check();
    struct sched *s = sched_tls;
    if (!s)
        return CATCH_NO_SCHED;
    uint8_t v = s->catch_sel;
    s->catch_sel = CATCH_ALLOW;
    s->woken_co = NULL;
    __asm__ volatile("" ::: "memory");
    return v;
}

/* Work for the thread's way back from corun to the program at `ra`
 * (sched.h: release_preempt, release_shed), where corun's books are
 * consistent: set by the hooks' layer. */
extern void (*catch_release_work)(struct sched *s, uintptr_t ra);

/* Back to the code that called catch_hold. A thread that got its scheduler
 * meanwhile goes back to the program. Always inlined: the return address
 * it passes on must be the hook's. */
static inline __attribute__((always_inline)) void catch_release(const uint8_t *held)
{
    struct sched *s = sched_tls;
    __asm__ volatile("" ::: "memory");
    if (s) {
        uint8_t to = *held == CATCH_NO_SCHED ? CATCH_BLOCK : *held;
        s->catch_sel = to;
        if (__builtin_expect((int)s->release_preempt | (int)s->release_shed, 0) && to == CATCH_BLOCK)
            catch_release_work(s, (uintptr_t)__builtin_return_address(0));
    }
}

/* Calling the program's code from inside corun (thread_local and key
 * destructors, once routines, cleanup handlers, signal handlers): its
 * calls are caught as the program's own are (a FILE-lock wait there must
 * park, not block the OS thread). Returns what to put back. */
static inline uint8_t catch_program_begin(void)
{
    struct sched *s = sched_tls;
    if (!s)
        return CATCH_NO_SCHED;
    uint8_t v = s->catch_sel;
    s->current->pinned++;          /* corun's frames below hold its scheduler (M:N) */
    __asm__ volatile("" ::: "memory");
    s->catch_sel = CATCH_BLOCK;
    __asm__ volatile("" ::: "memory");
    return v;
}

static inline void catch_program_end(uint8_t held)
{
    struct sched *s = sched_tls;
    __asm__ volatile("" ::: "memory");
    if (s && held != CATCH_NO_SCHED) {
        s->catch_sel = held;
        s->current->pinned--;
    }
}

/* Hold for the rest of the enclosing block (the first statement of every
 * hook and API function). */
#define CATCH_HOLD() \
    uint8_t catch_held_ __attribute__((cleanup(catch_release), unused)) = catch_hold()

/* The kernel's struct sigaction for rt_sigaction, with its restorer. */
struct kernel_sigaction {
    uintptr_t handler;            /* SIG_DFL, SIG_IGN or a handler */
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};
#define KSA_RESTORER 0x04000000

/* The stubs in corun_allowed (catch_x86_64.S). */
/* A system call with six arguments: the result or -errno. */
long catch_raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
/* rt_sigreturn with the stack pointer at sp (a caught sigreturn of a
 * handler's frame at sp). */
__attribute__((noreturn)) void catch_sigreturn_at(uintptr_t sp);
/* The SIGSYS handler's restorer: its own sigreturn is never caught. */
void catch_restorer(void);

/* A clone that starts the child on a new stack: the child resumes the
 * caught call's context (regs, at rip) with 0 in rax. */
struct catch_clone {
    long nr, a[5];
    long rbx, rbp, r12, r13, r14, r15, rdi, rsi, rdx, r10, r8, r9, rip;
    volatile int taken;         /* set by the child once it has read the above */
    uint32_t mxcsr;             /* the caught context's SSE and x87 control words: */
    uint16_t fcw;               /* a handler starts with the defaults */
};
long catch_clone_run(struct catch_clone *c);

#endif
