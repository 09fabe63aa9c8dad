/*
 * pt_catch.c - a plain pthread program (not linked with corun) whose
 * blocking calls no hook can see: glibc's own reads, writes and FILE-lock
 * waits inside stdio, syscall instructions in the program's code, and
 * the calls glibc makes inline (clone for posix_spawn and pthread_create,
 * rt_sigprocmask, rt_sigreturn). Under corun they reach the catch
 * (src/interpose/catch.c) and must behave as natively; the blocking ones
 * must park only their green thread: each runs while another thread must
 * make progress it depends on (a pipe's other end, the ticker), which on
 * one OS thread happens only if the call parked (a call that blocks the
 * thread never ends: pt_main's 30 s alarm turns that into a failure).
 * Run as `pt_catch MODE` by test_catch_green.c green, native and without
 * corun, with the same expectations each way.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <linux/futex.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "pt_common.h"
#include "insn_syscall.h"

int ktest_create(pthread_t *t, void *(*fn)(void *), void *arg);
int ktest_join(pthread_t t);

/* glibc's join returns once the kernel cleared the thread's tid, a moment
 * before the task leaves /proc/self/task (the summary counts OS threads). */
static void kernel_thread_gone(void)
{
    for (int i = 0; i < 1000 && count_tasks() > 1; i++)
        usleep(1000);
}

extern char **environ;

#define TICKED_DURING(t0, what) \
    CHECKF(atomic_load(&ticks) - (t0) > 0, "%s: only %ld ticks", what, atomic_load(&ticks) - (t0))

static void make_pipe(int p[2])
{
    if (pipe(p) != 0) {
        perror("pipe");
        exit(3);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * MS };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- stdio between two threads, 4 MiB each way -------------------------------
 * fputs and fflush write with glibc's own write, fgets reads with its own
 * read: a pipe's 64 KiB fill long before 4 MiB, so each side must run while
 * the other waits. */

#define LINE_LEN 1000
#define LINES 4200                      /* 4.2 MB each way */

struct stdio_side {
    FILE *in, *out;
    char tag;
    unsigned long got_sum, got_lines, sent_sum;
};

static void fill_line(char *line, char tag, int i)
{
    for (int k = 0; k < LINE_LEN - 1; k++)
        line[k] = (char)('a' + (tag + i * 7 + k) % 26);
    line[LINE_LEN - 1] = '\0';
}

static unsigned long line_sum(const char *line)
{
    unsigned long s = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        s = s * 31 + *p;
    return s;
}

static void *stdio_writer(void *arg)
{
    struct stdio_side *sd = arg;
    char line[LINE_LEN];
    for (int i = 0; i < LINES; i++) {
        fill_line(line, sd->tag, i);
        sd->sent_sum += line_sum(line);
        CHECK(fputs(line, sd->out) >= 0 && fputc('\n', sd->out) == '\n');
        if (i % 64 == 0)
            CHECK(fflush(sd->out) == 0);
    }
    CHECK(fclose(sd->out) == 0);
    return NULL;
}

static void *stdio_reader(void *arg)
{
    struct stdio_side *sd = arg;
    char line[LINE_LEN + 8];
    while (fgets(line, sizeof line, sd->in)) {
        line[strcspn(line, "\n")] = '\0';
        sd->got_sum += line_sum(line);
        sd->got_lines++;
    }
    CHECK(!ferror(sd->in));
    fclose(sd->in);
    return NULL;
}

/* a[0]/a[1] carry A's lines to B, b[0]/b[1] B's to A. */
static void stdio_both_ways(int a[2], int b[2])
{
    struct stdio_side to_b = { .in = fdopen(a[0], "r"), .out = fdopen(a[1], "w"), .tag = 'A' };
    struct stdio_side to_a = { .in = fdopen(b[0], "r"), .out = fdopen(b[1], "w"), .tag = 'B' };
    CHECK(to_b.in && to_b.out && to_a.in && to_a.out);
    pthread_t t[4];
    OK(pthread_create(&t[0], NULL, stdio_writer, &to_b));
    OK(pthread_create(&t[1], NULL, stdio_reader, &to_b));
    OK(pthread_create(&t[2], NULL, stdio_writer, &to_a));
    OK(pthread_create(&t[3], NULL, stdio_reader, &to_a));
    for (int i = 0; i < 4; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(to_b.got_lines == LINES && to_b.got_sum == to_b.sent_sum,
           "A to B: %lu lines of %d, sums %lx/%lx", to_b.got_lines, LINES, to_b.got_sum,
           to_b.sent_sum);
    CHECKF(to_a.got_lines == LINES && to_a.got_sum == to_a.sent_sum,
           "B to A: %lu lines of %d, sums %lx/%lx", to_a.got_lines, LINES, to_a.got_sum,
           to_a.sent_sum);
}

static void m_stdio_pipe(void)
{
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    stdio_both_ways(a, b);
}

static void m_stdio_socket(void)
{
    int a[2], b[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, a));
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, b));
    /* One direction per socket pair, as with pipes: each end is one FILE. */
    int ar[2] = { a[0], a[1] }, br[2] = { b[0], b[1] };
    stdio_both_ways(ar, br);
}

/* fclose flushing into a full pipe, whose reader starts only after it: the
 * flush (glibc's own write inside fclose) must park, not block the OS
 * thread the reader runs on (fclose held corun's catch around the real
 * call: a hang with both on one OS thread). */
struct fclose_full {
    int fd;
    size_t got;
};

static void *fclose_full_reader(void *arg)
{
    struct fclose_full *ff = arg;
    sleep_ms(100);                     /* after the writer's fclose began */
    char buf[4096];
    ssize_t n;
    while ((n = read(ff->fd, buf, sizeof buf)) > 0)
        ff->got += (size_t)n;
    CHECK(n == 0);
    return NULL;
}

static void m_stdio_fclose_full(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    int cap = fcntl(p[1], F_GETPIPE_SZ);
    CHECK(cap > 0);
    struct fclose_full ff = { .fd = p[0] };
    pthread_t r;
    OK(pthread_create(&r, NULL, fclose_full_reader, &ff));
    FILE *w = fdopen(p[1], "w");
    CHECK(w != NULL);
    static char block[1 << 20];
    CHECK((size_t)cap <= sizeof block);
    memset(block, 'x', sizeof block);
    /* The pipe full (a write of its capacity does not wait), then a little
     * in the FILE's buffer for fclose to flush. */
    CHECK(write(p[1], block, (size_t)cap) == cap);
    CHECK(fwrite(block, 1, 100, w) == 100);
    size_t sent = (size_t)cap + 100;
    long t0 = atomic_load(&ticks);
    CHECK(fclose(w) == 0);
    TICKED_DURING(t0, "fclose's flush into a full pipe");
    OK(pthread_join(r, NULL));
    CHECKF(ff.got == sent, "the reader got %zu of %zu bytes", ff.got, sent);
    ticker_end();
}

/* ---- syscall instructions in the program's code ------------------------------*/

static void *write_later(void *arg)
{
    sleep_ms(50);
    CHECK(write((int)(intptr_t)arg, "later", 5) == 5);
    return NULL;
}

/* read(2) by instruction on an empty pipe another thread fills in 50 ms. */
static void m_insn_read(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    pthread_t w;
    OK(pthread_create(&w, NULL, write_later, IP(p[1])));
    long t0 = atomic_load(&ticks);
    char buf[16] = { 0 };
    long r = insn_syscall(SYS_read, p[0], (long)buf, sizeof buf, 0, 0, 0);
    CHECKF(r == 5 && !memcmp(buf, "later", 5), "read returned %ld", r);
    TICKED_DURING(t0, "read by instruction");
    OK(pthread_join(w, NULL));
    /* The kernel's errors, and errno untouched (no libc wrapper set it). */
    errno = 1234;
    CHECK(insn_syscall(SYS_read, 987654, (long)buf, 1, 0, 0, 0) == -EBADF);
    CHECK(insn_syscall(SYS_write, p[1], 0, 1, 0, 0, 0) == -EFAULT);
    CHECK(errno == 1234);
    close(p[0]);
    close(p[1]);
    ticker_end();
}

/* Calls corun does not route are made as they are: their results are the
 * kernel's. */
static void m_insn_plain(void)
{
    ticker_start();
    CHECK(insn_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0) == getppid());
    struct stat a, b;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && fstat(fd, &a) == 0);
    CHECK(insn_syscall(SYS_fstat, fd, (long)&b, 0, 0, 0, 0) == 0);
    CHECK(a.st_ino == b.st_ino && a.st_size == b.st_size);
    CHECK(insn_syscall(SYS_fstat, -1, (long)&b, 0, 0, 0, 0) == -EBADF);
    close(fd);
    long sum = 0;
    for (int i = 0; i < 2000; i++)
        sum += insn_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
    CHECK(sum == 2000L * getppid());
    ticker_end();
}

/* ---- futexes by instruction ----------------------------------------------------*/

static _Atomic uint32_t fword;

static long futex_insn(_Atomic uint32_t *w, int op, uint32_t val)
{
    return insn_syscall(SYS_futex, (long)w, op, val, 0, 0, 0);
}

static void *futex_waker(void *arg)
{
    (void)arg;
    sleep_ms(50);
    atomic_store(&fword, 1);
    CHECK(futex_insn(&fword, FUTEX_WAKE_PRIVATE, 1) >= 0);
    return NULL;
}

/* A green waiter parks; a green waker's instruction wakes it. */
static void m_insn_futex(void)
{
    ticker_start();
    atomic_store(&fword, 0);
    pthread_t w;
    OK(pthread_create(&w, NULL, futex_waker, NULL));
    long t0 = atomic_load(&ticks);
    long r;
    while (atomic_load(&fword) == 0 &&
           ((r = futex_insn(&fword, FUTEX_WAIT_PRIVATE, 0)) == 0 || r == -EAGAIN || r == -EINTR))
        ;
    CHECK(atomic_load(&fword) == 1);
    TICKED_DURING(t0, "futex wait by instruction");
    OK(pthread_join(w, NULL));
    /* The kernel's compare: a word that differs fails EAGAIN at once. */
    CHECK(futex_insn(&fword, FUTEX_WAIT_PRIVATE, 0) == -EAGAIN);
    ticker_end();
}

static _Atomic int kwaiter_state;

static void *kernel_futex_waiter(void *arg)
{
    (void)arg;
    atomic_store(&kwaiter_state, 1);
    while (atomic_load(&fword) == 0)
        futex_insn(&fword, FUTEX_WAIT_PRIVATE, 0);
    atomic_store(&kwaiter_state, 2);
    return NULL;
}

/* A kernel thread made behind corun's back waits in the kernel; a green
 * thread's wake by instruction reaches it. */
static void m_insn_futex_kernel(void)
{
    atomic_store(&fword, 0);
    pthread_t k;
    OK(ktest_create(&k, kernel_futex_waiter, NULL));
    while (atomic_load(&kwaiter_state) != 1)
        sleep_ms(1);
    sleep_ms(20);                        /* let it reach the kernel's wait */
    atomic_store(&fword, 1);
    long woken = futex_insn(&fword, FUTEX_WAKE_PRIVATE, 1);
    CHECKF(woken == 0 || woken == 1, "wake returned %ld", woken);
    OK(ktest_join(k));
    kernel_thread_gone();
    CHECK(atomic_load(&kwaiter_state) == 2);
}

/* ---- glibc's FILE lock: a holder parked across a sleep -------------------------
 * (needs each green thread to be its own owner: CORUN_TLS=own) */

static FILE *locked_file;
static _Atomic int lock_phase;

static void *lock_holder(void *arg)
{
    (void)arg;
    flockfile(locked_file);
    atomic_store(&lock_phase, 1);
    fputs("A1 ", locked_file);
    sleep_ms(100);
    fputs("A2 ", locked_file);
    funlockfile(locked_file);
    return NULL;
}

static void *lock_waiter(void *arg)
{
    (void)arg;
    fputs("B ", locked_file);          /* waits for the holder's funlockfile */
    return NULL;
}

/* A holder keeps the stream locked across a sleep while `waiter` (a
 * thread's start routine) writes to it: the waiter's "B " comes after the
 * holder's "A1 A2 ", and the ticker ran meanwhile. */
static void lock_holder_then(void *(*waiter)(void *), const char *what)
{
    ticker_start();
    char path[] = "/tmp/pt_catch_lock.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    locked_file = fdopen(fd, "w+");
    CHECK(locked_file != NULL);
    atomic_store(&lock_phase, 0);
    pthread_t a, b;
    OK(pthread_create(&a, NULL, lock_holder, NULL));
    while (atomic_load(&lock_phase) == 0)
        sleep_ms(1);
    long t0 = atomic_load(&ticks);
    OK(pthread_create(&b, NULL, waiter, NULL));
    OK(pthread_join(b, NULL));
    TICKED_DURING(t0, what);
    OK(pthread_join(a, NULL));
    CHECK(fflush(locked_file) == 0);
    char got[64] = { 0 };
    CHECK(pread(fd, got, sizeof got - 1, 0) > 0);
    CHECKF(!strcmp(got, "A1 A2 B "), "the file holds '%s', expected 'A1 A2 B '", got);
    fclose(locked_file);
    ticker_end();
}

static void m_flockfile(void)
{
    lock_holder_then(lock_waiter, "the wait for the FILE lock");
}

/* The same wait from a key's destructor, which corun runs when the thread
 * ends (program code called from inside corun: it must park too). */
static pthread_key_t dtor_key;

static void dtor_prints(void *v)
{
    (void)v;
    fputs("B ", locked_file);          /* waits for the holder's funlockfile */
}

static void *dtor_thread(void *arg)
{
    (void)arg;
    OK(pthread_setspecific(dtor_key, (void *)1));
    return NULL;
}

static void m_flockfile_dtor(void)
{
    OK(pthread_key_create(&dtor_key, dtor_prints));
    lock_holder_then(dtor_thread, "the destructor's wait for the FILE lock");
}

/* ---- what glibc does inline: clone, sigprocmask, sigreturn ---------------------*/

/* posix_spawn's clone (CLONE_VM | CLONE_VFORK on a stack of its own). */
static void m_posix_spawn(void)
{
    ticker_start();
    pid_t pid;
    char *argv[] = { "sh", "-c", "exit 3", NULL };
    OK(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %#x", st);
    /* A path that does not exist: the child's exec error comes back. */
    char *bad[] = { "nothing", NULL };
    RC(posix_spawn(&pid, "/nonexistent/pt_catch", NULL, NULL, bad, environ), ENOENT);
    ticker_end();
}

/* A forked child (glibc's fork, from a thread while others live) makes
 * threads of its own and passes stdio between them: the catch is armed
 * again in the child. */
static void *fork_then_threads(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);                      /* a fork child keeps no alarm */
        int before = atomic_load(&failures);
        m_stdio_pipe();
        _exit(atomic_load(&failures) == before ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's status %#x", st);
    return NULL;
}

static void m_fork_child_threads(void)
{
    ticker_start();
    pthread_t t;
    OK(pthread_create(&t, NULL, fork_then_threads, NULL));
    OK(pthread_join(t, NULL));
    ticker_end();
}

/* fork by instruction: the child is a copy; its exit status comes back. */
static void m_insn_fork(void)
{
    ticker_start();
    static volatile int marker = 5;
    long pid = insn_syscall(SYS_fork, 0, 0, 0, 0, 0, 0);
    if (pid == 0) {
        marker = 6;                    /* the child's copy */
        insn_syscall(SYS_exit_group, marker + 1, 0, 0, 0, 0, 0);
    }
    CHECK(pid > 0);
    int st = 0;
    CHECK(waitpid((pid_t)pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x", st);
    CHECK(marker == 5);
    ticker_end();
}

static void *kernel_thread_writes(void *arg)
{
    CHECK(write((int)(intptr_t)arg, "kt", 2) == 2);
    return (void *)0x42;
}

/* glibc's own pthread_create (found by dlsym, as jemalloc does): its clone
 * starts the thread on its own stack. */
static void m_kernel_thread(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    pthread_t k;
    OK(ktest_create(&k, kernel_thread_writes, IP(p[1])));
    char buf[4] = { 0 };
    CHECK(read(p[0], buf, 2) == 2 && !memcmp(buf, "kt", 2));
    OK(ktest_join(k));
    kernel_thread_gone();
    close(p[0]);
    close(p[1]);
    ticker_end();
}

static volatile sig_atomic_t got_usr1, got_alarm;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1++;
}

static void on_alarm(int sig)
{
    (void)sig;
    got_alarm++;
}

/* rt_sigprocmask by instruction: the mask is the kernel's at once, and a
 * signal it unblocks is delivered before the call returns. */
static void m_insn_sigmask(void)
{
    ticker_start();
    struct sigaction sa = { .sa_handler = on_usr1 };
    OK(sigaction(SIGUSR1, &sa, NULL));
    uint64_t usr1 = (uint64_t)1 << (SIGUSR1 - 1), old = 0, now = 0;
    CHECK(insn_syscall(SYS_rt_sigprocmask, SIG_BLOCK, (long)&usr1, (long)&old, 8, 0, 0) == 0);
    CHECK(!(old & usr1));
    CHECK(insn_syscall(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&now, 8, 0, 0) == 0);
    CHECK(now & usr1);
    CHECK(insn_syscall(SYS_rt_sigprocmask, SIG_BLOCK, (long)&usr1, 0, 7, 0, 0) == -EINVAL);
    CHECK(insn_syscall(SYS_kill, getpid(), SIGUSR1, 0, 0, 0, 0) == 0);
    sleep_ms(20);
    CHECK(got_usr1 == 0);
    CHECK(insn_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&usr1, 0, 8, 0, 0) == 0);
    CHECKF(got_usr1 == 1, "handler ran %d times once unblocked", (int)got_usr1);
    CHECK(insn_syscall(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&now, 8, 0, 0) == 0);
    CHECK(!(now & usr1));
    ticker_end();
}

/* A handler that interrupts the program's own code returns through glibc's
 * rt_sigreturn: the program goes on where it was, and later stdio between
 * threads still works (the catch is still in force). */
static void m_sigreturn(void)
{
    ticker_start();
    struct sigaction sa = { .sa_handler = on_alarm };
    OK(sigaction(SIGALRM, &sa, NULL));
    struct itimerval it = { .it_value = { 0, 20000 } };
    OK(setitimer(ITIMER_REAL, &it, NULL));
    volatile unsigned long spins = 0;
    int64_t end = mono_ns() + 5000 * MS;
    while (!got_alarm && mono_ns() < end)
        spins++;
    CHECKF(got_alarm == 1, "SIGALRM handled %d times", (int)got_alarm);
    signal(SIGALRM, SIG_DFL);
    alarm(30);                          /* setitimer replaced pt_main's bound */
    m_stdio_pipe();
    ticker_end();
}

/* ---- a program that uses SIGSYS itself ------------------------------------------*/

static volatile sig_atomic_t got_sys;

static void on_sys(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sys = si->si_code == SI_USER ? sig : -1;
}

/* The program's view of SIGSYS is its own (SIG_DFL at start, what it sets
 * after); its own handler then gets the SIGSYS sent to it. Under corun
 * the catch steps aside with one warning; blocking calls of the program's
 * own code still work (they block the OS thread, as natively). */
static void m_sigsys_own(void)
{
    ticker_start();
    struct sigaction old;
    OK(sigaction(SIGSYS, NULL, &old));
    CHECKF(old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO), "SIGSYS's action at start: %p",
           (void *)old.sa_handler);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    OK(sigaction(SIGSYS, &ign, &old));
    CHECK(old.sa_handler == SIG_DFL);
    OK(sigaction(SIGSYS, NULL, &old));
    CHECK(old.sa_handler == SIG_IGN);
    CHECK(kill(getpid(), SIGSYS) == 0);       /* ignored, as the program said */
    struct sigaction own = { .sa_sigaction = on_sys, .sa_flags = SA_SIGINFO };
    OK(sigaction(SIGSYS, &own, &old));
    CHECK(old.sa_handler == SIG_IGN);
    OK(sigaction(SIGSYS, NULL, &old));
    CHECK(old.sa_sigaction == on_sys);
    CHECK(kill(getpid(), SIGSYS) == 0);
    for (int i = 0; i < 100 && !got_sys; i++)
        sleep_ms(1);
    CHECKF(got_sys == SIGSYS, "the program's SIGSYS handler saw %d", (int)got_sys);
    /* Calls by instruction are the kernel's again. */
    char buf[4];
    CHECK(insn_syscall(SYS_read, 987654, (long)buf, 1, 0, 0, 0) == -EBADF);
    CHECK(insn_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0) == getppid());
    ticker_end();
}

#ifdef HAVE_LIBURING
/* liburing's io_uring_wait_cqe (its own system calls) for a pipe read that
 * another thread satisfies in 50 ms. */
static void m_liburing_wait(void)
{
    ticker_start();
    struct io_uring ring;
    int r = io_uring_queue_init(4, &ring, 0);
    if (r < 0) {
        printf("io_uring unavailable here (%s): nothing to check\n", strerror(-r));
        ticker_end();
        return;
    }
    int p[2];
    make_pipe(p);
    char buf[16] = { 0 };
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, p[0], buf, sizeof buf, 0);
    CHECK(io_uring_submit(&ring) == 1);
    pthread_t w;
    OK(pthread_create(&w, NULL, write_later, IP(p[1])));
    long t0 = atomic_load(&ticks);
    struct io_uring_cqe *cqe = NULL;
    CHECK(io_uring_wait_cqe(&ring, &cqe) == 0);
    CHECKF(cqe && cqe->res == 5 && !memcmp(buf, "later", 5), "completion %d", cqe ? cqe->res : -1);
    TICKED_DURING(t0, "io_uring_wait_cqe");
    if (cqe)
        io_uring_cqe_seen(&ring, cqe);
    OK(pthread_join(w, NULL));
    io_uring_queue_exit(&ring);
    close(p[0]);
    close(p[1]);
    ticker_end();
}
#endif

static const struct pt_mode modes[] = {
    { "stdio_pipe", m_stdio_pipe },
    { "stdio_socket", m_stdio_socket },
    { "stdio_fclose_full", m_stdio_fclose_full },
    { "insn_read", m_insn_read },
    { "insn_plain", m_insn_plain },
    { "insn_futex", m_insn_futex },
    { "insn_futex_kernel", m_insn_futex_kernel },
    { "flockfile", m_flockfile },
    { "flockfile_dtor", m_flockfile_dtor },
    { "posix_spawn", m_posix_spawn },
    { "insn_fork", m_insn_fork },
    { "fork_child_threads", m_fork_child_threads },
    { "kernel_thread", m_kernel_thread },
    { "insn_sigmask", m_insn_sigmask },
    { "sigreturn", m_sigreturn },
    { "sigsys_own", m_sigsys_own },
#ifdef HAVE_LIBURING
    { "liburing_wait", m_liburing_wait },
#endif
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
