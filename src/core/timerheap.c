#include "timerheap.h"

/* The earlier of two roots; the other becomes its first child. */
static struct timer_node *meld(struct timer_node *a, struct timer_node *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->deadline < a->deadline) {
        struct timer_node *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* One root from a list of siblings: melded in pairs left to right, then the
 * pairs right to left (the two passes that give the amortised bound).
 * Iterative: after many inserts without a removal the root has as many
 * children. */
static struct timer_node *merge_pairs(struct timer_node *first)
{
    struct timer_node *pairs = NULL;      /* melded pairs, last first */
    while (first) {
        struct timer_node *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        struct timer_node *m = meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    struct timer_node *root = NULL;
    while (pairs) {
        struct timer_node *p = pairs;
        pairs = p->next;
        p->next = NULL;
        root = meld(root, p);
    }
    return root;
}

/* The root changes in one store, after the nodes are linked: the
 * preemption signal's handler reads the earliest deadline at any
 * instruction (a node just taken out stays readable: its owner holds it). */
static void set_root(struct timerheap *h, struct timer_node *r)
{
    if (r)
        r->next = r->prev = NULL;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&h->root, r, __ATOMIC_RELAXED);
}

void timerheap_insert(struct timerheap *h, struct timer_node *t)
{
    t->child = t->next = t->prev = NULL;
    t->queued = true;
    h->n++;
    set_root(h, meld(h->root, t));
}

void timerheap_remove(struct timerheap *h, struct timer_node *t)
{
    t->queued = false;
    h->n--;
    if (t == h->root) {
        set_root(h, merge_pairs(t->child));
        return;
    }
    /* Out of its sibling list, then its children join the root. */
    if (t->prev->child == t)
        t->prev->child = t->next;
    else
        t->prev->next = t->next;
    if (t->next)
        t->next->prev = t->prev;
    struct timer_node *sub = merge_pairs(t->child);
    set_root(h, meld(h->root, sub));
}
