/* The live dump (CORUN_DUMP_SIGNAL): every green thread, what it waits
 * for, its backtrace, and the wait-for graph with its deadlock cycles. */
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

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "gsignal.h"
#include "gsync.h"
#include "lock.h"
#include "ownfd.h"
#include "rawsys.h"
#include "real.h"

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

void co_label(const struct corun *co, char *buf, size_t n)
{
    if (co->name[0])
        snprintf(buf, n, "%llu '%s'", (unsigned long long)co->id, co->name);
    else
        snprintf(buf, n, "%llu", (unsigned long long)co->id);
}

/* The green thread co waits for (the owner of its mutex, the thread it
 * joins), on any OS thread, or NULL; *what says what for. A thread being
 * joined is not released before its joiner is done with it. */
static const struct corun *waits_for(const struct corun *co, char *what, size_t n)
{
    if (co->state != CO_PARKED)
        return NULL;
    if (co->wait_kind == WAIT_MUTEX && co->wait_obj) {
        const struct corun *owner = gmutex_green_owner(co->wait_obj);
        snprintf(what, n, "mutex %p held by", co->wait_obj);
        return owner;
    }
    if (co->wait_kind == WAIT_JOIN && co->wait_obj) {
        snprintf(what, n, "join of");
        return co->wait_obj;
    }
    return NULL;
}

/* ---- one wait-for graph over every OS thread ---------------------------------
 * Each loop adds the edges of its own threads when it writes them (its
 * books are consistent only there); the last of the loops asked prints
 * the graph and its cycles, which may span OS threads (M:N). */
struct edge {
    uint64_t from, to;
    char from_label[64], to_label[64], what[128];
};
static cr_lock_t graph_lock = CR_LOCK_INIT;
static struct edge *graph;
static size_t graph_n, graph_cap;
static unsigned graph_waiting;       /* atomic: loops yet to add their edges */
static int graph_reset;              /* atomic: a new dump began: forget old edges */

static void graph_add(const struct corun *co, const struct corun *to, const char *what)
{
    if (graph_n == graph_cap) {
        size_t cap = graph_cap ? graph_cap * 2 : 64;
        struct edge *g = realloc(graph, cap * sizeof *g);
        if (!g)
            return;                   /* a diagnostic: the edge is left out */
        graph = g;
        graph_cap = cap;
    }
    struct edge *e = &graph[graph_n++];
    e->from = co->id;
    e->to = to->id;
    co_label(co, e->from_label, sizeof e->from_label);
    co_label(to, e->to_label, sizeof e->to_label);
    snprintf(e->what, sizeof e->what, "%s", what);
}

static int edge_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct edge *)a)->from, y = ((const struct edge *)b)->from;
    return x < y ? -1 : x > y;
}

/* The edge from green thread id (each has one at most), or NULL. */
static const struct edge *edge_from(uint64_t id)
{
    struct edge key = { .from = id };
    return graph_n ? bsearch(&key, graph, graph_n, sizeof *graph, edge_cmp) : NULL;
}

void dump_fork_child(void)
{
    graph_lock = (cr_lock_t)CR_LOCK_INIT;
    graph_n = 0;
    graph_waiting = 0;
}

static void graph_print(int fd)
{
    if (graph_n)                      /* (graph is NULL while it has never had an edge) */
        qsort(graph, graph_n, sizeof *graph, edge_cmp);
    diag_printf_fd(fd, "corun: wait-for graph:\n");
    for (size_t i = 0; i < graph_n; i++)
        diag_printf_fd(fd, "  %s -> %s (%s %s)\n", graph[i].from_label, graph[i].to_label,
                       graph[i].what, graph[i].to_label);
    if (!graph_n)
        diag_printf_fd(fd, "  (no green thread waits for another)\n");
    /* Following edges from any thread either ends or enters a cycle; a
     * cycle is reported once, from its member with the lowest id. */
    unsigned long cycles = 0;
    for (size_t i = 0; i < graph_n; i++) {
        const struct edge *e = &graph[i];
        bool cyclic = false, lowest = true;
        for (size_t steps = 0; e && steps <= graph_n; steps++) {
            if (e->to < graph[i].from)
                lowest = false;
            if (e->to == graph[i].from) {
                cyclic = true;
                break;
            }
            e = edge_from(e->to);
        }
        if (!cyclic || !lowest)
            continue;
        cycles++;
        char line[1024];
        int len = snprintf(line, sizeof line, "corun: DEADLOCK: ");
        e = &graph[i];
        do {
            if (len < (int)sizeof line)
                len += snprintf(line + len, sizeof line - (size_t)len, "%s%s waits for %s %s",
                                e == &graph[i] ? "" : ", ", e->from_label, e->what, e->to_label);
            e = edge_from(e->to);
        } while (e && e != &graph[i]);
        if (len > (int)sizeof line - 2)
            len = (int)sizeof line - 2;
        line[len++] = '\n';
        diag_write_all(fd, line, (size_t)len);
    }
    if (!cycles)
        diag_printf_fd(fd, "corun: no deadlock cycle\n");
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

void dump_sched(struct sched *s)
{
    int fd = diag_fd();
    uint64_t now = clock_now_ns();
    cr_lock(&graph_lock);             /* one OS thread's part at a time, and the graph's edges */
    unsigned long count = 0;
    ALL_FOREACH(s, struct corun, co)
        count++;
    diag_printf_fd(fd, "corun: dump of the green threads of OS thread %d (pid %d): %lu\n",
                   (int)s->tid, (int)getpid(), count);
    ALL_FOREACH(s, struct corun, co) {
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
    if (__atomic_exchange_n(&graph_reset, 0, __ATOMIC_ACQ_REL))
        graph_n = 0;
    ALL_FOREACH(s, struct corun, co) {
        char what[128];
        const struct corun *to = waits_for(co, what, sizeof what);
        if (to)
            graph_add(co, to, what);
    }
    unsigned left = __atomic_load_n(&graph_waiting, __ATOMIC_ACQUIRE);
    if (left)
        __atomic_store_n(&graph_waiting, --left, __ATOMIC_RELEASE);
    if (!left)
        graph_print(fd);
    else
        diag_printf_fd(fd, "corun: (the wait-for graph of every OS thread follows the last "
                           "one's threads: %u to come)\n", left);
    diag_printf_fd(fd, "corun: (backtraces follow frame pointers: they stop at code built "
                       "without them)\n");
    cr_unlock(&graph_lock);
}

/* The dump is written at the loop's next turn (the core's loop_work), out
 * of signal context, where the scheduler's state is consistent. */
void on_loop_turn(struct sched *s)
{
    if (!is(s)->dump_pending)
        return;
    is(s)->dump_pending = 0;
    uint64_t v;
    syscall(SYS_read, is(s)->dump_efd, &v, sizeof v);
    dump_sched(s);
}

/* The dump's eventfd in the scheduler's epoll set: its readiness only ends
 * the poll, so that the loop turns. */
static void dump_ready(struct sched *s, uint64_t data, uint32_t events)
{
    (void)s;
    (void)data;
    (void)events;
}

static const struct poll_source dump_source = { dump_ready };
POLL_SOURCE(dump_source);

void dump_efd_open(struct sched *s)
{
    int fd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    is(s)->dump_efd = fd;
    ownfd_own(&is(s)->dump_efd);
    fd = is(s)->dump_efd;
    int r = fd < 0 ? errno : sched_watch_fd(s, fd, EPOLLIN, &dump_source, 0);
    if (r)
        diag_log(LOG_WARN, "cannot set up the live dump (CORUN_DUMP_SIGNAL): %s", strerror(r));
}

static void dump_signal_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    if (sched_blocking_end_check())   /* it interrupted a real blocking call (handoff.c) */
        catch_frame_refresh(uc);
    CATCH_HOLD();
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
            /* Not one stuck in a real call that nothing will take over
             * (no other thread there, or no hand-off): its loop would not
             * turn before the call returns, and its threads (but the one
             * in the call, which waits for nobody) would not be written. */
            unsigned n = 0;
            REG_FOREACH(s)
                n += !(__atomic_load_n(&s->block_word, __ATOMIC_RELAXED) &&
                       (!cr_config.handoff_ms || s->alive <= 1 + (unsigned long)s->worker));
            __atomic_store_n(&graph_waiting, n, __ATOMIC_RELEASE);
            __atomic_store_n(&graph_reset, 1, __ATOMIC_RELEASE);
            REG_FOREACH(s) {
                uint64_t one = 1;
                is(s)->dump_pending = 1;
                s->loop_work = 1;
                syscall(SYS_write, is(s)->dump_efd, &one, sizeof one);
            }
            cr_unlock(&reg_lock);
            break;
        }
        struct timespec ms = { 0, 1000000 };
        syscall(SYS_nanosleep, &ms, NULL);
    }
    errno = saved;
}

/* corun's own actions go through libc's sigaction (libc_sigaction): the
 * hook would take them for the program taking corun's signals. */

void dump_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = dump_signal_handler;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    libc_sigaction(cr_config.dump_signal, &sa, NULL);
}
