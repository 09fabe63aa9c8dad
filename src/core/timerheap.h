/* A pairing heap of deadlines (CLOCK_MONOTONIC nanoseconds). Nodes are
 * embedded in their owners, so a sleeping thread costs no memory beyond
 * its own (a million sleepers, no array of a million pointers); removal
 * from any position is O(log n) amortised. */
#ifndef CR_TIMERHEAP_H
#define CR_TIMERHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer_node {
    uint64_t deadline;
    struct timer_node *child;   /* the first of its children */
    struct timer_node *next;    /* its next sibling */
    struct timer_node *prev;    /* its previous sibling, or its parent if it is the first */
    bool queued;
};

struct timerheap {
    struct timer_node *root;    /* the earliest (a signal handler of corun's reads it) */
    size_t n;
};

void timerheap_insert(struct timerheap *h, struct timer_node *t);
void timerheap_remove(struct timerheap *h, struct timer_node *t);

static inline struct timer_node *timerheap_min(const struct timerheap *h)
{
    return __atomic_load_n(&h->root, __ATOMIC_RELAXED);
}

static inline bool timer_queued(const struct timer_node *t)
{
    return t->queued;
}

#endif
