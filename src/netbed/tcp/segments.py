"""TCP segments as small typed values: flags, analysis marks, options, endpoints.

Two flag notations are used side by side, because both are familiar:
letters as in Wireshark's summaries ("S", "SA", "A", "PA", "FA", "FPA", "R",
"RA") and tcpdump's ("S", "S.", ".", "P.", "F.", "FP.", "R", "R.").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntFlag
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
    "NS",
    "Mark",
    "Options",
    "Endpoint",
    "Segment",
    "flag_letters",
    "tcpdump_flags",
    "parse_flags",
    "parse_options",
]

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100

# Letter order: Wireshark-like letters, with A where tcpdump writes "." and C where it writes "W".
_ORDER = (  # (flag, letter, tcpdump's letter)
    (FIN, "F", "F"),
    (SYN, "S", "S"),
    (RST, "R", "R"),
    (PSH, "P", "P"),
    (ACK, "A", "."),
    (URG, "U", "U"),
    (ECE, "E", "E"),
    (CWR, "C", "W"),
    (NS, "N", "N"),
)


def _letters(flags: int, tcpdump: bool) -> str:
    return "".join(theirs if tcpdump else ours for flag, ours, theirs in _ORDER if flags & flag)


# Precomputed for every 9-bit value: the analysis keeps these strings per segment without building any.
_LETTERS = tuple(_letters(f, tcpdump=False) for f in range(512))
_TCPDUMP = tuple(_letters(f, tcpdump=True) or "none" for f in range(512))


def flag_letters(flags: int) -> str:
    """'S', 'SA', 'A', 'PA', 'FA', 'FPA', 'R', 'RA' ... ('' for no flags)."""
    return _LETTERS[flags & 0x1FF]


def tcpdump_flags(flags: int) -> str:
    """'S', 'S.', '.', 'P.', 'F.', 'FP.', 'R', 'R.' ... as tcpdump prints them ('none' for no flags)."""
    return _TCPDUMP[flags & 0x1FF]


_PARSE = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK, ".": ACK, "U": URG, "E": ECE, "C": CWR, "W": CWR, "N": NS}


def parse_flags(text: str) -> int:
    """Flags from either notation ('FPA' or 'FP.'); raises ValueError naming the bad letter."""
    if text in ("none", "-"):
        return 0
    value = 0
    for ch in text.upper():
        if ch not in _PARSE:
            raise ValueError(f"unknown TCP flag {ch!r} in {text!r} (use F S R P A/. U E C/W)")
        value |= _PARSE[ch]
    return value


class Mark(IntFlag):
    """What the analysis found about a segment, as Wireshark's tcp.analysis.* flags name it."""

    NONE = 0
    RETRANSMISSION = 1 << 0  # tcp.analysis.retransmission (alone)
    FAST_RETRANSMISSION = 1 << 1  # also matches tcp.analysis.retransmission in Wireshark
    SPURIOUS_RETRANSMISSION = 1 << 2  # also matches tcp.analysis.retransmission in Wireshark
    OUT_OF_ORDER = 1 << 3
    KEEP_ALIVE = 1 << 4  # as Wireshark's, if the peer has acknowledged seq: else no probe (1 byte: RETRANSMISSION)
    KEEP_ALIVE_ACK = 1 << 5
    ZERO_WINDOW = 1 << 6
    ZERO_WINDOW_PROBE = 1 << 7
    ZERO_WINDOW_PROBE_ACK = 1 << 8
    DUPLICATE_ACK = 1 << 9
    WINDOW_UPDATE = 1 << 10
    LOST_SEGMENT = 1 << 11  # tcp.analysis.lost_segment: previous segment not captured
    ACKED_UNSEEN = 1 << 12  # tcp.analysis.ack_lost_segment

    ANY_RETRANSMISSION = RETRANSMISSION | FAST_RETRANSMISSION | SPURIOUS_RETRANSMISSION
    """What Wireshark's display filter tcp.analysis.retransmission matches."""


_MARK_WORDS = (
    (Mark.RETRANSMISSION, "retransmission"),
    (Mark.FAST_RETRANSMISSION, "fast retransmission"),
    (Mark.SPURIOUS_RETRANSMISSION, "spurious retransmission"),
    (Mark.OUT_OF_ORDER, "out-of-order"),
    (Mark.KEEP_ALIVE, "keep-alive"),
    (Mark.KEEP_ALIVE_ACK, "keep-alive ACK"),
    (Mark.ZERO_WINDOW_PROBE, "zero-window probe"),
    (Mark.ZERO_WINDOW_PROBE_ACK, "zero-window probe ACK"),
    (Mark.ZERO_WINDOW, "zero window"),
    (Mark.DUPLICATE_ACK, "dup ACK"),
    (Mark.WINDOW_UPDATE, "window update"),
    (Mark.LOST_SEGMENT, "previous segment not captured"),
    (Mark.ACKED_UNSEEN, "ACKed unseen segment"),
)


_MARK_BITS = tuple((int(m), w) for m, w in _MARK_WORDS)  # plain ints: an IntFlag's & costs a microsecond


def mark_words(marks: int) -> list[str]:
    """Human words for the marks, in a fixed order."""
    marks = int(marks)
    if not marks:
        return []
    return [w for m, w in _MARK_BITS if marks & m]


@dataclass(frozen=True, slots=True)
class Options:
    """The TCP options worth showing; raw keeps the bytes for anything else."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()  # absolute (left, right) edges
    ts_val: int | None = None
    ts_ecr: int | None = None
    raw: bytes = b""

    def describe(self, sack_base: int = 0) -> str:
        """tcpdump-like '<mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>' without the brackets."""
        parts = []
        if self.mss is not None:
            parts.append(f"mss {self.mss}")
        if self.sack_permitted:
            parts.append("sackOK")
        if self.ts_val is not None:
            parts.append(f"TS val {self.ts_val} ecr {self.ts_ecr}")
        if self.wscale is not None:
            parts.append(f"wscale {self.wscale}")
        if self.sack:
            blocks = " ".join(f"{(a - sack_base) & 0xFFFFFFFF}:{(b - sack_base) & 0xFFFFFFFF}" for a, b in self.sack)
            parts.append(f"sack {blocks}")
        return ",".join(parts)


_NO_OPTIONS = Options()
_SACK_EDGE = struct.Struct("!II")
_TS = struct.Struct("!II")


def parse_options(raw: bytes) -> Options:
    """Parse the option bytes after the fixed header; stops quietly at anything malformed."""
    if not raw:
        return _NO_OPTIONS
    mss = wscale = ts_val = ts_ecr = None
    sack_ok = False
    sack: list[tuple[int, int]] = []
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            break
        length = raw[i + 1]
        if length < 2 or i + length > n:
            break
        body = raw[i + 2 : i + length]
        if kind == 2 and length == 4:
            mss = int.from_bytes(body, "big")
        elif kind == 3 and length == 3:
            wscale = body[0]
        elif kind == 4 and length == 2:
            sack_ok = True
        elif kind == 5 and (length - 2) % 8 == 0:
            sack.extend(_SACK_EDGE.unpack_from(body, j) for j in range(0, length - 2, 8))
        elif kind == 8 and length == 10:
            ts_val, ts_ecr = _TS.unpack(body)
        i += length
    return Options(mss, wscale, sack_ok, tuple(sack), ts_val, ts_ecr, bytes(raw))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a connection: address, port, and the name it goes by in steps and diagrams."""

    ip: str
    port: int
    name: str  # from the caller's address map, else the role ("client" / "server")
    role: str  # "client" or "server"

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a connection, with the numbers a reader of a ladder diagram wants.

    seq and ack are relative to each side's initial sequence number, as in
    Wireshark (a side whose SYN was not captured starts at 1).
    """

    index: int  # position in its connection, from 0
    frame: int  # frame number in the capture file, from 1 (as Wireshark numbers them)
    ts: float  # capture time, seconds since the epoch
    time: float  # seconds since the connection's first segment
    sender: str  # "client" or "server"
    src: Endpoint
    dst: Endpoint
    flags: int
    seq: int
    ack: int  # 0 when the ACK flag is not set
    raw_seq: int
    raw_ack: int
    window: int  # as on the wire, not scaled
    payload_len: int
    options: Options
    marks: Mark
    _conn: Connection | None = field(default=None, repr=False, compare=False)
    _where: tuple[int, int, int] | None = field(default=None, repr=False, compare=False)  # file offset, caplen, link

    @property
    def receiver(self) -> str:
        return "server" if self.sender == "client" else "client"

    @property
    def letters(self) -> str:
        """Flags as 'S', 'SA', 'A', 'PA', 'FA', 'FPA', 'R', 'RA'."""
        return _LETTERS[self.flags & 0x1FF]

    @property
    def tcpdump(self) -> str:
        """Flags as tcpdump shows them: 'S', 'S.', '.', 'P.', 'F.', 'R', 'R.'."""
        return _TCPDUMP[self.flags & 0x1FF]

    @property
    def is_retransmission(self) -> bool:
        """True where Wireshark's filter tcp.analysis.retransmission matches (fast and spurious too)."""
        return bool(self.marks & Mark.ANY_RETRANSMISSION)

    @property
    def is_keepalive(self) -> bool:
        return bool(self.marks & Mark.KEEP_ALIVE)

    @property
    def seq_end(self) -> int:
        """Relative sequence number after this segment (SYN and FIN count one)."""
        return self.seq + self.payload_len + (1 if self.flags & (SYN | FIN) else 0)

    def describe(self) -> str:
        """A one-line tcpdump-like summary: 'client > server P. seq 1:6 ack 1 win 502 len 5'."""
        parts = [f"{self.src.name} > {self.dst.name}", self.tcpdump]
        if self.payload_len:
            parts.append(f"seq {self.seq}:{self.seq + self.payload_len}")
        else:
            parts.append(f"seq {self.seq}")
        if self.flags & ACK:
            parts.append(f"ack {self.ack}")
        parts.append(f"win {self.window}")
        opts = self.options.describe(self._sack_base())
        if opts:
            parts.append(f"<{opts}>")
        parts.append(f"len {self.payload_len}")
        words = mark_words(self.marks)
        if words:
            parts.append("[" + ", ".join(words) + "]")
        return " ".join(parts)

    def _sack_base(self) -> int:
        return (self.raw_ack - self.ack) & 0xFFFFFFFF if self.flags & ACK else 0

    def frame_bytes(self) -> bytes | None:
        """The captured bytes of this segment's frame, read again from the capture file (None if unknown)."""
        if self._conn is None or self._where is None or self._conn.source is None:
            return None
        from .pcap import read_frame_at

        offset, caplen, _link = self._where
        return read_frame_at(self._conn.source, offset, caplen)

    def payload(self) -> bytes | None:
        """The captured payload bytes (may be shorter than payload_len if the snap length cut them)."""
        pkt = self.to_scapy()
        from scapy.layers.inet import TCP

        if pkt is None or TCP not in pkt:
            return None
        return bytes(pkt[TCP].payload)[: self.payload_len]

    def to_scapy(self) -> Any:
        """This segment as a scapy packet, dissected from the capture file's bytes.

        Without the file (a capture read from a stream), a packet is built from
        the header fields, with a zero-filled payload of the right length.
        """
        from . import scapy_view

        return scapy_view.segment_packet(self)
