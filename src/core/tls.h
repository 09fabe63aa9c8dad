/*
 * Thread-local storage of green threads (CORUN_TLS).
 *
 * shared: every green thread of an OS thread uses the OS thread's TLS block
 *   and glibc thread control block (TCB), as corun always did.
 * own: each green thread gets a static TLS block and a glibc-compatible TCB
 *   of its own, built with ld.so's own allocator (_dl_allocate_tls) in its
 *   stack slot, and the FS base is switched with the context. __thread and
 *   thread_local, errno, C++'s exception stack, uselocale, the resolver
 *   state and glibc's THREAD_SELF-based internals are then per green thread.
 *
 * The layout of glibc's struct pthread is not hard-coded: the offsets come
 * from the descriptors glibc exports for libthread_db and are checked
 * against the running thread's TCB at load; anything unexpected gives
 * shared with a warning saying why.
 */
#ifndef CR_TLS_H
#define CR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "rawsys.h"

/* Decided once, at load (tls_decide). */
extern bool tls_own;
/* The CPU lets user space write the FS base (else arch_prctl, a syscall). */
extern bool tls_wrfsbase;

/* Decide the mode from CORUN_TLS and what this machine and glibc allow.
 * Prints one warning when `own` was asked for or is the default and
 * cannot be had. */
void tls_decide(void);

/* Why `own` is not available here ("" if it is): for --doctor. */
const char *tls_unavailable_reason(void);

/* Bytes a green thread's TLS area takes at the top of its stack slot. */
size_t tls_area_size(void);

/* Build a TCB and static TLS in the `tls_area_size()` bytes below `hi`
 * (the same `hi` goes to tls_release). `pooled`: the area is on a stack of
 * corun's pool (stack.h), where tls_sync_static finds it by walking the
 * pool, and where its DTV may live. Returns the thread pointer (the FS
 * base to run with), or 0 when out of memory. Runs on any context. */
uintptr_t tls_create(char *hi, bool pooled);

/* How tls_sync_static visits the areas on pooled stacks: `walk` calls fn
 * with the `hi` of every pooled stack that may hold one (sched.c knows
 * where on a stack its area lies). */
void tls_set_pool_walk(void (*walk)(void (*fn)(char *hi, void *arg), void *arg));

/* Where errno of the thread with thread pointer tp lives. */
/* The green thread whose TCB is at tp now runs on the OS thread whose own
 * TCB is at os_tp (M:N): its tid, malloc's tcache and arena become that
 * thread's, as at creation. */
void tls_moved(uintptr_t tp, uintptr_t os_tp);

int *tls_errno_location(uintptr_t tp);

/* First code of a green thread on its own FS base: what glibc's
 * start_thread sets up in the thread itself. */
void tls_started(void);

/* The thread is finishing, still on its own FS base (may park): its
 * thread_local destructors run, its locale goes back to the global one. */
void tls_exiting(void);

/* Free a finished thread's TLS (any context). `pooled`: its stack goes
 * back to corun's pool, and the area keeps its DTV there for the next
 * thread on that stack (tls_create), unless tls_forget says otherwise. */
void tls_release(uintptr_t tp, char *hi, bool pooled);

/* The stack whose area lies below `hi` is given back to the kernel or
 * used without an area: free the DTV it kept, if any. */
void tls_forget(char *hi);

/* In a fork child: corun's locks of TLS areas start free. */
void tls_fork_child(void);

/* Copy the TLS image of modules given static TLS since the last call into
 * every live green thread's block (a library with initial-exec TLS
 * dlopen'ed after green threads exist: glibc initialises only the blocks
 * of threads it made). */
void tls_sync_static(void);

/* The calling OS thread's own FS base. */
static inline uintptr_t tls_read_fs(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(v));   /* the TCB points at itself */
    return v;
}

static inline void tls_write_fs(uintptr_t v)
{
    if (__builtin_expect(tls_wrfsbase, 1))
        __asm__ volatile("wrfsbase %0" : : "r"(v) : "memory");
    else
        raw_syscall(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, v);
}

/* Offset below the thread pointer of a static-TLS address of the calling
 * thread (the same in every TCB). */
static inline uintptr_t tls_offset_of(const void *addr)
{
    return tls_read_fs() - (uintptr_t)addr;
}

#endif
