/*
 * Seeing inside the runtime.
 *
 * Stats (CORUN_STATS): every scheduler keeps plain counters written only by
 * its own OS thread; at exit they are summed over the live schedulers and
 * the figures of those already gone.
 *
 * Blocking detector (CORUN_BLOCK_WARN_MS): a watchdog on a kernel thread of
 * its own (made with libc's pthread_create, so corun's hooks leave it alone)
 * looks at each loop's turn counter. When a loop has not turned for the
 * threshold while it is not waiting for events and something else could run,
 * it finds out what the loop thread is doing from
 * /proc/self/task/TID/syscall:
 *  - running code, or in a system call that SA_RESTART makes transparent
 *    (read, write, accept, futex...): it signals the thread, whose handler
 *    prints the running green thread and a backtrace (glibc's backtrace(),
 *    which unwinds through the signal frame with the DWARF tables);
 *  - in a call a signal would cut short with EINTR whatever SA_RESTART says
 *    (nanosleep, poll, select, epoll_wait...): it does not disturb it, and
 *    prints the call, its first argument and the instruction address.
 * One warning per blocked stretch, and one per call site (callers' return
 * addresses) for the process's life.
 *
 * Live dump (CORUN_DUMP_SIGNAL): the signal handler only pokes each
 * scheduler's uv_async; the dump is written by the loop context, where the
 * scheduler's state is consistent. A loop that never turns (a CPU hog) never
 * dumps: the blocking detector is the tool for that. Backtraces of parked
 * green threads follow saved frame pointers from the context switch's frame,
 * reading memory with process_vm_readv so a bad pointer ends the walk
 * instead of crashing: they are complete through corun's own code (built
 * with frame pointers) up to the program's call into corun, and go further
 * only through code that keeps frame pointers.
 */
#include "inspect_int.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "gsignal.h"
#include "gsync.h"
#include "lock.h"
#include "ownfd.h"
#include "rawsys.h"
#include "real.h"

cr_lock_t reg_lock = CR_LOCK_INIT;
pid_t reg_holder;                  /* thread holding reg_lock, for the dump handler */

void reg_acquire(void)
{
    cr_lock(&reg_lock);
    __atomic_store_n(&reg_holder, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
}

void reg_release(void)
{
    __atomic_store_n(&reg_holder, 0, __ATOMIC_RELEASE);
    cr_unlock(&reg_lock);
}
struct sched_stats gone;           /* figures of schedulers already destroyed */
unsigned long sched_count;         /* schedulers ever made */
pid_t registry_pid;

static const char *const wait_names[WAIT_KINDS] = {
    [WAIT_OTHER] = "other", [WAIT_READ] = "read", [WAIT_WRITE] = "write",
    [WAIT_ACCEPT] = "accept", [WAIT_CONNECT] = "connect", [WAIT_POLL] = "poll",
    [WAIT_SLEEP] = "sleep", [WAIT_DNS] = "dns", [WAIT_MUTEX] = "mutex", [WAIT_COND] = "cond",
    [WAIT_JOIN] = "join", [WAIT_CHILD] = "child", [WAIT_RWLOCK] = "rwlock",
    [WAIT_SEM] = "semaphore", [WAIT_BARRIER] = "barrier", [WAIT_CHAN] = "channel",
    [WAIT_OFFLOAD] = "offload",
};

const char *inspect_wait_name(int kind)
{
    return kind >= 0 && kind < WAIT_KINDS && wait_names[kind] ? wait_names[kind] : "other";
}

/* ---- this layer's part of each scheduler -----------------------------------*/

struct sched_part part = { .sched_size = sizeof(struct insp_sched) };
SCHED_PART(part);



struct dlist registry;             /* every live scheduler, under reg_lock */


/* ---- schedulers (core observer) ---------------------------------------------*/

static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void process_setup(void)
{
    registry_pid = getpid();
    if (cr_config.block_warn_ms)
        watchdog_start();
}

static void stats_start(struct sched *s)
{
    if (cr_config.stats) {
        s->stats.loop_left_ns = 1;         /* measuring; the first dispatch sets it */
        s->stats.slice_start = clock_now_ns();
    }
}

static void on_sched_created(struct sched *s)
{
    libc_pthread_once(&process_once, process_setup);
    is(s)->s = s;
    stats_start(s);
    is(s)->dump_efd = -1;
    if (cr_config.dump_signal)
        dump_efd_open(s);
    reg_acquire();
    dlist_push(&registry, &is(s)->reg_link);
    sched_count++;
    reg_release();
}

static void on_sched_destroyed(struct sched *s)
{
    reg_acquire();
    dlist_remove(&registry, &is(s)->reg_link);
    stats_add(&gone, &s->stats);
    reg_release();
    if (is(s)->dump_efd >= 0)
        ownfd_release(&is(s)->dump_efd);
}

static void on_fork_child(struct sched *s)
{
    /* Only this scheduler and its current coroutine live on; the watchdog
     * thread did not survive the fork. */
    reg_lock = (cr_lock_t)CR_LOCK_INIT;
    reg_holder = 0;
    registry.head = NULL;
    dump_fork_child();
    memset(&gone, 0, sizeof gone);
    sched_count = 0;
    if (s) {
        dlist_push(&registry, &is(s)->reg_link);
        sched_count = 1;
        memset(&s->stats, 0, sizeof s->stats);
        stats_start(s);
        if (cr_config.dump_signal) {       /* the eventfd is shared with the parent */
            if (is(s)->dump_efd >= 0)
                ownfd_release(&is(s)->dump_efd);
            dump_efd_open(s);
        }
    }
    if (cr_config.block_warn_ms && registry_pid != getpid()) {
        registry_pid = getpid();
        watchdog_start();
    }
}

static const struct sched_observer observer = {
    .sched_created = on_sched_created,
    .sched_destroyed = on_sched_destroyed,
    .fork_child = on_fork_child,
    .loop_turn = on_loop_turn,
};
SCHED_OBSERVER(observer);

static const struct own_signal_user signal_user = { signal_taken };
REGISTER(own_signal_users, signal_user);

/* At load, before the program's code runs: the stats table is printed at
 * exit even when no scheduler was ever made (a program that never blocked
 * nor made a thread), and corun's signal handlers come first, so that a
 * program setting its own action for one of those signals always wins. */
__attribute__((constructor)) static void inspect_on_load(void)
{
    config_load();
    if (cr_config.stats)
        atexit(stats_print);
    if (cr_config.dump_signal)
        dump_install();
    if (cr_config.block_warn_ms)
        detect_install();
}
