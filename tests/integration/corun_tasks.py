"""The OS threads of this process that may run its threads: all but corun's
helpers (its monitor of blocking calls and spare OS threads waiting for
work), which run none of the program's threads."""
import os


def os_threads():
    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                n += f.read().strip() not in ("corun-monitor", "corun-spare")
        except OSError:
            pass
    return n
