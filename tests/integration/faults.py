# Faulty peers, in plain Python threads. Prints one "NAME: ok ..." or
# "NAME: FAIL ..." line per check; exits 1 if any failed.
#
#   faults.py peers PORT   misbehaving clients of an echo server at PORT:
#                          stalled (slowloris) connections held open while
#                          well-behaved clients are served, resets mid-stream,
#                          half-closes that must still get every byte back.
#   faults.py local        both ends in this process (run it under coro-run):
#                          close() or shutdown() from another thread while one
#                          waits in recv()/accept(), a peer resetting a
#                          blocked sender, a receive timeout on a stalled peer.
import os
import socket
import struct
import sys
import threading
import time

from corun_tasks import os_thread_names

failed = False


def report(name, ok, detail=""):
    global failed
    failed |= not ok
    print(f"{name}: {'ok' if ok else 'FAIL'} {detail}".rstrip(), flush=True)


def run_threads(fns, limit):
    """Run each fn in a thread; return True when all ended within limit s."""
    ts = [threading.Thread(target=f, daemon=True) for f in fns]
    for t in ts:
        t.start()
    end = time.monotonic() + limit
    for t in ts:
        t.join(max(0.0, end - time.monotonic()))
    return not any(t.is_alive() for t in ts)


def payload(seed, n):
    return (bytes(range(256)) * (n // 256 + 1))[seed % 256:][:n]


def recv_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def reset(s):
    """Close with an RST instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# ---- misbehaving clients of a server --------------------------------------------------
def peers(port):
    addr = ("127.0.0.1", port)

    # Slowloris: connections that send one byte, then nothing, held open.
    stalled = [socket.create_connection(addr) for _ in range(50)]
    for s in stalled:
        s.sendall(b"x")

    # Well-behaved clients must still be served while those stall.
    good = [0]
    lock = threading.Lock()

    def good_client(i):
        def run():
            data = payload(i, 100_000)
            with socket.create_connection(addr) as s:
                s.settimeout(20)
                sender = threading.Thread(target=s.sendall, args=(data,))
                sender.start()
                got = bytearray()
                while len(got) < len(data):
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                sender.join()
            if bytes(got) == data:
                with lock:
                    good[0] += 1
        return run

    t0 = time.monotonic()
    done = run_threads([good_client(i) for i in range(20)], 30)
    secs = time.monotonic() - t0
    report("slowloris", done and good[0] == 20,
           f"20 clients x 100 kB echoed right: {good[0]}, in {secs:.2f} s, beside 50 stalled connections")

    # Resets mid-stream: the server's thread is blocked writing back what we
    # do not read (or reading what we no longer send) when the RST arrives.
    def resetter(i):
        def run():
            s = socket.create_connection(addr)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(1)
            try:
                s.sendall(payload(i, 2_000_000))   # fills both directions' buffers
            except (socket.timeout, OSError):
                pass
            reset(s)
        return run
    report("reset mid-stream", run_threads([resetter(i) for i in range(20)], 30),
           "20 connections reset with data in flight both ways")

    # Half-close: send, shut down our sending side, every byte must come back
    # followed by EOF.
    halves = [0]

    def half(i):
        def run():
            data = payload(i, 300_000)
            with socket.create_connection(addr) as s:
                s.settimeout(20)

                def send():
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                got = recv_all(s)
                sender.join()
            if got == data:
                with lock:
                    halves[0] += 1
        return run
    done = run_threads([half(i) for i in range(20)], 30)
    report("half-close", done and halves[0] == 20,
           f"20 clients x 300 kB then SHUT_WR: {halves[0]} got every byte then EOF")

    for s in stalled:
        s.close()


# ---- both ends in this process --------------------------------------------------------
def waiter(fn):
    """Start fn in a thread; returns (thread, result list: value or exception)."""
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as e:       # the outcome under test
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def local():
    # close() from another thread while one waits in recv(): corun wakes the
    # waiter with EBADF (natively Linux would leave it blocked forever).
    a, b = socket.socketpair()
    t, out = waiter(lambda: a.recv(10))
    time.sleep(0.2)
    a.close()
    t.join(5)
    report("close while in recv", not t.is_alive() and isinstance(out[0], OSError),
           f"the waiter got {out[0]!r}" if out else "the waiter is still blocked")
    b.close()

    # The same for a thread waiting in accept().
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    t, out = waiter(lambda: lst.accept())
    time.sleep(0.2)
    lst.close()
    t.join(5)
    report("close while in accept", not t.is_alive() and isinstance(out[0], OSError),
           f"the waiter got {out[0]!r}" if out else "the waiter is still blocked")

    # shutdown() from another thread: the waiter sees EOF (as natively).
    a, b = socket.socketpair()
    t, out = waiter(lambda: a.recv(10))
    time.sleep(0.2)
    a.shutdown(socket.SHUT_RDWR)
    t.join(5)
    report("shutdown while in recv", not t.is_alive() and out == [b""],
           f"the waiter got {out[0]!r}" if out else "the waiter is still blocked")
    a.close()
    b.close()

    # A peer resets while a thread is blocked sending to it.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    c = socket.create_connection(lst.getsockname())
    s, _ = lst.accept()
    t, out = waiter(lambda: c.sendall(b"x" * 50_000_000))
    time.sleep(0.3)
    s.recv(1000)                     # some arrived: the stream is mid-way
    reset(s)
    t.join(5)
    report("peer reset while sending",
           not t.is_alive() and isinstance(out[0], (ConnectionResetError, BrokenPipeError)),
           f"the sender got {out[0]!r}" if out else "the sender is still blocked")
    c.close()
    lst.close()

    # A stalled peer and a receive timeout: the timeout fires, and other
    # threads ran meanwhile.
    a, b = socket.socketpair()
    a.settimeout(0.3)
    ticks = [0]
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            time.sleep(0.01)
            ticks[0] += 1
    ticker = threading.Thread(target=tick)
    ticker.start()
    t0 = time.monotonic()
    t, out = waiter(lambda: a.recv(10))
    t.join(5)
    secs = time.monotonic() - t0
    stop.set()
    ticker.join()
    report("timeout on a stalled peer",
           not t.is_alive() and isinstance(out[0], socket.timeout) and 0.25 <= secs < 5 and ticks[0] >= 5,
           f"{out[0]!r} after {secs:.2f} s, {ticks[0]} ticks of another thread meanwhile"
           if out else "the waiter is still blocked")
    a.close()
    b.close()
    names = os_thread_names()
    print(f"os_threads={len(names)} ({', '.join(sorted(names))})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["peers"] and len(sys.argv) == 3:
        peers(int(sys.argv[2]))
    elif sys.argv[1:] == ["local"]:
        local()
    else:
        print("usage: faults.py peers PORT | faults.py local", file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if failed else 0)
