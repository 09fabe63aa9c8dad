/* Running a blocking function on libuv's thread pool while the calling
 * coroutine parks: for calls that are not about fds (name lookups, ...). */
#ifndef CR_OFFLOAD_H
#define CR_OFFLOAD_H

struct sched;

/* Run fn(arg) on a pool thread; return when it has finished. fn must not
 * touch the calling thread's thread-local state (errno is copied back). */
void offload_run(struct sched *s, void (*fn)(void *), void *arg);

/* In a forked child: the pool is started (sized and named) anew. */
void offload_fork_child(void);

#endif
