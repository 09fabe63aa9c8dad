/* CORUN_* settings, read and validated once when the library loads. */
#ifndef CORUN_CONFIG_H
#define CORUN_CONFIG_H

#include <stddef.h>

struct corun_config {
    size_t stack_size;        /* default coroutine stack, bytes */
    int threads_native;       /* CORUN_THREADS=native: pthreads stay kernel threads */
    int loaded;               /* settings read: the hooks may start working */
};

extern struct corun_config corun_config;

/* Parse "16384", "64K", "8M", "1G" (binary multiples). Returns 0 or -1. */
int config_parse_size(const char *s, size_t *out);

/* Read the environment; an invalid setting prints what is wrong and what is
 * allowed, then exits with status 2. Idempotent. */
void config_load(void);

#endif
