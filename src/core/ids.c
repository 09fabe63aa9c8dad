/* The process's ids on every kernel thread (ids.h).
 *
 * One change at a time: the caller lists the process's kernel threads
 * (/proc/self/task, through corun's /proc fd, opened before the process's
 * second kernel thread, so that a chroot does not hide it: sshd's
 * privilege separation chroots, then drops its ids), queues glibc's
 * SIGSETXID to each other one with a value naming the change, and waits
 * until each has made the call in the signal's handler. It lists again
 * until a listing finds no thread it has not done: a thread made
 * meanwhile by one not yet done is seen then, and one made by a thread
 * already done has the new ids from birth. The signal is glibc's because
 * no program can catch or block it (sigaction and sigprocmask refuse or
 * drop it), so no thread of the program's misses it; glibc's own handler
 * runs for the signals that are not corun's.
 *
 * The caller's own thread makes the call last, as glibc's does; every
 * thread's result must be the same (else the process stops, as glibc's
 * does). Left out: io_uring's kernel workers (they take no signals) and
 * threads exiting or gone. A thread that keeps the signal blocked with a
 * raw system call is waited for, as glibc waits (warned about after a
 * second). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdbool.h>
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
#include "clock.h"
#include "diag.h"
#include "ids.h"
#include "lock.h"
#include "ownfd.h"

#define IDS_SIGNAL 33                /* glibc's SIGSETXID */
#define PF_EXITING 0x4               /* the kernel's task flags (stat field 9) */
#define PF_IO_WORKER 0x10

#define NO_RESULT LONG_MIN

/* A slot's word: the tid in the high half, the state in the low one, so
 * that a handler's claim checks both at once. */
enum { SLOT_TO_SEND, SLOT_SENT, SLOT_CLAIMED, SLOT_DONE, SLOT_SKIPPED };
#define WORD(tid, state) ((uint64_t)(uint32_t)(tid) << 32 | (uint32_t)(state))
#define WORD_STATE(w) ((int)(uint32_t)(w))

struct ids_slot {
    uint64_t word;
    int64_t sent_ns;                 /* when it was signalled */
    bool warned;
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
            uint64_t want = WORD(tid, SLOT_SENT);
            if (!__atomic_compare_exchange_n(&sl->word, &want, WORD(tid, SLOT_CLAIMED), false,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                continue;
            long r = catch_raw(cmd.nr, cmd.a, cmd.b, cmd.c, 0, 0, 0);
            long first = NO_RESULT;
            if (!__atomic_compare_exchange_n(&cmd.result, &first, r, false, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE) && first != r)
                __atomic_store_n(&cmd.differ, 1, __ATOMIC_RELEASE);
            __atomic_store_n(&sl->word, WORD(tid, SLOT_DONE), __ATOMIC_RELEASE);
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
 * its own at a process's first real thread, which may come after): false
 * if it had to, or could not. */
static bool handler_was_in_place(bool *ok)
{
    struct kernel_sigaction cur;
    *ok = false;
    if (catch_raw(SYS_rt_sigaction, IDS_SIGNAL, 0, (long)&cur, 8, 0, 0) != 0)
        return false;
    if (cur.handler == (uintptr_t)ids_handler) {
        *ok = true;
        return true;
    }
    chained = cur;
    /* Everything blocked while it runs but what must not be (faults, the
     * catch's SIGSYS): no handler of the program's nests in it and leaves
     * it by longjmp with its slot claimed. */
    uint64_t keep = 0;
    static const int open_sigs[] = { SIGSYS, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
    for (size_t i = 0; i < sizeof open_sigs / sizeof open_sigs[0]; i++)
        keep |= (uint64_t)1 << (open_sigs[i] - 1);
    struct kernel_sigaction sa = {
        .handler = (uintptr_t)ids_handler,
        .flags = SA_SIGINFO | SA_RESTART | KSA_RESTORER,
        .restorer = catch_restorer,
        .mask = ~keep,
    };
    *ok = catch_raw(SYS_rt_sigaction, IDS_SIGNAL, (long)&sa, 0, 8, 0, 0) == 0;
    return false;
}

/* ---- the caller's side -------------------------------------------------------*/

/* A small /proc file of this process's thread tid (/proc/self/task/TID/
 * file), read whole: its length, or -errno (ENOENT, ESRCH: gone). */
static ssize_t read_task_file(int tid, const char *file, char *buf, size_t size)
{
    /* "self/task/TID/FILE" without snprintf (locale, stdio) */
    char path[64], digits[16];
    int d = 0;
    for (unsigned v = (unsigned)tid; d == 0 || v; v /= 10)
        digits[d++] = (char)('0' + v % 10);
    size_t o = 0;
    for (const char *p = "self/task/"; *p;)
        path[o++] = *p++;
    while (d)
        path[o++] = digits[--d];
    path[o++] = '/';
    for (const char *p = file; *p && o + 1 < sizeof path;)
        path[o++] = *p++;
    path[o] = '\0';
    long fd = catch_raw(SYS_openat, ownfd_proc(), (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return fd;
    long n = catch_raw(SYS_read, fd, (long)buf, (long)size - 1, 0, 0, 0);
    catch_raw(SYS_close, fd, 0, 0, 0, 0, 0);
    if (n <= 0)
        return n < 0 ? n : -ESRCH;      /* an empty stat: the task is being reaped */
    buf[n] = '\0';
    return n;
}

/* Whether the thread can take the signal and make the call: not gone, not
 * exiting (a zombie leader after main's pthread_exit stays listed), not
 * one of io_uring's kernel workers. A file that cannot be read for another
 * reason (no fd left) says yes: the signal's ESRCH tells a gone one, and a
 * thread wrongly left out would keep its ids. */
static bool takes_signals(int tid)
{
    char buf[512];
    ssize_t n = read_task_file(tid, "stat", buf, sizeof buf);
    if (n == -ENOENT || n == -ESRCH)
        return false;
    if (n < 0)
        return true;
    const char *p = strrchr(buf, ')');          /* the name may hold spaces and parens */
    if (!p || p[1] != ' ')
        return false;
    char state = p[2];
    if (state == 'Z' || state == 'X' || state == 'x')
        return false;
    for (int field = 2; field < 9; field++) {   /* to the 9th field, flags */
        p = strchr(p + 1, ' ');
        if (!p)
            return false;
    }
    return !(strtoul(p + 1, NULL, 10) & (PF_EXITING | PF_IO_WORKER));
}

/* The thread blocks the signal (its SigBlk line has bit 33). */
static bool blocks_signal(int tid)
{
    char buf[2048];
    if (read_task_file(tid, "status", buf, sizeof buf) < 0)
        return false;                  /* only for a warning */
    const char *p = strstr(buf, "\nSigBlk:");
    if (!p)
        return false;
    unsigned long long m = strtoull(p + 8, NULL, 16);
    return (m >> (IDS_SIGNAL - 1)) & 1;
}

static bool table_add(int tid, int state)
{
    struct ids_table *t = cmd.table;
    for (unsigned i = 0; i < t->n; i++)
        if ((int)(t->s[i].word >> 32) == tid)
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
            diag_fatal("setuid family: no memory for the list of threads");
        memcpy(nt->s, t->s, t->n * sizeof t->s[0]);
        nt->cap = (unsigned)cap;
        nt->n = t->n;
        __atomic_store_n(&cmd.table, nt, __ATOMIC_RELEASE);
        t = nt;
    }
    t->s[t->n] = (struct ids_slot){ .word = WORD(tid, state) };
    __atomic_store_n(&t->n, t->n + 1, __ATOMIC_RELEASE);
    return true;
}

/* Add the threads /proc lists that are not in the table (the caller's own
 * as done: it makes the call last): how many, or -errno (the whole list
 * could not be read). */
struct listing {
    int self, added;
};

static bool list_one(pid_t tid, void *arg)
{
    struct listing *l = arg;
    int state = tid != l->self && takes_signals(tid) ? SLOT_TO_SEND : SLOT_SKIPPED;
    l->added += table_add(tid, state);
    return true;
}

static int list_threads(int self)
{
    struct listing l = { self, 0 };
    int r = ownfd_each_task(list_one, &l);
    return r < 0 ? r : l.added;
}

static void send_to(struct ids_slot *sl, pid_t pid)
{
    int tid = (int)(sl->word >> 32);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = IDS_SIGNAL;
    info.si_code = SI_QUEUE;
    info.si_pid = pid;
    info.si_uid = (uid_t)catch_raw(SYS_getuid, 0, 0, 0, 0, 0, 0);
    info.si_value.sival_int = cmd.gen;
    sl->sent_ns = (int64_t)clock_now_ns();
    uint64_t st = __atomic_load_n(&sl->word, __ATOMIC_ACQUIRE);
    if (WORD_STATE(st) == SLOT_TO_SEND)
        __atomic_store_n(&sl->word, WORD(tid, SLOT_SENT), __ATOMIC_RELEASE);
    long r = catch_raw(SYS_rt_tgsigqueueinfo, pid, tid, IDS_SIGNAL, (long)&info, 0, 0);
    uint64_t want = WORD(tid, SLOT_SENT);
    if (r == -ESRCH)                     /* gone already */
        __atomic_compare_exchange_n(&sl->word, &want, WORD(tid, SLOT_SKIPPED), false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    else if (r == -EAGAIN)               /* the signal queue is full: at the next check */
        __atomic_compare_exchange_n(&sl->word, &want, WORD(tid, SLOT_TO_SEND), false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    else if (r != 0)
        diag_fatal("setuid family: cannot signal thread %d (error %ld)", tid, -r);
}

#define CHECK_EVERY_NS 10000000LL

/* Signal every listed thread not yet signalled and wait until each made
 * the call or is gone. */
static void run_round(pid_t pid)
{
    int64_t checked = (int64_t)clock_now_ns();
    for (;;) {
        int seen = __atomic_load_n(&cmd.acks, __ATOMIC_ACQUIRE);
        bool pending = false;
        struct ids_table *t = cmd.table;
        for (unsigned i = 0; i < t->n; i++) {
            struct ids_slot *sl = &t->s[i];
            if (WORD_STATE(__atomic_load_n(&sl->word, __ATOMIC_ACQUIRE)) == SLOT_TO_SEND)
                send_to(sl, pid);
            int st = WORD_STATE(__atomic_load_n(&sl->word, __ATOMIC_ACQUIRE));
            pending |= st == SLOT_TO_SEND || st == SLOT_SENT || st == SLOT_CLAIMED;
        }
        if (!pending)
            return;
        struct timespec ts = { 0, CHECK_EVERY_NS };
        catch_raw(SYS_futex, (long)&cmd.acks, FUTEX_WAIT_PRIVATE, seen, (long)&ts, 0, 0);
        /* Every 10 ms, however often handlers interrupt the wait: threads
         * gone or exiting with the signal pending, a handler replaced
         * (glibc's, at its first thread), one keeping the signal blocked. */
        int64_t now = (int64_t)clock_now_ns();
        if (now - checked < CHECK_EVERY_NS)
            continue;
        checked = now;
        bool ok;
        bool resend = !handler_was_in_place(&ok);
        if (!ok)
            diag_fatal("setuid family: cannot install the handler of signal %d", IDS_SIGNAL);
        for (unsigned i = 0; i < t->n; i++) {
            struct ids_slot *sl = &t->s[i];
            uint64_t w = __atomic_load_n(&sl->word, __ATOMIC_ACQUIRE);
            if (WORD_STATE(w) != SLOT_SENT)
                continue;
            int tid = (int)(w >> 32);
            if (!takes_signals(tid)) {
                __atomic_compare_exchange_n(&sl->word, &w, WORD(tid, SLOT_SKIPPED), false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
            } else if (resend) {
                send_to(sl, pid);      /* the handler's claim makes a second one a no-op */
            } else if (now - sl->sent_ns > 1000000000 && !sl->warned && blocks_signal(tid)) {
                sl->warned = true;
                diag_log(LOG_WARN, "setuid family: thread %d keeps signal %d blocked: waiting "
                         "for it to change its ids", tid, IDS_SIGNAL);
            }
        }
    }
}

int ids_set_all(long nr, long a, long b, long c)
{
    int saved = errno;
    cr_lock(&ids_lock);
    long r;
    ownfd_proc_open();                 /* glibc's own threads (a SIGEV_THREAD timer's) came
                                        * without a hook */
    int listed = -ENOENT;
    if (ownfd_proc() >= 0) {
        bool ok;
        handler_was_in_place(&ok);
        if (!ok)
            diag_fatal("setuid family: cannot install the handler of signal %d", IDS_SIGNAL);
        if (!cmd.table) {
            size_t cap = 64;
            cmd.table = (void *)catch_raw(SYS_mmap, 0,
                                          (long)(sizeof *cmd.table + cap * sizeof cmd.table->s[0]),
                                          PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                                          0);
            if ((unsigned long)cmd.table > -4096UL)
                diag_fatal("setuid family: no memory for the list of threads");
            cmd.table->cap = (unsigned)cap;
        }
        pid_t pid = (pid_t)catch_raw(SYS_getpid, 0, 0, 0, 0, 0, 0);
        int self = (int)catch_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
        cmd.table->n = 0;
        cmd.nr = nr;
        cmd.a = a;
        cmd.b = b;
        cmd.c = c;
        cmd.differ = 0;
        cmd.result = NO_RESULT;
        __atomic_store_n(&cmd.gen, cmd.gen + 1, __ATOMIC_RELEASE);
        __atomic_store_n(&cmd.active, 1, __ATOMIC_RELEASE);
        while ((listed = list_threads(self)) > 0)
            run_round(pid);
        __atomic_store_n(&cmd.active, 0, __ATOMIC_RELEASE);
        if (listed < 0 && cmd.table->n > 0)
            diag_fatal("setuid family: /proc/self/task could not be read again (error %d) after "
                       "some threads changed their ids: stopping the process", -listed);
    }
    if (listed < 0) {
        /* No list (no /proc, an empty one in a jail, no fd left), and
         * nothing changed yet: unshare(CLONE_THREAD) fails unless the caller
         * is the process's only kernel thread, and then does nothing (asked
         * only here: a seccomp filter may forbid it). With several, the
         * call fails whole (EAGAIN, as for a passing shortage) rather than
         * change some threads only. */
        if (catch_raw(SYS_unshare, CLONE_THREAD, 0, 0, 0, 0, 0) == 0) {
            r = catch_raw(nr, a, b, c, 0, 0, 0);
        } else {
            diag_log(LOG_WARN, "setuid family: the process's threads cannot be listed (/proc: "
                     "error %d): the call fails, no thread's ids changed", -listed);
            r = -EAGAIN;
        }
        goto out;
    }
    /* Last, as glibc's: the caller's own thread. */
    r = catch_raw(nr, a, b, c, 0, 0, 0);
    long others = __atomic_load_n(&cmd.result, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&cmd.differ, __ATOMIC_ACQUIRE) || (others != NO_RESULT && others != r))
        /* Threads of one process with different ids: what glibc stops too. */
        diag_fatal("setuid family: the kernel threads' results differ: stopping the process");
out:
    cr_unlock(&ids_lock);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    errno = saved;
    return 0;
}

int ids_set_effective(long nr, long id)
{
    if ((uint32_t)id == (uint32_t)-1) {     /* glibc's seteuid/setegid: EINVAL */
        errno = EINVAL;
        return -1;
    }
    return ids_set_all(nr, (uint32_t)-1, id, (uint32_t)-1);
}

int ids_initgroups(const char *user, gid_t group)
{
    /* glibc's initgroups: the user's groups (NSS), at most as many as the
     * kernel takes, then fewer while it says EINVAL. */
    long limit = sysconf(_SC_NGROUPS_MAX);
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
    if (limit > 0 && n > limit)
        n = (int)limit;
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
