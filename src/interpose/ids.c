/* Hooks: the setuid family. The ids are the process's: each call is made
 * on every kernel thread of the process (src/core/ids.c), as glibc does
 * for the threads it made, which under corun are not the program's. */
#include <errno.h>
#include <grp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gate.h"
#include "ids.h"

HOOK int setuid(uid_t uid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setuid, uid, 0, 0);
}

HOOK int setgid(gid_t gid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setgid, gid, 0, 0);
}

HOOK int setreuid(uid_t ruid, uid_t euid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setreuid, ruid, euid, 0);
}

HOOK int setregid(gid_t rgid, gid_t egid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setregid, rgid, egid, 0);
}

HOOK int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setresuid, ruid, euid, suid);
}

HOOK int setresgid(gid_t rgid, gid_t egid, gid_t sgid)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setresgid, rgid, egid, sgid);
}

/* glibc's seteuid/setegid: setresuid/setresgid with the others left, and
 * EINVAL for -1. */
HOOK int seteuid(uid_t euid)
{
    CATCH_HOLD();
    if (euid == (uid_t)-1) {
        errno = EINVAL;
        return -1;
    }
    return ids_set_all(SYS_setresuid, (uid_t)-1, euid, (uid_t)-1);
}

HOOK int setegid(gid_t egid)
{
    CATCH_HOLD();
    if (egid == (gid_t)-1) {
        errno = EINVAL;
        return -1;
    }
    return ids_set_all(SYS_setresgid, (gid_t)-1, egid, (gid_t)-1);
}

HOOK int setgroups(size_t n, const gid_t *list)
{
    CATCH_HOLD();
    return ids_set_all(SYS_setgroups, (long)n, (long)list, 0);
}

/* glibc's calls setgroups inside libc, below the hooks. */
HOOK int initgroups(const char *user, gid_t group)
{
    CATCH_HOLD();
    return ids_initgroups(user, group);
}
