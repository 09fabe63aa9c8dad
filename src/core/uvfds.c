/* libuv's fds as corun's: see uvfds.h. */
#include "uvfds.h"

#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "ownfd.h"
#include "real.h"

/* libuv's process-wide signal lock pipe lives in a static of libuv's; found
 * once by its two fd values in libuv's writable data, so that it can be
 * tracked too. NULL if not found. */
static int *lock_pipe;

static void loop_slots(uv_loop_t *loop, int **s)
{
    s[0] = &loop->backend_fd;
    s[1] = &loop->async_io_watcher.fd;
    s[2] = &loop->signal_pipefd[0];
    s[3] = &loop->signal_pipefd[1];
    s[4] = &loop->signal_io_watcher.fd;
}
#define LOOP_SLOTS 5

struct pair_search {
    uintptr_t code;       /* an address inside libuv */
    int want[2];
    int *found;
    int matches;
};

static int search_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct pair_search *ps = arg;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum && !mine; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        mine = ph->p_type == PT_LOAD && ps->code >= lo && ps->code < lo + ph->p_memsz;
    }
    if (!mine)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr + 3) & ~(uintptr_t)3;
        uintptr_t hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        for (int *p = (int *)lo; (uintptr_t)(p + 2) <= hi; p++)
            if (p[0] == ps->want[0] && p[1] == ps->want[1]) {
                ps->found = p;
                ps->matches++;
            }
    }
    return 1;
}

/* The first loop's section made the lock pipe too: the two fds that are in
 * none of the loop's slots. */
static void lock_pipe_find(uv_loop_t *loop)
{
    int made[16], other[2], n_other = 0;
    unsigned n = ownfd_section_adopted(made, 16);
    int *s[LOOP_SLOTS];
    loop_slots(loop, s);
    for (unsigned i = 0; i < n; i++) {
        bool in_loop = false;
        for (int j = 0; j < LOOP_SLOTS; j++)
            in_loop |= *s[j] == made[i];
        if (!in_loop && n_other < 2)
            other[n_other++] = made[i];
        else if (!in_loop)
            return;
    }
    if (n_other != 2)
        return;
    struct pair_search ps = { (uintptr_t)&uv_loop_init, { other[0], other[1] }, NULL, 0 };
    dl_iterate_phdr(search_object, &ps);
    if (ps.matches != 1) {
        diag_log(LOG_DEBUG, "libuv's signal lock pipe (fds %d, %d) not found in its data (%d "
                 "matches): a dup2 onto it will not move it", other[0], other[1], ps.matches);
        return;
    }
    lock_pipe = ps.found;
    ownfd_track(&lock_pipe[0]);
    ownfd_track(&lock_pipe[1]);
}

static void after_libuv_fork_child(void)
{
    ownfd_internal_end();
    ownfd_resync();      /* the numbers libuv closed behind corun */
}

/* Whether after_libuv_fork_child runs in a child, to close the section. */
static bool late_handler;

static void register_late_fork_handler(void)
{
    if (pthread_atfork(NULL, NULL, after_libuv_fork_child) == 0)
        __atomic_store_n(&late_handler, true, __ATOMIC_RELEASE);
}

int uvfds_loop_init(uv_loop_t *loop)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static bool first = true;
    ownfd_internal_begin();
    int r = uv_loop_init(loop);
    if (r == 0) {
        int *s[LOOP_SLOTS];
        loop_slots(loop, s);
        for (int j = 0; j < LOOP_SLOTS; j++)
            ownfd_track(s[j]);
        if (__atomic_exchange_n(&first, false, __ATOMIC_ACQ_REL))
            lock_pipe_find(loop);
    }
    ownfd_internal_end();
    /* Right after libuv's own (registered by the first uv_loop_init). */
    libc_pthread_once(&once, register_late_fork_handler);
    return r;
}

void uvfds_fork_child_begin(void)
{
    if (__atomic_load_n(&late_handler, __ATOMIC_ACQUIRE))
        ownfd_internal_begin();
}

int uvfds_loop_fork(uv_loop_t *loop)
{
    /* libuv closes the inherited fds with raw system calls and makes new
     * ones (through the hooks: adopted). */
    int *s[LOOP_SLOTS];
    loop_slots(loop, s);
    for (int j = 0; j < LOOP_SLOTS; j++)
        ownfd_forget(*s[j]);
    ownfd_internal_begin();
    int r = uv_loop_fork(loop);
    ownfd_internal_end();
    return r;
}

int uvfds_loop_close(uv_loop_t *loop)
{
    int *s[LOOP_SLOTS], fds[LOOP_SLOTS];
    loop_slots(loop, s);
    for (int j = 0; j < LOOP_SLOTS; j++)
        fds[j] = *s[j];
    int r = uv_loop_close(loop);
    if (r == 0)
        for (int j = 0; j < LOOP_SLOTS; j++) {
            ownfd_untrack(s[j]);
            ownfd_forget(fds[j]);
        }
    return r;
}
