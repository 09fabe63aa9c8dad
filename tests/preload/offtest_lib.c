/*
 * libofftest.so - a small library whose functions test CORUN_OFFLOAD
 * (test_ffi_offload). offtest_slow blocks in a way corun cannot see (the
 * nanosleep system call made with its own syscall instruction), so only
 * offloading can keep the other green threads running meanwhile.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "insn_syscall.h"

#define SLOW_NS 200000000L

long offtest_slow(int a, double d, const char *s, long b)
{
    struct timespec ts = { 0, SLOW_NS };
    while (insn_syscall(SYS_nanosleep, (long)&ts, (long)&ts, 0, 0, 0, 0) == -EINTR)
        ;
    return a * 1000L + (long)(d * 10) + (long)strlen(s) * 100000L + b;
}

/* A small return type, a float and a pointer written through. */
char offtest_grade(unsigned char score, float bonus, int *out)
{
    *out = score + (int)bonus;
    return *out >= 90 ? 'A' : *out >= 50 ? 'B' : 'C';
}

double offtest_scale(double x, short k)
{
    return x * k;
}

/* Fails with errno, as library calls do. */
int offtest_fail(int e)
{
    errno = e;
    return -1;
}
