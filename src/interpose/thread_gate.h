/* The gate of the pthread hooks: the scheduler whose green threads the call
 * is about, or NULL to leave the call to glibc (CORUN_THREADS=native, threads
 * that run no green threads, corun's loop context, and calls from libuv or a
 * sanitizer runtime: their threads, mutexes and keys are glibc's and must
 * stay so). */
#ifndef CORUN_THREAD_GATE_H
#define CORUN_THREAD_GATE_H

#include <stdbool.h>

#include "config.h"
#include "sched.h"

/* Is the code at `ra` (a return address) libuv's or a sanitizer runtime's? */
bool caller_is_foreign(const void *ra);

/* Green pthreads for a call from `ra`? (Keys are corun's on every thread
 * then, so that keys made and used on different threads agree.) */
static inline bool threads_green(const void *ra)
{
    if (__builtin_expect(!corun_config.loaded, 0))
        config_load();
    return !corun_config.threads_native && !caller_is_foreign(ra);
}

static inline struct sched *thread_gate(const void *ra)
{
    return threads_green(ra) ? sched_for_hook() : NULL;
}

/* The same for synchronisation objects and pthread_self: never builds a
 * scheduler, and answers inside signal handlers (see sched_for_sync_hook). */
static inline struct sched *sync_gate(const void *ra)
{
    return threads_green(ra) ? sched_for_sync_hook() : NULL;
}

#endif
