/* The one intrusive list: a doubly linked list of links embedded in their
 * owners (container_of finds the owner). O(1) push and removal from any
 * position. The coroutine queues of the core (struct coq, in sched.h) keep
 * their own typed head/tail links on the coroutine because they are the
 * hottest path; everything else uses this. */
#ifndef CR_LIST_H
#define CR_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct dlink {
    struct dlink *next, *prev;
};

struct dlist {
    struct dlink *head;
};

static inline bool dlink_linked(const struct dlist *l, const struct dlink *n)
{
    return n->prev != NULL || l->head == n;
}

/* Push at the head (newest first). */
static inline void dlist_push(struct dlist *l, struct dlink *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    l->head = n;
}

/* Remove n, which must be on l. */
static inline void dlist_remove(struct dlist *l, struct dlink *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

#define dlist_foreach(l, it) for (struct dlink *it = (l)->head; it; it = it->next)

/* Queues of coroutines: a coroutine is on at most one at a time (the run
 * queue or one wait queue), so one link pair in it serves all. Inline in
 * sched.h, where struct corun is complete. */
struct corun;
struct coq {
    struct corun *head, *tail;
};

#endif
