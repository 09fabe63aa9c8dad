/* Diagnostics written straight to fd 2: usable in signal handlers, before
 * stdio is set up, and without re-entering hooked functions. */
#ifndef CORUN_DIAG_H
#define CORUN_DIAG_H

__attribute__((format(printf, 1, 2))) void diag_print(const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void diag_fatal(const char *fmt, ...);

#endif
