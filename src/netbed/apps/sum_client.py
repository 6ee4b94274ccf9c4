"""The book's sum client (5.18, tcpcli08 and tcpcli09): two numbers per line, their sum back.

Text mode sends the line as it is and prints the server's answer. Binary mode
reads two integers from the line (as sscanf "%ld%ld" would), sends them as a
structure in the chosen byte order and size, and prints the integer in the
reply structure. A client and a server with different --byte-order or
--int-size show 5.18's point: the answer is wrong, or someone waits for bytes
that never come (--timeout turns that wait into status 11).

Results go to stdout, one per line. A rejected line (the server's "input
error", or a line without two integers) gives one line on stderr; the client
goes on with the next line, as the book's does, and ends with status 12.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

from netbed.apps import args as appargs
from netbed.apps import sockets, status, sumproto
from netbed.apps.events import Emitter, write_line
from netbed.apps.status import Fatal

MAXLINE = 4096

EVENTS_HELP = """\
events (--report; one line each on stderr; parse with netbed.apps.events.parse_event):
  connected local= peer= mode= byte_order= int_size=
  sum arg1= arg2= result=          binary mode: a reply decoded
  rejected line= reason=           a line the client or the server refused
  error status= message= [call= errno=]
  done"""


def build_parser() -> appargs.Parser:
    parser = appargs.Parser(
        "sum_client",
        "Sum client (UNP 5.18, tcpcli08/09): reads \"a b\" lines from stdin and prints a+b\n"
        "as computed by sum_server, one result a line.",
        epilog=status.CLIENT_STATUS_HELP + "\n\n" + EVENTS_HELP,
    )
    parser.add_argument("host", help="server address or name")
    parser.add_argument("--port", type=appargs.port, default=9877, help="server port (default 9877)")
    sumproto.add_format_arguments(parser)
    parser.add_argument("--timeout", type=appargs.positive_seconds, metavar="S",
                        help="give up (status 11) when a reply is not complete after S seconds (default: wait for ever)")
    parser.add_argument("--report", action="store_true", help="print event lines on stderr")
    return parser


class Reader:
    """Reads replies, whole lines or exactly N bytes, with the book's failure messages."""

    def __init__(self, sock: socket.socket, timeout: float | None):
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""

    def line(self) -> bytes:
        deadline = self._deadline()
        while b"\n" not in self.buffer:
            self._recv("a reply line", None, deadline)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line + b"\n"

    def exactly(self, size: int) -> bytes:
        deadline = self._deadline()
        while len(self.buffer) < size:
            self._recv(f"{size} bytes", size, deadline)
        record, self.buffer = self.buffer[:size], self.buffer[size:]
        return record

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _recv(self, what: str, need: int | None, deadline: float | None) -> None:
        have = len(self.buffer)
        self.sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
        try:
            data = self.sock.recv(MAXLINE)
        except socket.timeout:
            raise Fatal(status.REPLY_TIMEOUT, f"sum_client: no reply after {self.timeout:g} s "
                        f"(waiting for {what}, have {have})", kind="reply_timeout", have=have) from None
        except OSError as exc:
            raise Fatal.from_oserror("read", exc) from None
        if not data:
            if have:
                raise Fatal(status.PREMATURE, f"sum_client: short reply: {have} bytes then EOF (waiting for {what})",
                            kind="premature", have=have)
            raise status.premature()
        self.buffer += data


def run(opts, emit: Emitter) -> int:
    sock = sockets.tcp_connect(opts.host, opts.port)
    emit("connected", local=sockets.address(sock.getsockname()), peer=sockets.address(sock.getpeername()),
         mode=opts.mode, byte_order=opts.byte_order, int_size=opts.int_size)
    reader = Reader(sock, opts.timeout)
    args, result = sumproto.formats(opts.byte_order, opts.int_size)
    rejected = 0
    try:
        for line in sys.stdin.buffer:
            if opts.mode == "text":
                _send(sock, line if line.endswith(b"\n") else line + b"\n")
                answer = reader.line()
                if answer == sumproto.INPUT_ERROR:
                    rejected += 1
                    _reject(emit, line, "input error", "server says input error")
                else:
                    write_line(1, answer)
                continue
            pair = sumproto.parse_pair(line)
            try:
                record = args.pack(*pair) if pair else None
            except struct.error:
                record = None
            if pair is None or record is None:  # no pair: no record
                rejected += 1
                reason = "need two integers" if pair is None else f"out of range for {opts.int_size}-bit integers"
                _reject(emit, line, "invalid input", reason)
                continue
            _send(sock, record)
            (total,) = result.unpack(reader.exactly(result.size))
            write_line(1, str(total))
            emit("sum", arg1=pair[0], arg2=pair[1], result=total)
    finally:
        sock.close()
    return status.INPUT_REJECTED if rejected else status.OK


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError as exc:
        raise Fatal.from_oserror("write", exc) from None


def _reject(emit: Emitter, line: bytes, what: str, reason: str) -> None:
    text = line.decode("utf-8", "replace").rstrip("\n")
    emit("rejected", line=text, reason=reason)
    write_line(2, f"sum_client: {what}: {text!r} ({reason})")


def main(argv=None) -> int:
    opts = build_parser().parse_args(argv)
    emit = Emitter(2, enabled=opts.report)
    try:
        code = run(opts, emit)
    except Fatal as failure:
        emit("error", status=failure.status, message=failure.message, **failure.fields)
        write_line(2, failure.message)
        return failure.status
    except KeyboardInterrupt:
        return 130
    emit("done", status=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
