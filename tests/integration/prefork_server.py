"""A prefork server: listen, fork 4 workers that accept and answer each
connection in a thread of their own ("<worker pid> <threads> <what was sent>").
The parent waits for its workers. Run under coro-run by processes.sh."""
import os
import socket
import sys
import threading

from corun_tasks import os_threads

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(128)
print("port", ls.getsockname()[1], flush=True)


def serve(c):
    with c:
        data = c.recv(100)
        threads = os_threads()
        c.sendall(b"%d %d %s" % (os.getpid(), threads, data))


kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while True:
            c, _ = ls.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    kids.append(pid)
print("workers", *kids, flush=True)
for k in kids:
    os.waitpid(k, 0)
