/* Inside the inspection layer: what its files share (registry.c: the
 * scheduler registry and the core observer; stats.c; symbols.c: backtraces
 * and frame names; dump.c: the live dump; detect.c: the blocking
 * detector). Never included outside src/inspect. */
#ifndef CR_INSPECT_INT_H
#define CR_INSPECT_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "inspect.h"
#include "list.h"
#include "lock.h"
#include "sched.h"

#define MAX_FRAMES 32

/* This layer's part of each scheduler. */
struct insp_sched {
    struct dlink reg_link;        /* on `registry`: every live scheduler */
    struct sched *s;
    int dump_efd;                 /* eventfd in epfd: a live dump was asked for */
    volatile sig_atomic_t dump_pending;
    struct {                      /* the blocking detector's view of this loop */
        unsigned long turns;      /* as last seen */
        uint64_t since;           /* when that count was first seen */
        unsigned long warned;     /* turn count already warned about, plus one */
    } watch;
};

extern struct sched_part part;

static inline struct insp_sched *is(const struct sched *s)
{
    return sched_part(s, &part);
}

/* ---- registry.c */
extern struct dlist registry;             /* every live scheduler, under reg_lock */
extern cr_lock_t reg_lock;
extern pid_t reg_holder;                  /* thread holding reg_lock, for the dump handler */
extern struct sched_stats gone;           /* figures of schedulers already destroyed */
extern unsigned long sched_count;         /* schedulers ever made */
extern pid_t registry_pid;
void reg_acquire(void);
void reg_release(void);

#define REG_FOREACH(s)                                                              \
    for (struct dlink *l_ = registry.head; l_; l_ = l_->next)                        \
        for (struct sched *s = container_of(l_, struct insp_sched, reg_link)->s, *o_ = s; o_; \
             o_ = NULL)

/* Every coroutine of s (the core's list). */
#define ALL_FOREACH(s, type, co)                                                    \
    for (struct dlink *a_ = (s)->all.head; a_; a_ = a_->next)                        \
        for (type *co = container_of(a_, struct corun, all_link), *o_ = co; o_; o_ = NULL)

/* ---- stats.c */
void stats_add(struct sched_stats *sum, const struct sched_stats *x);
void stats_print(void);                   /* at exit (CORUN_STATS) */

/* ---- symbols.c */
bool safe_read(const void *addr, void *out, size_t n);
int parked_backtrace(const struct corun *co, void **out, int max);
void print_frames(int fd, void *const *frames, int n);
void print_parked_frames(int fd, void *const *frames, int n);

/* ---- dump.c */
void dump_sched(struct sched *s);
void co_label(const struct corun *co, char *buf, size_t n);   /* "id 'name'" */
void on_loop_turn(struct sched *s);       /* the core's loop_work: a dump was asked for */
void dump_efd_open(struct sched *s);
void dump_fork_child(void);                /* the graph's lock and edges start afresh */
void dump_install(void);

/* ---- detect.c */
extern bool detect_signal_lost;           /* the program took CORUN_DETECT_SIGNAL */
extern bool dump_signal_lost;
void signal_taken(int sig);
void detect_install(void);
void watchdog_start(void);

#endif
