/* Seeing inside: CORUN_STATS figures, the blocking detector
 * (CORUN_BLOCK_WARN_MS) and the live dump (CORUN_DUMP_SIGNAL). The
 * scheduler calls these at a few points; the hot-path ones are inline and
 * cost a counter increment. */
#ifndef CORUN_INSPECT_H
#define CORUN_INSPECT_H

#include "config.h"
#include "sched.h"

/* A scheduler was made / is going away (its figures are kept). */
void inspect_sched_created(struct sched *s);
void inspect_sched_destroyed(struct sched *s);
/* In a forked child: only s and its current coroutine are left. */
void inspect_after_fork_child(struct sched *s);

/* A coroutine starts / is released. */
void inspect_note_spawn(struct sched *s, struct corun *co);
void inspect_forget(struct sched *s, struct corun *co);

/* from is switched out (CORUN_STATS): time its run. */
void inspect_note_switch(struct sched *s, struct corun *from);
/* The loop got control back after dispatching (CORUN_STATS). */
void inspect_note_loop_turn(struct sched *s);

/* cur parks: settle what it waits for and count it. */
static inline void inspect_note_park(struct sched *s, struct corun *cur)
{
    uint8_t kind = cur->wait_hint ? cur->wait_hint : cur->wait_kind;
    cur->wait_kind = kind;
    s->stats.parks[kind]++;
    if (__builtin_expect(corun_config.dump_signal != 0, 0))
        cur->wait_since = clock_now_ns();
}

/* Write the live dump of s (in its loop context) when one was asked for. */
void inspect_dump(struct sched *s);

/* The program sets its own action for sig: when it is one corun uses (the
 * dump signal, the detector's SIGRTMAX-1), corun gives it up, says so once,
 * and the detector stops interrupting threads. */
void inspect_signal_taken(int sig);

/* Name of a wait kind ("read", "mutex", ...). */
const char *inspect_wait_name(int kind);

#endif
