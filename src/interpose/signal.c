/* Hooks: signal dispositions, masks and waits for green threads. Handlers
 * go through corun's trampoline (gsignal.c) so that they interrupt the
 * parked call of the green thread they are for; masks and waits are per
 * green thread. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gsignal.h"
#include "real.h"
#include "sched.h"
#include "gate.h"
#include "syscall_route.h"

REAL_DECL(int, sigaction, (int, const struct sigaction *, struct sigaction *));
REAL_DECL(int, pthread_sigmask, (int, const sigset_t *, sigset_t *));
REAL_DECL(int, sigprocmask, (int, const sigset_t *, sigset_t *));
REAL_DECL(int, raise, (int));
REAL_DECL(int, sigwait, (const sigset_t *, int *));
REAL_DECL(int, sigwaitinfo, (const sigset_t *, siginfo_t *));
REAL_DECL(int, sigtimedwait, (const sigset_t *, siginfo_t *, const struct timespec *));
REAL_DECL(int, sigsuspend, (const sigset_t *));
REAL_DECL(int, pause, (void));
REAL_DECL(int, sigpending, (sigset_t *));

/* SIGSYS is the catch's while it is in force (catch.c keeps the program's
 * view of it). */
static int kernel_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig == SIGSYS)
        return catch_sigsys_action(act, old, REAL(sigaction));
    struct sigaction k;
    if (act && sigismember(&act->sa_mask, SIGSYS)) {
        k = *act;                      /* a dispatch with SIGSYS blocked kills (catch.h) */
        sigdelset(&k.sa_mask, SIGSYS);
        act = &k;
    }
    return REAL(sigaction)(sig, act, old);
}

HOOK int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    CATCH_HOLD();
    if (caller_is_foreign(__builtin_return_address(0)))
        return kernel_sigaction(sig, act, old);
    return gsignal_action(sig, act, old, kernel_sigaction);
}

/* signal() with BSD semantics, as glibc's: the handler stays, its signal is
 * blocked while it runs, interrupted calls restart unless siginterrupt()
 * said otherwise for that signal. */
static uint64_t interrupt_set;

static __sighandler_t bsd_signal_impl(int sig, __sighandler_t h)
{
    if (h == SIG_ERR || sig < 1 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = h;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = sig <= 64 && (interrupt_set & SIGBIT(sig)) ? 0 : SA_RESTART;
    if (gsignal_action(sig, &act, &old, kernel_sigaction) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

HOOK __sighandler_t signal(int sig, __sighandler_t h)
{
    CATCH_HOLD();
    return bsd_signal_impl(sig, h);
}

HOOK __sighandler_t bsd_signal(int sig, __sighandler_t h)
{
    CATCH_HOLD();
    return bsd_signal_impl(sig, h);
}

HOOK int siginterrupt(int sig, int flag)
{
    CATCH_HOLD();
    struct sigaction act;
    if (sig < 1 || sig >= NSIG || gsignal_action(sig, NULL, &act, kernel_sigaction) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (sig <= 64) {
        if (flag)
            interrupt_set |= SIGBIT(sig);
        else
            interrupt_set &= ~SIGBIT(sig);
    }
    if (flag)
        act.sa_flags &= ~SA_RESTART;
    else
        act.sa_flags |= SA_RESTART;
    return gsignal_action(sig, &act, NULL, kernel_sigaction);
}

/* ---- masks ------------------------------------------------------------------*/

HOOK int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    sigset_t copy;
    if (!s)
        return REAL(pthread_sigmask)(how, catch_mask_filter(how, set, &copy), old);
    return gsignal_setmask(s, how, set, old);
}

HOOK int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    sigset_t copy;
    if (!s)
        return REAL(sigprocmask)(how, catch_mask_filter(how, set, &copy), old);
    int r = gsignal_setmask(s, how, set, old);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

HOOK int sigpending(sigset_t *set)
{
    CATCH_HOLD();
    int r = REAL(sigpending)(set);
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (r == 0 && s)
        gsignal_add_pending(s, set);
    return r;
}

HOOK int raise(int sig)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s)
        return REAL(raise)(sig);
    int r = gsignal_kill(s, s->current, sig);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

/* ---- waiting for signals ------------------------------------------------------*/


HOOK int sigwait(const sigset_t *set, int *sig)
{
    CATCH_HOLD();
    struct sched *s = gate_thread_blocking(__builtin_return_address(0));
    if (!s)
        return REAL(sigwait)(set, sig);
    int saved = errno;
    int r = gsignal_wait(s, set, NULL, DEADLINE_NONE, false);
    int err = r < 0 ? errno : 0;
    errno = saved;
    if (r < 0)
        return err;
    *sig = r;
    return 0;
}

HOOK int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    CATCH_HOLD();
    struct sched *s = gate_thread_blocking(__builtin_return_address(0));
    if (!s)
        return REAL(sigwaitinfo)(set, info);
    return gsignal_wait(s, set, info, DEADLINE_NONE, true);
}

HOOK int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
    CATCH_HOLD();
    struct sched *s = gate_thread_blocking(__builtin_return_address(0));
    if (!s)
        return REAL(sigtimedwait)(set, info, ts);
    if (ts && !ts_valid(ts)) {
        errno = EINVAL;
        return -1;
    }
    uint64_t deadline = ts ? deadline_after((int64_t)ts_to_ns(ts))
                           : DEADLINE_NONE;
    return gsignal_wait(s, set, info, deadline, true);
}

HOOK int sigsuspend(const sigset_t *mask)
{
    CATCH_HOLD();
    struct sched *s = gate_thread_blocking(__builtin_return_address(0));
    if (!s)
        return REAL(sigsuspend)(mask);
    return gsignal_suspend(s, mask);
}

HOOK int pause(void)
{
    CATCH_HOLD();
    struct sched *s = gate_thread_blocking(__builtin_return_address(0));
    if (!s)
        return REAL(pause)();
    return gsignal_suspend(s, NULL);
}
