/* A binary min-heap of deadlines (CLOCK_MONOTONIC nanoseconds). Nodes are
 * embedded in their owners; removal is O(log n) from any position. */
#ifndef CR_TIMERHEAP_H
#define CR_TIMERHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer_node {
    uint64_t deadline;
    size_t idx;                 /* position in the heap + 1; 0 when not queued */
};

struct timerheap {
    struct timer_node **v;
    size_t n, cap;
};

int timerheap_insert(struct timerheap *h, struct timer_node *t);
void timerheap_remove(struct timerheap *h, struct timer_node *t);
/* Give the array back (the heap is empty again). */
void timerheap_release(struct timerheap *h);

static inline struct timer_node *timerheap_min(const struct timerheap *h)
{
    return h->n ? h->v[0] : NULL;
}

static inline bool timer_queued(const struct timer_node *t)
{
    return t->idx != 0;
}

#endif
