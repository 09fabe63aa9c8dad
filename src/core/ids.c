/* The process's ids on every kernel thread (ids.h).
 *
 * One change at a time: the caller lists the process's kernel threads
 * (/proc/self/task, through corun's /proc fd, opened before the process's
 * second kernel thread, so that a chroot does not hide it: sshd's
 * privilege separation chroots, then drops its ids), queues glibc's SIGSETXID to each with a value naming the change,
 * and waits until each has made the call in the signal's handler (the
 * caller's own thread too: a signal it queues to itself runs as the call
 * returns). It lists again until a listing finds no thread it has not
 * done: a thread made meanwhile by one not yet done is seen then, and one
 * made by a thread already done has the new ids from birth. The signal is
 * glibc's because no program can catch or block it (sigaction and
 * sigprocmask refuse or drop it), so no thread of the program's misses it;
 * glibc's own handler runs for the signals that are not corun's.
 *
 * Left out: io_uring's kernel workers (they take no signals), and a
 * thread that blocks the signal with a raw system call for more than a
 * second (warned about; it keeps its ids, where glibc would wait for it
 * for good). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "catch.h"
#include "diag.h"
#include "ids.h"
#include "lock.h"
#include "ownfd.h"

#define IDS_SIGNAL 33                /* glibc's SIGSETXID */
#define PF_IO_WORKER 0x10            /* the kernel's flag of io_uring's workers (stat field 9) */

#define NO_RESULT LONG_MIN

enum { SLOT_SENT = 1, SLOT_CLAIMED, SLOT_DONE, SLOT_SKIPPED };

struct ids_slot {
    int tid;
    int state;
    int64_t sent_ns;                 /* when it was signalled (the give-up's clock) */
};

struct ids_table {
    unsigned n, cap;
    struct ids_slot s[];
};

static cr_lock_t ids_lock = CR_LOCK_INIT;

/* The change in progress, read by the handlers. */
static struct {
    long nr, a, b, c;
    int gen;                             /* names the change in the signal's value */
    int active;                          /* gen is in progress */
    int acks;                            /* futex word: bumped by each handler */
    long result;                         /* the first thread's result (0 or -errno), or NO_RESULT */
    int differ;                          /* some thread's result differed */
    struct ids_table *table;
} cmd;

/* glibc's handler (or whatever the signal had), for the signals not ours. */
static struct kernel_sigaction chained;

static void ids_handler(int sig, siginfo_t *si, void *uc);

/* ---- the handler (any kernel thread; no TLS: a green thread's FS base may
 * be mid-switch) ------------------------------------------------------------*/

static void ids_handler(int sig, siginfo_t *si, void *uc)
{
    if (si->si_code == SI_QUEUE && si->si_pid == (pid_t)catch_raw(SYS_getpid, 0, 0, 0, 0, 0, 0)) {
        if (!__atomic_load_n(&cmd.active, __ATOMIC_ACQUIRE) ||
            si->si_value.sival_int != __atomic_load_n(&cmd.gen, __ATOMIC_ACQUIRE))
            return;                       /* a change that ended: nothing owed */
        int tid = (int)catch_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
        struct ids_table *t = __atomic_load_n(&cmd.table, __ATOMIC_ACQUIRE);
        unsigned n = __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
        for (unsigned i = 0; i < n; i++) {
            struct ids_slot *sl = &t->s[i];
            int want = SLOT_SENT;
            if (sl->tid != tid ||
                !__atomic_compare_exchange_n(&sl->state, &want, SLOT_CLAIMED, false,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                continue;
            long r = catch_raw(cmd.nr, cmd.a, cmd.b, cmd.c, 0, 0, 0);
            long first = NO_RESULT;
            if (!__atomic_compare_exchange_n(&cmd.result, &first, r, false, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE) && first != r)
                __atomic_store_n(&cmd.differ, 1, __ATOMIC_RELEASE);
            __atomic_store_n(&sl->state, SLOT_DONE, __ATOMIC_RELEASE);
            __atomic_add_fetch(&cmd.acks, 1, __ATOMIC_ACQ_REL);
            catch_raw(SYS_futex, (long)&cmd.acks, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
            return;
        }
        return;
    }
    /* glibc's own broadcast (a setuid made inside libc, below the hooks) */
    uintptr_t h = __atomic_load_n(&chained.handler, __ATOMIC_ACQUIRE);
    if (h == (uintptr_t)SIG_DFL || h == (uintptr_t)SIG_IGN)
        return;
    if (chained.flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))h)(sig, si, uc);
    else
        ((void (*)(int))h)(sig);
}

/* Ours the kernel's action for the signal? Installs it if not (glibc sets
 * its own at a process's first real thread, which may come after). */
static bool handler_in_place(void)
{
    struct kernel_sigaction cur;
    if (catch_raw(SYS_rt_sigaction, IDS_SIGNAL, 0, (long)&cur, 8, 0, 0) != 0)
        return false;
    if (cur.handler == (uintptr_t)ids_handler)
        return true;
    chained = cur;
    struct kernel_sigaction sa = {
        .handler = (uintptr_t)ids_handler,
        .flags = SA_SIGINFO | SA_RESTART | KSA_RESTORER,
        .restorer = catch_restorer,
    };
    return catch_raw(SYS_rt_sigaction, IDS_SIGNAL, (long)&sa, 0, 8, 0, 0) == 0;
}

/* ---- the caller's side -------------------------------------------------------*/

static int64_t now_ns(void)
{
    struct timespec ts;
    catch_raw(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A small /proc file of this process's (relative to /proc/self/), read
 * whole: its length, or -1. */
static ssize_t read_self_file(const char *rel, char *buf, size_t size)
{
    char path[64] = "self/";
    size_t l = strlen(rel);
    if (l + 6 > sizeof path)
        return -1;
    memcpy(path + 5, rel, l + 1);
    int fd = (int)catch_raw(SYS_openat, ownfd_proc(), (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return -1;
    long n = catch_raw(SYS_read, fd, (long)buf, (long)size - 1, 0, 0, 0);
    catch_raw(SYS_close, fd, 0, 0, 0, 0, 0);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static void task_path(char *out, size_t size, int tid, const char *file)
{
    /* "task/TID/FILE" without snprintf's locale and stdio */
    char digits[16];
    int d = 0;
    for (unsigned v = (unsigned)tid; d == 0 || v; v /= 10)
        digits[d++] = (char)('0' + v % 10);
    size_t o = 0;
    const char *pre = "task/";
    while (*pre && o + 1 < size)
        out[o++] = *pre++;
    while (d && o + 1 < size)
        out[o++] = digits[--d];
    if (o + 1 < size)
        out[o++] = '/';
    while (*file && o + 1 < size)
        out[o++] = *file++;
    out[o] = '\0';
}

/* An io_uring worker of the kernel's: it takes no signal. */
static bool is_io_worker(int tid)
{
    char path[48], buf[512];
    task_path(path, sizeof path, tid, "stat");
    if (read_self_file(path, buf, sizeof buf) < 0)
        return false;
    const char *p = strrchr(buf, ')');          /* the name may hold spaces and parens */
    if (!p)
        return false;
    for (int field = 2; field < 9; field++) {   /* to the 9th field, flags */
        p = strchr(p + 1, ' ');
        if (!p)
            return false;
    }
    return (strtoul(p + 1, NULL, 10) & PF_IO_WORKER) != 0;
}

/* The thread blocks the signal (its SigBlk line has bit 33). */
static bool blocks_signal(int tid)
{
    char path[48], buf[2048];
    task_path(path, sizeof path, tid, "status");
    if (read_self_file(path, buf, sizeof buf) < 0)
        return false;
    const char *p = strstr(buf, "\nSigBlk:");
    if (!p)
        return false;
    unsigned long long m = strtoull(p + 8, NULL, 16);
    return (m >> (IDS_SIGNAL - 1)) & 1;
}

static bool table_add(int tid)
{
    struct ids_table *t = cmd.table;
    for (unsigned i = 0; i < t->n; i++)
        if (t->s[i].tid == tid)
            return false;
    if (t->n == t->cap) {
        /* No handler writes the table now (no slot is SENT while the caller
         * lists): copy it; the old one stays mapped for a late reader. */
        size_t cap = t->cap * 2;
        struct ids_table *nt = (void *)catch_raw(SYS_mmap, 0,
                                                 (long)(sizeof *nt + cap * sizeof nt->s[0]),
                                                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                                 -1, 0);
        if ((unsigned long)nt > -4096UL)
            return false;
        memcpy(nt->s, t->s, t->n * sizeof t->s[0]);
        nt->cap = (unsigned)cap;
        nt->n = t->n;
        __atomic_store_n(&cmd.table, nt, __ATOMIC_RELEASE);
        t = nt;
    }
    t->s[t->n] = (struct ids_slot){ .tid = tid, .state = 0 };
    __atomic_store_n(&t->n, t->n + 1, __ATOMIC_RELEASE);
    return true;
}

/* Add the threads /proc lists that are not in the table: how many. */
static int list_threads(void)
{
    int fd = (int)catch_raw(SYS_openat, ownfd_proc(), (long)"self/task",
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return -1;
    int added = 0;
    char buf[4096];
    for (;;) {
        long n = catch_raw(SYS_getdents64, fd, (long)buf, sizeof buf, 0, 0, 0);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            int tid = (int)strtol(e->d_name, NULL, 10);
            if (table_add(tid)) {
                added++;
                if (is_io_worker(tid))
                    cmd.table->s[cmd.table->n - 1].state = SLOT_SKIPPED;
            }
        }
    }
    catch_raw(SYS_close, fd, 0, 0, 0, 0, 0);
    return added;
}

static void send_to(struct ids_slot *sl, pid_t pid)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = IDS_SIGNAL;
    info.si_code = SI_QUEUE;
    info.si_pid = pid;
    info.si_uid = (uid_t)catch_raw(SYS_getuid, 0, 0, 0, 0, 0, 0);
    info.si_value.sival_int = cmd.gen;
    sl->sent_ns = now_ns();
    __atomic_store_n(&sl->state, SLOT_SENT, __ATOMIC_RELEASE);
    long r = catch_raw(SYS_rt_tgsigqueueinfo, pid, sl->tid, IDS_SIGNAL, (long)&info, 0, 0);
    int want = SLOT_SENT;
    if (r == -ESRCH)                     /* gone already */
        __atomic_compare_exchange_n(&sl->state, &want, SLOT_SKIPPED, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    else if (r != 0)                     /* EAGAIN: the signal queue is full: later */
        __atomic_compare_exchange_n(&sl->state, &want, 0, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
}

/* Signal every slot not yet signalled and wait until none is pending. */
static void run_round(pid_t pid)
{
    for (;;) {
        int seen = __atomic_load_n(&cmd.acks, __ATOMIC_ACQUIRE);
        bool pending = false;
        struct ids_table *t = cmd.table;
        for (unsigned i = 0; i < t->n; i++) {
            struct ids_slot *sl = &t->s[i];
            int st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
            if (st == 0)
                send_to(sl, pid);
            st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
            if (st == SLOT_SENT || st == SLOT_CLAIMED || st == 0)
                pending = true;
        }
        if (!pending)
            return;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        long r = catch_raw(SYS_futex, (long)&cmd.acks, FUTEX_WAIT_PRIVATE, seen, (long)&ts, 0, 0);
        if (r != -ETIMEDOUT)
            continue;
        /* Slow: a thread gone with the signal pending, a handler replaced
         * (glibc's first thread), or one that keeps the signal blocked. */
        if (!handler_in_place())
            diag_log(LOG_WARN, "setuid family: cannot install the handler of signal %d",
                     IDS_SIGNAL);
        int64_t now = now_ns();
        for (unsigned i = 0; i < t->n; i++) {
            struct ids_slot *sl = &t->s[i];
            if (__atomic_load_n(&sl->state, __ATOMIC_ACQUIRE) != SLOT_SENT)
                continue;
            int want = SLOT_SENT;
            long alive = catch_raw(SYS_tgkill, pid, sl->tid, 0, 0, 0, 0);
            if (alive == -ESRCH) {
                __atomic_compare_exchange_n(&sl->state, &want, SLOT_SKIPPED, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
            } else if (now - sl->sent_ns > 1000000000 && blocks_signal(sl->tid)) {
                if (__atomic_compare_exchange_n(&sl->state, &want, SLOT_SKIPPED, false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                    diag_log(LOG_WARN, "setuid family: thread %d blocks signal %d for more "
                             "than a second: its ids stay as they were", sl->tid, IDS_SIGNAL);
            } else {
                /* queued again: the handler's claim makes a second one a no-op */
                siginfo_t info;
                memset(&info, 0, sizeof info);
                info.si_signo = IDS_SIGNAL;
                info.si_code = SI_QUEUE;
                info.si_pid = pid;
                info.si_uid = (uid_t)catch_raw(SYS_getuid, 0, 0, 0, 0, 0, 0);
                info.si_value.sival_int = cmd.gen;
                catch_raw(SYS_rt_tgsigqueueinfo, pid, sl->tid, IDS_SIGNAL, (long)&info, 0, 0);
            }
        }
    }
}

int ids_set_all(long nr, long a, long b, long c)
{
    int saved = errno;
    cr_lock(&ids_lock);
    bool one_thread = ownfd_proc() < 0;
    if (one_thread || !handler_in_place()) {
        /* No /proc fd: the process never had a second kernel thread
         * (ownfd.h), so the call here is the whole change. Or no /proc
         * when it had, or the signal's action refused: this thread only,
         * said once. */
        static bool warned;
        if (!one_thread && !__atomic_exchange_n(&warned, true, __ATOMIC_ACQ_REL))
            diag_log(LOG_WARN, "setuid family: signal %d's action refused: ids change on the "
                     "calling OS thread only", IDS_SIGNAL);
        long r = catch_raw(nr, a, b, c, 0, 0, 0);
        cr_unlock(&ids_lock);
        if (r < 0) {
            errno = (int)-r;
            return -1;
        }
        errno = saved;
        return 0;
    }
    if (!cmd.table) {
        size_t cap = 64;
        cmd.table = (void *)catch_raw(SYS_mmap, 0,
                                      (long)(sizeof *cmd.table + cap * sizeof cmd.table->s[0]),
                                      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if ((unsigned long)cmd.table > -4096UL) {
            cmd.table = NULL;
            cr_unlock(&ids_lock);
            errno = ENOMEM;
            return -1;
        }
        cmd.table->cap = (unsigned)cap;
    }
    pid_t pid = (pid_t)catch_raw(SYS_getpid, 0, 0, 0, 0, 0, 0);
    cmd.table->n = 0;
    cmd.nr = nr;
    cmd.a = a;
    cmd.b = b;
    cmd.c = c;
    cmd.differ = 0;
    cmd.result = NO_RESULT;
    __atomic_store_n(&cmd.gen, cmd.gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&cmd.active, 1, __ATOMIC_RELEASE);
    int listed;
    while ((listed = list_threads()) > 0)
        run_round(pid);
    __atomic_store_n(&cmd.active, 0, __ATOMIC_RELEASE);
    long r = __atomic_load_n(&cmd.result, __ATOMIC_ACQUIRE);
    bool listed_any = r != NO_RESULT;
    if (!listed_any)                     /* /proc/self/task could not be read */
        r = catch_raw(nr, a, b, c, 0, 0, 0);
    if (__atomic_load_n(&cmd.differ, __ATOMIC_ACQUIRE)) {
        /* Threads of one process with different ids: what glibc stops too. */
        diag_fatal("setuid family: the kernel threads' results differ: stopping the process");
    }
    cr_unlock(&ids_lock);
    if (listed < 0 && !listed_any)
        diag_log(LOG_WARN, "setuid family: cannot list /proc/self/task");
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    errno = saved;
    return 0;
}

int ids_initgroups(const char *user, gid_t group)
{
    /* glibc's initgroups: the user's groups (NSS), then as many of them as
     * the kernel takes. */
    int n = 64;
    gid_t *g = NULL;
    for (;;) {
        gid_t *ng = realloc(g, (size_t)n * sizeof *g);
        if (!ng) {
            free(g);
            errno = ENOMEM;
            return -1;
        }
        g = ng;
        int want = n;
        if (getgrouplist(user, group, g, &want) >= 0) {
            n = want;
            break;
        }
        n = want > n ? want : n * 2;
    }
    int r;
    do
        r = ids_set_all(SYS_setgroups, n, (long)g, 0);
    while (r == -1 && errno == EINVAL && --n > 0);
    free(g);
    return r;
}

void ids_fork_child(void)
{
    /* The child has one thread, the forking one: no change in progress. */
    ids_lock = (cr_lock_t)CR_LOCK_INIT;
    cmd.active = 0;
}
