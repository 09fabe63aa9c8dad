/* The libc functions behind corun's hooks, looked up on first use with
 * dlsym(RTLD_NEXT): hooks may run before corun's constructor. */
#ifndef CORUN_REAL_H
#define CORUN_REAL_H

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

/* Hooks are the library's exported interface to the program. */
#define HOOK __attribute__((visibility("default")))

#endif
