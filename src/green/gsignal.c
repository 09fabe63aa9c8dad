/*
 * Signals for green threads.
 *
 * The kernel sees one thread where the program has many green threads, and
 * those are usually parked in the scheduler, not in a system call, so the
 * kernel's EINTR would reach nobody. corun therefore installs its trampoline
 * as the kernel handler of every signal the program handles. The trampoline
 * runs the program's handler at once, wherever the kernel delivered it (as
 * the kernel would, on some thread), with the hooks off since it may have
 * interrupted corun itself; then it names the green thread the signal is for
 * (the main one unless it blocks it, else one that does not) and, if that
 * thread is parked in a call the signal interrupts (see enum park_mode), has
 * the loop wake it with WAKE_INTERRUPTED, so its call fails with EINTR.
 *
 * Masks: each green thread keeps its own; the kernel thread blocks a signal
 * only when every green thread of its scheduler does, so that sigwait and
 * signalfd see it pending exactly when no thread would take it.
 */
#include "gsignal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "fdtab.h"
#include "gthread.h"
#include "lock.h"
#include "ownfd.h"
#include "sched.h"

#define NSIG_KERNEL 64

/* A green thread's signal state. The signals sent to it and not yet
 * handled are the core's resume_work bits: it runs them when it resumes. */
struct sig_thread {
    sigset_t mask;                /* what pthread_sigmask says for this thread */
    unsigned seen;                /* handlers run for this thread, ever */
    unsigned seen_norestart;      /* ... of which without SA_RESTART */
};

/* A scheduler's. */
struct sig_sched {
    unsigned nmasked;             /* coroutines with a non-empty mask */
    uint32_t nblocked[64];        /* per signal: coroutines that block it */
    uint64_t blocked_any;         /* the signals some coroutine blocks (nblocked > 0) */
    uint64_t kmask;               /* what the kernel thread blocks */
    uint64_t never;               /* kmask_never() when kmask was last set */
    int fd;                       /* eventfd: a signal needs the loop's attention */
    volatile uint64_t arrived;    /* signals for dispatch() */
    volatile uint64_t norestart;  /* ... of which the handler lacks SA_RESTART */
};

static struct sched_part part = {
    .thread_size = sizeof(struct sig_thread),
    .sched_size = sizeof(struct sig_sched),
};
SCHED_PART(part);

static inline struct sig_thread *st(const struct corun *co)
{
    return thread_part(co, &part);
}

static inline struct sig_sched *ss(const struct sched *s)
{
    return sched_part(s, &part);
}

#define PENDING(co) ((co)->resume_work)
/* glibc's own signals for cancellation and setxid: never ours to block. */
#define GLIBC_INTERNAL (SIGBIT(32) | SIGBIT(33))

static struct sigaction prog_act[NSIG_KERNEL + 1];
static uint64_t managed;            /* signals whose kernel handler is the trampoline */
static cr_lock_t act_lock = CR_LOCK_INIT;   /* prog_act and managed, outside handlers */

static void lock(void)
{
    cr_lock(&act_lock);
}

static void unlock(void)
{
    cr_unlock(&act_lock);
}

static bool is_managed(int sig)
{
    return __atomic_load_n(&managed, __ATOMIC_RELAXED) & SIGBIT(sig);
}

/* Signals whose handler must run exactly where they were raised (faults),
 * or that cannot be caught. */
static bool manageable(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE:
    case SIGTRAP: case SIGSYS:
        return false;
    default:
        /* corun's own: the live dump's, the blocking detector's and the
         * accept kick's (fdio.c) */
        if (sig == cr_config.dump_signal ||
            (cr_config.block_warn_ms && sig == CORUN_DETECT_SIGNAL) || sig == CORUN_KICK_SIGNAL)
            return false;
        return sig >= 1 && sig <= NSIG_KERNEL && !(SIGBIT(sig) & GLIBC_INTERNAL);
    }
}

static bool blocks(const struct corun *co, int sig)
{
    return sigword(&st(co)->mask) & SIGBIT(sig);
}

static bool alive(const struct corun *co)
{
    return co->state != CO_DONE;
}

static void call_handler(const struct sigaction *a, int sig, siginfo_t *si, void *uc)
{
    if (a->sa_flags & SA_SIGINFO)
        a->sa_sigaction(sig, si, uc);
    else
        a->sa_handler(sig);
}

/* The program's action for sig as a handler is about to run: one-shot
 * handlers (SA_RESETHAND) revert to the default, as the kernel did. */
static struct sigaction take_action(int sig)
{
    struct sigaction a = prog_act[sig];
    if (a.sa_flags & SA_RESETHAND) {
        prog_act[sig].sa_handler = SIG_DFL;
        prog_act[sig].sa_flags = 0;
        __atomic_and_fetch(&managed, ~SIGBIT(sig), __ATOMIC_RELAXED);
    }
    return a;
}

/* Who takes a process signal: `running` when it is about to go on running
 * (and the kernel then interrupts its real call, if any, itself). */
static struct corun *taker(struct sched *s, struct corun *running, int sig)
{
    struct corun *m = s->main_co;
    if (alive(m) && (cr_config.threads_native || !blocks(m, sig)))
        return m;
    if (running != s->loop_co && !blocks(running, sig))
        return running;
    return NULL;
}

/* corun's parts run held (catch.h); the program's handler as program code
 * (it may longjmp back into the program and never return here). */
static void trampoline(int sig, siginfo_t *si, void *uc)
{
    if (sched_blocking_end_check())   /* it interrupted a real blocking call (handoff.c) */
        catch_frame_refresh(uc);
    uint8_t held = catch_hold();
    int saved = errno;
    struct sigaction a = take_action(sig);
    if (a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN) {
        errno = saved;              /* reset under our feet: the kernel already has it */
        catch_release(&held);
        return;
    }
    struct sched *s = sched_tls;
    struct corun *running = s ? sched_hooks_suspend(s) : NULL;
    uint8_t around = catch_program_begin();
    call_handler(&a, sig, si, uc);
    catch_program_end(around);
    if (s) {
        sched_hooks_resume(s, running);
        struct corun *t = taker(s, running, sig);
        if (t && t == running) {
            st(t)->seen++;
            st(t)->seen_norestart += !(a.sa_flags & SA_RESTART);
        } else {
            /* The target is parked (or there is none yet): the loop decides,
             * out of signal context. */
            __atomic_or_fetch(&ss(s)->arrived, SIGBIT(sig), __ATOMIC_RELAXED);
            if (!(a.sa_flags & SA_RESTART))
                __atomic_or_fetch(&ss(s)->norestart, SIGBIT(sig), __ATOMIC_RELAXED);
            uint64_t one = 1;
            syscall(SYS_write, ss(s)->fd, &one, sizeof one);
        }
    }
    errno = saved;
    catch_release(&held);
}

int gsignal_action(int sig, const struct sigaction *act, struct sigaction *old,
                   kernel_sigaction_fn install)
{
    if (sig == PREEMPT_SIGNAL && preempt_owns_signal()) {
        /* Preemption's while the program leaves it alone: its view is the
         * default; an action of its own ends preemption. */
        if (!act) {
            if (old)
                *old = (struct sigaction){ .sa_handler = SIG_DFL };
            return 0;
        }
        preempt_give_up();
        struct sigaction ignored;
        int r = gsignal_action(sig, act, &ignored, install);
        if (r == 0 && old)
            *old = (struct sigaction){ .sa_handler = SIG_DFL };
        return r;
    }
    if (!manageable(sig)) {
        if (act)
            REGISTRY_FOREACH(own_signal_users, u)
                (*u)->taken(sig);
        return install(sig, act, old);
    }
    lock();
    struct sigaction prev;
    int r = 0;
    if (is_managed(sig))
        prev = prog_act[sig];
    else
        r = install(sig, NULL, &prev);
    if (r == 0 && act) {
        if (act->sa_handler == SIG_DFL || act->sa_handler == SIG_IGN) {
            r = install(sig, act, NULL);
            if (r == 0)
                __atomic_and_fetch(&managed, ~SIGBIT(sig), __ATOMIC_RELAXED);
        } else {
            struct sigaction k = *act;
            k.sa_sigaction = trampoline;
            k.sa_flags |= SA_SIGINFO;
            struct sigaction was = prog_act[sig];
            prog_act[sig] = *act;   /* before the kernel may call the trampoline */
            r = install(sig, &k, NULL);
            if (r == 0)
                __atomic_or_fetch(&managed, SIGBIT(sig), __ATOMIC_RELAXED);
            else
                prog_act[sig] = was;
        }
    }
    unlock();
    if (r == 0 && old)
        *old = prev;
    return r;
}

/* ---- masks ----------------------------------------------------------------*/

static void count_mask(struct sched *s, uint64_t w, int dir)
{
    if (!w)
        return;
    struct sig_sched *g = ss(s);
    g->nmasked += (unsigned)dir;
    for (; w; w &= w - 1) {
        int i = __builtin_ctzll(w);
        g->nblocked[i] += (uint32_t)dir;
        if (g->nblocked[i])
            g->blocked_any |= (uint64_t)1 << i;
        else
            g->blocked_any &= ~((uint64_t)1 << i);
    }
}

/* What the kernel thread never blocks, whatever its green threads do. */
static uint64_t kmask_never(void)
{
    uint64_t n = GLIBC_INTERNAL;
    if (catch_wanted)
        n |= SIGBIT(SIGSYS);      /* a dispatch with SIGSYS blocked kills (catch.h) */
    if (preempt_owns_signal())
        n |= SIGBIT(PREEMPT_SIGNAL);   /* corun's: never pending in the program's view */
    return n;
}

/* The kernel thread blocks what every green thread blocks. */
static void kmask_set(struct sched *s, bool force)
{
    struct sig_sched *g = ss(s);
    uint64_t k = 0;
    if (g->nmasked >= s->alive)
        for (uint64_t w = g->blocked_any; w; w &= w - 1)
            if (g->nblocked[__builtin_ctzll(w)] >= s->alive)
                k |= w & -w;
    g->never = kmask_never();
    k &= ~g->never;
    if (k != g->kmask || force) {
        g->kmask = k;
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &k, NULL, 8);
    }
}

static void kmask_apply(struct sched *s)
{
    kmask_set(s, false);
}

/* The scheduler now runs on another OS thread (the hand-off): the main
 * one's takes the program's process-directed signals as its old one did
 * (a worker's keeps the workers' mask, set by the core). */
static void on_rehomed(struct sched *s)
{
    if (!s->worker && !cr_config.threads_native)
        kmask_set(s, true);
}

/* ---- lifecycle (core observer) -------------------------------------------*/

static void on_thread_started(struct sched *s, struct corun *co)
{
    st(co)->mask = st(s->current)->mask;   /* a new thread inherits its creator's mask */
    if (cr_config.threads_native)
        return;
    uint64_t w = sigword(&st(co)->mask);
    count_mask(s, w, 1);
    /* A new thread not blocking them: unblock. Its mask is its creator's,
     * so only what corun never lets the kernel thread block can change
     * (the first thread arms preemption and the catch). */
    struct sig_sched *g = ss(s);
    if ((g->kmask & ~w) || g->never != kmask_never())
        kmask_apply(s);
}

static void on_thread_finished(struct sched *s, struct corun *co)
{
    PENDING(co) = 0;
    if (cr_config.threads_native)
        return;
    uint64_t w = sigword(&st(co)->mask);
    count_mask(s, w, -1);
    /* Maybe all that are left block something: only a signal it did not
     * block can join the kernel thread's mask (for the others both the
     * count and the number alive went down by one), or one corun no longer
     * keeps open. */
    struct sig_sched *g = ss(s);
    if (g->nmasked && ((g->blocked_any & ~w & ~g->kmask) || g->never != kmask_never()))
        kmask_apply(s);
}

/* M:N: a thread moves between schedulers with its mask and pending signals;
 * each kernel thread's mask follows its own green threads. */
static void on_thread_leaving(struct sched *s, struct corun *co)
{
    if (cr_config.threads_native)
        return;
    count_mask(s, sigword(&st(co)->mask), -1);
    if (ss(s)->nmasked)
        kmask_apply(s);
}

static void on_thread_arriving(struct sched *s, struct corun *co)
{
    if (cr_config.threads_native)
        return;
    count_mask(s, sigword(&st(co)->mask), 1);
    if (ss(s)->kmask)
        kmask_apply(s);
}

static void sched_reset(struct sched *s)
{
    struct sig_sched *g = ss(s);
    memset(g->nblocked, 0, sizeof g->nblocked);
    g->blocked_any = 0;
    g->nmasked = 0;
    g->arrived = g->norestart = 0;
    g->kmask = sigword(&st(s->current)->mask);
    g->never = 0;                 /* the raw mask: the next start or end filters it */
    PENDING(s->current) = 0;
    count_mask(s, g->kmask, 1);
}

static void drain(struct sched *s, uint64_t data, uint32_t events)
{
    (void)data;
    (void)events;
    uint64_t v;
    syscall(SYS_read, ss(s)->fd, &v, sizeof v);
}

static const struct poll_source signal_source = { drain };
POLL_SOURCE(signal_source);

/* The eventfd a signal handler pokes so that the loop, maybe about to
 * sleep in epoll, looks at the signals that came in. */
static void signal_fd_open(struct sched *s)
{
    int fd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    ss(s)->fd = fd;
    ownfd_own(&ss(s)->fd);
    fd = ss(s)->fd;
    int r = fd < 0 ? errno : sched_watch_fd(s, fd, EPOLLIN, &signal_source, 0);
    if (r)
        diag_fatal("cannot set up the signal eventfd: %s", strerror(r));
}

static void on_sched_created(struct sched *s)
{
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &st(s->main_co)->mask, 8);
    signal_fd_open(s);
    sched_reset(s);
}

static void on_sched_destroyed(struct sched *s)
{
    ownfd_release(&ss(s)->fd);
}

static void on_fork_child(struct sched *s)
{
    act_lock = (cr_lock_t)CR_LOCK_INIT;    /* a thread of another worker may have held it */
    if (!s)
        return;
    ownfd_release(&ss(s)->fd);         /* the parent's; the new epoll set lacks it */
    signal_fd_open(s);
    sched_reset(s);
}

static void dispatch(struct sched *s);

static void on_polled(struct sched *s)
{
    if (ss(s)->arrived)
        dispatch(s);
}

static void on_resumed(struct sched *s, struct corun *co)
{
    gsignal_run_pending(s, co);
}

static const struct sched_observer observer = {
    .sched_created = on_sched_created,
    .sched_destroyed = on_sched_destroyed,
    .fork_child = on_fork_child,
    .thread_started = on_thread_started,
    .thread_finished = on_thread_finished,
    .thread_leaving = on_thread_leaving,
    .thread_arriving = on_thread_arriving,
    .resumed = on_resumed,
    .polled = on_polled,
    .rehomed = on_rehomed,
};
SCHED_OBSERVER(observer);

int gsignal_setmask(struct sched *s, int how, const sigset_t *set, sigset_t *old)
{
    struct corun *co = s->current;
    sigset_t prev = st(co)->mask;
    if (set) {
        sigset_t next = st(co)->mask;
        switch (how) {
        case SIG_BLOCK: sigorset(&next, &next, set); break;
        case SIG_UNBLOCK:
            for (size_t i = 0; i < sizeof next.__val / sizeof next.__val[0]; i++)
                next.__val[i] &= ~set->__val[i];
            break;
        case SIG_SETMASK: next = *set; break;
        default: return EINVAL;
        }
        /* By hand, not sigdelset: glibc's refuses its internal signals with
         * EINVAL in errno, which a successful pthread_sigmask must not touch
         * (PostgreSQL reads select's errno after one). */
        next.__val[0] &= ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP) | GLIBC_INTERNAL);
        st(co)->mask = next;
        uint64_t ow = sigword(&prev), nw = sigword(&next);
        if (ow != nw) {
            count_mask(s, ow, -1);
            count_mask(s, nw, 1);
            kmask_apply(s);         /* the kernel may deliver what became unblocked, now */
        }
    }
    if (old)
        *old = prev;
    if (PENDING(co) & ~sigword(&st(co)->mask))
        gsignal_run_pending(s, co);
    return 0;
}

/* ---- delivery ---------------------------------------------------------------*/

static bool interrupts(const struct corun *co, bool norestart)
{
    return co->state == CO_PARKED &&
           (co->park_mode == PARK_INTR_ALWAYS || (co->park_mode == PARK_INTR_RESTART && norestart));
}

static bool takes(struct corun *co, void *sig)
{
    return !blocks(co, (int)(intptr_t)sig);
}

static struct corun *target_for(struct sched *s, int sig)
{
    struct corun *m = s->main_co;
    if (alive(m) && (cr_config.threads_native || !blocks(m, sig)))
        return m;
    return sched_find_interruptible(s, takes, (void *)(intptr_t)sig);
}

static void dispatch(struct sched *s)
{
    uint64_t arrived = __atomic_exchange_n(&ss(s)->arrived, 0, __ATOMIC_RELAXED);
    uint64_t norestart = __atomic_exchange_n(&ss(s)->norestart, 0, __ATOMIC_RELAXED);
    for (int sig = 1; arrived; sig++, arrived >>= 1) {
        if (!(arrived & 1))
            continue;
        struct corun *t = target_for(s, sig);
        if (!t)
            continue;
        st(t)->seen++;
        st(t)->seen_norestart += (norestart & SIGBIT(sig)) != 0;
        if (interrupts(t, norestart & SIGBIT(sig)))
            sched_wake(t, WAKE_INTERRUPTED);
    }
}

static void raise_in_kernel(int sig)
{
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

/* What the kernel reports for a signal sent to one thread of this process. */
static void tkill_info(siginfo_t *si, int sig)
{
    memset(si, 0, sizeof *si);
    si->si_signo = sig;
    si->si_code = SI_TKILL;
    si->si_pid = getpid();
    si->si_uid = getuid();
}

void gsignal_run_pending(struct sched *s, struct corun *co)
{
    (void)s;
    uint64_t ready;
    while ((ready = PENDING(co) & ~sigword(&st(co)->mask)) != 0) {
        int sig = __builtin_ctzll(ready) + 1;
        __atomic_and_fetch(&PENDING(co), ~SIGBIT(sig), __ATOMIC_RELAXED);
        lock();
        bool ours = is_managed(sig);
        struct sigaction a = ours ? take_action(sig) : (struct sigaction){ 0 };
        unlock();
        if (!ours) {
            raise_in_kernel(sig);   /* default action or ignored: the kernel's business */
            continue;
        }
        siginfo_t si;
        tkill_info(&si, sig);
        /* The handler runs with its mask added, as the kernel would do it. */
        sigset_t saved = st(co)->mask;
        sigorset(&st(co)->mask, &st(co)->mask, &a.sa_mask);
        if (!(a.sa_flags & SA_NODEFER))
            sigaddset(&st(co)->mask, sig);
        int e = errno;
        st(co)->seen++;
        st(co)->seen_norestart += !(a.sa_flags & SA_RESTART);
        call_handler(&a, sig, &si, NULL);
        errno = e;
        st(co)->mask = saved;
    }
}

void gsignal_add_pending(struct sched *s, sigset_t *set)
{
    uint64_t mine = PENDING(s->current);
    for (int sig = 1; mine; sig++, mine >>= 1)
        if (mine & 1)
            sigaddset(set, sig);
}

static void kill_here(struct sched *s, struct corun *target, int sig);

struct kill_req {
    struct corun *target;
    int sig;
    bool moved;                    /* no longer that scheduler's: ask its new one */
};

static void kill_there(struct sched *s, void *arg)
{
    struct kill_req *k = arg;
    k->moved = k->target->sched != s;
    kill_here(s, k->target, k->sig);
}

int gsignal_kill(struct sched *s, struct corun *target, int sig)
{
    if (sig < 0 || sig >= NSIG)
        return EINVAL;
    if (target->state == CO_DONE || target->state == CO_RELEASED)
        return ESRCH;
    if (sig == 0)
        return 0;
    if (!is_managed(sig)) {
        raise_in_kernel(sig);       /* default or ignored: process-wide anyway */
        return 0;
    }
    struct sched *ts = __atomic_load_n(&target->sched, __ATOMIC_ACQUIRE);
    if (ts != s && mn_active) {
        /* M:N: its wake is its scheduler's to make. One that moved on
         * meanwhile is asked again where it is now. */
        struct kill_req k = { target, sig, false };
        do
            sched_run_on(__atomic_load_n(&target->sched, __ATOMIC_ACQUIRE), kill_there, &k);
        while (k.moved);
        return 0;
    }
    kill_here(s, target, sig);
    return 0;
}

static void kill_here(struct sched *s, struct corun *target, int sig)
{
    __atomic_or_fetch(&PENDING(target), SIGBIT(sig), __ATOMIC_RELAXED);   /* M:N: any thread */
    if (blocks(target, sig))
        return;                     /* delivered when it unblocks */
    if (target->sched != s)
        return;                     /* moving: it runs the handler when it resumes */
    if (target == s->current) {
        gsignal_run_pending(s, target);
    } else {
        bool norestart = !(prog_act[sig].sa_flags & SA_RESTART);
        if (interrupts(target, norestart))
            sched_wake(target, WAKE_INTERRUPTED);
        else if (target->state == CO_PARKED && target->park_mode == PARK_INTR_RESTART)
            sched_wake(target, WAKE_RESTART);   /* the handler runs now; the call tries again */
        /* else (a mutex, condvar or join wait, whose re-wait would need the
         * site's own re-check): the handler runs when the thread next runs */
    }
}

int gsignal_kill_tid(struct sched *s, pid_t tgid, pid_t tid, int sig)
{
    struct corun *co = tgid == getpid() ? gthread_by_tid(s, tid) : NULL;
    return co ? gsignal_kill(s, co, sig) : -1;
}

bool gsignal_mask_frees_pending(struct sched *s, const sigset_t *mask)
{
    return s && mask && !cr_config.threads_native &&
           (PENDING(s->current) & ~sigword(mask)) != 0;
}

struct gsignal_mark gsignal_mark(const struct corun *co)
{
    return (struct gsignal_mark){ st(co)->seen, st(co)->seen_norestart };
}

bool gsignal_interrupted_since(const struct corun *co, struct gsignal_mark m, int mode)
{
    if (mode == PARK_INTR_ALWAYS)
        return st(co)->seen != m.all;
    return mode == PARK_INTR_RESTART && st(co)->seen_norestart != m.norestart;
}

/* ---- waiting for signals -----------------------------------------------------*/

int gsignal_wait(struct sched *s, const sigset_t *set, siginfo_t *info, uint64_t deadline,
                 bool interruptible)
{
    struct corun *co = s->current;
    sigset_t want = *set;
    sigdelset(&want, SIGKILL);
    sigdelset(&want, SIGSTOP);
    siginfo_t local;
    if (!info)
        info = &local;
    for (;;) {
        uint64_t mine = PENDING(co) & sigword(&want);
        if (mine) {
            int sig = __builtin_ctzll(mine) + 1;
            __atomic_and_fetch(&PENDING(co), ~SIGBIT(sig), __ATOMIC_RELAXED);
            tkill_info(info, sig);
            return sig;
        }
        struct timespec zero = { 0, 0 };
        int r = (int)syscall(SYS_rt_sigtimedwait, &want, info, &zero, 8);
        if (r > 0)
            return r;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (deadline != DEADLINE_NONE && clock_now_ns() >= deadline) {
            errno = EAGAIN;
            return -1;
        }
        /* Readable once a signal of the set is pending for this thread. */
        int fd = (int)syscall(SYS_signalfd4, -1, &want, 8, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
            return -1;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ownfd_own(&p.fd);                 /* hidden from the program while it waits */
        fdtab_opened(p.fd);
        int err = fd_wait_any(s, &p, 1, deadline, PARK_INTR_ALWAYS);
        fdtab_close(p.fd);
        ownfd_release(&p.fd);
        if (err == ECANCELED)
            gthread_act_on_cancel(WAKE_CANCELED);
        if (err == EINTR && interruptible) {
            errno = EINTR;
            return -1;
        }
        if (err == ENOMEM) {
            errno = EAGAIN;
            return -1;
        }
    }
}

int gsignal_suspend(struct sched *s, const sigset_t *mask)
{
    struct corun *co = s->current;
    sigset_t old = st(co)->mask;
    unsigned seen = st(co)->seen;
    if (mask)
        gsignal_setmask(s, SIG_SETMASK, mask, NULL);
    int why = WAKE_SIGNALED;
    while (st(co)->seen == seen && why != WAKE_CANCELED)
        why = sched_park(s, DEADLINE_NONE, PARK_INTR_ALWAYS);
    if (mask)
        gsignal_setmask(s, SIG_SETMASK, &old, NULL);
    gthread_act_on_cancel(why);
    errno = EINTR;
    return -1;
}
