/* The hook gate: the one family of checks every hook starts with. Each
 * returns the scheduler the call should park on, or NULL to make the real
 * libc call: corun's own loop context, threads that run no green threads,
 * before the library is set up, and (for the pthread hooks) calls from
 * libuv or a sanitizer runtime, whose threads, mutexes and keys are glibc's
 * and must stay so.
 *
 *   gate_any()         calls that never block (close, dup, socket...)
 *   gate_blocking()    calls that may block: also NULL when the caller is
 *                      the only thing that could run, so the real call
 *                      (with its own EINTR and cancellation) is made
 *   gate_thread(ra)    pthread objects and threads; ra is the hook's return
 *                      address (__builtin_return_address(0))
 *   gate_thread_blocking(ra)  both: waits of green threads (sigwait...)
 *
 * None changes errno (the first use on a thread builds its scheduler).
 * Hooks whose arguments decide too (a regular file, a zero timeout,
 * WNOHANG) wrap one of these in a local gate named for the family.
 *
 * A hook is then: gate, one call into the layer below, return. Before the
 * gate, CATCH_HOLD(): from there on the thread's system calls are corun's
 * (src/core/catch.h), until the hook returns. */
#ifndef CR_GATE_H
#define CR_GATE_H

#include <stdbool.h>

#include "catch.h"
#include "config.h"
#include "ownfd.h"
#include "real.h"
#include "sched.h"

/* Hooks are the library's exported interface to the program. */
#define HOOK __attribute__((visibility("default")))

static inline struct sched *gate_any(void)
{
    return sched_for_program();
}

static inline struct sched *gate_blocking(void)
{
    struct sched *s = sched_for_program();
    return s && !sched_alone(s) ? s : NULL;
}

/* corun's own fds (ownfd.h) do not exist for the program: a hook taking an
 * fd fails as for one never opened. Whoever calls (no gate): a kernel
 * thread made behind corun's back must not close them either. */
#define GATE_HIDDEN_FD(fd)              \
    do {                                \
        if (ownfd_hidden(fd)) {         \
            errno = EBADF;              \
            return -1;                  \
        }                               \
    } while (0)

/* Is the code at `ra` (a return address) libuv's or a sanitizer runtime's?
 * A call site seen to be the program's is remembered (inline: the pthread
 * hooks ask at every call). */
#define GATE_KNOWN_NATIVE 64
extern const void *gate_known_native[GATE_KNOWN_NATIVE];
bool caller_is_foreign_slow(const void *ra);

static inline bool caller_is_foreign(const void *ra)
{
    if (ra == __atomic_load_n(&gate_known_native[((uintptr_t)ra >> 3) % GATE_KNOWN_NATIVE],
                              __ATOMIC_RELAXED))
        return false;
    return caller_is_foreign_slow(ra);
}

/* Green pthreads for a call from `ra`? (Keys are corun's on every thread
 * then, so that keys made and used on different threads agree.) */
static inline bool gate_threads_green(const void *ra)
{
    if (__builtin_expect(!cr_config.loaded, 0))
        config_load();
    return !cr_config.threads_native && !caller_is_foreign(ra);
}

static inline struct sched *gate_thread(const void *ra)
{
    return gate_threads_green(ra) ? sched_for_program() : NULL;
}

static inline struct sched *gate_thread_blocking(const void *ra)
{
    return gate_threads_green(ra) ? gate_blocking() : NULL;
}

#endif
