"""Command-line parsing shared by the programs: one-line usage errors, checked values.

A bad switch must give one clear line on stderr and status 2, never a traceback
and never a guess (port 70000 is refused here, not by bind() later).
"""

from __future__ import annotations

import argparse
import ipaddress

from netbed.apps import status


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first)."""

    def __init__(self, prog: str, description: str, epilog: str | None = None):
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def error(self, message: str):
        self.exit(status.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def port(text: str) -> int:
    """A TCP port to connect to: 1-65535."""
    return _int_in(text, 1, 65535, "port")


def port_or_zero(text: str) -> int:
    """A port to listen on: 0-65535, 0 asks the kernel for a free one."""
    return _int_in(text, 0, 65535, "port")


def positive_int(text: str) -> int:
    return _int_in(text, 1, 2**31 - 1, "positive integer")


def int_range(low: int, high: int, what: str):
    """An argparse type for an integer in [LOW, HIGH] (the kernel's own limits)."""

    def check(text: str) -> int:
        return _int_in(text, low, high, what)

    return check


def seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (seconds, 0 or more)")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (seconds, more than 0)")
    return value


def ipv4(text: str) -> str:
    """A dotted-quad IPv4 address (the servers listen on IPv4, as the book's do)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid IPv4 address {text!r}") from None


def _int_in(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r} ({low}-{high})")
    return value
