/* Backtraces of parked green threads (saved frame pointers, read with
 * process_vm_readv) and frame names (dynamic symbols, else .symtab). */
#include "inspect_int.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "gsignal.h"
#include "gsync.h"
#include "lock.h"
#include "rawsys.h"
#include "real.h"

/* ---- backtraces ----------------------------------------------------------*/

bool safe_read(const void *addr, void *out, size_t n)
{
    struct iovec local = { out, n };
    struct iovec remote = { (void *)addr, n };
    return syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL) == (long)n;
}

/* Return addresses of a context saved by cr_ctx_switch at sp (see
 * switch_x86_64.S: rbp at +48, return address at +56). */
int parked_backtrace(const struct corun *co, void **out, int max)
{
    const uint64_t *sp = co->sp;
    uint64_t rbp, ret;
    if (!sp || !safe_read(sp + 6, &rbp, 8) || !safe_read(sp + 7, &ret, 8))
        return 0;
    int n = 0;
    out[n++] = (void *)ret;
    uintptr_t lo = (uintptr_t)sp;
    uintptr_t hi = co->stack_lo ? (uintptr_t)co->stack_hi : lo + ((uintptr_t)64 << 20);
    while (n < max && rbp > lo && rbp < hi && !(rbp & 7)) {
        uint64_t frame[2];
        if (!safe_read((void *)rbp, frame, sizeof frame) || frame[1] < 4096)
            break;
        out[n++] = (void *)frame[1];
        if (frame[0] <= rbp)
            break;
        lo = rbp;
        rbp = frame[0];
    }
    return n;
}

/* Symbols beyond the dynamic ones backtrace_symbols knows: the object's
 * own .symtab names static functions and those of programs linked without
 * -rdynamic (unless stripped). A few mapped files are kept; callers are the
 * loops writing dumps and the watchdog, hence the lock. */
#define SYMTAB_CACHE 8
static struct symfile {
    char path[256];
    const unsigned char *map;             /* NULL: no usable .symtab */
    size_t size;
} symfiles[SYMTAB_CACHE];
static int symfiles_next;
static cr_lock_t sym_lock = CR_LOCK_INIT;

static const struct symfile *symfile_get(const char *path)
{
    for (int i = 0; i < SYMTAB_CACHE; i++)
        if (symfiles[i].path[0] && !strcmp(symfiles[i].path, path))
            return &symfiles[i];
    struct symfile *f = &symfiles[symfiles_next];
    symfiles_next = (symfiles_next + 1) % SYMTAB_CACHE;
    if (f->map)
        rs_munmap((void *)f->map, f->size);
    f->map = NULL;
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return f;
    if (syscall(SYS_fstat, fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr)) {
        void *m = rs_mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->size = (size_t)st.st_size;
        }
    }
    syscall(SYS_close, fd);
    return f;
}

/* The function of f's .symtab around address key; its name and offset. */
static bool symtab_find(const struct symfile *f, uintptr_t key, char *name, size_t n,
                        uintptr_t *off)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f->map;
    if (!f->map || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > f->size ||
        (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > f->size - eh->e_shoff)
        return false;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f->map + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > f->size || sh[i].sh_size > f->size - sh[i].sh_offset ||
            str->sh_offset > f->size || str->sh_size > f->size - str->sh_offset)
            return false;
        const Elf64_Sym *sym = (const Elf64_Sym *)(f->map + sh[i].sh_offset);
        size_t count = sh[i].sh_size / sizeof *sym;
        for (size_t k = 0; k < count; k++) {
            if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || !sym[k].st_value ||
                key < sym[k].st_value || key - sym[k].st_value >= (sym[k].st_size ? sym[k].st_size : 1) ||
                sym[k].st_name >= str->sh_size)
                continue;
            const char *nm = (const char *)(f->map + str->sh_offset + sym[k].st_name);
            snprintf(name, n, "%.*s", (int)strnlen(nm, str->sh_size - sym[k].st_name), nm);
            *off = key - sym[k].st_value;
            return true;
        }
    }
    return false;
}

/* One frame as backtrace_symbols writes it, "object(function+0x1f)[address]",
 * the function found in the dynamic symbols, else in .symtab; else
 * "object(+0xoffset)" (the offset for addr2line -e object). */
static void print_frame(int fd, int i, void *pc)
{
    Dl_info d;
    if (!dladdr(pc, &d) || !d.dli_fname) {
        diag_printf_fd(fd, "      #%-2d [%p]\n", i, pc);
        return;
    }
    uintptr_t a = (uintptr_t)pc, base = (uintptr_t)d.dli_fbase;
    const char *obj = d.dli_fname[0] ? d.dli_fname : "(program)";
    if (d.dli_sname && d.dli_saddr) {
        diag_printf_fd(fd, "      #%-2d %s(%s+%#lx)[%p]\n", i, obj, d.dli_sname,
                       (unsigned long)(a - (uintptr_t)d.dli_saddr), pc);
        return;
    }
    char name[128];
    uintptr_t off;
    bool found = false;
    const char *file = d.dli_fname[0] ? d.dli_fname : "/proc/self/exe";
    cr_lock(&sym_lock);
    const struct symfile *f = symfile_get(file);
    /* A non-PIE program's symbols hold absolute addresses, others offsets. */
    bool absolute = f->map && ((const Elf64_Ehdr *)f->map)->e_type == ET_EXEC;
    found = symtab_find(f, absolute ? a : a - base, name, sizeof name, &off);
    cr_unlock(&sym_lock);
    if (found)
        diag_printf_fd(fd, "      #%-2d %s(%s+%#lx)[%p]\n", i, obj, name, (unsigned long)off, pc);
    else
        diag_printf_fd(fd, "      #%-2d %s(+%#lx)[%p]\n", i, obj, (unsigned long)(a - base), pc);
}

void print_frames(int fd, void *const *frames, int n)
{
    for (int i = 0; i < n; i++)
        print_frame(fd, i, frames[i]);
}

/* A parked green thread's frames without corun's own innermost ones (the
 * park itself), keeping the outermost: the call the program made. */
void print_parked_frames(int fd, void *const *frames, int n)
{
    static Dl_info self;
    if (!self.dli_fbase)
        dladdr((void *)&print_parked_frames, &self);
    int lead = 0;
    Dl_info d;
    while (lead < n && dladdr(frames[lead], &d) && d.dli_fbase == self.dli_fbase)
        lead++;
    int first = lead > 1 && lead < n ? lead - 1 : 0;
    if (first)
        diag_printf_fd(fd, "      (%d frame%s inside corun)\n", first, first == 1 ? "" : "s");
    for (int i = first; i < n; i++)
        print_frame(fd, i, frames[i]);
}
