"""Structured event lines: what the programs print so that tests read facts, not guesses.

One event is one line of ``key=value`` pairs, the event name first and a wall-clock
time stamp last (the same clock as the capture, so events line up with packets)::

    event=accepted pid=812 child=815 peer=10.0.0.3:40000 t=1732441200.123456

A value is written bare when it has no space, quote, backslash, ``=`` or control
character and would not read back as a number; otherwise it is a JSON string
(``message="Connection reset by peer"``). `parse_event` turns a line back into a
dict: bare integers become ints, bare decimals (``1.500000``) floats, everything
else stays a string.

Lines are written with one ``os.write`` each, not through ``sys.stdout``: a signal
handler may print while the main code is printing (a buffered stream raises
"reentrant call" then), and a forked child must not inherit half-filled buffers.
A line shorter than PIPE_BUF is written atomically, so a server and its children
can share one pipe without interleaving.
"""

from __future__ import annotations

import json
import os
import re
import time

_INT = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")
_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')
_NEEDS_QUOTES = re.compile(r'[\s"\\=\x00-\x1f\x7f]')


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text) or _INT.fullmatch(text) or _DECIMAL.fullmatch(text):
        return json.dumps(text)
    return text


def format_event(name: str, **fields: object) -> str:
    """The event line (no newline) for NAME and FIELDS; None values are left out."""
    parts = [f"event={_render(name)}"]
    parts += [f"{key}={_render(value)}" for key, value in fields.items() if value is not None]
    return " ".join(parts)


def parse_event(line: str) -> dict | None:
    """The fields of an event line as a dict (``"event"`` holds the name), or None.

    Returns None for any line that is not an event (an echo, the book's
    "accept error: ..." message), so a caller can feed it every output line.
    """
    line = line.strip()
    if not line.startswith("event="):
        return None
    fields: dict = {}
    pos = 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        if not match:
            return None
        key, raw = match.groups()
        if raw.startswith('"'):
            try:
                fields[key] = json.loads(raw)
            except ValueError:
                return None
        elif _INT.fullmatch(raw):
            fields[key] = int(raw)
        elif _DECIMAL.fullmatch(raw):
            fields[key] = float(raw)
        else:
            fields[key] = raw
        pos = match.end()
    return fields


class Emitter:
    """Writes event lines to a file descriptor, each flushed at once.

    ``enabled=False`` makes it silent (a client prints events only with --report).
    Every event carries the writer's pid, read at each call because a forked
    child keeps using its parent's emitter.
    """

    def __init__(self, fd: int, enabled: bool = True):
        self.fd = fd
        self.enabled = enabled

    def __call__(self, name: str, **fields: object) -> None:
        if not self.enabled:
            return
        line = format_event(name, pid=os.getpid(), **fields, t=round(time.time(), 6))
        write_line(self.fd, line)


def write_line(fd: int, text: str | bytes) -> None:
    """Write TEXT and a newline to FD in one system call, unbuffered.

    A reader that went away (EPIPE) is ignored: losing a log line must not change
    how a program behaves on the network.
    """
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if not data.endswith(b"\n"):
        data += b"\n"
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:
        pass
