"""A capture with netbed's notes in it: pcapng whose packet comments say what netbed did and saw.

tcpdump writes pcap, which has no place for words. After a run the capture
is rewritten as pcapng (same frames, same nanosecond times) and every note
(a fault injected, a program started or ended, an error it printed) becomes
a comment on the first frame captured at or after its instant, so Wireshark
shows "netbed: crash server" right where the wire changes, and
`tshark -Y frame.comment` lists them in order. Notes after the last frame go
on the last frame; the section comment holds all of them at their exact
instants, so none is lost, and `read_notes` gives them back from there.

Standard library only, as the rest of netbed.tcp.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from netbed.tcp.pcap import Frame, read_frames

PREFIX = "netbed: "
SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
OPT_END, OPT_COMMENT, SHB_USERAPPL, IF_TSRESOL = 0, 1, 4, 9
BYTE_ORDER_MAGIC = 0x1A2B3C4D


@dataclass(frozen=True, order=True)
class Note:
    """Something netbed did or saw, at an instant on the capture's clock (the hosts share the kernel's)."""

    ts_ns: int
    text: str

    def comment(self) -> str:
        return f"{PREFIX}{self.text}"


def annotate(pcap: str | os.PathLike, out: str | os.PathLike, notes: Iterable[Note]) -> int:
    """Write `pcap`'s frames to `out` as pcapng with `notes` as comments; returns the frames written.

    `out` is written beside and renamed into place, so a reader never sees half a file.
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        with open(partial, "wb") as sink:
            written = write_pcapng(read_frames(pcap, allow_truncated=True), sink, sorted(notes))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def write_pcapng(frames: Iterable[Frame], sink: BinaryIO, notes: list[Note]) -> int:
    """Frames and sorted notes as one pcapng section (an interface per link type, nanosecond stamps)."""
    summary = "\n".join(f"{n.ts_ns // 10**9}.{n.ts_ns % 10**9:09d} {n.comment()}" for n in notes)
    sink.write(_block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1),
                      [(OPT_COMMENT, summary.encode())] * bool(notes) + [(SHB_USERAPPL, b"netbed")]))
    interfaces: dict[int, int] = {}
    pending = iter(notes)
    waiting = next(pending, None)
    count = 0
    held: tuple[Frame, list[str]] | None = None  # one frame behind, so notes after the last frame go on it
    for frame in frames:
        if held is not None:
            _frame(sink, *held, interfaces)
        comments = []
        while waiting is not None and waiting.ts_ns <= frame.ts_ns:
            comments.append(waiting.comment())
            waiting = next(pending, None)
        held = (frame, comments)
        count += 1
    if held is not None:
        rest = [waiting.comment()] + [n.comment() for n in pending] if waiting is not None else []
        _frame(sink, held[0], held[1] + rest, interfaces)
    return count


def _frame(sink: BinaryIO, frame: Frame, comments: list[str], interfaces: dict[int, int]) -> None:
    if frame.link not in interfaces:
        interfaces[frame.link] = len(interfaces)
        sink.write(_block(IDB, struct.pack("<HHI", frame.link, 0, 0), [(IF_TSRESOL, bytes([9]))]))
    body = struct.pack("<IIIII", interfaces[frame.link], frame.ts_ns >> 32, frame.ts_ns & 0xFFFFFFFF,
                       len(frame.data), frame.wire_len) + _padded(frame.data)
    sink.write(_block(EPB, body, [(OPT_COMMENT, c.encode()) for c in comments]))


def _block(kind: int, body: bytes, options: list[tuple[int, bytes]]) -> bytes:
    opts = b"".join(struct.pack("<HH", code, len(value)) + _padded(value) for code, value in options)
    if opts:
        opts += struct.pack("<HH", OPT_END, 0)
    length = 12 + len(body) + len(opts)
    return struct.pack("<II", kind, length) + body + opts + struct.pack("<I", length)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def read_notes(path: str | os.PathLike) -> list[Note]:
    """netbed's notes in a capture it annotated, at their own instants (from the section comment).

    Reads the first block only, so it costs nothing on a large capture; a
    pcap, or a pcapng that netbed did not write, has none.
    """
    with open(path, "rb") as source:
        head = source.read(8)
        if len(head) < 8 or struct.unpack("<I", head[:4])[0] != SHB:
            return []
        length = struct.unpack("<I", head[4:])[0]
        block = head + source.read(max(0, length - 8))
    if len(block) < 28 or struct.unpack_from("<I", block, 8)[0] != BYTE_ORDER_MAGIC:
        return []
    notes, pos = [], 24
    while pos + 4 <= len(block) - 4:
        code, size = struct.unpack_from("<HH", block, pos)
        if code == OPT_END:
            break
        if code == OPT_COMMENT:
            for line in block[pos + 4:pos + 4 + size].decode(errors="replace").splitlines():
                stamp, _, text = line.partition(" ")
                seconds, _, fraction = stamp.partition(".")
                if text.startswith(PREFIX) and seconds.isdigit() and fraction.isdigit():
                    notes.append(Note(int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9]),
                                      text.removeprefix(PREFIX)))
        pos += 4 + size + (-size % 4)
    return notes
