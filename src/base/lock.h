/* A small futex lock for corun's own shared state. Not a pthread mutex: those
 * are what the program's threads use, and corun may provide them itself. */
#ifndef CR_LOCK_H
#define CR_LOCK_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct { atomic_int state; } cr_lock_t; /* 0 free, 1 held, 2 held with waiters */
#define CR_LOCK_INIT { 0 }

static inline void cr_lock(cr_lock_t *l)
{
    int c = 0;
    if (atomic_compare_exchange_strong_explicit(&l->state, &c, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    if (c != 2)
        c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
    int saved = errno;        /* FUTEX_WAIT's EAGAIN must not reach the program */
    while (c != 0) {
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        c = atomic_exchange_explicit(&l->state, 2, memory_order_acquire);
    }
    errno = saved;
}

static inline void cr_unlock(cr_lock_t *l)
{
    if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
        syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#endif
