# The classic gevent crawler, unmodified Python: N threads fetch N URLs with
# urllib. Prints "ok=N secs=S threads=T" (T: OS threads while all run).
import os
import sys
import threading
import time
import urllib.request

from corun_tasks import os_threads

port, n = int(sys.argv[1]), int(sys.argv[2])
results = [None] * n


def fetch(i):
    url = f"http://127.0.0.1:{port}/{i}"
    results[i] = urllib.request.urlopen(url, timeout=30).read().decode()


start = time.monotonic()
threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
threads_used = os_threads()
for t in threads:
    t.join()
ok = sum(1 for i in range(n) if results[i] == f"ok /{i}")
print(f"ok={ok} secs={time.monotonic() - start:.2f} threads={threads_used}")
