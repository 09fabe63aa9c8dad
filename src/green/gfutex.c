/* Green futexes: see gfutex.h. */
#include "gfutex.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "gsignal.h"
#include "gthread.h"
#include "lock.h"
#include "sched.h"

/* The backstop's first re-read of the word, and its longest interval. */
#define BACKSTOP_FIRST_NS NS_PER_MS
#define BACKSTOP_MAX_NS (64 * NS_PER_MS)

enum { FW_WAITING, FW_CLAIMED, FW_DONE };   /* fwaiter.state */

struct fwaiter {
    struct fwaiter *next, *prev;    /* on its bucket's list */
    uint32_t *addr;                 /* the word waited on (a requeue moves it), under the lock */
    uint32_t check;                 /* the value the backstop compares *addr with */
    uint32_t bitset;
    bool private_;                  /* FUTEX_PRIVATE_FLAG: private and shared keys differ */
    uint32_t state;                 /* atomic: FW_* */
    struct sched *s;
    struct sched_xwake xw;          /* a wake posted from another OS thread */
};

struct fbucket {
    cr_lock_t lock;
    struct fwaiter *head, *tail;
};

#define FBUCKETS 256
static struct fbucket buckets[FBUCKETS];

/* Green waiters on all lists (atomic): a wake with none passes straight to
 * the kernel. */
static unsigned long queued;

/* This OS thread holds a bucket lock: a program's signal handler that wakes
 * from inside must not take it again (it wakes the kernel's waiters only;
 * green ones see the word change at their backstop). */
static __thread int in_bucket __attribute__((tls_model("initial-exec")));

static struct fbucket *bucket_of(const uint32_t *addr)
{
    uint64_t h = ((uintptr_t)addr >> 2) * 0x9e3779b97f4a7c15ull;
    return &buckets[h >> 56];
}

static void bucket_lock(struct fbucket *b)
{
    in_bucket++;
    cr_lock(&b->lock);
}

static void bucket_unlock(struct fbucket *b)
{
    cr_unlock(&b->lock);
    in_bucket--;
}

/* Two buckets, in address order (once if they are one). */
static void buckets_lock(struct fbucket *a, struct fbucket *b)
{
    if (a == b) {
        bucket_lock(a);
        return;
    }
    bucket_lock(a < b ? a : b);
    bucket_lock(a < b ? b : a);
}

static void buckets_unlock(struct fbucket *a, struct fbucket *b)
{
    bucket_unlock(a);
    if (a != b)
        bucket_unlock(b);
}

static void fw_push(struct fbucket *b, struct fwaiter *w)
{
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
}

static void fw_remove(struct fbucket *b, struct fwaiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
    w->next = w->prev = NULL;
}

/* The bucket w is on, locked (a requeue may move w meanwhile: it holds
 * both buckets' locks while it does). */
static struct fbucket *fw_bucket_lock(struct fwaiter *w)
{
    for (;;) {
        struct fbucket *b = bucket_of(__atomic_load_n(&w->addr, __ATOMIC_ACQUIRE));
        bucket_lock(b);
        if (bucket_of(w->addr) == b)
            return b;
        bucket_unlock(b);
    }
}

/* Take w off its list for a wake (under the lock); fw_wake it after. */
static void fw_claim(struct fbucket *b, struct fwaiter *w, struct fwaiter **list)
{
    fw_remove(b, w);
    __atomic_sub_fetch(&queued, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&w->state, FW_CLAIMED, __ATOMIC_RELAXED);
    w->next = *list;
    *list = w;
}

/* Wake the claimed waiters of list (locks released). Each may be gone
 * as soon as it is woken. */
static void fw_wake_list(struct fwaiter *list)
{
    while (list) {
        struct fwaiter *w = list;
        list = w->next;
        struct sched *mine = sched_tls;
        if (mine == w->s && mine->current != mine->loop_co) {
            __atomic_store_n(&w->state, FW_DONE, __ATOMIC_RELEASE);
            sched_wake(w->xw.co, WAKE_SIGNALED);
        } else {
            sched_xwake_post(&w->xw);   /* another OS thread, or a signal handler */
        }
    }
}

static bool fw_done(struct fwaiter *w)
{
    return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE) == FW_DONE ||
           __atomic_load_n(&w->xw.delivered, __ATOMIC_ACQUIRE);
}

/* Take w off its list after its park ended without a wake: true; false if
 * a waker claimed it first (then it waits for that wake: it was woken). */
static bool fw_withdraw(struct fwaiter *w)
{
    struct fbucket *b = fw_bucket_lock(w);
    bool waiting = __atomic_load_n(&w->state, __ATOMIC_RELAXED) == FW_WAITING;
    if (waiting) {
        fw_remove(b, w);
        __atomic_sub_fetch(&queued, 1, __ATOMIC_RELAXED);
    }
    bucket_unlock(b);
    if (!waiting)
        while (!fw_done(w))
            sched_park(w->s, DEADLINE_NONE, PARK_PLAIN);
    return waiting;
}

/* The backstop's look: does w's word differ from the value it waits on? */
static bool word_changed(struct fwaiter *w)
{
    struct fbucket *b = fw_bucket_lock(w);
    bool changed = __atomic_load_n(w->addr, __ATOMIC_ACQUIRE) != w->check;
    bucket_unlock(b);
    return changed;
}

#define WAIT_RESTART (-1)

/* One FUTEX_WAIT: 0 (woken, or the backstop saw the word change), EAGAIN,
 * ETIMEDOUT, EINTR, or WAIT_RESTART (an SA_RESTART handler ran: the kernel
 * makes the call again, comparing the word again). */
static int wait_once(struct sched *s, uint32_t *uaddr, uint32_t val, uint32_t bitset, bool priv,
                     uint64_t deadline, enum park_mode mode)
{
    struct fwaiter w = { .addr = uaddr, .check = val, .bitset = bitset, .private_ = priv,
                         .s = s, .state = FW_WAITING };
    w.xw.co = s->current;
    struct fbucket *b = bucket_of(uaddr);
    bucket_lock(b);
    /* Counted before the word is read (both full barriers): a waker that
     * stored the word and then sees no waiter ran before this read, which
     * then sees its store. */
    __atomic_add_fetch(&queued, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(uaddr, __ATOMIC_SEQ_CST) != val) {
        __atomic_sub_fetch(&queued, 1, __ATOMIC_RELAXED);
        bucket_unlock(b);
        return EAGAIN;
    }
    fw_push(b, &w);
    bucket_unlock(b);

    int64_t step = BACKSTOP_FIRST_NS;
    struct gsignal_mark mark = gsignal_mark(s->current);
    for (;;) {
        uint64_t tick = deadline_after(step);
        bool backstop = tick < deadline;
        sched_wait_on(s, WAIT_OTHER, uaddr, -1);
        int why = sched_park(s, backstop ? tick : deadline, mode);
        if (fw_done(&w))
            return 0;
        if (why == WAKE_SIGNALED)
            continue;                   /* not a wake of this wait */
        if (why == WAKE_TIMEOUT && backstop) {
            if (word_changed(&w))
                why = WAKE_SIGNALED;    /* a wake corun did not see */
            else if (gsignal_interrupted_since(s->current, mark, mode))
                why = WAKE_INTERRUPTED; /* a handler ran as the backstop woke it */
            else {
                step = step * 2 > BACKSTOP_MAX_NS ? BACKSTOP_MAX_NS : step * 2;
                continue;
            }
        }
        if (!fw_withdraw(&w))
            return 0;
        switch (why) {
        case WAKE_SIGNALED: return 0;
        case WAKE_TIMEOUT: return ETIMEDOUT;
        case WAKE_RESTART: return WAIT_RESTART;
        default: return EINTR;
        }
    }
}

/* FUTEX_WAIT(_BITSET) of a green thread. A futex call is no cancellation
 * point (glibc's syscall() is none): cancellation waits until it returns. */
static int fw_wait(struct sched *s, uint32_t *uaddr, uint32_t val, uint32_t bitset, bool priv,
                   uint64_t deadline, bool timed)
{
    bool was_disabled;
    gthread_setcancelstate(true, &was_disabled);
    /* Linux restarts an untimed wait after an SA_RESTART handler; a timed
     * one fails with EINTR after any handler (ERESTART_RESTARTBLOCK). */
    enum park_mode mode = timed ? PARK_INTR_ALWAYS : PARK_INTR_RESTART;
    int err;
    while ((err = wait_once(s, uaddr, val, bitset, priv, deadline, mode)) == WAIT_RESTART)
        ;
    gthread_setcancelstate(was_disabled, NULL);
    return err;
}

/* Claim up to nr green waiters of uaddr matching bitset (under b's lock). */
static int claim(struct fbucket *b, uint32_t *uaddr, uint32_t bitset, bool priv, int nr,
                 struct fwaiter **list)
{
    int n = 0;
    for (struct fwaiter *w = b->head, *next; w && n < nr; w = next) {
        next = w->next;
        if (w->addr == uaddr && w->private_ == priv && (w->bitset & bitset)) {
            fw_claim(b, w, list);
            n++;
        }
    }
    return n;
}

/* Are there green waiters at all? A full barrier first: the caller's store
 * of the word must be visible before the count is read (the kernel's
 * futex_wake does the same). A wake from a signal handler that interrupted
 * a bucket's holder on this thread sees none. */
static bool green_waiters(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&queued, __ATOMIC_RELAXED) && !in_bucket;
}

/* Wake up to nr green waiters of uaddr; returns how many. */
static int wake_green(uint32_t *uaddr, uint32_t bitset, bool priv, int nr)
{
    if (!green_waiters())
        return 0;
    struct fbucket *b = bucket_of(uaddr);
    struct fwaiter *list = NULL;
    bucket_lock(b);
    int n = claim(b, uaddr, bitset, priv, nr, &list);
    bucket_unlock(b);
    fw_wake_list(list);
    return n;
}

/* The kernel's futex, in its own convention (-errno), errno untouched. */
static long kernel_futex(uint32_t *uaddr, int op, uint32_t val, const void *t, uint32_t *uaddr2,
                         uint32_t val3)
{
    int saved = errno;
    long r = syscall(SYS_futex, uaddr, op, val, t, uaddr2, val3);
    if (r < 0)
        r = -(long)errno;
    errno = saved;
    return r;
}

/* FUTEX_REQUEUE / FUTEX_CMP_REQUEUE: wake up to nr_wake waiters of uaddr,
 * move up to nr_requeue of the others to uaddr2. Green waiters first (a
 * moved one's backstop then watches uaddr2 for a change from its value at
 * the move), then the kernel's with what is left of both counts. */
static bool requeue(uint32_t *uaddr, int op, int nr_wake, int nr_requeue, uint32_t *uaddr2,
                    bool cmp, uint32_t val3, bool priv, long *ret)
{
    if (nr_wake < 0 || nr_requeue < 0 || !green_waiters())
        return false;                   /* EINVAL, or nothing of corun's: the kernel's call */
    struct fbucket *b1 = bucket_of(uaddr), *b2 = bucket_of(uaddr2);
    struct fwaiter *list = NULL;
    buckets_lock(b1, b2);
    if (cmp && __atomic_load_n(uaddr, __ATOMIC_SEQ_CST) != val3) {
        buckets_unlock(b1, b2);
        return false;                   /* the kernel says EAGAIN */
    }
    int woken = claim(b1, uaddr, FUTEX_BITSET_MATCH_ANY, priv, nr_wake, &list), moved = 0;
    for (struct fwaiter *w = b1->head, *next; w && moved < nr_requeue; w = next) {
        next = w->next;
        if (w->addr != uaddr || w->private_ != priv)
            continue;
        fw_remove(b1, w);
        __atomic_store_n(&w->addr, uaddr2, __ATOMIC_RELEASE);
        w->check = __atomic_load_n(uaddr2, __ATOMIC_SEQ_CST);
        fw_push(b2, w);
        moved++;
    }
    buckets_unlock(b1, b2);
    fw_wake_list(list);
    if (!woken && !moved)
        return false;
    long k = kernel_futex(uaddr, op, (uint32_t)(nr_wake - woken),
                          (const void *)(long)(nr_requeue - moved), uaddr2, val3);
    *ret = woken + moved + (k > 0 ? k : 0);
    return true;
}

/* A timeout argument as a monotonic deadline; false if the kernel would
 * refuse it (EINVAL). FUTEX_WAIT's is relative, FUTEX_WAIT_BITSET's
 * absolute on CLOCK_MONOTONIC or (FUTEX_CLOCK_REALTIME) CLOCK_REALTIME; a
 * later change of the wall clock does not move this deadline. */
static bool wait_deadline(const struct timespec *ts, bool absolute, bool realtime,
                          uint64_t *deadline)
{
    *deadline = DEADLINE_NONE;
    if (!ts)
        return true;
    if (!ts_valid(ts))
        return false;
    if (!absolute) {
        *deadline = deadline_after((int64_t)ts_to_ns(ts));
        return true;
    }
    if (!realtime) {
        *deadline = ts_to_ns(ts);
        return true;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t left = (int64_t)ts_to_ns(ts) - (int64_t)ts_to_ns(&now);
    *deadline = deadline_after(left < 0 ? 0 : left);
    return true;
}

bool gfutex_op(struct sched *s, uint32_t *uaddr, int op, uint32_t val, const void *timeout_or_val2,
               uint32_t *uaddr2, uint32_t val3, long *ret)
{
    int cmd = op & FUTEX_CMD_MASK;
    bool priv = op & FUTEX_PRIVATE_FLAG, realtime = op & FUTEX_CLOCK_REALTIME;
    if ((uintptr_t)uaddr & 3)
        return false;                   /* EINVAL from the kernel */
    switch (cmd) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET: {
        uint32_t bitset = cmd == FUTEX_WAIT ? FUTEX_BITSET_MATCH_ANY : val3;
        uint64_t deadline;
        if (!s || !bitset ||
            !wait_deadline(timeout_or_val2, cmd == FUTEX_WAIT_BITSET, realtime, &deadline))
            return false;
        *ret = -(long)fw_wait(s, uaddr, val, bitset, priv, deadline, timeout_or_val2 != NULL);
        return true;
    }
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET: {
        uint32_t bitset = cmd == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : val3;
        if (!bitset || realtime)
            return false;               /* EINVAL, ENOSYS */
        /* Linux wakes one waiter for a count of 0 (or less). */
        int nr = (int)val > 0 ? (int)val : 1;
        int green = wake_green(uaddr, bitset, priv, nr);
        if (!green)
            return false;               /* the real call is the whole of it */
        /* The kernel's waiters get the whole count too, even when green
         * waiters took it: one of them may be corun's own code on the OS
         * thread of the green waiter just woken (an allocation in its park
         * path waiting for the very malloc lock the green thread waits
         * for): woken only through the green thread, it would wait for
         * good, and the green thread with it. A wait may end spuriously
         * (every futex user allows it); the count returned stays within nr. */
        long k = kernel_futex(uaddr, op, (uint32_t)nr, NULL, NULL, val3);
        long woken = green + (k > 0 ? k : 0);
        *ret = woken < nr ? woken : nr;
        return true;
    }
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
        if (realtime)
            return false;
        return requeue(uaddr, op, (int)val, (int)(long)timeout_or_val2, uaddr2,
                       cmd == FUTEX_CMP_REQUEUE, val3, priv, ret);
    case FUTEX_WAKE_OP: {
        /* The kernel does the operation on *uaddr2 and decides whether
         * uaddr2's waiters are woken: green waiters of uaddr2 get a wake-up
         * either way (FUTEX_WAIT allows it), not counted. */
        if (realtime || !green_waiters())
            return false;
        int nr = (int)val > 0 ? (int)val : 1;
        int green = wake_green(uaddr, FUTEX_BITSET_MATCH_ANY, priv, nr);
        long k = kernel_futex(uaddr, op, (uint32_t)(nr - green), timeout_or_val2, uaddr2, val3);
        if (k < 0 && !green) {
            *ret = k;
            return true;
        }
        wake_green(uaddr2, FUTEX_BITSET_MATCH_ANY, priv, (int)(long)timeout_or_val2);
        *ret = green + (k > 0 ? k : 0);
        return true;
    }
    default:
        /* The PI family, WAIT_REQUEUE_PI and the rest are the kernel's:
         * their owner is a kernel tid, which the green threads of an OS
         * thread share, so a contended LOCK_PI blocks that OS thread. */
        return false;
    }
}

/* In a fork child only the forking thread lives on, and it was not waiting:
 * the lists (and any lock another thread held) start afresh. */
static void on_fork_child(struct sched *s)
{
    (void)s;
    memset(buckets, 0, sizeof buckets);
    __atomic_store_n(&queued, 0, __ATOMIC_RELAXED);
}

static const struct sched_observer observer = { .fork_child = on_fork_child };
SCHED_OBSERVER(observer);
