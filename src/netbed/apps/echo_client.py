"""The book's echo client (str_cli: tcpcli01, tcpcli04, tcpcli11, strcliselect02).

Echoes go to stdout as plain text, one write per line, so a person (or a
pseudo-terminal) sees just the echoes. Failures end the program with the
book's message on stderr and an exit status per kind of failure (see --help);
with --report, event lines on stderr also say what happened, with the socket
options read back from the kernel.

Modes differ in when the socket is looked at, which decides what a failure
looks like (the heart of 5.12-5.15):

* line (tcpcli01): read a line, send it, wait for its echo. While waiting for
  input the socket is not watched, so a server's FIN is noticed only at the
  next line: that line draws an RST and the read returns EOF.
* select (strcliselect02): poll stdin and the socket together; a FIN or an
  error is noticed at once; stdin EOF half-closes (shutdown SHUT_WR) and the
  client waits for the server's EOF.
* idle: hold the connections without reading stdin, until the socket fails
  (keepalive and heartbeat scenarios).
* --interval S: send "line 1", "line 2", ... every S seconds and print each
  echo with its round-trip time (the live demo).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import socket
import sys
import time

from netbed.apps import args as appargs
from netbed.apps import sockets, status
from netbed.apps.events import Emitter, write_line
from netbed.apps.lines import LineBuffer
from netbed.apps.status import Fatal

HEARTBEAT = b"\x01heartbeat"  # the heartbeat line is b"\x01heartbeat N\n"; the echo server returns it as is
READ_SIZE = 65536

EVENTS_HELP = """\
events (--report; one line each on stderr; parse with netbed.apps.events.parse_event):
  connected conn= local= peer= so_keepalive= tcp_keepidle= tcp_keepintvl= tcp_keepcnt=
            tcp_user_timeout= so_linger=       one per connection, options read back by getsockopt
  write bytes=                               data written (two per line with --write-twice)
  echo seq= rtt_ms=                          --interval: an echo came back
  heartbeat seq= unanswered= / heartbeat_reply seq=
  shutdown                                   select mode: stdin EOF, write side closed
  error status= message= [call= errno=] [kind=premature|heartbeat]
  done                                       normal end (status 0)
heartbeats travel in-band as the line "\\x01heartbeat N"; their echoes are not printed."""


def build_parser() -> appargs.Parser:
    parser = appargs.Parser(
        "echo_client",
        "Echo client (UNP str_cli, tcpcli01/04/11, strcliselect02): sends lines from stdin\n"
        "to the echo server and prints the echoes on stdout.",
        epilog=status.CLIENT_STATUS_HELP + "\n\n" + EVENTS_HELP,
    )
    parser.add_argument("host", help="server address or name")
    parser.add_argument("--port", type=appargs.port, default=9877, help="server port (default 9877)")
    parser.add_argument("--mode", choices=("line", "select", "idle"), default="line",
                        help="line: tcpcli01 (default); select: strcliselect02; idle: no stdin, hold the connection")
    parser.add_argument("--interval", type=appargs.positive_seconds, metavar="S",
                        help="instead of stdin, send \"line N\" every S seconds and print echoes with round-trip times")
    parser.add_argument("--count", type=appargs.positive_int, metavar="N", help="with --interval: stop after N lines")
    parser.add_argument("--connections", type=appargs.int_range(1, 1000, "connection count"), default=1, metavar="N",
                        help="open N connections, use the first, close all together at the end (tcpcli04)")
    parser.add_argument("--keepalive", action="store_true", help="set SO_KEEPALIVE")
    parser.add_argument("--keepidle", type=appargs.int_range(1, 32767, "seconds"), metavar="S",
                        help="with --keepalive: TCP_KEEPIDLE, idle seconds before the first probe")
    parser.add_argument("--keepintvl", type=appargs.int_range(1, 32767, "seconds"), metavar="S",
                        help="with --keepalive: TCP_KEEPINTVL, seconds between probes")
    parser.add_argument("--keepcnt", type=appargs.int_range(1, 127, "probe count"), metavar="N",
                        help="with --keepalive: TCP_KEEPCNT, unanswered probes before ETIMEDOUT")
    parser.add_argument("--user-timeout", type=appargs.int_range(0, 2**31 - 1, "milliseconds"), metavar="MS",
                        help="TCP_USER_TIMEOUT: ETIMEDOUT when sent data stays unacknowledged MS milliseconds")
    parser.add_argument("--linger0", action="store_true", help="SO_LINGER with timeout 0: close sends an RST")
    parser.add_argument("--write-twice", action="store_true",
                        help="write each line in two parts, first byte then the rest, with a pause between (tcpcli11, 5.13)")
    parser.add_argument("--write-pause", type=appargs.seconds, default=1.0, metavar="S",
                        help="with --write-twice: the pause (default 1 s, as the book)")
    parser.add_argument("--sigpipe", choices=("default", "ignore"), default="default",
                        help="default: killed by SIGPIPE as in the book; ignore: report EPIPE (status 6)")
    parser.add_argument("--heartbeat", type=appargs.positive_seconds, metavar="H",
                        help="send a heartbeat every H seconds (not in line mode)")
    parser.add_argument("--heartbeat-misses", type=appargs.positive_int, default=3, metavar="N",
                        help="declare the peer dead (status 9) when N heartbeats are unanswered (default 3)")
    parser.add_argument("--report", action="store_true", help="print event lines on stderr")
    return parser


def parse_options(argv=None):
    """The options, with the combinations that make no sense refused as usage errors."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    keep = [name for name in ("keepidle", "keepintvl", "keepcnt") if getattr(opts, name) is not None]
    if keep and not opts.keepalive:
        parser.error(f"--{keep[0]} needs --keepalive")
    if opts.interval is not None and opts.mode != "line":
        parser.error("--interval replaces --mode")
    if opts.count is not None and opts.interval is None:
        parser.error("--count needs --interval")
    opts.mode = "interval" if opts.interval is not None else opts.mode
    if opts.heartbeat is not None and opts.mode == "line":
        parser.error("--heartbeat needs --mode select, --mode idle or --interval (line mode does not watch the socket)")
    return opts


class EchoClient:
    """One run of the client: connect, loop over stdin/socket/timers, close all together."""

    def __init__(self, opts, emit: Emitter):
        self.opts = opts
        self.emit = emit
        self.socks: list[socket.socket] = []
        self.stdin_open = opts.mode in ("line", "select")
        self.stdin_lines = LineBuffer()
        self.queued: collections.deque[bytes] = collections.deque()  # line mode: read, not yet sent
        self.replies = LineBuffer()
        self.sent = self.received = 0  # bytes on the first connection, heartbeats included
        self.half_closed = False
        self.finished_by_server_eof = False
        self.heartbeat_seq = self.unanswered = 0
        self.interval_seq = 0
        self.interval_sent: collections.deque[float] = collections.deque()
        now = time.monotonic()
        self.heartbeat_due = now + opts.heartbeat if opts.heartbeat else None
        self.interval_due = now

    def run(self) -> None:
        try:
            self.connect()
            while not self.finished():
                self.step()
        finally:
            for sock in self.socks:  # all together, as at the book's exit()
                sock.close()

    def connect(self) -> None:
        for index in range(self.opts.connections):
            sock = sockets.tcp_connect(self.opts.host, self.opts.port, self.configure)
            self.socks.append(sock)
            self.emit("connected", conn=index, local=sockets.address(sock.getsockname()),
                      peer=sockets.address(sock.getpeername()), **sockets.read_options(sock))

    def configure(self, sock: socket.socket) -> None:
        opts = self.opts
        if opts.keepalive:
            sockets.set_keepalive(sock, opts.keepidle, opts.keepintvl, opts.keepcnt)
        if opts.user_timeout is not None:
            sockets.set_user_timeout(sock, opts.user_timeout)
        if opts.linger0:
            sockets.set_linger0(sock)

    @property
    def outstanding(self) -> int:
        return self.sent - self.received

    def finished(self) -> bool:
        mode = self.opts.mode
        if mode == "line":
            return not self.stdin_open and not self.queued and not self.outstanding
        if mode == "select":
            return self.finished_by_server_eof
        if mode == "interval":
            return self.count_reached() and not self.outstanding
        return False

    def step(self) -> None:
        """Do what is due, then wait for input, an echo or the next timer."""
        if self.opts.mode == "line" and self.queued and not self.outstanding:
            self.send(self.queued.popleft())
            return
        now = time.monotonic()
        deadlines = []
        if self.heartbeat_due is not None and not self.half_closed:
            if now >= self.heartbeat_due:
                self.beat()
                self.heartbeat_due = now + self.opts.heartbeat  # never a burst after a long write pause
            deadlines.append(self.heartbeat_due)
        if self.opts.mode == "interval" and not self.interval_sent and not self.count_reached():
            if now >= self.interval_due:
                self.send_numbered_line()
            else:
                deadlines.append(self.interval_due)
        timeout = None if not deadlines else max(0, min(deadlines) - time.monotonic())
        self.wait(timeout)

    def wait(self, timeout: float | None) -> None:
        poller = select.poll()
        mode = self.opts.mode
        watch_stdin = self.stdin_open and (mode == "select" or not self.outstanding)
        if watch_stdin:
            poller.register(0, select.POLLIN)
        if mode != "line" or self.outstanding:
            poller.register(self.socks[0], select.POLLIN)
        if mode != "line":
            for sock in self.socks[1:]:
                poller.register(sock, select.POLLIN)
        ready = poller.poll(None if timeout is None else int(timeout * 1000) + 1)
        by_fd = {sock.fileno(): index for index, sock in enumerate(self.socks)}
        for fd, _ in ready:
            if fd == 0:
                self.read_stdin()
            elif by_fd[fd] == 0:
                self.read_replies()
            else:
                self.read_other(by_fd[fd])

    def read_stdin(self) -> None:
        try:
            data = os.read(0, READ_SIZE)
        except OSError:  # no stdin at all, or a pseudo-terminal whose other end closed: end of input
            data = b""
        lines = self.stdin_lines.feed(data)
        if not data:
            self.stdin_open = False
            rest = self.stdin_lines.take_rest()
            lines += [rest] if rest else []
        if self.opts.mode == "line":
            self.queued.extend(lines)
        else:
            for line in lines:
                self.send(line)
            if not data:  # strcliselect02: half-close, then read until the server's EOF
                self.sock_call("shutdown", self.socks[0].shutdown, socket.SHUT_WR)
                self.half_closed = True
                self.emit("shutdown")

    def read_replies(self) -> None:
        data = self.sock_call("read", self.socks[0].recv, READ_SIZE)
        if not data:
            if self.half_closed:
                self.show_rest()
                self.finished_by_server_eof = True
                return
            raise status.premature()
        self.received += len(data)
        for line in self.replies.feed(data):
            self.show(line)
        if not self.outstanding and not self.stdin_open:
            self.show_rest()

    def read_other(self, index: int) -> None:
        """A connection other than the first (tcpcli04) should only ever end: report how."""
        if not self.sock_call("read", self.socks[index].recv, READ_SIZE):
            raise status.premature()

    def show(self, line: bytes) -> None:
        if line.startswith(HEARTBEAT):
            self.unanswered = 0
            self.emit("heartbeat_reply", seq=line[len(HEARTBEAT):].strip().decode("ascii", "replace"))
        elif self.opts.mode == "interval" and self.interval_sent:
            rtt_ms = (time.monotonic() - self.interval_sent.popleft()) * 1000
            text = line.decode("utf-8", "replace").rstrip("\n")
            write_line(1, f"{text} (rtt {rtt_ms:.3f} ms)")
            self.emit("echo", seq=self.interval_seq, rtt_ms=round(rtt_ms, 3))
        else:
            write_line(1, line)

    def show_rest(self) -> None:
        rest = self.replies.take_rest()
        if rest:
            write_line(1, rest)

    def count_reached(self) -> bool:
        return self.opts.count is not None and self.interval_seq >= self.opts.count

    def send_numbered_line(self) -> None:
        self.interval_seq += 1
        self.interval_due = time.monotonic() + self.opts.interval
        self.interval_sent.append(time.monotonic())
        self.send(b"line %d\n" % self.interval_seq)

    def beat(self) -> None:
        """One heartbeat tick: the peer is dead after --heartbeat-misses unanswered ones."""
        if self.unanswered >= self.opts.heartbeat_misses:
            raise Fatal(status.PEER_DEAD, f"heartbeat: peer dead ({self.unanswered} heartbeats unanswered)",
                        kind="heartbeat", unanswered=self.unanswered)
        self.heartbeat_seq += 1
        self.unanswered += 1
        self.write(HEARTBEAT + b" %d\n" % self.heartbeat_seq)
        self.emit("heartbeat", seq=self.heartbeat_seq, unanswered=self.unanswered)

    def send(self, data: bytes) -> None:
        """Send a line of user data, in two writes with --write-twice (tcpcli11)."""
        if self.opts.write_twice and len(data) > 1:
            self.write(data[:1])
            time.sleep(self.opts.write_pause)
            self.write(data[1:])
        else:
            self.write(data)

    def write(self, data: bytes) -> None:
        self.sock_call("write", self.socks[0].sendall, data)  # EPIPE: SIGPIPE unless ignored
        self.sent += len(data)
        self.emit("write", bytes=len(data))

    @staticmethod
    def sock_call(name: str, call, *args):
        """CALL(*ARGS), with a socket error turned into the book's "str_cli: NAME error"."""
        try:
            return call(*args)
        except OSError as exc:
            raise Fatal.from_oserror(name, exc) from None


def main(argv=None) -> int:
    opts = parse_options(argv)
    emit = Emitter(2, enabled=opts.report)
    if opts.sigpipe == "default":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # CPython ignores it at start-up; the book's client dies
    try:
        EchoClient(opts, emit).run()
    except Fatal as failure:
        emit("error", status=failure.status, message=failure.message, **failure.fields)
        write_line(2, failure.message)
        return failure.status
    except KeyboardInterrupt:
        return 130
    emit("done")
    return status.OK


if __name__ == "__main__":
    sys.exit(main())
