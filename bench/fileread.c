/*
 * fileread: what a read of a cached regular file costs, for comparing a
 * run under the preload (CORUN_FILE_IO=auto: preadv2 with RWF_NOWAIT,
 * inline on a page-cache hit) with the same binary run natively. A plain
 * pthread program (not linked with corun). A second thread sleeps
 * throughout, so that under corun the hooks take their green-thread path
 * rather than the lone-thread shortcut.
 *
 * Prints, per call (median of alternating rounds): pread() of 4 KiB at a
 * cached offset, the raw pread64 system call in the same rounds, and
 * stat() of the file (on the pool under CORUN_FILE_IO=offload).
 *
 *   bench/fileread [ROUNDS] [CALLS_PER_ROUND]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

static void *sleeper(void *arg)
{
    sleep(3600);
    return arg;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    int calls = argc > 2 ? atoi(argv[2]) : 20000;
    if (rounds < 1 || rounds > 1000 || calls < 1) {
        fprintf(stderr, "usage: %s [ROUNDS 1..1000] [CALLS_PER_ROUND]\n", argv[0]);
        return 2;
    }
    char path[] = "/tmp/corun-fileread-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
        perror("write");
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    pthread_detach(t);

    double *hook = calloc((size_t)rounds, sizeof *hook), *raw = calloc((size_t)rounds, sizeof *raw),
           *st = calloc((size_t)rounds, sizeof *st);
    struct stat sb;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (int i = 0; i < calls; i++)
            if (pread(fd, buf, 4096, (off_t)(i & 15) * 4096) != 4096)
                abort();
        double t1 = now_ns();
        for (int i = 0; i < calls; i++)
            if (syscall(SYS_pread64, fd, buf, 4096, (off_t)(i & 15) * 4096) != 4096)
                abort();
        double t2 = now_ns();
        int n = calls / 10 ? calls / 10 : 1;
        for (int i = 0; i < n; i++)
            if (stat(path, &sb) != 0)
                abort();
        double t3 = now_ns();
        hook[r] = (t1 - t0) / calls;
        raw[r] = (t2 - t1) / calls;
        st[r] = (t3 - t2) / n;
    }
    qsort(hook, (size_t)rounds, sizeof *hook, cmp_double);
    qsort(raw, (size_t)rounds, sizeof *raw, cmp_double);
    qsort(st, (size_t)rounds, sizeof *st, cmp_double);
    printf("pread 4 KiB cached: %.1f ns/call (raw syscall %.1f ns, difference %+.1f ns); "
           "stat: %.1f ns/call\n",
           hook[rounds / 2], raw[rounds / 2], hook[rounds / 2] - raw[rounds / 2], st[rounds / 2]);
    unlink(path);
    return 0;
}
