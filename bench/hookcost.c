/*
 * hookcost: what a hooked read() costs on a socket that has data ready,
 * against the raw system call, in the same run.
 *
 * A socketpair is filled, then drained one byte per call: once with
 * the syscall instruction (no hook: libc's syscall() is itself hooked now,
 * for gettid), once with read() (corun's hook: gate, fd
 * table, recv with MSG_DONTWAIT). The instruction's rounds come first,
 * while the main thread is the only green thread (the catch of system
 * calls, CORUN_CATCH, is armed only with a second one); then the hook's,
 * beside a parked green thread, alternating with two caught calls: the
 * same instruction read (caught and routed to the hook) and getppid by
 * instruction (caught and made as it is). Medians reported.
 */
#include <corun.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

/* read(2) as the bare instruction: the baseline no hook can touch. */
static long raw_read(int fd, void *buf, size_t n)
{
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_read), "D"((long)fd), "S"(buf), "d"(n)
                     : "rcx", "r11", "memory");
    return r;
}

static long raw_getppid(void)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "0"((long)SYS_getppid) : "rcx", "r11", "memory");
    return r;
}

static void *sleeper(void *arg)
{
    corun_sleep(CORUN_SEC(3600));
    return arg;
}

static size_t fill(int fd)
{
    static char chunk[4096];
    size_t total = 0;
    for (;;) {
        long w = syscall(SYS_sendto, fd, chunk, sizeof chunk, MSG_DONTWAIT, NULL, 0);
        if (w <= 0)
            return total;
        total += (size_t)w;
    }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    int big = 8 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    corun_current();                 /* the main thread is a green thread now */
    double raw[64], hooked[64], caught_read[64], caught_plain[64];
    if (rounds > 64)
        rounds = 64;
    char c;
    for (int r = 0; r < rounds; r++) {
        size_t n = fill(sv[1]);
        double t = now_ns();
        for (size_t i = 0; i < n; i++)
            raw_read(sv[0], &c, 1);
        raw[r] = (now_ns() - t) / (double)n;
    }
    /* Another green thread, parked: with none, a lone thread's read() goes
     * straight to libc (correct, and not what is measured here). */
    corun_spawn(NULL, NULL, sleeper, NULL);
    corun_yield();
    for (int r = 0; r < rounds; r++) {
        size_t n = fill(sv[1]);
        double t = now_ns();
        for (size_t i = 0; i < n; i++)
            if (read(sv[0], &c, 1) != 1)
                return 1;
        hooked[r] = (now_ns() - t) / (double)n;

        /* Caught calls cost about a microsecond: 20,000 of them, then the
         * rest drained in bulk. */
        n = fill(sv[1]);
        size_t k = n < 20000 ? n : 20000;
        t = now_ns();
        for (size_t i = 0; i < k; i++)
            raw_read(sv[0], &c, 1);
        caught_read[r] = (now_ns() - t) / (double)k;
        static char rest[1 << 16];
        for (size_t left = n - k; left > 0;) {
            ssize_t got = read(sv[0], rest, left < sizeof rest ? left : sizeof rest);
            if (got <= 0)
                return 1;
            left -= (size_t)got;
        }

        t = now_ns();
        long sum = 0;
        for (int i = 0; i < 20000; i++)
            sum += raw_getppid();
        caught_plain[r] = (now_ns() - t) / 20000.0;
        if (sum != 20000L * getppid())
            return 1;
    }
    qsort(raw, (size_t)rounds, sizeof *raw, cmp_double);
    qsort(hooked, (size_t)rounds, sizeof *hooked, cmp_double);
    qsort(caught_read, (size_t)rounds, sizeof *caught_read, cmp_double);
    qsort(caught_plain, (size_t)rounds, sizeof *caught_plain, cmp_double);
    double mr = raw[rounds / 2], mh = hooked[rounds / 2];
    printf("read() of 1 byte, data ready, median of %d rounds:\n", rounds);
    printf("  raw syscall   %8.1f ns\n", mr);
    printf("  corun hook    %8.1f ns\n", mh);
    printf("  hook overhead %8.1f ns\n", mh - mr);
    printf("syscall instructions beside a parked green thread (caught where CORUN_CATCH is in force):\n");
    printf("  read, routed  %8.1f ns\n", caught_read[rounds / 2]);
    printf("  getppid       %8.1f ns\n", caught_plain[rounds / 2]);
    return 0;
}
