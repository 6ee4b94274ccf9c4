"""What a recording is, whoever makes it: its limit, its closing counts, merging, notes as pcapng comments.

A backend records a testbed's traffic with tcpdump (`netbed.backend.compose.capture`
on one engine, one recording per node on a Swarm); this module holds what does not
depend on where tcpdump runs, so the front ends and the report read recordings
without an engine.
"""

from __future__ import annotations

import heapq
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol

from netbed.errors import NetbedError
from netbed.tcp import Frame, read_frames
from netbed.tcp.annotate import Note, annotate

MAX_FRAMES = 1_000_000
MAX_FRAMES_CEILING = 2**31 - 1  # tcpdump's -c is an int
MAX_FRAMES_ENV = "NETBED_CAPTURE_MAX_PACKETS"


class CaptureError(NetbedError):
    pass


class CaptureLimitReached(CaptureError):
    """The recording stopped at its frame limit: the file is valid, but holds only the start."""


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class Capture:
    """A recording in progress: what records (on one engine, a container), the bridge, the file, its limit."""

    container_id: str
    bridge: str
    path: Path
    max_frames: int = MAX_FRAMES
    lifeline: Closeable | None = field(default=None, compare=False, repr=False)  # the attach that keeps it recording


def max_frames_from_env(env: dict[str, str] | None = None) -> int:
    """NETBED_CAPTURE_MAX_PACKETS, checked: a whole number of frames, 1 or more (tcpdump takes an int)."""
    text = (os.environ if env is None else env).get(MAX_FRAMES_ENV, "").strip()
    if not text:
        return MAX_FRAMES
    if not text.isdigit() or not 1 <= int(text) <= MAX_FRAMES_CEILING:
        raise CaptureError(f"{MAX_FRAMES_ENV}={text!r}: give a whole number of frames, 1 or more")
    return int(text)


@dataclass(frozen=True)
class CaptureStats:
    """tcpdump's own closing count: what it wrote and what the kernel dropped."""

    captured: int
    received: int
    dropped: int


def finished(path: Path) -> Path:
    """Where a recording is: its pcapng once annotated, else the pcap tcpdump writes."""
    annotated = path.with_suffix(".pcapng")
    return annotated if annotated.is_file() and not path.is_file() else path


def annotate_in_place(path: Path, notes: list[Note]) -> Path | None:
    """Rewrite the finished recording as pcapng with netbed's notes as comments (Wireshark shows them
    between the frames); the pcap goes, so there is one capture file. None if there was no recording."""
    if not path.is_file():
        return None
    annotated = path.with_suffix(".pcapng")
    annotate(path, annotated, notes)
    path.unlink()
    return annotated


def parse_stats(logs: str) -> CaptureStats | None:
    numbers = {}
    for key in ("captured", "received by filter", "dropped by kernel"):
        match = re.search(rf"(\d+) packets? {key}", logs)
        if match:
            numbers[key] = int(match.group(1))
    if len(numbers) < 3:
        return None
    return CaptureStats(numbers["captured"], numbers["received by filter"], numbers["dropped by kernel"])


MERGE_WINDOW_NS = 1_000_000_000
"""How far apart two nodes may record one frame (a frame between nodes is seen leaving one and reaching the other):
the clocks' offset plus the time on the wire. One machine: one clock, microseconds apart."""
PCAP_NS_MAGIC = 0xA1B23C4D


@dataclass(frozen=True)
class MergeStats:
    frames: int       # written
    duplicates: int   # the second sighting of a frame, by another node: left out


def merge(recordings: dict[str, Path], out: Path, window_ns: int = MERGE_WINDOW_NS) -> MergeStats:
    """One time-ordered pcap of a testbed recorded in several places (a Swarm's nodes), each frame once.

    A frame between hosts on two nodes is recorded by both: on the sender's
    node as it leaves, on the receiver's as it arrives, byte for byte the
    same (the overlay carries the Ethernet frame unchanged). A frame seen by
    another node within `window_ns` of an identical one is that same frame
    and is left out. A retransmission is never taken for one: Linux gives
    every IP packet of a connection its own IP ID, so a resent segment
    differs in its bytes. Frames are written in time order (the nodes' clocks
    must agree: see MERGE_WINDOW_NS), as a nanosecond pcap of the first
    recording's link type. Recordings still being written are read to their
    last whole frame.
    """
    streams = [_stamped(node, path) for node, path in recordings.items() if path.is_file() and path.stat().st_size]
    seen: dict[bytes, list[tuple[int, set[str]]]] = {}   # frame bytes -> [(first time, nodes that saw it)]
    horizon: list[tuple[int, bytes]] = []
    written = duplicates = 0
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as sink:
        header = False
        for ts, node, frame in heapq.merge(*streams, key=lambda item: item[0]):
            while horizon and horizon[0][0] < ts - window_ns:
                _, old = heapq.heappop(horizon)
                entries = seen.get(old)
                if entries:
                    entries.pop(0)
                    if not entries:
                        del seen[old]
            entries = seen.setdefault(frame.data, [])
            match = next((e for e in entries if node not in e[1]), None)
            if match is not None:
                match[1].add(node)
                duplicates += 1
                continue
            entries.append((ts, {node}))
            heapq.heappush(horizon, (ts, frame.data))
            if not header:
                sink.write(struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, 262144, frame.link))
                header = True
            _write_record(sink, frame)
            written += 1
        if not header:  # nothing recorded yet: still a valid, empty capture
            sink.write(struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, 262144, 1))
    partial.replace(out)
    return MergeStats(written, duplicates)


def _stamped(node: str, path: Path) -> Iterator[tuple[int, str, Frame]]:
    return ((frame.ts_ns, node, frame) for frame in read_frames(path, allow_truncated=True))


def _write_record(sink: BinaryIO, frame: Frame) -> None:
    sink.write(struct.pack("<IIII", frame.ts_ns // 10**9, frame.ts_ns % 10**9, len(frame.data), frame.wire_len))
    sink.write(frame.data)
