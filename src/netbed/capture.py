"""What a recording is, whoever makes it: its limit, its closing counts, its notes as pcapng comments.

A backend records a testbed's traffic with tcpdump (`netbed.backend.compose.capture`
on one engine); this module holds what does not depend on where tcpdump runs,
so the front ends and the report read recordings without an engine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from netbed.errors import NetbedError
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
