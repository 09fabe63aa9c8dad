/* Routing of system calls by number, for the calls corun sees only as a
 * number and six arguments: libc's syscall() (a hook) and, where armed,
 * syscall instructions caught outside corun. One table, so both reach the
 * same green primitives as the named hooks. */
#ifndef CR_SYSCALL_ROUTE_H
#define CR_SYSCALL_ROUTE_H

#include <stdbool.h>

/*
 * Make system call `nr` with arguments a[0..5] the way the named hook for it
 * would (parking the green thread instead of blocking), if corun routes that
 * number and `ra` (the caller's return address, for the thread gates) lets
 * it. Returns true and the kernel's convention in *ret (a result, or
 * -errno) when routed; false, with nothing done, when the caller must make
 * the call itself. errno is left as it was either way.
 */
bool syscall_route(long nr, const long a[6], const void *ra, long *ret);

/* Only the numbers that never block (the fd books, thread ids): for a
 * caller that must not park. */
bool syscall_route_noblock(long nr, const long a[6], const void *ra, long *ret);

/* A call made for real that may block for long (a lock, a message queue,
 * a device, a child): a worker stuck in one hands its green threads over
 * (sched_blocking_begin). */
bool syscall_may_block(long nr, const long a[6]);

/* The calls by which a program takes SIGSYS, seccomp or the dispatch for
 * itself: the catch steps aside (catch.c). */
void catch_notice(long nr, const long a[6]);
/* rt_sigaction by number while the catch is in force: made with SIGSYS out
 * of the handler's mask. false: the caller makes it. */
bool catch_rt_sigaction(const long a[6], long *ret);
/* rt_sigprocmask by number: the same for the thread's mask. */
bool catch_rt_sigprocmask(const long a[6], long *ret);
/* The set to block for a mask call (how, set): set itself, or a copy
 * without SIGSYS while the catch is in force. */
const sigset_t *catch_mask_filter(int how, const sigset_t *set, sigset_t *copy);

#include <signal.h>
/* sigaction(SIGSYS, ...) while the catch is in force (catch.c). */
int catch_sigsys_action(const struct sigaction *act, struct sigaction *old,
                        int (*install)(int, const struct sigaction *, struct sigaction *));

#endif
