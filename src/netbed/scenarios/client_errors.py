"""How a client program failed: the kind of error, from what it says, how it ended and when.

The book's clients tell their failures apart by errno: after a crash of the
server host `readline` fails with ETIMEDOUT ("Connection timed out"), after
a reboot with ECONNRESET ("Connection reset by peer"), after the server
process died with EOF ("server terminated prematurely"). A user's client is
judged on the same evidence a person would use, in this order:

1. what it printed: a message naming an errno (its strerror text, its name,
   Python's exception or `[Errno N]`) or the end of file;
2. how it ended: killed by SIGPIPE is EPIPE's default action (UNP 5.13);
3. when it ended, against the wire: right after the server's RST is
   ECONNRESET, after its own last retransmission with nothing from the
   server is ETIMEDOUT (its TCP gave up), after the server's FIN is EOF.

Everything here is pure (no testbed), so the rules have unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence, TypeVar

STRERROR = {
    "ETIMEDOUT": "Connection timed out",
    "ECONNRESET": "Connection reset by peer",
    "EPIPE": "Broken pipe",
    "EHOSTUNREACH": "No route to host",
    "ECONNREFUSED": "Connection refused",
}
"""The errno kinds a client reports by name, and glibc's strerror text for each."""
ERRNO = {"ETIMEDOUT": 110, "ECONNRESET": 104, "EPIPE": 32, "EHOSTUNREACH": 113, "ECONNREFUSED": 111}
PYTHON = {"ETIMEDOUT": "TimeoutError", "ECONNRESET": "ConnectionResetError", "EPIPE": "BrokenPipeError",
          "ECONNREFUSED": "ConnectionRefusedError"}  # EHOSTUNREACH is a plain OSError: [Errno 113]
PREMATURE = "premature"
DESCRIBE = {**{k: f"{k} ({v!r})" for k, v in STRERROR.items()},
            PREMATURE: "end of file (the server 'terminated prematurely')"}
SIGPIPE = 13
RESET_WINDOW_S = 1.0
"""A client that reads the RST fails at once: its end comes within this long after the RST is captured."""

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (kind, re.compile("|".join([re.escape(STRERROR[kind]), rf"\b{kind}\b", rf"\[Errno {ERRNO[kind]}\]",
                                *([rf"\b{PYTHON[kind]}\b"] if kind in PYTHON else [])]), re.IGNORECASE))
    for kind in STRERROR
] + [(PREMATURE, re.compile(r"terminated prematurely|premature|\bEOF\b|end of file|end-of-file|closed|"
                            r"connection (was )?lost|hung up|server (has )?(gone|died|quit|exited)",
                            re.IGNORECASE))]


def kind_from_text(text: str) -> str | None:
    """The kind of error a line of a client's output names, or None.

    An errno's name or text wins over words of end of file: "read error:
    Connection reset by peer (connection closed)" is ECONNRESET.
    """
    for kind, pattern in _PATTERNS:
        if pattern.search(text):
            return kind
    return None


def kinds_said(lines: Iterable[str]) -> list[str]:
    """The kinds named in these lines, in the order first said, each once."""
    found: list[str] = []
    for line in lines:
        kind = kind_from_text(line)
        if kind and kind not in found:
            found.append(kind)
    return found


class _Seg(Protocol):
    """What the judging reads of a segment (netbed.tcp's Segment has it all; read only)."""

    @property
    def sender(self) -> str: ...
    @property
    def ts(self) -> float: ...
    @property
    def seq(self) -> int: ...
    @property
    def payload_len(self) -> int: ...
    @property
    def letters(self) -> str: ...


_S = TypeVar("_S", bound=_Seg)


@dataclass(frozen=True)
class WireEnd:
    """What the wire showed of a connection's end, in capture time (seconds since the epoch)."""

    reset_at: float | None = None      # the server's first RST
    fin_at: float | None = None        # the server's first FIN
    last_resend_at: float | None = None  # the client's last retransmission (by sequence numbers)
    resends: int = 0                   # how many times the client sent data again


def resent(segments: Iterable[_S], side: str = "client") -> list[_S]:
    """The segments of `side` that carry data already sent before: retransmissions, told by sequence numbers.

    Unlike Wireshark's heuristic, a 1-byte segment whose byte was sent before
    and never acknowledged is a retransmission here (the book's 5.13 client
    writes its first byte alone); only a data-less segment is never one.
    """
    highest: int | None = None
    found = []
    for s in segments:
        if s.sender != side or not s.payload_len:
            continue
        if highest is not None and s.seq < highest:
            found.append(s)
        end = s.seq + s.payload_len
        highest = end if highest is None else max(highest, end)
    return found


def resend_gaps(segments: Iterable[_Seg], side: str = "client") -> list[float]:
    """Seconds before each retransmission of `side` since the previous send of the same first byte."""
    last: dict[int, float] = {}
    gaps: list[float] = []
    highest: int | None = None
    for s in segments:
        if s.sender != side or not s.payload_len:
            continue
        if highest is not None and s.seq < highest and s.seq in last:
            gaps.append(s.ts - last[s.seq])
        last[s.seq] = s.ts
        highest = s.seq + s.payload_len if highest is None else max(highest, s.seq + s.payload_len)
    return gaps


def wire_end(segments: Sequence[_Seg]) -> WireEnd:
    """The facts `kind_from_timing` needs, from a connection's segments."""
    reset = next((s.ts for s in segments if s.sender == "server" and "R" in s.letters), None)
    fin = next((s.ts for s in segments if s.sender == "server" and "F" in s.letters), None)
    again = resent(segments, "client")
    return WireEnd(reset, fin, again[-1].ts if again else None, len(again))


def kind_from_timing(ended_at: float, wire: WireEnd, window: float = RESET_WINDOW_S) -> str | None:
    """The kind of error a silent client's end fits, by when it came against the wire (None: none fits).

    - the server's FIN came first (and before the end): the client read EOF;
    - the end follows the server's RST within `window`: ECONNRESET;
    - nothing from the server, the client retransmitted, and it ended after
      its last retransmission: its TCP gave up, ETIMEDOUT.
    """
    if wire.fin_at is not None and (wire.reset_at is None or wire.fin_at <= wire.reset_at) and ended_at >= wire.fin_at:
        return PREMATURE
    if wire.reset_at is not None:
        return "ECONNRESET" if wire.reset_at - 0.05 <= ended_at <= wire.reset_at + window else None
    if wire.resends and wire.last_resend_at is not None and ended_at > wire.last_resend_at:
        return "ETIMEDOUT"
    return None


@dataclass(frozen=True)
class Judgement:
    passed: bool
    observed: str
    kind: str | None  # the kind the client showed, however told


def judge(expected: str, said: list[str], code: int | None, signal: int | None, ended_at: float | None,
          wire: WireEnd | None, when: str = "") -> Judgement:
    """Whether a client's end shows the `expected` kind of error, and what was seen, in words.

    `said` is what it printed (stderr first), `code`/`signal` how it ended
    (both None: still running at the deadline), `ended_at` when (capture
    time), `wire` the connection's end; `when` is the book's situation
    ("after a crash of the server host"), for the message.
    """
    situation = f" {when}" if when else ""
    want = DESCRIBE.get(expected, expected)
    if code is None and signal is None:
        return Judgement(False, f"the client did not notice: still running at the deadline, where the book's "
                                f"client fails with {want}{situation}", None)
    how = f"killed by signal {signal}" if signal is not None else f"exit status {code}"
    kinds = kinds_said(said)
    last = next((line for line in reversed(said) if kind_from_text(line)), said[-1] if said else "")
    quoted = f"; it said {last!r}" if last else "; it said nothing"
    if kinds:
        if expected in kinds:
            return Judgement(True, f"{how}{quoted}", expected)
        other = kinds[-1]
        return Judgement(False, f"the client reports {DESCRIBE[other]} where the book's client gets {want}"
                                f"{situation} ({how}{quoted})", other)
    if signal == SIGPIPE:
        kind = "EPIPE"
        return Judgement(expected == kind, f"killed by SIGPIPE (EPIPE's default action){quoted}"
                         + ("" if expected == kind else f", where the book's client gets {want}{situation}"), kind)
    if code == 0 and signal is None:
        return Judgement(False, f"the client did not notice: it exited 0{' without a word' if not said else quoted}, "
                                f"where the book's client fails with {want}{situation}", None)
    timed = kind_from_timing(ended_at, wire) if ended_at is not None and wire is not None else None
    if timed == expected:
        return Judgement(True, f"{how}{quoted}; it ended when {DESCRIBE[expected]} comes, by the wire", expected)
    if timed is None:
        return Judgement(False, f"{how}{quoted}: a failure, but its moment fits no error on the wire "
                                f"(the book's client fails with {want}{situation})", None)
    return Judgement(False, f"{how}{quoted}: it ended when {DESCRIBE[timed]} comes, by the wire, where the "
                            f"book's client gets {want}{situation}", timed)
