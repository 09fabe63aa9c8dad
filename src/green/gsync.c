/*
 * Synchronisation objects for any caller (see gsync.h). All waiting is FIFO
 * and what is waited for is handed straight to the first waiter (no
 * barging while anyone waits), which keeps handoff cheap and fair.
 *
 * Memory order: QLOCK is taken with an acquire CAS and released with a
 * release store of the whole word; while it is held nobody else changes the
 * word (every other transition is a CAS from a value without QLOCK).
 */
#include "gsync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catch.h"
#include "clock.h"
#include "diag.h"
#include "gthread.h"
#include "lock.h"
#include "rawsys.h"
#include "sched.h"

_Static_assert(sizeof(struct gmutex) <= 40, "gmutex must fit pthread_mutex_t");
_Static_assert(offsetof(struct gmutex, kind) == 16, "kind where glibc's initialisers put it");
_Static_assert(sizeof(struct gcond) <= 48, "gcond must fit pthread_cond_t");
_Static_assert(sizeof(struct grwlock) <= 56, "grwlock must fit pthread_rwlock_t");
_Static_assert(offsetof(struct grwlock, shared) == 28, "glibc's rwlock __shared");
_Static_assert(sizeof(struct gsem) <= 32, "gsem must fit sem_t");
_Static_assert(sizeof(struct gbarrier) <= 32, "gbarrier must fit pthread_barrier_t");
_Static_assert(offsetof(struct gbarrier, shared) == 12, "glibc's barrier shared");

#define GS_LOCKED 1u            /* mutex: held */
#define GS_WAITERS 2u           /* the queue is not empty */
#define GS_QLOCK 4u             /* the queue (and the rest of the object) is being changed */
#define GRW_WRITER 8u           /* rwlock: held for writing */
#define GRW_READER 16u          /* rwlock: one reader */
#define GSEM_UNIT ((uint64_t)1 << 32)

/* ---- waiters ---------------------------------------------------------------*/

enum { GW_WAITING, GW_CLAIMED, GW_DONE };   /* gwaiter.state */

struct gwaiter {
    struct gwaiter *next, *prev;    /* on the object's queue */
    unsigned gen;                   /* fork generation it was queued in */
    struct sched *s;                /* a green waiter's scheduler, or NULL: a kernel thread */
    void *self;                     /* who waits (see caller()) */
    uint32_t state;                 /* atomic: futex word of a kernel waiter */
    int wants_write;                /* rwlock */
    struct sched_xwake xw;
};

/* A kernel thread's identity as an owner: tagged (bit 0) so that it is never
 * taken for a struct corun. */
static __thread uint64_t kernel_self_token __attribute__((tls_model("initial-exec")));
#define KERNEL_TAG 1u

/* The caller: *s is its scheduler when it is a green thread, else NULL. */
static void *caller(struct sched **s)
{
    *s = sched_for_program();
    if (*s)
        return (*s)->current;
    return (void *)((uintptr_t)&kernel_self_token | KERNEL_TAG);
}

const struct corun *gmutex_green_owner(const struct gmutex *m)
{
    void *o = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
    return ((uintptr_t)o & KERNEL_TAG) ? NULL : o;
}

/* Bumped in a fork child: the waiters queued before the fork were other
 * threads', which the child does not have (their records stay readable in
 * the child's copy of their stacks). They are dropped from a queue's head
 * when next looked at, so nothing is handed to a thread that is not there. */
static unsigned fork_gen;


static void gw_init(struct gwaiter *w, struct sched *s, void *self)
{
    *w = (struct gwaiter){ .s = s, .self = self, .gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED) };
    w->xw.co = s ? s->current : NULL;
}

static void gwq_push(struct gwq *q, struct gwaiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

static void gwq_remove(struct gwq *q, struct gwaiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
}

/* The queue's first waiter that still exists (under QLOCK). Waiters queued
 * before a fork are at the head: later ones are pushed behind them. */
static struct gwaiter *gwq_live(struct gwq *q)
{
    unsigned gen = __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
    while (__builtin_expect(q->head && q->head->gen != gen, 0))
        gwq_remove(q, q->head);
    return q->head;
}

/* Take w off q and mark it handed over (under QLOCK); gw_wake it after. */
static void gw_claim(struct gwq *q, struct gwaiter *w)
{
    gwq_remove(q, w);
    __atomic_store_n(&w->state, GW_CLAIMED, __ATOMIC_RELAXED);
}

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, word, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* Wake a claimed waiter (QLOCK released). After this w may be gone. */
static void gw_wake(struct gwaiter *w)
{
    if (!w->s) {
        __atomic_store_n(&w->state, GW_DONE, __ATOMIC_RELEASE);
        int saved = errno;
        futex(&w->state, FUTEX_WAKE_PRIVATE, 1, NULL);
        errno = saved;
        return;
    }
    struct sched *mine = sched_tls;
    if (mine == w->s && mine->current != mine->loop_co) {
        __atomic_store_n(&w->state, GW_DONE, __ATOMIC_RELEASE);
        sched_wake(w->xw.co, WAKE_SIGNALED);
    } else {
        sched_xwake_post(&w->xw);       /* another OS thread, or a signal handler */
    }
}

static bool gw_done(struct gwaiter *w)
{
    return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE) == GW_DONE ||
           (w->s && __atomic_load_n(&w->xw.delivered, __ATOMIC_ACQUIRE));
}

enum gw_how { GW_PLAIN, GW_CANCELLABLE, GW_INTERRUPTIBLE };

/*
 * Wait, QLOCK released, until w is handed what it waits for (WAKE_SIGNALED)
 * or the deadline, a cancellation or a signal handler ends the wait early
 * (then the caller must gw_withdraw). A kernel thread waits on its own
 * futex; a signal interrupts it only in GW_INTERRUPTIBLE (the kernel
 * restarts the futex wait after an SA_RESTART handler itself).
 */
static int gw_wait(struct gwaiter *w, uint64_t deadline, enum gw_how how, enum wait_kind kind,
                   const void *obj)
{
    struct sched *s = w->s;
    if (s) {
        for (;;) {
            sched_wait_on(s, kind, obj, -1);
            int why = how == GW_PLAIN ? sched_park(s, deadline, PARK_PLAIN)
                    : how == GW_CANCELLABLE ? sched_park(s, deadline, PARK_CANCEL)
                                            : sched_park(s, deadline, PARK_INTR_RESTART);
            if (gw_done(w))
                return WAKE_SIGNALED;
            if (why != WAKE_SIGNALED)
                return why;
        }
    }
    struct timespec abs = ns_to_ts((int64_t)deadline);
    int saved = errno, why = WAKE_SIGNALED;
    for (;;) {
        uint32_t v = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
        if (v == GW_DONE)
            break;
        long r = futex(&w->state, FUTEX_WAIT_BITSET_PRIVATE, v,
                       deadline == DEADLINE_NONE ? NULL : &abs);
        if (r != 0 && errno == ETIMEDOUT) {
            why = WAKE_TIMEOUT;
            break;
        }
        if (r != 0 && errno == EINTR && how == GW_INTERRUPTIBLE) {
            why = WAKE_INTERRUPTED;
            break;
        }
    }
    errno = saved;
    return why;
}

/* After gw_wait handed it nothing: w is still queued (the caller took it
 * off) or was claimed meanwhile, and then it waits for the wake. */
static void gw_wait_handed(struct gwaiter *w)
{
    while (!gw_done(w))
        gw_wait(w, DEADLINE_NONE, GW_PLAIN, WAIT_OTHER, NULL);
}

static void cpu_relax(unsigned *spins)
{
    if (++*spins < 100)
        __builtin_ia32_pause();
    else
        syscall(SYS_sched_yield);       /* the holder may be a preempted kernel thread */
}

/* ---- one OS thread: compare-and-swap without the lock prefix ------------------
 *
 * A lock-prefixed instruction costs about 10 ns here (it waits for the store
 * buffer to drain), against about 2 for a plain one (bench/RESULTS.md). While
 * a single scheduler has ever used these objects (every thread of the
 * program green on one OS thread: CORUN_PROCS=1, or an M:N process before a
 * second member has used one), only its OS thread and that thread's signal
 * handlers touch them, and a cmpxchg without the prefix, one instruction, is
 * atomic against a handler. The owner is named by its scheduler (sched_tls:
 * the same for all its green threads and in their handlers; a scheduler
 * handed to another OS thread goes while its old one is in a real blocking
 * call, not in an object).
 *
 * Any other caller (another scheduler, a thread without one) ends this for
 * good before its own first CAS: with its signals blocked (a handler of its
 * own calling in would wait for the end it interrupted), it marks the owner
 * word ending, makes every thread of the process execute a full barrier
 * (membarrier), waits until the owner is out of any unprefixed instruction
 * it had begun (solo_busy), then publishes SOLO_OFF. The owner raises
 * solo_busy and only then looks whether it still owns: with the barrier,
 * either the ender sees it busy or the owner sees the end. Other callers
 * wait for SOLO_OFF; the old owner itself goes on with locked instructions
 * at once (its handler may have interrupted its own unprefixed one).
 */
#define SOLO_NONE ((uintptr_t)2)        /* not claimed yet */
#define SOLO_OFF ((uintptr_t)4)         /* ended: every CAS is locked */
#define SOLO_ENDING ((uintptr_t)1)      /* or'ed into the owner: being ended */
static uintptr_t solo_owner = SOLO_NONE;   /* atomic: the owner's struct sched *, or SOLO_* */
static unsigned solo_busy;              /* the owner's only: inside an unprefixed CAS (nested) */
static const char *solo_off_why;        /* why SOLO_OFF (CORUN_STATS) */

/* Signals that may not be blocked while they can arise from the code itself. */
#define SYNC_SIGNALS                                                                     \
    ((UINT64_C(1) << (SIGSEGV - 1)) | (UINT64_C(1) << (SIGBUS - 1)) |                    \
     (UINT64_C(1) << (SIGFPE - 1)) | (UINT64_C(1) << (SIGILL - 1)) |                     \
     (UINT64_C(1) << (SIGSYS - 1)) | (UINT64_C(1) << (SIGTRAP - 1)))

/* The owner word says ending (the caller, signals blocked, put it there):
 * see that the owner has seen it and left any unprefixed CAS. */
static void solo_end_owner(void)
{
    if (!rs_membarrier())
        diag_fatal("membarrier failed after its registration succeeded (%s)", strerror(errno));
    /* A few instructions, unless a handler that interrupted them never
     * returned (siglongjmp out of a sem_post): then the count stays up. */
    uint64_t since = clock_now_ns();
    unsigned spins = 0;
    while (__atomic_load_n(&solo_busy, __ATOMIC_ACQUIRE)) {
        cpu_relax(&spins);
        if (clock_now_ns() - since > NS_PER_SEC) {
            diag_log(LOG_WARN, "pthread objects: the first OS thread's busy count stayed up "
                               "for 1 s (a signal handler left by a jump?); going on");
            break;
        }
    }
}

/* The caller, whose scheduler is s (NULL: none), is not the owner: claim
 * the objects if nobody has, or end the owner's claim. Returns the state it
 * leaves (s itself when claimed). */
__attribute__((noinline)) static uintptr_t solo_settle(struct sched *s)
{
    int saved = errno;
    uintptr_t o = __atomic_load_n(&solo_owner, __ATOMIC_ACQUIRE);
    if (o == SOLO_NONE && s) {
        if (rs_membarrier_ready()) {
            if (__atomic_compare_exchange_n(&solo_owner, &o, (uintptr_t)s, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)) {
                errno = saved;
                return (uintptr_t)s;
            }
        } else {
            solo_off_why = "no membarrier";
        }
    }
    unsigned spins = 0;
    for (;;) {
        if (o == SOLO_OFF || o == (uintptr_t)s)
            break;
        if (o & SOLO_ENDING) {
            if ((o & ~SOLO_ENDING) == (uintptr_t)s)
                break;                          /* the old owner: locked from now on */
            cpu_relax(&spins);
            o = __atomic_load_n(&solo_owner, __ATOMIC_ACQUIRE);
            continue;
        }
        if (o == SOLO_NONE) {
            if (__atomic_compare_exchange_n(&solo_owner, &o, SOLO_OFF, false, __ATOMIC_SEQ_CST,
                                            __ATOMIC_ACQUIRE)) {
                if (!solo_off_why)
                    solo_off_why = "first used by a thread without a scheduler";
                o = SOLO_OFF;
                break;
            }
            continue;
        }
        uint64_t all = ~SYNC_SIGNALS, old;
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
        bool mine = __atomic_compare_exchange_n(&solo_owner, &o, o | SOLO_ENDING, false,
                                                __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE);
        if (mine) {
            solo_end_owner();
            solo_off_why = "used by several OS threads";
            __atomic_store_n(&solo_owner, SOLO_OFF, __ATOMIC_RELEASE);
            o = SOLO_OFF;
        }
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof old);
        if (mine)
            break;
    }
    errno = saved;
    return o;
}

/* Whether the caller may use an unprefixed CAS now; if so it is marked busy,
 * and solo_end(*outer) must follow the CAS. */
static inline bool solo_begin(unsigned *outer)
{
    struct sched *s = sched_tls;
    uintptr_t o = __atomic_load_n(&solo_owner, __ATOMIC_RELAXED);
    if (__builtin_expect(o != (uintptr_t)s && o != SOLO_OFF, 0))
        o = solo_settle(s);
    if (o != (uintptr_t)s)
        return false;
    *outer = __atomic_load_n(&solo_busy, __ATOMIC_RELAXED);
    __atomic_store_n(&solo_busy, *outer + 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&solo_owner, __ATOMIC_RELAXED) == (uintptr_t)s, 1))
        return true;
    __atomic_store_n(&solo_busy, *outer, __ATOMIC_RELAXED);
    return false;
}

static inline void solo_end(unsigned outer)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&solo_busy, outer, __ATOMIC_RELAXED);
}

/* A strong compare-and-swap of an object's word, as
 * __atomic_compare_exchange_n: a cmpxchg without the lock prefix (atomic for
 * the thread that runs it and its handlers) while the caller owns them. */
static inline bool cas32(uint32_t *w, uint32_t *expect, uint32_t desired)
{
    unsigned outer;
    if (solo_begin(&outer)) {
        bool ok;
        __asm__ volatile("cmpxchgl %3, %1" : "+a"(*expect), "+m"(*w), "=@ccz"(ok) : "r"(desired)
                         : "memory");
        solo_end(outer);
        return ok;
    }
    return __atomic_compare_exchange_n(w, expect, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

static inline bool cas64(uint64_t *w, uint64_t *expect, uint64_t desired)
{
    unsigned outer;
    if (solo_begin(&outer)) {
        bool ok;
        __asm__ volatile("cmpxchgq %3, %1" : "+a"(*expect), "+m"(*w), "=@ccz"(ok) : "r"(desired)
                         : "memory");
        solo_end(outer);
        return ok;
    }
    return __atomic_compare_exchange_n(w, expect, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

/* Whether the objects are still one OS thread's (CORUN_STATS). */
const char *gsync_solo_state(void)
{
    uintptr_t o = __atomic_load_n(&solo_owner, __ATOMIC_ACQUIRE);
    if (o == SOLO_OFF || (o == SOLO_NONE && solo_off_why)) {
        static char buf[80];
        snprintf(buf, sizeof buf, "lock prefix (%s)", solo_off_why ? solo_off_why : "?");
        return buf;
    }
    if (o == SOLO_NONE)
        return "not used yet";
    if (o & SOLO_ENDING)
        return "lock prefix (used by several OS threads)";
    return "no lock prefix (one OS thread)";
}

/* ---- QLOCK sections and fork ----------------------------------------------------
 *
 * A fork child has the forking thread only: a QLOCK that another OS thread
 * held (or was taking) at the fork would stay set in it, and the child's
 * next use of that object would spin forever (as in a program whose atfork
 * child handler unlocks a mutex that threads of other workers contend for).
 * So every OS thread records the object it is in a QLOCK section of, and
 * the child frees the objects of the threads it does not have. The record
 * is one word (object, queue offset, width), stored before the CAS that
 * takes the bit: x86-64 makes a thread's stores visible in order (the CAS
 * is one of them, prefixed or not), so a child that sees the bit set sees
 * the record.
 */
#define HOLD_ADDR ((UINT64_C(1) << 48) - 1)
#define HOLD_QOFF_SHIFT 48      /* the queue's offset from the word, < 256 */
#define HOLD_WIDE (UINT64_C(1) << 56)   /* the word is 64-bit (a semaphore) */

/* A green thread's OS thread records in its scheduler's part: there is
 * never more than one section open per OS thread except in a signal
 * handler, which restores the outer record when its own section ends. */
struct hold_rec {
    uint64_t hold;              /* atomic */
    struct hold_rec *next;      /* on hold_recs */
};
static struct sched_part hold_part = { .sched_size = sizeof(struct hold_rec) };
SCHED_PART(hold_part);
static struct hold_rec *hold_recs;      /* every scheduler's, under hold_lock */
static cr_lock_t hold_lock = CR_LOCK_INIT;

/* A kernel thread (no scheduler) claims one of these for each section. */
#define KERNEL_HOLDS 64
static struct {
    _Alignas(64) uint64_t hold;     /* atomic: 0 when free */
} kernel_holds[KERNEL_HOLDS];

struct qsection {
    uint64_t *rec;              /* where the section is recorded */
    uint64_t outer;             /* what that said before (a handler's section) */
};

/* A kernel thread's record: a free slot of kernel_holds. */
__attribute__((noinline)) static void section_open_kernel(struct qsection *sec, uint64_t hold)
{
    unsigned i = (unsigned)((uintptr_t)&kernel_self_token >> 6) % KERNEL_HOLDS, spins = 0;
    for (;;) {
        uint64_t free = 0;
        if (__atomic_compare_exchange_n(&kernel_holds[i].hold, &free, hold, false,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            break;
        if (++i == KERNEL_HOLDS) {
            i = 0;
            cpu_relax(&spins);
        }
    }
    sec->rec = &kernel_holds[i].hold;
    sec->outer = 0;
}

/* Record that the caller is about to take the QLOCK of `word`, whose
 * object's queue is q. */
static inline void section_open(struct qsection *sec, void *word, struct gwq *q, bool wide)
{
    uint64_t hold = ((uint64_t)(uintptr_t)word & HOLD_ADDR) |
                    (uint64_t)((char *)q - (char *)word) << HOLD_QOFF_SHIFT | (wide ? HOLD_WIDE : 0);
    struct sched *s = sched_tls;
    if (__builtin_expect(s != NULL, 1)) {
        struct hold_rec *r = sched_part(s, &hold_part);
        sec->rec = &r->hold;
        sec->outer = r->hold;
        __atomic_store_n(sec->rec, hold, __ATOMIC_RELAXED);
    } else {
        section_open_kernel(sec, hold);
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);    /* recorded before the bit is taken */
}

/* After the QLOCK was released (or never taken). */
static void section_close(struct qsection *sec)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(sec->rec, sec->outer, __ATOMIC_RELAXED);
}

static void hold_sched_created(struct sched *s)
{
    struct hold_rec *r = sched_part(s, &hold_part);
    cr_lock(&hold_lock);
    r->next = hold_recs;
    __atomic_store_n(&hold_recs, r, __ATOMIC_RELEASE);
    cr_unlock(&hold_lock);
}

static void hold_sched_destroyed(struct sched *s)
{
    /* Its address may name another OS thread's scheduler next. */
    uintptr_t o = (uintptr_t)s;
    if (__atomic_compare_exchange_n(&solo_owner, &o, SOLO_OFF, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
        solo_off_why = "the owning scheduler ended";
    struct hold_rec *r = sched_part(s, &hold_part);
    cr_lock(&hold_lock);
    for (struct hold_rec **p = &hold_recs; *p; p = &(*p)->next)
        if (*p == r) {
            __atomic_store_n(p, r->next, __ATOMIC_RELEASE);
            break;
        }
    cr_unlock(&hold_lock);
}

/* In the child: the object recorded in `hold` was in a section of a thread
 * the child does not have. If it still has QLOCK, free it; its queue held
 * waiters of such threads only (the forking thread was not waiting), so it
 * is emptied. What the section was doing did not happen. */
static void hold_free_in_child(uint64_t hold)
{
    if (!hold)
        return;
    void *word = (void *)(uintptr_t)(hold & HOLD_ADDR);
    struct gwq *q = (struct gwq *)((char *)word + ((hold >> HOLD_QOFF_SHIFT) & 0xff));
    if (hold & HOLD_WIDE) {
        uint64_t *w = word;
        if (!(*w & GS_QLOCK))
            return;
        *w &= ~(uint64_t)(GS_QLOCK | GS_WAITERS);
    } else {
        uint32_t *w = word;
        if (!(*w & GS_QLOCK))
            return;
        *w &= ~(GS_QLOCK | GS_WAITERS);
    }
    q->head = q->tail = NULL;
}

static void hold_fork_child(struct sched *s)
{
    struct hold_rec *mine = s ? sched_part(s, &hold_part) : NULL;
    for (struct hold_rec *r = hold_recs; r; r = r->next)
        if (r != mine) {
            hold_free_in_child(r->hold);
            r->hold = 0;
        }
    for (unsigned i = 0; i < KERNEL_HOLDS; i++) {
        hold_free_in_child(kernel_holds[i].hold);
        kernel_holds[i].hold = 0;
    }
    /* The other schedulers' records are of threads that are gone. */
    hold_lock = (cr_lock_t)CR_LOCK_INIT;
    hold_recs = mine;
    if (mine)
        mine->next = NULL;
}

static void on_fork_child(struct sched *s)
{
    __atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
    hold_fork_child(s);
    /* One OS thread again, in no CAS: whoever uses an object next owns
     * them (rs_membarrier registers the child when it first needs to). */
    solo_busy = 0;
    solo_off_why = NULL;
    solo_owner = SOLO_NONE;
}

static const struct sched_observer observer = {
    .sched_created = hold_sched_created,
    .sched_destroyed = hold_sched_destroyed,
    .fork_child = on_fork_child,
};
SCHED_OBSERVER(observer);

/* Take the QLOCK of a 32-bit state word (in the open section sec); returns
 * the word (without QLOCK). */
static uint32_t qlock32(struct qsection *sec, uint32_t *word, struct gwq *q)
{
    section_open(sec, word, q, false);
    unsigned spins = 0;
    uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
    for (;;) {
        if (!(v & GS_QLOCK) && cas32(word, &v, v | GS_QLOCK))
            return v;
        if (v & GS_QLOCK) {
            cpu_relax(&spins);
            v = __atomic_load_n(word, __ATOMIC_RELAXED);
        }
    }
}

static void qunlock32(struct qsection *sec, uint32_t *word, uint32_t v)
{
    __atomic_store_n(word, v & ~GS_QLOCK, __ATOMIC_RELEASE);
    section_close(sec);
}

static uint32_t waiters_bit(struct gwq *q)
{
    return gwq_live(q) ? GS_WAITERS : 0;
}

int deadline_from_abstime(clockid_t clock, const struct timespec *abs, uint64_t *deadline)
{
    if (!abs || abs->tv_nsec < 0 || abs->tv_nsec >= NS_PER_SEC)
        return EINVAL;
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)
        return EINVAL;
    struct timespec now;
    clock_gettime(clock, &now);
    int64_t left = (int64_t)(abs->tv_sec - now.tv_sec) * NS_PER_SEC + (abs->tv_nsec - now.tv_nsec);
    *deadline = left <= 0 ? clock_now_ns() : deadline_after(left);
    return 0;
}


/* ---- mutex -----------------------------------------------------------------*/

void gmutex_init(struct gmutex *m, int kind)
{
    *m = (struct gmutex){ .kind = kind };
}

static void mutex_take(struct gmutex *m, void *self)
{
    __atomic_store_n(&m->owner, self, __ATOMIC_RELAXED);
    m->count = 1;
}

/* Take m off the queue after a wait that ended early: false if it was
 * handed m first (then the caller holds it). */
static bool mutex_withdraw(struct gmutex *m, struct gwaiter *w)
{
    struct qsection sec;
    uint32_t v = qlock32(&sec, &m->state, &m->waiters);
    if (__atomic_load_n(&w->state, __ATOMIC_RELAXED) == GW_WAITING) {
        gwq_remove(&m->waiters, w);
        qunlock32(&sec, &m->state, (v & ~GS_WAITERS) | waiters_bit(&m->waiters));
        return true;
    }
    qunlock32(&sec, &m->state, v);
    gw_wait_handed(w);
    return false;
}

int gmutex_lock(struct gmutex *m, uint64_t deadline, bool try)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    uint32_t v = 0;
    if (cas32(&m->state, &v, GS_LOCKED)) {
        mutex_take(m, self);
        return 0;
    }
    if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == self) {
        switch (m->kind & 3) {
        case GMUTEX_RECURSIVE:
            if (m->count == UINT_MAX)
                return EAGAIN;
            m->count++;
            return 0;
        case GMUTEX_ERRORCHECK:
            return try ? EBUSY : EDEADLK;   /* trylock never says EDEADLK */
        default:
            break;                /* a normal mutex relocked by its owner deadlocks, as natively */
        }
    }
    struct gwaiter w;
    gw_init(&w, s, self);
    unsigned spins = 0;
    for (;;) {
        if (!(v & (GS_LOCKED | GS_QLOCK))) {
            if (cas32(&m->state, &v, v | GS_LOCKED)) {
                mutex_take(m, self);
                return 0;
            }
            continue;
        }
        if (try)
            return EBUSY;
        if (v & GS_QLOCK) {
            cpu_relax(&spins);
            v = __atomic_load_n(&m->state, __ATOMIC_RELAXED);
            continue;
        }
        section_open(&sec, &m->state, &m->waiters, false);
        if (cas32(&m->state, &v, v | GS_QLOCK))
            break;
        section_close(&sec);
    }
    /* QLOCK held, m locked. A deadline already reached means "try once". */
    if (deadline != DEADLINE_NONE && deadline <= clock_now_ns()) {
        qunlock32(&sec, &m->state, v);
        return ETIMEDOUT;
    }
    gwq_push(&m->waiters, &w);
    qunlock32(&sec, &m->state, v | GS_WAITERS);
    if (gw_wait(&w, deadline, GW_PLAIN, WAIT_MUTEX, m) != WAKE_SIGNALED && mutex_withdraw(m, &w))
        return ETIMEDOUT;
    return 0;                     /* handed over by the unlocker: owner == self */
}

int gmutex_unlock(struct gmutex *m)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    int kind = m->kind & 3;
    if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) != self) {
        if (kind != GMUTEX_NORMAL)
            return EPERM;
        if (!(__atomic_load_n(&m->state, __ATOMIC_RELAXED) & GS_LOCKED))
            return 0;             /* as glibc: unlocking a free normal mutex does nothing */
    }
    if (kind == GMUTEX_RECURSIVE && --m->count > 0)
        return 0;
    __atomic_store_n(&m->owner, NULL, __ATOMIC_RELAXED);
    m->count = 0;
    uint32_t v = GS_LOCKED;
    if (cas32(&m->state, &v, 0))
        return 0;
    v = qlock32(&sec, &m->state, &m->waiters);
    struct gwaiter *next = gwq_live(&m->waiters);
    if (!next) {
        qunlock32(&sec, &m->state, 0);
        return 0;
    }
    gw_claim(&m->waiters, next);
    mutex_take(m, next->self);
    qunlock32(&sec, &m->state, GS_LOCKED | waiters_bit(&m->waiters));
    gw_wake(next);
    return 0;
}

int gmutex_destroy(struct gmutex *m)
{
    return __atomic_load_n(&m->state, __ATOMIC_RELAXED) & GS_LOCKED ? EBUSY : 0;
}

/* ---- condition variable ------------------------------------------------------*/

void gcond_init(struct gcond *c, clockid_t clock)
{
    *c = (struct gcond){ .clock = (int32_t)clock };
}

int gcond_wait(struct gcond *c, struct gmutex *m, uint64_t deadline)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) != self && (m->kind & 3) != GMUTEX_NORMAL)
        return EPERM;
    struct gwaiter w;
    gw_init(&w, s, self);
    /* Queued before m is released: a signal sent under m reaches it. */
    uint32_t v = qlock32(&sec, &c->state, &c->waiters);
    gwq_push(&c->waiters, &w);
    qunlock32(&sec, &c->state, v | GS_WAITERS);
    uint32_t depth = m->count;
    m->count = 1;                 /* release it whole, get it back whole */
    gmutex_unlock(m);
    int why = gw_wait(&w, deadline, GW_CANCELLABLE, WAIT_COND, c);
    if (why != WAKE_SIGNALED) {
        v = qlock32(&sec, &c->state, &c->waiters);
        if (__atomic_load_n(&w.state, __ATOMIC_RELAXED) == GW_WAITING) {
            gwq_remove(&c->waiters, &w);
            qunlock32(&sec, &c->state, (v & ~GS_WAITERS) | waiters_bit(&c->waiters));
        } else {
            qunlock32(&sec, &c->state, v);
            gw_wait_handed(&w);
            if (why == WAKE_CANCELED)
                gcond_signal(c);  /* a canceled waiter must not consume a signal */
            else
                why = WAKE_SIGNALED;
        }
    }
    gmutex_lock(m, DEADLINE_NONE, false);
    m->count = depth;
    gthread_act_on_cancel(why);   /* a canceled waiter leaves holding the mutex, per POSIX */
    return why == WAKE_TIMEOUT ? ETIMEDOUT : 0;
}

void gcond_signal(struct gcond *c)
{
    struct qsection sec;
    if (!(__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) & GS_WAITERS))
        return;
    uint32_t v = qlock32(&sec, &c->state, &c->waiters);
    struct gwaiter *w = gwq_live(&c->waiters);
    if (w)
        gw_claim(&c->waiters, w);
    qunlock32(&sec, &c->state, (v & ~GS_WAITERS) | waiters_bit(&c->waiters));
    if (w)
        gw_wake(w);
}

void gcond_broadcast(struct gcond *c)
{
    struct qsection sec;
    if (!(__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) & GS_WAITERS))
        return;
    uint32_t v = qlock32(&sec, &c->state, &c->waiters);
    struct gwaiter *all = gwq_live(&c->waiters);
    for (struct gwaiter *w = all; w; w = w->next)
        __atomic_store_n(&w->state, GW_CLAIMED, __ATOMIC_RELAXED);
    c->waiters.head = c->waiters.tail = NULL;
    qunlock32(&sec, &c->state, v & ~GS_WAITERS);
    while (all) {
        struct gwaiter *next = all->next;   /* read before the wake: then it may be gone */
        gw_wake(all);
        all = next;
    }
}

int gcond_destroy(struct gcond *c)
{
    return __atomic_load_n(&c->state, __ATOMIC_RELAXED) & GS_WAITERS ? EBUSY : 0;
}

/* ---- rwlock ------------------------------------------------------------------*/

void grwlock_init(struct grwlock *l)
{
    *l = (struct grwlock){ 0 };
}

/* Under QLOCK, with the lock state v: hand a free lock to the first waiter,
 * and if that is a reader, to all readers queued behind it up to the next
 * writer. Returns the new state; the claimed waiters are put on *woken. */
static uint32_t rw_grant(struct grwlock *l, uint32_t v, struct gwaiter **woken)
{
    struct gwaiter *w = gwq_live(&l->waiters), *list = NULL, **tail = &list;
    if (!w || (v & GRW_WRITER) || v >= GRW_READER)
        goto out;
    if (w->wants_write) {
        gw_claim(&l->waiters, w);
        __atomic_store_n(&l->writer, w->self, __ATOMIC_RELAXED);
        v |= GRW_WRITER;
        *tail = w;
        tail = &w->next;
        goto out;
    }
    while ((w = gwq_live(&l->waiters)) && !w->wants_write) {
        gw_claim(&l->waiters, w);
        v += GRW_READER;
        *tail = w;
        tail = &w->next;
    }
out:
    *tail = NULL;
    *woken = list;
    return (v & ~GS_WAITERS) | waiters_bit(&l->waiters);
}

static void rw_wake_all(struct gwaiter *w)
{
    while (w) {
        struct gwaiter *next = w->next;
        gw_wake(w);
        w = next;
    }
}

static int rw_lock(struct grwlock *l, bool write, uint64_t deadline, bool try)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    if (__atomic_load_n(&l->writer, __ATOMIC_RELAXED) == self)
        return try ? EBUSY : EDEADLK;
    unsigned spins = 0;
    uint32_t v = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
    for (;;) {
        /* Readers go first while no writer holds it (glibc's default policy). */
        bool free = write ? !(v & (GRW_WRITER | GS_QLOCK)) && v < GRW_READER
                          : !(v & (GRW_WRITER | GS_QLOCK));
        if (free) {
            if (!write && v >= UINT32_MAX - GRW_READER + 1)
                return EAGAIN;
            if (cas32(&l->state, &v, write ? v | GRW_WRITER : v + GRW_READER)) {
                if (write)
                    __atomic_store_n(&l->writer, self, __ATOMIC_RELAXED);
                return 0;
            }
            continue;
        }
        if (try)
            return EBUSY;
        if (v & GS_QLOCK) {
            cpu_relax(&spins);
            v = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
            continue;
        }
        section_open(&sec, &l->state, &l->waiters, false);
        if (cas32(&l->state, &v, v | GS_QLOCK))
            break;
        section_close(&sec);
    }
    if (deadline != DEADLINE_NONE && deadline <= clock_now_ns()) {
        qunlock32(&sec, &l->state, v);
        return ETIMEDOUT;
    }
    struct gwaiter w;
    gw_init(&w, s, self);
    w.wants_write = write;
    gwq_push(&l->waiters, &w);
    qunlock32(&sec, &l->state, v | GS_WAITERS);
    if (gw_wait(&w, deadline, GW_PLAIN, WAIT_RWLOCK, l) == WAKE_SIGNALED)
        return 0;
    v = qlock32(&sec, &l->state, &l->waiters);
    if (__atomic_load_n(&w.state, __ATOMIC_RELAXED) == GW_WAITING) {
        gwq_remove(&l->waiters, &w);
        /* A writer leaving may let the readers queued behind it in. */
        struct gwaiter *woken;
        qunlock32(&sec, &l->state, rw_grant(l, v, &woken));
        rw_wake_all(woken);
        return ETIMEDOUT;
    }
    qunlock32(&sec, &l->state, v);
    gw_wait_handed(&w);
    return 0;
}

int grwlock_rdlock(struct grwlock *l, uint64_t deadline, bool try)
{
    return rw_lock(l, false, deadline, try);
}

int grwlock_wrlock(struct grwlock *l, uint64_t deadline, bool try)
{
    return rw_lock(l, true, deadline, try);
}

int grwlock_unlock(struct grwlock *l)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    bool writer = __atomic_load_n(&l->writer, __ATOMIC_RELAXED) == self;
    if (writer)
        __atomic_store_n(&l->writer, NULL, __ATOMIC_RELAXED);
    uint32_t v = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
    unsigned spins = 0;
    for (;;) {
        if (!writer && v < GRW_READER)
            return EPERM;
        if (v & GS_QLOCK) {
            cpu_relax(&spins);
            v = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
            continue;
        }
        uint32_t n = writer ? v & ~GRW_WRITER : v - GRW_READER;
        if ((n & GS_WAITERS) && n < GRW_READER)
            break;                /* the lock becomes free with waiters: grant it */
        if (cas32(&l->state, &v, n))
            return 0;
    }
    v = qlock32(&sec, &l->state, &l->waiters);
    v = writer ? v & ~GRW_WRITER : v - GRW_READER;
    struct gwaiter *woken;
    qunlock32(&sec, &l->state, rw_grant(l, v, &woken));
    rw_wake_all(woken);
    return 0;
}

int grwlock_destroy(struct grwlock *l)
{
    uint32_t v = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
    return (v & GRW_WRITER) || v >= GRW_READER ? EBUSY : 0;
}

/* ---- semaphore -------------------------------------------------------------*/

void gsem_init(struct gsem *s, unsigned value)
{
    *s = (struct gsem){ .state = value * GSEM_UNIT };
}

static uint64_t qlock64(struct qsection *sec, uint64_t *word, struct gwq *q)
{
    section_open(sec, word, q, true);
    unsigned spins = 0;
    uint64_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
    for (;;) {
        if (!(v & GS_QLOCK) && cas64(word, &v, v | GS_QLOCK))
            return v;
        if (v & GS_QLOCK) {
            cpu_relax(&spins);
            v = __atomic_load_n(word, __ATOMIC_RELAXED);
        }
    }
}

static void qunlock64(struct qsection *sec, uint64_t *word, uint64_t v)
{
    __atomic_store_n(word, v & ~(uint64_t)GS_QLOCK, __ATOMIC_RELEASE);
    section_close(sec);
}

int gsem_wait(struct gsem *sem, uint64_t deadline, bool try)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    uint64_t v = __atomic_load_n(&sem->state, __ATOMIC_RELAXED);
    for (;;) {
        while (v >= GSEM_UNIT && !(v & GS_QLOCK)) {
            if (cas64(&sem->state, &v, v - GSEM_UNIT))
                return 0;
        }
        if (try)
            return EAGAIN;
        v = qlock64(&sec, &sem->state, &sem->waiters);
        if (v >= GSEM_UNIT) {
            qunlock64(&sec, &sem->state, v - GSEM_UNIT);
            return 0;
        }
        if (deadline != DEADLINE_NONE && deadline <= clock_now_ns()) {
            qunlock64(&sec, &sem->state, v);
            return ETIMEDOUT;
        }
        struct gwaiter w;
        gw_init(&w, s, self);
        gwq_push(&sem->waiters, &w);
        qunlock64(&sec, &sem->state, v | GS_WAITERS);
        /* Linux restarts a semaphore's futex wait after an SA_RESTART handler
         * (signal(7) says otherwise; the kernel's -ERESTARTSYS wins). */
        int why = gw_wait(&w, deadline, GW_INTERRUPTIBLE, WAIT_SEM, sem);
        if (why == WAKE_SIGNALED)
            return 0;             /* the poster handed us its unit */
        v = qlock64(&sec, &sem->state, &sem->waiters);
        if (__atomic_load_n(&w.state, __ATOMIC_RELAXED) != GW_WAITING) {
            qunlock64(&sec, &sem->state, v);
            gw_wait_handed(&w);
            if (why == WAKE_CANCELED)
                gsem_post(sem);   /* a canceled waiter passes the unit on */
            gthread_act_on_cancel(why);
            return 0;
        }
        gwq_remove(&sem->waiters, &w);
        v = (v & ~(uint64_t)GS_WAITERS) | waiters_bit(&sem->waiters);
        qunlock64(&sec, &sem->state, v);
        gthread_act_on_cancel(why);
        if (why == WAKE_RESTART)
            continue;             /* a handler ran; a post meanwhile left its unit in value */
        if (why == WAKE_INTERRUPTED)
            return EINTR;
        return ETIMEDOUT;
    }
}

int gsem_post(struct gsem *sem)
{
    struct qsection sec;
    uint64_t v = __atomic_load_n(&sem->state, __ATOMIC_RELAXED);
    while (!(v & (GS_WAITERS | GS_QLOCK))) {
        if (v / GSEM_UNIT >= SEM_VALUE_MAX)
            return EOVERFLOW;
        if (cas64(&sem->state, &v, v + GSEM_UNIT))
            return 0;
    }
    v = qlock64(&sec, &sem->state, &sem->waiters);
    struct gwaiter *w = gwq_live(&sem->waiters);
    if (w) {
        gw_claim(&sem->waiters, w);
        qunlock64(&sec, &sem->state, (v & ~(uint64_t)GS_WAITERS) | waiters_bit(&sem->waiters));
        gw_wake(w);
        return 0;
    }
    if (v / GSEM_UNIT >= SEM_VALUE_MAX) {
        qunlock64(&sec, &sem->state, v);
        return EOVERFLOW;
    }
    qunlock64(&sec, &sem->state, v + GSEM_UNIT);
    return 0;
}

unsigned gsem_value(const struct gsem *sem)
{
    return (unsigned)(__atomic_load_n(&sem->state, __ATOMIC_RELAXED) / GSEM_UNIT);
}

int gsem_destroy(struct gsem *sem)
{
    return __atomic_load_n(&sem->state, __ATOMIC_RELAXED) & GS_WAITERS ? EBUSY : 0;
}

/* ---- barrier ---------------------------------------------------------------*/

int gbarrier_init(struct gbarrier *b, unsigned count)
{
    if (count == 0)
        return EINVAL;
    *b = (struct gbarrier){ .count = count };
    return 0;
}

int gbarrier_wait(struct gbarrier *b)
{
    struct qsection sec;
    struct sched *s;
    void *self = caller(&s);
    uint32_t v = qlock32(&sec, &b->state, &b->waiters);
    if (++b->arrived == b->count) {
        b->arrived = 0;
        struct gwaiter *all = gwq_live(&b->waiters);
        for (struct gwaiter *w = all; w; w = w->next)
            __atomic_store_n(&w->state, GW_CLAIMED, __ATOMIC_RELAXED);
        b->waiters.head = b->waiters.tail = NULL;
        qunlock32(&sec, &b->state, v & ~GS_WAITERS);
        while (all) {
            struct gwaiter *next = all->next;
            gw_wake(all);
            all = next;
        }
        return GBARRIER_SERIAL;
    }
    struct gwaiter w;
    gw_init(&w, s, self);
    gwq_push(&b->waiters, &w);
    qunlock32(&sec, &b->state, v | GS_WAITERS);
    while (gw_wait(&w, DEADLINE_NONE, GW_PLAIN, WAIT_BARRIER, b) != WAKE_SIGNALED)
        ;
    return 0;
}

int gbarrier_destroy(struct gbarrier *b)
{
    return __atomic_load_n(&b->state, __ATOMIC_RELAXED) & GS_WAITERS ? EBUSY : 0;
}

/* ---- spinlock and once -------------------------------------------------------*/

int gspin_lock(int *lock, bool try)
{
    /* Spinning on one OS thread can never see the holder let go: yield. */
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        if (try)
            return EBUSY;
        sched_yield_current(sched_self());
    }
    return 0;
}

int gspin_unlock(int *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
    return 0;
}

#define ONCE_RUNNING 1
#define ONCE_DONE 2
#define ONCE_WAITERS 4          /* a kernel thread sleeps on the word */

int gonce(int *once, void (*fn)(void))
{
    uint32_t *word = (uint32_t *)once;
    uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    if (v == ONCE_DONE)
        return 0;
    if (v == 0 && __atomic_compare_exchange_n(word, &v, ONCE_RUNNING, false, __ATOMIC_ACQUIRE,
                                              __ATOMIC_ACQUIRE)) {
        uint8_t held = catch_program_begin();
        fn();
        catch_program_end(held);
        if (__atomic_exchange_n(word, ONCE_DONE, __ATOMIC_RELEASE) & ONCE_WAITERS) {
            int saved = errno;
            futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
            errno = saved;
        }
        return 0;
    }
    /* Another thread runs fn. A green thread lets the others of its OS thread
     * run meanwhile (the runner may be one of them); a kernel thread sleeps. */
    struct sched *s = sched_for_program();
    int saved = errno;
    unsigned rounds = 0;
    while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != ONCE_DONE) {
        if (s && ++rounds % 64) {
            sched_yield_current(sched_self());
            continue;
        }
        /* A kernel thread, or a green one that yielded for long: the runner is
         * on another OS thread, so sleep briefly (a green one) or until woken. */
        if (!(v & ONCE_WAITERS) &&
            !__atomic_compare_exchange_n(word, &v, v | ONCE_WAITERS, false, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
            continue;
        struct timespec ms = { 0, 1000000 };
        futex(word, FUTEX_WAIT_PRIVATE, v | ONCE_WAITERS, s ? &ms : NULL);
    }
    errno = saved;
    return 0;
}
