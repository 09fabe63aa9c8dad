# One thread waits in flock() (a lock another process holds for 0.5 s: a
# call corun cannot turn into a wait, so its OS thread blocks) while eight
# threads tick every 5 ms. Prints "rc=0 waited=W worst_gap_ms=G": with
# several OS threads, the ticks beside the blocked thread go on once
# another OS thread takes over its threads (CORUN_HANDOFF_MS), so G stays
# far below the 500 ms of the call.
import fcntl
import os
import subprocess
import sys
import threading
import time

path = sys.argv[1]
holder = subprocess.Popen(["flock", path, "-c", "echo held; sleep 0.5"],
                          stdout=subprocess.PIPE)
holder.stdout.readline()                 # it has the lock
stop = False
gaps = []


def ticker():
    worst = 0.0
    last = time.monotonic()
    while not stop:
        time.sleep(0.005)
        now = time.monotonic()
        worst = max(worst, now - last)
        last = now
    gaps.append(worst)


tickers = [threading.Thread(target=ticker) for _ in range(8)]
for t in tickers:
    t.start()
time.sleep(0.05)
waited = []


def blocker():
    fd = os.open(path, os.O_RDWR)
    start = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_EX)
    waited.append(time.monotonic() - start)
    os.close(fd)


b = threading.Thread(target=blocker)
b.start()
b.join()
stop = True
for t in tickers:
    t.join()
rc = holder.wait()
print(f"rc={rc} waited={waited[0]:.2f} worst_gap_ms={max(gaps) * 1000:.0f}")
