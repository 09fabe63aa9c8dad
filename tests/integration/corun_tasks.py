"""The OS threads of this process that may run its threads: all but corun's
helpers (its monitor of blocking calls, spare OS threads waiting for work,
and libuv's pool, which runs offloaded calls: a file read that would wait
for the disk starts it) and io_uring's kernel workers, which run none of
the program's threads."""
import os

HELPERS = ("corun-monitor", "corun-spare", "corun-pool", "libuv-worker")


def os_thread_names():
    """The names of the OS threads counted by os_threads()."""
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name not in HELPERS and not name.startswith(("iou-wrk-", "iou-sqp-")):
            names.append(name)
    return names


def os_threads():
    return len(os_thread_names())
