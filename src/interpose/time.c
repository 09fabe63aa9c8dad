/* Hooks: the sleep family and sched_yield's cousins park the green thread. */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "gthread.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(unsigned, sleep, (unsigned));
REAL_DECL(int, usleep, (useconds_t));
REAL_DECL(int, nanosleep, (const struct timespec *, struct timespec *));
REAL_DECL(int, clock_nanosleep, (clockid_t, int, const struct timespec *, struct timespec *));

HOOK unsigned sleep(unsigned sec)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sleep)(sec);
    uint64_t left = gthread_sleep_until(s, deadline_after((int64_t)sec * NS_PER_SEC));
    /* glibc rounds the seconds left to the nearest. */
    return (unsigned)((left + NS_PER_SEC / 2) / NS_PER_SEC);
}

HOOK int usleep(useconds_t us)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(usleep)(us);
    if (gthread_sleep_until(s, deadline_after((int64_t)us * NS_PER_US))) {
        errno = EINTR;
        return -1;
    }
    return 0;
}

HOOK int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                         struct timespec *rem)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME &&
               clock != CLOCK_TAI))
        return REAL(clock_nanosleep)(clock, flags, req, rem);   /* its own errors, e.g. CPU clocks */
    return gthread_clock_sleep(s, clock, flags, req, rem);
}

HOOK int nanosleep(const struct timespec *req, struct timespec *rem)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(nanosleep)(req, rem);
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}
