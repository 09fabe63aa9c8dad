/*
 * Seeing inside the runtime.
 *
 * Stats (CORUN_STATS): every scheduler keeps plain counters written only by
 * its own OS thread; at exit they are summed over the live schedulers and
 * the figures of those already gone.
 *
 * Blocking detector (CORUN_BLOCK_WARN_MS): a watchdog on a kernel thread of
 * its own (made with libc's pthread_create, so corun's hooks leave it alone)
 * looks at each loop's turn counter. When a loop has not turned for the
 * threshold while it is not waiting for events and something else could run,
 * it finds out what the loop thread is doing from
 * /proc/self/task/TID/syscall:
 *  - running code, or in a system call that SA_RESTART makes transparent
 *    (read, write, accept, futex...): it signals the thread, whose handler
 *    prints the running green thread and a backtrace (glibc's backtrace(),
 *    which unwinds through the signal frame with the DWARF tables);
 *  - in a call a signal would cut short with EINTR whatever SA_RESTART says
 *    (nanosleep, poll, select, epoll_wait...): it does not disturb it, and
 *    prints the call, its first argument and the instruction address.
 * One warning per blocked stretch, and one per call site (callers' return
 * addresses) for the process's life.
 *
 * Live dump (CORUN_DUMP_SIGNAL): the signal handler only pokes each
 * scheduler's uv_async; the dump is written by the loop context, where the
 * scheduler's state is consistent. A loop that never turns (a CPU hog) never
 * dumps: the blocking detector is the tool for that. Backtraces of parked
 * green threads follow saved frame pointers from the context switch's frame,
 * reading memory with process_vm_readv so a bad pointer ends the walk
 * instead of crashing: they are complete through corun's own code (built
 * with frame pointers) up to the program's call into corun, and go further
 * only through code that keeps frame pointers.
 */
#include "inspect.h"

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
#include "gsync.h"
#include "lock.h"
#include "rawsys.h"
#include "real.h"

#define MAX_FRAMES 32

static corun_lock_t reg_lock = CORUN_LOCK_INIT;
static pid_t reg_holder;                  /* thread holding reg_lock, for the dump handler */

static void reg_acquire(void)
{
    corun_lock(&reg_lock);
    __atomic_store_n(&reg_holder, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
}

static void reg_release(void)
{
    __atomic_store_n(&reg_holder, 0, __ATOMIC_RELEASE);
    corun_unlock(&reg_lock);
}
static struct sched *reg_head;            /* every live scheduler */
static struct sched_stats gone;           /* figures of schedulers already destroyed */
static unsigned long sched_count;         /* schedulers ever made */
static pid_t registry_pid;

static const char *const wait_names[WAIT_KINDS] = {
    [WAIT_OTHER] = "other", [WAIT_READ] = "read", [WAIT_WRITE] = "write",
    [WAIT_ACCEPT] = "accept", [WAIT_CONNECT] = "connect", [WAIT_POLL] = "poll",
    [WAIT_SLEEP] = "sleep", [WAIT_DNS] = "dns", [WAIT_MUTEX] = "mutex", [WAIT_COND] = "cond",
    [WAIT_JOIN] = "join", [WAIT_CHILD] = "child", [WAIT_RWLOCK] = "rwlock",
    [WAIT_SEM] = "semaphore", [WAIT_BARRIER] = "barrier", [WAIT_CHAN] = "channel",
    [WAIT_OFFLOAD] = "offload",
};

const char *inspect_wait_name(int kind)
{
    return kind >= 0 && kind < WAIT_KINDS && wait_names[kind] ? wait_names[kind] : "other";
}

/* ---- coroutine list ------------------------------------------------------*/

static void all_link(struct sched *s, struct corun *co)
{
    co->all_prev = NULL;
    co->all_next = s->all;
    if (s->all)
        s->all->all_prev = co;
    s->all = co;
}

void inspect_note_spawn(struct sched *s, struct corun *co)
{
    s->stats.created++;
    if (s->alive > s->stats.peak_alive)
        s->stats.peak_alive = s->alive;
    all_link(s, co);
}

void inspect_forget(struct sched *s, struct corun *co)
{
    if (co->all_prev)
        co->all_prev->all_next = co->all_next;
    else if (s->all == co)
        s->all = co->all_next;
    else
        return;                            /* never listed (the loop's context) */
    if (co->all_next)
        co->all_next->all_prev = co->all_prev;
    co->all_next = co->all_prev = NULL;
}

/* ---- stats ---------------------------------------------------------------*/

void inspect_note_switch(struct sched *s, struct corun *from)
{
    uint64_t now = clock_now_ns();
    if (from != s->loop_co && s->stats.slice_start) {
        uint64_t ran = now - s->stats.slice_start;
        if (ran > s->stats.max_slice_ns) {
            s->stats.max_slice_ns = ran;
            s->stats.max_slice_id = from->id;
            memcpy(s->stats.max_slice_name, from->name, sizeof s->stats.max_slice_name);
        }
        if (ran > s->stats.stretch_top_ns) {
            s->stats.stretch_top_ns = ran;
            s->stats.stretch_top_id = from->id;
            memcpy(s->stats.stretch_top_name, from->name, sizeof s->stats.stretch_top_name);
        }
    }
    s->stats.slice_start = now;
}

void inspect_note_loop_turn(struct sched *s)
{
    uint64_t now = clock_now_ns();
    uint64_t blocked = now - s->stats.loop_left_ns;
    if (blocked > s->stats.max_block_ns) {
        s->stats.max_block_ns = blocked;
        s->stats.max_block_dispatches = s->dispatches;
        s->stats.max_block_top_ns = s->stats.stretch_top_ns;
        s->stats.max_block_top_id = s->stats.stretch_top_id;
        memcpy(s->stats.max_block_top_name, s->stats.stretch_top_name,
               sizeof s->stats.max_block_top_name);
    }
    s->stats.stretch_top_ns = 0;
    s->stats.loop_left_ns = 1;             /* closed: the loop has control */
}

static void stats_add(struct sched_stats *sum, const struct sched_stats *x)
{
    sum->created += x->created;
    sum->peak_alive += x->peak_alive;
    sum->switches += x->switches;
    for (int k = 0; k < WAIT_KINDS; k++)
        sum->parks[k] += x->parks[k];
    sum->offloads += x->offloads;
    sum->fds_registered += x->fds_registered;
    if (x->max_block_ns > sum->max_block_ns) {
        sum->max_block_ns = x->max_block_ns;
        sum->max_block_dispatches = x->max_block_dispatches;
        sum->max_block_top_ns = x->max_block_top_ns;
        sum->max_block_top_id = x->max_block_top_id;
        memcpy(sum->max_block_top_name, x->max_block_top_name, sizeof sum->max_block_top_name);
    }
    if (x->max_slice_ns > sum->max_slice_ns) {
        sum->max_slice_ns = x->max_slice_ns;
        sum->max_slice_id = x->max_slice_id;
        memcpy(sum->max_slice_name, x->max_slice_name, sizeof sum->max_slice_name);
    }
}

static void stats_who(char *buf, size_t n, uint64_t ns, uint64_t id, const char *name)
{
    if (!ns)
        snprintf(buf, n, "-");
    else if (name[0])
        snprintf(buf, n, "green thread %llu '%s'", (unsigned long long)id, name);
    else
        snprintf(buf, n, "green thread %llu", (unsigned long long)id);
}

static void stats_print(void)
{
    struct sched_stats sum;
    reg_acquire();
    sum = gone;
    /* The process may exit while green threads run without the loop having
     * turned (the calling thread's scheduler, at least): that stretch counts. */
    struct sched *self = corun_tls_sched;
    if (self && self->stats.loop_left_ns && self->current) {
        inspect_note_switch(self, self->current);   /* the running slice ends here */
        if (self->stats.loop_left_ns > 1)
            inspect_note_loop_turn(self);
    }
    for (struct sched *s = reg_head; s; s = s->reg_next)
        stats_add(&sum, &s->stats);
    unsigned long nsched = sched_count;
    reg_release();

    int fd = diag_fd();
    unsigned long parks = 0;
    for (int k = 0; k < WAIT_KINDS; k++)
        parks += sum.parks[k];
    diag_printf_fd(fd, "corun stats (pid %d, %lu scheduler%s)\n", (int)getpid(), nsched,
                   nsched == 1 ? "" : "s");
    diag_printf_fd(fd, "  %-28s %12lu\n", "green threads created", sum.created);
    diag_printf_fd(fd, "  %-28s %12lu\n", "green threads peak alive", sum.peak_alive);
    diag_printf_fd(fd, "  %-28s %12lu\n", "switches", sum.switches);
    diag_printf_fd(fd, "  %-28s %12lu\n", "parks", parks);
    /* The reasons users ask about first, always; the rest when seen. */
    static const int always[] = { WAIT_READ, WAIT_WRITE, WAIT_ACCEPT, WAIT_CONNECT, WAIT_POLL,
                                  WAIT_SLEEP, WAIT_DNS, WAIT_MUTEX, WAIT_COND, WAIT_JOIN,
                                  WAIT_CHILD };
    bool shown[WAIT_KINDS] = { false };
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        char label[40];
        snprintf(label, sizeof label, "  parks: %s", wait_names[always[i]]);
        diag_printf_fd(fd, "  %-28s %12lu\n", label, sum.parks[always[i]]);
        shown[always[i]] = true;
    }
    for (int k = 0; k < WAIT_KINDS; k++) {
        if (shown[k] || !sum.parks[k])
            continue;
        char label[40];
        snprintf(label, sizeof label, "  parks: %s", wait_names[k]);
        diag_printf_fd(fd, "  %-28s %12lu\n", label, sum.parks[k]);
    }
    diag_printf_fd(fd, "  %-28s %12lu\n", "offloads (pool calls)", sum.offloads);
    diag_printf_fd(fd, "  %-28s %12lu\n", "fds tracked (registered)", sum.fds_registered);
    /* The block is blamed on the green thread that ran longest in it. */
    char who[80] = "-";
    stats_who(who, sizeof who, sum.max_block_top_ns, sum.max_block_top_id, sum.max_block_top_name);
    diag_printf_fd(fd, "  %-28s %9.3f ms  (by %s, %.3f ms of it; %lu green thread run%s)\n",
                   "longest loop block", (double)sum.max_block_ns / 1e6, who,
                   (double)sum.max_block_top_ns / 1e6, sum.max_block_dispatches,
                   sum.max_block_dispatches == 1 ? "" : "s");
    stats_who(who, sizeof who, sum.max_slice_ns, sum.max_slice_id, sum.max_slice_name);
    diag_printf_fd(fd, "  %-28s %9.3f ms  (by %s)\n", "longest run without a switch",
                   (double)sum.max_slice_ns / 1e6, who);
}

/* ---- backtraces ----------------------------------------------------------*/

static bool safe_read(const void *addr, void *out, size_t n)
{
    struct iovec local = { out, n };
    struct iovec remote = { (void *)addr, n };
    return syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL) == (long)n;
}

/* Return addresses of a context saved by corun_ctx_switch at sp (see
 * switch_x86_64.S: rbp at +48, return address at +56). */
static int parked_backtrace(const struct corun *co, void **out, int max)
{
    const uint64_t *sp = co->sp;
    uint64_t rbp, ret;
    if (!sp || !safe_read(sp + 6, &rbp, 8) || !safe_read(sp + 7, &ret, 8))
        return 0;
    int n = 0;
    out[n++] = (void *)ret;
    uintptr_t lo = (uintptr_t)sp;
    uintptr_t hi = co->stack_lo ? (uintptr_t)co : lo + ((uintptr_t)64 << 20);
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
static corun_lock_t sym_lock = CORUN_LOCK_INIT;

static const struct symfile *symfile_get(const char *path)
{
    for (int i = 0; i < SYMTAB_CACHE; i++)
        if (symfiles[i].path[0] && !strcmp(symfiles[i].path, path))
            return &symfiles[i];
    struct symfile *f = &symfiles[symfiles_next];
    symfiles_next = (symfiles_next + 1) % SYMTAB_CACHE;
    if (f->map)
        munmap((void *)f->map, f->size);
    f->map = NULL;
    snprintf(f->path, sizeof f->path, "%s", path);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return f;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr)) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
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
    corun_lock(&sym_lock);
    const struct symfile *f = symfile_get(file);
    /* A non-PIE program's symbols hold absolute addresses, others offsets. */
    bool absolute = f->map && ((const Elf64_Ehdr *)f->map)->e_type == ET_EXEC;
    found = symtab_find(f, absolute ? a : a - base, name, sizeof name, &off);
    corun_unlock(&sym_lock);
    if (found)
        diag_printf_fd(fd, "      #%-2d %s(%s+%#lx)[%p]\n", i, obj, name, (unsigned long)off, pc);
    else
        diag_printf_fd(fd, "      #%-2d %s(+%#lx)[%p]\n", i, obj, (unsigned long)(a - base), pc);
}

static void print_frames(int fd, void *const *frames, int n)
{
    for (int i = 0; i < n; i++)
        print_frame(fd, i, frames[i]);
}

/* A parked green thread's frames without corun's own innermost ones (the
 * park itself), keeping the outermost: the call the program made. */
static void print_parked_frames(int fd, void *const *frames, int n)
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

/* ---- live dump -----------------------------------------------------------*/

static const char *state_word(int st)
{
    switch (st) {
    case CO_RUNNING: return "running";
    case CO_RUNNABLE: return "runnable";
    case CO_PARKED: return "parked";
    case CO_SUSPENDED: return "suspended in corun_switch";
    case CO_DONE: return "finished, not joined";
    default: return "?";
    }
}

static void co_label(const struct corun *co, char *buf, size_t n)
{
    if (co->name[0])
        snprintf(buf, n, "%llu '%s'", (unsigned long long)co->id, co->name);
    else
        snprintf(buf, n, "%llu", (unsigned long long)co->id);
}

/* The coroutine co waits for (the owner of its mutex, the thread it joins),
 * or NULL; *what says what for. */
static const struct corun *waits_for(const struct sched *s, const struct corun *co,
                                     char *what, size_t n)
{
    if (co->state != CO_PARKED)
        return NULL;
    if (co->wait_kind == WAIT_MUTEX && co->wait_obj) {
        const struct corun *owner = gmutex_green_owner(co->wait_obj);
        snprintf(what, n, "mutex %p held by", co->wait_obj);
        return owner;
    }
    if (co->wait_kind == WAIT_JOIN && co->wait_obj) {
        /* The target is still listed unless it has been released. */
        for (const struct corun *c = s->all; c; c = c->all_next)
            if (c == co->wait_obj) {
                snprintf(what, n, "join of");
                return c;
            }
    }
    return NULL;
}

static void describe_wait(const struct corun *co, uint64_t now, char *buf, size_t n)
{
    int len = snprintf(buf, n, "%s", inspect_wait_name(co->wait_kind));
    switch (co->wait_kind) {
    case WAIT_READ: case WAIT_WRITE: case WAIT_ACCEPT: case WAIT_CONNECT: case WAIT_CHILD:
        len += snprintf(buf + len, n - (size_t)len, " on fd %d", co->wait_fd);
        break;
    case WAIT_POLL:
        if (co->wait_fd >= 0)
            len += snprintf(buf + len, n - (size_t)len, " on fd %d", co->wait_fd);
        else
            len += snprintf(buf + len, n - (size_t)len, " on several fds");
        break;
    case WAIT_MUTEX: {
        const struct corun *owner = co->wait_obj ? gmutex_green_owner(co->wait_obj) : NULL;
        char who[64] = "nobody";
        if (owner)
            co_label(owner, who, sizeof who);
        len += snprintf(buf + len, n - (size_t)len, " %p held by green thread %s", co->wait_obj,
                        who);
        break;
    }
    case WAIT_COND: case WAIT_RWLOCK: case WAIT_SEM: case WAIT_BARRIER: case WAIT_CHAN:
        len += snprintf(buf + len, n - (size_t)len, " %p", co->wait_obj);
        break;
    case WAIT_JOIN: {
        char who[64];
        co_label((const struct corun *)co->wait_obj, who, sizeof who);
        len += snprintf(buf + len, n - (size_t)len, " of green thread %s", who);
        break;
    }
    default:
        break;
    }
    if (len < (int)n && timer_queued(&co->timer)) {
        int64_t left = (int64_t)(co->timer.deadline - now);
        len += snprintf(buf + len, n - (size_t)len, ", timeout in %.3f s", (double)left / 1e9);
    }
    if (len < (int)n && co->wait_since)
        snprintf(buf + len, n - (size_t)len, ", for %.3f s",
                 (double)(now - co->wait_since) / 1e9);
}

static void dump_sched(struct sched *s)
{
    int fd = diag_fd();
    uint64_t now = clock_now_ns();
    unsigned long count = 0;
    for (struct corun *co = s->all; co; co = co->all_next)
        count++;
    diag_printf_fd(fd, "corun: dump of the green threads of OS thread %d (pid %d): %lu\n",
                   (int)s->tid, (int)getpid(), count);
    for (struct corun *co = s->all; co; co = co->all_next) {
        char who[64], what[256] = "";
        co_label(co, who, sizeof who);
        if (co->state == CO_PARKED)
            describe_wait(co, now, what, sizeof what);
        diag_printf_fd(fd, "  green thread %s%s: %s%s%s\n", who,
                       co->flags & CO_MAIN ? " (main)" : "", state_word(co->state),
                       what[0] ? ": " : "", what);
        if (co->state != CO_DONE) {
            void *frames[MAX_FRAMES];
            int n = parked_backtrace(co, frames, MAX_FRAMES);
            print_parked_frames(fd, frames, n);
        }
    }
    /* Wait-for graph: each parked thread has at most one edge, so following
     * edges from any thread either ends or enters a cycle. */
    diag_printf_fd(fd, "corun: wait-for graph:\n");
    unsigned long edges = 0, cycles = 0;
    for (struct corun *co = s->all; co; co = co->all_next) {
        char what[128], a[64], b[64];
        const struct corun *to = waits_for(s, co, what, sizeof what);
        if (!to)
            continue;
        edges++;
        co_label(co, a, sizeof a);
        co_label(to, b, sizeof b);
        diag_printf_fd(fd, "  %s -> %s (%s %s)\n", a, b, what, b);
    }
    if (!edges)
        diag_printf_fd(fd, "  (no green thread waits for another)\n");
    /* A cycle is reported once, from its member with the lowest id. */
    for (struct corun *co = s->all; co; co = co->all_next) {
        char what[128];
        const struct corun *x = co;
        bool cyclic = false, lowest = true;
        for (unsigned long steps = 0; steps <= count; steps++) {
            x = waits_for(s, x, what, sizeof what);
            if (!x)
                break;
            if (x->id < co->id)
                lowest = false;
            if (x == co) {
                cyclic = true;
                break;
            }
        }
        if (!cyclic || !lowest)
            continue;
        cycles++;
        char line[1024];
        int len = snprintf(line, sizeof line, "corun: DEADLOCK: ");
        x = co;
        do {
            char a[64], b[64];
            const struct corun *to = waits_for(s, x, what, sizeof what);
            co_label(x, a, sizeof a);
            co_label(to, b, sizeof b);
            if (len < (int)sizeof line)
                len += snprintf(line + len, sizeof line - (size_t)len, "%s%s waits for %s %s",
                                x == co ? "" : ", ", a, what, b);
            x = to;
        } while (x != co);
        if (len > (int)sizeof line - 2)
            len = (int)sizeof line - 2;
        line[len++] = '\n';
        diag_write_all(fd, line, (size_t)len);
    }
    if (!cycles)
        diag_printf_fd(fd, "corun: no deadlock cycle\n");
    diag_printf_fd(fd, "corun: (backtraces follow frame pointers: they stop at code built "
                       "without them)\n");
}

void inspect_dump(struct sched *s)
{
    s->dump_pending = 0;
    uint64_t v;
    syscall(SYS_read, s->dump_efd, &v, sizeof v);
    dump_sched(s);
}

/* The dump's eventfd in the scheduler's epoll set. Its tag reads as fd -1
 * to the fd table, which ignores it: the poll just returns and the loop
 * turns, where inspect_dump runs. */
#define DUMP_TAG 0xFFFFFFFFull

static void dump_efd_open(struct sched *s)
{
    s->dump_efd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = DUMP_TAG };
    if (s->dump_efd < 0 || syscall(SYS_epoll_ctl, s->epfd, EPOLL_CTL_ADD, s->dump_efd, &ev) != 0)
        diag_log(LOG_WARN, "cannot set up the live dump (CORUN_DUMP_SIGNAL): %s",
                 strerror(errno));
}

static void dump_signal_handler(int sig)
{
    (void)sig;
    int saved = errno;
    /* The registry lock: another thread holding it lets go soon; if the
     * interrupted thread itself holds it, waiting would never end. */
    static const char note[] = "corun: live dump asked for: each loop writes its green threads "
                               "when it next turns (a loop stuck in a call corun does not "
                               "intercept writes nothing)\n";
    diag_write_all(diag_fd(), note, sizeof note - 1);
    pid_t self = (pid_t)syscall(SYS_gettid);
    for (int tries = 0; tries < 200 && __atomic_load_n(&reg_holder, __ATOMIC_ACQUIRE) != self;
         tries++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&reg_lock.state, &expected, 1)) {
            for (struct sched *s = reg_head; s; s = s->reg_next) {
                uint64_t one = 1;
                s->dump_pending = 1;
                syscall(SYS_write, s->dump_efd, &one, sizeof one);
            }
            corun_unlock(&reg_lock);
            break;
        }
        struct timespec ms = { 0, 1000000 };
        syscall(SYS_nanosleep, &ms, NULL);
    }
    errno = saved;
}

/* libc's sigaction: corun's own actions are not the program's (the hook
 * would take them for the program taking corun's signals). */
static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*fn)(int, const struct sigaction *, struct sigaction *);
    if (!fn)
        fn = (int (*)(int, const struct sigaction *, struct sigaction *))real_resolve("sigaction");
    return fn(sig, act, old);
}

static void dump_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump_signal_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    real_sigaction(corun_config.dump_signal, &sa, NULL);
}

/* ---- blocking detector ---------------------------------------------------*/

#define SITES_MAX 256

static bool detect_signal_lost;           /* the program took CORUN_DETECT_SIGNAL */
static bool dump_signal_lost;

void inspect_signal_taken(int sig)
{
    if (corun_config.dump_signal && sig == corun_config.dump_signal &&
        !__atomic_exchange_n(&dump_signal_lost, true, __ATOMIC_RELAXED))
        diag_printf_fd(diag_fd(), "corun: warning: the program sets its own action for signal %d "
                           "(%s), the live dump's (CORUN_DUMP_SIGNAL): it keeps it, and the "
                           "dump is off; choose another signal for the dump\n", sig,
                       sigabbrev_np(sig) ? sigabbrev_np(sig) : "real-time");
    if (corun_config.block_warn_ms && sig == CORUN_DETECT_SIGNAL &&
        !__atomic_exchange_n(&detect_signal_lost, true, __ATOMIC_RELAXED))
        diag_printf_fd(diag_fd(), "corun: warning: the program sets its own action for signal %d "
                           "(SIGRTMAX-1), which the blocking detector (CORUN_BLOCK_WARN_MS) "
                           "uses to take backtraces: it keeps it, and the detector's warnings "
                           "come without exact backtraces from now on\n", sig);
}

static uint64_t sites[SITES_MAX];         /* hashes of call sites already reported */
static int sites_used;

static bool site_new(uint64_t h)
{
    /* Called from the watchdog and from loop threads' handlers: a race at
     * worst repeats one warning. */
    int used = __atomic_load_n(&sites_used, __ATOMIC_ACQUIRE);
    for (int i = 0; i < used && i < SITES_MAX; i++)
        if (__atomic_load_n(&sites[i], __ATOMIC_RELAXED) == h)
            return false;
    int slot = __atomic_fetch_add(&sites_used, 1, __ATOMIC_ACQ_REL);
    if (slot < SITES_MAX)
        __atomic_store_n(&sites[slot], h, __ATOMIC_RELEASE);
    return true;
}

static void detect_header(int fd, struct sched *s, unsigned ms, const char *how)
{
    struct corun *cur = s->current;
    char who[64];
    co_label(cur, who, sizeof who);
    diag_printf_fd(fd, "corun: the loop of OS thread %d has not turned for %u ms: green thread "
                       "%s%s is %s\n",
                   (int)s->tid, ms, who, cur->flags & CO_MAIN ? " (main)" : "", how);
}

/* On the blocked loop's own thread: the interrupted code is below us. */
/* The watchdog asks a blocked loop thread for its backtrace (one at a
 * time): the handler only captures it; the watchdog symbolises and prints. */
static void *cap_frames[MAX_FRAMES + 2];
static void *cap_restorer;                /* the signal trampoline: frames below it are ours */
static int cap_n;
static volatile sig_atomic_t cap_armed, cap_done;

__attribute__((noinline)) static void detect_signal_handler(int sig)
{
    (void)sig;
    if (!cap_armed)
        return;
    int saved = errno;
    cap_n = backtrace(cap_frames, MAX_FRAMES + 2);
    __atomic_store_n(&cap_done, 1, __ATOMIC_RELEASE);
    errno = saved;
}

/* Where the loop is stuck, for "once per site": the innermost named
 * function of the program (not libc, the vDSO, corun or a sanitizer
 * runtime; PLT stubs have no name), else the innermost such frame, else
 * the innermost frame. */
static uint64_t site_of(void *const *frames, int n)
{
    static Dl_info libc, self;
    if (!libc.dli_fname) {
        dladdr((void *)&getpid, &libc);
        dladdr((void *)&site_of, &self);
    }
    uint64_t unnamed = 0;
    for (int i = 0; i < n; i++) {
        Dl_info d;
        if (!dladdr(frames[i], &d) || !d.dli_fname)
            continue;
        if (d.dli_fbase == libc.dli_fbase || d.dli_fbase == self.dli_fbase ||
            strstr(d.dli_fname, "vdso") || strstr(d.dli_fname, "libasan") ||
            strstr(d.dli_fname, "libubsan"))
            continue;                      /* libc, corun, sanitizer runtimes */
        if (d.dli_saddr)
            return (uint64_t)(uintptr_t)d.dli_saddr;
        if (!unnamed)
            unnamed = (uint64_t)(uintptr_t)frames[i];
    }
    if (unnamed)
        return unnamed;
    return n > 0 ? (uint64_t)(uintptr_t)frames[0] : 0;
}

/* Signal the loop thread and wait (briefly) for its backtrace. */
static int capture_backtrace(struct sched *s, void **out, int max)
{
    cap_done = 0;
    cap_armed = 1;
    int n = 0;
    if (syscall(SYS_tgkill, getpid(), s->tid, CORUN_DETECT_SIGNAL) == 0) {
        struct timespec ms = { 0, 1000000 };
        for (int i = 0; i < 500 && !__atomic_load_n(&cap_done, __ATOMIC_ACQUIRE); i++)
            syscall(SYS_nanosleep, &ms, NULL);
        if (cap_done) {
            /* Usually [0]: the handler, [1]: the signal trampoline, [2]:
             * where the thread was; an intercepted backtrace() may differ. */
            int first = cap_n > 2 ? 2 : cap_n;
            for (int i = 0; i < cap_n && i < 4; i++)
                if (cap_restorer && (uintptr_t)cap_frames[i] - (uintptr_t)cap_restorer < 16) {
                    first = i + 1;
                    break;
                }
            for (int i = first; i < cap_n && n < max; i++)
                out[n++] = cap_frames[i];
        }
    }
    cap_armed = 0;
    return n;
}

/* System calls a signal does not disturb under SA_RESTART (signal(7)),
 * barring socket timeouts. */
static bool restartable_syscall(long nr)
{
    switch (nr) {
    case SYS_read: case SYS_write: case SYS_readv: case SYS_writev: case SYS_pread64:
    case SYS_pwrite64: case SYS_open: case SYS_openat: case SYS_ioctl: case SYS_wait4:
    case SYS_waitid: case SYS_flock: case SYS_futex: case SYS_accept: case SYS_accept4:
    case SYS_connect: case SYS_recvfrom: case SYS_recvmsg: case SYS_sendto: case SYS_sendmsg:
    case SYS_recvmmsg: case SYS_sendmmsg: case SYS_getrandom: case SYS_fsync:
    case SYS_fdatasync:
        return true;
    default:
        return false;
    }
}

static const char *syscall_name(long nr)
{
    switch (nr) {
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_select: return "select";
    case SYS_pselect6: return "pselect6";
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case SYS_pause: return "pause";
    case SYS_rt_sigsuspend: return "rt_sigsuspend";
    case SYS_rt_sigtimedwait: return "rt_sigtimedwait";
    case SYS_msgrcv: return "msgrcv";
    case SYS_semop: return "semop";
    case SYS_semtimedop: return "semtimedop";
    case SYS_io_getevents: return "io_getevents";
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_readv: return "readv";
    case SYS_writev: return "writev";
    case SYS_pread64: return "pread64";
    case SYS_pwrite64: return "pwrite64";
    case SYS_futex: return "futex";
    case SYS_accept: return "accept";
    case SYS_accept4: return "accept4";
    case SYS_connect: return "connect";
    case SYS_recvfrom: return "recvfrom";
    case SYS_sendto: return "sendto";
    case SYS_recvmsg: return "recvmsg";
    case SYS_sendmsg: return "sendmsg";
    case SYS_wait4: return "wait4";
    case SYS_flock: return "flock";
    case SYS_openat: return "openat";
    default: return "system call";
    }
}

/* Is addr a return address: does a call instruction end just before it?
 * (call rel32; call *reg; call *disp8(reg); call *disp32(reg) or *rip+disp32) */
static bool after_call(uintptr_t addr)
{
    unsigned char b[7];
    if (addr < 8 || !safe_read((void *)(addr - 7), b, sizeof b))
        return false;
    return b[2] == 0xE8 || (b[5] == 0xFF && (b[6] & 0x38) == 0x10) ||
           (b[4] == 0xFF && (b[5] & 0x38) == 0x10) || (b[1] == 0xFF && (b[2] & 0x38) == 0x10);
}

/* Probable callers of a thread stopped at sp, found by scanning its stack
 * for return addresses into loaded code: a heuristic (stale values can
 * show up), used where the thread cannot be interrupted to unwind it. */
static int stack_scan(uintptr_t sp, uintptr_t hi, void **out, int max)
{
    int n = 0;
    for (int i = 0; i < 2048 && n < max && sp + (uintptr_t)i * 8 + 8 <= hi; i++) {
        uint64_t v;
        if (!safe_read((void *)(sp + (uintptr_t)i * 8), &v, 8))
            break;
        Dl_info info;
        if (v > 4096 && dladdr((void *)v, &info) && info.dli_fname && after_call(v))
            out[n++] = (void *)v;
    }
    return n;
}

/* What the thread is doing, from the kernel: -1 running (or unknown), else
 * the system call number, with its first argument, stack pointer and pc. */
static long thread_syscall(pid_t tid, unsigned long *arg0, unsigned long *sp, unsigned long *pc)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    if (rs_read_file(path, buf, sizeof buf) <= 0)
        return -1;
    char *p = buf, *end;
    long nr = strtol(p, &end, 10);
    if (end == p)
        return -1;                         /* "running" */
    unsigned long v[8] = { 0 };
    int k = 0;
    for (p = end; k < 8; k++, p = end) {
        v[k] = strtoul(p, &end, 16);
        if (end == p)
            break;
    }
    if (k < 8)
        return -1;
    *arg0 = v[0];
    *sp = v[6];
    *pc = v[7];                            /* args 1..6, then sp, then pc */
    return nr;
}

static void detect_check(struct sched *s, uint64_t now, uint64_t limit_ns)
{
    unsigned long turns = __atomic_load_n(&s->turns, __ATOMIC_RELAXED);
    bool idle = __atomic_load_n(&s->polling, __ATOMIC_RELAXED);
    if (turns != s->watch.turns || idle) {
        s->watch.turns = turns;
        s->watch.since = now;
        return;
    }
    if (now - s->watch.since < limit_ns || s->watch.warned == turns + 1)
        return;
    /* Blocking harms only when something else could run meanwhile. */
    unsigned long alive = __atomic_load_n(&s->alive, __ATOMIC_RELAXED);
    struct corun *runq_head = __atomic_load_n(&s->runq.head, __ATOMIC_RELAXED);
    if (alive <= 1 && !runq_head && !__atomic_load_n(&s->timers.n, __ATOMIC_RELAXED))
        return;
    s->watch.warned = turns + 1;
    unsigned long arg0 = 0, sp = 0, pc = 0;
    long nr = thread_syscall(s->tid, &arg0, &sp, &pc);
    void *frames[MAX_FRAMES];
    int n;
    char how[160];
    const char *intro;
    if (nr < 0 && __atomic_load_n(&detect_signal_lost, __ATOMIC_RELAXED)) {
        n = 0;
        snprintf(how, sizeof how, "running code (CPU-bound, or in a call corun does not "
                                  "intercept)");
        intro = "    (no backtrace: the program uses SIGRTMAX-1, the detector's signal)\n";
    } else if (nr < 0 || (restartable_syscall(nr) &&
                          !__atomic_load_n(&detect_signal_lost, __ATOMIC_RELAXED))) {
        n = capture_backtrace(s, frames, MAX_FRAMES);
        if (nr < 0)
            snprintf(how, sizeof how, "running code (CPU-bound, or in a call corun does not "
                                      "intercept)");
        else
            snprintf(how, sizeof how, "in %s (system call %ld), which corun did not intercept",
                     syscall_name(nr), nr);
        intro = n ? "    backtrace:\n" : "    (no backtrace: the thread did not answer)\n";
    } else {
        snprintf(how, sizeof how, "in %s (system call %ld, first argument %#lx), which corun "
                 "did not intercept", syscall_name(nr), nr, arg0);
        intro = "    at (not interrupted, so no exact backtrace; callers found on its stack, "
                "probable):\n";
        frames[0] = (void *)pc;
        struct corun *cur = s->current;     /* a green thread's stack ends at its header */
        n = 1 + stack_scan(sp, cur->stack_lo ? (uintptr_t)cur : UINTPTR_MAX, frames + 1, 12);
    }
    if (!site_new(site_of(frames, n)))
        return;
    int fd = diag_fd();
    detect_header(fd, s, corun_config.block_warn_ms, how);
    diag_printf_fd(fd, "%s", intro);
    print_frames(fd, frames, n);
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    uint64_t limit = (uint64_t)corun_config.block_warn_ms * 1000000;
    uint64_t step = limit / 4;
    if (step < 1000000)
        step = 1000000;
    struct timespec ts = { (time_t)(step / 1000000000), (long)(step % 1000000000) };
    for (;;) {
        syscall(SYS_nanosleep, &ts, NULL);
        uint64_t now = clock_now_ns();
        reg_acquire();
        for (struct sched *s = reg_head; s; s = s->reg_next)
            detect_check(s, now, limit);
        reg_release();
    }
    return NULL;
}

static void detect_install(void)
{
    void *frames[4];
    backtrace(frames, 4);                  /* loads the unwinder now, not in a handler */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = detect_signal_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    real_sigaction(CORUN_DETECT_SIGNAL, &sa, NULL);
    struct sigaction now;
    if (real_sigaction(CORUN_DETECT_SIGNAL, NULL, &now) == 0 && now.sa_restorer)
        cap_restorer = (void *)now.sa_restorer;
}

static void watchdog_start(void)
{
    /* libc's pthread_create: a kernel thread the hooks leave alone, with
     * every signal blocked so none of the program's lands there. */
    int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))
            real_resolve("pthread_create");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    if (create(&t, &attr, watchdog_main, NULL) != 0)
        diag_log(LOG_WARN, "cannot start the blocking detector's thread");
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- schedulers ----------------------------------------------------------*/

static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void process_setup(void)
{
    registry_pid = getpid();
    if (corun_config.block_warn_ms)
        watchdog_start();
}

void inspect_sched_created(struct sched *s)
{
    pthread_once(&process_once, process_setup);
    s->tid = (pid_t)syscall(SYS_gettid);
    all_link(s, s->main_co);
    if (corun_config.stats) {
        s->stats.loop_left_ns = 1;         /* measuring; the first dispatch sets it */
        s->stats.slice_start = clock_now_ns();
    }
    if (corun_config.dump_signal)
        dump_efd_open(s);
    reg_acquire();
    s->reg_next = reg_head;
    reg_head = s;
    sched_count++;
    reg_release();
}

void inspect_sched_destroyed(struct sched *s)
{
    reg_acquire();
    for (struct sched **p = &reg_head; *p; p = &(*p)->reg_next)
        if (*p == s) {
            *p = s->reg_next;
            break;
        }
    stats_add(&gone, &s->stats);
    reg_release();
    if (corun_config.dump_signal && s->dump_efd >= 0)
        syscall(SYS_close, s->dump_efd);
}

void inspect_after_fork_child(struct sched *s)
{
    /* Only this scheduler and its current coroutine live on; the watchdog
     * thread did not survive the fork. */
    reg_lock = (corun_lock_t)CORUN_LOCK_INIT;
    reg_holder = 0;
    reg_head = s;
    s->reg_next = NULL;
    s->all = NULL;
    all_link(s, s->current);
    memset(&gone, 0, sizeof gone);
    memset(&s->stats, 0, sizeof s->stats);
    if (corun_config.stats) {
        s->stats.loop_left_ns = 1;
        s->stats.slice_start = clock_now_ns();
    }
    sched_count = 1;
    s->tid = (pid_t)syscall(SYS_gettid);
    if (corun_config.dump_signal) {       /* the eventfd is shared with the parent */
        if (s->dump_efd >= 0)
            syscall(SYS_close, s->dump_efd);
        dump_efd_open(s);
    }
    if (corun_config.block_warn_ms && registry_pid != getpid()) {
        registry_pid = getpid();
        watchdog_start();
    }
}

/* At load, before the program's code runs: the stats table is printed at
 * exit even when no scheduler was ever made (a program that never blocked
 * nor made a thread), and corun's signal handlers come first, so that a
 * program setting its own action for one of those signals always wins. */
__attribute__((constructor)) static void inspect_on_load(void)
{
    config_load();
    if (corun_config.stats)
        atexit(stats_print);
    if (corun_config.dump_signal)
        dump_install();
    if (corun_config.block_warn_ms)
        detect_install();
}
