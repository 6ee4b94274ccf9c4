"""The book's concurrent server (tcpserv01-04): one forked child per client.

echo_server and sum_server share this skeleton and only supply what a child
does with its connection. The switches select chapter 5's variants:

* ``--sigchld none|wait|waitpid``: no handler (zombies stay, 5.7), a handler
  that calls wait once (5.9-5.10), or one that loops on waitpid(WNOHANG) (5.10).
* ``--accept unguarded|guarded``: accept is the C library's, called through
  ctypes. CPython installs its handlers without SA_RESTART, so SIGCHLD makes
  that accept fail with EINTR, as it did for the book; ``socket.accept`` would
  hide it (PEP 475 retries). Unguarded aborts like tcpserv02, guarded restarts.
* ``--coalesce N``: SIGCHLD stays blocked until N children have exited since
  the last release; then it is unblocked once. The kernel keeps one pending
  SIGCHLD however many children exited, so the handler runs exactly once per
  batch: with ``wait``, five clients closed together leave four zombies every
  run, as in the book (left to chance Linux shows 1 to 4). "Exited" is read
  from /proc/PID/stat (state Z). While coalescing, the parent waits for clients
  in poll() and calls accept only when one is queued, so the signal arrives
  outside accept: this mode reproduces the zombie count, not EINTR.
* ``--accept-delay``, ``--close-delay``, ``--bug-no-close``: hold a moment
  open (RST before accept 5.11; FIN_WAIT_2/CLOSE_WAIT 5.7) or make the
  concurrency mistake of 4.8 (the parent keeps the connected socket).

Every step is an event line on stdout (see netbed.apps.events).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from netbed.apps import args as appargs
from netbed.apps.events import Emitter, write_line
from netbed.apps.status import describe, errno_name

LISTENQ = 1024
_POLL_MS = 10  # how often a coalescing server looks for exited children
_FORK_BLOCKED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}

_EVENTS = """\
  listening port= addr= sigchld= accept= coalesce=   ready to accept
  accept_delay seconds=                      sleeping before accept (--accept-delay)
  accepted child= peer=                      forked child for a client
  eof / close_delay seconds= / exit code=    a child's end (exit code 1 after an error)
  sigchld                                    the SIGCHLD handler started
  reaped child= code= | signal=              the handler collected a child
  sigchld_released exited= zombies=          --coalesce: SIGCHLD unblocked once
  eintr call=accept action=restart|abort     accept failed with EINTR
  error call= errno= message=                a system call failed (e.g. ECONNRESET)
  aborted reason=                            the server gave up (book: tcpserv02)
  terminated signal= children=               SIGTERM/SIGINT: children killed, exit 0"""


def help_epilog(child_events: str) -> str:
    """The --help epilog of a server: its events (the shared ones, then CHILD_EVENTS) and exit status."""
    return (
        "events (one line each on stdout, flushed; parse with netbed.apps.events.parse_event):\n"
        f"{_EVENTS}\n{child_events}\n"
        "every line also has pid= (the writer) and t= (wall clock, seconds).\n\n"
        "exit status: 0 after SIGTERM/SIGINT, 1 when aborted (bind failed; accept failed, e.g.\n"
        "EINTR with --accept unguarded), 2 usage error."
    )


class Terminated(Exception):
    """SIGTERM or SIGINT: stop the server and its children."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Aborted(Exception):
    """The server gives up (an unguarded accept failed): exit status 1."""


class ChildError(Exception):
    """A child's connection failed; FIELDS go into its error event."""

    def __init__(self, description: str, **fields: object):
        super().__init__(description)
        self.fields = fields


def add_arguments(parser) -> None:
    """The switches every fork-per-client server takes."""
    parser.add_argument("--port", type=appargs.port_or_zero, default=9877,
                        help="port to listen on (default 9877; 0: any free port, see the listening event)")
    parser.add_argument("--bind", type=appargs.ipv4, default="0.0.0.0", metavar="ADDR",
                        help="IPv4 address to listen on (default 0.0.0.0)")
    parser.add_argument("--no-reuseaddr", dest="reuseaddr", action="store_false",
                        help="do not set SO_REUSEADDR (set by default, as the book does)")
    parser.add_argument("--sigchld", choices=("none", "wait", "waitpid"), default="waitpid",
                        help="SIGCHLD handling: none (zombies stay), wait (handler calls wait once), "
                             "waitpid (handler loops waitpid WNOHANG; default)")
    parser.add_argument("--accept", choices=("unguarded", "guarded"), default="guarded",
                        help="on EINTR from accept: unguarded aborts (\"accept error: Interrupted system call\"), "
                             "guarded restarts (default)")
    parser.add_argument("--coalesce", type=appargs.positive_int, metavar="N",
                        help="block SIGCHLD until N children have exited, then unblock it once "
                             "(deterministic signal coalescing, 5.10)")
    parser.add_argument("--accept-delay", type=appargs.seconds, default=0.0, metavar="S",
                        help="sleep S seconds before each accept (RST before accept, 5.11)")
    parser.add_argument("--close-delay", type=appargs.seconds, default=0.0, metavar="S",
                        help="a child waits S seconds after EOF before closing (shows FIN_WAIT_2/CLOSE_WAIT)")
    parser.add_argument("--bug-no-close", action="store_true",
                        help="the parent forgets to close the connected socket: connections never close (4.8)")


def read(conn: socket.socket, size: int) -> bytes:
    """conn.recv, with a failure reported as the book's "read error"."""
    try:
        return conn.recv(size)
    except OSError as exc:
        raise ChildError(f"read error: {describe(exc.errno)}", call="read", errno=errno_name(exc.errno),
                         message=_strerror(exc)) from None


def write(conn: socket.socket, data: bytes) -> None:
    """conn.sendall, with a failure reported as "write error" (SIGPIPE stays ignored: EPIPE)."""
    try:
        conn.sendall(data)
    except OSError as exc:
        raise ChildError(f"write error: {describe(exc.errno)}", call="write", errno=errno_name(exc.errno),
                         message=_strerror(exc)) from None


def _strerror(exc: OSError) -> str:
    """os.strerror of a failed system call's errno (such an OSError always has one)."""
    assert exc.errno is not None, f"an OSError without an errno: {exc!r}"
    return os.strerror(exc.errno)


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 4), ("zero", ctypes.c_uint8 * 8)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.accept.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
_libc.accept.restype = ctypes.c_int


def c_accept(listenfd: int) -> tuple[int, str]:
    """The C library's accept: (fd, "ip:port"), or OSError, EINTR included."""
    peer = _SockaddrIn()
    length = ctypes.c_uint32(ctypes.sizeof(peer))
    fd = _libc.accept(listenfd, ctypes.byref(peer), ctypes.byref(length))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd, f"{'.'.join(map(str, peer.addr))}:{socket.ntohs(peer.port)}"


def run_pending_handlers() -> None:
    """Run the Python handlers of signals that just arrived, now rather than later.

    pthread_sigmask checks for pending handlers before it returns, so the events
    of a SIGCHLD that interrupted accept come out before the EINTR event.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, ())


def proc_state(pid: int) -> str | None:
    """A process's state letter from /proc (Z: zombie), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


class ForkServer:
    """Listen, accept, fork; the child runs SERVE(conn, emit) until it returns at EOF."""

    def __init__(self, options, serve, name: str):
        self.options = options
        self.serve = serve
        self.name = name
        self.emit = Emitter(1)
        self.children: dict[int, str] = {}  # forked, not yet reaped: pid -> peer
        self.released: set[int] = set()    # exited children already counted by --coalesce
        self.listener: socket.socket | None = None

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (status 0) or an abort (status 1)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_terminate)
        try:
            self._listen()
            self._install_sigchld()
            while True:
                self._serve_one()
        except Terminated as stop:
            self._stop(stop.signum)
            return 0
        except Aborted as abort:
            self.emit("aborted", reason=str(abort))
            return 1

    def _listen(self) -> None:
        opts = self.options
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if opts.reuseaddr:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((opts.bind, opts.port))
            self.listener.listen(LISTENQ)
        except OSError as exc:
            self._fail("bind", exc)
        self.emit("listening", port=self.listener.getsockname()[1], addr=opts.bind, sigchld=opts.sigchld,
                  accept=opts.accept, coalesce=opts.coalesce)

    def _listening(self) -> socket.socket:
        """The listening socket, which run() opens first."""
        if self.listener is None:
            raise RuntimeError("the server is not listening yet (run() opens its socket)")
        return self.listener

    def _install_sigchld(self) -> None:
        handlers: dict[str, Callable[[int, FrameType | None], object] | signal.Handlers]
        handlers = {"none": signal.SIG_DFL, "wait": self._on_sigchld_wait,
                    "waitpid": self._on_sigchld_waitpid}
        signal.signal(signal.SIGCHLD, handlers[self.options.sigchld])
        if self.options.coalesce:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})

    def _serve_one(self) -> None:
        opts = self.options
        if opts.accept_delay:
            self.emit("accept_delay", seconds=opts.accept_delay)
            time.sleep(opts.accept_delay)
        if opts.coalesce:
            self._wait_for_client()
        fd, peer = self._accept()
        conn = socket.socket(fileno=fd)
        try:
            conn.getpeername()
        except OSError as exc:  # 5.11: the client's RST came before accept
            self.emit("error", call="getpeername", errno=errno_name(exc.errno), message=_strerror(exc))
        # Signals wait until the child is on the books (a fast child is never reaped
        # unknown) and until the child has its own dispositions.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        pid = os.fork()
        if pid == 0:
            self._child(conn)
        self.children[pid] = peer
        self.emit("accepted", child=pid, peer=peer)
        if opts.bug_no_close:
            conn.detach()  # the fd stays open in the parent for ever: the bug of 4.8
        else:
            conn.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED - ({signal.SIGCHLD} if opts.coalesce else set()))

    def _accept(self) -> tuple[int, str]:
        while True:
            try:
                return c_accept(self._listening().fileno())
            except OSError as exc:
                run_pending_handlers()
                guarded = self.options.accept == "guarded"
                if exc.errno == errno.EINTR:
                    self.emit("eintr", call="accept", action="restart" if guarded else "abort")
                    if guarded:
                        continue
                elif guarded and exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    self.emit("error", call="accept", errno=errno_name(exc.errno), message=_strerror(exc))
                    continue
                self._fail("accept", exc)

    def _fail(self, call: str, exc: OSError):
        """The book's err_sys: "accept error: Interrupted system call" on stderr, then abort."""
        self.emit("error", call=call, errno=errno_name(exc.errno), message=_strerror(exc))
        write_line(2, f"{call} error: {_strerror(exc)}")
        raise Aborted(f"{call} failed: {errno_name(exc.errno)}")

    def _wait_for_client(self) -> None:
        """--coalesce: poll the listening socket, releasing SIGCHLD once per batch of exits."""
        poller = select.poll()
        poller.register(self._listening(), select.POLLIN)
        while True:
            self._release_sigchld()
            if poller.poll(_POLL_MS):
                return

    def _release_sigchld(self) -> None:
        exited = [pid for pid in self.children if pid not in self.released and proc_state(pid) == "Z"]
        if len(exited) < self.options.coalesce:
            return
        self.released.update(exited)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # the one pending SIGCHLD: one handler run
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        zombies = sum(proc_state(pid) == "Z" for pid in self.children)
        self.emit("sigchld_released", exited=len(exited), zombies=zombies)

    def _on_sigchld_wait(self, signum, frame) -> None:
        self.emit("sigchld")
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return
        self._reaped(pid, status)

    def _on_sigchld_waitpid(self, signum, frame) -> None:
        self.emit("sigchld")
        self._reap_all()

    def _reap_all(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        self.children.pop(pid, None)
        self.released.discard(pid)
        if os.WIFSIGNALED(status):
            self.emit("reaped", child=pid, signal=signal.Signals(os.WTERMSIG(status)).name)
        else:
            self.emit("reaped", child=pid, code=os.waitstatus_to_exitcode(status))

    def _on_terminate(self, signum, frame) -> None:
        raise Terminated(signum)

    def _stop(self, signum: int) -> None:
        """Kill the children (SIGTERM, then SIGKILL after 2 s), reap them, exit."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        self.emit("terminated", signal=signal.Signals(signum).name, children=len(self.children))
        for pid in self.children:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while self.children and time.monotonic() < deadline:
            self._reap_all()
            for pid in [pid for pid in self.children if proc_state(pid) is None]:
                self.children.pop(pid)  # reaped by a handler that SIGTERM cut short
            time.sleep(0.01)
        for pid in list(self.children):
            _kill(pid, signal.SIGKILL)
            try:
                self._reaped(pid, os.waitpid(pid, 0)[1])
            except ChildProcessError:
                self.children.pop(pid, None)
        if self.listener:
            self.listener.close()

    def _child(self, conn: socket.socket) -> None:
        """The child: serve the connection, close it, exit. Never returns."""
        code = 1
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            self._listening().close()
            try:
                self.serve(conn, self.emit)
                code = 0
            except ChildError as exc:
                self.emit("error", **exc.fields)
                write_line(2, f"{self.name}: {exc}")
            except Exception as exc:  # a bug: say so rather than die silently
                self.emit("error", call="child", message=repr(exc))
                write_line(2, f"{self.name}: child failed: {exc!r}")
            if code == 0:
                self.emit("eof")
                if self.options.close_delay:
                    self.emit("close_delay", seconds=self.options.close_delay)
                    time.sleep(self.options.close_delay)
            conn.close()
            self.emit("exit", code=code)
        finally:
            os._exit(code)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
