/*
 * Green synchronisation objects. All waiting is FIFO and ownership is handed
 * straight to the first waiter (no barging), which keeps handoff cheap (one
 * switch) and fair. Waits are parks on the object's own queue, so a timeout
 * or cancellation takes the waiter off the queue before anyone can hand it
 * the object.
 */
#include "gsync.h"

#include <errno.h>
#include <limits.h>
#include <semaphore.h>
#include <stddef.h>

#include "diag.h"
#include "gthread.h"
#include "sched.h"

_Static_assert(sizeof(struct gmutex) <= 40, "gmutex must fit pthread_mutex_t");
_Static_assert(offsetof(struct gmutex, kind) == 16, "kind where glibc's initialisers put it");
_Static_assert(sizeof(struct gcond) <= 48, "gcond must fit pthread_cond_t");
_Static_assert(sizeof(struct grwlock) <= 56, "grwlock must fit pthread_rwlock_t");
_Static_assert(sizeof(struct gsem) <= 32, "gsem must fit sem_t");
_Static_assert(sizeof(struct gbarrier) <= 32, "gbarrier must fit pthread_barrier_t");

int deadline_from_abstime(clockid_t clock, const struct timespec *abs, uint64_t *deadline)
{
    if (!abs || abs->tv_nsec < 0 || abs->tv_nsec >= 1000000000)
        return EINVAL;
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)
        return EINVAL;
    struct timespec now;
    clock_gettime(clock, &now);
    int64_t left = (int64_t)(abs->tv_sec - now.tv_sec) * 1000000000 + (abs->tv_nsec - now.tv_nsec);
    *deadline = left <= 0 ? clock_now_ns() : deadline_after(left);
    return 0;
}

/* Who is calling: the current green thread, or, inside a signal handler
 * of the program (the hooks are off there), the thread it interrupted. */
static struct corun *caller(struct sched *s)
{
    return s->current != s->loop_co ? s->current : s->handler_co;
}

/* A wait is about to park. A signal handler cannot: it runs on top of
 * whatever it interrupted (maybe corun's own switch) and the green thread
 * that would let go of the object cannot run until it returns. Natively
 * the handler would wait for another thread or deadlock on its own: say so
 * instead of corrupting the scheduler. */
static void park_allowed(struct sched *s, const char *what, const void *obj)
{
    if (__builtin_expect(s->current == s->loop_co, 0))
        diag_fatal("a signal handler waits for %s %p, which green thread %llu holds or is "
                   "waited for; a green thread cannot be switched away from inside a handler",
                   what, obj, (unsigned long long)s->handler_co->id);
}

/* A deadline already reached means "try once": no park. */
static bool expired(uint64_t deadline)
{
    return deadline != DEADLINE_NONE && deadline <= clock_now_ns();
}

/* ---- mutex -----------------------------------------------------------------*/

void gmutex_init(struct gmutex *m, int kind)
{
    *m = (struct gmutex){ .kind = kind };
}

int gmutex_lock(struct gmutex *m, uint64_t deadline, bool try)
{
    struct sched *s = sched_self();
    struct corun *cur = caller(s);
    if (!m->owner) {
        m->owner = cur;
        m->count = 1;
        return 0;
    }
    if (m->owner == cur) {
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
    if (try)
        return EBUSY;
    if (expired(deadline))
        return ETIMEDOUT;
    park_allowed(s, "mutex", m);
    coq_push(&m->waiters, cur);
    sched_wait_on(s, WAIT_MUTEX, m, -1);
    if (sched_park(s, deadline) == WAKE_TIMEOUT)
        return ETIMEDOUT;
    return 0;                     /* handed over by the unlocker: owner == cur */
}

int gmutex_unlock(struct gmutex *m)
{
    struct corun *cur = caller(sched_self());
    if (m->owner != cur) {
        if ((m->kind & 3) != GMUTEX_NORMAL || !m->owner)
            return (m->kind & 3) != GMUTEX_NORMAL ? EPERM : 0;
    }
    if (--m->count > 0 && (m->kind & 3) == GMUTEX_RECURSIVE)
        return 0;
    struct corun *next = m->waiters.head;
    if (next) {
        m->owner = next;
        m->count = 1;
        sched_wake(next, WAKE_SIGNALED);
    } else {
        m->owner = NULL;
        m->count = 0;
    }
    return 0;
}

int gmutex_destroy(struct gmutex *m)
{
    return m->owner ? EBUSY : 0;
}

/* ---- condition variable ------------------------------------------------------*/

void gcond_init(struct gcond *c, clockid_t clock)
{
    *c = (struct gcond){ .clock = (int32_t)clock };
}

int gcond_wait(struct gcond *c, struct gmutex *m, uint64_t deadline)
{
    struct sched *s = sched_self();
    struct corun *cur = caller(s);
    if (m->owner != cur && (m->kind & 3) != GMUTEX_NORMAL)
        return EPERM;
    park_allowed(s, "condition variable", c);
    uint32_t depth = m->count;
    m->count = 1;                 /* release it whole, get it back whole */
    gmutex_unlock(m);
    int why;
    coq_push(&c->waiters, cur);
    sched_wait_on(s, WAIT_COND, c, -1);
    why = sched_park_cancellable(s, deadline);
    gmutex_lock(m, DEADLINE_NONE, false);
    m->count = depth;
    gthread_act_on_cancel(why);   /* a canceled waiter leaves holding the mutex, per POSIX */
    return why == WAKE_TIMEOUT ? ETIMEDOUT : 0;
}

void gcond_signal(struct gcond *c)
{
    if (c->waiters.head)
        sched_wake(c->waiters.head, WAKE_SIGNALED);
}

void gcond_broadcast(struct gcond *c)
{
    while (c->waiters.head)
        sched_wake(c->waiters.head, WAKE_SIGNALED);
}

int gcond_destroy(struct gcond *c)
{
    return c->waiters.head ? EBUSY : 0;
}

/* ---- rwlock ------------------------------------------------------------------*/

#define WANTS_WRITE 1

void grwlock_init(struct grwlock *l)
{
    *l = (struct grwlock){ 0 };
}

/* The lock became free: the first waiter gets it, and if that is a reader,
 * so do all readers queued behind it up to the next writer. */
static void grwlock_grant(struct grwlock *l)
{
    struct corun *co = l->waiters.head;
    if (!co || l->writer || l->readers)
        return;
    if (co->wait_events == WANTS_WRITE) {
        l->writer = co;
        sched_wake(co, WAKE_SIGNALED);
        return;
    }
    while ((co = l->waiters.head) && co->wait_events != WANTS_WRITE) {
        l->readers++;
        sched_wake(co, WAKE_SIGNALED);
    }
}

static int grwlock_wait(struct sched *s, struct grwlock *l, short mode, uint64_t deadline)
{
    struct corun *cur = s->current;
    if (expired(deadline))
        return ETIMEDOUT;
    park_allowed(s, "rwlock", l);
    cur->wait_events = mode;
    coq_push(&l->waiters, cur);
    sched_wait_on(s, WAIT_RWLOCK, l, -1);
    return sched_park(s, deadline) == WAKE_TIMEOUT ? ETIMEDOUT : 0;
}

int grwlock_rdlock(struct grwlock *l, uint64_t deadline, bool try)
{
    struct sched *s = sched_self();
    if (l->writer == caller(s))
        return try ? EBUSY : EDEADLK;
    /* Readers go first while no writer holds it (glibc's default policy). */
    if (!l->writer) {
        if (l->readers == UINT32_MAX)
            return EAGAIN;
        l->readers++;
        return 0;
    }
    if (try)
        return EBUSY;
    return grwlock_wait(s, l, 0, deadline);
}

int grwlock_wrlock(struct grwlock *l, uint64_t deadline, bool try)
{
    struct sched *s = sched_self();
    struct corun *cur = caller(s);
    if (l->writer == cur)
        return try ? EBUSY : EDEADLK;
    if (!l->writer && !l->readers) {
        l->writer = cur;
        return 0;
    }
    if (try)
        return EBUSY;
    return grwlock_wait(s, l, WANTS_WRITE, deadline);
}

int grwlock_unlock(struct grwlock *l)
{
    struct corun *cur = caller(sched_self());
    if (l->writer == cur)
        l->writer = NULL;
    else if (l->readers)
        l->readers--;
    else
        return EPERM;
    grwlock_grant(l);
    return 0;
}

int grwlock_destroy(struct grwlock *l)
{
    return l->writer || l->readers ? EBUSY : 0;
}

/* ---- semaphore -------------------------------------------------------------*/

void gsem_init(struct gsem *s, unsigned value)
{
    *s = (struct gsem){ .value = value };
}

int gsem_wait(struct gsem *sem, uint64_t deadline, bool try)
{
    for (;;) {
        if (sem->value > 0) {
            sem->value--;
            return 0;
        }
        if (try)
            return EAGAIN;
        struct sched *s = sched_self();
        if (expired(deadline))
            return ETIMEDOUT;
        park_allowed(s, "semaphore", sem);
        coq_push(&sem->waiters, s->current);
        /* Linux restarts a semaphore's futex wait after an SA_RESTART handler
         * (signal(7) says otherwise; the kernel's -ERESTARTSYS wins). */
        sched_wait_on(s, WAIT_SEM, sem, -1);
        int why = sched_park_interruptible(s, deadline, INTR_RESTART);
        gthread_act_on_cancel(why);
        if (why == WAKE_RESTART)
            continue;          /* a handler ran; a post meanwhile left its unit in value */
        if (why == WAKE_INTERRUPTED)
            return EINTR;
        return why == WAKE_TIMEOUT ? ETIMEDOUT : 0;   /* woken: the poster handed us its unit */
    }
}

int gsem_post(struct gsem *sem)
{
    if (sem->waiters.head) {
        sched_wake(sem->waiters.head, WAKE_SIGNALED);
        return 0;
    }
    if (sem->value >= SEM_VALUE_MAX)
        return EOVERFLOW;
    sem->value++;
    return 0;
}

unsigned gsem_value(const struct gsem *sem)
{
    return sem->value;
}

int gsem_destroy(struct gsem *sem)
{
    return sem->waiters.head ? EBUSY : 0;
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
    if (++b->arrived == b->count) {
        b->arrived = 0;
        while (b->waiters.head)
            sched_wake(b->waiters.head, WAKE_SIGNALED);
        return GBARRIER_SERIAL;
    }
    struct sched *s = sched_self();
    park_allowed(s, "barrier", b);
    coq_push(&b->waiters, s->current);
    sched_wait_on(s, WAIT_BARRIER, b, -1);
    sched_park(s, DEADLINE_NONE);
    return 0;
}

int gbarrier_destroy(struct gbarrier *b)
{
    return b->waiters.head ? EBUSY : 0;
}

/* ---- spinlock and once -------------------------------------------------------*/

int gspin_lock(int *lock, bool try)
{
    /* Spinning on one OS thread can never see the holder let go: yield. */
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        if (try)
            return EBUSY;
        park_allowed(sched_self(), "spinlock", lock);
        corun_yield();
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

int gonce(int *once, void (*fn)(void))
{
    int v = __atomic_load_n(once, __ATOMIC_ACQUIRE);
    if (v == ONCE_DONE)
        return 0;
    if (v == 0) {
        __atomic_store_n(once, ONCE_RUNNING, __ATOMIC_RELAXED);
        fn();
        __atomic_store_n(once, ONCE_DONE, __ATOMIC_RELEASE);
        return 0;
    }
    while (__atomic_load_n(once, __ATOMIC_ACQUIRE) != ONCE_DONE) {
        park_allowed(sched_self(), "pthread_once", once);
        corun_yield();            /* another green thread is running fn */
    }
    return 0;
}
