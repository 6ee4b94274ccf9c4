"""The 5.18 sum protocol, text and binary, shared by sum_server and sum_client.

Text: a line "a b" gets the line "a+b", or "input error" (tcpserv08).
Binary: struct args {long arg1, arg2;} gets struct result {long sum;}
(tcpserv09), with the byte order and integer size chosen on the command line so
that hosts of different "architectures" can be mixed: a mismatch gives exactly
the wrong answer that struct predicts, or a reader waiting for bytes that
never come.
"""

from __future__ import annotations

import re
import struct

INPUT_ERROR = b"input error\n"
BYTE_ORDERS = {"big": ">", "little": "<", "network": "!", "native": "="}
INT_CODES = {32: "i", 64: "q"}

_PAIR = re.compile(rb"\s*([+-]?[0-9]+)\s+([+-]?[0-9]+)")


def add_format_arguments(parser) -> None:
    """--mode, --byte-order and --int-size, the same for server and client."""
    parser.add_argument("--mode", choices=("text", "binary"), default="text",
                        help="text lines (default) or binary structures")
    parser.add_argument("--byte-order", choices=tuple(BYTE_ORDERS), default="native",
                        help="binary mode: byte order of the integers (default native)")
    parser.add_argument("--int-size", type=int, choices=tuple(INT_CODES), default=64,
                        help="binary mode: integer size in bits (default 64, a long on x86-64)")


def formats(byte_order: str, int_size: int) -> tuple[struct.Struct, struct.Struct]:
    """The (args, result) structures: two integers in, one out."""
    prefix, code = BYTE_ORDERS[byte_order], INT_CODES[int_size]
    return struct.Struct(prefix + code * 2), struct.Struct(prefix + code)


def parse_pair(line: bytes) -> tuple[int, int] | None:
    """The two integers at the start of LINE, as sscanf("%ld%ld") reads them; None if absent."""
    match = _PAIR.match(line)
    return (int(match.group(1)), int(match.group(2))) if match else None


def wrap(value: int, bits: int) -> int:
    """VALUE as a signed BITS-bit integer: C's long addition wraps around."""
    half = 1 << (bits - 1)
    return (value + half) % (1 << bits) - half
