# A thread parks in recv() while others run subprocesses (Python's vfork +
# close_fds path): the children's closes must not touch the parent's waiter.
# Prints "reader got b'hello'" when right.
import socket
import subprocess
import threading
import time

a, b = socket.socketpair()
got = []


def reader():
    try:
        got.append(a.recv(10))
    except OSError as e:
        got.append(e)


t = threading.Thread(target=reader)
t.start()
time.sleep(0.1)                      # the reader is parked on the socket now
for i in range(5):
    subprocess.run(["true"], close_fds=True)
b.send(b"hello")
t.join(10)
print("reader got", got[0] if got else "nothing", "(still waiting)" if t.is_alive() else "")
