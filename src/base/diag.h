/* Diagnostics written with raw syscalls: usable in signal handlers, before
 * stdio is set up, and without re-entering hooked functions. They go to
 * CORUN_LOG_FILE when set (opened on first use, appended to), else fd 2,
 * and only when CORUN_LOG_LEVEL lets their level through. */
#ifndef CR_DIAG_H
#define CR_DIAG_H

#include <stdarg.h>

#include "config.h"

/* An error: always written. */
__attribute__((format(printf, 1, 2))) void diag_print(const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void diag_fatal(const char *fmt, ...);
/* A message of `level`, dropped when CORUN_LOG_LEVEL is lower. */
__attribute__((format(printf, 2, 3))) void diag_log(enum log_level level, const char *fmt, ...);

/* The fd diagnostics go to (the log file, or 2). */
int diag_fd(void);
/* Write all of buf to fd (raw write, retried on short writes). */
void diag_write_all(int fd, const char *buf, size_t n);
/* printf to fd through a stack buffer, no "corun: " prefix, no newline added. */
__attribute__((format(printf, 2, 3))) void diag_printf_fd(int fd, const char *fmt, ...);

#endif
