/* CORUN_* settings, read and validated once when the library loads. */
#ifndef CR_CONFIG_H
#define CR_CONFIG_H

#include <signal.h>
#include <stddef.h>

#include "registry.h"

enum file_io_policy {
    FILE_IO_AUTO,      /* reads/writes try RWF_NOWAIT inline; on a miss, the pool */
    FILE_IO_INLINE,    /* regular files are never offloaded */
    FILE_IO_OFFLOAD,   /* as auto, and open/stat/fsync... run on the pool too */
};

enum tls_mode {
    TLS_DEFAULT,       /* unset: own where this machine and glibc allow it */
    TLS_SHARED,        /* green threads share their OS thread's TLS and TCB */
    TLS_OWN,           /* each green thread has its own (tls.h) */
};

enum catch_mode {
    CATCH_MODE_AUTO,   /* unset: catch calls outside the hooks where the kernel can */
    CATCH_MODE_PLT,    /* only the hooks (the PLT) see calls */
    CATCH_MODE_SUD,    /* Syscall User Dispatch, with a warning where it cannot be had */
};

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* corun's own signals: the blocking detector's (inspect.c) and the one that
 * bounds a real accept on a socket shared with other processes (fdio.c). */
#define CORUN_DETECT_SIGNAL (SIGRTMAX - 1)
#define CORUN_KICK_SIGNAL (SIGRTMAX - 2)

struct cr_config {
    size_t stack_size;        /* CORUN_STACK_SIZE: default coroutine stack, bytes */
    int threads_native;       /* CORUN_THREADS=native: pthreads stay kernel threads */
    enum tls_mode tls;        /* CORUN_TLS */
    enum catch_mode catch_mode; /* CORUN_CATCH */
    unsigned pool_size;       /* CORUN_POOL_SIZE: libuv worker threads */
    int pool_size_set;        /* ... given (else the program's UV_THREADPOOL_SIZE wins) */
    int inherit;              /* CORUN_INHERIT: children keep the preload */
    enum file_io_policy file_io; /* CORUN_FILE_IO */
    const char *offload;      /* CORUN_OFFLOAD: "lib:function:signature,..." or NULL */
    int stats;                /* CORUN_STATS: print a table at exit */
    unsigned block_warn_ms;   /* CORUN_BLOCK_WARN_MS: 0 = detector off */
    unsigned preempt_ms;      /* CORUN_PREEMPT_MS: CPU slice before a yield is forced; 0 = off */
    unsigned procs;           /* CORUN_PROCS: OS threads running green threads (M:N) */
    int steal;                /* CORUN_STEAL (default on): an idle worker takes threads woken
                               * from a park */
    unsigned handoff_ms;      /* CORUN_HANDOFF_MS: a worker stuck this long in a real call hands
                               * its scheduler to another OS thread; 0 = never */
    int procs_set;            /* ... given (else the CPUs the process may run on) */
    int dump_signal;          /* CORUN_DUMP_SIGNAL: 0 = no live dump */
    enum log_level log_level; /* CORUN_LOG_LEVEL */
    const char *log_file;     /* CORUN_LOG_FILE: NULL = stderr */
    int report_tls;           /* CORUN_CHECK_ONLY=tls (coro-run --doctor): print the TLS mode, exit */
    int report_catch;         /* CORUN_CHECK_ONLY=catch: print the catch's mode, exit */
    int loaded;               /* settings read: the hooks may start working */
};

#define PREEMPT_MS_DEFAULT 10
#define PROCS_MAX 256

extern struct cr_config cr_config;

/* A setting whose syntax an upper layer knows (CORUN_OFFLOAD): check()
 * returns 0, or -1 with what is wrong in err; config_load then prints that
 * and `syntax` and exits with status 2. Registered with REGISTER. */
struct setting_check {
    const char *name;
    int (*check)(const char *value, char *err, size_t errlen);
    const char *syntax;
};
REGISTRY_SET(setting_checks, const struct setting_check);

/* Parse "16384", "64K", "8M", "1G" (binary multiples). Returns 0 or -1. */
int config_parse_size(const char *s, size_t *out);

/* Parse a signal given as "SIGQUIT", "QUIT", "quit" or a number (1..64,
 * SIGRTMIN+n allowed as "RTMIN+n"). Returns the number or -1. */
int config_parse_signal(const char *s);

/* Read the environment; an invalid setting prints what is wrong and what is
 * allowed, then exits with status 2. Idempotent. */
void config_load(void);

#endif
