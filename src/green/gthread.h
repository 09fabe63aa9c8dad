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
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct corun;
struct sched;

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

/* Sleep until the monotonic deadline: a cancellation point, interrupted by
 * any handler. Returns the nanoseconds left when a handler interrupted it,
 * else 0. */
uint64_t gthread_sleep_until(struct sched *s, uint64_t deadline);

/* clock_nanosleep on one of the wall or monotonic clocks: 0, EINVAL or
 * EINTR (with *rem for a relative sleep). */
int gthread_clock_sleep(struct sched *s, clockid_t clock, int flags, const struct timespec *req,
                        struct timespec *rem);

/* pthread_create for a green thread: the attributes' stack size, guard,
 * own stack and detach state honoured. 0, EINVAL or EAGAIN. */
#include <pthread.h>
int gthread_create(struct sched *s, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
                   struct corun **out);

/*
 * Thread ids (gettid). The green thread on the kernel thread's own stack
 * (main, or the one that forked) has the kernel thread's tid, as natively
 * gettid() == getpid() in the main thread. Every other green thread has
 * GTHREAD_TID_BASE plus a number taken from its coroutine id: far above
 * the kernel's PID_MAX_LIMIT (2^22), so no kernel thread of any process
 * ever has it. It is stable for the thread's life and is reused only after
 * about 2^30 more threads were made.
 */
#define GTHREAD_TID_BASE 0x40000000
pid_t gthread_tid(const struct corun *co);

/* The green thread of scheduler s whose id is tid, or NULL (then tid is
 * the kernel's business: another thread, or none). Walks s's threads. */
struct corun *gthread_by_tid(struct sched *s, pid_t tid);

/* For calls that take a thread id (affinity, priority, scheduling): a green
 * thread's id of s stands for the kernel thread that runs it; any other id
 * is returned as it is. */
pid_t gthread_kernel_tid(struct sched *s, pid_t id);

#endif
