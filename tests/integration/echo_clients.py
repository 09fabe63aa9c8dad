#!/usr/bin/env python3
"""Clients of an echo server (tests/integration/jvm.sh): `echo_clients.py
PORT CONNS BYTES` opens CONNS connections to 127.0.0.1:PORT, all at once
(a barrier holds the first bytes until every one is connected), sends BYTES
random bytes on each in chunks of varied size, reads each chunk's echo back
and compares it, then closes. Prints "conns=N bytes=B errors=E"; exit
status 0 only if every byte came back."""
import os
import socket
import sys
import threading

port, conns, total = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
barrier = threading.Barrier(conns)
lock = threading.Lock()
errors = []
echoed = [0]


def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError as e:
        with lock:
            errors.append(f"connection {i}: connect: {e}")
        barrier.abort()
        return
    with s:
        try:
            barrier.wait(timeout=30)
            sent = 0
            k = 0
            while sent < total:
                n = min(total - sent, 1 + (i * 7919 + k * 104729) % 16384)
                data = os.urandom(n)
                s.sendall(data)
                got = b""
                while len(got) < n:
                    part = s.recv(n - len(got))
                    if not part:
                        raise OSError(f"closed after {sent + len(got)} bytes")
                    got += part
                if got != data:
                    raise OSError(f"chunk {k} came back different")
                sent += n
                k += 1
            with lock:
                echoed[0] += sent
        except (OSError, threading.BrokenBarrierError) as e:
            with lock:
                errors.append(f"connection {i}: {e!r}")


threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for e in errors[:5]:
    print(e, file=sys.stderr)
print(f"conns={conns} bytes={echoed[0]} errors={len(errors)}")
sys.exit(1 if errors or echoed[0] != conns * total else 0)
