"""The book's sum server (5.18, tcpserv08 and tcpserv09): add two numbers per request.

Text mode reads lines "a b" and answers "a+b" or "input error". Binary mode
reads a structure of two integers and answers a structure with their sum, in
the byte order and integer size given: run two hosts with different switches
to see what happens between different architectures.
"""

from __future__ import annotations

import sys

from netbed.apps import forkserver, sumproto
from netbed.apps.args import Parser
from netbed.apps.lines import LineBuffer

MAXLINE = 4096


def text_sums(conn, emit) -> None:
    """tcpserv08's str_echo: one line in, its sum (or "input error") out."""
    lines = LineBuffer()
    while True:
        data = forkserver.read(conn, MAXLINE)
        if not data:
            return
        for line in lines.feed(data):
            pair = sumproto.parse_pair(line)
            if pair is None:
                emit("input_error", line=line.decode("utf-8", "replace").rstrip("\n"))
                forkserver.write(conn, sumproto.INPUT_ERROR)
            else:
                forkserver.write(conn, b"%d\n" % sum(pair))
                emit("sum", arg1=pair[0], arg2=pair[1], result=sum(pair))


def binary_sums(byte_order: str, int_size: int):
    """tcpserv09's str_echo for the given format: a struct in, a struct out."""
    args, result = sumproto.formats(byte_order, int_size)

    def serve(conn, emit) -> None:
        while True:
            record = read_record(conn, args.size)
            if record is None:
                return
            arg1, arg2 = args.unpack(record)
            total = sumproto.wrap(arg1 + arg2, int_size)
            forkserver.write(conn, result.pack(total))
            emit("sum", arg1=arg1, arg2=arg2, result=total)

    return serve


def read_record(conn, size: int) -> bytes | None:
    """The book's readn: exactly SIZE bytes, None at EOF between records."""
    record = b""
    while len(record) < size:
        data = forkserver.read(conn, size - len(record))
        if not data:
            if not record:
                return None
            raise forkserver.ChildError(f"short record: {len(record)} of {size} bytes, then EOF",
                                        call="readn", got=len(record), need=size)
        record += data
    return record


def main(argv=None) -> int:
    parser = Parser(
        "sum_server",
        "Fork-per-client server that adds two integers per request (UNP 5.18, tcpserv08/09):\n"
        "text lines \"a b\" or binary structures of a chosen byte order and integer size.",
        epilog=forkserver.help_epilog(
            "  sum arg1= arg2= result=                    a request answered\n"
            "  input_error line=                          text mode: a malformed line (\"input error\" sent)"),
    )
    forkserver.add_arguments(parser)
    sumproto.add_format_arguments(parser)
    opts = parser.parse_args(argv)
    serve = text_sums if opts.mode == "text" else binary_sums(opts.byte_order, opts.int_size)
    return forkserver.ForkServer(opts, serve, "sum_server").run()


if __name__ == "__main__":
    sys.exit(main())
