"""pcap and pcapng files into packet records, with the standard library alone.

Formats: pcap (both byte orders, microsecond and nanosecond timestamps) and
pcapng (both byte orders, any ``if_tsresol``, several sections and
interfaces). The file is read in large chunks and each record handed on as
a slice of the chunk (no copy), so memory stays bounded whatever the size of
the capture. Anything malformed raises :class:`PcapError` with a one-line
message.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, overload

__all__ = ["CHUNK", "MAX_RECORD", "PcapError", "ReadStats", "open_source", "follow_reader"]

CHUNK = 1 << 20
"""Bytes asked of the file at a time: large enough to amortise the copy of a record split across two chunks."""

MAX_RECORD = 1 << 24
"""A record longer than this is taken as corruption (libpcap's own limit is 256 KiB for most link types)."""


class PcapError(ValueError):
    """The bytes are not a capture netbed can read; the message says what is wrong, in one line."""



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


@overload
def _records(
    read: Callable[[int], bytes],
    allow_truncated: bool,
    stats: ReadStats | None,
    live: bool = False,
    base: int = 0,
    fast: None = None,
) -> Iterator[tuple]: ...


@overload
def _records(
    read: Callable[[int], bytes],
    allow_truncated: bool,
    stats: ReadStats | None,
    live: bool = False,
    base: int = 0,
    *,
    fast: Callable,
) -> Iterator[tuple | None]: ...


def _records(
    read: Callable[[int], bytes],
    allow_truncated: bool,
    stats: ReadStats | None,
    live: bool = False,
    base: int = 0,
    fast: Callable | None = None,
) -> Iterator[tuple | None]:
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
        return _pcapng_records(src, allow_truncated, stats, fast)
    if magic[:2] == _GZIP:
        raise PcapError("gzip-compressed file: decompress it first (gunzip)")
    raise PcapError(f"not a pcap or pcapng capture (first bytes {magic.hex()})")


def _pcap_header(src: _Source, stats: ReadStats | None, live: bool) -> tuple[str, int, int] | None:
    """A classic pcap's file header: (byte order, timestamp scale, link type), or None if cut short."""
    endian, scale = _PCAP_MAGIC[src.buf[:4]]
    if not src.fill(24):
        _truncated(src, "pcap file header", 24, live, stats)
        return None
    _, major, _minor, _tz, _sig, _snaplen, network = _PCAP_HDR[endian].unpack_from(src.buf, 0)
    if major != 2:
        raise PcapError(f"pcap version {major} is not supported (only 2.x)")
    return endian, scale, network & 0x0FFFFFFF  # upper bits carry the FCS length, not the type


def _pcap_records(src: _Source, allow_truncated: bool, stats: ReadStats | None, live: bool) -> Iterator[tuple]:
    header = _pcap_header(src, stats, live)
    if header is None:
        return
    endian, scale, link = header
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


def _pcapng_records(
    src: _Source, allow_truncated: bool, stats: ReadStats | None, fast: Callable | None = None
) -> Iterator[tuple | None]:
    """pcapng blocks; fast(buf, pos, little, ifaces, base) -> pos, when given, takes every run of whole
    enhanced packet blocks it can (the C speedups), and a None is yielded after each such run."""
    endian = "<"
    ifaces: list[tuple[int, int, int, int, int]] = []  # link, snaplen, mul, div, offset_ns
    seen_shb = False
    while True:
        if fast is not None and seen_shb:
            pos = fast(src.buf, src.pos, endian == "<", ifaces, src.base)
            if pos != src.pos:
                src.pos = pos
                yield None
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
