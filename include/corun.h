/*
 * corun.h - the explicit coroutine API of corun.
 *
 * A coroutine (green thread) runs on a scheduler that belongs to one OS
 * thread. The scheduler is created lazily by the first call into this API on
 * that thread; from then on the calling code itself is a coroutine (the
 * thread's "main" coroutine, running on the thread's own stack), so it can
 * block in corun_join(), corun_sleep() or a channel while others run.
 * When nothing is runnable, the scheduler runs its libuv loop.
 *
 * Coroutines, channels and fd waits belong to the scheduler of the OS thread
 * that created them: use them only from coroutines of that same thread
 * (joining, detaching or using a channel from another thread fails with
 * EXDEV).
 *
 * Error convention
 * ----------------
 * Every function that can fail returns an int: 0 on success, or a positive
 * errno value (EINVAL, ETIMEDOUT, ...) describing the failure. No function of
 * this API reads or writes errno; errno itself is private to each coroutine
 * (saved and restored at every switch).
 *
 * Functions that cannot fail in correct use (corun_current, corun_id,
 * corun_name, corun_yield, corun_switch) return their result directly.
 * corun_switch() to a target that cannot be resumed is a programming error:
 * it prints a diagnostic naming the problem and aborts.
 *
 * Timeouts are int64_t nanoseconds, measured on CLOCK_MONOTONIC:
 *   CORUN_FOREVER (-1)  wait without limit;
 *   0                   do not wait: fail with EAGAIN if waiting were needed;
 *   > 0                 wait at most that long: ETIMEDOUT when it expires.
 * A wait never ends early: when ETIMEDOUT is returned, at least timeout_ns
 * have elapsed.
 */
#ifndef CORUN_H
#define CORUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORUN_VERSION "0.1.0"

/* A coroutine handle. Valid from corun_spawn() until the coroutine has been
 * joined, or, if detached, until it finishes. */
typedef struct corun corun_t;

/* A channel carrying void * messages between coroutines. */
typedef struct corun_chan corun_chan_t;

/* A coroutine's body. Its return value is what corun_join() reports. */
typedef void *(*corun_fn)(void *arg);

#define CORUN_FOREVER ((int64_t)-1)

/* Time helpers for timeouts and corun_sleep(). */
#define CORUN_USEC(n) ((int64_t)(n) * 1000)
#define CORUN_MSEC(n) ((int64_t)(n) * 1000000)
#define CORUN_SEC(n) ((int64_t)(n) * 1000000000)

/* Longest name, including the terminating NUL. */
#define CORUN_NAME_MAX 32

/* Smallest stack a coroutine may ask for, in bytes. */
#define CORUN_STACK_MIN 16384

/* guard_size value: no guard region, overflow detected by a canary only. */
#define CORUN_GUARD_NONE ((size_t)-1)

/*
 * Spawn attributes. A zero-initialised struct gives the defaults, so
 * designated initialisers read well:
 *     corun_attr_t a = { .stack_size = 64 * 1024, .name = "worker" };
 */
typedef struct corun_attr {
    /* Bytes of stack. 0: the default, which is CORUN_STACK_SIZE if set,
     * else the soft RLIMIT_STACK (what a native thread gets), else 8 MiB.
     * Rounded up to whole pages; at least CORUN_STACK_MIN. The stack is
     * reserved address space: pages are committed only when touched. */
    size_t stack_size;
    /* Bytes of inaccessible guard below the stack. 0: one page.
     * CORUN_GUARD_NONE: no guard. Either way a canary at the stack's
     * limit is checked at every switch; an overflow aborts the process
     * with a message, never corrupts silently. */
    size_t guard_size;
    /* Name shown by corun_name() and in diagnostics; copied. At most
     * CORUN_NAME_MAX - 1 bytes. NULL: no name. */
    const char *name;
    /* Non-zero: start detached (see corun_detach()). */
    int detached;
} corun_attr_t;

/*
 * Create a coroutine running fn(arg) and make it runnable (it runs when the
 * caller next blocks or yields). Coroutines are cooperative: corun never
 * preempts one, nor a thread once it has called corun_spawn or corun_switch
 * (CORUN_PREEMPT_MS applies to the program's other pthreads).
 * attr may be NULL for the defaults.
 * If out is NULL the coroutine starts detached.
 * Errors: EINVAL (fn is NULL, stack_size below CORUN_STACK_MIN or absurdly
 * large), ERANGE (name too long), ENOMEM/EAGAIN (no memory or address space).
 */
int corun_spawn(corun_t **out, const corun_attr_t *attr, corun_fn fn, void *arg);

/*
 * Wait until co has finished, store its return value in *retval (if retval is
 * not NULL) and release it; co is invalid afterwards. Returns at once if co
 * has already finished.
 * Errors: EDEADLK (co is the caller), EINVAL (co is detached, or another
 * coroutine is already joining it).
 */
int corun_join(corun_t *co, void **retval);

/*
 * Like corun_join(), waiting at most timeout_ns (see the header comment).
 * Additional errors: EAGAIN (timeout 0 and co not finished), ETIMEDOUT.
 * After a timeout co is still joinable.
 */
int corun_join_timeout(corun_t *co, void **retval, int64_t timeout_ns);

/*
 * Detach co: its resources are released as soon as it finishes, and it can
 * no longer be joined. Detaching an already finished coroutine releases it.
 * Errors: EINVAL (already detached, or being joined).
 */
int corun_detach(corun_t *co);

/* Let every other runnable coroutine run once (and the event loop poll),
 * then continue. */
void corun_yield(void);

/* Park the calling coroutine for at least ns nanoseconds (ns <= 0: yield).
 * Returns 0. */
int corun_sleep(int64_t ns);

/* The calling coroutine. Creates the scheduler on first use. */
corun_t *corun_current(void);

/* A process-wide unique, never reused id: 1 for the first scheduler's main
 * coroutine, then increasing on each scheduler (each takes its ids from
 * the process's count in blocks). */
uint64_t corun_id(const corun_t *co);

/* The name of co, or "" if it has none. Valid while co is. */
const char *corun_name(const corun_t *co);

/* Rename co (NULL or "" clears the name). Errors: ERANGE (too long). */
int corun_set_name(corun_t *co, const char *name);

/*
 * Symmetric, greenlet-style transfer: suspend the caller and run target,
 * handing it value. target continues where it left off:
 *   - a coroutine suspended in corun_switch() returns value from there;
 *   - a coroutine that is merely runnable (spawned but not started, yielded,
 *     or woken from a wait but not yet run) simply runs on: value is dropped,
 *     since nothing in it is waiting for one.
 * The caller stays suspended until some coroutine switches back to it;
 * corun_switch() then returns the value passed by that switch. When a
 * coroutine finishes and the coroutine that spawned it is suspended in
 * corun_switch(), the spawner is resumed with the finished coroutine's
 * return value (as a greenlet returns to its parent).
 * corun_switch(corun_current(), v) returns v at once.
 * Aborts with a diagnostic if target is parked in a blocking call, finished,
 * or belongs to another OS thread.
 */
void *corun_switch(corun_t *target, void *value);

/* Capacity for an unbounded channel. */
#define CORUN_CHAN_UNBOUNDED SIZE_MAX

/*
 * Create a channel. capacity 0: unbuffered (each send waits for its
 * receiver); N: at most N messages buffered; CORUN_CHAN_UNBOUNDED: send
 * never waits. Messages are received in the order they were sent; waiting
 * senders and receivers are served first come, first served.
 * Errors: ENOMEM.
 */
int corun_chan_new(corun_chan_t **out, size_t capacity);

/* Send msg, waiting at most timeout_ns for room (or, unbuffered, for a
 * receiver). Errors: EPIPE (closed, also if closed while waiting),
 * EAGAIN, ETIMEDOUT. */
int corun_chan_send(corun_chan_t *ch, void *msg, int64_t timeout_ns);

/* Receive into *msg, waiting at most timeout_ns. Messages buffered before
 * close are still delivered. Errors: EPIPE (closed and empty, also if closed
 * while waiting), EAGAIN, ETIMEDOUT. */
int corun_chan_recv(corun_chan_t *ch, void **msg, int64_t timeout_ns);

/* Close: wakes every waiting sender and receiver (with EPIPE, receivers once
 * the buffer is drained). Errors: EPIPE (already closed). */
int corun_chan_close(corun_chan_t *ch);

/* Number of messages buffered. */
size_t corun_chan_len(const corun_chan_t *ch);

/* Free a channel. Errors: EBUSY (coroutines are waiting on it). */
int corun_chan_free(corun_chan_t *ch);

/*
 * Park until fd is ready for events (POLLIN, POLLOUT, or both, as in poll(2))
 * or timeout_ns passes. On success *revents (if not NULL) holds the poll(2)
 * revents seen (POLLERR and POLLHUP included when they apply).
 * Errors: EBADF (fd not open), EINVAL (no events asked), EAGAIN, ETIMEDOUT.
 */
int corun_wait_fd(int fd, short events, int64_t timeout_ns, short *revents);

#ifdef __cplusplus
}
#endif

#endif /* CORUN_H */
