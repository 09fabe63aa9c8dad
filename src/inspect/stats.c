/* CORUN_STATS: the table printed at exit, summed over the live schedulers
 * and those already gone. */
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

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "gsignal.h"
#include "gsync.h"
#include "lock.h"
#include "rawsys.h"
#include "real.h"

/* ---- stats ---------------------------------------------------------------*/

void stats_add(struct sched_stats *sum, const struct sched_stats *x)
{
    sum->created += x->created;
    sum->peak_alive += x->peak_alive;
    sum->switches += x->switches;
    sum->preempted += x->preempted;
    sum->moved_in += x->moved_in;
    sum->from_global += x->from_global;
    for (int k = 0; k < WAIT_KINDS; k++)
        sum->parks[k] += x->parks[k];
    sum->offloads += x->offloads;
    sum->handed_off += x->handed_off;
    sum->fds_registered += x->fds_registered;
    if (x->max_block_ns > sum->max_block_ns) {
        sum->max_block_ns = x->max_block_ns;
        sum->max_block_dispatches = x->max_block_dispatches;
        sum->max_block_top_ns = x->max_block_top_ns;
        sum->max_block_top_id = x->max_block_top_id;
        memcpy(sum->max_block_top_name, x->max_block_top_name, sizeof sum->max_block_top_name);
    }
    if (x->max_slice_ns > sum->max_slice_ns) {
        sum->max_slice_ns = x->max_slice_ns;
        sum->max_slice_id = x->max_slice_id;
        memcpy(sum->max_slice_name, x->max_slice_name, sizeof sum->max_slice_name);
    }
}

static void stats_who(char *buf, size_t n, uint64_t ns, uint64_t id, const char *name)
{
    if (!ns)
        snprintf(buf, n, "-");
    else if (name[0])
        snprintf(buf, n, "green thread %llu '%s'", (unsigned long long)id, name);
    else
        snprintf(buf, n, "green thread %llu", (unsigned long long)id);
}

/* Names of the numbers most often caught (the rest are shown by number). */
static const char *syscall_name(size_t nr)
{
    static const struct { unsigned short nr; const char *name; } names[] = {
        { SYS_read, "read" }, { SYS_write, "write" }, { SYS_close, "close" },
        { SYS_fstat, "fstat" }, { SYS_newfstatat, "newfstatat" }, { SYS_lseek, "lseek" },
        { SYS_mmap, "mmap" }, { SYS_mprotect, "mprotect" }, { SYS_munmap, "munmap" },
        { SYS_brk, "brk" }, { SYS_rt_sigaction, "rt_sigaction" },
        { SYS_rt_sigprocmask, "rt_sigprocmask" }, { SYS_ioctl, "ioctl" },
        { SYS_pread64, "pread64" }, { SYS_pwrite64, "pwrite64" }, { SYS_readv, "readv" },
        { SYS_writev, "writev" }, { SYS_poll, "poll" }, { SYS_ppoll, "ppoll" },
        { SYS_madvise, "madvise" }, { SYS_getpid, "getpid" }, { SYS_getppid, "getppid" },
        { SYS_gettid, "gettid" }, { SYS_sendto, "sendto" }, { SYS_recvfrom, "recvfrom" },
        { SYS_sendmsg, "sendmsg" }, { SYS_recvmsg, "recvmsg" }, { SYS_clone, "clone" },
        { SYS_clone3, "clone3" }, { SYS_wait4, "wait4" }, { SYS_fcntl, "fcntl" },
        { SYS_futex, "futex" }, { SYS_openat, "openat" }, { SYS_getdents64, "getdents64" },
        { SYS_clock_nanosleep, "clock_nanosleep" }, { SYS_nanosleep, "nanosleep" },
        { SYS_epoll_wait, "epoll_wait" }, { SYS_epoll_pwait, "epoll_pwait" },
        { SYS_io_uring_enter, "io_uring_enter" }, { SYS_statx, "statx" },
        { SYS_getrandom, "getrandom" }, { SYS_sched_yield, "sched_yield" },
        { SYS_rt_sigreturn, "rt_sigreturn" }, { SYS_select, "select" },
        { SYS_accept4, "accept4" }, { SYS_connect, "connect" }, { SYS_socket, "socket" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].nr == nr)
            return names[i].name;
    return NULL;
}

/* Calls the catch turned into signals (catch.h), most frequent first. */
static void stats_print_caught(int fd)
{
    unsigned long total = 0, seen[CATCH_NR_MAX + 1];
    for (size_t i = 0; i <= CATCH_NR_MAX; i++)
        total += seen[i] = __atomic_load_n(&catch_counts[i], __ATOMIC_RELAXED);
    diag_printf_fd(fd, "  %-28s %12lu\n", "calls caught (no hook)", total);
    for (int shown = 0; shown < 8; shown++) {
        size_t top = 0;
        for (size_t i = 1; i <= CATCH_NR_MAX; i++)
            if (seen[i] > seen[top])
                top = i;
        if (!seen[top])
            break;
        char label[48];
        const char *name = top < CATCH_NR_MAX ? syscall_name(top) : "others";
        if (name)
            snprintf(label, sizeof label, "  caught: %s", name);
        else
            snprintf(label, sizeof label, "  caught: syscall %zu", top);
        diag_printf_fd(fd, "  %-28s %12lu\n", label, seen[top]);
        seen[top] = 0;
    }
}

void stats_print(void)
{
    CATCH_HOLD();               /* an atexit handler: the program's context */
    struct sched_stats sum;
    reg_acquire();
    sum = gone;
    /* The process may exit while green threads run without the loop having
     * turned (the calling thread's scheduler, at least): that stretch counts. */
    struct sched *self = sched_tls;
    if (self && self->stats.loop_left_ns && self->current) {
        sched_stats_flush(self);
    }
    /* Per OS thread too, when there are several (M:N workers). */
    enum { PER_MAX = 16 };
    struct { pid_t tid; struct sched_stats st; } per[PER_MAX];
    unsigned nper = 0;
    REG_FOREACH(s) {
        stats_add(&sum, &s->stats);
        if (nper < PER_MAX) {
            per[nper].tid = s->tid;
            per[nper++].st = s->stats;
        }
    }
    unsigned long nsched = sched_count;
    reg_release();

    int fd = diag_fd();
    unsigned long parks = 0;
    for (int k = 0; k < WAIT_KINDS; k++)
        parks += sum.parks[k];
    diag_printf_fd(fd, "corun stats (pid %d, %lu scheduler%s)\n", (int)getpid(), nsched,
                   nsched == 1 ? "" : "s");
    diag_printf_fd(fd, "  %-28s %12lu\n", "green threads created", sum.created);
    /* Per-scheduler peaks do not add up across workers: the process's. */
    unsigned long peak = sched_mn_peak_alive();
    diag_printf_fd(fd, "  %-28s %12lu\n", "green threads peak alive",
                   peak && nsched > 1 ? peak : sum.peak_alive);
    diag_printf_fd(fd, "  %-28s %12lu\n", "switches", sum.switches);
    diag_printf_fd(fd, "  %-28s %12lu\n", "preempted (CPU slices)", sum.preempted);
    if (nsched > 1) {
        diag_printf_fd(fd, "  %-28s %12lu\n", "moved to another OS thread", sum.moved_in);
        diag_printf_fd(fd, "  %-28s %12lu\n", "taken from the global queue", sum.from_global);
    }
    diag_printf_fd(fd, "  %-28s %12lu\n", "parks", parks);
    /* The reasons users ask about first, always; the rest when seen. */
    static const int always[] = { WAIT_READ, WAIT_WRITE, WAIT_ACCEPT, WAIT_CONNECT, WAIT_POLL,
                                  WAIT_SLEEP, WAIT_DNS, WAIT_MUTEX, WAIT_COND, WAIT_JOIN,
                                  WAIT_CHILD };
    bool shown[WAIT_KINDS] = { false };
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        char label[40];
        snprintf(label, sizeof label, "  parks: %s", inspect_wait_name(always[i]));
        diag_printf_fd(fd, "  %-28s %12lu\n", label, sum.parks[always[i]]);
        shown[always[i]] = true;
    }
    for (int k = 0; k < WAIT_KINDS; k++) {
        if (shown[k] || !sum.parks[k])
            continue;
        char label[40];
        snprintf(label, sizeof label, "  parks: %s", inspect_wait_name(k));
        diag_printf_fd(fd, "  %-28s %12lu\n", label, sum.parks[k]);
    }
    diag_printf_fd(fd, "  %-28s %12lu\n", "offloads (pool calls)", sum.offloads);
    /* Each time, the OS thread stuck in the call is one more until it
     * returns (the process's first thread for good: it runs nothing after). */
    diag_printf_fd(fd, "  %-28s %12lu\n", "handed to a spare OS thread", sum.handed_off);
    diag_printf_fd(fd, "  %-28s %12lu\n", "fds tracked (registered)", sum.fds_registered);
    diag_printf_fd(fd, "  %-28s %s\n", "sync objects' CAS", gsync_solo_state());
    /* The block is blamed on the green thread that ran longest in it. */
    char who[80] = "-";
    stats_who(who, sizeof who, sum.max_block_top_ns, sum.max_block_top_id, sum.max_block_top_name);
    diag_printf_fd(fd, "  %-28s %9.3f ms  (by %s, %.3f ms of it; %lu green thread run%s)\n",
                   "longest loop block", (double)sum.max_block_ns / 1e6, who,
                   (double)sum.max_block_top_ns / 1e6, sum.max_block_dispatches,
                   sum.max_block_dispatches == 1 ? "" : "s");
    stats_who(who, sizeof who, sum.max_slice_ns, sum.max_slice_id, sum.max_slice_name);
    diag_printf_fd(fd, "  %-28s %9.3f ms  (by %s)\n", "longest run without a switch",
                   (double)sum.max_slice_ns / 1e6, who);
    stats_print_caught(fd);
    for (unsigned i = 0; nsched > 1 && i < nper; i++) {
        unsigned long p = 0;
        for (int k = 0; k < WAIT_KINDS; k++)
            p += per[i].st.parks[k];
        diag_printf_fd(fd, "  OS thread %d: %lu created, %lu switches, %lu preempted, %lu parks, "
                       "%lu moved in, %lu out, %lu taken from the global queue",
                       (int)per[i].tid, per[i].st.created, per[i].st.switches,
                       per[i].st.preempted, p, per[i].st.moved_in, per[i].st.moved_out,
                       per[i].st.from_global);
        /* Its scheduler went to another OS thread while one was stuck in a
         * real call (the tid is the last one's). */
        if (per[i].st.handed_off)
            diag_printf_fd(fd, ", handed over %lu time%s", per[i].st.handed_off,
                           per[i].st.handed_off == 1 ? "" : "s");
        diag_printf_fd(fd, "\n");
    }
}
