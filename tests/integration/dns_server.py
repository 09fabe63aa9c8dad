#!/usr/bin/env python3
"""A slow test DNS server (UDP) for tests/integration/dns.sh.

    dns_server.py ADDRESS PORT DELAY_SECONDS STATS_FILE

Every query is answered DELAY_SECONDS after it arrives, all of them
concurrently. Names (zone corun.test):
    h<N>.corun.test     A 10.0.<N / 256>.<N % 256>    (0 <= N < 65536)
    six.corun.test      AAAA fd00::7
    <y>.<x>.0.10.in-addr.arpa   PTR h<x*256+y>.corun.test
Anything else under those names gets an empty answer (NODATA); other names
NXDOMAIN. After each answer, STATS_FILE holds
"queries=Q max_outstanding=M" (M: most queries waiting at once).
Prints "ready" once bound.
"""
import asyncio
import ipaddress
import struct
import sys

A, PTR, AAAA = 1, 12, 28


def parse_question(data):
    """(id, flags, qname labels, qtype, qclass, end offset of the question)."""
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount < 1:
        raise ValueError("no question")
    pos, labels = 12, []
    while True:
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(data[pos:pos + n].decode("ascii").lower())
        pos += n
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return qid, flags, labels, qtype, qclass, pos + 4


def encode_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def answer_for(labels, qtype):
    """(rcode, [(type, rdata)])"""
    name = ".".join(labels)
    if len(labels) == 3 and labels[1:] == ["corun", "test"]:
        host = labels[0]
        if host.startswith("h") and host[1:].isdigit() and int(host[1:]) < 65536:
            n = int(host[1:])
            if qtype == A:
                return 0, [(A, bytes([10, 0, n >> 8, n & 255]))]
            return 0, []
        if host == "six":
            if qtype == AAAA:
                return 0, [(AAAA, ipaddress.IPv6Address("fd00::7").packed)]
            return 0, []
        return 3, []
    if len(labels) == 6 and labels[2:] == ["0", "10", "in-addr", "arpa"]:
        try:
            y, x = int(labels[0]), int(labels[1])
        except ValueError:
            return 3, []
        if qtype == PTR and 0 <= x < 256 and 0 <= y < 256:
            return 0, [(PTR, encode_name("h%d.corun.test" % (x * 256 + y)))]
        return 0, []
    return 3, []


def reply(data):
    qid, flags, labels, qtype, qclass, end = parse_question(data)
    rcode, answers = answer_for(labels, qtype)
    rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode   # QR AA RD RA
    out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + data[12:end]
    for rtype, rdata in answers:
        out += struct.pack("!HHHIH", 0xC00C, rtype, 1, 60, len(rdata)) + rdata
    return out


class Server(asyncio.DatagramProtocol):
    def __init__(self, delay, stats):
        self.delay, self.stats = delay, stats
        self.queries = self.outstanding = self.max_outstanding = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            out = reply(data)
        except (ValueError, IndexError, struct.error, UnicodeDecodeError):
            return
        self.queries += 1
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        asyncio.get_running_loop().call_later(self.delay, self.send, out, addr)

    def send(self, out, addr):
        self.outstanding -= 1
        self.transport.sendto(out, addr)
        with open(self.stats, "w") as f:
            f.write("queries=%d max_outstanding=%d\n" % (self.queries, self.max_outstanding))


async def main():
    if len(sys.argv) != 5:
        sys.exit("usage: dns_server.py ADDRESS PORT DELAY_SECONDS STATS_FILE")
    addr, port, delay, stats = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Server(delay, stats), local_addr=(addr, port))
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
