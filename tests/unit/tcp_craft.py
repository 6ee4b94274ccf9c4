"""Crafting TCP captures with scapy for the netbed.tcp unit tests.

A Conversation tracks both sides' sequence numbers so that a test writes
only what matters ("the client sends 5 bytes", "that segment is lost",
"the server retransmits it"), and writers put the packets into pcap or
pcapng files with any byte order, timestamp resolution and link type.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, PcapWriter

M = 1 << 32
CLIENT = ("10.0.0.3", 40000)
SERVER = ("10.0.0.2", 9877)
NAMES = {"10.0.0.3": "cli", "10.0.0.2": "srv"}
T0 = 1_700_000_000.0

LINKTYPES = {"ether": 1, "sll": 113, "sll2": 276, "raw": 101, "ppp": 9, "ppp-hdlc": 50, "ipoib": 242}
TUNNELS = ("pppoe", "mpls", "ipip", "gre", "gre-ether", "vxlan", "geneve", "l2tp")
"""Ways the TCP/IP packet can travel inside an Ethernet frame, as captures made on real links carry it."""


def other(who: str) -> str:
    return "server" if who == "client" else "client"


class Conversation:
    """Both ends of one TCP connection; every send() appends a scapy packet (IP layer up).

    Sequence numbers advance by themselves; pass seq= to send old data again
    (a retransmission; snd then stays as it was) and lost=True for a segment
    the peer never gets (it is still captured, as on a bridge).
    """

    def __init__(
        self,
        client: tuple[str, int] = CLIENT,
        server: tuple[str, int] = SERVER,
        isn_client: int = 1000,
        isn_server: int = 5000,
        t0: float = T0,
        ipv6: bool = False,
        packets: list[Packet] | None = None,
    ) -> None:
        self.addr = {"client": client, "server": server}
        self.snd = {"client": isn_client % M, "server": isn_server % M}  # next sequence number to send
        self.rcv: dict[str, int] = {"client": 0, "server": 0}  # next sequence number expected from the peer
        self.t = t0
        self.ipv6 = ipv6
        self.packets: list[Packet] = packets if packets is not None else []

    def send(
        self,
        who: str,
        flags: str,
        data: bytes | int = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        win: int = 502,
        options: list | None = None,
        dt: float = 0.001,
        lost: bool = False,
    ) -> Packet:
        """Append one segment from who ('client' or 'server'); dt is seconds since the previous packet."""
        if isinstance(data, int):
            data = b"x" * data
        self.t += dt
        peer = other(who)
        s = self.snd[who] if seq is None else seq % M
        if ack is None:
            a = self.rcv[who] if "A" in flags else 0
        else:
            a = ack % M
        (sip, sport), (dip, dport) = self.addr[who], self.addr[peer]
        ip = IPv6(src=sip, dst=dip) if self.ipv6 else IP(src=sip, dst=dip)
        pkt = ip / TCP(sport=sport, dport=dport, seq=s, ack=a, flags=flags, window=win, options=options or [])
        if data:
            pkt = pkt / Raw(data)
        pkt.time = self.t
        self.packets.append(pkt)
        used = len(data) + ("S" in flags) + ("F" in flags)
        end = (s + used) % M
        if seq is None:  # with an explicit seq, the caller keeps snd as it wants it
            self.snd[who] = end
        if not lost and "R" not in flags:
            if "S" in flags or s == self.rcv[peer]:
                self.rcv[peer] = end
        return pkt

    # the usual exchanges, so that tests read like the book
    def handshake(self, rtt: float = 0.0002) -> None:
        self.send("client", "S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        self.send("server", "SA", dt=rtt / 2, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        self.send("client", "A", dt=rtt / 2)

    def echo(self, data: bytes = b"hello\n") -> None:
        self.send("client", "PA", data)
        self.send("server", "A", dt=0.0001)
        self.send("server", "PA", data, dt=0.0001)
        self.send("client", "A", dt=0.0001)

    def close(self, first: str = "client", ack_rides: bool = False) -> None:
        second = other(first)
        self.send(first, "FA")
        if ack_rides:
            self.send(second, "FA", dt=0.0001)
        else:
            self.send(second, "A", dt=0.0001)
            self.send(second, "FA", dt=0.05)
        self.send(first, "A", dt=0.0001)


# --- link layers and writers ----------------------------------------------------------------


def frame(pkt: Packet, link: str) -> Packet:
    """The IP packet wrapped in a link-layer header."""
    proto = 0x86DD if IPv6 in pkt else 0x0800
    if link == "ether":
        out = Ether(src="02:42:0a:00:00:03", dst="02:42:0a:00:00:02", type=proto) / pkt
    elif link == "sll":
        out = (
            CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\x42\x0a\x00\x00\x03\x00\x00", proto=proto)
            / pkt
        )
    elif link == "sll2":
        out = (
            CookedLinuxV2(
                proto=proto, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6, src=b"\x02\x42\x0a\x00\x00\x03\x00\x00"
            )
            / pkt
        )
    elif link == "raw":
        out = pkt
    elif link in ("ppp", "ppp-hdlc"):  # address and control, then the protocol: 0x21 IPv4, 0x57 IPv6
        out = Raw(b"\xff\x03" + struct.pack("!H", 0x57 if IPv6 in pkt else 0x21)) / pkt
    elif link == "ipoib":  # Linux's header: destination and source hardware addresses, type, reserved
        out = Raw(bytes(40) + struct.pack("!HH", proto, 0)) / pkt
    elif link in TUNNELS:
        out = Ether(src="02:42:0a:00:00:03", dst="02:42:0a:00:00:02") / _tunnel(pkt, link)
    else:
        raise ValueError(link)
    out.time = pkt.time
    return out


def _tunnel(pkt: Packet, how: str) -> Packet:
    """The IP packet inside a shim or tunnel; the outer addresses (TEST-NET-1) are the tunnel's own."""
    from scapy.contrib.geneve import GENEVE
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import GRE
    from scapy.layers.l2tp import L2TP
    from scapy.layers.ppp import PPP, PPPoE
    from scapy.layers.vxlan import VXLAN

    ppp_proto = 0x57 if IPv6 in pkt else 0x21
    outer = IP(src="192.0.2.1", dst="192.0.2.2")
    inner_ether = Ether(src="02:42:0a:00:00:13", dst="02:42:0a:00:00:12", type=0x86DD if IPv6 in pkt else 0x0800)
    if how == "pppoe":
        return PPPoE(sessionid=7) / PPP(proto=ppp_proto) / pkt
    if how == "mpls":
        return MPLS(label=16, s=0) / MPLS(label=17, s=1) / pkt
    if how == "ipip":
        return outer / pkt
    if how == "gre":  # with a key and a sequence number, which lengthen the header
        return outer / GRE(key_present=1, key=5, seqnum_present=1, sequence_number=3) / pkt
    if how == "gre-ether":
        return outer / GRE(proto=0x6558) / inner_ether / pkt
    if how == "vxlan":
        return outer / UDP(sport=51234, dport=4789) / VXLAN(vni=42) / inner_ether / pkt
    if how == "geneve":
        return outer / UDP(sport=51234, dport=6081) / GENEVE(vni=42, proto=0x6558) / inner_ether / pkt
    if how == "l2tp":  # with the optional length and sequence numbers, and PPP's address and control bytes
        return (
            outer
            / UDP(sport=1701, dport=1701)
            / L2TP(hdr="length+sequence", tunnel_id=1, session_id=2, ns=0, nr=0)
            / PPP(b"\xff\x03" + struct.pack("!H", ppp_proto) + bytes(pkt))
        )
    raise ValueError(how)


def write_pcap(
    path: str | Path, packets: list[Packet], link: str = "ether", endian: str = "<", nano: bool = False
) -> Path:
    """A pcap file written by scapy's PcapWriter."""
    path = Path(path)
    w = PcapWriter(str(path), linktype=LINKTYPES.get(link, 1), endianness=endian, nano=nano, sync=True)
    for p in packets:
        w.write(frame(p, link))
    w.close()
    return path


def write_pcapng(
    path: str | Path, packets: list[Packet], link: str = "ether", endian: str = "<", tsresol: int = 6
) -> Path:
    """A pcapng file: scapy's PcapNgWriter for its own kind (little-endian, microseconds), else by hand."""
    path = Path(path)
    if endian == "<" and tsresol == 6 and link == "ether":
        w = PcapNgWriter(str(path))
        for p in packets:
            w.write(frame(p, link))
        w.close()
        return path
    blocks = [_block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    opts = struct.pack(endian + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(endian + "HH", 0, 0)
    blocks.append(_block(endian, 1, struct.pack(endian + "HHI", LINKTYPES[link], 0, 262144) + opts))
    for p in packets:
        raw = bytes(frame(p, link))
        ts = round(float(p.time) * 10**tsresol)
        body = struct.pack(endian + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(raw), len(raw)) + raw
        blocks.append(_block(endian, 6, body + b"\0" * (-len(raw) % 4)))
    path.write_bytes(b"".join(blocks))
    return path


def _block(endian: str, btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


# --- messy traffic for comparing with tshark ----------------------------------------------------


def messy(seed: int, n_conns: int = 3, port: int = 40000, t0: float = T0) -> list[Packet]:
    """Several interleaved-in-time connections with losses, duplicates, reordering, keep-alives,
    zero windows, SACK-free retransmissions, RSTs and FINs, from a seeded generator."""
    rng = random.Random(seed)
    packets: list[Packet] = []
    for k in range(n_conns):
        isn_c = rng.choice([rng.randrange(M), M - rng.randrange(1, 400), 1000])
        isn_s = rng.choice([rng.randrange(M), M - rng.randrange(1, 400), 7])
        start = t0 + k * rng.choice([0.0003, 0.05, 2.0])
        conv = Conversation(
            client=("10.0.0.3", port + k), isn_client=isn_c, isn_server=isn_s, t0=start, packets=packets
        )
        _messy_connection(conv, rng)
    packets.sort(key=lambda p: float(p.time))
    return packets


def _messy_connection(c: Conversation, rng: random.Random) -> None:
    if rng.random() < 0.85:
        if rng.random() < 0.2:  # the SYN goes unanswered first
            c.send("client", "S", lost=True)
            c.send("client", "S", seq=c.snd["client"] - 1, dt=1.0)
        else:
            c.send("client", "S")
        c.send("server", "SA", dt=rng.choice([0.0001, 0.002, 0.01]))
        c.send("client", "A", dt=0.0001)
    else:  # joined mid-stream
        c.rcv["client"] = c.snd["server"]
        c.rcv["server"] = c.snd["client"]
    for _ in range(rng.randrange(3, 14)):
        who = rng.choice(["client", "server"])
        peer = other(who)
        r = rng.random()
        dt = rng.choice([0.00005, 0.001, 0.004, 0.03, 0.3])
        n = rng.choice([1, 2, 10, 100, 1448])
        if r < 0.3:
            c.send(who, "PA", n, dt=dt)
            if rng.random() < 0.7:
                c.send(peer, "A", dt=0.0001)
        elif r < 0.42:  # lost, then retransmitted after a timeout, maybe twice
            s = c.snd[who]
            c.send(who, "PA", n, dt=dt, lost=True)
            for _ in range(rng.randrange(1, 3)):
                c.send(who, "PA", n, seq=s, dt=rng.choice([0.2, 0.4]), lost=True)
            c.send(who, "PA", n, seq=s, dt=0.4)
            c.rcv[peer] = (s + n) % M
            c.send(peer, "A", dt=0.0001)
        elif r < 0.5:  # lost, dup ACKs, fast retransmission
            s = c.snd[who]
            c.send(who, "PA", n, dt=dt, lost=True)
            c.send(who, "PA", n, dt=0.0001, lost=True)
            for _ in range(rng.randrange(1, 4)):
                c.send(peer, "A", dt=0.0001)
            c.send(who, "PA", n, seq=s, dt=rng.choice([0.0001, 0.03]))
            c.rcv[peer] = c.snd[who]
            c.send(peer, "A", dt=0.0001)
        elif r < 0.56:  # duplicate of the last data (spurious or out-of-order)
            s = c.snd[who]
            c.send(who, "PA", n, dt=dt)
            c.send(peer, "A", dt=0.0001)
            c.send(who, "PA", n, seq=s, dt=rng.choice([0.0001, 0.01]))
        elif r < 0.62:  # reordering: second segment captured first
            s = c.snd[who]
            c.send(who, "PA", n, seq=s + n, dt=dt, lost=True)
            c.send(who, "PA", n, seq=s, dt=rng.choice([0.0001, 0.01]))
            c.snd[who] = (s + 2 * n) % M
            c.rcv[peer] = c.snd[who]
            c.send(peer, "A", dt=0.0001)
        elif r < 0.72:  # keep-alive probes (0 or 1 byte) and their answers
            for _ in range(rng.randrange(1, 4)):
                c.send(who, "A", rng.choice([b"", b"\0"]), seq=c.snd[who] - 1, dt=rng.choice([1.0, 7.5]))
                if rng.random() < 0.8:
                    c.send(peer, "A", dt=0.0001)
        elif r < 0.8:  # zero window and probes
            c.send(peer, "A", win=0, dt=dt)
            for _ in range(rng.randrange(1, 3)):
                c.send(who, "A", b"z", seq=c.snd[who], dt=0.2, lost=True)
                c.send(peer, "A", win=0, dt=0.0001)
            c.send(peer, "A", win=502, dt=0.3)
            c.send(who, "PA", n, dt=0.0001)
        elif r < 0.86:  # window update, duplicate ACKs
            c.send(peer, "A", win=rng.choice([300, 502, 1000]), dt=dt)
            c.send(peer, "A", win=502, dt=0.0001)
        else:  # a segment from before the capture's view: ACKed unseen / lost
            c.snd[who] = (c.snd[who] + n) % M
            c.rcv[peer] = c.snd[who]
            c.send(who, "PA", 10, dt=dt)
            c.send(peer, "A", dt=0.0001)
    end = rng.random()
    if end < 0.4:
        c.close(rng.choice(["client", "server"]), ack_rides=rng.random() < 0.5)
    elif end < 0.5:  # simultaneous close
        c.send("client", "FA")
        c.send("server", "FA", dt=0.00001, ack=c.rcv["server"])
        c.send("client", "A", dt=0.0001)
        c.send("server", "A", dt=0.00001)
    elif end < 0.65:
        c.send(rng.choice(["client", "server"]), rng.choice(["R", "RA"]), dt=0.01)
    elif end < 0.75:  # FIN with data, retransmitted, then RST
        c.send("client", "FPA", 5, lost=True)
        c.send("client", "FPA", 5, seq=c.snd["client"] - 6, dt=0.2)
        c.send("server", "R", dt=0.0001, ack=12345)
    # else: left open


# --- awkward captures, each a function returning packets -----------------------------------------


def fin_with_data() -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.send("client", "FPA", b"bye\n")
    c.send("server", "FA", dt=0.0002)
    c.send("client", "A", dt=0.0001)
    return c.packets


def fin_ack_combined() -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.echo()
    c.close("client", ack_rides=True)
    return c.packets


def four_segment_close(first: str = "client") -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.echo()
    c.close(first)
    return c.packets


def simultaneous_open() -> list[Packet]:
    c = Conversation()
    c.send("client", "S")
    c.send("server", "S", dt=0.00001)
    c.send("client", "SA", seq=c.snd["client"] - 1, dt=0.0001)
    c.send("server", "SA", seq=c.snd["server"] - 1, dt=0.00001)
    c.echo()
    c.close("client")
    return c.packets


def simultaneous_close() -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "FA")
    c.send("server", "FA", dt=0.00001, ack=c.rcv["server"] - 1)  # sent before the client's FIN arrived
    c.send("client", "A", dt=0.0001)
    c.send("server", "A", dt=0.00001)
    return c.packets


def rst_with_ack() -> list[Packet]:
    """UNP 5.12/5.13: the server's child died (FIN), the client writes, the server answers RST."""
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("server", "FA", dt=1.0)
    c.send("client", "A", dt=0.0001)
    c.send("client", "PA", b"another line\n", dt=2.0)
    c.send("server", "R", dt=0.0001, seq=c.snd["server"])
    return c.packets


def rst_without_ack() -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "RA", dt=0.5)
    c.send("server", "PA", b"late", dt=0.0001, lost=True)
    c.send("client", "R", dt=0.0001, seq=c.snd["client"], ack=0)
    return c.packets


def refused() -> list[Packet]:
    c = Conversation()
    c.send("client", "S")
    c.send("server", "RA", seq=0, ack=c.snd["client"], dt=0.0001)
    return c.packets


def out_of_order_duplicate_lost() -> list[Packet]:
    c = Conversation()
    c.handshake(rtt=0.002)
    s = c.snd["client"]
    c.send("client", "PA", 100)
    c.send("client", "PA", 100, seq=s + 200, dt=0.0001, lost=True)  # overtook the next one
    c.send("client", "PA", 100, seq=s + 100, dt=0.0001)  # out of order
    c.snd["client"] = s + 300
    c.rcv["server"] = s + 300
    c.send("server", "A", dt=0.0001)
    c.send("client", "PA", 100, seq=s + 100, dt=0.3)  # a duplicate, already acknowledged: spurious
    c.send("client", "PA", 100, dt=0.01, lost=True)  # lost
    c.send("client", "PA", 100, dt=0.0001)  # beyond the hole: the receiver sends dup ACKs
    c.send("server", "A", dt=0.0001)
    c.send("server", "A", dt=0.0001)
    c.send("server", "A", dt=0.0001)
    c.send("client", "PA", 100, seq=s + 300, dt=0.0001)  # fast retransmission
    c.rcv["server"] = c.snd["client"]
    c.send("server", "A", dt=0.0001)
    c.close("server")
    return c.packets


def sack() -> list[Packet]:
    c = Conversation()
    c.send("client", "S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
    c.send("server", "SA", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
    c.send("client", "A")
    s = c.snd["client"]
    c.send("client", "PA", 1000, lost=True)
    for k in range(1, 4):
        c.send("client", "PA", 1000, dt=0.0001)
        c.send("server", "A", ack=s, options=[("SAck", (s + 1000, s + 1000 * (k + 1)))], dt=0.00005)
    c.send("client", "PA", 1000, seq=s, dt=0.0001)
    c.rcv["server"] = c.snd["client"]
    c.send("server", "A")
    c.close("client")
    return c.packets


def wraparound() -> list[Packet]:
    c = Conversation(isn_client=M - 3, isn_server=M - 1)
    c.handshake()
    c.echo(b"across the wrap\n")
    s = c.snd["client"]
    c.send("client", "PA", 10, lost=True)
    c.send("client", "PA", 10, seq=s, dt=0.2)
    c.send("server", "A")
    c.close("client")
    return c.packets


def no_syn() -> list[Packet]:
    """The capture started mid-connection: roles are guessed from the ports."""
    c = Conversation(client=("10.0.0.3", 45000), server=("10.0.0.2", 7))
    c.rcv["client"] = c.snd["server"]
    c.rcv["server"] = c.snd["client"]
    c.send("server", "PA", b"echo\n")  # the server speaks first in the capture
    c.send("client", "A")
    c.send("client", "PA", b"more\n")
    c.send("server", "A")
    c.close("client")
    return c.packets


def keepalives() -> list[Packet]:
    """An idle client with SO_KEEPALIVE: probes of 0 and 1 byte, answered, then unanswered, then RST."""
    c = Conversation()
    c.handshake()
    c.echo()
    c.send("client", "A", seq=c.snd["client"] - 1, dt=7.2)
    c.send("server", "A", dt=0.0001)
    c.send("client", "A", b"\0", seq=c.snd["client"] - 1, dt=7.5)
    c.send("server", "A", dt=0.0001)
    for _ in range(3):
        c.send("client", "A", seq=c.snd["client"] - 1, dt=1.0)
    c.send("client", "RA", dt=1.0)
    return c.packets


def zero_window() -> list[Packet]:
    c = Conversation()
    c.handshake()
    c.send("client", "PA", 1000)
    c.send("server", "A", win=0, dt=0.0001)
    for dt in (0.2, 0.4, 0.8):
        c.send("client", "A", b"z", seq=c.snd["client"], dt=dt, lost=True)
        c.send("server", "A", win=0, dt=0.0001)
    c.send("server", "A", win=502, dt=0.5)
    c.send("client", "PA", 1000, dt=0.0001)
    c.send("server", "A", dt=0.0001)
    c.close("client")
    return c.packets


def syn_retransmitted() -> list[Packet]:
    c = Conversation()
    c.send("client", "S", lost=True)
    c.send("client", "S", seq=c.snd["client"] - 1, dt=1.0, lost=True)
    c.send("client", "S", seq=c.snd["client"] - 1, dt=2.0)
    c.send("server", "SA", dt=0.0001)
    c.send("client", "A", dt=0.0001)
    c.close("client")
    return c.packets


def crash_then_reboot() -> list[Packet]:
    """UNP 5.15: data into a crashed host, retransmitted with backoff; after the reboot, an RST."""
    c = Conversation()
    c.handshake()
    c.echo()
    s = c.snd["client"]
    c.send("client", "PA", b"after the crash\n", dt=3.0, lost=True)
    for gap in (0.2, 0.2, 0.4, 0.8, 1.6):
        c.send("client", "PA", b"after the crash\n", seq=s, dt=gap, lost=True)
    c.send("server", "R", seq=c.snd["server"], dt=0.0002)
    return c.packets


def two_writes_then_crash() -> list[Packet]:
    """UNP 5.13's str_cli11 (a line in two writes: its first byte, then the rest 1 s later) against a
    server host that crashed after the first line was echoed and acknowledged. The lone byte is never
    acknowledged: its copies, with doubling gaps, are retransmissions (Wireshark: keep-alives, since
    length 1 and seq = next - 1); the rest of the line waits behind it (Nagle) and never leaves."""
    c = Conversation()
    c.handshake()
    c.echo()
    s = c.snd["client"]
    c.send("client", "PA", b"a", dt=3.0, lost=True)
    for gap in (0.2, 0.4, 0.8, 1.6, 3.2, 6.4):
        c.send("client", "PA", b"a", seq=s, dt=gap, lost=True)
    return c.packets


def two_writes_then_reboot() -> list[Packet]:
    """The same two writes, and the server host reboots: the retransmitted byte draws its RST."""
    c = Conversation()
    c.handshake()
    c.echo()
    s = c.snd["client"]
    c.send("client", "PA", b"a", dt=3.0, lost=True)
    for gap in (0.2, 0.4, 0.8):
        c.send("client", "PA", b"a", seq=s, dt=gap, lost=True)
    c.send("client", "PA", b"a", seq=s, dt=1.6)
    c.send("server", "R", seq=c.snd["server"], dt=0.0002)
    return c.packets


def late_ack_after_fin() -> list[Packet]:
    """The server's ACK of the client's FIN, sent before its own FIN but captured after it (seq =
    next - 1, length 0), twice: once after the client acknowledged that FIN (as captured in the
    sigchld-multiple flake), once before."""
    packets: list[Packet] = []
    for port, acked_first in ((40000, True), (40001, False)):
        c = Conversation(client=("10.0.0.3", port), t0=T0 + (port - 40000), packets=packets)
        c.handshake()
        c.echo()
        c.send("client", "FA")
        fin_seq = c.snd["server"]
        c.send("server", "FA")
        if acked_first:
            c.send("client", "A")
        c.send("server", "A", seq=fin_seq, ack=c.rcv["server"])  # the late ACK
        if not acked_first:
            c.send("client", "A")
    return packets


def port_reuse() -> list[Packet]:
    """Two connections on the same 4-tuple, one after the other."""
    first = Conversation(isn_client=1000, isn_server=5000)
    first.handshake()
    first.echo()
    first.close("client")
    second = Conversation(isn_client=900000, isn_server=777, t0=first.t + 1.0, packets=first.packets)
    second.handshake()
    second.echo(b"again\n")
    second.close("server")
    return first.packets


def ip_lengths_that_lie() -> list[Packet]:
    """IP total lengths the frame contradicts: 0 (as TSO captures show) and more than the frame holds."""
    c = Conversation()
    c.handshake()
    c.send("client", "PA", b"hello\n")[IP].len = 0
    c.send("server", "A", dt=0.0001)
    c.send("server", "PA", b"hello\n", dt=0.0001)
    for _ in range(2):  # the second is a duplicate ACK, whatever the first's length claimed
        c.send("client", "A", dt=0.0001)[IP].len = 820
    c.close("client")
    return c.packets


AWKWARD = {
    f.__name__: f
    for f in (
        fin_with_data,
        fin_ack_combined,
        four_segment_close,
        simultaneous_open,
        simultaneous_close,
        rst_with_ack,
        rst_without_ack,
        refused,
        out_of_order_duplicate_lost,
        sack,
        wraparound,
        no_syn,
        keepalives,
        zero_window,
        syn_retransmitted,
        crash_then_reboot,
        two_writes_then_crash,
        two_writes_then_reboot,
        late_ack_after_fin,
        port_reuse,
        ip_lengths_that_lie,
    )
}
