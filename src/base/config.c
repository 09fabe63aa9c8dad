#include "config.h"

#include <ctype.h>
#include <sched.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "corun.h"
#include "diag.h"
#include "registry.h"

#define STACK_SIZE_MAX ((size_t)1 << 30)
#define STACK_SIZE_FALLBACK ((size_t)8 << 20)
#define POOL_SIZE_DEFAULT 64
#define POOL_SIZE_MAX 1024    /* libuv's own ceiling */

struct cr_config cr_config;
static bool check_only;          /* CORUN_CHECK_ONLY=1, from coro-run */
int config_parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'i' && shift)  /* accept KiB-style "Ki", "Mi", "Gi" */
        end++;
    if (*end == 'B' && shift)
        end++;
    if (*end != '\0')
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static size_t native_thread_stack_size(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur >= CORUN_STACK_MIN && rl.rlim_cur <= STACK_SIZE_MAX)
        return (size_t)rl.rlim_cur;
    return STACK_SIZE_FALLBACK;
}

int config_parse_signal(const char *s)
{
    if (!s || !*s)
        return -1;
    if (isdigit((unsigned char)*s)) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        return (errno || *end || v < 1 || v >= NSIG) ? -1 : (int)v;
    }
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
        int base = toupper((unsigned char)s[4]) == 'N' ? SIGRTMIN : SIGRTMAX;
        const char *p = s + 5;
        if (!*p)
            return base;
        if ((*p != '+' && *p != '-') || !isdigit((unsigned char)p[1]))
            return -1;
        char *end;
        long off = strtol(p, &end, 10);
        long v = base + off;
        return (*end || v < SIGRTMIN || v > SIGRTMAX) ? -1 : (int)v;
    }
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name && !strcasecmp(s, name))
            return sig;
    }
    return -1;
}

__attribute__((noreturn)) static void config_invalid(const char *name, const char *value, const char *allowed)
{
    /* Always on stderr: the log file setting may be the bad one. */
    diag_printf_fd(2, "corun: invalid %s='%s': %s\n", name, value, allowed);
    exit(2);
}

/* A setting's value, or NULL when unset or empty (empty means default). */
static const char *setting(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A string setting kept for later: a copy, since the program may rewrite
 * its environment block in place (setproctitle in Redis and PostgreSQL
 * overwrites the strings getenv points into). Static storage, not malloc:
 * this can run inside the program's allocator (a hook it calls). */
static const char *setting_kept(const char *name, char *store, size_t size)
{
    const char *v = setting(name);
    if (!v)
        return NULL;
    size_t n = strlen(v);
    if (n >= size) {
        char allowed[96];
        snprintf(allowed, sizeof allowed, "expected at most %zu characters", size - 1);
        config_invalid(name, v, allowed);
    }
    memcpy(store, v, n + 1);
    return store;
}

/* One of several words; returns its index. */
static int setting_choice(const char *name, const char *v, const char *const *words,
                          const char *allowed)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(v, words[i]))
            return i;
    config_invalid(name, v, allowed);
}

static unsigned setting_uint(const char *name, const char *v, unsigned lo, unsigned hi,
                             const char *allowed)
{
    char *end;
    errno = 0;
    unsigned long n = isdigit((unsigned char)*v) ? strtoul(v, &end, 10) : 0;
    if (!isdigit((unsigned char)*v) || errno || *end || n < lo || n > hi)
        config_invalid(name, v, allowed);
    return (unsigned)n;
}

static const char *const bool_words[] = { "0", "1", "no", "yes", "off", "on", "false", "true", NULL };

static int setting_bool(const char *name, const char *v)
{
    return setting_choice(name, v, bool_words,
                          "expected 1, yes, on or true (enabled), 0, no, off or false "
                          "(disabled)") & 1;
}

/* CORUN_INHERIT=0: the settings are read; take corun out of the environment
 * so that no child, however started (exec*, posix_spawn, system, a copy of
 * environ passed on), preloads it or sees its settings. */
static void environment_strip_corun(void)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre) {
        /* LD_PRELOAD lists objects separated by spaces or colons. */
        char *kept = malloc(strlen(pre) + 1), *out = kept;
        const char *p = pre;
        while (kept && *p) {
            size_t n = strcspn(p, ": ");
            const char *base = memrchr(p, '/', n);
            base = base ? base + 1 : p;
            size_t bn = n - (size_t)(base - p);
            bool ours = bn >= 9 && !strncmp(base, "libcorun.", 9);
            if (n && !ours) {
                if (out != kept)
                    *out++ = ':';
                memcpy(out, p, n);
                out += n;
            }
            p += n;
            p += strspn(p, ": ");
        }
        if (kept) {
            *out = '\0';
            if (*kept)
                setenv("LD_PRELOAD", kept, 1);
            else
                unsetenv("LD_PRELOAD");
            free(kept);
        }
    }
    for (size_t i = 0; environ[i];) {
        if (!strncmp(environ[i], "CORUN_", 6)) {
            char name[64];
            size_t n = strcspn(environ[i], "=");
            if (n < sizeof name) {
                memcpy(name, environ[i], n);
                name[n] = '\0';
                unsetenv(name);
                continue;                 /* the list moved down */
            }
        }
        i++;
    }
}

/* The CPUs this process may run on (sched_getaffinity), 1 to PROCS_MAX. */
static unsigned cpus_allowed(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);                   /* the kernel writes only its mask's bytes */
    long n = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
    if (n <= 0)
        return 1;
    int cpus = CPU_COUNT(&set);
    return cpus < 1 ? 1 : cpus > PROCS_MAX ? PROCS_MAX : (unsigned)cpus;
}

void config_load(void)
{
    static int loading;
    /* Reporting a bad setting may re-enter through a hook (a sanitizer's
     * printf wrapper asks for a pthread key): the nested call is a no-op. */
    if (cr_config.loaded || loading)
        return;
    struct cr_config *c = &cr_config;
    c->stack_size = native_thread_stack_size();
    c->pool_size = POOL_SIZE_DEFAULT;
    c->inherit = 1;
    c->file_io = FILE_IO_AUTO;
    c->log_level = LOG_WARN;
    c->preempt_ms = PREEMPT_MS_DEFAULT;
    c->handoff_ms = 10;
    c->steal = 1;
    c->procs = cpus_allowed();
    /* Called from a hook that ran before libc set up the environment (a
     * sanitizer runtime's early init): use the defaults for now and read
     * the settings on a later call. */
    if (!environ)
        return;
    loading = 1;

    const char *v;
    if ((v = setting("CORUN_STACK_SIZE"))) {
        size_t sz;
        if (config_parse_size(v, &sz) != 0 || sz < CORUN_STACK_MIN || sz > STACK_SIZE_MAX)
            config_invalid("CORUN_STACK_SIZE", v,
                           "expected a stack size in bytes, optionally with a K, M or G "
                           "suffix, from 16K to 1G (e.g. 64K, 8M)");
        c->stack_size = sz;
    }
    if ((v = setting("CORUN_THREADS")))
        c->threads_native = setting_choice("CORUN_THREADS", v, (const char *const[]){ "green", "native", NULL },
                                           "expected 'green' (threads become green threads, the "
                                           "default) or 'native' (threads stay kernel threads)");
    if ((v = setting("CORUN_TLS")))
        c->tls = TLS_SHARED + setting_choice("CORUN_TLS", v, (const char *const[]){ "shared", "own", NULL },
                                             "expected 'own' (each green thread has its own "
                                             "thread-local storage) or 'shared' (green threads "
                                             "share their OS thread's)");
    if ((v = setting("CORUN_CATCH")))
        c->catch_mode = (enum catch_mode)setting_choice(
            "CORUN_CATCH", v, (const char *const[]){ "auto", "plt", "sud", NULL },
            "expected 'auto' (the default: system calls no hook sees are caught where the "
            "kernel allows), 'plt' (only the hooks see calls) or 'sud' (catch with Syscall "
            "User Dispatch, warn where it cannot)");
    if ((v = setting("CORUN_POOL_SIZE"))) {
        c->pool_size = setting_uint("CORUN_POOL_SIZE", v, 1, POOL_SIZE_MAX,
                                    "expected the number of offload threads, 1 to 1024 "
                                    "(default 64)");
        c->pool_size_set = 1;
    }
    if ((v = setting("CORUN_INHERIT")))
        c->inherit = setting_bool("CORUN_INHERIT", v);
    if ((v = setting("CORUN_FILE_IO")))
        c->file_io = (enum file_io_policy)setting_choice(
            "CORUN_FILE_IO", v, (const char *const[]){ "auto", "inline", "offload", NULL },
            "expected 'auto' (the default: regular-file reads and writes run inline when "
            "they would not block, else on the pool), 'inline' (never offloaded) or "
            "'offload' (as auto, and open, stat, fsync and the like run on the pool too)");
    static char offload_store[4096], log_file_store[PATH_MAX];
    if ((c->offload = setting_kept("CORUN_OFFLOAD", offload_store, sizeof offload_store))) {
        char what[600], allowed[1400];
        REGISTRY_FOREACH(setting_checks, chk) {
            if (strcmp((*chk)->name, "CORUN_OFFLOAD") == 0 &&
                (*chk)->check(c->offload, what, sizeof what) != 0) {
                snprintf(allowed, sizeof allowed, "%s; %s", what, (*chk)->syntax);
                config_invalid("CORUN_OFFLOAD", c->offload, allowed);
            }
        }
    }
    if ((v = setting("CORUN_STATS")))
        c->stats = setting_bool("CORUN_STATS", v);
    if ((v = setting("CORUN_BLOCK_WARN_MS")))
        c->block_warn_ms = setting_uint("CORUN_BLOCK_WARN_MS", v, 0, 3600000,
                                        "expected milliseconds the loop may stay blocked "
                                        "before a warning, 1 to 3600000, or 0 (off, the "
                                        "default)");
    if ((v = setting("CORUN_PREEMPT_MS")))
        c->preempt_ms = setting_uint("CORUN_PREEMPT_MS", v, 0, 60000,
                                     "expected the milliseconds of CPU time a green thread may "
                                     "keep its OS thread without a switch before it is made to "
                                     "yield, 1 to 60000, or 0 (never preempt); default 10");
    if ((v = setting("CORUN_HANDOFF_MS")))
        c->handoff_ms = setting_uint("CORUN_HANDOFF_MS", v, 0, 60000,
                                     "expected the milliseconds a worker OS thread may stay in a "
                                     "blocking call corun cannot park before another OS thread "
                                     "takes over its green threads, 1 to 60000, or 0 (never); "
                                     "default 10");
    if ((v = setting("CORUN_STEAL")))
        c->steal = setting_bool("CORUN_STEAL", v);
    if ((v = setting("CORUN_PROCS"))) {
        c->procs = setting_uint("CORUN_PROCS", v, 1, PROCS_MAX,
                                "expected the number of OS threads that run green threads, "
                                "1 to 256 (default: the CPUs the process may run on; 1 keeps "
                                "every green thread on the OS thread that made it)");
        c->procs_set = 1;
    }
    if ((v = setting("CORUN_DUMP_SIGNAL"))) {
        int sig = config_parse_signal(v);
        if (sig < 0 || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
            sig == SIGILL || sig == SIGFPE)
            config_invalid("CORUN_DUMP_SIGNAL", v,
                           "expected a signal name or number that can be caught and is not "
                           "a fault signal, e.g. SIGQUIT, USR1, 10 (unset: no dump)");
        /* The blocking detector interrupts loop threads with SIGRTMAX-1. */
        if (c->block_warn_ms && sig == CORUN_DETECT_SIGNAL)
            config_invalid("CORUN_DUMP_SIGNAL", v,
                           "this signal (SIGRTMAX-1) is the blocking detector's "
                           "(CORUN_BLOCK_WARN_MS); choose another, e.g. SIGQUIT, USR1, RTMIN+2");
        /* corun's accept kick (fdio.c) interrupts blocking accepts with it. */
        if (sig == CORUN_KICK_SIGNAL)
            config_invalid("CORUN_DUMP_SIGNAL", v,
                           "this signal (SIGRTMAX-2) is corun's own (it bounds accept on sockets "
                           "shared with other processes); choose another, e.g. SIGQUIT, USR1, RTMIN+2");
        /* Preemption's timer signal (catch.h's PREEMPT_SIGNAL). */
        if (c->preempt_ms && sig == SIGURG)
            config_invalid("CORUN_DUMP_SIGNAL", v,
                           "this signal (SIGURG) preempts CPU-bound green threads "
                           "(CORUN_PREEMPT_MS); choose another, e.g. SIGQUIT, USR1, RTMIN+2, or "
                           "set CORUN_PREEMPT_MS=0");
        c->dump_signal = sig;
    }
    if ((v = setting("CORUN_LOG_LEVEL")))
        c->log_level = (enum log_level)setting_choice(
            "CORUN_LOG_LEVEL", v, (const char *const[]){ "error", "warn", "info", "debug", NULL },
            "expected 'error', 'warn' (the default), 'info' or 'debug'");
    if ((c->log_file = setting_kept("CORUN_LOG_FILE", log_file_store, sizeof log_file_store))) {
        /* Found out now, not when the first message is lost. */
        int fd = (int)syscall(SYS_openat, AT_FDCWD, c->log_file,
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            char allowed[160];
            snprintf(allowed, sizeof allowed, "cannot open it for appending (%s); expected a "
                     "file that can be created or written", strerror(errno));
            config_invalid("CORUN_LOG_FILE", c->log_file, allowed);
        }
        syscall(SYS_close, fd);
    }
    const char *check = getenv("CORUN_CHECK_ONLY");
    check_only = check && !strcmp(check, "1");
    c->report_tls = check && !strcmp(check, "tls");
    c->report_catch = check && !strcmp(check, "catch");
    c->loaded = 1;
    loading = 0;
    if (!c->inherit)
        environment_strip_corun();   /* CORUN_CHECK_ONLY too: read above */
}

__attribute__((constructor)) static void config_on_load(void)
{
    config_load();
    /* coro-run's check that the library loads and every setting is valid,
     * before it execs the program: nothing else runs. */
    if (check_only)
        _exit(0);
}
