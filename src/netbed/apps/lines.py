"""Splitting a byte stream into lines, for stdin and for sockets alike.

TCP delivers bytes, not lines: one read may hold half a line or three. The
book's readline hides this behind a buffer; this is that buffer.
"""

from __future__ import annotations


class LineBuffer:
    """Collects bytes and hands out complete lines (with their newline)."""

    def __init__(self):
        self.pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add DATA; return the lines it completed, oldest first."""
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        return [line + b"\n" for line in lines]

    def take_rest(self) -> bytes:
        """The partial last line, if any (at EOF the book prints it as it is)."""
        rest, self.pending = self.pending, b""
        return rest
