/* The catch's per-thread arming (catch.h); the SIGSYS handler that does the
 * work is the hooks' layer's (src/interpose/catch.c). */
#include "catch.h"

#include "clock.h"
#include "timerheap.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "diag.h"
#include "lock.h"
#include "rawsys.h"
#include "timerheap.h"
#include "tls.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif

bool catch_wanted;
bool catch_sigsys_ignored;
unsigned long catch_counts[CATCH_NR_MAX + 1];

/* The section's bounds, from the linker. */
extern const char __start_corun_allowed[] __attribute__((visibility("hidden")));
extern const char __stop_corun_allowed[] __attribute__((visibility("hidden")));

int catch_arm(struct sched *s)
{
    if (s->catch_armed)
        return 0;
    s->catch_sel = CATCH_ALLOW;         /* the caller is corun: a hook */
    long r = syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON,
                     (unsigned long)__start_corun_allowed,
                     (unsigned long)(__stop_corun_allowed - __start_corun_allowed),
                     (unsigned long)&s->catch_sel);
    if (r != 0)
        return errno;
    s->catch_armed = true;
    return 0;
}

void catch_disarm(struct sched *s)
{
    if (!s->catch_armed)
        return;
    syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0L, 0L, 0L);
    s->catch_armed = false;
}

void catch_frame_refresh(void *ucontext)
{
    ucontext_t *uc = ucontext;
    catch_raw(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&uc->uc_sigmask, 8, 0, 0);
    sigdelset(&uc->uc_sigmask, SIGSYS);
    catch_raw(SYS_sigaltstack, 0, (long)&uc->uc_stack, 0, 0, 0, 0);
}

/* ---- preemption (catch.h) ----------------------------------------------------*/

bool preempt_wanted;
void (*preempt_handler_fn)(int, siginfo_t *, void *);
bool preempt_given_up;                 /* atomic: preemption is off for good (catch.h) */
static bool preempt_installed;         /* the handler is the kernel's action for the signal */

/* Install the handler at the first arm, once the TLS mode is known, if
 * the signal's action is still the default (an inherited SIG_IGN or a
 * program's action keeps it); later arms check it is still there (a raw
 * rt_sigaction of the program's may have replaced it). */
static bool handler_in_place(void)
{
    struct kernel_sigaction cur;
    if (catch_raw(SYS_rt_sigaction, PREEMPT_SIGNAL, 0, (long)&cur, 8, 0, 0) != 0)
        return false;
    if (cur.handler == (uintptr_t)preempt_handler_fn)
        return true;
    if (__atomic_load_n(&preempt_installed, __ATOMIC_ACQUIRE) || cur.handler != (uintptr_t)SIG_DFL)
        return false;                  /* replaced behind corun's back, or never its own */
    struct kernel_sigaction sa = {
        .handler = (uintptr_t)preempt_handler_fn,
        .flags = SA_SIGINFO | SA_NODEFER | SA_RESTART | KSA_RESTORER,
        .restorer = catch_restorer,
    };
    if (catch_raw(SYS_rt_sigaction, PREEMPT_SIGNAL, (long)&sa, 0, 8, 0, 0) != 0)
        return false;
    __atomic_store_n(&preempt_installed, true, __ATOMIC_RELEASE);
    return true;
}

/* Every armed timer, so that preempt_give_up can delete them all. */
#define PREEMPT_TIMERS_MAX 1024
static int timers[PREEMPT_TIMERS_MAX];
static unsigned ntimers;
static cr_lock_t timers_lock = CR_LOCK_INIT;

/* Delete timer id and forget it (it may be gone already: give-up). */
static void timer_forget(int id)
{
    bool found = false;
    cr_lock(&timers_lock);
    for (unsigned i = 0; i < ntimers; i++)
        if (timers[i] == id) {
            timers[i] = timers[--ntimers];
            found = true;
            break;
        }
    cr_unlock(&timers_lock);
    if (found)
        raw_syscall(SYS_timer_delete, id);
}

/* Between two signals of the timer: half a slice, so that a thread that
 * has not switched between two of them ran for half a slice at least, a
 * whole one at most (the kernel's tick, 4 ms at HZ=250, rounds both up). */
static uint64_t preempt_period(void)
{
    uint64_t half = (uint64_t)cr_config.preempt_ms * 1000000 / 2;
    return half < PREEMPT_RETRY_NS ? PREEMPT_RETRY_NS : half;
}

/* The timer's next signal after `first_ns` of CPU time, then one every
 * period. Returns 0 or -1/errno. */
static int preempt_next_in(int id, uint64_t first_ns)
{
    uint64_t period = preempt_period();
    struct itimerspec it = { { (time_t)(period / 1000000000), (long)(period % 1000000000) },
                             { (time_t)(first_ns / 1000000000), (long)(first_ns % 1000000000) } };
    return raw_syscall(SYS_timer_settime, id, 0, &it, NULL) == 0 ? 0 : -1;
}

void preempt_retry_soon(struct sched *s)
{
    if (s->preempt_armed)
        preempt_next_in(s->preempt_timer, PREEMPT_RETRY_NS);
}

void preempt_resumed(struct sched *s)
{
    if (!s->preempt_armed)
        return;
    /* A CPU-bound thread runs on: the others' next need of the CPU is the
     * earliest timer (a sleep ending, a timeout), so the next look comes
     * then rather than a whole slice later (a 10 ms ticker beside it would
     * miss every other slice). */
    uint64_t first = preempt_period();
    const struct timer_node *t = timerheap_min(&s->timers);
    if (t) {
        /* A little after the deadline: a signal that comes just before it
         * finds the sleeper not yet due and costs another tick. Within a
         * whole slice, the deadline rather than the half slice: a look
         * before it would find nobody due and push the sleeper's turn to
         * a later tick. */
        uint64_t now = clock_now_ns();
        uint64_t left = (t->deadline > now ? t->deadline - now : 0) + PREEMPT_RETRY_NS;
        if (left <= (uint64_t)cr_config.preempt_ms * 1000000)
            first = left;
    }
    if (first < PREEMPT_RETRY_NS)
        first = PREEMPT_RETRY_NS;
    preempt_next_in(s->preempt_timer, first);
}

void (*catch_release_work)(struct sched *s, uintptr_t ra);

int preempt_arm(struct sched *s)
{
    if (s->preempt_armed || !preempt_wanted || !tls_own || !preempt_handler_fn ||
        __atomic_load_n(&preempt_given_up, __ATOMIC_RELAXED))
        return 0;
    if (!handler_in_place()) {
        preempt_give_up();
        return 0;
    }
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = PREEMPT_SIGNAL;
    ev._sigev_un._tid = s->tid;
    int id;
    if (raw_syscall(SYS_timer_create, CLOCK_THREAD_CPUTIME_ID, &ev, &id) != 0)
        return errno;
    cr_lock(&timers_lock);
    bool room = ntimers < PREEMPT_TIMERS_MAX && !preempt_given_up;
    if (room)
        timers[ntimers++] = id;
    cr_unlock(&timers_lock);
    if (!room || preempt_next_in(id, preempt_period()) != 0) {
        int err = room ? errno : EAGAIN;
        if (room)
            timer_forget(id);
        else
            raw_syscall(SYS_timer_delete, id);
        return err;
    }
    s->preempt_timer = id;
    s->preempt_switches = s->stats.switches;
    s->preempt_armed = true;
    return 0;
}

void preempt_disarm(struct sched *s)
{
    if (!s->preempt_armed)
        return;
    s->preempt_armed = false;
    timer_forget(s->preempt_timer);
}

void preempt_give_up(void)
{
    cr_lock(&timers_lock);
    preempt_given_up = true;
    for (unsigned i = 0; i < ntimers; i++)
        raw_syscall(SYS_timer_delete, timers[i]);
    ntimers = 0;
    cr_unlock(&timers_lock);
}

bool preempt_owns_signal(void)
{
    return __atomic_load_n(&preempt_installed, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&preempt_given_up, __ATOMIC_RELAXED);
}

void preempt_fork_child(struct sched *s)
{
    /* Timers are not inherited: the child's thread arms at its next spawn. */
    timers_lock = (cr_lock_t)CR_LOCK_INIT;
    ntimers = 0;
    if (s)
        s->preempt_armed = false;
}

static const char *decide_unavailable(void)
{
    config_load();
    if (cr_config.catch_mode == CATCH_MODE_PLT)
        return "CORUN_CATCH=plt";
#ifdef CORUN_SANITIZERS
    if (cr_config.catch_mode == CATCH_MODE_AUTO)
        return "a sanitizer build (its runtime's own system calls would all be caught)";
#endif
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload"))
        return "running under valgrind";
    if (syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0L, 0L, 0L) != 0)
        return "the kernel has no Syscall User Dispatch (Linux 5.11+)";
    struct kernel_sigaction old;   /* only the handler is looked at */
    if (syscall(SYS_rt_sigaction, SIGSYS, NULL, &old, 8L) != 0)
        return "SIGSYS cannot be handled";
    if (old.handler == (uintptr_t)SIG_IGN)
        catch_sigsys_ignored = true;
    else if (old.handler != (uintptr_t)SIG_DFL)
        return "SIGSYS has a handler already";
    return NULL;
}

const char *catch_unavailable(void)
{
    static const char *why;
    static int decided;
    if (!decided) {
        why = decide_unavailable();
        decided = 1;
    }
    return why;
}
