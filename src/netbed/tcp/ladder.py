"""Ladder diagrams of a connection: text for terminals and failure messages, SVG for reports.

A ladder puts the client on the left and the server on the right, one
arrow per segment in capture order, with the flags, relative seq/ack,
payload length and the time since the connection's first segment, and each
side's inferred state where it changes. follow() draws the same lines live
from a capture that tcpdump -U is still writing.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence

from .connection import _MARK_REC, Analyzer, Connection
from .decode import TcpTuple
from .pcap import ReadStats, read_tcp_following
from .scan import _speedups, connections, reread_batches, speedups_built
from .annotate import Note
from .segments import ACK, FIN, RST, SYN, Mark, Segment, mark_words

__all__ = [
    "segment_label",
    "render_ladder",
    "ladder_lines",
    "ladder_text",
    "with_segments",
    "render_ladder_svg",
    "follow",
]


def escape(text: str) -> str:
    """XML text and attribute escaping (xml.sax would cost 20 ms of import for this)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_STATE_W = 13  # wide enough for "SYN-RECEIVED"
_MIN_ARROW = 44


def segment_label(seg: Segment, options: bool = True) -> str:
    """'P. seq 1:6 ack 1 win 502 len 5 [retransmission]': what an arrow carries."""
    parts = [seg.tcpdump]
    parts.append(f"seq {seg.seq}:{seg.seq + seg.payload_len}" if seg.payload_len else f"seq {seg.seq}")
    if seg.flags & ACK:
        parts.append(f"ack {seg.ack}")
    parts.append(f"win {seg.window}")
    if seg.payload_len:
        parts.append(f"len {seg.payload_len}")
    if options and (seg.flags & SYN or seg.options.sack):
        opts = seg.options.describe(seg._sack_base())
        if opts:
            parts.append(f"<{opts}>")
    words = mark_words(seg.marks)
    if words:
        parts.append("[" + ", ".join(words) + "]")
    return " ".join(parts)


def _arrow(label: str, rightward: bool, width: int) -> str:
    body = f" {label} "
    if rightward:
        return "--" + body + "-" * max(1, width - len(body) - 3) + ">"
    return "<" + "-" * 2 + body + "-" * max(1, width - len(body) - 3)


def _line(conn: Connection, seg: Segment, width: int, changes: list[tuple[str, str]], options: bool) -> str:
    left = " > ".join(s for who, s in changes if who == "client")
    right = " > ".join(s for who, s in changes if who == "server")
    arrow = _arrow(segment_label(seg, options), seg.sender == "client", width)
    return f"{seg.frame:>6} {seg.time:>11.6f}  {left:<{_STATE_W}} {arrow}  {right}".rstrip()


class _Between:
    """netbed's notes that fall within a connection's span, handed out before the segment they precede."""

    def __init__(self, events: Sequence[Note], first: float, last: float) -> None:
        self._pending = [e for e in sorted(events) if first <= e.ts_ns / 1e9 <= last]

    def before(self, seg: Segment) -> list[str]:
        return self.at(seg.ts, seg.time)

    def at(self, ts: float, time: float) -> list[str]:
        """The lines of the notes due before a segment at capture time ts, time seconds into the connection."""
        lines = []
        while self._pending and self._pending[0].ts_ns / 1e9 <= ts:
            note = self._pending.pop(0)
            lines.append(f"{'':>6} {time - (ts - note.ts_ns / 1e9):>11.6f}  ~~ netbed: {note.text}")
        return lines


def _header(conn: Connection, width: int) -> list[str]:
    span = _STATE_W + 1 + width + 2  # from the client's state column to the server's
    cl = f"{conn.client.name} {conn.client}"
    sv = f"{conn.server.name} {conn.server}"
    lines = [
        f"{'frame':>6} {'time':>11}  {cl:<{span}}{sv}",
        f"{'':>6} {'':>11}  {conn.initial_state('client'):<{span}}{conn.initial_state('server')}",
    ]
    if conn.roles_guessed or not conn.syn_seen:
        lines.insert(0, f"(roles: {conn.role_reason})")
    return lines


def render_ladder(
    conn: Connection,
    *,
    notes: Mapping[int, str] | None = None,
    pointer: int | None = None,
    around: int | None = None,
    context: int = 12,
    options: bool = True,
    summary: bool = True,
    events: Sequence[Note] = (),
) -> str:
    """The connection as a text ladder, one line per segment.

    notes: text appended to the lines of given segment indexes (expect marks
    the steps it matched). pointer: a segment index marked '>>' at the left.
    around: show only `context` segments either side of that index.
    events: netbed's notes from the capture (`read_notes`), drawn as lines of
    their own between the segments, at their instants.
    """
    segs = conn.segments
    width = max([_MIN_ARROW] + [len(segment_label(s, options)) + 6 for s in segs])
    changes: dict[int, list[tuple[str, str]]] = {}
    for idx, who, state in conn.state_changes:
        changes.setdefault(idx, []).append((who, state))
    lines = [f"connection {conn.id}: {conn.label()}"] + _header(conn, width)
    lo, hi = 0, len(segs)
    if around is not None:
        lo, hi = max(0, around - context), min(len(segs), around + context + 1)
        if lo:
            lines.append(f"{'':>6} {'':>11}  ... {lo} earlier segment{'s' if lo > 1 else ''} ...")
    between = _Between(events, segs[0].ts if segs else 0.0, segs[-1].ts if segs else 0.0)
    for seg in segs[lo:hi]:
        lines.extend(between.before(seg))
        text = _line(conn, seg, width, changes.get(seg.index, []), options)
        if notes and seg.index in notes:
            text += f"   <- {notes[seg.index]}"
        lines.append((">>" + text[2:]) if pointer == seg.index else text)
    if pointer is not None and pointer >= len(segs):
        lines.append(">>     (end of the capture)")
    if hi < len(segs):
        later = len(segs) - hi
        lines.append(f"{'':>6} {'':>11}  ... {later} later segment{'s' if later > 1 else ''} ...")
    if summary:
        lines.append(_summary(conn))
    return "\n".join(lines)


def ladder_lines(
    conn: Connection, *, options: bool = True, events: Sequence[Note] = (), speedups: bool | None = None
) -> Iterator[str]:
    """render_ladder(conn)'s lines one by one, for connections too long to hold (events: as there).

    Segments that are not kept in memory are read from the file twice (for
    the width of the arrows, then to draw them), so that memory stays flat
    whatever the connection's length. speedups: None draws the segments'
    lines with the C speedups where built (the same lines, in a tenth of the
    time), False with the Python code here, the reference.
    """
    for text, block in _pieces(conn, options, events, speedups):
        if block:
            yield from text.split("\n")
        else:
            yield text


def ladder_text(
    conn: Connection, *, options: bool = True, events: Sequence[Note] = (), speedups: bool | None = None
) -> Iterator[str]:
    """ladder_lines(conn) as text to write: runs of whole lines, each line ending with a newline."""
    for text, _block in _pieces(conn, options, events, speedups):
        yield text + "\n"


def _pieces(
    conn: Connection, options: bool, events: Sequence[Note], speedups: bool | None
) -> Iterator[tuple[str, bool]]:
    """The ladder as (text, block): a line of its own, or (block) the lines of a run of segments, joined."""
    draw = _drawer(conn, options, speedups)
    if draw is None:
        width = max(_MIN_ARROW, max((len(segment_label(s, options)) + 6 for s in conn.iter_segments()), default=0))
    else:
        widest, i = 0, 0
        for batch in _batches(conn):
            w = draw(batch, i, -1)
            assert isinstance(w, int), "a negative width asks for the width"
            widest = max(widest, w)
            i += len(batch)
        width = max(_MIN_ARROW, widest)
    changes: dict[int, list[tuple[str, str]]] = {}
    for idx, who, state in conn.state_changes:
        changes.setdefault(idx, []).append((who, state))
    yield f"connection {conn.id}: {conn.label()}", False
    for line in _header(conn, width):
        yield line, False
    between = _Between(events, conn.first_ts, conn.first_ts + conn.duration)
    if draw is None:
        for seg in conn.iter_segments():
            for line in between.before(seg):
                yield line, False
            yield _line(conn, seg, width, changes.get(seg.index, []), options), False
    else:
        pending = between._pending
        first_ns = conn.first_ns
        i = 0
        for batch in _batches(conn):
            lo, n = 0, len(batch)
            # netbed's notes go before the first segment at or after their instant (as _Between.before)
            while pending and lo < n and pending[0].ts_ns / 1e9 <= batch[-1][0] / 1e9:
                at = pending[0].ts_ns / 1e9
                j = lo
                while not at <= batch[j][0] / 1e9:
                    j += 1
                if j > lo:
                    yield _lines(draw(batch[lo:j], i + lo, width)), True
                ts = batch[j][0]
                for line in between.at(ts / 1e9, (ts - first_ns) / 1e9):
                    yield line, False
                lo = j
            if lo < n:
                yield _lines(draw(batch[lo:] if lo else batch, i + lo, width)), True
            i += n
    for line in _summary(conn).split("\n"):
        yield line, False


def _lines(drawn: str | int) -> str:
    """What a draw with a width (not < 0) gives: the lines."""
    assert isinstance(drawn, str), "a width >= 0 asks for the lines"
    return drawn


def _drawer(
    conn: Connection, options: bool, speedups: bool | None
) -> Callable[[list[TcpTuple], int, int], str | int] | None:
    """The C speedups' ladder_draw bound to the connection, or None: the Python code draws its lines."""
    if speedups is None:
        speedups = speedups_built()
    if not speedups or _speedups is None or not conn._keep or conn._pairs is not None:  # None: no C, or live
        return None
    by_index: dict[int, tuple[list[str], list[str]]] = {}
    for idx, who, state in conn.state_changes:
        by_index.setdefault(idx, ([], []))[who == "server"].append(state)
    changes = [(idx, " > ".join(left), " > ".join(right)) for idx, (left, right) in sorted(by_index.items())]
    marks = b"".join(_MARK_REC.pack(i, m) for i, m in sorted(conn._marks.items()))
    f0, f1 = conn._flows
    fl, cd, first_ns, base0, base1 = conn._fl, conn._client_dir, conn.first_ns, f0.base, f1.base
    lad = _speedups.ladder_draw

    def draw(batch: list[TcpTuple], start: int, width: int) -> str | int:
        return lad(batch, start, fl, cd, base0, base1, first_ns, marks, changes, options, width)

    return draw


def _batches(conn: Connection) -> Iterator[list[TcpTuple]]:
    """The connection's segments as the reader's tuples, in lists: held in memory, or read again from the file."""
    raw = conn._raw
    if raw is None:
        yield from reread_batches(conn)
    else:
        for i in range(0, len(raw), 8192):
            yield raw[i : i + 8192]


def with_segments(
    path: str | os.PathLike, names: Mapping[str, str] | None = None, *, budget: int = 100_000
) -> Iterator[Connection]:
    """Every connection of a capture in order of id, each with its segments at hand, in bounded memory.

    A first pass counts each connection's segments; then each batch of
    consecutive connections holding at most `budget` segments in all is read
    with its segments kept in memory (the pass stops once the batch is
    complete). A connection longer than the budget comes alone, its segments
    read from the file when drawn.
    """
    counts = array("Q")
    for conn in connections(path, names, keep_segments=False):
        if conn.id >= len(counts):
            counts.extend([0] * (conn.id + 1 - len(counts)))
        counts[conn.id] = conn.packets
    start = 0
    while start < len(counts):
        end, total = start + 1, counts[start]
        while end < len(counts) and total + counts[end] <= budget:
            total += counts[end]
            end += 1
        lo, hi = start, end
        if total > budget:  # one long connection: its segments stay in the file
            wanted = connections(path, names, keep_segments=True)
        else:
            wanted = connections(path, names, keep_segments=lambda c: lo <= c.id < hi)
        batch = []
        for conn in wanted:
            if lo <= conn.id < hi:
                batch.append(conn)
                if len(batch) == hi - lo:
                    wanted.close()
                    break
        batch.sort(key=lambda c: -c.id)
        while batch:  # each let go once drawn
            yield batch.pop()
        start = end


def _summary(conn: Connection) -> str:
    st = conn.states
    parts = [
        f"close: {conn.close_kind.value}",
        f"retransmissions: {conn.retransmissions}",
        f"keep-alive probes: {conn.keepalive_probes}",
    ]
    if conn.resets:
        parts.append("RST from " + ", ".join(conn.resets))
    return "; ".join(parts) + "\nstates: client " + " > ".join(st["client"]) + "; server " + " > ".join(st["server"])


# --- SVG ----------------------------------------------------------------------------------------

_W = 860
_XC, _XS = 250, 610  # lifelines
_TOP = 96
_ROW = 34
_SLOPE = 16
_COLORS = {
    "rst": "#cf222e",
    "rtx": "#d4730b",
    "ka": "#8250df",
    "syn": "#1a7f37",
    "fin": "#0969da",
    "data": "#24292f",
    "ack": "#6e7781",
}


def _kind(seg: Segment) -> str:
    if seg.flags & RST:
        return "rst"
    if seg.marks & Mark.ANY_RETRANSMISSION:
        return "rtx"
    if seg.marks & (Mark.KEEP_ALIVE | Mark.KEEP_ALIVE_ACK | Mark.ZERO_WINDOW_PROBE):
        return "ka"
    if seg.flags & SYN:
        return "syn"
    if seg.flags & FIN:
        return "fin"
    return "data" if seg.payload_len else "ack"


def _fmt_gap(gap: float) -> str:
    if gap >= 1:
        return f"{gap:.1f} s"
    return f"{gap * 1000:.0f} ms" if gap >= 0.001 else f"{gap * 1e6:.0f} µs"


def render_ladder_svg(conn: Connection, *, title: str | None = None) -> str:
    """A self-contained SVG sequence diagram of the connection, for reports.

    Vertical space grows with the log of the time between segments, so a
    handshake of microseconds and retransmissions seconds apart both read
    well; long silences get a dashed break with their length.
    """
    segs = conn.segments
    changes: dict[int, list[tuple[str, str]]] = {}
    for idx, who, state in conn.state_changes:
        changes.setdefault(idx, []).append((who, state))
    rows: list[tuple[float, Segment, float]] = []  # y, segment, gap before it
    y: float = _TOP + 40
    prev = None
    for seg in segs:
        gap = 0.0 if prev is None else seg.time - prev.time
        if prev is not None:
            y += _ROW + min(70.0, 9.0 * math.log10(1 + gap * 1e4)) + (12 if prev.marks else 0)
        rows.append((y, seg, gap))
        prev = seg
    height = int(y + _SLOPE + 90)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" '
        'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="11">',
        "<defs>",
    ]
    for name, color in _COLORS.items():
        out.append(
            f'<marker id="h-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
            'markerUnits="userSpaceOnUse" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    out.append(f'<rect width="{_W}" height="{height}" fill="#ffffff"/>')
    heading = title or f"connection {conn.id}: {conn.client.name} ⇄ {conn.server.name}"
    out.append(
        f'<text x="{_W / 2}" y="24" text-anchor="middle" font-size="14" font-weight="600" fill="#24292f">'
        f"{escape(heading)}</text>"
    )
    sub = (
        f"close: {conn.close_kind.value} · retransmissions: {conn.retransmissions}"
        f" · keep-alive probes: {conn.keepalive_probes}"
    )
    if conn.roles_guessed:
        sub += f" · roles guessed ({conn.role_reason})"
    out.append(f'<text x="{_W / 2}" y="42" text-anchor="middle" fill="#57606a">{escape(sub)}</text>')
    for x, end in ((_XC, conn.client), (_XS, conn.server)):
        out.append(f'<rect x="{x - 95}" y="54" width="190" height="34" rx="6" fill="#f6f8fa" stroke="#d0d7de"/>')
        out.append(
            f'<text x="{x}" y="69" text-anchor="middle" font-weight="600" fill="#24292f">{escape(end.name)}</text>'
        )
        out.append(f'<text x="{x}" y="82" text-anchor="middle" fill="#57606a">{escape(str(end))}</text>')
        out.append(f'<line x1="{x}" y1="88" x2="{x}" y2="{height - 40}" stroke="#d0d7de" stroke-width="2"/>')
    out.append(_state_box(_XC, _TOP + 14, conn.initial_state("client"), left=True))
    out.append(_state_box(_XS, _TOP + 14, conn.initial_state("server"), left=False))
    for y, seg, gap in rows:
        if gap >= 1.0:
            gy = y - (_ROW + min(70.0, 9.0 * math.log10(1 + gap * 1e4))) / 2 + 6
            out.append(
                f'<line x1="40" y1="{gy:.1f}" x2="{_W - 40}" y2="{gy:.1f}" stroke="#afb8c1" stroke-dasharray="2 4"/>'
            )
            out.append(
                f'<text x="{_W - 44}" y="{gy - 4:.1f}" text-anchor="end" fill="#8c959f">{_fmt_gap(gap)} later</text>'
            )
        kind = _kind(seg)
        color = _COLORS[kind]
        x1, x2 = (_XC, _XS) if seg.sender == "client" else (_XS, _XC)
        dash = ' stroke-dasharray="6 4"' if kind == "rtx" else ' stroke-dasharray="2 3"' if kind == "ka" else ""
        width = 2.4 if kind in ("rst", "rtx") else 1.4
        out.append(f"<g><title>{escape(f'frame {seg.frame}: ' + seg.describe())}</title>")
        out.append(
            f'<line x1="{x1}" y1="{y:.1f}" x2="{x2}" y2="{y + _SLOPE:.1f}" stroke="{color}" '
            f'stroke-width="{width}"{dash} marker-end="url(#h-{kind})"/>'
        )
        label = segment_label(seg, options=False)
        words = ""
        if "[" in label:
            label, words = label.split(" [", 1)
            words = "[" + words
        angle = math.degrees(math.atan2(_SLOPE if x2 > x1 else -_SLOPE, abs(x2 - x1)))  # text reads left to right
        mx, my = (x1 + x2) / 2, y + _SLOPE / 2 - 5
        weight = ' font-weight="700"' if kind in ("rst", "rtx") else ""
        out.append(
            f'<text x="{mx}" y="{my:.1f}" text-anchor="middle" fill="{color}"{weight} '
            f'transform="rotate({angle:.2f} {mx} {my + 5:.1f})">{escape(label)}</text>'
        )
        if words:
            out.append(
                f'<text x="{mx}" y="{my + 22:.1f}" text-anchor="middle" fill="{color}" font-style="italic" '
                f'transform="rotate({angle:.2f} {mx} {my + 5:.1f})">{escape(words)}</text>'
            )
        out.append(f'<text x="36" y="{y + 4:.1f}" fill="#57606a">{seg.time:.6f}</text>')
        out.append("</g>")
        for who, state in changes.get(seg.index, []):
            at_send = who == seg.sender
            sy = y if at_send else y + _SLOPE
            out.append(_state_box(_XC if who == "client" else _XS, sy, state, left=(who == "client")))
    ly = height - 22
    legend = [
        ("syn", "SYN"),
        ("data", "data"),
        ("ack", "ACK"),
        ("fin", "FIN"),
        ("rtx", "retransmission"),
        ("ka", "keep-alive / probe"),
        ("rst", "RST"),
    ]
    x = 40
    for kind, text in legend:
        out.append(f'<line x1="{x}" y1="{ly}" x2="{x + 22}" y2="{ly}" stroke="{_COLORS[kind]}" stroke-width="2"/>')
        out.append(f'<text x="{x + 27}" y="{ly + 4}" fill="#57606a">{text}</text>')
        x += 32 + 7 * len(text) + 14
    out.append("</svg>")
    return "\n".join(out)


def _state_box(x: float, y: float, state: str, left: bool) -> str:
    w = 7 * len(state) + 12
    bx = x - 10 - w if left else x + 10
    return (
        f'<g><rect x="{bx}" y="{y - 9:.1f}" width="{w}" height="17" rx="8" fill="#fff8c5" stroke="#d4a72c"/>'
        f'<text x="{bx + w / 2}" y="{y + 3:.1f}" text-anchor="middle" fill="#633c01" font-size="10">'
        f"{escape(state)}</text></g>"
    )


# --- live ---------------------------------------------------------------------------------------


def follow(
    path: str | os.PathLike,
    names: Mapping[str, str] | None = None,
    *,
    stop: Callable[[], bool] | None = None,
    idle: float | None = None,
    poll: float = 0.1,
    width: int = 60,
) -> Iterator[str]:
    """Ladder lines for a capture that is still being written, as its segments arrive.

    Waits (sleeping `poll` seconds at a time, never spinning) for the file to
    appear, for more records, and for the rest of a partially written one.
    Ends when stop() returns true while waiting, or after `idle` seconds
    without new bytes. Lines of several connections carry a [connection id].
    """
    stop = stop or (lambda: False)
    last = [time.monotonic()]

    def done() -> bool:
        return stop() or (idle is not None and time.monotonic() - last[0] > idle)

    stats = ReadStats()
    analyzer = Analyzer(names, keep_segments=False, source=path, stats=stats)
    for t in read_tcp_following(path, stop=done, poll=poll, stats=stats):
        last[0] = time.monotonic()
        conn, idx = analyzer.add(t)
        if idx == 0:
            yield f"[{conn.id}] new connection: {conn.label()}"
            for line in _header(conn, width):
                yield f"[{conn.id}] {line}"
        seg = conn.make_segment(idx, t)
        yield f"[{conn.id}] " + _line(conn, seg, width, conn.changes_at(idx), True)
