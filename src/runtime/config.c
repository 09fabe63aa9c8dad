#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "corun.h"
#include "diag.h"

#define STACK_SIZE_MAX ((size_t)1 << 30)
#define STACK_SIZE_FALLBACK ((size_t)8 << 20)

struct corun_config corun_config;
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

static void config_invalid(const char *name, const char *value, const char *allowed)
{
    diag_print("invalid %s='%s': %s", name, value, allowed);
    exit(2);
}

void config_load(void)
{
    static int loading;
    /* Reporting a bad setting may re-enter through a hook (a sanitizer's
     * printf wrapper asks for a pthread key): the nested call is a no-op. */
    if (corun_config.loaded || loading)
        return;
    /* Called from a hook that ran before libc set up the environment (a
     * sanitizer runtime's early init): use the defaults for now and read
     * the settings on a later call. */
    if (!environ) {
        corun_config.stack_size = native_thread_stack_size();
        return;
    }
    loading = 1;

    corun_config.stack_size = native_thread_stack_size();
    const char *v = getenv("CORUN_STACK_SIZE");
    if (v && *v) {
        size_t sz;
        if (config_parse_size(v, &sz) != 0 || sz < CORUN_STACK_MIN || sz > STACK_SIZE_MAX)
            config_invalid("CORUN_STACK_SIZE", v,
                           "expected a stack size in bytes, optionally with a K, M or G "
                           "suffix, from 16K to 1G (e.g. 64K, 8M)");
        corun_config.stack_size = sz;
    }
    v = getenv("CORUN_THREADS");
    if (v && *v) {
        if (!strcmp(v, "green"))
            corun_config.threads_native = 0;
        else if (!strcmp(v, "native"))
            corun_config.threads_native = 1;
        else
            config_invalid("CORUN_THREADS", v,
                           "expected 'green' (threads become green threads, the default) or "
                           "'native' (threads stay kernel threads)");
    }
    corun_config.loaded = 1;
    loading = 0;
}

__attribute__((constructor)) static void config_on_load(void)
{
    config_load();
}
