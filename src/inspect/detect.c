/* The blocking detector (CORUN_BLOCK_WARN_MS): a watchdog thread that
 * notices a loop that stopped turning and tells what its thread is doing. */
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

/* ---- blocking detector ---------------------------------------------------*/

#define SITES_MAX 256

bool detect_signal_lost;           /* the program took CORUN_DETECT_SIGNAL */
bool dump_signal_lost;

void signal_taken(int sig)
{
    if (cr_config.dump_signal && sig == cr_config.dump_signal &&
        !__atomic_exchange_n(&dump_signal_lost, true, __ATOMIC_RELAXED))
        diag_printf_fd(diag_fd(), "corun: warning: the program sets its own action for signal %d "
                           "(%s), the live dump's (CORUN_DUMP_SIGNAL): it keeps it, and the "
                           "dump is off; choose another signal for the dump\n", sig,
                       sigabbrev_np(sig) ? sigabbrev_np(sig) : "real-time");
    if (cr_config.block_warn_ms && sig == CORUN_DETECT_SIGNAL &&
        !__atomic_exchange_n(&detect_signal_lost, true, __ATOMIC_RELAXED))
        diag_printf_fd(diag_fd(), "corun: warning: the program sets its own action for signal %d "
                           "(SIGRTMAX-1), which the blocking detector (CORUN_BLOCK_WARN_MS) "
                           "uses to take backtraces: it keeps it, and the detector's warnings "
                           "come without exact backtraces from now on\n", sig);
}

static uint64_t sites[SITES_MAX];         /* hashes of call sites already reported */
static int sites_used;

static bool site_new(uint64_t h)
{
    /* Called from the watchdog and from loop threads' handlers: a race at
     * worst repeats one warning. */
    int used = __atomic_load_n(&sites_used, __ATOMIC_ACQUIRE);
    for (int i = 0; i < used && i < SITES_MAX; i++)
        if (__atomic_load_n(&sites[i], __ATOMIC_RELAXED) == h)
            return false;
    int slot = __atomic_fetch_add(&sites_used, 1, __ATOMIC_ACQ_REL);
    if (slot < SITES_MAX)
        __atomic_store_n(&sites[slot], h, __ATOMIC_RELEASE);
    return true;
}

static void detect_header(int fd, struct sched *s, unsigned ms, const char *how)
{
    struct corun *cur = s->current;
    char who[64];
    co_label(cur, who, sizeof who);
    diag_printf_fd(fd, "corun: the loop of OS thread %d has not turned for %u ms: green thread "
                       "%s%s is %s\n",
                   (int)s->tid, ms, who, cur->flags & CO_MAIN ? " (main)" : "", how);
}

/* On the blocked loop's own thread: the interrupted code is below us. */
/* The watchdog asks a blocked loop thread for its backtrace (one at a
 * time): the handler only captures it; the watchdog symbolises and prints. */
static void *cap_frames[MAX_FRAMES + 2];
static void *cap_restorer;                /* the signal trampoline: frames below it are ours */
static int cap_n;
static volatile sig_atomic_t cap_armed, cap_done;

__attribute__((noinline)) static void detect_signal_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    if (!cap_armed)
        return;
    if (sched_blocking_end_check())   /* it interrupted a real blocking call (handoff.c) */
        catch_frame_refresh(uc);
    CATCH_HOLD();
    int saved = errno;
    cap_n = backtrace(cap_frames, MAX_FRAMES + 2);
    __atomic_store_n(&cap_done, 1, __ATOMIC_RELEASE);
    errno = saved;
}

/* Where the loop is stuck, for "once per site": the innermost named
 * function of the program (not libc, the vDSO, corun or a sanitizer
 * runtime; PLT stubs have no name), else the innermost such frame, else
 * the innermost frame. */
static uint64_t site_of(void *const *frames, int n)
{
    static Dl_info libc, self;
    if (!libc.dli_fname) {
        dladdr((void *)&getpid, &libc);
        dladdr((void *)&site_of, &self);
    }
    uint64_t unnamed = 0;
    for (int i = 0; i < n; i++) {
        Dl_info d;
        if (!dladdr(frames[i], &d) || !d.dli_fname)
            continue;
        if (d.dli_fbase == libc.dli_fbase || d.dli_fbase == self.dli_fbase ||
            strstr(d.dli_fname, "vdso") || strstr(d.dli_fname, "libasan") ||
            strstr(d.dli_fname, "libubsan"))
            continue;                      /* libc, corun, sanitizer runtimes */
        if (d.dli_saddr)
            return (uint64_t)(uintptr_t)d.dli_saddr;
        if (!unnamed)
            unnamed = (uint64_t)(uintptr_t)frames[i];
    }
    if (unnamed)
        return unnamed;
    return n > 0 ? (uint64_t)(uintptr_t)frames[0] : 0;
}

/* Signal the loop thread and wait (briefly) for its backtrace. */
static int capture_backtrace(struct sched *s, void **out, int max)
{
    cap_done = 0;
    cap_armed = 1;
    int n = 0;
    if (syscall(SYS_tgkill, getpid(), s->tid, CORUN_DETECT_SIGNAL) == 0) {
        struct timespec ms = { 0, 1000000 };
        for (int i = 0; i < 500 && !__atomic_load_n(&cap_done, __ATOMIC_ACQUIRE); i++)
            syscall(SYS_nanosleep, &ms, NULL);
        if (cap_done) {
            /* Usually [0]: the handler, [1]: the signal trampoline, [2]:
             * where the thread was; an intercepted backtrace() may differ. */
            int first = cap_n > 2 ? 2 : cap_n;
            for (int i = 0; i < cap_n && i < 4; i++)
                if (cap_restorer && (uintptr_t)cap_frames[i] - (uintptr_t)cap_restorer < 16) {
                    first = i + 1;
                    break;
                }
            for (int i = first; i < cap_n && n < max; i++)
                out[n++] = cap_frames[i];
        }
    }
    cap_armed = 0;
    return n;
}

/* System calls a signal does not disturb under SA_RESTART (signal(7)),
 * barring socket timeouts. */
static bool restartable_syscall(long nr)
{
    switch (nr) {
    case SYS_read: case SYS_write: case SYS_readv: case SYS_writev: case SYS_pread64:
    case SYS_pwrite64: case SYS_open: case SYS_openat: case SYS_ioctl: case SYS_wait4:
    case SYS_waitid: case SYS_flock: case SYS_futex: case SYS_accept: case SYS_accept4:
    case SYS_connect: case SYS_recvfrom: case SYS_recvmsg: case SYS_sendto: case SYS_sendmsg:
    case SYS_recvmmsg: case SYS_sendmmsg: case SYS_getrandom: case SYS_fsync:
    case SYS_fdatasync:
        return true;
    default:
        return false;
    }
}

static const char *syscall_name(long nr)
{
    switch (nr) {
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_select: return "select";
    case SYS_pselect6: return "pselect6";
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case SYS_pause: return "pause";
    case SYS_rt_sigsuspend: return "rt_sigsuspend";
    case SYS_rt_sigtimedwait: return "rt_sigtimedwait";
    case SYS_msgrcv: return "msgrcv";
    case SYS_semop: return "semop";
    case SYS_semtimedop: return "semtimedop";
    case SYS_io_getevents: return "io_getevents";
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_readv: return "readv";
    case SYS_writev: return "writev";
    case SYS_pread64: return "pread64";
    case SYS_pwrite64: return "pwrite64";
    case SYS_futex: return "futex";
    case SYS_accept: return "accept";
    case SYS_accept4: return "accept4";
    case SYS_connect: return "connect";
    case SYS_recvfrom: return "recvfrom";
    case SYS_sendto: return "sendto";
    case SYS_recvmsg: return "recvmsg";
    case SYS_sendmsg: return "sendmsg";
    case SYS_wait4: return "wait4";
    case SYS_flock: return "flock";
    case SYS_openat: return "openat";
    default: return "system call";
    }
}

/* Is addr a return address: does a call instruction end just before it?
 * (call rel32; call *reg; call *disp8(reg); call *disp32(reg) or *rip+disp32) */
static bool after_call(uintptr_t addr)
{
    unsigned char b[7];
    if (addr < 8 || !safe_read((void *)(addr - 7), b, sizeof b))
        return false;
    return b[2] == 0xE8 || (b[5] == 0xFF && (b[6] & 0x38) == 0x10) ||
           (b[4] == 0xFF && (b[5] & 0x38) == 0x10) || (b[1] == 0xFF && (b[2] & 0x38) == 0x10);
}

/* Probable callers of a thread stopped at sp, found by scanning its stack
 * for return addresses into loaded code: a heuristic (stale values can
 * show up), used where the thread cannot be interrupted to unwind it. */
static int stack_scan(uintptr_t sp, uintptr_t hi, void **out, int max)
{
    int n = 0;
    for (int i = 0; i < 2048 && n < max && sp + (uintptr_t)i * 8 + 8 <= hi; i++) {
        uint64_t v;
        if (!safe_read((void *)(sp + (uintptr_t)i * 8), &v, 8))
            break;
        Dl_info info;
        if (v > 4096 && dladdr((void *)v, &info) && info.dli_fname && after_call(v))
            out[n++] = (void *)v;
    }
    return n;
}

/* What the thread is doing, from the kernel: -1 running (or unknown), else
 * the system call number, with its first argument, stack pointer and pc. */
static long thread_syscall(pid_t tid, unsigned long *arg0, unsigned long *sp, unsigned long *pc)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    if (rs_read_file(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = buf, *end;
    long nr = strtol(p, &end, 10);
    if (end == p)
        return -1;                         /* "running" */
    unsigned long v[8] = { 0 };
    int k = 0;
    for (p = end; k < 8; k++, p = end) {
        v[k] = strtoul(p, &end, 16);
        if (end == p)
            break;
    }
    if (k < 8)
        return -1;
    *arg0 = v[0];
    *sp = v[6];
    *pc = v[7];                            /* args 1..6, then sp, then pc */
    return nr;
}

static void detect_check(struct sched *s, uint64_t now, uint64_t limit_ns)
{
    unsigned long turns = __atomic_load_n(&s->turns, __ATOMIC_RELAXED);
    bool idle = __atomic_load_n(&s->polling, __ATOMIC_RELAXED);
    if (turns != is(s)->watch.turns || idle) {
        is(s)->watch.turns = turns;
        is(s)->watch.since = now;
        return;
    }
    if (now - is(s)->watch.since < limit_ns || is(s)->watch.warned == turns + 1)
        return;
    /* Blocking harms only when something else could run meanwhile. */
    unsigned long alive = __atomic_load_n(&s->alive, __ATOMIC_RELAXED);
    struct corun *runq_head = __atomic_load_n(&s->runq.head, __ATOMIC_RELAXED);
    if (alive <= 1 && !runq_head && !__atomic_load_n(&s->timers.n, __ATOMIC_RELAXED))
        return;
    is(s)->watch.warned = turns + 1;
    unsigned long arg0 = 0, sp = 0, pc = 0;
    long nr = thread_syscall(s->tid, &arg0, &sp, &pc);
    void *frames[MAX_FRAMES];
    int n;
    char how[160];
    const char *intro;
    if (nr < 0 && __atomic_load_n(&detect_signal_lost, __ATOMIC_RELAXED)) {
        n = 0;
        snprintf(how, sizeof how, "running code (CPU-bound, or in a call corun does not "
                                  "intercept)");
        intro = "    (no backtrace: the program uses SIGRTMAX-1, the detector's signal)\n";
    } else if (nr < 0 || (restartable_syscall(nr) &&
                          !__atomic_load_n(&detect_signal_lost, __ATOMIC_RELAXED))) {
        n = capture_backtrace(s, frames, MAX_FRAMES);
        if (nr < 0)
            snprintf(how, sizeof how, "running code (CPU-bound, or in a call corun does not "
                                      "intercept)");
        else
            snprintf(how, sizeof how, "in %s (system call %ld), which corun did not intercept",
                     syscall_name(nr), nr);
        intro = n ? "    backtrace:\n" : "    (no backtrace: the thread did not answer)\n";
    } else {
        snprintf(how, sizeof how, "in %s (system call %ld, first argument %#lx), which corun "
                 "did not intercept", syscall_name(nr), nr, arg0);
        intro = "    at (not interrupted, so no exact backtrace; callers found on its stack, "
                "probable):\n";
        frames[0] = (void *)pc;
        struct corun *cur = s->current;     /* a green thread's stack ends at stack_hi */
        n = 1 + stack_scan(sp, cur->stack_lo ? (uintptr_t)cur->stack_hi : UINTPTR_MAX, frames + 1, 12);
    }
    if (!site_new(site_of(frames, n)))
        return;
    int fd = diag_fd();
    detect_header(fd, s, cr_config.block_warn_ms, how);
    diag_printf_fd(fd, "%s", intro);
    print_frames(fd, frames, n);
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    uint64_t limit = (uint64_t)cr_config.block_warn_ms * 1000000;
    uint64_t step = limit / 4;
    if (step < 1000000)
        step = 1000000;
    struct timespec ts = ns_to_ts((int64_t)step);
    for (;;) {
        syscall(SYS_nanosleep, &ts, NULL);
        uint64_t now = clock_now_ns();
        reg_acquire();
        REG_FOREACH(s)
            detect_check(s, now, limit);
        reg_release();
    }
    return NULL;
}

void detect_install(void)
{
    void *frames[4];
    backtrace(frames, 4);                  /* loads the unwinder now, not in a handler */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = detect_signal_handler;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    libc_sigaction(CORUN_DETECT_SIGNAL, &sa, NULL);
    struct sigaction now;
    if (libc_sigaction(CORUN_DETECT_SIGNAL, NULL, &now) == 0 && now.sa_restorer)
        cap_restorer = (void *)now.sa_restorer;
}

void watchdog_start(void)
{
    /* libc's pthread_create: a kernel thread the hooks leave alone, with
     * every signal blocked so none of the program's lands there. */
    sigset_t all, old;
    sigfillset(&all);
    libc_pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    if (libc_pthread_create(&t, &attr, watchdog_main, NULL) != 0)
        diag_log(LOG_WARN, "cannot start the blocking detector's thread");
    pthread_attr_destroy(&attr);
    libc_pthread_sigmask(SIG_SETMASK, &old, NULL);
}
