/* Intrusive FIFO queues of coroutines. A coroutine is on at most one queue
 * at a time (the run queue or one wait queue), so one link pair serves all. */
#ifndef CORUN_LIST_H
#define CORUN_LIST_H

#include <stddef.h>

struct corun;

struct coq {
    struct corun *head, *tail;
};

/* Implemented inline in sched.h, where struct corun is complete. */

#endif
