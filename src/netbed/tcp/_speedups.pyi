"""The C speedups' interface (_speedups.c), for the type checker; scan.py and ladder.py call them."""

from collections.abc import Callable
from typing import Any

from typing_extensions import Buffer

from .decode import TcpTuple

class Analyzer:
    def __init__(
        self,
        factory: Callable[[tuple[Any, ...]], tuple[Any, bool, int, int, int]],  # -> (conn, held, client_dir, states)
        finish: Callable[[Any, tuple[Any, ...], list[TcpTuple] | None], None],  # (conn, summary, raw)
        linger_ns: int,
        sweep_ns: int,
        options: bool = True,
    ) -> None: ...
    def feed_pcap(self, buf: Buffer, pos: int, little: bool, scale: int, link: int, base: int, /) -> int: ...
    def feed_pcapng(
        self, buf: Buffer, pos: int, little: bool, ifaces: list[tuple[int, int, int, int, int]], base: int, /
    ) -> int: ...
    def feed_frame(
        self, ts: int, link: int, buf: Buffer, start: int, caplen: int, wire: int, foff: int, /
    ) -> None: ...
    def close(self) -> None: ...
    def stats(self) -> tuple[int, int, int, int, int, int, int, int]: ...

def ladder_draw(
    segments: list[TcpTuple],
    start: int,
    fl: Buffer,
    client_dir: int,
    base0: int,
    base1: int,
    first_ns: int,
    marks: Buffer,
    changes: list[tuple[int, str, str]],
    options: bool,
    width: int,
    /,
) -> str | int: ...  # width < 0: the widest label + 6; else the lines
def pick_pcap(
    buf: Buffer,
    pos: int,
    little: bool,
    scale: int,
    link: int,
    base: int,
    frame: int,
    keys: tuple[bytes, ...],
    first_off: int,
    last_off: int,
    out: list[TcpTuple],
    /,
) -> tuple[int, int, bool]: ...
