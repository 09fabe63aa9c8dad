#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"
#include "offload.h"
#include "sched.h"

static ssize_t rw_sys(int fd, bool write, const struct iovec *iov, int cnt, off_t off, int flags)
{
    /* off -1: the file position, as read/write use it. */
    return syscall(write ? SYS_pwritev2 : SYS_preadv2, fd, iov, cnt, (long)off, 0L, flags);
}

bool fileio_is_file(int fd, struct fd_entry **e)
{
    int saved = errno;
    *e = fdtab_get(fd);
    errno = saved;
    return *e && (*e)->kind == FD_REGULAR;
}

/* RWF_NOWAIT is not supported for this file: learn once what the file is.
 * Memory filesystems and the kernel's own (/proc, /sys) never wait for a
 * disk, nor does reading a directory (EISDIR); O_SYNC, O_DSYNC and O_DIRECT
 * writes always wait. */
static void probe_file(int fd, struct fd_entry *e)
{
    struct statfs fs;
    struct stat st;
    if (syscall(SYS_fstatfs, fd, &fs) == 0)
        e->file_inline = fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC ||
                         fs.f_type == HUGETLBFS_MAGIC || fs.f_type == PROC_SUPER_MAGIC ||
                         fs.f_type == SYSFS_MAGIC;
    if (syscall(SYS_fstat, fd, &st) == 0 && S_ISDIR(st.st_mode))
        e->file_inline = true;
    long fl = syscall(SYS_fcntl, fd, F_GETFL, 0);
    e->file_sync = fl >= 0 && (fl & (O_SYNC | O_DSYNC | O_DIRECT));
}

/* Without RWF_NOWAIT, is the rest of the call worth the pool? Reads: yes
 * (a page-cache miss waits for the disk), except on memory filesystems.
 * Writes: buffered writes land in the page cache and rarely wait, so they
 * stay inline, unless they are synchronous or CORUN_FILE_IO=offload. */
static bool offload_without_nowait(struct fd_entry *e, bool write, int flags)
{
    if (e->file_inline)
        return false;
    if (!write || cr_config.file_io == FILE_IO_OFFLOAD)
        return true;
    return e->file_sync || (flags & (RWF_SYNC | RWF_DSYNC));
}

struct rw_call {
    int fd;
    bool write;
    const struct iovec *iov;
    int cnt;
    off_t off;
    int flags;
    ssize_t r;
};

static void rw_run(void *p)
{
    struct rw_call *c = p;
    c->r = rw_sys(c->fd, c->write, c->iov, c->cnt, c->off, c->flags);
}

/* Skip `done` bytes of v[0..*cnt), which the caller owns. */
static struct iovec *iov_skip(struct iovec *v, int *cnt, size_t done)
{
    while (*cnt && done >= v->iov_len) {
        done -= v->iov_len;
        v++;
        (*cnt)--;
    }
    if (*cnt) {
        v->iov_base = (char *)v->iov_base + done;
        v->iov_len -= done;
    }
    return v;
}

#define IOV_LOCAL 8

ssize_t fileio_rw(struct sched *s, int fd, struct fd_entry *e, bool write, const struct iovec *iov,
                  int cnt, off_t off, int flags)
{
    if (cr_config.file_io == FILE_IO_INLINE || e->file_inline || cnt <= 0 || cnt > IOV_MAX)
        return rw_sys(fd, write, iov, cnt, off, flags);   /* bad counts: the kernel's EINVAL */
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return rw_sys(fd, write, iov, cnt, off, flags);

    int saved = errno;
    bool *unsupported = write ? &e->wr_no_nowait : &e->no_nowait;
    size_t done = 0;
    struct iovec local[IOV_LOCAL], *copy = NULL, *v = (struct iovec *)iov;
    ssize_t r;
    while (!*unsupported) {
        r = rw_sys(fd, write, v, cnt, off, flags | RWF_NOWAIT);
        if (r > 0) {
            done += (size_t)r;
            if (done >= total)
                goto finished;
            /* Short: end of file, or part of the range would wait. Ask
             * again for the rest: 0 then means end of file. */
            if (v == iov) {
                copy = cnt <= IOV_LOCAL ? local : malloc((size_t)cnt * sizeof *copy);
                if (!copy)
                    goto finished;
                memcpy(copy, iov, (size_t)cnt * sizeof *copy);
                v = copy;
            }
            v = iov_skip(v, &cnt, (size_t)r);
            if (off != -1)
                off += r;
            continue;
        }
        if (r == 0)
            goto finished;
        if (errno == EOPNOTSUPP) {
            *unsupported = true;
            probe_file(fd, e);
            break;
        }
        if (errno != EAGAIN)
            goto failed;
        goto offload;           /* would wait for the disk */
    }
    if (!offload_without_nowait(e, write, flags)) {
        r = rw_sys(fd, write, v, cnt, off, flags);
        goto last;
    }
offload:;
    struct rw_call c = { .fd = fd, .write = write, .iov = v, .cnt = cnt, .off = off, .flags = flags };
    sched_wait_hint(s, write ? WAIT_WRITE : WAIT_READ);   /* for stats and dumps: a file read */
    offload_run(s, rw_run, &c);
    sched_wait_hint(s, WAIT_OTHER);
    r = c.r;
last:
    if (r >= 0)
        done += (size_t)r;
    else if (done == 0)
        goto failed;
finished:
    if (copy != local)
        free(copy);
    errno = saved;
    return (ssize_t)done;
failed:
    if (copy != local)
        free(copy);
    return -1;
}

struct sys_call {
    long nr, a[5], r;
};

static void sys_run(void *p)
{
    struct sys_call *c = p;
    c->r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]);
}

long fileio_offload_syscall(struct sched *s, long nr, long a0, long a1, long a2, long a3, long a4)
{
    int saved = errno;
    struct sys_call c = { .nr = nr, .a = { a0, a1, a2, a3, a4 } };
    offload_run(s, sys_run, &c);
    if (c.r >= 0)
        errno = saved;
    return c.r;
}
