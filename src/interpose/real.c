#include "real.h"

#include <dlfcn.h>

#include "diag.h"

void *real_resolve(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        diag_fatal("cannot find the C library's %s: %s", name, dlerror());
    return p;
}

void *real_resolve_version(const char *name, const char *version)
{
    void *p = dlvsym(RTLD_NEXT, name, version);
    if (!p)
        diag_fatal("cannot find the C library's %s@%s: %s", name, version, dlerror());
    return p;
}
