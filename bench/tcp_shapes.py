"""Captures of several shapes for bench_tcp.py (and the speedups' agreement tests), written record by record.

Each shape writes a classic pcap of about ``packets`` frames with struct
directly (about a million frames in a few seconds), from scripted
connections run side by side:

  short    many short echo connections: handshake, five request/echo rounds, close;
           one in 40 retransmits a request, one in 97 sends a keep-alive, one in 50 ends with an RST
  bulk     four long transfers of full-size segments: delayed ACKs, losses answered by
           duplicate ACKs with SACK blocks and fast retransmissions, now and then an RTO retransmission
  idle     20,000 idle connections with keep-alives every 45 s; one in 100 peers has crashed
           (its probes go unanswered, then the client resets), one in 10 exchanges a line each round
  vxlan    the short shape inside VXLAN (outer Ethernet, IPv4, UDP 4789), as an overlay network carries it

    python bench/tcp_shapes.py SHAPE PACKETS FILE
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
_M = 0xFFFFFFFF
_REC = struct.Struct("<IIII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_ETH = bytes.fromhex("0200000000020200000000030800")
_OUTER_ETH = bytes.fromhex("0200000000aa0200000000bb0800")
_VXLAN = bytes.fromhex("0800000000002a00")  # VNI 42
_SYN_OPTS = bytes.fromhex("020405b40402080a000000010000000001030307")  # mss, sackOK, TS, nop, wscale
_TS = bytes.fromhex("0101080a0000000200000001")
SERVER = bytes([10, 0, 0, 2])

# One step of a connection's script: (from_client, seq offset, ack offset, flags, payload length, options)
Step = tuple[int, int, int, int, int, bytes]


def _tcp_ip(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, plen: int, opts: bytes
) -> bytes:
    thl = 20 + len(opts)
    ip = _IP.pack(0x45, 0, 20 + thl + plen, 0, 0x4000, 64, 6, 0, src, dst)
    return ip + _TCP.pack(sport, dport, seq & _M, ack & _M, (thl // 4) << 4, flags, 502, 0, 0) + opts


def _sack(left: int, right: int) -> bytes:
    return _TS + b"\x01\x01\x05\x0a" + struct.pack("!II", left & _M, right & _M)


class _Writer:
    """Writes frames as pcap records with a clock; tunnel=True wraps each in VXLAN."""

    def __init__(self, f, tunnel: bool, step_us: int) -> None:  # noqa: ANN001
        self.f = f
        self.tunnel = tunnel
        self.t_us = 1_700_000_000 * 1_000_000
        self.step_us = step_us
        self.count = 0
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def frame(self, packet: bytes, plen: int) -> None:
        inner = _ETH + packet + b"x" * plen
        if self.tunnel:
            udp = _UDP.pack(49152 + self.count % 1000, 4789, 8 + 8 + len(inner), 0)
            outer_ip = _IP.pack(0x45, 0, 20 + 8 + 8 + len(inner), 0, 0x4000, 64, 17, 0,
                                bytes([192, 168, 0, 1]), bytes([192, 168, 0, 2]))
            inner = _OUTER_ETH + outer_ip + udp + _VXLAN + inner
        self.t_us += self.step_us
        self.f.write(_REC.pack(self.t_us // 1_000_000, self.t_us % 1_000_000, len(inner), len(inner)))
        self.f.write(inner)
        self.count += 1


def _echo_script(n: int, rounds: int = 5) -> list[Step]:
    steps: list[Step] = [(1, 0, 0, SYN, 0, _SYN_OPTS), (0, 0, 1, SYN | ACK, 0, _SYN_OPTS), (1, 1, 1, ACK, 0, _TS)]
    c = s = 1
    for r in range(rounds):
        steps.append((1, c, s, PSH | ACK, 20, _TS))
        if n % 40 == 0 and r == 1:  # a lost request, retransmitted
            steps.append((1, c, s, PSH | ACK, 20, _TS))
        c += 20
        steps += [(0, s, c, ACK, 0, _TS), (0, s, c, PSH | ACK, 20, _TS)]
        s += 20
        steps.append((1, c, s, ACK, 0, _TS))
        if n % 97 == 0 and r == 2:  # an idle moment: a keep-alive and its reply
            steps += [(1, c - 1, s, ACK, 0, _TS), (0, s, c, ACK, 0, _TS)]
    if n % 50 == 0:  # the server's process died with unread data: RST
        return steps + [(1, c, s, PSH | ACK, 20, _TS), (0, s, c + 20, RST | ACK, 0, b"")]
    return steps + [(1, c, s, FIN | ACK, 0, _TS), (0, s, c + 1, ACK, 0, _TS), (0, s, c + 1, FIN | ACK, 0, _TS),
                    (1, c + 1, s + 1, ACK, 0, _TS)]


def _interleave(w: _Writer, packets: int, scripts: Callable[[int], Iterator[Step]], concurrent: int) -> None:
    """Run `concurrent` connections side by side, one step of each in turn, new ones as old ones end."""
    active: list[list] = []
    conn_no = 0
    while w.count < packets:
        while len(active) < concurrent:
            conn_no += 1
            client = bytes([10, 1 + (conn_no >> 16) % 200, (conn_no >> 8) & 0xFF, conn_no & 0xFF])
            port = 32768 + conn_no % 28000
            isn_c = (conn_no * 2654435761) & _M
            isn_s = (conn_no * 40503 + 12345) & _M
            active.append([client, port, isn_c, isn_s, scripts(conn_no)])
        for a in list(active):
            client, port, isn_c, isn_s, steps = a
            step = next(steps, None)
            if step is None:
                active.remove(a)
                continue
            from_client, so, ao, flags, plen, opts = step
            if from_client:
                ack = isn_s + ao if flags & ACK else 0
                pkt = _tcp_ip(client, SERVER, port, 9877, isn_c + so, ack, flags, plen, opts)
            else:
                pkt = _tcp_ip(SERVER, client, 9877, port, isn_s + so, isn_c + ao, flags, plen, opts)
            w.frame(pkt, plen)
            if w.count >= packets:
                return


def short(path: str | Path, packets: int, tunnel: bool = False) -> int:
    with open(path, "wb", buffering=1 << 20) as f:
        w = _Writer(f, tunnel, 37)
        _interleave(w, packets, lambda n: iter(_echo_script(n)), 64)
    return w.count


def vxlan(path: str | Path, packets: int) -> int:
    return short(path, packets, tunnel=True)


def _bulk_script(n: int) -> Iterator[Step]:
    mss = 1448
    yield from [(1, 0, 0, SYN, 0, _SYN_OPTS), (0, 0, 1, SYN | ACK, 0, _SYN_OPTS), (1, 1, 1, ACK, 0, _TS)]
    c = 1
    k = 0
    while True:
        k += 1
        if k % 397 == 0:  # a lost segment: the receiver SACKs what follows, three duplicate ACKs, a fast retransmission
            lost = c
            c += mss
            for _ in range(3):
                yield (1, c, 1, ACK | PSH, mss, _TS)
                c += mss
                yield (0, 1, lost, ACK, 0, _sack(lost + mss, c))
            yield (1, lost, 1, ACK, mss, _TS)
            yield (0, 1, c, ACK, 0, _TS)
        elif k % 1999 == 0:  # an RTO: the same segment again, later
            yield (1, c, 1, ACK, mss, _TS)
            yield (1, c, 1, ACK, mss, _TS)
            c += mss
            yield (0, 1, c, ACK, 0, _TS)
        else:
            yield (1, c, 1, ACK, mss, _TS)
            c += mss
            yield (1, c, 1, ACK | PSH, mss, _TS)
            c += mss
            yield (0, 1, c, ACK, 0, _TS)


def bulk(path: str | Path, packets: int) -> int:
    with open(path, "wb", buffering=1 << 22) as f:
        w = _Writer(f, False, 2)
        _interleave(w, packets - 16, _bulk_script, 4)
        for port in range(4):  # the four transfers stop: RSTs from the clients (a closed benchmark, Ctrl-C)
            client = bytes([10, 1, 0, port + 1])
            w.frame(_tcp_ip(client, SERVER, 32769 + port, 9877, 0, 0, RST, 0, b""), 0)
    return w.count


def idle(path: str | Path, packets: int, conns: int = 20_000) -> int:
    """Every connection opens, then keep-alive rounds 45 s apart until the count is reached."""
    conns = max(1, min(conns, packets // 10))
    with open(path, "wb", buffering=1 << 20) as f:
        w = _Writer(f, False, 50)
        ends = []
        for n in range(conns):
            client = bytes([10, 2 + (n >> 16), (n >> 8) & 0xFF, n & 0xFF])
            port = 40000 + n % 20000
            isn_c, isn_s = (n * 2654435761) & _M, (n * 40503 + 7) & _M
            ends.append([client, port, isn_c, isn_s, 1, 1, True])
            w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c, 0, SYN, 0, _SYN_OPTS), 0)
            w.frame(_tcp_ip(SERVER, client, 9877, port, isn_s, isn_c + 1, SYN | ACK, 0, _SYN_OPTS), 0)
            w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + 1, isn_s + 1, ACK, 0, _TS), 0)
        rnd = 0
        while w.count < packets:
            rnd += 1
            w.t_us += 45_000_000
            for n, e in enumerate(ends):
                client, port, isn_c, isn_s, c, s, alive = e
                if alive is None:
                    continue
                if n % 100 == 0 and rnd > 3:  # the server host crashed: probes unanswered, then the client resets
                    w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + c - 1, isn_s + s, ACK, 0, _TS), 0)
                    if rnd == 12:
                        w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + c, isn_s + s, RST | ACK, 0, b""), 0)
                        e[6] = None
                elif n % 10 == 0:  # a line and its echo
                    w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + c, isn_s + s, PSH | ACK, 0, _TS), 12)
                    c += 12
                    w.frame(_tcp_ip(SERVER, client, 9877, port, isn_s + s, isn_c + c, PSH | ACK, 0, _TS), 12)
                    s += 12
                    w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + c, isn_s + s, ACK, 0, _TS), 0)
                    e[4], e[5] = c, s
                else:  # a keep-alive probe and its reply
                    w.frame(_tcp_ip(client, SERVER, port, 9877, isn_c + c - 1, isn_s + s, ACK, 0, _TS), 0)
                    w.frame(_tcp_ip(SERVER, client, 9877, port, isn_s + s, isn_c + c, ACK, 0, _TS), 0)
                if w.count >= packets:
                    break
    return w.count


SHAPES: dict[str, Callable[[str | Path, int], int]] = {"short": short, "bulk": bulk, "idle": idle, "vxlan": vxlan}


if __name__ == "__main__":
    shape, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(SHAPES[shape](out, count))
