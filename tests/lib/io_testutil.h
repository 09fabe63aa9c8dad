/* Helpers shared by the test_io_*.c criterion tests (include after
 * testutil.h). */
#ifndef IO_TESTUTIL_H
#define IO_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

static inline __attribute__((unused)) corun_t *go(corun_fn fn, void *arg)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, fn, arg));
    return co;
}

static inline __attribute__((unused)) void *join(corun_t *co)
{
    void *r = NULL;
    OK(corun_join(co, &r));
    return r;
}

static inline __attribute__((unused)) bool join_within_ret(corun_t *co, int64_t ns, void **ret)
{
    int r = corun_join_timeout(co, ret, ns);
    cr_assert(r == 0 || r == ETIMEDOUT, "join: %s", strerror(r));
    return r == 0;
}

static inline __attribute__((unused)) bool join_within(corun_t *co, int64_t ns)
{
    int r = corun_join_timeout(co, NULL, ns);
    cr_assert(r == 0 || r == ETIMEDOUT, "join: %s", strerror(r));
    return r == 0;
}

/* Files with their own, stricter version define IO_OWN_ASSERT_BLOCKING. */
#ifndef IO_OWN_ASSERT_BLOCKING
static inline __attribute__((unused)) void assert_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert_neq(fl, -1, "F_GETFL(%d): %s", fd, strerror(errno));
    cr_assert_eq(fl, (int)syscall(SYS_fcntl, fd, F_GETFL, 0), "F_GETFL does not tell the truth");
    cr_assert_eq(fl & O_NONBLOCK, 0, "O_NONBLOCK left set on fd %d", fd);
}
#endif

/* Fill fd's send path (without blocking, without touching O_NONBLOCK);
 * returns the bytes queued. */
static inline __attribute__((unused)) size_t fill(int fd)
{
    static char buf[65536];
    size_t total = 0;
    for (size_t chunk = sizeof buf; chunk > 0; chunk /= 2)
        for (;;) {
            ssize_t n = send(fd, buf, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n <= 0)
                break;
            total += (size_t)n;
        }
    return total;
}

#endif
