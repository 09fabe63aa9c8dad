/*
 * Regular-file I/O for green threads (CORUN_FILE_IO). A read is first tried
 * with RWF_NOWAIT: served from the page cache, it completes inline at the
 * cost of the system call alone; otherwise it runs on libuv's pool while the
 * green thread parks. Writes likewise where the filesystem supports
 * RWF_NOWAIT for writes. The calls behave exactly as the blocking ones (file
 * position, O_APPEND, short reads only at end of file, errno).
 */
#ifndef CR_FILEIO_H
#define CR_FILEIO_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

struct sched;
struct fd_entry;

/*
 * preadv2/pwritev2(fd, iov, cnt, off, flags) on a regular file, with its
 * blocking semantics: off -1 means the file position (read/write/readv),
 * flags are the program's RWF_* flags (without RWF_NOWAIT).
 */
ssize_t fileio_rw(struct sched *s, int fd, struct fd_entry *e, bool write, const struct iovec *iov,
                  int cnt, off_t off, int flags);

/* Is fd a regular file (or directory, block device)? e set to its entry. */
bool fileio_is_file(int fd, struct fd_entry **e);

/* syscall(nr, a...) run on the pool while the green thread parks: for open,
 * stat, fsync and the like under CORUN_FILE_IO=offload. */
long fileio_offload_syscall(struct sched *s, long nr, long a0, long a1, long a2, long a3, long a4);

#endif
