"""What a scenario works with: a testbed, the programs on it, and the checks it records.

A scenario function gets a `Lab`: it starts clients, injects faults, waits
for conditions, and records checks from three kinds of evidence, the wire
(`expect_wire`), the hosts (sockets, processes) and the programs (output,
exit status). Nothing here prints; progress goes to the reporter.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from netbed import faults, observe
from netbed.backend import Backend
from netbed.apps import status
from netbed.apps.events import parse_event
from netbed.errors import Cancelled, NetbedError
from netbed.observe import Exit, Program
from netbed.progress import Event, Phase, Reporter
from netbed.scenarios import client_errors
from netbed.scenarios.programs import Command, Programs
from netbed.tcp import Connection, ExpectationError, analyze, expect

# netbed's echo_client: the exit status of each kind of failure (`echo_client --help`, netbed.apps.status).
CLIENT_STATUS = {"premature": status.PREMATURE, "ECONNRESET": status.CONNRESET, "ETIMEDOUT": status.TIMEDOUT,
                 "EPIPE": status.PIPE, "ECONNREFUSED": status.REFUSED, "EHOSTUNREACH": status.UNREACH,
                 "heartbeat": status.PEER_DEAD}


RECORDING_LAG_S = 5.0  # how long after a program saw a segment it may take to reach the capture file


class ScenarioError(NetbedError):
    pass


class NotJudged(NetbedError):
    """The scenario cannot judge these programs; the message says why (the client printed nothing, ...)."""


class Verdict(str, Enum):
    """A scenario's outcome: every check passed, one failed, or the programs could not be judged (and why)."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_JUDGED = "not judged"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    expected: str
    observed: str


@dataclass(frozen=True)
class Moment:
    """One entry of the run's timeline: a fault, a line typed, an error seen."""

    t: float
    who: str
    what: str


class Client:
    """A client program on the client host, driven line by line like a person at a terminal."""

    def __init__(self, lab: "Lab", argv: list[str], name: str) -> None:
        self.lab = lab
        self.name = name
        self.program = Program(lab.bed, "client", argv, cancel=lab.cancel)
        self._local_port: int | None = None
        self._typed: list[str] = []  # the lines typed at it, so its echoes are not read as its messages

    @property
    def user(self) -> bool:
        return self.lab.programs.client_cmd is not None

    def send(self, line: str) -> None:
        self.lab.note(self.name, f"types {line!r}")
        self._typed.append(line)
        self.program.send(line)

    def end_input(self) -> None:
        self.lab.note(self.name, "end of input (Ctrl-D)")
        self.program.end_input()

    def expect_echo(self, line: str, timeout: float = 10) -> None:
        """The line comes back; the first echo also tells which connection is this client's.

        A user's client that shows no echo is judged from the wire: if the
        echo reached it, it printed nothing (a buffered stdout), and the run
        is not judged rather than failed.
        """
        try:
            self.program.expect_output(rf"^{re.escape(line)}\s*$", timeout=timeout, stream="stdout")
        except observe.WaitTimeout:
            if self.user:
                self._why_no_echo(line)
            raise
        self.lab.note(self.name, f"echoed {line!r}")
        if self._local_port is None:
            self._local_port = self._find_local_port(line)

    def _why_no_echo(self, line: str) -> None:
        """A user's client printed no echo: say from the wire whose doing that is."""
        data = line.encode()
        client_ip = self.lab.bed.host("client").ip
        mine = [c for c in self.lab.connections() if c.client.ip == client_ip and c.server.port == self.lab.programs.port]
        if self.program.exit is not None:
            return  # it ended: the timeout's message says how, and that is a failure
        if any(data in sent(c, "server") for c in mine):
            printed = self.program.stdout[-3:]
            raise NotJudged(f"{self.name} printed {'nothing' if not printed else repr(printed)} although the echo of "
                            f"{line!r} reached it on the wire: its stdout is buffered or it prints something else; "
                            "netbed reads the client's terminal, so print each answer as it comes (fflush, "
                            "line buffering)") from None
        if not any(data in sent(c, "client") for c in mine):
            raise NotJudged(f"{self.name} never sent {line!r} to the server (nothing on the wire): it does not read "
                            "lines from its terminal and send them, as the book's client does") from None

    def expect_error(self, kind: str, timeout: float, when: str = "") -> Exit | None:
        """The client fails the way `kind` says (ECONNRESET, ETIMEDOUT, EPIPE, premature, ...) and ends.

        netbed's client is judged by its exit status for that kind. A user's
        client by what it says (a message naming another errno fails), by
        SIGPIPE's death for EPIPE, and, when it says nothing but fails, by
        when it ended against the wire (client_errors.judge); one that exits
        0 silently or is still running at the deadline did not notice and
        fails. `when` is the book's situation, for the message ("after a
        crash of the server host"). Returns how it ended (None: still running).
        """
        try:
            self.lab.wait_for(lambda: self.program.exit, lambda e: e is not None, timeout=timeout,
                              what=f"{self.name} to end")
            ended_at = time.time()  # within a poll of the end: ptyrun reports it at once
            end: Exit | None = self.program.wait(timeout=5)
        except observe.WaitTimeout:
            try:  # ended without ptyrun's word (it was killed): then its moment is unknown
                end, ended_at = self.program.wait(timeout=0.5), None
            except observe.WaitTimeout:
                end, ended_at = None, None
        said = self.program.stderr[-1] if self.program.stderr else ""
        self.lab.moment(self.name, f"ended {end}{f': {said}' if said else ''}" if end else
                        f"still running {timeout:g} s later")
        if not self.user:
            self.lab.check(f"{self.name} fails with {kind}", end is not None and end.code == CLIENT_STATUS[kind],
                           f"exit status {CLIENT_STATUS[kind]} ({kind})", f"{end or 'still running'}; {said!r}")
            return end
        lines = self.program.stderr + [line for line in self.program.stdout if line not in self._typed]
        wire = None
        if end is not None and not client_errors.kinds_said(lines) and end.signal is None and end.code:
            wire = self._wire_end(ended_at)  # a silent failure: judged by its moment against the wire
        verdict = client_errors.judge(kind, lines, end.code if end else None, end.signal if end else None,
                                      ended_at, wire, when)
        self.lab.check(f"{self.name} fails with {client_errors.DESCRIBE.get(kind, kind)}", verdict.passed,
                       f"{kind}: a message such as {client_errors.STRERROR[kind]!r}" if kind in client_errors.STRERROR
                       else f"{kind}: a message or a failure status", verdict.observed)
        return end

    def _wire_end(self, ended_at: float | None) -> client_errors.WireEnd | None:
        """The connection's end as captured, once the capture shows what the client's end answered (or 3 s)."""
        if ended_at is None or self._local_port is None:
            return None
        try:
            conn = self.lab.wait_for(lambda: self.connection,
                                     lambda c: client_errors.kind_from_timing(
                                         ended_at, client_errors.wire_end(c.segments)) is not None,
                                     timeout=3, what=f"what {self.name}'s end answered on the wire")
        except observe.WaitTimeout:
            conn = self.connection
        return client_errors.wire_end(conn.segments)

    def wait(self, timeout: float) -> Exit:
        end = self.program.wait(timeout=timeout)
        self.lab.moment(self.name, f"ended {end}")
        return end

    @property
    def connection(self) -> Connection:
        """This client's connection, as the capture shows it so far.

        The program has seen it, so it is on the wire; a recording may reach the capture file a moment
        later (a Swarm's nodes stream theirs here), so it is waited for, up to RECORDING_LAG_S.
        """
        if self._local_port is None:
            raise ScenarioError(f"{self.name} has no connection yet (no echo seen)")
        client_ip, port = self.lab.bed.host("client").ip, self._local_port

        def ours() -> Connection | None:
            return next((c for c in reversed(self.lab.connections())
                         if c.client.ip == client_ip and c.client.port == port), None)
        try:
            found = observe.wait_for(ours, lambda conn: conn is not None, timeout=RECORDING_LAG_S,
                                     what=f"{self.name}'s connection in the capture", cancel=self.lab.cancel)
        except observe.WaitTimeout:
            raise ScenarioError(f"{self.name}'s connection from port {port} is not in the capture") from None
        assert found is not None  # what the wait waited for
        return found

    def _find_local_port(self, line: str) -> int:
        """The client's connection: among those its processes own, the one that carried `line`."""
        ports = self._owned_ports()
        if len(ports) > 1:  # e.g. the book's tcpcli04 opens five and talks on the first
            data = line.encode()
            carried = [c.client.port for c in self.lab.connections()
                       if c.client.port in ports and data in sent(c, "client")]
            ports = carried[-1:] or ports
        if not ports:
            raise ScenarioError(f"{self.name} echoed but owns no connection to port {self.lab.programs.port}")
        return ports[0]

    def ports(self) -> list[int]:
        """Every local port of the client's processes' connections to the server, as the client host shows them."""
        return self._owned_ports()

    def _owned_ports(self) -> list[int]:
        pid = self.program.pid
        tree = {p.pid: p.ppid for p in observe.processes(self.lab.bed, "client")}

        def ours(pids: tuple[int, ...]) -> bool:
            for p in pids:
                while p and p != pid:
                    p = tree.get(p, 0)
                if p == pid:
                    return True
            return False

        port = f":{self.lab.programs.port}"
        return sorted(int(sock.local.rsplit(":", 1)[1]) for sock in observe.sockets(self.lab.bed, "client")
                      if sock.peer.endswith(port) and sock.state == "ESTABLISHED" and ours(sock.pids))

    def expect_connected(self, timeout: float = 10) -> None:
        """For a client that echoes nothing (--mode idle, sum_client): its `connected` event
        (with --report) names its connection."""
        line = self.program.expect_output(r"^event=connected ", timeout=timeout, stream="stderr")
        event = parse_event(line)
        if event is None:
            raise ScenarioError(f"{self.name} printed a connected event netbed cannot read: {line!r}")
        self._local_port = int(str(event["local"]).rsplit(":", 1)[1])
        self.lab.note(self.name, f"connected from port {self._local_port}")


@dataclass
class Lab:
    bed: Backend
    programs: Programs
    report: Reporter
    scenario: str
    settings: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    timeline: list[Moment] = field(default_factory=list)
    key_connections: list[Connection] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    server: Program | None = None  # the server program, on a terminal of the server host
    started: list[Program] = field(default_factory=list)  # every program started, for the run's logs
    cancel: threading.Event = field(default_factory=threading.Event)  # set: every wait ends, raising Cancelled

    # --- programs ---------------------------------------------------------------------

    def client(self, *options: str, name: str = "client", port: int | None = None) -> Client:
        """Start a client: netbed's echo_client with `options`, or the user's client command (against another
        of the server host's ports with `port`)."""
        command = self.programs.client_cmd
        if not isinstance(command, Command):  # Programs parsed the user's text into a Command, or there is none
            return self.client_program("echo_client", *options, port=port, name=name)
        server_ip = self.bed.host("server").ip
        return self._start_client(command.argv(server_ip=server_ip, port=port or self.programs.port),
                                  name)

    def start_server(self, argv: list[str]) -> Program:
        """Start the scenario's server program on the server host, on a terminal like the clients'."""
        self.server = self.program("server", argv, name="server")
        return self.server

    def server_events(self) -> list[dict]:
        """The event lines netbed's server printed so far."""
        return self.events(self.server) if self.server else []

    def wait_server_event(self, name: str, timeout: float = 10, count: int = 1, **fields: Any) -> list[dict]:
        """Wait until netbed's server printed `count` events called `name` (with these fields)."""
        def matching() -> list[dict]:
            return [e for e in self.server_events()
                    if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]
        return observe.wait_for(matching, lambda found: len(found) >= count, timeout=timeout,
                                what=f"{count} '{name}' event(s) from the server", cancel=self.cancel)

    # --- faults, each noted on the timeline --------------------------------------------

    def fault(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        """Apply a registered fault, noted on the timeline (the fault notes itself on the capture)."""
        self.moment("netbed", f"{verb} {' '.join(map(str, args))}".strip())
        self.report(Event(self.scenario, Phase.INFO, f"{verb} {' '.join(map(str, args))}"))
        return faults.apply(self.bed, verb, *args, **kwargs)

    def __getattr__(self, verb: str) -> Callable[..., Any]:
        """Every registered fault is a verb of the lab: lab.crash("server"), lab.partition("client", "server")."""
        if verb.startswith("_") or verb not in faults.registered():
            raise AttributeError(f"{type(self).__name__} has no attribute {verb!r} (and no fault is named so)")
        return functools.partial(self.fault, verb)

    # --- waiting and observing -----------------------------------------------------------

    def wait_for(self, probe: Callable[[], Any], until: Callable[[Any], bool] = bool, *, timeout: float,
                 what: str) -> Any:
        return observe.wait_for(probe, until, timeout=timeout, what=what, cancel=self.cancel)

    def wait_on_wire(self, client: Client, condition: Callable[[Connection], bool], timeout: float,
                     what: str) -> Connection:
        """Wait until the client's connection, as captured, satisfies the condition."""
        return observe.wait_for(lambda: client.connection, condition, timeout=timeout, what=what, cancel=self.cancel)

    def connections(self) -> list[Connection]:
        names = self.bed.names()
        return analyze(str(self.bed.pcap), names, allow_truncated=True)

    def sockets(self, host: str) -> list[observe.Socket]:
        return observe.sockets(self.bed, host)

    def processes(self, host: str) -> list[observe.Process]:
        return observe.processes(self.bed, host)

    def zombies(self, host: str) -> list[observe.Process]:
        return [p for p in self.processes(host) if p.zombie]

    # --- the server's processes, whoever wrote it ----------------------------------------

    def listener(self) -> int:
        """The pid of the process holding the server's listening socket."""
        port = f":{self.programs.port}"
        pids = [pid for s in self.sockets("server") if s.state == "LISTEN" and s.local.endswith(port) for pid in s.pids]
        if not pids:
            raise ScenarioError(f"no process on the server host listens on port {self.programs.port} any more")
        return min(pids)

    def serving(self, client: Client) -> int:
        """The pid on the server host that owns the connection of this client (the one it talks on)."""
        peer = f"{self.bed.host('client').ip}:{client.connection.client.port}"
        for sock in self.sockets("server"):
            if sock.peer == peer and sock.state != "LISTEN" and sock.pids:
                return min(sock.pids)
        raise ScenarioError(f"no process on the server host owns {client.name}'s connection from {peer}")

    def children(self, pid: int) -> list[observe.Process]:
        """The processes whose parent is `pid` on the server host (zombies included)."""
        return [p for p in self.processes("server") if p.ppid == pid]

    def not_judged(self, reason: str) -> None:
        """End the scenario without a verdict on the programs, saying why."""
        raise NotJudged(reason)

    # --- judging ------------------------------------------------------------------------

    def note(self, who: str, what: str) -> None:
        """A step, on the timeline and as a comment in the capture."""
        self.moment(who, what)
        self.bed.note(f"{who}: {what}")

    def moment(self, who: str, what: str) -> None:
        """A step on the timeline only: faults and programs starting or ending note themselves on the capture.

        Every step goes through here, so a called-off run stops at its next step.
        """
        if self.cancel.is_set():
            raise Cancelled(f"called off before: {who} {what}")
        self.timeline.append(Moment(time.time(), who, what))

    def check(self, name: str, passed: bool, expected: str, observed: str) -> bool:
        self.checks.append(Check(name, bool(passed), expected, observed))
        self.report(Event(self.scenario, Phase.INFO, f"{'ok  ' if passed else 'FAIL'} {name}"))
        return bool(passed)

    def expect_equal(self, name: str, expected: Any, observed: Any) -> bool:
        return self.check(name, expected == observed, repr(expected), repr(observed))

    def expect_wire(self, name: str, conn: Connection, *steps: str, **options: Any) -> bool:
        """Record whether the connection shows these steps (netbed.tcp's expect grammar)."""
        if conn not in self.key_connections:
            self.key_connections.append(conn)
        try:
            expect(conn).sequence(*steps, **options)
        except ExpectationError as exc:
            return self.check(name, False, "\n".join(steps), str(exc))
        return self.check(name, True, "\n".join(steps), " ".join(conn.tcpdump_flags))

    # --- more programs ------------------------------------------------------------------

    def client_program(self, program: str, *options: str, port: int | None = None, name: str | None = None) -> Client:
        """Start another of netbed's client programs (e.g. sum_client) on the client host against the server."""
        argv = ["python3", "-m", f"netbed.apps.{program}", self.bed.host("server").ip,
                "--port", str(port or self.programs.port), *options]
        return self._start_client(argv, name or program)

    def _start_client(self, argv: list[str], name: str) -> Client:
        self.moment(name, f"starts: {' '.join(argv)}")
        client = Client(self, argv, name)
        self.clients.append(client)
        self.started.append(client.program)
        return client

    def program(self, host: str, argv: list[str], name: str) -> Program:
        """Start any program on a host (e.g. a second server on another port), on a pseudo-terminal."""
        self.moment(name, f"starts on {host}: {' '.join(argv)}")
        started = Program(self.bed, host, argv, cancel=self.cancel)
        self.started.append(started)
        return started

    def server_program(self, *options: str, port: int, name: str, program: str = "echo_server") -> Program:
        """Start another of netbed's servers on the server host, on another port; return once it listens."""
        server = self.program("server", ["python3", "-m", f"netbed.apps.{program}", "--port", str(port), *options],
                              name=name)
        server.expect_output(r"^event=listening ", timeout=10, stream="stdout")
        return server

    @staticmethod
    def events(program: Program) -> list[dict]:
        """The event lines a program printed so far (netbed's servers on stdout, its clients on stderr)."""
        return [e for e in map(parse_event, program.stdout + program.stderr) if e]





def sent(conn: Connection, side: str) -> bytes:
    """The bytes one side sent on a connection, as captured (a retransmitted byte appears again)."""
    return b"".join(s.payload() or b"" for s in conn.segments if s.sender == side and s.payload_len)
