/* Hooks: stdio reads. glibc's stdio calls read() internally, where no hook
 * sees it: on a pipe or socket (a popen() stream, an fdopen()ed socket) it
 * would block the whole loop. When the stream's buffer is empty, park until
 * the fd has input first; the real function's read then returns at once. */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>

/* Some are macros with optimisation on; the hooks are the functions.
 * (getc_unlocked and fgetc_unlocked are left alone: glibc declares them
 * inline with attributes clang will not let a definition follow.) */
#undef fread_unlocked
#undef fgets_unlocked
#undef getc
#undef fgetc

#include "fdio.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(char *, fgets, (char *, int, FILE *));
REAL_DECL(char *, fgets_unlocked, (char *, int, FILE *));
REAL_DECL(int, fgetc, (FILE *));
REAL_DECL(int, getc, (FILE *));
REAL_DECL(size_t, fread, (void *, size_t, size_t, FILE *));
REAL_DECL(size_t, fread_unlocked, (void *, size_t, size_t, FILE *));
REAL_DECL(ssize_t, getdelim, (char **, size_t *, int, FILE *));
REAL_DECL(ssize_t, __getdelim, (char **, size_t *, int, FILE *));
REAL_DECL(ssize_t, getline, (char **, size_t *, FILE *));

/* 0: go on with the real call; else the stream is marked in error (as a
 * read failing with that errno would leave it) and the call fails. The
 * real call that follows runs as the program's code (outside the catch's
 * hold, src/core/catch.h): glibc's own FILE lock and reads inside it are
 * caught like any stdio call's. */
static int input_ready(FILE *f)
{
    CATCH_HOLD();
    if (f->_IO_read_ptr < f->_IO_read_end)
        return 0;                       /* buffered: no read() needed */
    struct sched *s = gate_blocking();
    if (!s)
        return 0;
    int fd = fileno_unlocked(f);
    if (fd < 0)
        return 0;                       /* a memory stream or a cookie */
    int err = fdio_wait_input(s, fd);
    if (err) {
        f->_flags |= _IO_ERR_SEEN;
        errno = err;
    }
    return err;
}

#define STDIO_READ(ret, name, params, args, fail, f)   \
    HOOK ret name params                               \
    {                                                  \
        if (input_ready(f))                            \
            return fail;                               \
        return REAL(name) args;                        \
    }

STDIO_READ(char *, fgets, (char *b, int n, FILE *f), (b, n, f), NULL, f)
STDIO_READ(char *, fgets_unlocked, (char *b, int n, FILE *f), (b, n, f), NULL, f)
STDIO_READ(int, fgetc, (FILE *f), (f), EOF, f)
STDIO_READ(int, getc, (FILE *f), (f), EOF, f)
STDIO_READ(size_t, fread, (void *p, size_t sz, size_t n, FILE *f), (p, sz, n, f), 0, f)
STDIO_READ(size_t, fread_unlocked, (void *p, size_t sz, size_t n, FILE *f), (p, sz, n, f), 0, f)
STDIO_READ(ssize_t, getdelim, (char **l, size_t *n, int d, FILE *f), (l, n, d, f), -1, f)
/* Inlined getline calls __getdelim. The getline hook gets its name from an
 * asm label: glibc's header declares getline inline when optimising, and
 * clang will not let a definition follow that declaration. */
STDIO_READ(ssize_t, __getdelim, (char **l, size_t *n, int d, FILE *f), (l, n, d, f), -1, f)

HOOK ssize_t getline_hook(char **l, size_t *n, FILE *f) __asm__("getline");
HOOK ssize_t getline_hook(char **l, size_t *n, FILE *f)
{
    if (input_ready(f))
        return -1;
    return REAL(getline)(l, n, f);
}
