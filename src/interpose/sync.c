/*
 * Hooks: mutexes, condition variables, rwlocks, spinlocks, barriers and
 * POSIX semaphores, as corun's objects (src/green/gsync.h) living in the
 * program's own pthread/sem storage. In green mode they are corun's for
 * every caller that reaches these hooks, green or kernel thread (one made
 * behind corun's back with a dlsym'd pthread_create included): one object,
 * one representation. Left to glibc: native mode, calls from libuv or a
 * sanitizer runtime (their own objects), and process-shared objects, which
 * other processes use too (glibc's init marks them: the hooks look at that
 * mark); a green thread waiting on one of those blocks its OS thread, as
 * the real call does. Spinlocks have the same 0/1 word either way.
 *
 * The pthread_cond_* hooks serve both of glibc's ABIs (GLIBC_2.2.5 and
 * GLIBC_2.3.2): the objects are corun's, so the layout difference does not
 * matter; in native mode the current ABI is called.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "lock.h"

#include "gsync.h"
#include "real.h"
#include "sched.h"
#include "gate.h"

#define GREEN() gate_threads_green(__builtin_return_address(0))
#define SPIN_GREEN() gate_thread(__builtin_return_address(0))   /* it yields: green threads only */
/* Process-shared: initialised by glibc, which left its mark. */
#define PSHARED_MUTEX(m) ((M(m)->kind & GMUTEX_PSHARED_BIT) != 0)
#define PSHARED_COND(c) ((((const uint32_t *)(const void *)(c))[9] & 1) != 0)
#define PSHARED_RWLOCK(l) (RW(l)->shared != 0)
#define PSHARED_BARRIER(b) (B(b)->shared != 0)
#define MUTEX_OURS(m) (GREEN() && !PSHARED_MUTEX(m))
#define COND_OURS(c) (GREEN() && !PSHARED_COND(c))
#define RWLOCK_OURS(l) (GREEN() && !PSHARED_RWLOCK(l))
#define BARRIER_OURS(b) (GREEN() && !PSHARED_BARRIER(b))
#define M(m) ((struct gmutex *)(void *)(m))
#define C(c) ((struct gcond *)(void *)(c))
#define RW(l) ((struct grwlock *)(void *)(l))
#define SEM(s) ((struct gsem *)(void *)(s))
#define B(b) ((struct gbarrier *)(void *)(b))

REAL_DECL(int, pthread_mutex_init, (pthread_mutex_t *, const pthread_mutexattr_t *));
REAL_DECL(int, pthread_mutex_destroy, (pthread_mutex_t *));
REAL_DECL(int, pthread_mutex_lock, (pthread_mutex_t *));
REAL_DECL(int, pthread_mutex_trylock, (pthread_mutex_t *));
REAL_DECL(int, pthread_mutex_timedlock, (pthread_mutex_t *, const struct timespec *));
REAL_DECL(int, pthread_mutex_clocklock, (pthread_mutex_t *, clockid_t, const struct timespec *));
REAL_DECL(int, pthread_mutex_unlock, (pthread_mutex_t *));
REAL_DECL(int, pthread_cond_init, (pthread_cond_t *, const pthread_condattr_t *));
REAL_DECL(int, pthread_cond_destroy, (pthread_cond_t *));
REAL_DECL(int, pthread_cond_wait, (pthread_cond_t *, pthread_mutex_t *));
REAL_DECL(int, pthread_cond_timedwait, (pthread_cond_t *, pthread_mutex_t *, const struct timespec *));
REAL_DECL(int, pthread_cond_clockwait,
          (pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *));
REAL_DECL(int, pthread_cond_signal, (pthread_cond_t *));
REAL_DECL(int, pthread_cond_broadcast, (pthread_cond_t *));
REAL_DECL(int, pthread_rwlock_init, (pthread_rwlock_t *, const pthread_rwlockattr_t *));
REAL_DECL(int, pthread_rwlock_destroy, (pthread_rwlock_t *));
REAL_DECL(int, pthread_rwlock_rdlock, (pthread_rwlock_t *));
REAL_DECL(int, pthread_rwlock_tryrdlock, (pthread_rwlock_t *));
REAL_DECL(int, pthread_rwlock_timedrdlock, (pthread_rwlock_t *, const struct timespec *));
REAL_DECL(int, pthread_rwlock_clockrdlock, (pthread_rwlock_t *, clockid_t, const struct timespec *));
REAL_DECL(int, pthread_rwlock_wrlock, (pthread_rwlock_t *));
REAL_DECL(int, pthread_rwlock_trywrlock, (pthread_rwlock_t *));
REAL_DECL(int, pthread_rwlock_timedwrlock, (pthread_rwlock_t *, const struct timespec *));
REAL_DECL(int, pthread_rwlock_clockwrlock, (pthread_rwlock_t *, clockid_t, const struct timespec *));
REAL_DECL(int, pthread_rwlock_unlock, (pthread_rwlock_t *));
REAL_DECL(int, pthread_spin_init, (pthread_spinlock_t *, int));
REAL_DECL(int, pthread_spin_destroy, (pthread_spinlock_t *));
REAL_DECL(int, pthread_spin_lock, (pthread_spinlock_t *));
REAL_DECL(int, pthread_spin_trylock, (pthread_spinlock_t *));
REAL_DECL(int, pthread_spin_unlock, (pthread_spinlock_t *));
REAL_DECL(int, pthread_barrier_init, (pthread_barrier_t *, const pthread_barrierattr_t *, unsigned));
REAL_DECL(int, pthread_barrier_destroy, (pthread_barrier_t *));
REAL_DECL(int, pthread_barrier_wait, (pthread_barrier_t *));
REAL_DECL(int, sem_init, (sem_t *, int, unsigned));
REAL_DECL(int, sem_destroy, (sem_t *));
REAL_DECL(int, sem_wait, (sem_t *));
REAL_DECL(int, sem_trywait, (sem_t *));
REAL_DECL(int, sem_timedwait, (sem_t *, const struct timespec *));
REAL_DECL(int, sem_clockwait, (sem_t *, clockid_t, const struct timespec *));
REAL_DECL(int, sem_post, (sem_t *));
REAL_DECL(int, sem_getvalue, (sem_t *, int *));

/* ---- mutex -------------------------------------------------------------------*/

HOOK int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    CATCH_HOLD();
    int kind = PTHREAD_MUTEX_NORMAL, pshared = PTHREAD_PROCESS_PRIVATE;
    if (attr)
        pthread_mutexattr_getpshared(attr, &pshared);
    if (!GREEN() || pshared != PTHREAD_PROCESS_PRIVATE)
        return REAL(pthread_mutex_init)(m, attr);
    if (attr && pthread_mutexattr_gettype(attr, &kind) != 0)
        return EINVAL;
    gmutex_init(M(m), kind);
    return 0;
}

HOOK int pthread_mutex_destroy(pthread_mutex_t *m)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_destroy)(m);
    return gmutex_destroy(M(m));
}

HOOK int pthread_mutex_lock(pthread_mutex_t *m)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_lock)(m);
    return gmutex_lock(M(m), DEADLINE_NONE, false);
}

HOOK int pthread_mutex_trylock(pthread_mutex_t *m)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_trylock)(m);
    return gmutex_lock(M(m), DEADLINE_NONE, true);
}

HOOK int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_clocklock)(m, clock, abs);
    uint64_t deadline;
    int r = deadline_from_abstime(clock, abs, &deadline);
    if (r) {
        /* POSIX: the time is only checked when the mutex is not free. */
        r = gmutex_lock(M(m), DEADLINE_NONE, true);
        return r == EBUSY ? EINVAL : r;
    }
    return gmutex_lock(M(m), deadline, false);
}

HOOK int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_timedlock)(m, abs);
    return pthread_mutex_clocklock(m, CLOCK_REALTIME, abs);
}

HOOK int pthread_mutex_unlock(pthread_mutex_t *m)
{
    CATCH_HOLD();
    if (!MUTEX_OURS(m))
        return REAL(pthread_mutex_unlock)(m);
    return gmutex_unlock(M(m));
}

/* ---- condition variable --------------------------------------------------------*/

HOOK int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
    CATCH_HOLD();
    int pshared = PTHREAD_PROCESS_PRIVATE;
    if (attr)
        pthread_condattr_getpshared(attr, &pshared);
    if (!GREEN() || pshared != PTHREAD_PROCESS_PRIVATE)
        return REAL_V(pthread_cond_init, "GLIBC_2.3.2")(c, attr);
    clockid_t clock = CLOCK_REALTIME;
    if (attr && pthread_condattr_getclock(attr, &clock) != 0)
        return EINVAL;
    gcond_init(C(c), clock);
    return 0;
}

HOOK int pthread_cond_destroy(pthread_cond_t *c)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL_V(pthread_cond_destroy, "GLIBC_2.3.2")(c);
    return gcond_destroy(C(c));
}

HOOK int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL_V(pthread_cond_wait, "GLIBC_2.3.2")(c, m);
    return gcond_wait(C(c), M(m), DEADLINE_NONE);
}

HOOK int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock,
                                const struct timespec *abs)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL(pthread_cond_clockwait)(c, m, clock, abs);
    uint64_t deadline;
    int r = deadline_from_abstime(clock, abs, &deadline);
    return r ? r : gcond_wait(C(c), M(m), deadline);
}

HOOK int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL_V(pthread_cond_timedwait, "GLIBC_2.3.2")(c, m, abs);
    uint64_t deadline;
    int r = deadline_from_abstime(C(c)->clock, abs, &deadline);
    return r ? r : gcond_wait(C(c), M(m), deadline);
}

HOOK int pthread_cond_signal(pthread_cond_t *c)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL_V(pthread_cond_signal, "GLIBC_2.3.2")(c);
    gcond_signal(C(c));
    return 0;
}

HOOK int pthread_cond_broadcast(pthread_cond_t *c)
{
    CATCH_HOLD();
    if (!COND_OURS(c))
        return REAL_V(pthread_cond_broadcast, "GLIBC_2.3.2")(c);
    gcond_broadcast(C(c));
    return 0;
}

/* ---- rwlock ----------------------------------------------------------------------*/

HOOK int pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *attr)
{
    CATCH_HOLD();
    int pshared = PTHREAD_PROCESS_PRIVATE;
    if (attr)
        pthread_rwlockattr_getpshared(attr, &pshared);
    if (!GREEN() || pshared != PTHREAD_PROCESS_PRIVATE)
        return REAL(pthread_rwlock_init)(l, attr);
    grwlock_init(RW(l));
    return 0;
}

HOOK int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_destroy)(l);
    return grwlock_destroy(RW(l));
}

HOOK int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_rdlock)(l);
    return grwlock_rdlock(RW(l), DEADLINE_NONE, false);
}

HOOK int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_tryrdlock)(l);
    return grwlock_rdlock(RW(l), DEADLINE_NONE, true);
}

HOOK int pthread_rwlock_clockrdlock(pthread_rwlock_t *l, clockid_t clock, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_clockrdlock)(l, clock, abs);
    uint64_t deadline;
    int r = deadline_from_abstime(clock, abs, &deadline);
    return r ? r : grwlock_rdlock(RW(l), deadline, false);
}

HOOK int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_timedrdlock)(l, abs);
    return pthread_rwlock_clockrdlock(l, CLOCK_REALTIME, abs);
}

HOOK int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_wrlock)(l);
    return grwlock_wrlock(RW(l), DEADLINE_NONE, false);
}

HOOK int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_trywrlock)(l);
    return grwlock_wrlock(RW(l), DEADLINE_NONE, true);
}

HOOK int pthread_rwlock_clockwrlock(pthread_rwlock_t *l, clockid_t clock, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_clockwrlock)(l, clock, abs);
    uint64_t deadline;
    int r = deadline_from_abstime(clock, abs, &deadline);
    return r ? r : grwlock_wrlock(RW(l), deadline, false);
}

HOOK int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_timedwrlock)(l, abs);
    return pthread_rwlock_clockwrlock(l, CLOCK_REALTIME, abs);
}

HOOK int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    CATCH_HOLD();
    if (!RWLOCK_OURS(l))
        return REAL(pthread_rwlock_unlock)(l);
    return grwlock_unlock(RW(l));
}

/* ---- spinlock -----------------------------------------------------------------------*/

HOOK int pthread_spin_init(pthread_spinlock_t *l, int pshared)
{
    CATCH_HOLD();
    if (!SPIN_GREEN())
        return REAL(pthread_spin_init)(l, pshared);
    *l = 0;
    return 0;
}

HOOK int pthread_spin_destroy(pthread_spinlock_t *l)
{
    CATCH_HOLD();
    if (!SPIN_GREEN())
        return REAL(pthread_spin_destroy)(l);
    return 0;
}

HOOK int pthread_spin_lock(pthread_spinlock_t *l)
{
    CATCH_HOLD();
    if (!SPIN_GREEN())
        return REAL(pthread_spin_lock)(l);
    return gspin_lock((int *)l, false);
}

HOOK int pthread_spin_trylock(pthread_spinlock_t *l)
{
    CATCH_HOLD();
    if (!SPIN_GREEN())
        return REAL(pthread_spin_trylock)(l);
    return gspin_lock((int *)l, true);
}

HOOK int pthread_spin_unlock(pthread_spinlock_t *l)
{
    CATCH_HOLD();
    if (!SPIN_GREEN())
        return REAL(pthread_spin_unlock)(l);
    return gspin_unlock((int *)l);
}

/* ---- barrier -------------------------------------------------------------------------*/

HOOK int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *attr, unsigned n)
{
    CATCH_HOLD();
    int pshared = PTHREAD_PROCESS_PRIVATE;
    if (attr)
        pthread_barrierattr_getpshared(attr, &pshared);
    if (!GREEN() || pshared != PTHREAD_PROCESS_PRIVATE)
        return REAL(pthread_barrier_init)(b, attr, n);
    return gbarrier_init(B(b), n);
}

HOOK int pthread_barrier_destroy(pthread_barrier_t *b)
{
    CATCH_HOLD();
    if (!BARRIER_OURS(b))
        return REAL(pthread_barrier_destroy)(b);
    return gbarrier_destroy(B(b));
}

HOOK int pthread_barrier_wait(pthread_barrier_t *b)
{
    CATCH_HOLD();
    if (!BARRIER_OURS(b))
        return REAL(pthread_barrier_wait)(b);
    int r = gbarrier_wait(B(b));
    return r == GBARRIER_SERIAL ? PTHREAD_BARRIER_SERIAL_THREAD : r;
}

/* ---- POSIX semaphores: -1 and errno, unlike the pthread calls ---------------------------
 * Named semaphores (sem_open) and process-shared ones (sem_init with
 * pshared) may be used by other processes: those stay glibc's, and are
 * remembered here so every later call on them goes to glibc. */

REAL_DECL(sem_t *, sem_open, (const char *, int, ...));
REAL_DECL(int, sem_close, (sem_t *));

static cr_lock_t kernel_sems_lock = CR_LOCK_INIT;
static sem_t **kernel_sems;
static size_t nkernel_sems, capkernel_sems;

static void kernel_sem_add(sem_t *s)
{
    cr_lock(&kernel_sems_lock);
    if (nkernel_sems == capkernel_sems) {
        size_t cap = capkernel_sems ? capkernel_sems * 2 : 16;
        sem_t **n = realloc(kernel_sems, cap * sizeof *n);
        if (n) {
            kernel_sems = n;
            capkernel_sems = cap;
        }
    }
    if (nkernel_sems < capkernel_sems)
        kernel_sems[nkernel_sems++] = s;
    cr_unlock(&kernel_sems_lock);
}

/* Is s one of them? If `forget`, it is going away. */
static bool kernel_sem(sem_t *s, bool forget)
{
    if (__atomic_load_n(&nkernel_sems, __ATOMIC_RELAXED) == 0)
        return false;
    bool found = false;
    cr_lock(&kernel_sems_lock);
    for (size_t i = 0; i < nkernel_sems; i++) {
        if (kernel_sems[i] == s) {
            found = true;
            if (forget)
                kernel_sems[i] = kernel_sems[--nkernel_sems];
            break;
        }
    }
    cr_unlock(&kernel_sems_lock);
    return found;
}

#define SEM_GREEN(s) (GREEN() && !kernel_sem(s, false))

static int sem_result(int err)
{
    if (!err)
        return 0;
    errno = err;
    return -1;
}

HOOK sem_t *sem_open(const char *name, int oflag, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, oflag);
    mode_t mode = (oflag & O_CREAT) ? (mode_t)va_arg(ap, int) : 0;
    unsigned value = (oflag & O_CREAT) ? va_arg(ap, unsigned) : 0;
    va_end(ap);
    sem_t *s = REAL(sem_open)(name, oflag, mode, value);
    if (s != SEM_FAILED)
        kernel_sem_add(s);
    return s;
}

HOOK int sem_close(sem_t *s)
{
    CATCH_HOLD();
    kernel_sem(s, true);
    return REAL(sem_close)(s);
}

HOOK int sem_init(sem_t *s, int pshared, unsigned value)
{
    CATCH_HOLD();
    kernel_sem(s, true);                 /* the storage may be reused */
    if (!GREEN() || pshared) {
        int r = REAL(sem_init)(s, pshared, value);
        if (r == 0 && pshared && GREEN())
            kernel_sem_add(s);
        return r;
    }
    if (value > SEM_VALUE_MAX)
        return sem_result(EINVAL);
    gsem_init(SEM(s), value);
    return 0;
}

HOOK int sem_destroy(sem_t *s)
{
    CATCH_HOLD();
    if (!GREEN() || kernel_sem(s, true))
        return REAL(sem_destroy)(s);
    return sem_result(gsem_destroy(SEM(s)));
}

HOOK int sem_wait(sem_t *s)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_wait)(s);
    return sem_result(gsem_wait(SEM(s), DEADLINE_NONE, false));
}

HOOK int sem_trywait(sem_t *s)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_trywait)(s);
    return sem_result(gsem_wait(SEM(s), DEADLINE_NONE, true));
}

HOOK int sem_clockwait(sem_t *s, clockid_t clock, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_clockwait)(s, clock, abs);
    if (gsem_value(SEM(s)) > 0)        /* the time is only checked when it must wait */
        return sem_result(gsem_wait(SEM(s), DEADLINE_NONE, true));
    uint64_t deadline;
    int r = deadline_from_abstime(clock, abs, &deadline);
    return sem_result(r ? r : gsem_wait(SEM(s), deadline, false));
}

HOOK int sem_timedwait(sem_t *s, const struct timespec *abs)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_timedwait)(s, abs);
    return sem_clockwait(s, CLOCK_REALTIME, abs);
}

HOOK int sem_post(sem_t *s)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_post)(s);
    return sem_result(gsem_post(SEM(s)));
}

HOOK int sem_getvalue(sem_t *s, int *value)
{
    CATCH_HOLD();
    if (!SEM_GREEN(s))
        return REAL(sem_getvalue)(s, value);
    *value = (int)gsem_value(SEM(s));
    return 0;
}
