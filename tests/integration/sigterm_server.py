"""A thread-per-connection server that stops on SIGTERM: the handler sets a
flag and raises in the main thread, whose accept() the signal interrupts;
then it closes the connections its threads are parked on and joins them."""
import signal
import socket
import sys
import threading


class Stop(Exception):
    pass


def on_term(sig, frame):
    raise Stop()


signal.signal(signal.SIGTERM, on_term)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print("port", ls.getsockname()[1], flush=True)
conns, workers = [], []


def serve(c):
    try:
        while True:
            data = c.recv(100)
            if not data:
                break
            c.sendall(data)
    except OSError:
        pass


try:
    while True:
        c, _ = ls.accept()
        conns.append(c)
        t = threading.Thread(target=serve, args=(c,))
        t.start()
        workers.append(t)
except Stop:
    for c in conns:
        c.shutdown(socket.SHUT_RDWR)
    for t in workers:
        t.join()
    print("stopped cleanly after", len(workers), "connections", flush=True)
    sys.exit(3)
