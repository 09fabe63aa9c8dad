/*
 * io_flags.c - a plain blocking program, NOT linked with corun, run by
 * test_io_flags with LD_PRELOAD=libcorun.so and its stdin/stdout connected
 * to pipes or a socketpair made by the test.
 *
 * It copies stdin to stdout with blocking read() and write() (and readv,
 * writev, recv, send when asked), in chunks of varying sizes, until EOF. It
 * fails (exit status below) if a blocking write is short, if a read fails,
 * or if O_NONBLOCK ever shows on fd 0 or 1 (as F_GETFL reports it, and as
 * the kernel does). On stderr it reports whether libcorun was really loaded
 * (a preload that silently failed proves nothing) and the byte count.
 *
 * Usage: io_flags [copy|vec|sock]
 * Exit: 0 ok, 2 usage, 3 O_NONBLOCK seen, 4 short write, 5 read error,
 *       6 write error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int nonblocking(int fd)
{
    int a = fcntl(fd, F_GETFL);
    int b = (int)syscall(SYS_fcntl, fd, F_GETFL, 0);
    return a < 0 || b < 0 || a != b || (a & O_NONBLOCK) || (b & O_NONBLOCK);
}

static void check_flags(void)
{
    if (nonblocking(0) || nonblocking(1)) {
        fprintf(stderr, "io_flags: O_NONBLOCK seen on stdin/stdout (0x%x 0x%x)\n",
                fcntl(0, F_GETFL), fcntl(1, F_GETFL));
        exit(3);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "copy";
    if (strcmp(mode, "copy") && strcmp(mode, "vec") && strcmp(mode, "sock")) {
        fprintf(stderr, "usage: io_flags [copy|vec|sock]\n");
        return 2;
    }
    static char buf[200000];
    static const size_t sizes[] = { 1, 100, 4096, 65536, 7, 200000, 65537, 3 };
    unsigned long long total = 0;
    unsigned i = 0;
    check_flags();
    for (;; i++) {
        size_t want = sizes[i % 8];
        ssize_t n;
        if (!strcmp(mode, "vec")) {
            struct iovec v[2] = { { buf, want / 2 }, { buf + want / 2, want - want / 2 } };
            n = readv(0, v, 2);
        } else if (!strcmp(mode, "sock")) {
            n = recv(0, buf, want, 0);
        } else {
            n = read(0, buf, want);
        }
        if (n < 0) {
            fprintf(stderr, "io_flags: read: %s\n", strerror(errno));
            return 5;
        }
        check_flags();
        if (n == 0)
            break;
        ssize_t w;
        if (!strcmp(mode, "vec")) {
            size_t h = (size_t)n / 3;
            struct iovec v[2] = { { buf, h }, { buf + h, (size_t)n - h } };
            w = writev(1, v, 2);
        } else if (!strcmp(mode, "sock")) {
            w = send(1, buf, (size_t)n, 0);
        } else {
            w = write(1, buf, (size_t)n);
        }
        if (w < 0) {
            fprintf(stderr, "io_flags: write: %s\n", strerror(errno));
            return 6;
        }
        if (w != n) {
            fprintf(stderr, "io_flags: short blocking write: %zd of %zd\n", w, n);
            return 4;
        }
        check_flags();
        total += (unsigned long long)n;
    }
    fprintf(stderr, "io_flags: corun=%d bytes=%llu\n",
            dlsym(RTLD_DEFAULT, "corun_current") != NULL, total);
    return 0;
}
