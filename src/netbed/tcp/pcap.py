"""Reading pcap and pcapng captures into TCP segments, with the standard library alone.

This module also runs inside the hosts, so it imports nothing but the standard
library. It streams: the file is read in large chunks and each record is
decoded in place with precompiled ``struct.Struct`` objects, so memory stays
bounded whatever the size of the capture and the per-packet cost stays low
(see bench/bench_tcp.py).

Formats: pcap (both byte orders, microsecond and nanosecond timestamps) and
pcapng (both byte orders, any ``if_tsresol``, several sections and
interfaces). Link types: Ethernet (with VLAN tags), Linux cooked captures
SLL and SLL2, raw IP, BSD loopback, PPP, IP over InfiniBand. Network: IPv4
and IPv6, also inside PPPoE, MPLS and the common tunnels (IP in IP, GRE,
VXLAN, Geneve, L2TPv2).

Anything malformed raises :class:`PcapError` with a one-line message; a
packet whose headers the snap length cut is skipped and counted in
:class:`ReadStats`.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import BinaryIO

__all__ = [
    "PcapError",
    "LinkType",
    "Frame",
    "ReadStats",
    "TcpTuple",
    "read_frames",
    "read_tcp",
    "open_source",
    "format_ip",
    "split_key",
    "reverse_key",
    "follow_reader",
    "read_tcp_following",
    "read_frame_at",
]

CHUNK = 1 << 20
"""Bytes asked of the file at a time: large enough to amortise the copy of a record split across two chunks."""

MAX_RECORD = 1 << 24
"""A record longer than this is taken as corruption (libpcap's own limit is 256 KiB for most link types)."""


class PcapError(ValueError):
    """The bytes are not a capture netbed can read; the message says what is wrong, in one line."""


class LinkType(IntEnum):
    """The link-layer header types the reader decodes (tcpdump.org/linktypes.html)."""

    NULL = 0
    ETHERNET = 1
    RAW_OPENBSD = 12
    RAW_BSD = 14
    RAW = 101
    PPP = 9
    PPP_HDLC = 50
    LOOP = 108
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    IPOIB = 242
    LINUX_SLL2 = 276


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured packet as bytes, for display and for scapy: the slow, general view of a record."""

    number: int  # 1-based, as Wireshark numbers frames
    ts_ns: int  # capture time, nanoseconds since the epoch
    link: int  # LinkType value
    data: bytes  # the captured bytes, from the link-layer header on
    wire_len: int  # the length on the wire (more than len(data) when the snap length cut it)
    offset: int  # where data starts in the file


@dataclass(slots=True)
class ReadStats:
    """What the reader saw besides TCP segments, so that a caller can say why a result is empty."""

    frames: int = 0
    tcp: int = 0
    not_tcp: int = 0
    cut: int = 0  # a header cut by the snap length before the TCP header was whole
    tcp_cut: int = 0  # of those, the ones known to be TCP (their IP header said so)
    bogus: int = 0  # impossible header values (TCP header length < 20, IP length too small)
    fragments: int = 0  # IP fragments (not reassembled)
    unknown_link: int = 0
    truncated_tail: bool = False  # the last record was incomplete (allowed with allow_truncated)

    def describe(self) -> str:
        """One line: the frames read, the TCP among them, and why the others were left out."""
        parts = [f"{self.frames} frames read", f"{self.tcp} TCP"]
        for count, what in (
            (self.not_tcp, "not TCP"),
            (self.fragments, "IP fragments (not reassembled)"),
            (self.cut, "cut by the snap length before the TCP header"),
            (self.bogus, "with impossible headers"),
            (self.unknown_link, "on a link type netbed does not read"),
        ):
            if count:
                parts.append(f"{count} {what}")
        if self.truncated_tail:
            parts.append("the last one incomplete")
        return ", ".join(parts)


# A decoded TCP segment as the hot path passes it on: a plain tuple, no object per packet:
# (ts_ns, key, seq, ack, flags, window, payload_len, options, frame_no, data_offset, caplen, link)
# key is the raw bytes src address + dst address + src port + dst port (12 bytes for IPv4,
# 36 for IPv6): one slice of the packet that serves as the connection's dictionary key.
TcpTuple = tuple


# --- precompiled structures -------------------------------------------------------------

_U16 = struct.Struct("!H")
_IP4 = struct.Struct("!BxH2xHxB")  # vihl, total length, frag, proto
_IP6 = struct.Struct("!4xHB")  # payload length, next header
_TCP = struct.Struct("!4xIIBBH")  # seq, ack, offset/ns, flags, window
_EXT6 = struct.Struct("!BB")
_ETH_IP4_TCP = struct.Struct("!12xHBxH2xHxB2x8x4xIIBBH")  # ethertype, IPv4 fields as _IP4, TCP as _TCP
_PCAP_HDR = {e: struct.Struct(e + "IHHiIII") for e in "<>"}
_PCAP_REC = {e: struct.Struct(e + "IIII") for e in "<>"}
_NG_HEAD = {e: struct.Struct(e + "II") for e in "<>"}
_NG_EPB = {e: struct.Struct(e + "IIIII") for e in "<>"}
_NG_PB = {e: struct.Struct(e + "HHIIII") for e in "<>"}
_NG_IDB = {e: struct.Struct(e + "HHI") for e in "<>"}
_NG_OPT = {e: struct.Struct(e + "HH") for e in "<>"}
_U32 = {e: struct.Struct(e + "I") for e in "<>"}
_I64 = {e: struct.Struct(e + "q") for e in "<>"}

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_NG_SHB = b"\x0a\x0d\x0d\x0a"
_NG_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_GZIP = b"\x1f\x8b"

_RAW_LINKS = frozenset((LinkType.RAW, LinkType.RAW_OPENBSD, LinkType.RAW_BSD, LinkType.IPV4, LinkType.IPV6))
_IPV6_EXT = frozenset((0, 43, 60, 135, 139, 140))  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS


# --- the chunked byte source ------------------------------------------------------------


class _Source:
    """A window onto a byte stream: ``buf[pos:]`` is unread, ``base`` is buf[0]'s file offset.

    ``read`` returns b"" at the end; in follow mode it waits for bytes instead.
    """

    __slots__ = ("read", "buf", "pos", "base")

    def __init__(self, read: Callable[[int], bytes], base: int = 0) -> None:
        self.read = read
        self.buf = b""
        self.pos = 0
        self.base = base

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available from pos; False when the stream ends first."""
        avail = len(self.buf) - self.pos
        if avail >= need:
            return True
        parts = [self.buf[self.pos :]]
        self.base += self.pos
        self.pos = 0
        while avail < need:
            more = self.read(max(CHUNK, need - avail))
            if not more:
                self.buf = b"".join(parts)
                return False
            parts.append(more)
            avail += len(more)
        self.buf = b"".join(parts)
        return True

    def left(self) -> int:
        return len(self.buf) - self.pos


def _truncated(src: _Source, what: str, need: int, allow: bool, stats: ReadStats | None) -> None:
    if allow:
        if stats is not None:
            stats.truncated_tail = True
        return
    raise PcapError(
        f"truncated capture: {what} at byte {src.base + src.pos} needs {need} bytes, the file ends after {src.left()}"
    )


# --- records ------------------------------------------------------------------------------


def _records(
    read: Callable[[int], bytes], allow_truncated: bool, stats: ReadStats | None, live: bool = False, base: int = 0
) -> Iterator[tuple]:
    """(ts_ns, link, buf, start, caplen, wire_len, file_offset) per packet record, pcap or pcapng.

    Reads the magic now and returns the format's own generator (no delegation
    layer per packet). live: the stream is a capture still being written,
    stopped by its reader: ending anywhere, even inside the file header, is
    no error. base: the file offset of the first byte read (a pcap re-read from
    the middle is its file header, then the records from base + 24 on).
    """
    src = _Source(read, base)
    if not src.fill(4):
        if live:
            return iter(())
        if src.left() == 0:
            raise PcapError("empty file: not a pcap or pcapng capture")
        raise PcapError(f"file too short ({src.left()} bytes) to be a pcap or pcapng capture")
    magic = src.buf[:4]
    if magic in _PCAP_MAGIC:
        return _pcap_records(src, allow_truncated, stats, live)
    if magic == _NG_SHB:
        return _pcapng_records(src, allow_truncated, stats)
    if magic[:2] == _GZIP:
        raise PcapError("gzip-compressed file: decompress it first (gunzip)")
    raise PcapError(f"not a pcap or pcapng capture (first bytes {magic.hex()})")


def _pcap_records(src: _Source, allow_truncated: bool, stats: ReadStats | None, live: bool) -> Iterator[tuple]:
    endian, scale = _PCAP_MAGIC[src.buf[:4]]
    if not src.fill(24):
        _truncated(src, "pcap file header", 24, live, stats)
        return
    _, major, _minor, _tz, _sig, _snaplen, network = _PCAP_HDR[endian].unpack_from(src.buf, 0)
    if major != 2:
        raise PcapError(f"pcap version {major} is not supported (only 2.x)")
    link = network & 0x0FFFFFFF  # upper bits carry the FCS length, not the type
    rec = _PCAP_REC[endian].unpack_from
    src.pos = 24
    buf = src.buf
    pos = 24
    end = len(buf)
    while True:
        if end - pos < 16:
            src.pos = pos
            if not src.fill(16):
                if src.left():
                    _truncated(src, "record header", 16, allow_truncated, stats)
                return
            buf, pos, end = src.buf, src.pos, len(src.buf)
        sec, frac, caplen, wire_len = rec(buf, pos)
        start = pos + 16
        stop = start + caplen
        if stop > end:
            if caplen > MAX_RECORD:
                raise PcapError(f"corrupt pcap: record at byte {src.base + pos} claims {caplen} captured bytes")
            src.pos = pos
            if not src.fill(16 + caplen):
                _truncated(src, "record", 16 + caplen, allow_truncated, stats)
                return
            buf, pos, end = src.buf, src.pos, len(src.buf)
            start = pos + 16
            stop = start + caplen
        yield sec * 1_000_000_000 + frac * scale, link, buf, start, caplen, wire_len, src.base + start
        pos = stop


def _ts_units(value: bytes) -> tuple[int, int]:
    """pcapng if_tsresol -> (multiplier, divisor) turning a timestamp into nanoseconds."""
    exp = value[0] & 0x7F
    if value[0] & 0x80:
        return 1_000_000_000, 1 << exp
    if exp <= 9:
        return 10 ** (9 - exp), 1
    return 1, 10 ** (exp - 9)


def _pcapng_records(src: _Source, allow_truncated: bool, stats: ReadStats | None) -> Iterator[tuple]:
    endian = "<"
    ifaces: list[tuple[int, int, int, int, int]] = []  # link, snaplen, mul, div, offset_ns
    seen_shb = False
    while True:
        if not src.fill(12):
            if src.left():
                _truncated(src, "pcapng block header", 12, allow_truncated, stats)
            return
        buf, pos = src.buf, src.pos
        if buf[pos : pos + 4] == _NG_SHB:
            bom = buf[pos + 8 : pos + 12]
            if bom not in _NG_BOM:
                raise PcapError(
                    f"corrupt pcapng: section header at byte {src.base + pos} has byte-order magic {bom.hex()}"
                )
            endian = _NG_BOM[bom]
            seen_shb = True
            ifaces = []
        elif not seen_shb:
            raise PcapError("corrupt pcapng: the file does not start with a section header block")
        btype, blen = _NG_HEAD[endian].unpack_from(buf, pos)
        if blen < 12 or blen % 4:
            raise PcapError(f"corrupt pcapng: block at byte {src.base + pos} has length {blen}")
        if blen > MAX_RECORD:
            raise PcapError(f"corrupt pcapng: block at byte {src.base + pos} claims {blen} bytes")
        if not src.fill(blen):
            _truncated(src, "pcapng block", blen, allow_truncated, stats)
            return
        buf, pos = src.buf, src.pos
        if _U32[endian].unpack_from(buf, pos + blen - 4)[0] != blen:
            raise PcapError(f"corrupt pcapng: block at byte {src.base + pos} has mismatched lengths")
        body = pos + 8
        body_end = pos + blen - 4
        src.pos = pos + blen
        if btype == 6:  # enhanced packet block
            if blen < 32:
                raise PcapError(f"corrupt pcapng: packet block at byte {src.base + pos} is too short")
            ifid, high, low, caplen, wire_len = _NG_EPB[endian].unpack_from(buf, body)
            start = body + 20
            if start + caplen > body_end:
                raise PcapError(f"corrupt pcapng: packet at byte {src.base + pos} overruns its block")
            if ifid >= len(ifaces):
                raise PcapError(f"corrupt pcapng: packet at byte {src.base + pos} names undeclared interface {ifid}")
            link, _snap, mul, div, off = ifaces[ifid]
            yield ((high << 32) | low) * mul // div + off, link, buf, start, caplen, wire_len, src.base + start
        elif btype == 3:  # simple packet block: no timestamp
            if not ifaces:
                raise PcapError(f"corrupt pcapng: packet at byte {src.base + pos} before any interface")
            if blen < 16:
                raise PcapError(f"corrupt pcapng: packet block at byte {src.base + pos} is too short")
            link, snap, _mul, _div, _off = ifaces[0]
            wire_len = _U32[endian].unpack_from(buf, body)[0]
            start = body + 4
            caplen = min(wire_len, snap or wire_len, body_end - start)
            yield 0, link, buf, start, caplen, wire_len, src.base + start
        elif btype == 2:  # obsolete packet block
            if blen < 32:
                raise PcapError(f"corrupt pcapng: packet block at byte {src.base + pos} is too short")
            ifid, _drops, high, low, caplen, wire_len = _NG_PB[endian].unpack_from(buf, body)
            start = body + 20
            if start + caplen > body_end or ifid >= len(ifaces):
                raise PcapError(f"corrupt pcapng: packet block at byte {src.base + pos} is inconsistent")
            link, _snap, mul, div, off = ifaces[ifid]
            yield ((high << 32) | low) * mul // div + off, link, buf, start, caplen, wire_len, src.base + start
        elif btype == 1:  # interface description block
            if blen < 20:
                raise PcapError(f"corrupt pcapng: interface block at byte {src.base + pos} is too short")
            link, _res, snap = _NG_IDB[endian].unpack_from(buf, body)
            mul, div, off = 1000, 1, 0
            o = body + 8
            opt = _NG_OPT[endian].unpack_from
            while o + 4 <= body_end:
                code, olen = opt(buf, o)
                if code == 0:
                    break
                value = buf[o + 4 : o + 4 + olen]
                if code == 9 and olen >= 1:
                    mul, div = _ts_units(value)
                elif code == 14 and olen >= 8:
                    off = _I64[endian].unpack_from(value)[0] * 1_000_000_000
                o += 4 + olen + (-olen % 4)
            ifaces.append((link, snap, mul, div, off))
        # other blocks (statistics, name resolution, custom, ...) carry no packets


# --- below the link layer: IP, and whatever carries it ----------------------------------------

_MAX_LAYERS = 8
"""How many shims and tunnels deep the reader looks for TCP (a loop guard; real captures nest two or three)."""

_PPP_TO_ETHERTYPE = {0x0021: 0x0800, 0x0057: 0x86DD, 0x0281: 0x8847, 0x0283: 0x8848}
_IP_TUNNELS = frozenset((4, 41, 47, 17))  # IPv4 in IP, IPv6 in IP, GRE, UDP (for the UDP tunnels)
_UDP_TUNNELS = (4789, 6081, 1701)  # VXLAN, Geneve, L2TP: the ports Wireshark decodes them on by default


def _ethernet(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """(ethertype, offset of what follows) of an Ethernet header at p, past any VLAN tags."""
    etype = _U16.unpack_from(buf, p + 12)[0]
    p += 14
    while etype == 0x8100 or etype == 0x88A8:
        if p + 4 > end:
            break
        etype = _U16.unpack_from(buf, p + 2)[0]
        p += 4
    return etype, p


def _find_tcp(
    buf: bytes, p: int, end: int, wend: int, etype: int, stats: ReadStats
) -> tuple[bool, int, int, int] | None:
    """Find the TCP header under the link layer: (IPv6?, IP offset, TCP offset, TCP length).

    end is where the captured bytes end, wend where the frame ended on the
    wire: an IP length beyond wend is not believed and the frame's length is
    taken, as Wireshark does. So is a length of 0, which captures of TSO and
    BIG TCP super-packets show (Wireshark 4.0 does that for IPv4 only and
    calls such an IPv6 packet malformed).

    Goes through the shims and tunnels that captures made elsewhere carry
    (PPPoE, MPLS, IP in IP, GRE, VXLAN, Geneve, L2TPv2), as Wireshark does, so
    a connection inside a tunnel is the inner one. None when there is no TCP,
    after counting why in stats.
    """
    u16 = _U16.unpack_from
    for _ in range(_MAX_LAYERS):
        if etype == 0x0800:
            if p + 20 > end:
                stats.cut += 1
                return None
            vihl, total, frag, proto = _IP4.unpack_from(buf, p)
            if proto != 6 and proto not in _IP_TUNNELS:
                stats.not_tcp += 1
                return None
            if frag & 0x3FFF:
                stats.fragments += 1
                return None
            ihl = (vihl & 15) << 2
            if ihl < 20:
                stats.bogus += 1
                return None
            t = p + ihl
            seglen = (total if 0 < total <= wend - p else wend - p) - ihl
        elif etype == 0x86DD:
            if p + 40 > end:
                stats.cut += 1
                return None
            plen6, proto = _IP6.unpack_from(buf, p)
            t = p + 40
            seglen = plen6 if 0 < plen6 <= wend - t else wend - t
            while proto in _IPV6_EXT or proto == 44:
                if t + 8 > end:
                    break
                if proto == 44:  # fragment header
                    if u16(buf, t + 2)[0] & 0xFFF9:  # offset or more-fragments
                        stats.fragments += 1
                        return None
                    hl = 8
                    proto = buf[t]
                else:
                    proto, ext = _EXT6.unpack_from(buf, t)
                    hl = (ext + 1) << 3
                t += hl
                seglen -= hl
        else:
            inner = _under_shim(buf, p, end, etype)
            if inner is None:
                stats.not_tcp += 1
                return None
            etype, p = inner
            continue
        if proto == 6:
            if t + 20 > end:
                stats.cut += 1
                stats.tcp_cut += 1
                return None
            return etype == 0x86DD, p, t, seglen
        wend = t + seglen
        end = min(end, wend)
        inner = _under_tunnel(buf, t, end, proto)
        if inner is None:
            stats.not_tcp += 1
            return None
        etype, p = inner
    stats.not_tcp += 1
    return None


def _under_shim(buf: bytes, p: int, end: int, etype: int) -> tuple[int, int] | None:
    """(ethertype, offset) of what a link-level shim at p carries: a PPPoE session or an MPLS label stack."""
    if etype == 0x8864:  # PPPoE session: 6 bytes of PPPoE, 2 of PPP protocol
        if p + 8 > end:
            return None
        inner = _PPP_TO_ETHERTYPE.get(_U16.unpack_from(buf, p + 6)[0])
        return None if inner is None else (inner, p + 8)
    if etype == 0x8847 or etype == 0x8848:  # MPLS: labels up to the bottom of the stack, then IP by version
        while p + 4 <= end:
            bottom = buf[p + 2] & 1
            p += 4
            if bottom:
                if p < end and buf[p] >> 4 in (4, 6):
                    return (0x0800 if buf[p] >> 4 == 4 else 0x86DD), p
                return None
    return None


def _under_tunnel(buf: bytes, t: int, end: int, proto: int) -> tuple[int, int] | None:
    """(ethertype, offset) of the packet an IP payload of this protocol carries; None if it is not a tunnel."""
    u16 = _U16.unpack_from
    if proto == 4:
        return 0x0800, t
    if proto == 41:
        return 0x86DD, t
    if proto == 47:  # GRE version 0 (RFC 2784/2890); routing (RFC 1701) is not followed
        if t + 4 > end:
            return None
        flags, inner = u16(buf, t)[0], u16(buf, t + 2)[0]
        if flags & 0x4007:
            return None
        t += 4 + 4 * ((flags >> 15) + (flags >> 13 & 1) + (flags >> 12 & 1))
        if inner == 0x6558:  # transparent Ethernet bridging
            return _ethernet(buf, t, end) if t + 14 <= end else None
        return inner, t
    if proto == 17 and t + 8 <= end:
        sport, dport = u16(buf, t)[0], u16(buf, t + 2)[0]
        port = dport if dport in _UDP_TUNNELS else sport
        u = t + 8
        if port == 4789:  # VXLAN: 8 bytes, then Ethernet
            return _ethernet(buf, u + 8, end) if u + 22 <= end else None
        if port == 6081 and u + 8 <= end:  # Geneve: 8 bytes and options, then by protocol type
            inner = u16(buf, u + 2)[0]
            u += 8 + ((buf[u] & 0x3F) << 2)
            if inner == 0x6558:
                return _ethernet(buf, u, end) if u + 14 <= end else None
            return inner, u
        if port == 1701 and u + 6 <= end:
            return _under_l2tp(buf, u, end)
    return None


def _under_l2tp(buf: bytes, u: int, end: int) -> tuple[int, int] | None:
    """(ethertype, offset) of the IP packet in an L2TPv2 data message (RFC 2661) carrying PPP."""
    flags = _U16.unpack_from(buf, u)[0]
    if flags & 0x8000 or flags & 0xF != 2:  # a control message, or not version 2
        return None
    u += 6 + 2 * (flags >> 14 & 1) + 4 * (flags >> 11 & 1)
    if flags & 0x0200:  # offset size, then that many bytes of padding
        if u + 2 > end:
            return None
        u += 2 + _U16.unpack_from(buf, u)[0]
    return _ppp(buf, u, end)


def _ppp(buf: bytes, u: int, end: int) -> tuple[int, int] | None:
    """(ethertype, offset) of the packet in a PPP frame at u (RFC 1661), with or without address and control."""
    if u + 2 <= end and buf[u] == 0xFF and buf[u + 1] == 0x03:
        u += 2
    if u >= end:
        return None
    if buf[u] & 1:  # a compressed (one-byte) protocol field
        proto, u = buf[u], u + 1
    elif u + 2 <= end:
        proto, u = _U16.unpack_from(buf, u)[0], u + 2
    else:
        return None
    inner = _PPP_TO_ETHERTYPE.get(proto)
    return None if inner is None else (inner, u)


# --- decoding -----------------------------------------------------------------------------


def _decode(
    records: Iterator[tuple], stats: ReadStats, close: Callable[[], None], options: bool = True, first_frame: int = 1
) -> Iterator[TcpTuple]:
    """Yield one TcpTuple per TCP segment; count and skip everything else; close the source at the end.

    The hot loop of the whole package: locals only, one tuple per segment.
    options=False leaves the option bytes out (b""): a summary never looks at them.
    """
    u16 = _U16.unpack_from
    tcp = _TCP.unpack_from
    fast = _ETH_IP4_TCP.unpack_from
    raw_links = _RAW_LINKS
    frames = first_frame - 1
    n_tcp = 0
    try:
        for ts, link, buf, off, caplen, wire, foff in records:
            frames += 1
            wire = wire if wire > caplen else caplen  # a capture may claim less on the wire than it holds
            if link == 1 and caplen >= 54:
                # Fast path for the common frame, Ethernet + IPv4 without options + TCP: one unpack.
                etype, vihl, total, frag, proto, seq, ack, hoff, flags, win = fast(buf, off)
                if etype == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                    hl = (hoff >> 4) << 2
                    room = wire - 14  # an IP length beyond the frame is not believed, as in _find_tcp
                    seglen = (total if 0 < total <= room else room) - 20
                    if 20 <= hl <= seglen:
                        n_tcp += 1
                        if hoff & 1:
                            flags |= 0x100
                        yield (
                            ts,
                            buf[off + 26 : off + 38],
                            seq,
                            ack,
                            flags,
                            win,
                            seglen - hl,
                            buf[off + 54 : min(off + 34 + hl, off + caplen)] if hl > 20 and options else b"",
                            frames,
                            foff,
                            caplen,
                            link,
                        )
                        continue
            end = off + caplen
            if link == 1:  # Ethernet
                if caplen < 14:
                    stats.cut += 1
                    continue
                etype, p = _ethernet(buf, off, end)
            elif link == 113:  # Linux cooked v1
                if caplen < 16:
                    stats.cut += 1
                    continue
                etype = u16(buf, off + 14)[0]
                p = off + 16
            elif link == 276:  # Linux cooked v2
                if caplen < 20:
                    stats.cut += 1
                    continue
                etype = u16(buf, off)[0]
                p = off + 20
            elif link in raw_links:
                if caplen < 1:
                    stats.cut += 1
                    continue
                v = buf[off] >> 4
                etype = 0x0800 if v == 4 else 0x86DD if v == 6 else 0
                p = off
            elif link == 0 or link == 108:  # BSD loopback: address family, host or network order
                if caplen < 4:
                    stats.cut += 1
                    continue
                fam = int.from_bytes(buf[off : off + 4], "big" if link == 108 else "little")
                if link == 0 and fam > 0xFFFF:
                    fam = int.from_bytes(buf[off : off + 4], "big")
                etype = 0x0800 if fam == 2 else 0x86DD if fam in _AF_INET6 else 0
                p = off + 4
            elif link == 9 or link == 50:  # PPP, PPP in HDLC-like framing
                inner = _ppp(buf, off, end)
                if inner is None:
                    stats.not_tcp += 1
                    continue
                etype, p = inner
            elif link == 242:  # IP over InfiniBand as Linux captures it: two 20-byte addresses, type, reserved
                if caplen < 44:
                    stats.cut += 1
                    continue
                etype = u16(buf, off + 40)[0]
                p = off + 44
            else:
                stats.unknown_link += 1
                continue
            found = _find_tcp(buf, p, end, off + wire, etype, stats)
            if found is None:
                continue
            v6, p, t, seglen = found
            seq, ack, hoff, flags, win = tcp(buf, t)
            hl = (hoff >> 4) << 2
            if hl < 20 or hl > seglen:
                stats.bogus += 1
                continue
            if hoff & 1:
                flags |= 0x100
            n_tcp += 1
            if v6:
                key = buf[p + 8 : p + 40] + buf[t : t + 4]
            else:
                key = buf[p + 12 : t + 4] if t == p + 20 else buf[p + 12 : p + 20] + buf[t : t + 4]
            yield (
                ts,
                key,
                seq,
                ack,
                flags,
                win,
                seglen - hl,
                buf[t + 20 : min(t + hl, end)] if hl > 20 and options else b"",
                frames,
                foff,
                caplen,
                link,
            )
    except struct.error as e:  # a length check missed a case: still a malformed capture, never a traceback
        raise PcapError(f"corrupt capture: {e}") from None
    finally:
        stats.frames += frames - first_frame + 1
        stats.tcp += n_tcp
        close()


# --- public entry points --------------------------------------------------------------------


def open_source(source: str | os.PathLike | BinaryIO | bytes) -> tuple[Callable[[int], bytes], Callable[[], None]]:
    """(read, close) for a path, a binary file object or bytes; close only closes what it opened."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        state = [0]

        def read_bytes(n: int) -> bytes:
            start = state[0]
            state[0] = start + n
            return data[start : start + n]

        return read_bytes, lambda: None
    if isinstance(source, (str, os.PathLike)):
        try:
            f = open(source, "rb", buffering=0)
        except IsADirectoryError:
            raise PcapError(f"{os.fspath(source)} is a directory, not a capture") from None
        except FileNotFoundError:
            raise PcapError(f"no such capture file: {os.fspath(source)}") from None
        except PermissionError:
            raise PcapError(f"cannot read {os.fspath(source)}: permission denied") from None
        return f.read, f.close
    return source.read, lambda: None


def read_tcp(
    source: str | os.PathLike | BinaryIO | bytes,
    *,
    stats: ReadStats | None = None,
    allow_truncated: bool = False,
    options: bool = True,
) -> Iterator[TcpTuple]:
    """Stream the TCP segments of a capture as tuples (see TcpTuple); raises PcapError on malformed input.

    A file that is no capture at all is reported at once, the rest as it is read.
    """
    read, close = open_source(source)
    if stats is None:
        stats = ReadStats()
    try:
        records = _records(read, allow_truncated, stats)
    except BaseException:
        close()
        raise
    return _decode(records, stats, close, options)


def read_frames(source: str | os.PathLike | BinaryIO | bytes, *, allow_truncated: bool = False) -> Iterator[Frame]:
    """Every record as a Frame with its own bytes: for display, scapy and tools, not for bulk work."""
    read, close = open_source(source)
    try:
        for n, (ts, link, buf, start, caplen, wire_len, foff) in enumerate(_records(read, allow_truncated, None), 1):
            yield Frame(n, ts, link, bytes(buf[start : start + caplen]), wire_len, foff)
    except struct.error as e:
        raise PcapError(f"corrupt capture: {e}") from None
    finally:
        close()


def follow_reader(
    path: str | os.PathLike,
    *,
    stop: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> tuple[Callable[[int], bytes], Callable[[], None]]:
    """(read, close) over a file that is still growing: at its end, sleep and retry until stop() says so.

    The file may not exist yet (the capture has not started): wait for it too.
    """
    stop = stop or (lambda: False)
    holder: list[BinaryIO] = []

    def read(n: int) -> bytes:
        while True:
            if not holder:
                try:
                    holder.append(open(path, "rb", buffering=0))
                except FileNotFoundError:
                    if stop():
                        return b""
                    time.sleep(poll)
                    continue
            data = holder[0].read(n)
            if data:
                return data
            if stop():
                return b""
            time.sleep(poll)

    def close() -> None:
        if holder:
            holder[0].close()

    return read, close


def read_tcp_following(
    path: str | os.PathLike,
    *,
    stop: Callable[[], bool] | None = None,
    poll: float = 0.1,
    stats: ReadStats | None = None,
) -> Iterator[TcpTuple]:
    """Like read_tcp over a file being written (tcpdump -U): a partial last record waits for its bytes."""
    read, close = follow_reader(path, stop=stop, poll=poll)
    stats = stats if stats is not None else ReadStats()
    try:
        records = _records(read, True, stats, live=True)
    except BaseException:
        close()
        raise
    yield from _decode(records, stats, close)


def read_frame_at(path: str | os.PathLike, offset: int, caplen: int) -> bytes:
    """The captured bytes of one record, read again from the file (for payloads and scapy)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(caplen)


def split_key(key: bytes) -> tuple[str, int, str, int]:
    """(src ip, src port, dst ip, dst port) from a TcpTuple key."""
    n = (len(key) - 4) // 2
    return (
        format_ip(key[:n]),
        int.from_bytes(key[-4:-2], "big"),
        format_ip(key[n : 2 * n]),
        int.from_bytes(key[-2:], "big"),
    )


def reverse_key(key: bytes) -> bytes:
    """The key of the opposite direction."""
    n = (len(key) - 4) // 2
    return key[n : 2 * n] + key[:n] + key[-2:] + key[-4:-2]


def format_ip(raw: bytes) -> str:
    """Dotted quad or RFC 5952 text for a 4- or 16-byte address."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    import ipaddress

    return str(ipaddress.IPv6Address(raw))
