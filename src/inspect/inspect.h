/* Seeing inside: CORUN_STATS figures, the blocking detector
 * (CORUN_BLOCK_WARN_MS) and the live dump (CORUN_DUMP_SIGNAL). This layer
 * sits beside the hooks, above the green layer: the core counts and keeps
 * its lists, and tells this layer of lifecycle events through its observer
 * registry; nothing below calls in here. */
#ifndef CR_INSPECT_H
#define CR_INSPECT_H

/* Name of a wait kind ("read", "mutex", ...). */
const char *inspect_wait_name(int kind);

#endif
