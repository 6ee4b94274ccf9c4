"""One pass over a capture: its connections, each handed on as soon as it is over.

Two engines do the same pass. The C speedups (``_speedups.c``, built where
netbed is installed with a compiler) decode and analyse in one loop; the
standard-library reader and :class:`~netbed.tcp.connection.Analyzer` are the
reference, run inside the hosts and wherever the speedups are not built (or
``NETBED_PURE_PYTHON=1``). Both give the same connections, segment by segment
(tests/unit/test_tcp_speedups.py).

Memory does not grow with the capture: a connection is handed on once it has
closed and stayed quiet for LINGER_NS, and its segments are not held: they are
read again from the file, from its first record to its last, when asked for.
"""

from __future__ import annotations

import gc
import mmap
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from operator import attrgetter
from typing import BinaryIO

from .connection import _CODE, LINGER_NS, SWEEP_NS, Analyzer, Connection, _Full
from .decode import TcpTuple, _decode
from .formats import (
    CHUNK,
    _PCAP_HDR,
    _PCAP_MAGIC,
    _PCAP_REC,
    MAX_RECORD,
    PcapError,
    ReadStats,
    _pcap_header,
    _records,
    _Source,
    _truncated,
    open_source,
)
from .pcap import reverse_key

try:
    from . import _speedups
except ImportError:  # not built: no compiler where netbed was installed, or running from the source tree
    _speedups = None  # type: ignore[assignment]  # mypy types a module as never None; every use checks first

__all__ = ["analyze", "connections", "reread", "reread_batches", "speedups_built"]

Source = str | os.PathLike | BinaryIO | bytes
Keep = bool | Callable[[Connection], bool]

_I64_MAX = (1 << 63) - 1
_BATCH = 8192
"""Segments the Python engine analyses between two hand-overs of finished connections."""


def speedups_built() -> bool:
    """True when the C speedups are there and not turned off by NETBED_PURE_PYTHON=1."""
    return _speedups is not None and os.environ.get("NETBED_PURE_PYTHON", "") in ("", "0")


def connections(
    source: Source,
    names: Mapping[str, str] | None = None,
    *,
    keep_segments: Keep = True,
    allow_truncated: bool = False,
    stats: ReadStats | None = None,
    speedups: bool | None = None,
    progress: Callable[[int], object] | None = None,
) -> Generator[Connection, None, None]:
    """The TCP connections of a capture, each as soon as it is over (closed, then quiet), the rest at the end.

    The order is that in which they end; ids number them in order of first
    appearance. Memory stays bounded whatever the size of the capture.
    speedups: None uses the C engine where built, False the Python one.
    progress, if given, is called now and then with how many bytes of the
    source have been read so far (about a megabyte apart).
    Raises PcapError as analyze() does. The cyclic garbage collector is paused
    until the generator ends (the analysis makes no cycles; the collector would
    walk every object it holds, a quarter of the time on large captures).
    """
    stats = stats if stats is not None else ReadStats()
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if speedups is None:
        speedups = speedups_built()
    elif speedups and _speedups is None:
        raise RuntimeError("netbed.tcp._speedups is not built (install netbed where a C compiler is)")
    # Option bytes are needed only by segments held in memory; segments read again get their own.
    options = keep_segments is not False and (callable(keep_segments) or path is None)
    read, close = open_source(source)
    tick = None
    if progress is not None:
        raw_read, got = read, [0]

        def read(size: int) -> bytes:
            data = raw_read(size)
            got[0] += len(data)
            return data

        def tick(at: int | None = None) -> None:  # at: where a mapped read has got to
            progress(got[0] if at is None else at)

    handed = 0
    try:
        engine = _c_pass if speedups else _py_pass
        with _gc_paused():  # while the pass runs, the caller's code between two connections too
            run = engine(read, dict(names or {}), keep_segments, path, stats, allow_truncated, options, tick)
            for conn in run:
                handed += 1
                yield conn
    finally:
        close()
    if not handed and stats.tcp_cut:
        raise PcapError(
            f"the snap length cut the TCP headers of {stats.tcp_cut} packets and left no readable TCP segment "
            "(capture with tcpdump -s 0)"
        )


def analyze(
    source: Source,
    names: Mapping[str, str] | None = None,
    *,
    keep_segments: Keep = True,
    allow_truncated: bool = False,
    stats: ReadStats | None = None,
) -> list[Connection]:
    """Read a capture and return its TCP connections in order of first appearance.

    names maps addresses to host names ({"10.0.0.2": "server"}). With
    keep_segments (the default) each connection's segments can be had
    (``conn.segments``): read again from the file when asked for. A callable
    keeps the segments of the connections it accepts in memory; False keeps none.

    Memory grows with the number of connections, not of packets: each
    connection whose segments are not held is kept compact, its summaries and
    per-segment flags packed in one bytes object and unpacked when asked for
    (about 0.35 KiB for a short connection, plus 2 bytes a segment). Ten
    million packets of short echo connections (370,000 of them) peak at about
    180 MiB; a capture with millions of connections needs that much more.
    connections() streams them in flat memory instead.
    Raises PcapError when the file is not a readable capture, or when the
    snap length cut the headers of every TCP packet in it.
    """
    shared: dict = {}
    found = [
        conn if conn._keep and conn._raw is not None else conn._compact(shared)  # segments held: as they are
        for conn in connections(
            source, names, keep_segments=keep_segments, allow_truncated=allow_truncated, stats=stats
        )
    ]
    found.sort(key=attrgetter("id"))
    return found


analyze_file = analyze


@contextmanager
def _gc_paused() -> Iterator[None]:
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _py_pass(
    read: Callable[[int], bytes],
    names: dict[str, str],
    keep: Keep,
    path: str | None,
    stats: ReadStats,
    allow_truncated: bool,
    options: bool,
    tick: Callable[[], None] | None,
) -> Iterator[Connection]:
    done: list[Connection] = []
    analyzer = Analyzer(names, keep, path, stats, on_done=done.append)
    segments = _decode(_records(read, allow_truncated, stats), stats, lambda: None, options)
    while True:
        batch = list(islice(segments, _BATCH))
        if batch:
            analyzer.feed(batch)
            if tick is not None:
                tick()
        else:
            analyzer.close()
        yield from done
        done.clear()
        if not batch:
            return


def _c_pass(
    read: Callable[[int], bytes],
    names: dict[str, str],
    keep: Keep,
    path: str | None,
    stats: ReadStats,
    allow_truncated: bool,
    options: bool,
    tick: Callable[[], None] | None,
) -> Iterator[Connection]:
    done: list[Connection] = []

    def factory(first: tuple) -> tuple[_Full, bool, int, int, int]:
        cid, ts, key, seq, ack, flags, _keylen = first
        conn = _Full(cid, (ts, key, seq, ack, flags), names, False, path, live=False)
        if callable(keep):
            conn._keep = held = bool(keep(conn))
        else:
            conn._keep = bool(keep)
            held = conn._keep and path is None
            if conn._keep and not held:
                conn._raw = None
        return conn, held, conn._client_dir, _CODE[conn._initial[0]], _CODE[conn._initial[1]]

    def finish(conn: _Full, summary: tuple, raw: list[TcpTuple] | None) -> None:
        conn._load(summary, raw)
        done.append(conn)

    engine = _speedups.Analyzer(factory, finish, LINGER_NS, SWEEP_NS, options)
    src = _Source(read)
    try:
        if src.fill(4) and src.buf[:4] in _PCAP_MAGIC:
            yield from _c_pcap(engine, src, done, stats, allow_truncated, tick, path)
        else:  # pcapng (C takes the runs of packet blocks), and every kind of bad file
            feed = engine.feed_frame
            records = _records(_replay(src, read), allow_truncated, stats, fast=engine.feed_pcapng)
            n = 0
            for rec in records:
                if rec is None or n == _BATCH:  # C took a run of blocks, or Python a batch of them
                    if tick is not None:
                        tick()
                    yield from done
                    done.clear()
                    n = 0
                    if rec is None:
                        continue
                try:
                    feed(*rec)
                except OverflowError:  # a timestamp past 2262 (fuzzed files): the C engine saturates it
                    feed(max(min(rec[0], _I64_MAX), -_I64_MAX), *rec[1:])
                n += 1
            engine.close()
            yield from done
            done.clear()
    finally:
        _add_stats(stats, engine.stats())


def _c_pcap(
    engine: _speedups.Analyzer,
    src: _Source,
    done: list[Connection],
    stats: ReadStats,
    allow_truncated: bool,
    tick: Callable[..., None] | None,
    path: str | None = None,
) -> Iterator[Connection]:
    """Classic pcap: C walks every whole record of each chunk; Python reads the chunks and judges the tail.

    A regular file is mapped a window at a time instead of read (each byte
    copied once less, twice less than read and joined), and each window is
    unmapped before the next, so memory stays flat; its tail (a record cut
    short, or a corrupt one) is read as a stream's is.
    """
    header = _pcap_header(src, stats, False)
    if header is None:
        return
    endian, scale, link = header
    src.pos = 24
    try:
        f = open(path, "rb", buffering=0) if path is not None and os.path.isfile(path) else None
    except OSError:
        f = None
    if f is None:
        yield from _c_pcap_read(engine, src, done, stats, allow_truncated, tick, endian, scale, link)
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        little = endian == "<"
        feed = engine.feed_pcap
        gran = mmap.ALLOCATIONGRANULARITY
        at = 24  # the file offset of the next record
        wide = False  # the last window could not hold a whole record: map the largest one can be
        while at + 16 <= size:
            base = at - at % gran
            length = min(at - base + 16 + MAX_RECORD if wide else CHUNK, size - base)  # progress a MiB apart
            with mmap.mmap(f.fileno(), length, offset=base, access=mmap.ACCESS_READ) as window:
                pos = feed(window, at - base, little, scale, link, base)
            if tick is not None:
                tick(base + pos)
            yield from done
            done.clear()
            if base + pos == at:
                if wide or base + length == size:
                    break
                wide = True
            else:
                wide = False
            at = base + pos
        f.seek(at)
        tail = _Source(f.read, at)
        yield from _c_pcap_read(engine, tail, done, stats, allow_truncated, tick, endian, scale, link, mapped=True)


def _c_pcap_read(
    engine: _speedups.Analyzer,
    src: _Source,
    done: list[Connection],
    stats: ReadStats,
    allow_truncated: bool,
    tick: Callable[..., None] | None,
    endian: str,
    scale: int,
    link: int,
    mapped: bool = False,
) -> Iterator[Connection]:
    """_c_pcap's records from src.pos on, read from a stream, to the end (mapped: the tail of a mapped file)."""
    little = endian == "<"
    rec = _PCAP_REC[endian].unpack_from
    feed = engine.feed_pcap
    while True:
        src.pos = feed(src.buf, src.pos, little, scale, link, src.base)
        if tick is not None:
            tick(src.base + len(src.buf)) if mapped else tick()
        if not src.fill(16):
            if src.left():
                _truncated(src, "record header", 16, allow_truncated, stats)
            engine.close()
            ended = True
        else:
            caplen = rec(src.buf, src.pos)[2]
            ended = False
            if src.left() < 16 + caplen:
                if caplen > MAX_RECORD:
                    raise PcapError(
                        f"corrupt pcap: record at byte {src.base + src.pos} claims {caplen} captured bytes"
                    )
                if not src.fill(16 + caplen):
                    _truncated(src, "record", 16 + caplen, allow_truncated, stats)
                    engine.close()
                    ended = True
        yield from done
        done.clear()
        if ended:
            return


def _replay(src: _Source, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """A read that first gives back what src has already read, then reads on."""
    pending = [src.buf[src.pos :]]

    def again(n: int) -> bytes:
        if pending:
            return pending.pop()
        return read(n)

    return again


def _add_stats(stats: ReadStats, counts: tuple[int, ...]) -> None:
    frames, tcp, not_tcp, cut, tcp_cut, bogus, fragments, unknown_link = counts
    stats.frames += frames
    stats.tcp += tcp
    stats.not_tcp += not_tcp
    stats.cut += cut
    stats.tcp_cut += tcp_cut
    stats.bogus += bogus
    stats.fragments += fragments
    stats.unknown_link += unknown_link


def reread(conn: Connection) -> Iterator[TcpTuple]:
    """A connection's segments, read again from its capture file (classic pcap: from its first record on).

    Raises PcapError if the file no longer holds them (it was changed since).
    """
    for batch in reread_batches(conn):
        yield from batch


def reread_batches(conn: Connection) -> Iterator[list[TcpTuple]]:
    """reread(conn)'s segments in lists (one per chunk of the file read), for callers that take them in bulk."""
    path = conn.source
    if path is None:
        raise ValueError(f"connection {conn.id} has no capture file to read its segments from")
    keys = (conn._key, reverse_key(conn._key))
    first_off, last_off = conn._first_off, conn._last_off
    n = 0
    try:
        f = open(path, "rb", buffering=0)
    except OSError as exc:
        raise PcapError(f"cannot read the segments of connection {conn.id} again from {path}: {exc.strerror}") from None
    records: Iterable[tuple]  # the records Python decodes: none where C picked the segments
    with f:
        head = f.read(24)
        if head[:4] in _PCAP_MAGIC and first_off >= 40 and speedups_built():
            for batch in _c_pick(f, head, conn, keys):
                n += len(batch)
                yield batch
            records = ()
            first_frame = 1
        elif head[:4] in _PCAP_MAGIC and first_off >= 40:
            start = first_off - 16
            f.seek(start)
            pending = [head]

            def read(size: int) -> bytes:
                return pending.pop() + f.read(size) if pending else f.read(size)

            records = _records(read, True, None, base=start - 24)
            first_frame = conn.first_frame
        else:
            f.seek(0)
            records = _records(f.read, True, None)
            first_frame = 1
        batch = []
        for t in _decode(records, ReadStats(), lambda: None, True, first_frame):
            foff = t[9]
            if foff > last_off:
                break
            if foff >= first_off and t[1] in keys:
                batch.append(t)
                if len(batch) == _BATCH:
                    n += len(batch)
                    yield batch
                    batch = []
        if batch:
            n += len(batch)
            yield batch
    if n != conn.packets:
        raise PcapError(f"{path} changed since it was read: connection {conn.id} had {conn.packets} segments, now {n}")


def _c_pick(f: BinaryIO, head: bytes, conn: Connection, keys: tuple[bytes, bytes]) -> Iterator[list[TcpTuple]]:
    """reread's classic-pcap path in C: only the connection's own segments become tuples (a list per window).

    The file is mapped a window at a time (not read: a connection spread over a
    gigabyte of other traffic would be copied twice for a few bytes of each
    record); each window is unmapped before the next, so memory stays flat.
    """
    endian, scale = _PCAP_MAGIC[head[:4]]
    little = endian == "<"
    link = _PCAP_HDR[endian].unpack_from(head, 0)[6] & 0x0FFFFFFF
    first_off, last_off = conn._first_off, conn._last_off
    size = os.fstat(f.fileno()).st_size
    gran = mmap.ALLOCATIONGRANULARITY
    at = first_off - 16  # the file offset of the next record
    frame = conn.first_frame - 1
    wide = False  # the last window could not hold a whole record: map the largest one can be
    while at + 16 <= size:
        base = at - at % gran
        length = min(at - base + 16 + MAX_RECORD if wide else _WINDOW, size - base)
        out: list[TcpTuple] = []
        with mmap.mmap(f.fileno(), length, offset=base, access=mmap.ACCESS_READ) as window:
            pos, frame, done = _speedups.pick_pcap(
                window, at - base, little, scale, link, base, frame, keys, first_off, last_off, out
            )
        if out:
            yield out
        if done:  # past the connection
            break
        if base + pos == at:
            if wide or base + length == size:  # a record that cannot be whole (reread says so)
                break
            wide = True
        else:
            wide = False
        at = base + pos


_WINDOW = 1 << 23
"""How much of a file _c_pick maps at a time (more where a record needs it)."""
