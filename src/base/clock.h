/* Time for every layer: CLOCK_MONOTONIC nanoseconds, deadlines, and the one
 * place where timespec, timeval and milliseconds are turned into
 * nanoseconds and back. */
#ifndef CR_CLOCK_H
#define CR_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#define NS_PER_SEC 1000000000ll
#define NS_PER_MS 1000000ll
#define NS_PER_US 1000ll

/* A deadline that never comes (CORUN_FOREVER and "no timeout"). */
#define DEADLINE_NONE UINT64_MAX

static inline uint64_t ts_to_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * (uint64_t)NS_PER_SEC + (uint64_t)ts->tv_nsec;
}

static inline struct timespec ns_to_ts(int64_t ns)
{
    return (struct timespec){ (time_t)(ns / NS_PER_SEC), (long)(ns % NS_PER_SEC) };
}

static inline int64_t tv_to_ns(const struct timeval *tv)
{
    return (int64_t)tv->tv_sec * NS_PER_SEC + (int64_t)tv->tv_usec * NS_PER_US;
}

static inline struct timeval ns_to_tv(int64_t ns)
{
    return (struct timeval){ (time_t)(ns / NS_PER_SEC), (suseconds_t)(ns % NS_PER_SEC / NS_PER_US) };
}

/* Milliseconds as a poll(2)-style timeout: < 0 is forever (-1 here). */
static inline int64_t ms_to_ns(int ms)
{
    return ms < 0 ? -1 : (int64_t)ms * NS_PER_MS;
}

/* Nanoseconds to whole milliseconds, rounded up so a wait never ends early;
 * < 0 stays -1 (forever). */
static inline int ns_to_ms_up(int64_t ns)
{
    return ns < 0 ? -1 : (int)((ns + NS_PER_MS - 1) / NS_PER_MS);
}

/* A timespec a kernel call would accept as a duration or absolute time. */
static inline bool ts_valid(const struct timespec *ts)
{
    return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < NS_PER_SEC;
}

static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts_to_ns(&ts);
}

/* The coarse clock (a tick of a few ms): a few ns through the vDSO. */
static inline uint64_t clock_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts_to_ns(&ts);
}

/* Absolute deadline for a relative timeout (< 0: DEADLINE_NONE). */
static inline uint64_t deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return DEADLINE_NONE;
    uint64_t d = clock_now_ns() + (uint64_t)timeout_ns;
    return d < (uint64_t)timeout_ns ? DEADLINE_NONE : d;
}

/* Nanoseconds left until a deadline (0 if passed; -1 for DEADLINE_NONE). */
static inline int64_t deadline_left(uint64_t deadline)
{
    if (deadline == DEADLINE_NONE)
        return -1;
    uint64_t now = clock_now_ns();
    return deadline > now ? (int64_t)(deadline - now) : 0;
}

#endif
