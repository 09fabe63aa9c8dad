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

/* Sleep until the monotonic deadline: a cancellation point. Returns the
 * nanoseconds left when a signal handler interrupted it, else 0. */
static uint64_t sleep_until(struct sched *s, uint64_t deadline)
{
    int why;
    do {
        sched_wait_on(s, WAIT_SLEEP, NULL, -1);
        why = sched_park(s, deadline, PARK_INTR_ALWAYS);
    } while (why == WAKE_SIGNALED);        /* nothing else wakes a sleeper: be safe */
    gthread_act_on_cancel(why);
    if (why != WAKE_INTERRUPTED)
        return 0;
    uint64_t now = clock_now_ns();
    return deadline > now ? deadline - now : 1;   /* interrupted: some time was left */
}

HOOK unsigned sleep(unsigned sec)
{
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sleep)(sec);
    uint64_t left = sleep_until(s, deadline_after((int64_t)sec * 1000000000));
    /* glibc rounds the seconds left to the nearest. */
    return (unsigned)((left + 500000000) / 1000000000);
}

HOOK int usleep(useconds_t us)
{
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(usleep)(us);
    if (sleep_until(s, deadline_after((int64_t)us * 1000))) {
        errno = EINTR;
        return -1;
    }
    return 0;
}

HOOK int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                         struct timespec *rem)
{
    struct sched *s = gate_blocking();
    if (!s || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME &&
               clock != CLOCK_TAI))
        return REAL(clock_nanosleep)(clock, flags, req, rem);   /* its own errors, e.g. CPU clocks */
    if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000)   /* absolute too */
        return EINVAL;
    uint64_t deadline;
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clock, &now);
        int64_t left = (int64_t)(req->tv_sec - now.tv_sec) * 1000000000 + (req->tv_nsec - now.tv_nsec);
        if (left <= 0)
            return 0;
        deadline = deadline_after(left);
    } else {
        deadline = deadline_after((int64_t)req->tv_sec * 1000000000 + req->tv_nsec);
    }
    uint64_t left = sleep_until(s, deadline);
    if (!left)
        return 0;
    if (rem && !(flags & TIMER_ABSTIME)) {
        rem->tv_sec = (time_t)(left / 1000000000);
        rem->tv_nsec = (long)(left % 1000000000);
    }
    return EINTR;
}

HOOK int nanosleep(const struct timespec *req, struct timespec *rem)
{
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
