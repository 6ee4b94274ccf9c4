"""Reading pcap and pcapng captures into TCP segments, with the standard library alone.

This package's reader also runs inside the hosts, so it imports nothing but
the standard library. It is three modules, one job each: formats (pcap and
pcapng files into records), layers (link layers, IP, shims and tunnels) and
decode (records into TCP segments); this one holds the entry points.

A packet whose headers the snap length cut is skipped and counted in
:class:`ReadStats`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .decode import TcpTuple, _decode
from .formats import MAX_RECORD, PcapError, ReadStats, _records, follow_reader, open_source
from .layers import LinkType

__all__ = [
    "MAX_RECORD",
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


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured packet as bytes, for display and for scapy: the slow, general view of a record."""

    number: int  # 1-based, as Wireshark numbers frames
    ts_ns: int  # capture time, nanoseconds since the epoch
    link: int  # LinkType value
    data: bytes  # the captured bytes, from the link-layer header on
    wire_len: int  # the length on the wire (more than len(data) when the snap length cut it)
    offset: int  # where data starts in the file




# --- public entry points --------------------------------------------------------------------


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
