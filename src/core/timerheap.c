#include "timerheap.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void put(struct timerheap *h, size_t i, struct timer_node *t)
{
    h->v[i] = t;
    t->idx = i + 1;
}

static void sift_up(struct timerheap *h, size_t i)
{
    struct timer_node *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p]->deadline <= t->deadline)
            break;
        put(h, i, h->v[p]);
        i = p;
    }
    put(h, i, t);
}

static void sift_down(struct timerheap *h, size_t i)
{
    struct timer_node *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->deadline < h->v[c]->deadline)
            c++;
        if (t->deadline <= h->v[c]->deadline)
            break;
        put(h, i, h->v[c]);
        i = c;
    }
    put(h, i, t);
}

/* The array grows with mmap, not the program's malloc: it grows inside a
 * park, and the parking thread may be waiting for a malloc lock that a
 * thread of this OS thread holds, parked itself (glibc waits for a second
 * lock holding an arena's), which would leave this OS thread waiting in
 * the kernel for good. The old array is unmapped only after the new one
 * is in place: the preemption signal's handler reads the earliest timer
 * at any instruction. */
int timerheap_insert(struct timerheap *h, struct timer_node *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096 / sizeof *h->v;
        struct timer_node **v = (void *)syscall(SYS_mmap, NULL, cap * sizeof *v,
                                                PROT_READ | PROT_WRITE,
                                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (v == MAP_FAILED)
            return ENOMEM;
        struct timer_node **old = h->v;
        size_t old_cap = h->cap;
        if (old)
            memcpy(v, old, h->n * sizeof *v);
        h->v = v;
        h->cap = cap;
        __asm__ volatile("" ::: "memory");
        if (old)
            syscall(SYS_munmap, old, old_cap * sizeof *old);
    }
    put(h, h->n++, t);
    sift_up(h, h->n - 1);
    return 0;
}

void timerheap_remove(struct timerheap *h, struct timer_node *t)
{
    size_t i = t->idx - 1;
    t->idx = 0;
    struct timer_node *last = h->v[--h->n];
    if (i == h->n)
        return;
    put(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->deadline > last->deadline)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void timerheap_release(struct timerheap *h)
{
    if (h->v)
        syscall(SYS_munmap, h->v, h->cap * sizeof *h->v);
    *h = (struct timerheap){ 0 };
}
