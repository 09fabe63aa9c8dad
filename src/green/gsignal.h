/* Signals for green threads: the program's handlers run through corun's
 * trampoline, so that a signal whose handler lacks SA_RESTART interrupts
 * the green thread it is meant for (the main one when it does not block the
 * signal, else one that does not) with EINTR, even though that thread is
 * only parked and not in a system call. Each green thread keeps its own
 * mask; the kernel thread blocks a signal only when all its green threads
 * do. */
#ifndef CR_GSIGNAL_H
#define CR_GSIGNAL_H

#include <signal.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry.h"

struct sched;
struct corun;

/* Told when the program sets its own action for a signal corun keeps for
 * itself (the live dump's, the detector's): the program's action wins. */
struct own_signal_user {
    void (*taken)(int sig);
};
REGISTRY_SET(own_signal_users, const struct own_signal_user);

/* Bit of signal sig in a 64-bit mask word (glibc's sigset_t layout). */
#define SIGBIT(sig) ((uint64_t)1 << ((sig) - 1))
static inline uint64_t sigword(const sigset_t *set)
{
    return set->__val[0];
}

/* Add the signals sent to the current green thread and not yet handled
 * (sigpending). */
void gsignal_add_pending(struct sched *s, sigset_t *set);

typedef int (*kernel_sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* Set and/or read the program's action for sig; handlers are installed in
 * the kernel as the trampoline through `install`. Returns 0 or -1/errno. */
int gsignal_action(int sig, const struct sigaction *act, struct sigaction *old,
                   kernel_sigaction_fn install);

/* pthread_sigmask for the current green thread. Returns 0 or an error
 * number. */
int gsignal_setmask(struct sched *s, int how, const sigset_t *set, sigset_t *old);



/* Run the handlers of signals sent to this green thread in particular
 * (pthread_kill), now that it runs. */
void gsignal_run_pending(struct sched *s, struct corun *co);

/* pthread_kill/raise aimed at a green thread of this scheduler. */
int gsignal_kill(struct sched *s, struct corun *target, int sig);

/* tgkill(tgid, tid, sig) naming a green thread of s (gthread_by_tid):
 * gsignal_kill on it, 0 or an error number; -1 when tid is not one, for
 * the kernel. */
int gsignal_kill_tid(struct sched *s, pid_t tgid, pid_t tid, int sig);

/* Wait for a signal of `set` to be pending and take it (sigtimedwait).
 * Returns the signal, or -1 with errno EAGAIN (deadline), EINTR (a handler
 * ran and `interruptible`), EINVAL. */
int gsignal_wait(struct sched *s, const sigset_t *set, siginfo_t *info, uint64_t deadline,
                 bool interruptible);

/* Handlers run for a green thread so far, for a wait that loops on its own
 * (a backstop or recheck timer ends each park): a signal that came while
 * the thread was already woken by that timer, and not yet running, runs
 * its handler at the resume without ending the park with EINTR. The wait
 * compares a mark taken before it with gsignal_interrupted_since. */
struct gsignal_mark {
    unsigned all, norestart;
};
struct gsignal_mark gsignal_mark(const struct corun *co);

/* Whether a handler that ends a wait parked in `mode` (enum park_mode)
 * ran for co since m: any for PARK_INTR_ALWAYS, one without SA_RESTART
 * for PARK_INTR_RESTART. */
bool gsignal_interrupted_since(const struct corun *co, struct gsignal_mark m, int mode);

/* Whether `mask`, made the calling green thread's for a call (ppoll,
 * pselect), unblocks a signal pending for it: its handler would run. */
bool gsignal_mask_frees_pending(struct sched *s, const sigset_t *mask);

/* sigsuspend (mask) or pause (mask NULL): wait until a handler has run for
 * this green thread. Always returns -1 with errno EINTR. */
int gsignal_suspend(struct sched *s, const sigset_t *mask);

#endif
