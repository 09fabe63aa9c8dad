/* io_uring completion waits: see guring.h. */
#include "guring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "fdtab.h"
#include "gsignal.h"
#include "gthread.h"
#include "sched.h"

/* The flags whose meaning this file knows. */
#define KNOWN_FLAGS (IORING_ENTER_GETEVENTS | IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT | \
                     IORING_ENTER_EXT_ARG)

/* Between two looks at the ring when no readiness event came (a ring
 * whose completions need the submitter's own io_uring_enter to appear, as
 * with DEFER_TASKRUN or IOPOLL): 1 ms, doubling, at most 64 ms. */
#define RECHECK_FIRST_NS NS_PER_MS
#define RECHECK_MAX_NS (64 * NS_PER_MS)

static long enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                  const void *arg, size_t argsz)
{
    int saved = errno;
    long r = syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    if (r < 0)
        r = -(long)errno;
    errno = saved;
    return r;
}

/* Where the completion queue's head and tail are in the ring's
 * IORING_OFF_CQ_RING mapping: the same for every ring of this kernel
 * (offsets into its struct io_rings), learnt once from a ring of one entry.
 * 0: not known (no io_uring, or not learnt yet). */
static unsigned cq_head_off, cq_tail_off;
static int cq_offsets_learnt;   /* atomic: 0 not yet, 1 known, -1 unavailable */

static bool cq_offsets(void)
{
    int state = __atomic_load_n(&cq_offsets_learnt, __ATOMIC_ACQUIRE);
    if (state)
        return state > 0;
    struct io_uring_params p = { 0 };
    int saved = errno;
    int fd = (int)syscall(SYS_io_uring_setup, 1, &p);
    errno = saved;
    if (fd >= 0) {
        syscall(SYS_close, fd);
        cq_head_off = p.cq_off.head;
        cq_tail_off = p.cq_off.tail;
    }
    __atomic_store_n(&cq_offsets_learnt, fd >= 0 ? 1 : -1, __ATOMIC_RELEASE);
    errno = saved;
    return fd >= 0;
}

/* A read-only view of the ring's completion-queue indices, for waits of
 * more than one completion (the kernel's zero-timeout wait says only
 * whether there is one); NULL where it cannot be had (a ring in the
 * program's own memory, IORING_SETUP_NO_MMAP). Unmapped by cq_unmap. */
static const char *cq_map(int fd, size_t *len)
{
    if (!cq_offsets())
        return NULL;
    *len = (cq_head_off > cq_tail_off ? cq_head_off : cq_tail_off) + sizeof(unsigned);
    int saved = errno;
    void *m = (void *)syscall(SYS_mmap, NULL, *len, PROT_READ, MAP_SHARED, fd, IORING_OFF_CQ_RING);
    errno = saved;
    return m == MAP_FAILED ? NULL : m;
}

static void cq_unmap(const char *m, size_t len)
{
    if (m) {
        int saved = errno;
        syscall(SYS_munmap, m, len);
        errno = saved;
    }
}

/* Are min_complete completions there? 1 yes, 0 no, or -errno. The kernel's
 * zero-timeout wait runs the ring's pending task work and flushes its
 * overflow, so what is done is posted; it succeeds when there is at least
 * one completion, and `cq` (for min_complete > 1) counts them.
 * That wait fails EINTR when a signal reaches the OS thread during it, and
 * green threads share the OS thread: the signal may be for another of
 * them. Only a handler run for `co` since `mark` is the caller's EINTR
 * (seen here, or by its park once the loop names the signal's thread);
 * anything else is looked again. With native threads the kernel's EINTR is
 * the caller's own. */
static long completions_ready(const struct corun *co, struct gsignal_mark mark, int fd,
                              unsigned min_complete, const char *cq)
{
    struct __kernel_timespec zero = { 0, 0 };
    struct io_uring_getevents_arg ext = { .ts = (__u64)(uintptr_t)&zero };
    long r;
    do
        r = enter(fd, 0, min_complete, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ext,
                  sizeof ext);
    while (r == -EINTR && !cr_config.threads_native &&
           !gsignal_interrupted_since(co, mark, PARK_INTR_ALWAYS));
    if (r < 0)
        return r == -ETIME ? 0 : r;
    if (min_complete == 1)
        return 1;
    unsigned head = __atomic_load_n((const unsigned *)(cq + cq_head_off), __ATOMIC_ACQUIRE);
    unsigned tail = __atomic_load_n((const unsigned *)(cq + cq_tail_off), __ATOMIC_ACQUIRE);
    return tail - head >= min_complete;
}

bool guring_enter(struct sched *s, int fd, unsigned to_submit, unsigned min_complete,
                  unsigned flags, const void *arg, size_t argsz, long *ret)
{
    if (!s || !(flags & IORING_ENTER_GETEVENTS) || !min_complete || (flags & ~KNOWN_FLAGS))
        return false;
    uint64_t deadline = DEADLINE_NONE;
    if (flags & IORING_ENTER_EXT_ARG) {
        const struct io_uring_getevents_arg *ext = arg;
        if (!ext || argsz != sizeof *ext || ext->sigmask || ext->pad)
            return false;               /* a mask to wait with, a minimum wait time */
        if (ext->ts) {
            const struct __kernel_timespec *ts = (const void *)(uintptr_t)ext->ts;
            struct timespec t = { (time_t)ts->tv_sec, (long)ts->tv_nsec };
            if (!ts_valid(&t))
                return false;           /* the kernel's EINVAL */
            deadline = deadline_after((int64_t)ts_to_ns(&t));
        }
    } else if (arg) {
        return false;                   /* a signal mask for the wait */
    }

    size_t cq_len = 0;
    const char *cq = min_complete > 1 ? cq_map(fd, &cq_len) : NULL;
    if (min_complete > 1 && !cq)
        return false;

    long submitted = 0;
    if (to_submit) {
        submitted = enter(fd, to_submit, 0, flags & (IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT),
                          NULL, 0);
        if (submitted < 0) {
            cq_unmap(cq, cq_len);
            *ret = submitted;
            return true;
        }
    }
    long waited;
    int64_t step = RECHECK_FIRST_NS;
    /* io_uring_enter is no cancellation point: a cancel waits for the return. */
    bool was_disabled;
    gthread_setcancelstate(true, &was_disabled);
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct gsignal_mark mark = gsignal_mark(s->current);
    for (;;) {
        waited = completions_ready(s->current, mark, fd, min_complete, cq);
        if (waited == 0 && gsignal_interrupted_since(s->current, mark, PARK_INTR_ALWAYS))
            waited = -EINTR;            /* a handler ran for it meanwhile, as the kernel's wait */
        if (waited != 0)
            break;
        uint64_t tick = deadline_after(step);
        bool recheck = tick < deadline;
        int err = fd_wait_any(s, &pfd, 1, recheck ? tick : deadline, PARK_INTR_ALWAYS);
        if (err == ETIMEDOUT && !recheck) {
            /* As the kernel: at the timeout, success if any completion is
             * there, else ETIME. */
            waited = completions_ready(s->current, mark, fd, 1, NULL);
            if (waited == 0)
                waited = -ETIME;
            break;
        }
        if (err == ETIMEDOUT && gsignal_interrupted_since(s->current, mark, PARK_INTR_ALWAYS))
            err = EINTR;                /* a handler ran as the recheck timer woke it */
        if (err == ETIMEDOUT)
            step = step * 2 > RECHECK_MAX_NS ? RECHECK_MAX_NS : step * 2;
        else if (err) {
            waited = -(long)err;        /* a signal handler ran: EINTR, as the kernel's wait */
            break;
        }
    }
    gthread_setcancelstate(was_disabled, NULL);
    cq_unmap(cq, cq_len);
    *ret = submitted ? submitted : waited == 1 ? 0 : waited;
    return true;
}
