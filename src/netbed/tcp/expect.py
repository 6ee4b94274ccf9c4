"""Expectations over a captured connection, in the spirit of packetdrill.

    expect(conn).sequence(
        "client > server  F.",     # FIN (with ACK)
        "server > client  .",      # ACK (may ride on the FIN below)
        "server > client  F.",
        "client > server  .",
    )

Step grammar (one string per step; whitespace separates tokens)::

    step     = HOST ">" HOST FLAGS {MODIFIER} [COUNT]
    HOST     = "client" | "server" | a name from the address map | "*" (either side)
    FLAGS    = tcpdump style: "S" "S." "." "P." "F." "FP." "R" "R." ...
             | letters:       "S" "SA" "A" "PA" "FA" "FPA" "R" "RA" ...
    MODIFIER = "retransmission" (what tcp.analysis.retransmission matches: also fast and spurious)
             | "new" (not a retransmission) | "keepalive" | "keepalive-ack"
             | "zero-window-probe" | "zero-window" | "dup-ack"
             | "data" (payload) | "nodata" | "len=N"
             | "within=T" | "after=T"  (T like 0.5s or 200ms: time since the previous step's segment)
    COUNT    = "?" (optional) | "+" (one or more) | "*" (any) | "N" | "N+" | "N-M"
               also glued to the last token: "retransmission+", "R.?"

Flags match exactly on F S R P and ACK (ECN bits are ignored unless
written): "." is a segment with ACK and nothing else, "P." one with PSH and
ACK. A step with flags "." and no modifier or count ("server > client .")
may also be satisfied by the next step's segment when that one comes from
the same side and carries ACK: the ACK rode on it (a FIN-ACK in place of an
ACK and a FIN).

Matching: the steps must appear in order as a subsequence of the
connection's segments. Before the first step anything may happen. Between
matched segments, by default only *noise* may interleave: segments without
SYN, FIN or RST that carry no data (pure ACKs, window updates, duplicate
ACKs) or are keep-alive or zero-window probes. strict=True allows nothing in
between; loose=True allows anything. A step with an explicit count takes a
maximal run: "P. retransmission 3" fails on a fourth retransmission before
the next step's segment (noise aside). After the last step anything may
follow. On a mismatch, ExpectationError shows the steps next to a ladder of
what was captured, with the first divergence marked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .connection import CloseKind, Connection
from .ladder import render_ladder
from .segments import ACK, CWR, ECE, FIN, NS, PSH, RST, SYN, URG, Mark, Segment, parse_flags

__all__ = [
    "ExpectationError",
    "Step",
    "parse_step",
    "expect",
    "Expect",
    "Match",
    "Gaps",
    "find",
    "retransmissions",
    "keepalive_probes",
    "first_reset",
    "time_between",
    "retransmission_gaps",
]

_EXACT = FIN | SYN | RST | PSH | ACK
_OPTIONAL_BITS = URG | ECE | CWR | NS
_NOISE_MARKS = Mark.KEEP_ALIVE | Mark.ZERO_WINDOW_PROBE
_INF = math.inf


class ExpectationError(AssertionError):
    """An expectation about a capture did not hold; the message shows what was captured."""


_MODS = {
    "retransmission": lambda s: bool(s.marks & Mark.ANY_RETRANSMISSION),
    "retransmitted": lambda s: bool(s.marks & Mark.ANY_RETRANSMISSION),
    "new": lambda s: not s.marks & Mark.ANY_RETRANSMISSION,
    "keepalive": lambda s: bool(s.marks & Mark.KEEP_ALIVE),
    "keep-alive": lambda s: bool(s.marks & Mark.KEEP_ALIVE),
    "keepalive-ack": lambda s: bool(s.marks & Mark.KEEP_ALIVE_ACK),
    "keep-alive-ack": lambda s: bool(s.marks & Mark.KEEP_ALIVE_ACK),
    "zero-window-probe": lambda s: bool(s.marks & Mark.ZERO_WINDOW_PROBE),
    "zero-window": lambda s: s.window == 0,
    "dup-ack": lambda s: bool(s.marks & Mark.DUPLICATE_ACK),
    "data": lambda s: s.payload_len > 0,
    "nodata": lambda s: s.payload_len == 0,
}
_COUNT = re.compile(r"^(?:(\d+)(?:-(\d+)|(\+))?|[?+*])$")
_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(s|ms|us)$")
_HEAD = re.compile(r"^\s*(\S+?)\s*>\s*(\S+)\s+(\S.*?)\s*$")


def _seconds(text: str, step: str) -> float:
    m = _TIME.match(text)
    if not m:
        raise ValueError(f"bad time {text!r} in step {step!r} (write e.g. 0.5s, 200ms)")
    return float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[m.group(2)]


def _count(tok: str) -> tuple[int, float] | None:
    m = _COUNT.match(tok)
    if not m:
        return None
    if tok == "?":
        return 0, 1
    if tok == "+":
        return 1, _INF
    if tok == "*":
        return 0, _INF
    lo = int(m.group(1))
    if m.group(3):
        return lo, _INF
    hi = int(m.group(2)) if m.group(2) else lo
    return lo, hi


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed step; see the module docstring for the grammar."""

    text: str
    src: str  # host name or role as written, or "*"
    dst: str
    flags: int
    extra_flags: int  # URG/ECE/CWR/NS written in the step: must be present
    modifiers: tuple[str, ...]
    length: int | None
    lo: int
    hi: float
    counted: bool  # a count was written: the run is maximal
    within: float | None
    after: float | None

    @property
    def rideable(self) -> bool:
        """A bare ACK step, which the next step's segment may satisfy."""
        return (
            self.flags == ACK
            and not self.modifiers
            and self.length is None
            and not self.counted
            and self.within is None
            and self.after is None
        )

    def __str__(self) -> str:
        return self.text


def parse_step(text: str) -> Step:
    """Parse 'client > server  P.  retransmission+'; raises ValueError saying what is wrong."""
    m = _HEAD.match(text)
    if not m:
        raise ValueError(f"step {text!r} is not 'SRC > DST FLAGS [modifiers] [count]'")
    src, dst, rest = m.groups()
    tokens = rest.split()
    lo: int = 1
    hi: float = 1
    counted = False
    last = tokens[-1]
    standalone = _count(last) if len(tokens) > 1 else None
    if standalone is not None:
        lo, hi = standalone
        counted = True
        tokens.pop()
    elif len(last) > 1 and last[-1] in "?+*":
        lo, hi = _count(last[-1])  # type: ignore[misc]
        counted = True
        tokens[-1] = last[:-1]
    try:
        flags = parse_flags(tokens[0])
    except ValueError as e:
        raise ValueError(f"step {text!r}: {e}") from None
    mods: list[str] = []
    length = within = after = None
    for tok in tokens[1:]:
        low = tok.lower()
        if low in _MODS:
            mods.append(low)
        elif low.startswith("len="):
            if not low[4:].isdigit():
                raise ValueError(f"step {text!r}: {tok!r} needs a number of bytes (len=5)")
            length = int(low[4:])
        elif low.startswith("within="):
            within = _seconds(low[7:], text)
        elif low.startswith("after="):
            after = _seconds(low[6:], text)
        else:
            known = ", ".join(sorted(_MODS)) + ", len=N, within=T, after=T"
            raise ValueError(f"step {text!r}: unknown modifier {tok!r} (known: {known})")
    return Step(
        text.strip(),
        src,
        dst,
        flags & _EXACT,
        flags & _OPTIONAL_BITS,
        tuple(mods),
        length,
        lo,
        hi,
        counted,
        within,
        after,
    )


def _noise(seg: Segment) -> bool:
    """May interleave between steps by default: no SYN/FIN/RST, and no data or a probe."""
    return not seg.flags & (SYN | FIN | RST) and (seg.payload_len == 0 or bool(seg.marks & _NOISE_MARKS))


class _Compiled:
    """A step bound to a connection: its roles resolved and a fast segment test."""

    __slots__ = ("step", "src", "dst", "tests")

    def __init__(self, step: Step, conn: Connection) -> None:
        self.step = step
        self.src = None if step.src == "*" else conn.side(step.src)
        self.dst = None if step.dst == "*" else conn.side(step.dst)
        if self.src is not None and self.src == self.dst:
            raise ValueError(f"step {step.text!r}: both ends are the {self.src}")
        self.tests = tuple(_MODS[m] for m in step.modifiers)

    def matches(self, seg: Segment, prev_time: float | None) -> bool:
        st = self.step
        if self.src is not None and seg.sender != self.src:
            return False
        if self.dst is not None and seg.receiver != self.dst:
            return False
        if seg.flags & _EXACT != st.flags or seg.flags & st.extra_flags != st.extra_flags:
            return False
        if st.length is not None and seg.payload_len != st.length:
            return False
        if any(not t(seg) for t in self.tests):
            return False
        if prev_time is not None:
            dt = seg.time - prev_time
            if st.within is not None and dt > st.within:
                return False
            if st.after is not None and dt < st.after:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Match:
    """Which segments each step matched (a step that rode on the next one shares its segment)."""

    connection: Connection
    steps: tuple[Step, ...]
    segments: tuple[tuple[Segment, ...], ...]  # per step, possibly empty for optional steps

    def __getitem__(self, i: int) -> tuple[Segment, ...]:
        return self.segments[i]

    def time_between(self, a: int, b: int) -> float:
        """Seconds from the first segment of step a to the first of step b (steps counted from 0)."""
        if not self.segments[a] or not self.segments[b]:
            raise ValueError(f"step {a if not self.segments[a] else b} matched no segment")
        return self.segments[b][0].time - self.segments[a][0].time


# --- the matcher ---------------------------------------------------------------------------------

# NFA state: (step index, repetitions of that step so far, index of a bare-ACK step riding on the
# next segment or -1, started); each maps to the path that reached it first: ((step, segment), ...).


def _run(conn: Connection, steps: Sequence[Step], mode: str) -> tuple[tuple | None, tuple, int]:
    """(accepted path or None, furthest path, index of the segment after it)."""
    comp = [_Compiled(s, conn) for s in steps]
    segs = conn.segments
    n = len(steps)
    timed = any(s.within is not None or s.after is not None for s in steps)

    def put(states: dict, key: tuple, path: tuple) -> None:
        """Keep one path per state: the first, unless another uses more distinct segments (fewer rides)."""
        old = states.get(key)
        if old is None or len({j for _, j in path}) > len({j for _, j in old}):
            states[key] = path

    def closure(states: dict) -> dict:
        out: dict = {}
        work = list(states.items())
        while work:
            key, path = work.pop(0)
            if key in out and len({j for _, j in path}) <= len({j for _, j in out[key]}):
                continue
            out[key] = path
            i, c, ride, started = key[:4]
            if i >= n:
                continue
            st = steps[i]
            last_counted = i == n - 1 and st.counted
            if ride >= 0:  # this step must take the segment the bare ACK rides on
                continue
            if c >= st.lo and not last_counted:
                work.append(((i + 1, 0, -1, started) + key[4:], path))
            if c == 0 and st.rideable and i + 1 < n and comp[i + 1].src == comp[i].src:
                work.append(((i + 1, 0, i, started) + key[4:], path))
        return out

    def skippable(seg: Segment, started: bool) -> bool:
        if not started or mode == "loose":
            return True
        return mode == "default" and _noise(seg)

    init = (0, 0, -1, False) + ((None,) if timed else ())
    cur = closure({init: ()})
    best: tuple = ()
    best_rank = (0, 0)
    for j, seg in enumerate(segs):
        for key, path in cur.items():
            if key[0] >= n:
                return path, path, j
        nxt: dict = {}
        for key, path in cur.items():
            i, c, ride, started = key[:4]
            st = steps[i]
            prev_time = segs[path[-1][1]].time if path else None
            fits = comp[i].matches(seg, prev_time) and (ride < 0 or bool(seg.flags & ACK))
            if i == n - 1 and st.counted and c >= st.lo and not fits and not skippable(seg, True):
                return path, path, j  # the final step's run ended here
            if fits and c < st.hi:
                new_path = path + (((ride, j),) if ride >= 0 else ()) + ((i, j),)
                # past its minimum an unbounded step's count no longer matters: cap it, so states stay few
                c2 = c + 1 if st.hi != _INF or c < max(st.lo, 1) else c
                put(nxt, (i, c2, -1, True) + ((j,) if timed else ()), new_path)
            if skippable(seg, started):
                put(nxt, key, path)
        put(nxt, init, ())
        cur = closure(nxt)
        for path in cur.values():
            if path:
                rank = (max(i for i, _ in path) + 1, len(path))
                if rank > best_rank:
                    best, best_rank = path, rank
    for key, path in cur.items():
        i, c = key[0], key[1]
        if i >= n or (i == n - 1 and steps[i].counted and c >= steps[i].lo):
            return path, path, len(segs)
    return None, best, (best[-1][1] + 1 if best else 0)


def _fail(conn: Connection, steps: Sequence[Step], best: tuple, at: int, mode: str, why: str) -> ExpectationError:
    done = {i for i, _ in best}
    matched: dict[int, list[int]] = {}
    for i, j in best:
        matched.setdefault(i, []).append(j)
    first_missing = next((i for i in range(len(steps)) if i not in done), len(steps) - 1)
    segs = conn.segments
    lines = [f"{why} in", f"connection {conn.id}: {conn.label()}", "", "expected:"]
    width = max(len(s.text) for s in steps)
    for i, st in enumerate(steps):
        if i in matched:
            frames = ", ".join(str(segs[j].frame) for j in matched[i][:6]) + (" ..." if len(matched[i]) > 6 else "")
            mark, note = "[ok]", f"frame {frames}"
        elif i == first_missing:
            after = f"after frame {segs[at - 1].frame}" if 0 < at <= len(segs) else "in the capture"
            stop = next((s for s in segs[at:] if mode == "strict" or not _noise(s)), None) if at else None
            blocker = f" (frame {stop.frame} fits no step here)" if stop is not None and mode != "loose" else ""
            mark, note = "[!!]", f"<- first divergence: not found {after}{blocker}"
        else:
            mark, note = "[  ]", ""
        lines.append(f"  {mark} {i + 1:>2}  {st.text:<{width}}  {note}".rstrip())
    notes: dict[int, str] = {}  # segment index -> the steps it matched
    for i, js in matched.items():
        for j in js:
            notes[j] = (notes[j] + ", " if j in notes else "") + f"step {i + 1}"
    lines += ["", f"captured (>> marks where step {first_missing + 1} was looked for):"]
    lines.append(render_ladder(conn, notes=notes, pointer=at, around=at if len(segs) > 60 else None, context=25))
    return ExpectationError("\n".join(lines))


# --- the public API --------------------------------------------------------------------------------


class Gaps(Sequence[float]):
    """Retransmission gaps in seconds, with checks that read like the book's claims."""

    def __init__(self, conn: Connection, gaps: list[float], side: str | None) -> None:
        self._conn = conn
        self._gaps = gaps
        self._side = side

    def __getitem__(self, i):  # type: ignore[override]
        return self._gaps[i]

    def __len__(self) -> int:
        return len(self._gaps)

    def __repr__(self) -> str:
        return f"Gaps({[round(g, 4) for g in self._gaps]})"

    def _raise(self, why: str) -> None:
        gaps = ", ".join(f"{g:.3f}" for g in self._gaps) or "none"
        raise ExpectationError(
            f"{why}\nretransmission gaps ({self._side or 'both sides'}): {gaps} s\n"
            + render_ladder(self._conn, around=_first_rtx(self._conn), context=30)
        )

    def at_least(self, n: int) -> Gaps:
        if len(self._gaps) < n:
            self._raise(f"expected at least {n} retransmissions, found {len(self._gaps)}")
        return self

    def roughly_doubling(self, tolerance: float = 0.3, min_gaps: int = 2) -> Gaps:
        """Each gap about twice the one before (exponential RTO backoff), within ±tolerance of 2.

        A first gap about equal to the second is allowed: Linux sends a tail
        loss probe about one RTO after the data, then backs off from there.
        """
        gaps = list(self._gaps)
        if len(gaps) < min_gaps:
            self._raise(f"expected at least {min_gaps} retransmission gaps to see a backoff, found {len(gaps)}")
        if len(gaps) >= 3 and 1 - tolerance <= gaps[1] / gaps[0] <= 1 + tolerance:
            gaps = gaps[1:]
        for a, b in zip(gaps, gaps[1:]):
            if not 2 * (1 - tolerance) <= b / a <= 2 * (1 + tolerance):
                self._raise(f"gaps are not roughly doubling: {a:.3f} s then {b:.3f} s (ratio {b / a:.2f})")
        return self

    def each_between(self, low: float, high: float) -> Gaps:
        for g in self._gaps:
            if not low <= g <= high:
                self._raise(f"gap {g:.3f} s is not between {low} and {high} s")
        return self

    def total_between(self, low: float, high: float) -> Gaps:
        total = sum(self._gaps)
        if not low <= total <= high:
            self._raise(f"retransmissions lasted {total:.3f} s, not between {low} and {high} s")
        return self


def _first_rtx(conn: Connection) -> int | None:
    return next((s.index for s in conn.segments if s.is_retransmission), None)


def _compare(what: str, value: int, at_least: int | None, at_most: int | None, exactly: int | None) -> str | None:
    if exactly is not None and value != exactly:
        return f"expected exactly {exactly} {what}, found {value}"
    if at_least is not None and value < at_least:
        return f"expected at least {at_least} {what}, found {value}"
    if at_most is not None and value > at_most:
        return f"expected at most {at_most} {what}, found {value}"
    return None


class Expect:
    """Assertions about one connection; each raises ExpectationError with a ladder, or returns self."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _raise(self, why: str, around: int | None = None) -> None:
        raise ExpectationError(f"{why} in\n" + render_ladder(self.conn, around=around, context=30))

    def sequence(self, *steps: str | Step, strict: bool = False, loose: bool = False) -> Match:
        """The steps appear in order (see the module docstring); returns which segments matched."""
        if strict and loose:
            raise ValueError("strict and loose exclude each other")
        parsed = tuple(s if isinstance(s, Step) else parse_step(s) for s in steps)
        if not parsed:
            raise ValueError("sequence() needs at least one step")
        mode = "strict" if strict else "loose" if loose else "default"
        path, best, at = _run(self.conn, parsed, mode)
        if path is None:
            raise _fail(self.conn, parsed, best, at, mode, "expected sequence not found")
        per: list[list[Segment]] = [[] for _ in parsed]
        segs = self.conn.segments
        for i, j in path:
            per[i].append(segs[j])
        return Match(self.conn, parsed, tuple(tuple(p) for p in per))

    def close(self, kind: CloseKind | str) -> Expect:
        """The connection ended this way (a CloseKind or its value, e.g. 'client-first')."""
        want = CloseKind(kind)
        if self.conn.close_kind != want:
            self._raise(f"expected close {want.value!r}, found {self.conn.close_kind.value!r}")
        return self

    def states(self, who: str, *path: str) -> Expect:
        """The side passed through these states in this order (others may come in between)."""
        role = self.conn.side(who)
        seen = self.conn.states[role]
        it: Iterator[str] = iter(seen)
        if not all(any(s == want for s in it) for want in path):
            self._raise(f"expected the {role} to pass through {' > '.join(path)}; it went {' > '.join(seen)}")
        return self

    def reset_by(self, who: str) -> Expect:
        """The first RST came from this side."""
        role = self.conn.side(who)
        if self.conn.first_reset != role:
            found = f"the first from the {self.conn.first_reset}" if self.conn.first_reset else "none"
            self._raise(f"expected an RST from the {role}, found {found}")
        return self

    def no_reset(self) -> Expect:
        if self.conn.resets:
            self._raise(f"expected no RST, found {len(self.conn.resets)} (first from the {self.conn.first_reset})")
        return self

    def retransmissions(
        self,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
        exactly: int | None = None,
        side: str | None = None,
    ) -> Expect:
        """Count what Wireshark's tcp.analysis.retransmission matches."""
        why = _compare("retransmissions", retransmissions(self.conn, side), at_least, at_most, exactly)
        if why:
            self._raise(why, _first_rtx(self.conn))
        return self

    def keepalive_probes(
        self,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
        exactly: int | None = None,
        side: str | None = None,
    ) -> Expect:
        why = _compare("keep-alive probes", keepalive_probes(self.conn, side), at_least, at_most, exactly)
        if why:
            self._raise(why)
        return self

    def retransmission_gaps(self, side: str | None = None) -> Gaps:
        """The gaps before each retransmission, for checks such as roughly_doubling()."""
        return Gaps(self.conn, retransmission_gaps(self.conn, side), side)


def expect(conn: Connection) -> Expect:
    """Start an expectation about a connection: expect(conn).sequence(...), .close(...), ..."""
    if not isinstance(conn, Connection):
        raise TypeError(f"expect() takes a Connection, not {type(conn).__name__}")
    return Expect(conn)


# --- helpers scenarios use directly -------------------------------------------------------------------


def retransmissions(conn: Connection, side: str | None = None) -> int:
    """How many segments Wireshark's filter tcp.analysis.retransmission matches (from one side or both)."""
    return conn.retransmissions if side is None else conn.count(Mark.ANY_RETRANSMISSION, side)


def keepalive_probes(conn: Connection, side: str | None = None) -> int:
    """How many keep-alive probes: Wireshark's tcp.analysis.keep_alive, but for those whose seq the peer
    never acknowledged (netbed calls a 1-byte one a retransmission)."""
    return conn.keepalive_probes if side is None else conn.count(Mark.KEEP_ALIVE, side)


def first_reset(conn: Connection) -> str | None:
    """'client' or 'server': who sent the first RST (None without one)."""
    return conn.first_reset


def retransmission_gaps(conn: Connection, side: str | None = None) -> list[float]:
    """Seconds before each retransmission since the previous send of the same data."""
    return conn.retransmission_gaps(side)


def find(conn: Connection, step: str | Step) -> list[Segment]:
    """Every segment that one step (without its count) matches, in order."""
    st = step if isinstance(step, Step) else parse_step(step)
    comp = _Compiled(st, conn)
    return [s for s in conn.segments if comp.matches(s, None)]


def time_between(conn: Connection, first: str | Step, then: str | Step) -> float:
    """Seconds from the first segment matching `first` to the first segment after it matching `then`."""
    a = find(conn, first)
    if not a:
        raise ExpectationError(f"no segment matches {str(first)!r} in\n" + render_ladder(conn))
    b = [s for s in find(conn, then) if s.index > a[0].index]
    if not b:
        raise ExpectationError(
            f"no segment matches {str(then)!r} after frame {a[0].frame} in\n" + render_ladder(conn, pointer=a[0].index)
        )
    return b[0].time - a[0].time
