/* Hooks: the setuid family. The ids are the process's: each call is made
 * on every kernel thread of the process (src/core/ids.c), as glibc does
 * for the threads it made, which under corun are not the program's. */
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

HOOK int seteuid(uid_t euid)
{
    CATCH_HOLD();
    return ids_set_effective(SYS_setresuid, euid);
}

HOOK int setegid(gid_t egid)
{
    CATCH_HOLD();
    return ids_set_effective(SYS_setresgid, egid);
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
