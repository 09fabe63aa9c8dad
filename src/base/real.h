/* The libc functions behind corun's hooks, looked up on first use with
 * dlsym(RTLD_NEXT): hooks may run before corun's constructor.
 *
 * The one way to reach them: a hook declares its pointer with REAL_DECL and
 * calls REAL(name); a layer below the hooks calls the libc_* functions
 * declared at the end, never the plain name (inside libcorun.so that would
 * bind to corun's own hook: `make check`'s hook check fails the build). */
#ifndef CR_REAL_H
#define CR_REAL_H

#include <signal.h>
#include <stddef.h>

/* The next definition of `name` after libcorun (libc's); aborts with a
 * message if there is none, since the call could not be made at all. */
void *real_resolve(const char *name);
/* Same, for one version of a versioned symbol. */
void *real_resolve_version(const char *name, const char *version);

#define REAL_DECL(ret, name, params) static ret(*real_##name) params

#define REAL(name)                                                        \
    ({                                                                    \
        __typeof__(real_##name) f_ = real_##name;                         \
        if (__builtin_expect(f_ == NULL, 0))                              \
            real_##name = f_ = (__typeof__(f_))real_resolve(#name);       \
        f_;                                                               \
    })

/* REAL() for a symbol glibc exports in several versions (plain dlsym would
 * give the oldest). */
#define REAL_V(name, version)                                                    \
    ({                                                                           \
        __typeof__(real_##name) f_ = real_##name;                                \
        if (__builtin_expect(f_ == NULL, 0))                                     \
            real_##name = f_ = (__typeof__(f_))real_resolve_version(#name, version); \
        f_;                                                                      \
    })

/* For the layers below the hooks. */
int libc_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int libc_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
void *libc_dlopen(const char *file, int mode);
#include <stdio.h>
FILE *libc_fdopen(int fd, const char *mode);
int libc_fclose(FILE *stream);
#include <pthread.h>
int libc_thread_stack(void **lo, size_t *size);
int libc_pthread_once(pthread_once_t *once, void (*fn)(void));
int libc_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
/* glibc's own bookkeeping of a process that has more than one thread. */
void libc_became_multithreaded(void);

#endif
