/*
 * Synchronisation objects: mutexes, condition variables, rwlocks,
 * semaphores, barriers, spinlocks and once-controls, one representation for
 * every caller: green threads (which park on their scheduler), and kernel
 * threads without one (libuv's pool running program code, a thread made by
 * a pthread_create found with dlsym(RTLD_NEXT), a raw clone), which wait on
 * a futex of their own. glibc records owners by TID, which all green threads
 * of an OS thread share, so the objects are corun's, in the storage of the
 * pthread type they stand for: each fits inside it, agrees with its static
 * initialisers (an all-zero object is a valid, unlocked one; a mutex's kind
 * is where glibc's initialisers put it), and leaves zero the field where
 * glibc marks a process-shared object, which the hooks leave to glibc.
 *
 * Each object has one atomic word: fast paths are one CAS on it; the rest is
 * done under its QLOCK bit (a few instructions, never held across a wait),
 * which guards a FIFO queue of waiters (struct gwaiter, on each waiter's
 * stack, green and kernel alike). Waiting ends by handoff: the waker takes
 * the waiter off the queue, gives it what it waited for (the mutex, a
 * semaphore unit, a signal), then wakes it: a FUTEX_WAKE for a kernel
 * thread, sched_wake on the waker's own scheduler, or a wake posted to the
 * waiter's scheduler from any other thread (sched_xwake_post). A waiter that
 * times out or is canceled takes itself off the queue under QLOCK, unless it
 * was handed the object first: then it has it, and waits for the wake.
 *
 * Functions return 0 or an errno value. Deadlines are CLOCK_MONOTONIC ns
 * (DEADLINE_NONE: no limit); `try` means do not wait at all.
 */
#ifndef CR_GSYNC_H
#define CR_GSYNC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "sched.h"

struct gwaiter;

struct gwq {                    /* FIFO of waiters, under the object's QLOCK */
    struct gwaiter *head, *tail;
};

enum gmutex_kind { GMUTEX_NORMAL = 0, GMUTEX_RECURSIVE = 1, GMUTEX_ERRORCHECK = 2 };

/* The kind bit glibc sets in a process-shared mutex (left to glibc). */
#define GMUTEX_PSHARED_BIT 128

struct gmutex {                 /* 40 bytes, as pthread_mutex_t */
    uint32_t state;             /* 0: atomic GS_LOCKED | GS_WAITERS | GS_QLOCK */
    uint32_t spare0;
    void *owner;                /* 8: atomic; a struct corun, or a kernel thread's tagged token */
    int32_t kind;               /* 16: where glibc's initialisers put the type */
    uint32_t count;             /* 20: recursion depth */
    struct gwq waiters;         /* 24 */
};

struct gcond {                  /* 48 bytes, as pthread_cond_t */
    uint32_t state;             /* 0: atomic GS_WAITERS | GS_QLOCK */
    int32_t clock;              /* CLOCK_REALTIME (0) unless set by init */
    struct gwq waiters;         /* 8 */
    uint32_t spare[4];          /* 24; [3] (36) is glibc's __wrefs: bit 0 = process-shared */
    uint64_t spare1;
};

struct grwlock {                /* 56 bytes, as pthread_rwlock_t */
    uint32_t state;             /* 0: atomic GS_*, GRW_WRITER, readers * GRW_READER */
    uint32_t spare0;
    struct gwq waiters;         /* 8 */
    uint32_t spare1;
    uint32_t shared;            /* 28: glibc's __shared; nonzero only in glibc's objects */
    void *writer;               /* 32: atomic; who holds it for writing */
    uint64_t spare2[2];
};

struct gsem {                   /* 32 bytes, as sem_t */
    uint64_t state;             /* 0: atomic GS_WAITERS | GS_QLOCK, value * GSEM_UNIT */
    struct gwq waiters;         /* 8 */
    uint64_t spare;
};

struct gbarrier {               /* 32 bytes, as pthread_barrier_t */
    uint32_t state;             /* 0: atomic GS_QLOCK */
    uint32_t count;
    uint32_t arrived;
    uint32_t shared;            /* 12: glibc's `shared`; nonzero only in glibc's objects */
    struct gwq waiters;         /* 16 */
};

/* The green thread holding m, or NULL (free, or held by a kernel thread). */
const struct corun *gmutex_green_owner(const struct gmutex *m);

/* Absolute time on `clock` -> monotonic deadline. EINVAL for a bad
 * timespec or clock. */
int deadline_from_abstime(clockid_t clock, const struct timespec *abs, uint64_t *deadline);

void gmutex_init(struct gmutex *m, int kind);
int gmutex_lock(struct gmutex *m, uint64_t deadline, bool try);
int gmutex_unlock(struct gmutex *m);
int gmutex_destroy(struct gmutex *m);

void gcond_init(struct gcond *c, clockid_t clock);
/* Releases m, waits (a cancellation point), re-acquires m. */
int gcond_wait(struct gcond *c, struct gmutex *m, uint64_t deadline);
void gcond_signal(struct gcond *c);
void gcond_broadcast(struct gcond *c);
int gcond_destroy(struct gcond *c);

void grwlock_init(struct grwlock *l);
int grwlock_rdlock(struct grwlock *l, uint64_t deadline, bool try);
int grwlock_wrlock(struct grwlock *l, uint64_t deadline, bool try);
int grwlock_unlock(struct grwlock *l);
int grwlock_destroy(struct grwlock *l);

void gsem_init(struct gsem *s, unsigned value);
int gsem_wait(struct gsem *s, uint64_t deadline, bool try);   /* a cancellation point */
int gsem_post(struct gsem *s);                                  /* EOVERFLOW at SEM_VALUE_MAX */
unsigned gsem_value(const struct gsem *s);
int gsem_destroy(struct gsem *s);

int gbarrier_init(struct gbarrier *b, unsigned count);
/* Returns 0, or GBARRIER_SERIAL for exactly one of the threads released. */
#define GBARRIER_SERIAL (-1)
int gbarrier_wait(struct gbarrier *b);
int gbarrier_destroy(struct gbarrier *b);

int gspin_lock(int *lock, bool try);
int gspin_unlock(int *lock);

/* pthread_once: run fn exactly once; others wait for it to finish. */
int gonce(int *once, void (*fn)(void));

/* Whether the objects' fast paths go without the lock prefix (they do while
 * one OS thread has used them): for CORUN_STATS. */
const char *gsync_solo_state(void);

#endif
