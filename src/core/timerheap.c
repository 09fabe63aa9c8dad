#include "timerheap.h"

#include <errno.h>
#include <stdlib.h>

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

int timerheap_insert(struct timerheap *h, struct timer_node *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct timer_node **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        h->v = v;
        h->cap = cap;
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
