/*
 * Green futexes: futex(2) waits of green threads park them by address
 * instead of blocking their OS thread; wakes reach green waiters and the
 * kernel's alike.
 *
 * A waiter record (on the waiter's stack) goes on the wait list of its
 * address's bucket, under the bucket's lock, after the word is compared with
 * the expected value under the same lock: a waker that changes the word and
 * then wakes (through corun) takes that lock too, so the compare and the
 * queueing are atomic with respect to it, as in the kernel. A wake takes
 * green waiters off first (woken on their own scheduler, or posted to it
 * from another OS thread: sched_xwake_post), then asks the kernel to wake
 * kernel-thread waiters with what is left of the count.
 *
 * A wake corun cannot see (a kernel thread's inline syscall instruction,
 * another process sharing the word, the kernel's own CLONE_CHILD_CLEARTID)
 * reaches only kernel waiters. A green waiter therefore re-reads its word
 * on an escalating backstop timer (1 ms, doubling, at most every 64 ms)
 * and returns 0 once it differs from the value it waited on: FUTEX_WAIT
 * allows such wake-ups, so a missed wake costs latency, not a hang. (A word
 * changed and changed back between two looks stays a missed wake until the
 * next wake of that address.)
 */
#ifndef CR_GFUTEX_H
#define CR_GFUTEX_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct sched;

/*
 * futex(uaddr, op, val, timeout_or_val2, uaddr2, val3) as corun does it.
 * `s` is the caller's scheduler when the caller is a green thread that may
 * park (NULL: a kernel thread, or a green thread that must make the real
 * call); waits are done only for such a caller, wakes and requeues for any
 * caller while green threads wait. Returns true with the kernel's result
 * convention in *ret (a count or 0, or -errno); false when corun has
 * nothing to do with the call: the caller makes the real one.
 */
bool gfutex_op(struct sched *s, uint32_t *uaddr, int op, uint32_t val, const void *timeout_or_val2,
               uint32_t *uaddr2, uint32_t val3, long *ret);

#endif
