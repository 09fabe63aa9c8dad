/* libuv's own fds (its epoll backend, the async eventfd, the signal pipes)
 * as corun's (ownfd.h): made inside an internal section, so that the hooked
 * creators move them high, and their slots in libuv tracked, so that a
 * program's dup2 onto one moves it. */
#ifndef CORUN_UVFDS_H
#define CORUN_UVFDS_H

#include <uv.h>

int uvfds_loop_init(uv_loop_t *loop);
/* In a forked child, from corun's fork handler. */
int uvfds_loop_fork(uv_loop_t *loop);
int uvfds_loop_close(uv_loop_t *loop);

/* libuv's own fork handler (registered at the first uv_loop_init, after
 * corun's) remakes its process-wide signal lock pipe in the child: corun's
 * child handler opens an internal section for it, and a handler of corun's
 * registered after libuv's closes it. */
void uvfds_fork_child_begin(void);

#endif
