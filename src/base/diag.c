#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ownfd.h"

void diag_write_all(int fd, const char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        long w = syscall(SYS_write, fd, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

int diag_fd(void)
{
    /* -1: not opened yet; a failed open falls back to stderr, once. */
    static int log_fd = -1;
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0)
        return fd;
    if (!cr_config.loaded || !cr_config.log_file)
        return 2;
    int nfd = (int)syscall(SYS_openat, AT_FDCWD, cr_config.log_file,
                           O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (nfd < 0) {
        int e = errno;
        nfd = 2;
        char msg[512];
        int n = snprintf(msg, sizeof msg, "corun: cannot open CORUN_LOG_FILE '%s' (errno %d); "
                         "logging to stderr\n", cr_config.log_file, e);
        diag_write_all(2, msg, n > 0 && n < (int)sizeof msg ? (size_t)n : 0);
    }
    if (nfd != 2)
        nfd = ownfd_adopt(nfd);         /* out of the program's sight */
    int expected = -1;
    if (!__atomic_compare_exchange_n(&log_fd, &expected, nfd, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        if (nfd != 2) {
            ownfd_forget(nfd);
            syscall(SYS_close, nfd);    /* another thread opened it first */
        }
        return expected;
    }
    if (nfd != 2)
        ownfd_track_static(&log_fd);   /* lock-free: this may be a signal handler */
    return nfd;
}

static void diag_vwrite(int fd, const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "corun: ");
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    if (n >= (int)sizeof buf - 1)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    diag_write_all(fd, buf, (size_t)n);
}

void diag_printf_fd(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= (int)sizeof buf)
        n = (int)sizeof buf - 1;
    diag_write_all(fd, buf, (size_t)n);
}

void diag_print(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vwrite(diag_fd(), fmt, ap);
    va_end(ap);
}

void diag_log(enum log_level level, const char *fmt, ...)
{
    if (level > cr_config.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    diag_vwrite(diag_fd(), fmt, ap);
    va_end(ap);
}

void diag_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int fd = diag_fd();
    diag_vwrite(fd, fmt, ap);
    va_end(ap);
    if (fd != 2) {                 /* a fatal error is also shown where the user looks */
        va_start(ap, fmt);
        diag_vwrite(2, fmt, ap);
        va_end(ap);
    }
    abort();
}
