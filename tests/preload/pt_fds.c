/*
 * pt_fds.c - a plain pthread program (not linked with corun): corun's own
 * fds (epoll sets, eventfds, libuv's pipes) are invisible to the program.
 * Its first open gets the lowest free number, as natively; fstat, fcntl,
 * close and dup see no fd there; close_range(3, ~0U) and closefrom(3)
 * leave green threads, pipes and fork working; a dup2 onto one of corun's
 * numbers gets that number; an exec'd child inherits none of them.
 *
 * Run by tests/test_pthread_green as `pt_fds MODE`, natively and under
 * corun. "What is really open" is read with the test's own syscall
 * instructions (insn_syscall.h): fstat, which corun passes to the kernel
 * even when it catches syscall instructions (its catch hides its fds from
 * a raw close, dup or fcntl, as the hooks do).
 */
#include <fcntl.h>
#include <linux/close_range.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "pt_common.h"
#include "insn_syscall.h"

#define MAXFD 65536

/* Open fds, as the kernel says (raw fstat): bitmap of [0, limit). */
static unsigned char raw_open[MAXFD], at_start[MAXFD];
static int fd_limit;

static bool kernel_has_fd(int fd)
{
    struct stat st;
    return insn_syscall(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) == 0;
}

static void raw_scan(unsigned char *set)
{
    for (int fd = 0; fd < fd_limit; fd++)
        set[fd] = kernel_has_fd(fd);
}

static int count(const unsigned char *set)
{
    int n = 0;
    for (int fd = 0; fd < fd_limit; fd++)
        n += set[fd];
    return n;
}

/* The lowest number not open, by the kernel's own rule (raw dup). */
static int raw_lowest_free(void)
{
    int fd = (int)insn_syscall(SYS_dup, 0, 0, 0, 0, 0, 0);
    insn_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
    return fd;
}

/* ---- what must keep working: sleeps, a pipe between threads, a child ----- */

static int chan[2];

/* Sleeps until the ticker has ticked (up to 2 s): a stuck scheduler shows
 * as no tick at all, whatever the machine's load. */
static void *sleeper(void *arg)
{
    long t0 = *(long *)arg;
    for (int i = 0; i < 400 && atomic_load(&ticks) == t0; i++)
        usleep(5000);
    return NULL;
}

static void *short_sleep(void *arg)
{
    (void)arg;
    usleep(2000);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    char buf[8] = { 0 };
    CHECKF(read(chan[0], buf, sizeof buf) == 5 && !memcmp(buf, "hello", 5), "read: %s",
           strerror(errno));
    return NULL;
}

/* Also a name lookup: under corun it runs on the thread pool, whose
 * wakeup is one of libuv's eventfds (and whose threads the caller's
 * thread count then sees). */
static bool with_lookup;

static void exercise(const char *when)
{
    ticker_start();
    pthread_t a, b, r;
    long t0 = atomic_load(&ticks);
    OK(pthread_create(&a, NULL, sleeper, &t0));
    OK(pthread_create(&b, NULL, sleeper, &t0));
    OK(pthread_join(a, NULL));
    OK(pthread_join(b, NULL));
    CHECKF(atomic_load(&ticks) > t0, "%s: the ticker did not run during the sleeps", when);

    CHECK(pipe(chan) == 0);
    OK(pthread_create(&r, NULL, reader, NULL));
    usleep(2000);
    CHECK(write(chan[1], "hello", 5) == 5);
    OK(pthread_join(r, NULL));
    close(chan[0]);
    close(chan[1]);

    if (with_lookup) {
        struct addrinfo *ai = NULL, hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
        int g = getaddrinfo("localhost", "80", &hints, &ai);
        CHECKF(g == 0 && ai, "%s: getaddrinfo(localhost): %s", when, gai_strerror(g));
        if (ai)
            freeaddrinfo(ai);
    }

    /* A child doing I/O of its own, waited for. */
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        pthread_t s;
        if (pthread_create(&s, NULL, short_sleep, NULL) != 0 || pthread_join(s, NULL) != 0)
            _exit(10);
        _exit(write(p[1], "child", 5) == 5 ? 7 : 11);
    }
    CHECKF(pid > 0, "%s: fork: %s", when, strerror(errno));
    close(p[1]);
    char buf[8] = { 0 };
    ssize_t n = read(p[0], buf, sizeof buf);
    CHECKF(n == 5 && !memcmp(buf, "child", 5), "%s: read from the child: %zd %s", when, n,
           strerror(errno));
    close(p[0]);
    int st = 0;
    CHECKF(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7,
           "%s: the child's status is %#x", when, st);
    ticker_end();
}

/* ---- modes --------------------------------------------------------------- */

/* The first file the program opens gets the lowest free number (3 for a
 * program started with stdio only), as natively. */
static void first_fd(void)
{
    int want = raw_lowest_free();
    exercise("before the open");
    int fd = open("/dev/null", O_RDONLY);
    CHECKF(fd == want, "open gave fd %d, the lowest free number was %d", fd, want);
    int next[2], k = 0;                 /* the next two free numbers at the start */
    for (int n = want + 1; n < fd_limit && k < 2; n++)
        if (!at_start[n])
            next[k++] = n;
    int p[2];
    CHECK(pipe(p) == 0);
    CHECKF(p[0] == next[0] && p[1] == next[1], "pipe gave %d,%d, expected %d,%d", p[0], p[1],
           next[0], next[1]);
}

/* fstat over every number below the limit (as CPython's fd_status.py does),
 * fcntl, dup, lseek, getsockname, isatty and close find only the program's
 * own fds. */
static void scan(void)
{
    exercise("before the scan");
    raw_scan(raw_open);
    if (corun_loaded())
        CHECKF(count(raw_open) > count(at_start), "corun made no fds: nothing was checked");
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 0; fd < max && fd < MAXFD; fd++) {
        struct stat st;
        bool seen = fstat(fd, &st) == 0;
        CHECKF(seen == at_start[fd], "fstat(%d) %s", fd, seen ? "succeeded" : "failed");
        if (at_start[fd])
            continue;
        FAILS_ERRNO(fcntl(fd, F_GETFD), EBADF);
        FAILS_ERRNO(dup(fd), EBADF);
        FAILS_ERRNO(lseek(fd, 0, SEEK_CUR), EBADF);
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        FAILS_ERRNO(getsockname(fd, (struct sockaddr *)&sa, &sl), EBADF);
        errno = 0;
        CHECKF(isatty(fd) == 0 && errno == EBADF, "isatty(%d): errno %s", fd, ename(errno));
        FAILS_ERRNO(close(fd), EBADF);
    }
    exercise("after the scan");
}

/* The program lowers its soft RLIMIT_NOFILE below corun's fds: what corun
 * makes from then on (a child's epoll set, pidfds for waitpid) goes below
 * the new limit, still out of the program's way. */
static void lowered_limit(void)
{
    exercise("before lowering the limit");
    int want = raw_lowest_free();
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    exercise("after lowering the limit");
    for (int fd = 0; fd < 64; fd++) {
        struct stat st;
        bool seen = fstat(fd, &st) == 0;
        CHECKF(seen == at_start[fd], "fstat(%d) %s", fd, seen ? "succeeded" : "failed");
    }
    int fd = open("/dev/null", O_RDONLY);
    CHECKF(fd == want, "open gave fd %d, the lowest free number was %d", fd, want);
}

/* Listing /proc/self/fd (as ls and Python's os.listdir do) shows only the
 * program's fds, under each of its names. */
static void listing(void)
{
    exercise("before listing");
    const char *dirs[] = { "/proc/self/fd", "/dev/fd", "/proc/thread-self/fd" };
    for (int k = 0; k < 3; k++) {
        DIR *d = opendir(dirs[k]);
        CHECKF(d != NULL, "opendir %s: %s", dirs[k], strerror(errno));
        if (!d)
            continue;
        static unsigned char seen[MAXFD];
        memset(seen, 0, sizeof seen);
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.' && atoi(e->d_name) < MAXFD)
                seen[atoi(e->d_name)] = 1;
        seen[dirfd(d)] = 0;
        closedir(d);
        for (int fd = 0; fd < fd_limit; fd++)
            CHECKF(seen[fd] == at_start[fd], "%s %s %d", dirs[k], seen[fd] ? "lists" : "lacks", fd);
    }
}

static void close_all(bool use_closefrom)
{
    exercise("before closing");
    if (use_closefrom)
        closefrom(3);
    else
        OK(close_range(3, ~0U, 0));
    exercise("after closing");
    int fd = open("/dev/null", O_RDONLY);
    CHECKF(fd == 3, "open after closing everything from 3 gave %d", fd);
}

/* corun's fds (open now, not at the start, not the program's), from raw
 * system calls; natively none. */
static int corun_fds(int *out, int max, const unsigned char *mine)
{
    int n = 0;
    for (int fd = 3; fd < fd_limit && n < max; fd++)
        if (!at_start[fd] && !mine[fd] && kernel_has_fd(fd))
            out[n++] = fd;
    return n;
}

/* dup2/dup3 onto each of corun's numbers (its epoll sets, eventfds, libuv's
 * pipes): the program gets them, corun moves. */
static void dup_onto(void)
{
    with_lookup = true;
    exercise("before the dup2");
    int null = open("/dev/null", O_RDWR);
    static unsigned char mine[MAXFD];
    mine[null] = 1;
    int targets[64], n = corun_fds(targets, 64, mine);
    if (corun_loaded())
        CHECKF(n >= 8, "found only %d fds of corun's", n);
    if (n == 0) {
        targets[0] = raw_lowest_free() + 40;   /* natively: a free number */
        n = 1;
    }
    struct stat want;
    CHECK(fstat(null, &want) == 0);
    for (int i = 0; i < n; i++) {
        int to = targets[i];
        int r = i % 2 ? dup3(null, to, O_CLOEXEC) : dup2(null, to);
        CHECKF(r == to, "dup%c onto %d gave %d (%s)", i % 2 ? '3' : '2', to, r, strerror(errno));
        struct stat st;
        CHECKF(fstat(to, &st) == 0 && st.st_rdev == want.st_rdev && S_ISCHR(st.st_mode),
               "fd %d is not /dev/null after the dup", to);
        exercise("after a dup onto corun's fd");
        CHECKF(fstat(to, &st) == 0 && st.st_rdev == want.st_rdev, "fd %d changed", to);
    }
    exercise("with every fd corun had taken by the program");
    for (int i = 0; i < n; i++) {
        struct stat st;
        CHECKF(fstat(targets[i], &st) == 0 && st.st_rdev == want.st_rdev, "fd %d changed",
               targets[i]);
        OK(close(targets[i]));
    }
}

/* A child started with execve inherits only the program's fds without
 * close-on-exec: it lists its own with raw system calls. */
static void exec_child(const char *self)
{
    exercise("before the exec");
    unsigned char expect[MAXFD];
    for (int fd = 0; fd < fd_limit; fd++)
        expect[fd] = at_start[fd] && !(insn_syscall(SYS_fcntl, fd, F_GETFD, 0, 0, 0, 0) & FD_CLOEXEC);
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);      /* over stdout: the listing's channel */
        execl("/proc/self/exe", self, "list", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(p[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unsigned char seen[MAXFD] = { 0 };
    for (char *s = buf; *s;) {
        char *end;
        long fd = strtol(s, &end, 10);
        if (end == s)
            break;
        if (fd >= 0 && fd < MAXFD)
            seen[fd] = 1;
        s = *end ? end + 1 : end;
    }
    for (int fd = 0; fd < fd_limit; fd++)
        CHECKF(seen[fd] == expect[fd], "the exec'd child %s fd %d", seen[fd] ? "has" : "lacks", fd);
}

/* The exec'd child: its open fds, from raw system calls only. */
static void list_raw(void)
{
    raw_scan(raw_open);
    for (int fd = 0; fd < fd_limit; fd++)
        if (raw_open[fd])
            dprintf(1, "%d,", fd);
    dprintf(1, "\n");
    _exit(0);
}

/* Threads started together (under corun: M:N workers, each making its
 * own fds at once) leave the kernel's fd table no larger than an fd_set
 * covers: corun's fds sit just below FD_SETSIZE, and two workers that
 * picked the same free number there pushed the second above it, for good
 * (select(getdtablesize(), ...) with an FD_SETSIZE set then read past
 * the set). Natively the table stays far smaller. */
static void *fdsize_thread(void *arg)
{
    (void)arg;
    usleep(50000);
    return NULL;
}

static void fdsize(void)
{
    for (int round = 0; round < 3; round++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            OK(pthread_create(&t[i], NULL, fdsize_thread, NULL));
        for (int i = 0; i < 8; i++)
            OK(pthread_join(t[i], NULL));
    }
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    const char *f = strstr(buf, "\nFDSize:");
    CHECK(f != NULL);
    int size = f ? atoi(f + 8) : -1;
    CHECKF(size > 0 && size <= FD_SETSIZE, "the kernel's fd table has %d entries", size);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    fd_limit = rl.rlim_cur > MAXFD ? MAXFD : (int)rl.rlim_cur;
    raw_scan(at_start);
    mode_name = argc > 1 ? argv[1] : "?";
    if (!strcmp(mode_name, "list"))
        list_raw();
    if (!strcmp(mode_name, "first_fd"))
        first_fd();
    else if (!strcmp(mode_name, "scan"))
        scan();
    else if (!strcmp(mode_name, "close_range"))
        close_all(false);
    else if (!strcmp(mode_name, "listing"))
        listing();
    else if (!strcmp(mode_name, "lowered_limit"))
        lowered_limit();
    else if (!strcmp(mode_name, "closefrom"))
        close_all(true);
    else if (!strcmp(mode_name, "dup_onto"))
        dup_onto();
    else if (!strcmp(mode_name, "exec_child"))
        exec_child(argv[0]);
    else if (!strcmp(mode_name, "fdsize"))
        fdsize();
    else {
        fprintf(stderr, "unknown mode %s\n", mode_name);
        return 2;
    }
    summary();
    return 0;
}
