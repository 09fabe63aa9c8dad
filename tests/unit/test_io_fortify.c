/*
 * test_io_fortify.c - built with -O2 -D_FORTIFY_SOURCE=2, so that read(),
 * recv() and recvfrom() into buffers of known size compile to __read_chk,
 * __recv_chk and __recvfrom_chk (with gcc; clang 14 cannot see the sizes
 * through glibc's wrappers, and those tests skip). The checked functions
 * must park like the plain calls, and still abort on an overflow as glibc's
 * do. They are also called directly (as the program's calls would find
 * them), whatever the compiler did.
 */
#if defined(__OPTIMIZE__) && !defined(_FORTIFY_SOURCE)
#define _FORTIFY_SOURCE 2
#endif

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include "testutil.h"

TestSuite(io_fortify, .timeout = 30);

static struct tu_log lg;

/* Not a constant: keeps the compiler from proving the size safe, so the
 * checked variant is called. */
static volatile size_t len64 = 64;

#if defined(__USE_FORTIFY_LEVEL) && __USE_FORTIFY_LEVEL > 0
#define FORTIFIED 1
#else
#define FORTIFIED 0
#endif

/* Does this executable import __<base>_chk? Looked up in the .dynstr
 * section of the image (debug info names the declarations of all of
 * them); the name is built at run time so that it is not itself a string
 * of the image. */
static int imports_chk(const char *base)
{
    char sym[64];
    const char *volatile b = base;   /* no constant folding into a literal */
    snprintf(sym, sizeof sym, "__%s_%s", b, "chk");
    FILE *f = fopen("/proc/self/exe", "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_gt(size, (long)sizeof(Elf64_Ehdr));
    rewind(f);
    unsigned char *img = malloc((size_t)size);
    cr_assert_not_null(img);
    cr_assert_eq(fread(img, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    cr_assert_eq(memcmp(eh->e_ident, ELFMAG, SELFMAG), 0);
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    const char *names = (const char *)img + sh[eh->e_shstrndx].sh_offset;
    int found = 0;
    for (int i = 0; i < eh->e_shnum && !found; i++) {
        if (sh[i].sh_type != SHT_STRTAB || strcmp(names + sh[i].sh_name, ".dynstr") != 0)
            continue;
        const char *p = (const char *)img + sh[i].sh_offset, *end = p + sh[i].sh_size;
        for (; p < end && !found; p += strlen(p) + 1)
            found = strcmp(p, sym) == 0;
    }
    free(img);
    return found;
}

/* The compiled calls are the checked variants only where the compiler can
 * see the buffer's size through glibc's inline wrappers (gcc; clang 14
 * cannot, and calls plain read). */
static void require_fortified_call(const char *base)
{
    if (!FORTIFIED)
        cr_skip_test("not built with _FORTIFY_SOURCE (CFLAGS without optimisation?)");
    if (!imports_chk(base))
        cr_skip_test("this compiler did not turn %s() into __%s_chk", base, base);
}

enum op { OP_READ, OP_RECV, OP_RECVFROM, OP_READ_CHK, OP_RECV_CHK, OP_RECVFROM_CHK };

/* The checked functions as a program's calls would find them (corun's hooks
 * come before libc), called directly, whatever the compiler did. */
typedef ssize_t (*read_chk_fn)(int, void *, size_t, size_t);
typedef ssize_t (*recv_chk_fn)(int, void *, size_t, size_t, int);
typedef ssize_t (*recvfrom_chk_fn)(int, void *, size_t, size_t, int, struct sockaddr *,
                                   socklen_t *);

static void *chk(const char *base)
{
    char sym[64];
    const char *volatile b = base;   /* no constant folding into a literal */
    snprintf(sym, sizeof sym, "__%s_%s", b, "chk");
    void *f = dlsym(RTLD_DEFAULT, sym);
    cr_assert_not_null(f, "%s not found", sym);
    return f;
}

struct rd {
    int fd;
    enum op op;
    void *fn;
    ssize_t r;
    char buf[64];
};

static void *reader(void *arg)
{
    struct rd *x = arg;
    char buf[64];   /* a local array: its size is known to the compiler */
    tu_log_add(&lg, 1);
    switch (x->op) {
    case OP_READ:
        x->r = read(x->fd, buf, len64);
        break;
    case OP_RECV:
        x->r = recv(x->fd, buf, len64, 0);
        break;
    case OP_RECVFROM:
        x->r = recvfrom(x->fd, buf, len64, 0, NULL, NULL);
        break;
    case OP_READ_CHK:
        x->r = ((read_chk_fn)x->fn)(x->fd, buf, len64, sizeof buf);
        break;
    case OP_RECV_CHK:
        x->r = ((recv_chk_fn)x->fn)(x->fd, buf, len64, sizeof buf, 0);
        break;
    case OP_RECVFROM_CHK:
        x->r = ((recvfrom_chk_fn)x->fn)(x->fd, buf, len64, sizeof buf, 0, NULL, NULL);
        break;
    }
    if (x->r > 0)
        memcpy(x->buf, buf, (size_t)x->r);
    tu_log_add(&lg, 4);
    return NULL;
}

static void *writer(void *arg)
{
    int fd = *(int *)arg;
    tu_log_add(&lg, 2);
    corun_sleep(CORUN_MSEC(10));
    ssize_t w = write(fd, "fortified", 9);
    tu_log_add(&lg, 3);
    return IP(w);
}

static void parks(enum op op, const char *base)
{
    int sv[2];
    corun_current();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct rd x = { .fd = sv[0], .op = op };
    if (op >= OP_READ_CHK)
        x.fn = chk(base);
    else
        require_fortified_call(base);
    lg.n = 0;
    corun_t *a, *b;
    OK(corun_spawn(&a, NULL, reader, &x));
    OK(corun_spawn(&b, NULL, writer, &sv[1]));
    OK(corun_join(a, NULL));
    void *w;
    OK(corun_join(b, &w));
    cr_assert_eq(PI(w), 9);
    TU_EXPECT(&lg, 1, 2, 3, 4);
    cr_assert_eq(x.r, 9, "%s (op %d) returned %zd", base, op, x.r);
    cr_assert_eq(memcmp(x.buf, "fortified", 9), 0);
    close(sv[0]);
    close(sv[1]);
}

Test(io_fortify, compiled_read_chk_parks) { parks(OP_READ, "read"); }
Test(io_fortify, compiled_recv_chk_parks) { parks(OP_RECV, "recv"); }
Test(io_fortify, compiled_recvfrom_chk_parks) { parks(OP_RECVFROM, "recvfrom"); }
Test(io_fortify, read_chk_parks) { parks(OP_READ_CHK, "read"); }
Test(io_fortify, recv_chk_parks) { parks(OP_RECV_CHK, "recv"); }
Test(io_fortify, recvfrom_chk_parks) { parks(OP_RECVFROM_CHK, "recvfrom"); }

/* A length larger than the buffer: the checked functions abort, as
 * glibc's do. Run in a child; its stderr (glibc's message) is captured. */
static void overflow_child(void *arg)
{
    int sv[2];
    corun_current();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || write(sv[1], "x", 1) != 1)
        _exit(3);
    char small[64];
    volatile size_t n = 128;
    ssize_t r;
    if (arg)
        r = ((read_chk_fn)arg)(sv[0], small, n, sizeof small);
    else
        r = read(sv[0], small, n);
    _exit(r == 1 ? 4 : 5);
}

static void expect_abort(void *fn)
{
    struct tu_child c;
    char st[128];
    tu_fork_run(overflow_child, fn, &c);
    cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT,
              "child %s, expected SIGABRT from the overflow check; stderr: %s",
              tu_status_str(c.status, st, sizeof st), c.err);
}

Test(io_fortify, read_chk_overflow_aborts) { expect_abort(chk("read")); }

Test(io_fortify, compiled_read_chk_overflow_aborts)
{
    require_fortified_call("read");
    expect_abort(NULL);
}
