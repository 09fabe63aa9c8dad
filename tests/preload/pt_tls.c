/* Thread-local storage per thread: what must hold for green threads with
 * CORUN_TLS=own exactly as for kernel threads (test_tls_green runs each mode
 * green with own TLS, native, and without corun). */
#include <dlfcn.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <malloc.h>
#include <setjmp.h>
#include <sys/wait.h>

#include "pt_common.h"

#define NT 8

static __thread int tvar = 5;
static __thread char tbuf[64];

static void *tls_vars_fn(void *arg)
{
    long i = (long)arg;
    CHECKF(tvar == 5 && tbuf[0] == 0, "thread %ld starts with tvar %d", i, tvar);
    tvar = (int)(100 + i);
    snprintf(tbuf, sizeof tbuf, "thread %ld", i);
    for (int r = 0; r < 5; r++) {
        usleep(1000);                            /* the others run and write theirs */
        CHECKF(tvar == 100 + i, "thread %ld: tvar %d after a sleep", i, tvar);
        char want[64];
        snprintf(want, sizeof want, "thread %ld", i);
        CHECKF(!strcmp(tbuf, want), "thread %ld: tbuf '%s'", i, tbuf);
        tvar++;
        tvar--;
    }
    return NULL;
}

static void m_tls_vars(void)
{
    pthread_t t[NT];
    for (long i = 0; i < NT; i++)
        OK(pthread_create(&t[i], NULL, tls_vars_fn, (void *)i));
    for (int i = 0; i < NT; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(tvar == 5, "main's tvar %d", tvar);
}

/* errno is the thread's own, across blocking calls that succeed. */
static void *errno_fn(void *arg)
{
    long i = (long)arg;
    errno = (int)(1000 + i);
    for (int r = 0; r < 3; r++) {
        usleep(2000);
        CHECKF(errno == 1000 + i, "thread %ld: errno %d after a sleep", i, errno);
    }
    int *mine = &errno;
    return mine;
}

static void m_errno_own(void)
{
    pthread_t t[NT];
    void *loc[NT];
    for (long i = 0; i < NT; i++)
        OK(pthread_create(&t[i], NULL, errno_fn, (void *)i));
    for (int i = 0; i < NT; i++)
        OK(pthread_join(t[i], &loc[i]));
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < i; j++)
            CHECKF(loc[i] != loc[j], "threads %d and %d share errno at %p", i, j, loc[i]);
    CHECK(loc[0] != &errno);
}

/* uselocale is per thread. */
static atomic_int locale_step;

static void *locale_fn(void *arg)
{
    (void)arg;
    locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    CHECK(l != (locale_t)0);
    CHECK(uselocale(l) == LC_GLOBAL_LOCALE);
    atomic_store(&locale_step, 1);
    while (atomic_load(&locale_step) == 1)
        usleep(1000);                            /* main looks at its own meanwhile */
    CHECK(uselocale((locale_t)0) == l);
    CHECK(!strcmp(nl_langinfo(CODESET), "UTF-8"));
    uselocale(LC_GLOBAL_LOCALE);
    freelocale(l);
    return NULL;
}

static void *locale_fresh_fn(void *arg)
{
    (void)arg;
    return uselocale((locale_t)0);
}

static void m_uselocale(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, locale_fn, NULL));
    while (atomic_load(&locale_step) == 0)
        usleep(1000);
    CHECK(uselocale((locale_t)0) == LC_GLOBAL_LOCALE);
    CHECKF(!strcmp(nl_langinfo(CODESET), "ANSI_X3.4-1968"), "main's codeset %s",
           nl_langinfo(CODESET));
    atomic_store(&locale_step, 2);
    OK(pthread_join(t, NULL));
    /* A new thread starts with the global locale, whatever a finished one used. */
    void *got;
    OK(pthread_create(&t, NULL, locale_fresh_fn, NULL));
    OK(pthread_join(t, &got));
    CHECK(got == (void *)LC_GLOBAL_LOCALE);
}

/* glibc's own per-thread identity (THREAD_SELF): a FILE lock held by one
 * thread is busy for another; recursive for the holder. */
static atomic_int lock_step;

static void *file_lock_fn(void *arg)
{
    FILE *f = arg;
    while (atomic_load(&lock_step) == 0)
        usleep(1000);
    CHECKF(ftrylockfile(f) != 0, "a FILE lock held by main was free for another thread");
    atomic_store(&lock_step, 2);
    return NULL;
}

static void m_file_lock_owner(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    pthread_t t;
    OK(pthread_create(&t, NULL, file_lock_fn, f));
    flockfile(f);
    CHECK(ftrylockfile(f) == 0);                  /* recursive for its holder */
    funlockfile(f);
    atomic_store(&lock_step, 1);
    while (atomic_load(&lock_step) == 1)
        usleep(1000);                             /* parks holding the lock */
    funlockfile(f);
    OK(pthread_join(t, NULL));
    fclose(f);
}

/* A FILE lock held across a sleep: another thread writing to that stream
 * waits its turn (glibc's inline lock: with own TLS the owners differ, and
 * the waiter's futex wait must park it, not block the OS thread: the
 * ticker keeps ticking). */
static FILE *held_file;
static atomic_llong unlocked_at, wrote_at;

static void *file_writer_fn(void *arg)
{
    (void)arg;
    fputs("writer\n", held_file);      /* waits for main's funlockfile */
    atomic_store(&wrote_at, mono_ns());
    return NULL;
}

static void m_flockfile_wait(void)
{
    held_file = tmpfile();
    CHECK(held_file != NULL);
    ticker_start();
    flockfile(held_file);
    pthread_t t;
    OK(pthread_create(&t, NULL, file_writer_fn, NULL));
    long t0 = atomic_load(&ticks);
    usleep(30 * 1000);                   /* holding the lock, parked */
    long held_ticks = atomic_load(&ticks) - t0;
    fputs("main\n", held_file);
    atomic_store(&unlocked_at, mono_ns());
    funlockfile(held_file);
    OK(pthread_join(t, NULL));
    ticker_end();
    CHECKF(atomic_load(&wrote_at) >= atomic_load(&unlocked_at),
           "the writer wrote while main held the FILE lock");
    CHECKF(held_ticks >= 5, "the ticker ticked %ld times in 30 ms while the lock was held",
           held_ticks);
    rewind(held_file);
    char a[32] = "", b[32] = "";
    CHECK(fgets(a, sizeof a, held_file) && fgets(b, sizeof b, held_file));
    CHECKF(!strcmp(a, "main\n") && !strcmp(b, "writer\n"), "stream holds '%s' then '%s'", a, b);
    fclose(held_file);
}

/* The stack protector's canary and the pointer guard (setjmp mangles with
 * it) are the process's in every thread. */
static uintptr_t read_canary(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%fs:0x28, %0" : "=r"(v));
    return v;
}

static uintptr_t main_canary;

static __attribute__((noinline)) void jump_out(jmp_buf *jb)
{
    volatile char buf[128];
    memset((char *)buf, 1, sizeof buf);   /* a protected frame that longjmps out */
    longjmp(*jb, 6 + buf[3]);
}

static void *guards_fn(void *arg)
{
    (void)arg;
    CHECKF(read_canary() == main_canary, "canary %#lx, main's %#lx", (unsigned long)read_canary(),
           (unsigned long)main_canary);
    usleep(1000);
    jmp_buf jb;
    int r = setjmp(jb);
    if (r == 0)
        jump_out(&jb);
    CHECK(r == 7);
    return NULL;
}

static void m_guards(void)
{
    main_canary = read_canary();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        OK(pthread_create(&t[i], NULL, guards_fn, NULL));
    for (int i = 0; i < 4; i++)
        OK(pthread_join(t[i], NULL));
}

/* Fork from a thread while others are alive: the child runs (its TLS, malloc,
 * stdio), the parent goes on. The fork comes once every bystander sleeps
 * (under CORUN_THREADS=native each first builds its own scheduler; a fork
 * in the middle of that once left the child waiting for corun's stack-pool
 * lock, which is now held across fork: not what this test is about). */
static atomic_bool fork_stop;
static atomic_int fork_bystanders_up;

static void *fork_bystander(void *arg)
{
    (void)arg;
    tvar = 77;
    usleep(1000);
    atomic_fetch_add(&fork_bystanders_up, 1);
    while (!atomic_load(&fork_stop))
        usleep(1000);
    CHECK(tvar == 77);
    return NULL;
}

static void *fork_fn(void *arg)
{
    (void)arg;
    tvar = 55;
    pid_t p = fork();
    if (p == 0) {
        int ok = tvar == 55;
        char *m = malloc(1000);
        ok = ok && m;
        free(m);
        printf("%s", "");
        _exit(ok ? 3 : 4);
    }
    int st = 0;
    CHECK(p > 0 && waitpid(p, &st, 0) == p);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 3, "child status %#x", st);
    CHECK(tvar == 55);
    return NULL;
}

static void m_fork_from_thread(void)
{
    pthread_t b[3], f;
    for (int i = 0; i < 3; i++)
        OK(pthread_create(&b[i], NULL, fork_bystander, NULL));
    while (atomic_load(&fork_bystanders_up) < 3)
        usleep(1000);
    OK(pthread_create(&f, NULL, fork_fn, NULL));
    OK(pthread_join(f, NULL));
    atomic_store(&fork_stop, true);
    for (int i = 0; i < 3; i++)
        OK(pthread_join(b[i], NULL));
}

/* Many short-lived threads that malloc and free: the heap stays flat (each
 * thread's malloc cache is not lost with it). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

static void *short_fn(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = malloc(24 + 40 * (size_t)i);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    return NULL;
}

static void m_short_lived(void)
{
    long before = 0;
    /* A sanitizer build checks no RSS (its quarantine holds freed memory)
     * and makes each kernel thread slowly: fewer rounds there, so that a
     * loaded machine stays far from the 30 s alarm. */
    int rounds = 100;
#if defined(__SANITIZE_ADDRESS__)
    rounds = 12;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    rounds = 12;
#endif
#endif
    for (int round = 0; round < rounds; round++) {
        pthread_t t[1000];
        for (int i = 0; i < 1000; i++)
            OK(pthread_create(&t[i], NULL, short_fn, NULL));
        for (int i = 0; i < 1000; i++)
            OK(pthread_join(t[i], NULL));
        if (round == 9)
            before = rss_kib();
    }
    long after = rss_kib();
#if defined(__SANITIZE_ADDRESS__)
    (void)after;                       /* AddressSanitizer's quarantine holds freed memory */
    (void)before;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    (void)after;
    (void)before;
#define PT_ASAN_CLANG 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(PT_ASAN_CLANG)
    /* 90,000 more threads: a leak of even 100 bytes each would show as 9 MiB. */
    CHECKF(after - before < 4096, "RSS grew from %ld to %ld KiB over 90,000 threads", before,
           after);
#endif
}

/* A library with initial-exec TLS, and one with general-dynamic TLS,
 * dlopen'ed while threads exist: every thread sees their initial values. */
static atomic_int dl_step;
static int (*ie_get)(void), (*gd_get)(void);
static void (*ie_set)(int), (*gd_set)(int);

static void *dl_fn(void *arg)
{
    long i = (long)arg;
    while (atomic_load(&dl_step) == 0)
        usleep(1000);
    CHECKF(ie_get() == 42, "thread %ld: initial-exec TLS %d", i, ie_get());
    CHECKF(gd_get() == 43, "thread %ld: general-dynamic TLS %d", i, gd_get());
    ie_set((int)i);
    gd_set((int)i + 1000);
    usleep(2000);
    CHECK(ie_get() == i && gd_get() == i + 1000);
    return NULL;
}

/* dlopen the initial-exec and general-dynamic test libraries and find
 * their accessors. */
static void load_tls_libs(void)
{
    const char *dir = getenv("PT_LIBDIR");
    char ie[4096], gd[4096];
    snprintf(ie, sizeof ie, "%s/libtlstest_ie.so", dir ? dir : ".");
    snprintf(gd, sizeof gd, "%s/libtlstest_gd.so", dir ? dir : ".");
    void *h1 = dlopen(ie, RTLD_NOW), *h2 = dlopen(gd, RTLD_NOW);
    CHECKF(h1 && h2, "dlopen: %s", dlerror());
    if (!h1 || !h2)
        _exit(1);
    ie_get = (int (*)(void))dlsym(h1, "tlstest_ie_get");
    ie_set = (void (*)(int))dlsym(h1, "tlstest_ie_set");
    gd_get = (int (*)(void))dlsym(h2, "tlstest_gd_get");
    gd_set = (void (*)(int))dlsym(h2, "tlstest_gd_set");
}

static void load_tls_libs(void);

static void m_dlopen_tls(void)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        OK(pthread_create(&t[i], NULL, dl_fn, (void *)i));
    usleep(5000);                                /* they exist and wait */
    load_tls_libs();
    CHECK(ie_get() == 42 && gd_get() == 43);
    atomic_store(&dl_step, 1);
    for (int i = 0; i < 4; i++)
        OK(pthread_join(t[i], NULL));
    CHECK(ie_get() == 42 && gd_get() == 43);
}

/* The same with 48 threads: corun's stacks come in arenas of 16, then 32
 * slots, so the second is used up, and the kernel usually maps it right
 * below the first (the walk that copies the image into live threads once
 * took the first arena for the unused part of the second and skipped it). */
static void m_dlopen_tls_48(void)
{
    pthread_t t[48];
    for (long i = 0; i < 48; i++)
        OK(pthread_create(&t[i], NULL, dl_fn, (void *)i));
    usleep(5000);
    load_tls_libs();
    CHECK(ie_get() == 42 && gd_get() == 43);
    atomic_store(&dl_step, 1);
    for (int i = 0; i < 48; i++)
        OK(pthread_join(t[i], NULL));
}

/* Threads that each find every TLS variable at its initial value and
 * change it, one after another in batches: corun gives a finished
 * thread's stack, with its TLS area and DTV, to a later thread, which
 * must still start from the images (the executable's, an initial-exec
 * library's, a general-dynamic library's whose block is made on first
 * use), and the blocks made on use must be freed (heap flat). */
static __thread int exe_tls_value = 7;

static void *reuse_fn(void *arg)
{
    long i = (long)arg;
    int e = exe_tls_value, ie = ie_get(), gd = gd_get();
    CHECKF(e == 7 && ie == 42 && gd == 43, "thread %ld found %d %d %d", i, e, ie, gd);
    exe_tls_value = (int)i;
    ie_set((int)i);
    gd_set((int)i);
    return NULL;
}

static void m_reuse_tls(void)
{
    load_tls_libs();
    size_t before = 0;
    for (int round = 0; round < 200; round++) {
        pthread_t t[100];
        for (long i = 0; i < 100; i++)
            OK(pthread_create(&t[i], NULL, reuse_fn, (void *)(round * 100 + i)));
        for (int i = 0; i < 100; i++)
            OK(pthread_join(t[i], NULL));
        if (round == 9)
            before = mallinfo2().uordblks;
    }
    size_t after = mallinfo2().uordblks;
    /* 19,000 more threads, each with a general-dynamic block: a leak of
     * those alone would be about 600 KiB. */
    CHECKF(after < before + 64 * 1024, "heap in use grew from %zu to %zu bytes", before, after);
    CHECK(exe_tls_value == 7 && ie_get() == 42 && gd_get() == 43);
}

/* More modules with TLS than a thread's DTV has room for, dlopen'ed while
 * threads exist (copies of the general-dynamic library under other
 * names): each thread's first access to the new ones makes ld.so grow its
 * DTV, which with own TLS lives in the thread's stack area (ld.so must
 * not realloc or free it as a heap block). Then threads on the reused
 * stacks, and after the libraries are closed, threads again. */
#define DTV_LIBS 40
static int (*dtv_get[DTV_LIBS])(void);
static void (*dtv_set[DTV_LIBS])(int);
static atomic_int dtv_step;

static void *dtv_fn(void *arg)
{
    long i = (long)arg;
    while (atomic_load(&dtv_step) == 0)
        usleep(1000);
    for (int k = 0; k < DTV_LIBS; k++) {
        CHECKF(dtv_get[k]() == 43, "thread %ld: library %d's TLS %d", i, k, dtv_get[k]());
        dtv_set[k]((int)(i * 100 + k));
    }
    usleep(1000);                               /* the others set theirs */
    for (int k = 0; k < DTV_LIBS; k++)
        CHECKF(dtv_get[k]() == i * 100 + k, "thread %ld: library %d's TLS %d", i, k,
               dtv_get[k]());
    return NULL;
}

static void dtv_round(long first)
{
    pthread_t t[NT];
    for (long i = 0; i < NT; i++)
        OK(pthread_create(&t[i], NULL, dtv_fn, (void *)(first + i)));
    usleep(2000);
    atomic_store(&dtv_step, 1);
    for (int i = 0; i < NT; i++)
        OK(pthread_join(t[i], NULL));
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    CHECKF(in >= 0 && out >= 0, "copy %s to %s: %s", from, to, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        CHECK(write(out, buf, (size_t)n) == n);
    close(in);
    close(out);
}

static void m_dtv_grows(void)
{
    const char *dir = getenv("PT_LIBDIR");
    char src[4096], tmp[] = "/tmp/pt_tls_dtv.XXXXXX", path[DTV_LIBS][4200];
    void *h[DTV_LIBS];
    snprintf(src, sizeof src, "%s/libtlstest_gd.so", dir ? dir : ".");
    CHECK(mkdtemp(tmp) != NULL);
    pthread_t t[NT];
    for (long i = 0; i < NT; i++)
        OK(pthread_create(&t[i], NULL, dtv_fn, (void *)i));
    usleep(5000);                               /* they exist and wait */
    for (int k = 0; k < DTV_LIBS; k++) {
        snprintf(path[k], sizeof path[k], "%s/gd%d.so", tmp, k);
        copy_file(src, path[k]);
        h[k] = dlopen(path[k], RTLD_NOW | RTLD_LOCAL);
        CHECKF(h[k] != NULL, "dlopen: %s", dlerror());
        if (!h[k])
            _exit(1);
        dtv_get[k] = (int (*)(void))dlsym(h[k], "tlstest_gd_get");
        dtv_set[k] = (void (*)(int))dlsym(h[k], "tlstest_gd_set");
    }
    atomic_store(&dtv_step, 1);
    for (int i = 0; i < NT; i++)
        OK(pthread_join(t[i], NULL));
    for (int r = 1; r <= 3; r++)
        dtv_round(r * NT);                      /* on the stacks (and DTVs) of the last */
    for (int k = 0; k < DTV_LIBS; k++)
        CHECK(dtv_get[k]() == 43);              /* main's own */
    for (int k = 0; k < DTV_LIBS; k++) {
        CHECK(dlclose(h[k]) == 0);
        unlink(path[k]);
    }
    rmdir(tmp);
    /* Threads after the close: ld.so drops the closed modules' blocks. */
    pthread_t u[NT];
    for (long i = 0; i < NT; i++)
        OK(pthread_create(&u[i], NULL, tls_vars_fn, (void *)i));
    for (int i = 0; i < NT; i++)
        OK(pthread_join(u[i], NULL));
}

/* glibc's "more than one thread" flag of THREAD_SELF (x86_64: fs:0x18,
 * read by SINGLE_THREAD_P: 0 lets malloc skip its arena lock) is set in
 * every thread once the process has two, as glibc sets it. */
static int multiple_threads_flag(void)
{
    int v;
    __asm__ volatile("movl %%fs:0x18, %0" : "=r"(v));
    return v;
}

static void *flag_fn(void *arg)
{
    (void)arg;
    usleep(1000);
    return (void *)(intptr_t)multiple_threads_flag();
}

static void m_multiple_threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        OK(pthread_create(&t[i], NULL, flag_fn, NULL));
    for (int i = 0; i < 4; i++) {
        void *v;
        OK(pthread_join(t[i], &v));
        CHECKF(v == (void *)1, "thread %d: multiple_threads %ld", i, (long)(intptr_t)v);
    }
    CHECKF(multiple_threads_flag() == 1, "main: multiple_threads %d", multiple_threads_flag());
}

static const struct pt_mode modes[] = {
    { "multiple_threads", m_multiple_threads },
    { "tls_vars", m_tls_vars },
    { "errno_own", m_errno_own },
    { "uselocale", m_uselocale },
    { "file_lock_owner", m_file_lock_owner },
    { "guards", m_guards },
    { "flockfile_wait", m_flockfile_wait },
    { "fork_from_thread", m_fork_from_thread },
    { "short_lived", m_short_lived },
    { "dlopen_tls", m_dlopen_tls },
    { "dlopen_tls_48", m_dlopen_tls_48 },
    { "reuse_tls", m_reuse_tls },
    { "dtv_grows", m_dtv_grows },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
