/* Coroutine stacks: reserved address space, committed on touch, pooled. */
#ifndef CR_STACK_H
#define CR_STACK_H

#include <stdbool.h>
#include <stddef.h>

struct stack_class;

struct stack_slot {
    char *lo;                 /* lowest usable byte */
    size_t size;              /* usable bytes (a page multiple) */
    struct stack_class *cls;
    bool guarded;             /* a guard region lies right below lo */
};

/*
 * Get a stack of `size` usable bytes with a `guard`-byte inaccessible region
 * below it (both rounded up to pages; guard 0 means none). A guard is placed
 * with MADV_GUARD_INSTALL where the kernel has it (no extra mapping), else
 * with mprotect while the process's mapping budget allows; out->guarded says
 * whether one is there. Returns 0, or EAGAIN when address space runs out.
 */
int stack_alloc(size_t size, size_t guard, struct stack_slot *out);

/* Give a stack back to its pool. Beyond a small warm cache (64 stacks per
 * size) its pages are returned to the kernel, in batches of 64 stacks. The
 * stack must not be in use. */
void stack_release(const struct stack_slot *slot);

/* One released stack an OS thread keeps out of the pool (`cache`, its
 * own, cls NULL when empty): its next stack of the same size comes back
 * without the pool's lock. stack_release_cached fills an empty cache
 * (NULL: none), else releases; stack_cache_drop gives it to the pool. */
int stack_alloc_cached(struct stack_slot *cache, size_t size, size_t guard, struct stack_slot *out);
void stack_release_cached(struct stack_slot *cache, const struct stack_slot *slot);
void stack_cache_drop(struct stack_slot *cache);

/* Called for each pooled stack whose pages are about to go back to the
 * kernel (outside the pool's lock): what its owner left on it goes too. */
void stack_set_cold_hook(void (*hook)(const struct stack_slot *slot));

/* Around fork (the scheduler's fork handlers). */
void stack_fork_prepare(void);
void stack_fork_parent(void);
void stack_fork_child(void);

/* For fault handlers: if addr lies in the guard region of a pooled stack,
 * store that stack's highest address and usable size and return true. */
bool stack_guard_hit(const void *addr, char **hi, size_t *size);

/* Whether addr lies in one of the pool's arenas (lock-free: arenas are
 * never unmapped). */
bool stack_in_pool(const void *addr);

/* fn(lo, size, arg) for every slot of the pool handed out at least once,
 * free or not, under the pool's lock (fn must not call into the pool). */
void stack_foreach_slot(void (*fn)(char *lo, size_t size, void *arg), void *arg);

size_t stack_page_size(void);

#endif
