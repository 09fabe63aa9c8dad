/* How a test program is run by the drivers (preload_run.h). */
#ifndef CORUN_PRELOAD_HOW_H
#define CORUN_PRELOAD_HOW_H

/* PT_PRELOAD: libcorun preloaded, CORUN_THREADS unset (or as `extra` says). */
enum pt_how { PT_GREEN, PT_NATIVE, PT_PLAIN, PT_PRELOAD };

#endif
