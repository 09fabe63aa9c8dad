/* The registry of corun's own fds: see ownfd.h. Raw system calls only. */
#include "ownfd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "diag.h"
#include "lock.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

int ownfd_floor_ = INT32_MAX;
uint64_t ownfd_bits_[OWNFD_MAX / 64];
__thread int ownfd_internal_ __attribute__((tls_model("initial-exec")));

/* What this thread's internal section adopted (ownfd_section_adopted). */
#define SECTION_LOG 16
static __thread int section_fds[SECTION_LOG] __attribute__((tls_model("initial-exec")));
static __thread unsigned section_n __attribute__((tls_model("initial-exec")));

static cr_lock_t reg_lock = CR_LOCK_INIT;
/* Set while this thread holds reg_lock: a signal handler of the program
 * that closes or dup2s then (both async-signal-safe) must not wait for a
 * lock its own thread holds. It reads the registry unlocked instead. */
static __thread bool reg_held __attribute__((tls_model("initial-exec")));

static bool reg_acquire(void)
{
    if (reg_held)
        return false;
    cr_lock(&reg_lock);
    reg_held = true;
    return true;
}

static void reg_release(bool took)
{
    if (!took)
        return;
    reg_held = false;
    cr_unlock(&reg_lock);
}
static int **slots;                  /* tracked slots; NULL entries are free */
static size_t nslots;
/* Slots that live as long as the process, tracked without the lock. */
#define STATIC_SLOTS 4
static int *static_slots[STATIC_SLOTS];

/* The program's signal mask while a section runs: its handlers wait until
 * the section ends, so that no fd a handler opens is taken for corun's. */
static __thread uint64_t section_mask __attribute__((tls_model("initial-exec")));

void ownfd_internal_begin(void)
{
    if (ownfd_internal_++ != 0)
        return;
    section_n = 0;
    /* All but the fault signals, which a blocked mask would turn fatal,
     * and glibc's two, which are not the program's (setuid waits for 33
     * on every thread). */
    uint64_t all = ~(uint64_t)0 & ~((1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1)) |
                                    (1ull << (SIGILL - 1)) | (1ull << (SIGFPE - 1)) |
                                    (1ull << (SIGTRAP - 1)) | (1ull << (SIGSYS - 1)) |
                                    (1ull << 31) | (1ull << 32));
    int saved = errno;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &section_mask, 8);
    errno = saved;
}

void ownfd_internal_end(void)
{
    if (--ownfd_internal_ != 0)
        return;
    int saved = errno;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &section_mask, NULL, 8);
    errno = saved;
}

unsigned ownfd_section_adopted(int *out, unsigned max)
{
    unsigned n = section_n < max ? section_n : max;
    for (unsigned i = 0; i < n; i++)
        out[i] = section_fds[i];
    return n;
}

/* Lock-free: adopting may happen in a signal handler (the log file). */
static void mark(int fd)
{
    if (fd < 0 || fd >= OWNFD_MAX)
        return;
    __atomic_or_fetch(&ownfd_bits_[fd >> 6], (uint64_t)1 << (fd & 63), __ATOMIC_RELAXED);
    int floor = __atomic_load_n(&ownfd_floor_, __ATOMIC_RELAXED);
    while (fd < floor && !__atomic_compare_exchange_n(&ownfd_floor_, &floor, fd, true,
                                                      __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
}

/* The floor never rises: raising it could race with a mark below. */
static void unmark(int fd)
{
    if (fd < 0 || fd >= OWNFD_MAX)
        return;
    __atomic_and_fetch(&ownfd_bits_[fd >> 6], ~((uint64_t)1 << (fd & 63)), __ATOMIC_RELAXED);
}

/* The soft limit now: the program may have lowered it since corun's last
 * fd (F_DUPFD fails with EINVAL at or above it). */
static int nofile_soft(void)
{
    struct rlimit rl;
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) != 0)
        return 1024;
    return rl.rlim_cur > (rlim_t)OWNFD_CEILING ? OWNFD_CEILING : (int)rl.rlim_cur;
}

/* A new number for fd's file, as high as is free below the ceiling,
 * close-on-exec; -1 if none (or fd is not open). */
static int dup_high(int fd)
{
    int ceiling = nofile_soft();
    for (int c = ceiling - 1; c > 2; c--) {
        if (ownfd_is(c))
            continue;                  /* taken by corun: no system call */
        /* Only a free c: F_DUPFD on a taken one could give a number above
         * the ceiling, and even closed at once it would have grown the
         * kernel's fd table for good. */
        if (syscall(SYS_fcntl, c, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int r = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, c);
        if (r >= 0 && r < ceiling)
            return r;                  /* the lowest free number >= c */
        if (r >= 0)
            syscall(SYS_close, r);     /* [c, ceiling) is full: look lower */
        else if (errno != EMFILE && errno != EINVAL)
            return -1;
    }
    return -1;
}

int ownfd_adopt(int fd)
{
    if (fd < 0)
        return fd;
    int saved = errno;
    /* Under the lock: two OS threads (M:N workers starting together) could
     * both find the same number free, and the second F_DUPFD then land
     * above the ceiling, growing the kernel's fd table past an fd_set for
     * good (select on getdtablesize() then read past the program's set). */
    bool took = reg_acquire();
    int r = dup_high(fd);
    if (r >= 0) {
        syscall(SYS_close, fd);
        fd = r;
    } else {
        syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }
    mark(fd);
    reg_release(took);
    if (ownfd_internal_ && section_n < SECTION_LOG)
        section_fds[section_n++] = fd;
    errno = saved;
    return fd;
}

static void track_locked(int *slot)
{
    for (size_t i = 0; i < nslots; i++)
        if (slots[i] == slot)
            return;
    for (size_t i = 0; i < nslots; i++)
        if (!slots[i]) {
            slots[i] = slot;
            return;
        }
    int **grown = realloc(slots, (nslots + 16) * sizeof *slots);
    if (!grown)
        diag_fatal("out of memory tracking corun's own fds");
    for (size_t i = nslots; i < nslots + 16; i++)
        grown[i] = NULL;
    slots = grown;
    slots[nslots] = slot;
    nslots += 16;
}

void ownfd_track(int *slot)
{
    bool took = reg_acquire();
    track_locked(slot);
    reg_release(took);
}

void ownfd_track_static(int *slot)
{
    for (int i = 0; i < STATIC_SLOTS; i++) {
        int *none = NULL;
        if (__atomic_load_n(&static_slots[i], __ATOMIC_ACQUIRE) == slot ||
            __atomic_compare_exchange_n(&static_slots[i], &none, slot, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return;
    }
}

void ownfd_untrack(int *slot)
{
    bool took = reg_acquire();
    for (size_t i = 0; i < nslots; i++)
        if (slots[i] == slot)
            slots[i] = NULL;
    reg_release(took);
}

void ownfd_own(int *slot)
{
    *slot = ownfd_adopt(*slot);
    if (*slot >= 0)
        ownfd_track(slot);
}

void ownfd_release(int *slot)
{
    bool took = reg_acquire();
    for (size_t i = 0; i < nslots; i++)
        if (slots[i] == slot)
            slots[i] = NULL;
    int fd = *slot;
    if (fd >= 0) {
        unmark(fd);
        int saved = errno;
        syscall(SYS_close, fd);
        errno = saved;
    }
    *slot = -1;
    reg_release(took);
}

void ownfd_forget(int fd)
{
    unmark(fd);
}

void ownfd_resync(void)
{
    int saved = errno;
    bool took = reg_acquire();
    for (int fd = ownfd_floor_; fd < OWNFD_MAX; fd++)
        if (ownfd_is(fd) && syscall(SYS_fcntl, fd, F_GETFD) < 0 && errno == EBADF)
            unmark(fd);
    reg_release(took);
    errno = saved;
}

void ownfd_evict(int fd)
{
    if (!ownfd_is(fd))
        return;
    int saved = errno;
    bool took = reg_acquire();
    if (ownfd_is(fd)) {
        int r = dup_high(fd);
        if (r >= 0) {
            mark(r);
            /* Anyone reading a slot sees the old number or the new one,
             * both corun's file until the program's dup2 lands. */
            for (size_t i = 0; i < nslots; i++)
                if (slots[i] && __atomic_load_n(slots[i], __ATOMIC_RELAXED) == fd)
                    __atomic_store_n(slots[i], r, __ATOMIC_RELEASE);
            for (int i = 0; i < STATIC_SLOTS; i++) {
                int *sl = __atomic_load_n(&static_slots[i], __ATOMIC_ACQUIRE);
                if (sl && __atomic_load_n(sl, __ATOMIC_RELAXED) == fd)
                    __atomic_store_n(sl, r, __ATOMIC_RELEASE);
            }
        } else if (errno != EBADF) {
            diag_log(LOG_WARN, "no free fd to move corun's fd %d out of the program's way", fd);
        }
        unmark(fd);
    }
    reg_release(took);
    errno = saved;
}

int ownfd_close_range(unsigned first, unsigned last, unsigned flags)
{
    if (first > last || (unsigned)ownfd_floor_ > last)
        return (int)syscall(SYS_close_range, first, last, flags);
    /* Locked against a move (ownfd_evict) in another thread. An fd another
     * thread is just making (not yet adopted) can still be caught. */
    bool took = reg_acquire();
    long r = 0;
    unsigned from = first;
    for (unsigned fd = first < (unsigned)ownfd_floor_ ? (unsigned)ownfd_floor_ : first;
         fd <= last && fd < OWNFD_MAX; fd++) {
        if (!ownfd_is((int)fd))
            continue;
        if (fd > from && r == 0)
            r = syscall(SYS_close_range, from, fd - 1, flags);
        from = fd + 1;
    }
    if (r == 0 && from <= last)
        r = syscall(SYS_close_range, from, last, flags);
    int e = errno;
    reg_release(took);
    errno = e;
    return (int)r;
}

/* ---- listings of /proc/self/fd ------------------------------------------- */

#define FD_DIRS 32
static const void *fd_dirs[FD_DIRS];
unsigned ownfd_fd_dirs_;

/* "/proc/PID/fd" or "/proc/PID/task/TID/fd" with PID this process's. */
static bool lists_own_fds(int dirfd)
{
    char path[48], link[96];
    snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd);
    long n = syscall(SYS_readlinkat, AT_FDCWD, path, link, sizeof link - 1);
    if (n <= 0)
        return false;
    link[n] = '\0';
    if (strncmp(link, "/proc/", 6) != 0)
        return false;
    char *p;
    long pid = strtol(link + 6, &p, 10);
    if (p == link + 6 || pid != syscall(SYS_getpid))
        return false;
    if (!strncmp(p, "/task/", 6)) {
        char *q;
        strtol(p + 6, &q, 10);
        if (q == p + 6)
            return false;
        p = q;
    }
    return !strcmp(p, "/fd");
}

void ownfd_dir_opened(const void *dir, int dirfd)
{
    if (!dir || !lists_own_fds(dirfd))
        return;
    int saved = errno;
    bool took = reg_acquire();
    for (int i = 0; i < FD_DIRS; i++)
        if (!fd_dirs[i]) {
            fd_dirs[i] = dir;
            __atomic_add_fetch(&ownfd_fd_dirs_, 1, __ATOMIC_RELAXED);
            break;
        }
    reg_release(took);
    errno = saved;
}

void ownfd_dir_closed(const void *dir)
{
    if (!__atomic_load_n(&ownfd_fd_dirs_, __ATOMIC_RELAXED))
        return;
    bool took = reg_acquire();
    for (int i = 0; i < FD_DIRS; i++)
        if (fd_dirs[i] == dir) {
            fd_dirs[i] = NULL;
            __atomic_sub_fetch(&ownfd_fd_dirs_, 1, __ATOMIC_RELAXED);
        }
    reg_release(took);
}

bool ownfd_dir_hides_slow(const void *dir, const char *name)
{
    int fd = 0;
    for (const char *c = name; *c; c++) {
        if (*c < '0' || *c > '9' || fd > OWNFD_MAX)
            return false;
        fd = fd * 10 + (*c - '0');
    }
    if (!name[0] || !ownfd_hidden(fd))
        return false;
    bool listed = false;
    bool took = reg_acquire();
    for (int i = 0; i < FD_DIRS && !listed; i++)
        listed = fd_dirs[i] == dir;
    reg_release(took);
    return listed;
}

void ownfd_fork_prepare(void)
{
    cr_lock(&reg_lock);
}

void ownfd_fork_parent(void)
{
    cr_unlock(&reg_lock);
}

void ownfd_fork_child(void)
{
    reg_lock = (cr_lock_t)CR_LOCK_INIT;
}

/* ---- /proc ---------------------------------------------------------------*/

static int proc_fd = -1;

void ownfd_proc_open(void)
{
    if (__atomic_load_n(&proc_fd, __ATOMIC_ACQUIRE) >= 0)
        return;
    int saved = errno;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct statfs st;
    if (fd >= 0 && (syscall(SYS_fstatfs, fd, &st) != 0 || st.f_type != PROC_SUPER_MAGIC)) {
        syscall(SYS_close, fd);        /* a jail's empty /proc, say */
        fd = -1;
    }
    if (fd >= 0) {
        fd = ownfd_adopt(fd);
        int none = -1;
        if (__atomic_compare_exchange_n(&proc_fd, &none, fd, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            ownfd_track_static(&proc_fd);
        } else {                       /* another thread's came first */
            ownfd_forget(fd);
            syscall(SYS_close, fd);
        }
    }
    errno = saved;
}

int ownfd_proc(void)
{
    return __atomic_load_n(&proc_fd, __ATOMIC_ACQUIRE);
}

int ownfd_each_task(bool (*fn)(pid_t tid, void *arg), void *arg)
{
    int saved = errno;
    long fd = syscall(SYS_openat, ownfd_proc(), "self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        errno = saved;
        return r;
    }
    int r = 0;
    char buf[4096];
    long len;
    while ((len = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < len;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
                !fn((pid_t)strtol(e->d_name, NULL, 10), arg))
                goto done;
        }
    if (len < 0)
        r = -errno;
done:
    syscall(SYS_close, fd);
    errno = saved;
    return r;
}
