/*
 * The registry of corun's own fds (epoll sets, eventfds, libuv's fds, the
 * log file, pidfds and signalfds waited on). The program must not see them:
 * they live at high numbers (just below min(RLIMIT_NOFILE soft limit,
 * OWNFD_CEILING), taken from the top down), always close-on-exec; close/fstat/fcntl/dup on one fail
 * with EBADF as for an fd never opened; close_range and closefrom skip them;
 * a dup2 onto one first moves corun's file elsewhere.
 *
 * Owners keep their fd in an int ("slot") the registry tracks, so a move
 * can update it. A move keeps the file open under the new number, so epoll
 * registrations made under the old one stay in force.
 */
#ifndef CORUN_OWNFD_H
#define CORUN_OWNFD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Numbers tracked; corun places its fds below OWNFD_CEILING, FD_SETSIZE:
 * an fd above it would grow the kernel's fd table past what an fd_set
 * covers, and select(getdtablesize(), ...) with an FD_SETSIZE set (which
 * the kernel reads only as far as its table) would read past the set. It
 * also keeps libuv's array indexed by fd (up to its highest watcher)
 * small: near a soft limit of a million it would cost 8 MiB per loop. */
#define OWNFD_MAX 65536
#define OWNFD_CEILING 1024

extern int ownfd_floor_;                   /* lowest owned number, INT32_MAX if none */
extern uint64_t ownfd_bits_[OWNFD_MAX / 64];
extern __thread int ownfd_internal_ __attribute__((tls_model("initial-exec")));

/* Whether fd is one of corun's. A compare for the program's usual fds. */
static inline bool ownfd_is(int fd)
{
    if (__builtin_expect(fd < __atomic_load_n(&ownfd_floor_, __ATOMIC_RELAXED), 1) ||
        fd >= OWNFD_MAX)
        return false;
    return (__atomic_load_n(&ownfd_bits_[fd >> 6], __ATOMIC_RELAXED) >> (fd & 63)) & 1;
}

/* Inside an internal section the calling thread is corun (or libuv called
 * by corun): fds made through the hooked creators (pipe2, eventfd,
 * epoll_create1) are adopted, and corun's fds are not hidden. */
static inline bool ownfd_internal(void)
{
    return ownfd_internal_ != 0;
}
void ownfd_internal_begin(void);
void ownfd_internal_end(void);

/* fd is one of corun's, and the caller is the program: it must not see it. */
static inline bool ownfd_hidden(int fd)
{
    return ownfd_is(fd) && !ownfd_internal();
}

/* Take a fresh fd as corun's: moved to a high number (close-on-exec), the
 * original closed. Returns the number to use (fd itself if no high number
 * is free: it is still hidden). Keeps errno. */
int ownfd_adopt(int fd);

/* Adopt *slot's fd and track the slot. */
void ownfd_own(int *slot);
/* Untrack the slot, forget and close its fd, set it to -1. */
void ownfd_release(int *slot);

/* Slots holding owned fds, updated when the fd moves. */
void ownfd_track(int *slot);
void ownfd_untrack(int *slot);
/* Same for a slot that lives as long as the process; lock-free (usable in
 * a signal handler). */
void ownfd_track_static(int *slot);
/* fd is no longer corun's (closed, or about to be, by its owner).
 * Lock-free. */
void ownfd_forget(int fd);
/* Forget owned numbers that are no longer open (closed by libuv with a raw
 * system call). */
void ownfd_resync(void);

/* The program is about to put a file at number fd (dup2/dup3): if it is
 * corun's, move corun's file elsewhere first. */
void ownfd_evict(int fd);

/* close_range(first, last, flags) of the program, skipping corun's fds:
 * the system call's result. */
int ownfd_close_range(unsigned first, unsigned last, unsigned flags);

/* The fds adopted by this thread since its internal section began (at most
 * max), for owners that need to know what libuv made. */
unsigned ownfd_section_adopted(int *out, unsigned max);

/* Directory streams of the program that list this process's own fds
 * (/proc/self/fd, /dev/fd, /proc/PID/task/TID/fd): its readdir skips
 * corun's entries there. dir is the stream, dirfd its fd. */
void ownfd_dir_opened(const void *dir, int dirfd);
void ownfd_dir_closed(const void *dir);
extern unsigned ownfd_fd_dirs_;            /* streams listed now */
bool ownfd_dir_hides_slow(const void *dir, const char *name);
/* Whether the program's readdir of dir must skip the entry `name`. */
static inline bool ownfd_dir_hides(const void *dir, const char *name)
{
    return __atomic_load_n(&ownfd_fd_dirs_, __ATOMIC_RELAXED) != 0 &&
           ownfd_dir_hides_slow(dir, name);
}

/* /proc (O_PATH, checked to be procfs), one of corun's fds, for listing
 * the process's kernel threads (the setuid family's change on every one)
 * even after a chroot. Opened ahead of a second kernel thread that corun
 * sees made (libc_pthread_create, a caught clone) or at the first change,
 * not at load: a program that never makes threads nor changes its ids has
 * no fd of corun's. Keeps errno. */
void ownfd_proc_open(void);
/* Its number, or -1 if it was never opened. */
int ownfd_proc(void);

/* fn(tid, arg) for each kernel thread of the process that /proc lists
 * (through that fd), until fn returns false: 0, or -errno when the list
 * could not be read to its end. Keeps errno. */
int ownfd_each_task(bool (*fn)(pid_t tid, void *arg), void *arg);

/* fork: the registry's lock held across it, reset in the child. */
void ownfd_fork_prepare(void);
void ownfd_fork_parent(void);
void ownfd_fork_child(void);

#endif
