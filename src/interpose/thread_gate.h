/* The gate of the pthread hooks: the scheduler whose green threads the call
 * is about, or NULL to leave the call to glibc (CORUN_THREADS=native, threads
 * that run no green threads, corun's loop context, and libuv's own calls:
 * its mutexes and threads are glibc's and must stay so). */
#ifndef CORUN_THREAD_GATE_H
#define CORUN_THREAD_GATE_H

#include <stdbool.h>

#include "config.h"
#include "sched.h"

/* Is the code at `ra` (a return address) part of libuv? */
bool caller_in_libuv(const void *ra);

static inline bool threads_green(void)
{
    if (__builtin_expect(!corun_config.loaded, 0))
        config_load();
    return !corun_config.threads_native;
}

static inline struct sched *thread_gate(const void *ra)
{
    if (!threads_green())
        return NULL;
    struct sched *s = sched_for_hook();
    return s && !caller_in_libuv(ra) ? s : NULL;
}

#endif
