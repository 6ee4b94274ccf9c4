"""Connection summaries as text and JSON, written piece by piece as the connections arrive.

What `netbed analyze` prints. A connection's per-segment lists (flags,
senders) are written in slices straight from its packed array, so that a
connection of millions of segments never becomes a list of millions of
strings, and the output of a whole capture is never held.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from .connection import Connection
from .segments import flag_letters

__all__ = ["write_text", "write_json", "Batched"]

_SLICE = 1 << 16
_LETTERS = tuple(flag_letters(v & 0x1FF) for v in range(1024))  # by flags | direction << 9
_QUOTED = tuple(json.dumps(s) for s in _LETTERS)
_SENDERS = tuple(tuple(('"client"', '"server"')[(v >> 9) ^ cd] for v in range(1024)) for cd in (0, 1))
"""By the connection's client direction, then by flags | direction << 9."""
_QUOTED_ROLE = {"client": '"client"', "server": '"server"'}


class Batched:
    """Collects small writes and passes them on joined, about a megabyte at a time (a write costs per call)."""

    __slots__ = ("_write", "_parts", "_size")

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self._parts: list[str] = []
        self._size = 0

    def __call__(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self._write("".join(self._parts))
        self._parts.clear()
        self._size = 0


def _joined(conn: Connection, table: tuple[str, ...], sep: str) -> Iterable[str]:
    fl = conn._fl
    first = True
    for i in range(0, len(fl), _SLICE):
        if not first:
            yield sep
        first = False
        yield sep.join(map(table.__getitem__, fl[i : i + _SLICE]))


def write_text(conn: Connection, write: Callable[[str], object]) -> None:
    """The connection as `netbed analyze` prints it: ends, flags, counts, close, states."""
    write(f"[{conn.id}] {conn.client} ({conn.client.name}) > {conn.server} ({conn.server.name})\n    flags: ")
    for piece in _joined(conn, _LETTERS, " "):
        write(piece)
    states = conn.states
    write(
        f"\n    retransmissions: {conn.retransmissions}  keepalive probes: {conn.keepalive_probes}  "
        f"resets: {', '.join(conn.resets) or 'none'}  close: {conn.close_kind.value}\n"
        f"    client: {' > '.join(states['client'])}\n"
        f"    server: {' > '.join(states['server'])}\n"
    )


def _head_and_tail(conn: Connection, quoted: dict[str, str]) -> tuple[str, str]:
    """json.dumps(summary(conn)) around its flags and senders, built by hand (three times faster).

    Addresses, numbers and state names need no escaping; names and reasons
    (a few distinct strings) are escaped by json.dumps once each (quoted).
    """

    def q(text: str) -> str:
        out = quoted.get(text)
        if out is None:
            out = quoted[text] = json.dumps(text)
        return out

    rtt = conn.initial_rtt
    states = conn.states
    gaps = ", ".join(map(repr, conn.retransmission_gaps()))
    resets = ", ".join(_QUOTED_ROLE[r] for r in conn.resets)
    client_states = '", "'.join(states["client"])
    server_states = '", "'.join(states["server"])
    head = (
        f'{{"id": {conn.id}, "client": "{conn.client}", "server": "{conn.server}", '
        f'"client_name": {q(conn.client.name)}, "server_name": {q(conn.server.name)}, '
        f'"roles": {q(conn.role_reason)}, "roles_guessed": {"true" if conn.roles_guessed else "false"}, '
        f'"start": {conn.first_ts!r}, "duration": {conn.duration!r}, "packets": {conn.packets}, '
    )
    tail = (
        f'"retransmissions": {conn.retransmissions}, "retransmission_gaps": [{gaps}], '
        f'"keepalive_probes": {conn.keepalive_probes}, "zero_window_probes": {conn.zero_window_probes}, '
        f'"resets": [{resets}], "close": "{conn.close_kind.value}", '
        f'"states": {{"client": ["{client_states}"], "server": ["{server_states}"]}}, '
        f'"initial_rtt": {"null" if rtt is None else repr(rtt)}}}'
    )
    return head, tail


def write_json(conns: Iterable[Connection], write: Callable[[str], object]) -> int:
    """A JSON array of to_json()'s objects, one connection per line; returns how many were written."""
    n = 0
    quoted: dict[str, str] = {}
    write("[")
    for conn in conns:
        head, tail = _head_and_tail(conn, quoted)
        write(("\n" if n == 0 else ",\n") + head + '"flags": [')
        for piece in _joined(conn, _QUOTED, ", "):
            write(piece)
        write('], "senders": [')
        for piece in _joined(conn, _SENDERS[conn._client_dir], ", "):
            write(piece)
        write("], " + tail)
        n += 1
    write("\n]\n" if n else "]\n")
    return n
