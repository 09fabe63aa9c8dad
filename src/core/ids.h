/* The process's user and group ids, changed on every kernel thread.
 *
 * The kernel keeps ids per thread; POSIX wants them per process, so
 * glibc's setuid family asks each thread it made (its own list) to make
 * the same call, with its SIGSETXID. Under corun that list is wrong both
 * ways: green threads have TCBs glibc does not list (a green thread's
 * setuid signals the OS thread of main's TCB, where glibc finds not the
 * TCB it named and waits for good, or, with no real thread made yet, no
 * handler at all: "Unknown signal 33"), and corun's workers, monitor and
 * spares must change too, or a green thread moving there runs with the old
 * ids. So the hooks of the family come here: every kernel thread of the
 * process (as /proc lists them) makes the call, then the call returns.
 */
#ifndef CR_IDS_H
#define CR_IDS_H

#include <sys/types.h>

/* The system call nr (setuid, setgid, setreuid, setregid, setresuid,
 * setresgid, setgroups) with its arguments, made on every kernel thread of
 * the process: 0, or -1 with errno (the kernel's, the same on every
 * thread). */
int ids_set_all(long nr, long a, long b, long c);

/* seteuid/setegid: nr (setresuid, setresgid) with only the effective id
 * changed; EINVAL for -1, as glibc's. */
int ids_set_effective(long nr, long id);

/* initgroups(3) through ids_set_all. */
int ids_initgroups(const char *user, gid_t group);

/* fork's child: no change in progress there. */
void ids_fork_child(void);

#endif
