/*
 * Thread-level services for green threads: thread-specific data (keys),
 * exit with cleanup handlers and key destructors, deferred cancellation.
 * Keys work on any thread: green threads keep their values in their
 * coroutine, other threads in thread-local storage.
 */
#ifndef CR_GTHREAD_H
#define CR_GTHREAD_H

#include <stdbool.h>
#include <stddef.h>

struct corun;

#define GTHREAD_KEYS_MAX 1024
#define GTHREAD_CANCELED ((void *)-1)   /* the value a canceled thread returns */

int gthread_key_create(unsigned *key, void (*destructor)(void *));
int gthread_key_delete(unsigned key);
void *gthread_getspecific(unsigned key);
int gthread_setspecific(unsigned key, const void *value);


/* End the calling green thread: run its cleanup handlers (innermost first),
 * then key destructors, then finish with retval. */
__attribute__((noreturn)) void gthread_exit(void *retval);


/* pthread_cleanup_push/pop bookkeeping for the calling green thread. */
void gthread_cleanup_push(void *buf);
void gthread_cleanup_pop(void *buf);
__attribute__((noreturn)) void gthread_cleanup_next(void *buf);

/* Deferred cancellation. */
int gthread_cancel(struct corun *target);
void gthread_testcancel(void);
int gthread_setcancelstate(bool disabled, bool *was_disabled);
/* After a cancellable wait: act on a cancellation it reported. */
void gthread_act_on_cancel(int wake_reason);

#endif
