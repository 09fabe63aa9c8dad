/* Hooks: positioned reads and writes of regular files (pread family), and
 * the path and sync calls that CORUN_FILE_IO=offload runs on the pool
 * (stat family, access, fsync, truncate, unlink, rename, mkdir). The
 * offloaded calls are the system calls glibc itself makes for them. The
 * stat family and directory listings of /proc/self/fd do not show corun's
 * own fds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"
#include "fileio.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(ssize_t, pread, (int, void *, size_t, off_t));
REAL_DECL(ssize_t, pread64, (int, void *, size_t, off_t));
REAL_DECL(ssize_t, pwrite, (int, const void *, size_t, off_t));
REAL_DECL(ssize_t, pwrite64, (int, const void *, size_t, off_t));
REAL_DECL(ssize_t, preadv, (int, const struct iovec *, int, off_t));
REAL_DECL(ssize_t, preadv64, (int, const struct iovec *, int, off_t));
REAL_DECL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
REAL_DECL(ssize_t, pwritev64, (int, const struct iovec *, int, off_t));
REAL_DECL(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int));
REAL_DECL(ssize_t, preadv64v2, (int, const struct iovec *, int, off_t, int));
REAL_DECL(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int));
REAL_DECL(ssize_t, pwritev64v2, (int, const struct iovec *, int, off_t, int));
REAL_DECL(void, __chk_fail, (void));

/* The scheduler to park on for a positioned call on fd, or NULL for the
 * real call: not a regular file (pipes and sockets say ESPIPE themselves),
 * a negative offset (EINVAL), or flags with RWF_NOWAIT (the program wants
 * EAGAIN). */
static struct sched *file_gate(int fd, off_t off, int flags, struct fd_entry **e)
{
    struct sched *s = gate_blocking();
    if (!s || off < -1 || (flags & RWF_NOWAIT) || !fileio_is_file(fd, e))
        return NULL;
    return s;
}

#define POSITIONED(real, fd, write, iov, cnt, off, flags, ...)                  \
    do {                                                                        \
        struct fd_entry *e_;                                                    \
        struct sched *s_ = file_gate(fd, off, flags, &e_);                      \
        if (!s_)                                                                \
            return REAL(real)(__VA_ARGS__);                                     \
        return fileio_rw(s_, fd, e_, write, iov, cnt, off, flags);              \
    } while (0)

/* pread/preadv: offset -1 is EINVAL, which the real call reports. */
#define NOT_MINUS_ONE(off) ((off) == -1 ? (off_t)-2 : (off))

HOOK ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    CATCH_HOLD();
    struct iovec v = { buf, n };
    POSITIONED(pread, fd, false, &v, 1, NOT_MINUS_ONE(off), 0, fd, buf, n, off);
}

HOOK ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    CATCH_HOLD();
    struct iovec v = { buf, n };
    POSITIONED(pread64, fd, false, &v, 1, NOT_MINUS_ONE(off), 0, fd, buf, n, off);
}

HOOK ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    CATCH_HOLD();
    if (n > buflen)
        REAL(__chk_fail)();
    return pread(fd, buf, n, off);
}

HOOK ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    CATCH_HOLD();
    if (n > buflen)
        REAL(__chk_fail)();
    return pread64(fd, buf, n, off);
}

HOOK ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    CATCH_HOLD();
    struct iovec v = { (void *)buf, n };
    POSITIONED(pwrite, fd, true, &v, 1, NOT_MINUS_ONE(off), 0, fd, buf, n, off);
}

HOOK ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    CATCH_HOLD();
    struct iovec v = { (void *)buf, n };
    POSITIONED(pwrite64, fd, true, &v, 1, NOT_MINUS_ONE(off), 0, fd, buf, n, off);
}

HOOK ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    CATCH_HOLD();
    POSITIONED(preadv, fd, false, iov, cnt, NOT_MINUS_ONE(off), 0, fd, iov, cnt, off);
}

HOOK ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    CATCH_HOLD();
    POSITIONED(preadv64, fd, false, iov, cnt, NOT_MINUS_ONE(off), 0, fd, iov, cnt, off);
}

HOOK ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    CATCH_HOLD();
    POSITIONED(pwritev, fd, true, iov, cnt, NOT_MINUS_ONE(off), 0, fd, iov, cnt, off);
}

HOOK ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    CATCH_HOLD();
    POSITIONED(pwritev64, fd, true, iov, cnt, NOT_MINUS_ONE(off), 0, fd, iov, cnt, off);
}

/* preadv2/pwritev2: offset -1 means the file position. */
HOOK ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    CATCH_HOLD();
    POSITIONED(preadv2, fd, false, iov, cnt, off, flags, fd, iov, cnt, off, flags);
}

HOOK ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    CATCH_HOLD();
    POSITIONED(preadv64v2, fd, false, iov, cnt, off, flags, fd, iov, cnt, off, flags);
}

HOOK ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    CATCH_HOLD();
    POSITIONED(pwritev2, fd, true, iov, cnt, off, flags, fd, iov, cnt, off, flags);
}

HOOK ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    CATCH_HOLD();
    POSITIONED(pwritev64v2, fd, true, iov, cnt, off, flags, fd, iov, cnt, off, flags);
}

/* ---- CORUN_FILE_IO=offload: metadata and sync calls on the pool ---------------*/

static struct sched *offload_gate(void)
{
    if (cr_config.file_io != FILE_IO_OFFLOAD)
        return NULL;
    return gate_blocking();
}

/* fsync and fdatasync wait for the disk, milliseconds where a pool round
 * trip costs microseconds: on the pool unless CORUN_FILE_IO=inline (a
 * database's commits would otherwise stop every green thread). */
static struct sched *sync_gate(void)
{
    if (cr_config.file_io == FILE_IO_INLINE)
        return NULL;
    return gate_blocking();
}

#define L(x) ((long)(x))

/* Offload syscall nr with the arguments when `gate` says so, else make the
 * real call. */
#define OFFLOADED_BY(gate, real_call, nr, ...)                                     \
    do {                                                                           \
        struct sched *s_ = gate();                                                 \
        if (!s_)                                                                   \
            return real_call;                                                      \
        return (int)fileio_offload_syscall(s_, nr, __VA_ARGS__);                   \
    } while (0)
#define OFFLOADED(real_call, nr, ...) OFFLOADED_BY(offload_gate, real_call, nr, __VA_ARGS__)

REAL_DECL(int, stat, (const char *, struct stat *));
REAL_DECL(int, stat64, (const char *, struct stat64 *));
REAL_DECL(int, lstat, (const char *, struct stat *));
REAL_DECL(int, lstat64, (const char *, struct stat64 *));
REAL_DECL(int, fstat, (int, struct stat *));
REAL_DECL(int, fstat64, (int, struct stat64 *));
REAL_DECL(int, fstatat, (int, const char *, struct stat *, int));
REAL_DECL(int, fstatat64, (int, const char *, struct stat64 *, int));
REAL_DECL(int, statx, (int, const char *, int, unsigned, struct statx *));
REAL_DECL(int, access, (const char *, int));
REAL_DECL(int, fsync, (int));
REAL_DECL(int, fdatasync, (int));
REAL_DECL(int, truncate, (const char *, off_t));
REAL_DECL(int, ftruncate, (int, off_t));
REAL_DECL(int, unlink, (const char *));
REAL_DECL(int, unlinkat, (int, const char *, int));
REAL_DECL(int, rename, (const char *, const char *));
REAL_DECL(int, renameat, (int, const char *, int, const char *));
REAL_DECL(int, mkdir, (const char *, mode_t));
REAL_DECL(int, mkdirat, (int, const char *, mode_t));
REAL_DECL(int, rmdir, (const char *));

HOOK int stat(const char *path, struct stat *st)
{
    CATCH_HOLD();
    OFFLOADED(REAL(stat)(path, st), SYS_newfstatat, AT_FDCWD, L(path), L(st), 0, 0);
}

HOOK int stat64(const char *path, struct stat64 *st)
{
    CATCH_HOLD();
    OFFLOADED(REAL(stat64)(path, st), SYS_newfstatat, AT_FDCWD, L(path), L(st), 0, 0);
}

HOOK int lstat(const char *path, struct stat *st)
{
    CATCH_HOLD();
    OFFLOADED(REAL(lstat)(path, st), SYS_newfstatat, AT_FDCWD, L(path), L(st), AT_SYMLINK_NOFOLLOW, 0);
}

HOOK int lstat64(const char *path, struct stat64 *st)
{
    CATCH_HOLD();
    OFFLOADED(REAL(lstat64)(path, st), SYS_newfstatat, AT_FDCWD, L(path), L(st), AT_SYMLINK_NOFOLLOW,
              0);
}

/* An fd of corun's, for a path relative to it (an absolute one ignores
 * the fd). */
static bool hidden_at(int fd, const char *path)
{
    return ownfd_hidden(fd) && !(path && path[0] == '/');
}

#define HIDDEN_AT(fd, path)                     \
    do {                                        \
        if (hidden_at(fd, path)) {              \
            errno = EBADF;                      \
            return -1;                          \
        }                                       \
    } while (0)

HOOK int fstat(int fd, struct stat *st)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    OFFLOADED(REAL(fstat)(fd, st), SYS_fstat, fd, L(st), 0, 0, 0);
}

HOOK int fstat64(int fd, struct stat64 *st)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    OFFLOADED(REAL(fstat64)(fd, st), SYS_fstat, fd, L(st), 0, 0, 0);
}

HOOK int fstatat(int dir, const char *path, struct stat *st, int flags)
{
    CATCH_HOLD();
    HIDDEN_AT(dir, path);
    OFFLOADED(REAL(fstatat)(dir, path, st, flags), SYS_newfstatat, dir, L(path), L(st), flags, 0);
}

HOOK int fstatat64(int dir, const char *path, struct stat64 *st, int flags)
{
    CATCH_HOLD();
    HIDDEN_AT(dir, path);
    OFFLOADED(REAL(fstatat64)(dir, path, st, flags), SYS_newfstatat, dir, L(path), L(st), flags, 0);
}

HOOK int statx(int dir, const char *path, int flags, unsigned mask, struct statx *buf)
{
    CATCH_HOLD();
    HIDDEN_AT(dir, path);
    OFFLOADED(REAL(statx)(dir, path, flags, mask, buf), SYS_statx, dir, L(path), flags, mask, L(buf));
}

/* ---- listings of /proc/self/fd: corun's entries skipped (ownfd.h) --------------*/

REAL_DECL(DIR *, opendir, (const char *));
REAL_DECL(DIR *, fdopendir, (int));
REAL_DECL(struct dirent *, readdir, (DIR *));
REAL_DECL(struct dirent64 *, readdir64, (DIR *));
REAL_DECL(int, readdir_r, (DIR *, struct dirent *, struct dirent **));
REAL_DECL(int, readdir64_r, (DIR *, struct dirent64 *, struct dirent64 **));
REAL_DECL(int, closedir, (DIR *));

HOOK DIR *opendir(const char *path)
{
    CATCH_HOLD();
    DIR *d = REAL(opendir)(path);
    if (d)
        ownfd_dir_opened(d, dirfd(d));
    return d;
}

HOOK DIR *fdopendir(int fd)
{
    CATCH_HOLD();
    if (ownfd_hidden(fd)) {
        errno = EBADF;
        return NULL;
    }
    DIR *d = REAL(fdopendir)(fd);
    if (d)
        ownfd_dir_opened(d, fd);
    return d;
}

HOOK struct dirent *readdir(DIR *d)
{
    CATCH_HOLD();
    struct dirent *e;
    while ((e = REAL(readdir)(d)) && ownfd_dir_hides(d, e->d_name))
        ;
    return e;
}

HOOK struct dirent64 *readdir64(DIR *d)
{
    CATCH_HOLD();
    struct dirent64 *e;
    while ((e = REAL(readdir64)(d)) && ownfd_dir_hides(d, e->d_name))
        ;
    return e;
}

HOOK int readdir_r(DIR *d, struct dirent *buf, struct dirent **out)
{
    CATCH_HOLD();
    int r;
    while ((r = REAL(readdir_r)(d, buf, out)) == 0 && *out && ownfd_dir_hides(d, (*out)->d_name))
        ;
    return r;
}

HOOK int readdir64_r(DIR *d, struct dirent64 *buf, struct dirent64 **out)
{
    CATCH_HOLD();
    int r;
    while ((r = REAL(readdir64_r)(d, buf, out)) == 0 && *out &&
           ownfd_dir_hides(d, (*out)->d_name))
        ;
    return r;
}

HOOK int closedir(DIR *d)
{
    CATCH_HOLD();
    ownfd_dir_closed(d);
    return REAL(closedir)(d);
}

HOOK int access(const char *path, int mode)
{
    CATCH_HOLD();
    OFFLOADED(REAL(access)(path, mode), SYS_faccessat, AT_FDCWD, L(path), mode, 0, 0);
}

HOOK int fsync(int fd)
{
    CATCH_HOLD();
    OFFLOADED_BY(sync_gate, REAL(fsync)(fd), SYS_fsync, fd, 0, 0, 0, 0);
}

HOOK int fdatasync(int fd)
{
    CATCH_HOLD();
    OFFLOADED_BY(sync_gate, REAL(fdatasync)(fd), SYS_fdatasync, fd, 0, 0, 0, 0);
}

HOOK int truncate(const char *path, off_t len)
{
    CATCH_HOLD();
    OFFLOADED(REAL(truncate)(path, len), SYS_truncate, L(path), len, 0, 0, 0);
}

HOOK int ftruncate(int fd, off_t len)
{
    CATCH_HOLD();
    OFFLOADED(REAL(ftruncate)(fd, len), SYS_ftruncate, fd, len, 0, 0, 0);
}

HOOK int unlink(const char *path)
{
    CATCH_HOLD();
    OFFLOADED(REAL(unlink)(path), SYS_unlinkat, AT_FDCWD, L(path), 0, 0, 0);
}

HOOK int unlinkat(int dir, const char *path, int flags)
{
    CATCH_HOLD();
    OFFLOADED(REAL(unlinkat)(dir, path, flags), SYS_unlinkat, dir, L(path), flags, 0, 0);
}

HOOK int rename(const char *from, const char *to)
{
    CATCH_HOLD();
    OFFLOADED(REAL(rename)(from, to), SYS_renameat, AT_FDCWD, L(from), AT_FDCWD, L(to), 0);
}

HOOK int renameat(int fromdir, const char *from, int todir, const char *to)
{
    CATCH_HOLD();
    OFFLOADED(REAL(renameat)(fromdir, from, todir, to), SYS_renameat, fromdir, L(from), todir, L(to),
              0);
}

HOOK int mkdir(const char *path, mode_t mode)
{
    CATCH_HOLD();
    OFFLOADED(REAL(mkdir)(path, mode), SYS_mkdirat, AT_FDCWD, L(path), mode, 0, 0);
}

HOOK int mkdirat(int dir, const char *path, mode_t mode)
{
    CATCH_HOLD();
    OFFLOADED(REAL(mkdirat)(dir, path, mode), SYS_mkdirat, dir, L(path), mode, 0, 0);
}

HOOK int rmdir(const char *path)
{
    CATCH_HOLD();
    OFFLOADED(REAL(rmdir)(path), SYS_unlinkat, AT_FDCWD, L(path), AT_REMOVEDIR, 0, 0);
}
