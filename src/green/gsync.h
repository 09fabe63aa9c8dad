/*
 * Green synchronisation objects: mutexes, condition variables, rwlocks,
 * semaphores, barriers, spinlocks and once-controls whose owners and waiters
 * are green threads, not kernel threads (glibc records owners by TID, which
 * all green threads of an OS thread share). Each fits inside, and is laid
 * out to agree with the static initialisers of, the pthread type whose
 * storage it uses (an all-zero object is a valid, unlocked one).
 *
 * Functions return 0 or an errno value. Deadlines are CLOCK_MONOTONIC ns
 * (DEADLINE_NONE: no limit); `try` means do not wait at all.
 */
#ifndef CR_GSYNC_H
#define CR_GSYNC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "list.h"

struct corun;

enum gmutex_kind { GMUTEX_NORMAL = 0, GMUTEX_RECURSIVE = 1, GMUTEX_ERRORCHECK = 2 };

struct gmutex {                 /* 40 bytes, as pthread_mutex_t */
    struct coq waiters;         /* 0 */
    int32_t kind;               /* 16: where glibc's initialisers put the type */
    uint32_t count;             /* 20: recursion depth */
    struct corun *owner;        /* 24 */
    uint64_t spare;
};

struct gcond {                  /* 48 bytes, as pthread_cond_t */
    struct coq waiters;
    int32_t clock;              /* CLOCK_REALTIME (0) unless set by init */
    int32_t spare0;
    uint64_t spare[3];
};

struct grwlock {                /* 56 bytes, as pthread_rwlock_t */
    struct coq waiters;         /* wait_want: 1 = wants to write */
    struct corun *writer;
    uint32_t readers;
    uint32_t spare0;
    uint64_t spare[3];
};

struct gsem {                   /* 32 bytes, as sem_t */
    struct coq waiters;
    uint32_t value;
    uint32_t spare0;
    uint64_t spare;
};

struct gbarrier {               /* 32 bytes, as pthread_barrier_t */
    struct coq waiters;
    uint32_t count, arrived;
    uint64_t spare;
};

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

#endif
