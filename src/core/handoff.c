/*
 * M:N: an OS thread stuck in a real blocking call hands its scheduler over.
 *
 * Some calls corun cannot turn into a park (flock, a SysV semaphore, a
 * device read, any system call it does not know): made for real, they
 * block the OS thread, and with it every green thread queued on its
 * scheduler and every one parked there (their timers and fds are its
 * loop's). Around such a call an M:N member's green thread publishes
 * itself in its scheduler's `block_word` (sched_blocking_begin). A monitor thread,
 * awake only while such calls are in progress, finds one older than
 * CORUN_HANDOFF_MS on a scheduler with other threads, takes the word, and
 * gives the scheduler to a spare OS thread, which re-arms its per-kernel-
 * thread state (the catch's selector, the CPU-time timer, the tids in the
 * TCBs) and resumes its loop: the others run on. When the call returns,
 * its OS thread finds the word taken (sched_blocking_end): the green thread
 * switches to that OS thread's own context, which hands it to the
 * scheduler wherever it now runs (`returning`) and becomes a spare.
 *
 * Ownership: the OS thread in the call owns the scheduler until the
 * monitor's CAS takes the word; it takes it back with a CAS of its own
 * when the call ends. A signal handler of corun's that interrupts the call
 * does the same first (catch_hold), so no code of the old OS thread
 * touches the scheduler once it is gone. The main OS thread's own TCB is
 * the program's main thread's, which goes with its scheduler: that OS
 * thread gets a TCB of corun's for its own context (made by the monitor
 * when it first takes that scheduler).
 */
#include "sched_int.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "catch.h"
#include "clock.h"
#include "config.h"
#include "context.h"
#include "diag.h"
#include "lock.h"
#include "real.h"
#include "tls.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#endif

__thread struct corun *blocking_co __attribute__((tls_model("initial-exec")));
/* The thread's kernel mask before the call (corun's signals blocked for it). */
static __thread uint64_t blocking_mask __attribute__((tls_model("initial-exec")));
static __thread bool blocking_masked __attribute__((tls_model("initial-exec")));

/* CORUN_HANDOFF_MS is not 0 (and M:N may run: not in sanitizer builds). */
static bool handoff_wanted(void)
{
#ifdef CORUN_SANITIZERS
    return false;
#else
    return cr_config.handoff_ms != 0;
#endif
}

static bool monitor_started;
static int monitor_asleep;              /* futex: 1 while it waits for a call to watch */
static cr_lock_t spare_lock = CR_LOCK_INIT;
static struct mthread *spares;          /* OS threads waiting for a scheduler */

#define SPARE_STACK (128u << 10)        /* an OS thread's own context, made when it first loses
                                         * its scheduler (a worker's own is parked for good) */

static void futex_wait(uint32_t *w, uint32_t val)
{
    catch_raw(SYS_futex, (long)w, FUTEX_WAIT_PRIVATE, val, 0, 0, 0);
}

static void futex_wake(uint32_t *w)
{
    catch_raw(SYS_futex, (long)w, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
}

static void spare_entry(void *arg, void *transfer);

/* The OS thread's name (top -H, /proc/.../comm): a spare runs no green
 * thread. */
static void name_self(struct mthread *m, const char *name)
{
    if (m->tid != getpid())            /* the leader's name is the process's */
        catch_raw(SYS_prctl, PR_SET_NAME, (long)name, 0, 0, 0, 0);
}

/* ---- the green thread's side -------------------------------------------------*/

void sched_blocking_begin_slow(struct sched *s, int nr)
{
    struct corun *me = s->current;
    /* Only a pthread (or main) of the program's with TLS of its own (the
     * main thread's is the OS thread's first, which goes with it), and no
     * program code called from corun's frames (those hold s: a
     * destructor, a handler). */
    if (!(me->flags & CO_PREEMPTIBLE) || !(me->flags & (CO_OWN_TLS | CO_MAIN)) || me->pinned)
        return;
    /* corun's own asynchronous signals wait for the call's end: a handler
     * of theirs would take the word back at its entry, and the call,
     * restarted by the kernel after it (SA_RESTART), would go on without
     * a hand-off (a timer's SIGURG pending as the call began did so under
     * load: pt_mn stuck hung). The program's own signals still interrupt
     * it, as natively. */
    if (blocking_masked)              /* a handler's longjmp left the last call: its mask back */
        catch_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&blocking_mask, 0, 8, 0, 0);
    uint64_t quiet = (uint64_t)1 << (PREEMPT_SIGNAL - 1) | (uint64_t)1 << (CORUN_DETECT_SIGNAL - 1);
    if (cr_config.dump_signal)
        quiet |= (uint64_t)1 << (cr_config.dump_signal - 1);
    catch_raw(SYS_rt_sigprocmask, SIG_BLOCK, (long)&quiet, (long)&blocking_mask, 8, 0, 0);
    blocking_masked = true;
    /* blocking_co first: a handler that comes between the two stores
     * finds the word not yet its own and leaves it; the section starts
     * after the handler. Handlers never clear blocking_co (only the end
     * does), so the word stored here is always taken back. */
    blocking_co = me;
    __asm__ volatile("" ::: "memory");
    s->block_nr = nr;
    __atomic_store_n(&s->block_seq, s->block_seq + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->block_word, (uintptr_t)me, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&monitor_asleep, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&monitor_asleep, 0, __ATOMIC_SEQ_CST))
        futex_wake((uint32_t *)&monitor_asleep);
}

/* The call ended, or a handler of corun's interrupted it: take the
 * scheduler back, or follow it to the OS thread that has it now. Called
 * from catch_hold too (then blocking_co stays: only the call's own end,
 * in sched_blocking_end, clears it; one that a handler's longjmp skipped
 * costs a failed CAS per hook until the thread's next such call). */
bool sched_blocking_resolve(void)
{
    struct corun *me = blocking_co;
    struct sched *s = me->sched;
    for (;;) {
        uintptr_t w = (uintptr_t)me;
        if (__atomic_compare_exchange_n(&s->block_word, &w, 0, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return false;                      /* still this OS thread's */
        if (__atomic_load_n(&me->away_os, __ATOMIC_ACQUIRE)) {
            sched_rejoin(s, me);               /* resumes where s runs now */
            return true;
        }
        if (w != ((uintptr_t)me | 1))
            return false;                      /* taken back already (a handler did) */
        __builtin_ia32_pause();                /* the monitor is deciding */
    }
}

void sched_blocking_done(bool moved)
{
    /* Where it moved, the mask is that OS thread's already. */
    if (blocking_masked && !moved)
        catch_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&blocking_mask, 0, 8, 0, 0);
    blocking_masked = false;
    blocking_co = NULL;
}

bool sched_blocking_stranded(void)
{
    struct corun *me = blocking_co;
    return me && (__atomic_load_n(&me->away_os, __ATOMIC_ACQUIRE) ||
                  __atomic_load_n(&me->sched->block_word, __ATOMIC_ACQUIRE) == ((uintptr_t)me | 1));
}

bool handoff_leave_os(struct corun *me, uint64_t *mask)
{
    /* Nothing for the program's handlers here (faults, and glibc's own
     * signals, which setuid broadcasts to every thread, stay open). Bits,
     * not sigdelset: glibc's refuses 32 and 33 with EINVAL, and errno here
     * is still the call's. */
    uint64_t all = ~(uint64_t)0;
    static const int keep[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, 32, 33 };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        all &= ~((uint64_t)1 << (keep[i] - 1));
    catch_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)mask, 8, 0, 0);
    if (!__atomic_load_n(&me->away_os, __ATOMIC_ACQUIRE)) {
        catch_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)mask, 0, 8, 0, 0);
        return false;
    }
    /* This OS thread's selector is s's, which the new one flips now. */
    catch_raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0, 0);
    return true;
}

/* An own context for the OS thread m, which is about to lose its
 * scheduler (by the monitor, before the hand-off: m's thread is stuck).
 * With a TCB of its own if m's was lent to the program's main thread,
 * which stays with the scheduler: it takes m's identity as the kernel
 * knows it (tid, malloc cache and arena) before the new OS thread's
 * replaces it in main's. false if out of memory. */
static bool own_context_make(struct mthread *m)
{
    size_t area = m->tcb_lent ? (tls_area_size() + 63) & ~(size_t)63 : 0;
    size_t len = SPARE_STACK + area;
    long lo = catch_raw(SYS_mmap, 0, (long)len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (lo < 0 && lo > -4096)
        return false;
    catch_raw(SYS_mprotect, lo, 4096, PROT_NONE, 0, 0, 0);   /* a guard page */
    char *hi = (char *)lo + len;
    if (m->tcb_lent) {
        uintptr_t tp = tls_create(hi, false);
        if (!tp) {
            catch_raw(SYS_munmap, lo, (long)len, 0, 0, 0, 0);
            return false;
        }
        tls_moved(tp, m->fsbase);
        m->fsbase = tp;
        m->errno_loc = tls_errno_location(tp);
        m->tcb_lent = false;
        hi -= area;
    }
    m->ctx_sp = ctx_make(hi, spare_entry, m);
    return true;
}

void handoff_take_returning(struct sched *s)
{
    struct corun *co = __atomic_exchange_n(&s->returning, NULL, __ATOMIC_ACQUIRE);
    while (co) {
        struct corun *next = co->next;
        co->next = NULL;
        __atomic_store_n(&co->away_os, NULL, __ATOMIC_RELAXED);
        tls_moved(co->fsbase, s->fsbase);       /* this OS thread's tid and malloc cache */
        co->state = CO_RUNNABLE;
        coq_push(&s->runq, co);
        co = next;
    }
}

/* A detached thread of corun's (glibc's: its TCB in glibc's lists). */
static int thread_start(void *(*fn)(void *), void *arg, size_t stack)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, stack);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int r = libc_pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return r;
}

/* ---- spares ----------------------------------------------------------------------*/

/* Wait until the monitor gives m a scheduler. */
static struct sched *spare_wait(struct mthread *m)
{
    __atomic_store_n(&m->gen, 0, __ATOMIC_RELAXED);
    cr_lock(&spare_lock);
    m->next = spares;
    spares = m;
    cr_unlock(&spare_lock);
    struct sched *s;
    while (!(s = __atomic_load_n(&m->assigned, __ATOMIC_ACQUIRE)))
        futex_wait(&m->gen, 0);
    m->assigned = NULL;
    return s;
}

/* An OS thread's own context: hand back the green thread that came here
 * (its call ended after its scheduler went), wait for a scheduler, run it. */
__attribute__((noreturn)) static void spare_loop(struct mthread *m, struct corun *back)
{
    for (;;) {
        sched_os_detach();
        if (back) {
            /* Off its stack now: the scheduler may resume it anywhere. */
            struct sched *s = back->sched;
            struct corun *head = __atomic_load_n(&s->returning, __ATOMIC_RELAXED);
            do
                back->next = head;
            while (!__atomic_compare_exchange_n(&s->returning, &head, back, true,
                                                __ATOMIC_RELEASE, __ATOMIC_RELAXED));
            uint64_t one = 1;
            catch_raw(SYS_write, s->wake_fd, (long)&one, sizeof one, 0, 0, 0);
        }
        if (m->tid == getpid()) {
            /* The process's first thread, on a TCB of corun's now, which
             * glibc's lists do not hold (what glibc does to every thread it
             * knows, as its own setuid path inside libc, would miss it):
             * it runs nothing again. */
            for (;;)
                futex_wait(&m->gen, m->gen);
        }
        name_self(m, "corun-spare");
        struct sched *s = spare_wait(m);
        name_self(m, "corun-worker");
        sched_adopt_os(s, m);
        back = cr_ctx_switch(&m->ctx_sp, s->loop_co->sp, NULL);
    }
}

static void spare_entry(void *arg, void *transfer)
{
    tls_started();                    /* a TCB of corun's: glibc's per-thread setup */
    spare_loop(arg, transfer);
}

static void *spare_main(void *arg)
{
    struct mthread *m = arg;
    worker_block_signals();
    sched_os_detach();
    m->tid = (pid_t)syscall(SYS_gettid);
    m->fsbase = tls_read_fs();
    m->errno_loc = &errno;
    altstack_ensure();
    free(malloc(64));             /* its malloc cache, which the TCBs it takes over will name */
    spare_loop(m, NULL);
}

/* A spare OS thread (NULL: none could be made). Called by the monitor. */
static struct mthread *spare_get(void)
{
    cr_lock(&spare_lock);
    struct mthread *m = spares;
    if (m)
        spares = m->next;
    cr_unlock(&spare_lock);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (thread_start(spare_main, m, 256 << 10)) {
        free(m);
        return NULL;
    }
    /* It is on the spare list once it waits: take it from there. */
    for (;;) {
        cr_lock(&spare_lock);
        struct mthread **p = &spares;
        while (*p && *p != m)
            p = &(*p)->next;
        bool found = *p != NULL;
        if (found)
            *p = m->next;
        cr_unlock(&spare_lock);
        if (found)
            return m;
        struct timespec ms = { 0, 100000 };
        syscall(SYS_nanosleep, &ms, NULL);
    }
}

/* ---- the monitor -------------------------------------------------------------------*/

/* Anything else on s that the loop would run or wake: not the worker's own
 * context, nor the thread in the call. And every thread there has TLS of
 * its own (an explicit-API coroutine shares the OS thread's), and none
 * runs program code from corun's frames (`pinned`: a constructor under
 * ld.so's lock, whose recursive owner is the kernel tid its TCB names,
 * which the hand-off changes). */
static bool worth_taking(struct sched *s)
{
    /* alive counts the thread in the call, and a worker's own context (the
     * main one's is the program's main thread, which may wait there). */
    if (s->alive <= 1 + (unsigned long)s->worker && !__atomic_load_n(&s->inbox, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&s->returning, __ATOMIC_ACQUIRE))
        return false;
    dlist_foreach(&s->all, it) {
        struct corun *co = (struct corun *)((char *)it - offsetof(struct corun, all_link));
        if ((co != s->main_co && !(co->flags & CO_OWN_TLS)) || co->pinned)
            return false;
    }
    return true;
}

static void take(struct sched *s, uintptr_t w)
{
    if (!__atomic_compare_exchange_n(&s->block_word, &w, w | 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return;                        /* its call just ended */
    /* Its OS thread is in the kernel, or spinning in sched_blocking_resolve
     * until this ends: s is the monitor's. */
    struct mthread *old = s->os;
    struct mthread *m = worth_taking(s) && (old->ctx_sp || own_context_make(old)) ? spare_get()
                                                                                   : NULL;
    if (!m) {
        __atomic_store_n(&s->block_word, w, __ATOMIC_RELEASE);
        return;
    }
    struct corun *x = (struct corun *)w;
    diag_log(LOG_DEBUG, "OS thread %d is stuck in %s %d (green thread %llu): OS thread %d takes "
             "over its green threads", (int)s->tid, s->block_nr < 0 ? "a hook's call" : "system call",
             s->block_nr, (unsigned long long)x->id, (int)m->tid);
    preempt_disarm(s);                 /* the old OS thread's CPU-time timer */
    s->stats.handed_off++;
    __atomic_store_n(&x->away_os, old, __ATOMIC_RELEASE);
    __atomic_store_n(&m->assigned, s, __ATOMIC_RELEASE);
    __atomic_store_n(&m->gen, 1, __ATOMIC_RELEASE);
    futex_wake(&m->gen);
}

struct watch {
    uintptr_t word;
    unsigned seq;
    uint64_t since;
};

static bool scan(struct watch *seen, uint64_t bound)
{
    struct sched *ms[PROCS_MAX];
    unsigned n = sched_members(ms, PROCS_MAX);
    uint64_t now = clock_now_ns();
    bool any = false;
    for (unsigned i = 0; i < n; i++) {
        struct sched *s = ms[i];
        uintptr_t w = __atomic_load_n(&s->block_word, __ATOMIC_SEQ_CST);
        if (!w || (w & 1) || !s->handoff_ok) {
            seen[i].word = 0;
            continue;
        }
        any = true;
        unsigned seq = __atomic_load_n(&s->block_seq, __ATOMIC_RELAXED);
        if (seen[i].word != w || seen[i].seq != seq) {
            seen[i] = (struct watch){ w, seq, now };     /* a call first seen now */
            continue;
        }
        if (now - seen[i].since >= bound) {
            take(s, w);
            seen[i].word = 0;
        }
    }
    return any;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    worker_block_signals();
    sched_os_detach();
    catch_raw(SYS_prctl, PR_SET_NAME, (long)"corun-monitor", 0, 0, 0, 0);
    static struct watch seen[PROCS_MAX];
    uint64_t bound = (uint64_t)cr_config.handoff_ms * 1000000;
    uint64_t period = bound / 2 > 1000000 ? bound / 2 : 1000000;
    unsigned quiet = 0;
    for (;;) {
        if (scan(seen, bound)) {
            quiet = 0;
        } else if (++quiet >= 20) {
            /* Nothing to watch for a while: sleep until a call begins
             * (sched_blocking_begin_slow wakes it; it checks the flag
             * after publishing its word, this checks the words after
             * setting the flag). */
            __atomic_store_n(&monitor_asleep, 1, __ATOMIC_SEQ_CST);
            if (scan(seen, bound))
                __atomic_store_n(&monitor_asleep, 0, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&monitor_asleep, __ATOMIC_SEQ_CST))
                futex_wait((uint32_t *)&monitor_asleep, 1);
            quiet = 0;
            continue;
        }
        struct timespec ts = { 0, (long)period };
        syscall(SYS_nanosleep, &ts, NULL);
    }
    return NULL;
}

/* Started by the first worker, named as the monitor meanwhile: a new
 * thread has its creator's name until it sets its own, and the monitor
 * must never look like an OS thread that runs green threads (top -H, or a
 * program counting its threads: corun's helpers are named corun-monitor
 * and corun-spare). */
void handoff_start(void)
{
    if (!handoff_wanted() || __atomic_exchange_n(&monitor_started, true, __ATOMIC_ACQ_REL))
        return;
    char was[16] = "";
    catch_raw(SYS_prctl, PR_GET_NAME, (long)was, 0, 0, 0, 0);
    catch_raw(SYS_prctl, PR_SET_NAME, (long)"corun-monitor", 0, 0, 0, 0);
    int r = thread_start(monitor_main, NULL, 128 << 10);
    catch_raw(SYS_prctl, PR_SET_NAME, (long)was, 0, 0, 0, 0);
    if (r) {
        diag_log(LOG_WARN, "cannot start the monitor of blocking calls (%s): a worker stuck in "
                 "one keeps its green threads", strerror(r));
        return;
    }
}

void handoff_member_ready(struct sched *s, bool main_thread)
{
    struct mthread *m = calloc(1, sizeof *m);
    if (!m)
        return;                        /* it keeps its scheduler whatever happens */
    m->tid = s->tid;
    m->fsbase = s->fsbase;
    m->errno_loc = s->errno_loc;
    m->tcb_lent = main_thread;
    s->os = m;
    s->handoff_ok = handoff_wanted();
}

/* The monitor and the spares stay behind in the parent. */
void handoff_fork_child(void)
{
    monitor_started = false;
    monitor_asleep = 0;
    spares = NULL;
    spare_lock = (cr_lock_t)CR_LOCK_INIT;
}
