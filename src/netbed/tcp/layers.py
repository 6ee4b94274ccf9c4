"""Link layers, IP, and what carries it (shims and tunnels): where in a frame the TCP header is.

Link types: Ethernet (with VLAN tags), Linux cooked captures SLL and SLL2,
raw IP, BSD loopback, PPP, IP over InfiniBand. Network: IPv4 and IPv6, also
inside PPPoE, MPLS and the common tunnels (IP in IP, GRE, VXLAN, Geneve,
L2TPv2), as Wireshark decodes them by default.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from .formats import ReadStats

__all__ = ["LinkType"]

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




_U16 = struct.Struct("!H")
_IP4 = struct.Struct("!BxH2xHxB")  # vihl, total length, frag, proto
_IP6 = struct.Struct("!4xHB")  # payload length, next header
_EXT6 = struct.Struct("!BB")

_RAW_LINKS = frozenset((LinkType.RAW, LinkType.RAW_OPENBSD, LinkType.RAW_BSD, LinkType.IPV4, LinkType.IPV6))
_IPV6_EXT = frozenset((0, 43, 60, 135, 139, 140))  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS


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

