"""Segments as scapy packets, for users who assert with scapy.

Imported only when asked for: the rest of netbed.tcp needs nothing but the
standard library. A segment is dissected from its frame's bytes, read again
from the capture file; without a file, a packet is built from its fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection
    from .segments import Segment

__all__ = ["segment_packet", "connection_packets"]


def _dissect(link: int, data: bytes) -> Any:
    """The frame's bytes as scapy layers, from the link-layer header down.

    Scapy dissects PPPoE, MPLS and the tunnels (as netbed.tcp.pcap reads them)
    only once their modules are imported, hence the imports kept for that alone.
    """
    import scapy.contrib.geneve  # noqa: F401
    import scapy.contrib.mpls  # noqa: F401
    import scapy.layers.l2tp  # noqa: F401
    import scapy.layers.vxlan  # noqa: F401
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether, Loopback
    from scapy.layers.ppp import HDLC, PPP
    from scapy.packet import Raw

    by_link = {1: Ether, 113: CookedLinux, 276: CookedLinuxV2, 0: Loopback, 108: Loopback, 9: PPP, 50: HDLC, 229: IPv6}
    if link == 242:  # scapy has no IP-over-InfiniBand layer: its 44-byte header stays raw
        return Raw(data[:44]) / _dissect(101, data[44:])
    if link in by_link:
        return by_link[link](data)
    return (IPv6 if data and data[0] >> 4 == 6 else IP)(data)  # the raw IP links


def segment_packet(seg: Segment) -> Any:
    """The segment as a scapy packet (its time set to the capture time)."""
    data = seg.frame_bytes()
    if data:
        assert seg._where is not None
        pkt = _dissect(seg._where[2], data)
    else:
        pkt = _synthetic(seg)
    pkt.time = seg.ts
    return pkt


def _synthetic(seg: Segment) -> Any:
    import struct

    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    ip = IPv6(src=seg.src.ip, dst=seg.dst.ip) if ":" in seg.src.ip else IP(src=seg.src.ip, dst=seg.dst.ip)
    opts = seg.options.raw
    header = struct.pack(
        "!HHIIBBHHH",
        seg.src.port,
        seg.dst.port,
        seg.raw_seq,
        seg.raw_ack,
        ((20 + len(opts)) // 4) << 4 | (seg.flags >> 8 & 1),
        seg.flags & 0xFF,
        seg.window,
        0,
        0,
    )
    pkt = ip / TCP(header + opts)
    if seg.payload_len:
        pkt = pkt / Raw(b"\0" * seg.payload_len)
    return pkt


def connection_packets(conn: Connection) -> Any:
    """All of a connection's segments as a scapy PacketList."""
    from scapy.plist import PacketList

    return PacketList([segment_packet(s) for s in conn.segments], name=conn.label())
