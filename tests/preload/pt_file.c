/*
 * pt_file.c - regular-file I/O from threads, a plain pthread program run by
 * test_fileio natively and under the preload (CORUN_FILE_IO as the test
 * sets it). While a ticker thread is alive (so corun's hooks do not take
 * the lone-thread shortcut), every call must behave as the blocking system
 * call: file position, pread, O_APPEND, short reads at EOF, errno.
 *
 * Modes:
 *   semantics   the above, on a file in $PT_FILE_DIR (default /tmp)
 *   cached      reads of a cached file, and buffered writes, complete
 *               inline: under corun, no pool thread is ever started (the
 *               process stays one OS thread)
 *   cold        a read of a file dropped from the page cache: under corun
 *               green, it runs on the pool (a pool thread appears) and the
 *               ticker keeps ticking meanwhile; prints SKIP if the cache
 *               could not be dropped
 *   metadata    open/stat/access/fsync/truncate/rename/unlink/mkdir/rmdir
 *               results and errno; prints tasks=N after them
 *   sync_write  O_DSYNC writes; prints whether the filesystem takes
 *               RWF_NOWAIT writes (nowait_writes=) and tasks=N after them
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "pt_common.h"

/* libuv's pool's threads (named by corun, or by libuv 1.50 and later). */
static int pool_threads(void)
{
    return count_tasks_named("corun-pool") + count_tasks_named("libuv-worker");
}

/* The OS threads running the program's threads, and libuv's pool's. */
static int os_threads(void)
{
    return count_tasks() + pool_threads();
}

static const char *dir(void)
{
    const char *d = getenv("PT_FILE_DIR");
    return d && *d ? d : "/tmp";
}

static char path[4096];

static int make_file(const char *data, size_t n, int flags)
{
    snprintf(path, sizeof path, "%s/pt_file.%d", dir(), (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | flags, 0600);
    CHECKF(fd >= 0, "open %s: %s", path, ename(errno));
    if (fd >= 0 && n)
        CHECK(write(fd, data, n) == (ssize_t)n);
    return fd;
}

static void semantics(void)
{
    ticker_start();
    const char text[] = "0123456789abcdefghij";   /* 20 bytes */
    int fd = make_file(text, 20, 0);
    char b[64];

    /* read follows and moves the position; pread uses its own offset. */
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    errno = 1234;
    CHECK(read(fd, b, 4) == 4 && !memcmp(b, "0123", 4));
    CHECKF(errno == 1234, "a successful read changed errno to %s", ename(errno));
    CHECK(pread(fd, b, 3, 10) == 3 && !memcmp(b, "abc", 3));
    CHECK(lseek(fd, 0, SEEK_CUR) == 4);
    CHECK(read(fd, b, 4) == 4 && !memcmp(b, "4567", 4));

    /* Short read at EOF, then 0. */
    CHECK(lseek(fd, 15, SEEK_SET) == 15);
    CHECK(read(fd, b, sizeof b) == 5 && !memcmp(b, "fghij", 5));
    CHECK(read(fd, b, sizeof b) == 0);
    CHECK(pread(fd, b, sizeof b, 18) == 2 && !memcmp(b, "ij", 2));
    CHECK(pread(fd, b, sizeof b, 100) == 0);

    /* readv over several buffers, preadv2 with offset -1 = position. */
    char x[3], y[5];
    struct iovec v[2] = { { x, 3 }, { y, 5 } };
    CHECK(lseek(fd, 2, SEEK_SET) == 2);
    CHECK(readv(fd, v, 2) == 8 && !memcmp(x, "234", 3) && !memcmp(y, "56789", 5));
    CHECK(preadv2(fd, v, 2, -1, 0) == 8 && !memcmp(x, "abc", 3) && !memcmp(y, "defgh", 5));
    CHECK(lseek(fd, 0, SEEK_CUR) == 18);
    CHECK(preadv(fd, v, 2, 1) == 8 && !memcmp(x, "123", 3));
    CHECK(lseek(fd, 0, SEEK_CUR) == 18);
    CHECK(readv(fd, v, 0) == 0);
    volatile int negative = -1, too_many = 1025;   /* hidden from the compiler's checks */
    FAILS_ERRNO((int)readv(fd, v, negative), EINVAL);
    FAILS_ERRNO((int)preadv(fd, v, too_many, 0), EINVAL);

    /* Writes: at the position, pwrite at its offset, writev. */
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "AB", 2) == 2);
    CHECK(pwrite(fd, "Z", 1, 19) == 1);
    CHECK(lseek(fd, 0, SEEK_CUR) == 2);
    struct iovec w[2] = { { "cd", 2 }, { "EF", 2 } };
    CHECK(writev(fd, w, 2) == 4);
    CHECK(pread(fd, b, 20, 0) == 20 && !memcmp(b, "ABcdEF6789abcdefghiZ", 20));

    /* Negative offsets, pipes, directories, bad fds: the kernel's errors. */
    FAILS_ERRNO((int)pread(fd, b, 1, -1), EINVAL);
    FAILS_ERRNO((int)pwrite(fd, b, 1, -5), EINVAL);
    int p[2];
    OK(pipe(p));
    FAILS_ERRNO((int)pread(p[0], b, 1, 0), ESPIPE);
    close(p[0]);
    close(p[1]);
    int d = open(dir(), O_RDONLY | O_DIRECTORY);
    CHECK(d >= 0);
    FAILS_ERRNO((int)read(d, b, 1), EISDIR);
    close(d);
    int ro = open(path, O_RDONLY);
    FAILS_ERRNO((int)write(ro, "x", 1), EBADF);
    close(ro);
    close(fd);
    FAILS_ERRNO((int)read(fd, b, 1), EBADF);

    /* O_APPEND: every write goes to the end, whatever the position; the
     * flags the program set are what F_GETFL reports. */
    fd = open(path, O_RDWR | O_APPEND);
    CHECK(fd >= 0);
    int fl = fcntl(fd, F_GETFL);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "++", 2) == 2);
    CHECK(lseek(fd, 0, SEEK_CUR) == 22);
    CHECK(pread(fd, b, 4, 18) == 4 && !memcmp(b, "iZ++", 4));
    CHECK(fcntl(fd, F_GETFL) == fl && !(fl & O_NONBLOCK));
    close(fd);

    /* A larger read, over many pages, at once. */
    size_t big = 1 << 20;
    char *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + i / 4096);
    fd = make_file(data, big, 0);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(read(fd, back, big) == (ssize_t)big && !memcmp(data, back, big));
    close(fd);
    free(data);
    free(back);
    unlink(path);
    ticker_end();
}

static void cached(void)
{
    ticker_start();
    int fd = make_file("cached contents", 15, 0);
    char b[32];
    for (int i = 0; i < 1000; i++)
        CHECK(pread(fd, b, sizeof b, 0) == 15);
    for (int i = 0; i < 100; i++)       /* buffered writes land in the cache too */
        CHECK(pwrite(fd, "cached contents", 15, 0) == 15);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(read(fd, b, sizeof b) == 15 && !memcmp(b, "cached contents", 15));
    close(fd);
    unlink(path);
    printf("tasks=%d\n", os_threads());
    ticker_end();
}

/* Pages of path's first `len` bytes in the page cache. */
static size_t resident(int fd, size_t len)
{
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return len;
    size_t pages = len / 4096, n = 0;
    unsigned char *vec = malloc(pages);
    if (mincore(m, len, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            n += vec[i] & 1;
    free(vec);
    munmap(m, len);
    return n;
}

static void cold(void)
{
    size_t len = 16 << 20;
    char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i ^ (i >> 12));
    int fd = make_file(data, len, 0);
    OK(fsync(fd));
    OK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    size_t pages = resident(fd, len);
    int before = os_threads();
    ticker_start();
    char *back = malloc(len);
    CHECK(pread(fd, back, len, 0) == (ssize_t)len && !memcmp(data, back, len));
    if (pages > len / 4096 / 2)
        printf("SKIP cold: the page cache kept %zu of %zu pages\n", pages, len / 4096);
    else
        printf("cold tasks_before=%d tasks_after=%d pool=%d\n", before, os_threads(),
               pool_threads());
    ticker_end();
    close(fd);
    unlink(path);
    free(data);
    free(back);
}

/* O_DSYNC writes wait for the disk: where the filesystem cannot try them
 * with RWF_NOWAIT, they go to the pool. */
static void sync_write(void)
{
    ticker_start();
    int fd = make_file(NULL, 0, O_DSYNC);
    struct iovec v = { "probe", 5 };
    long r = syscall(SYS_pwritev2, fd, &v, 1, 0L, 0L, RWF_NOWAIT);
    printf("nowait_writes=%d\n", r >= 0 ? 1 : errno == EOPNOTSUPP ? 0 : -1);
    for (int i = 0; i < 20; i++)
        CHECK(write(fd, "0123456789", 10) == 10);
    CHECK(lseek(fd, 0, SEEK_CUR) == 200);
    char b[16];
    CHECK(pread(fd, b, 10, 190) == 10 && !memcmp(b, "0123456789", 10));
    close(fd);
    unlink(path);
    printf("tasks=%d\n", os_threads());
    ticker_end();
}

static void metadata(void)
{
    ticker_start();
    char p2[4200], d[4200];
    int fd = make_file("abc", 3, 0);
    struct stat st;
    OK(fstat(fd, &st));
    CHECK(st.st_size == 3 && S_ISREG(st.st_mode));
    OK(ftruncate(fd, 10));
    OK(stat(path, &st));
    CHECK(st.st_size == 10);
    OK(truncate(path, 2));
    OK(lstat(path, &st));
    CHECK(st.st_size == 2);
    OK(access(path, R_OK | W_OK));
    snprintf(p2, sizeof p2, "%s.renamed", path);
    OK(rename(path, p2));
    FAILS_ERRNO(stat(path, &st), ENOENT);
    FAILS_ERRNO(access(path, F_OK), ENOENT);
    FAILS_ERRNO(open(path, O_RDONLY), ENOENT);
    FAILS_ERRNO(fstat(-1, &st), EBADF);
    OK(unlink(p2));
    FAILS_ERRNO(unlink(p2), ENOENT);
    snprintf(d, sizeof d, "%s.dir", path);
    OK(mkdir(d, 0700));
    FAILS_ERRNO(mkdir(d, 0700), EEXIST);
    OK(fstatat(AT_FDCWD, d, &st, 0));
    CHECK(S_ISDIR(st.st_mode));
    OK(rmdir(d));
    FAILS_ERRNO(rmdir(d), ENOENT);
    int c = creat(p2, 0600);
    CHECK(c >= 0);
    CHECK(write(c, "xy", 2) == 2);
    close(c);
    struct statx sx;
    OK(statx(AT_FDCWD, p2, 0, STATX_SIZE, &sx));
    CHECK(sx.stx_size == 2);
    OK(unlink(p2));
    printf("tasks=%d\n", os_threads());
    /* The sync calls last: they go to the pool unless CORUN_FILE_IO=inline. */
    OK(fsync(fd));
    OK(fdatasync(fd));
    FAILS_ERRNO(fsync(-1), EBADF);
    int p[2];
    CHECK(pipe(p) == 0);
    FAILS_ERRNO(fdatasync(p[0]), EINVAL);
    close(p[0]);
    close(p[1]);
    close(fd);
    printf("tasks_sync=%d\n", os_threads());
    ticker_end();
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "semantics", semantics },
        { "cached", cached },
        { "cold", cold },
        { "metadata", metadata },
        { "sync_write", sync_write },
    };
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
