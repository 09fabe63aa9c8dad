/*
 * corun_helper.c - a tiny program linked with libcorun, run by test_config
 * under various CORUN_* environments.
 *
 *   corun_helper hello      spawn and join one coroutine, print "hello ok"
 *   corun_helper use KB     in a coroutine with the default stack, use about
 *                           KB KiB of stack, print "used KB ok"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corun.h"

static void *answer(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

/* About 1 KiB of stack per level. */
static volatile unsigned long depth_seen;
__attribute__((noinline)) static unsigned long use_stack(unsigned long levels)
{
    volatile char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(levels + i);
    depth_seen++;
    if (levels == 0)
        return buf[7];
    return use_stack(levels - 1) + (unsigned long)(unsigned char)buf[levels % sizeof buf];
}

static void *use_kb(void *arg)
{
    use_stack((unsigned long)(uintptr_t)arg);
    return (void *)(uintptr_t)depth_seen;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "hello") == 0) {
        corun_t *co;
        void *r = NULL;
        if (corun_spawn(&co, NULL, answer, (void *)41) != 0 || corun_join(co, &r) != 0 ||
            (uintptr_t)r != 42) {
            fprintf(stderr, "hello: spawn/join failed\n");
            return 1;
        }
        printf("hello ok\n");
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "use") == 0) {
        unsigned long kb = strtoul(argv[2], NULL, 10);
        corun_t *co;
        void *r = NULL;
        if (corun_spawn(&co, NULL, use_kb, (void *)(uintptr_t)kb) != 0 ||
            corun_join(co, &r) != 0) {
            fprintf(stderr, "use: spawn/join failed\n");
            return 1;
        }
        printf("used %lu ok\n", kb);
        return 0;
    }
    fprintf(stderr, "usage: %s hello | use KB\n", argv[0]);
    return 64;
}
