"""Fixtures for the netbed.apps tests: run the programs as subprocesses on loopback.

Tests wait for conditions (an event line, a socket state, a zombie in /proc)
with a deadline; they never sleep to let something happen.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import pytest

from netbed.apps.events import parse_event

DEADLINE = 10.0  # seconds; conditions normally hold within milliseconds
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING"}


def wait_until(condition, what, timeout: float = DEADLINE):
    """Poll CONDITION until it returns something true; fail with WHAT at the deadline.

    WHAT is text, or a callable that gives it then (to show the state at the deadline).
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(0.002)
    return value


class AppProcess:
    """A program of netbed.apps in a subprocess; its stdout and stderr collected line by line."""

    def __init__(self, name: str, args, stdin=subprocess.PIPE):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-m", f"netbed.apps.{name}", *map(str, args)],
                                     stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = {"stdout": [], "stderr": []}
        self.readers = [threading.Thread(target=self._collect, args=(stream, key), daemon=True)
                        for stream, key in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for reader in self.readers:
            reader.start()

    def _collect(self, stream, key: str) -> None:
        for raw in iter(stream.readline, b""):
            self.lines[key].append(raw.decode("utf-8", "replace"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self, name: str | None = None, stream: str = "stdout", **match) -> list[dict]:
        found = [parse_event(line) for line in list(self.lines[stream])]
        return [event for event in found if event and (name is None or event["event"] == name)
                and all(event.get(key) == value for key, value in match.items())]

    def wait_event(self, name: str, stream: str = "stdout", count: int = 1, timeout: float = DEADLINE, **match):
        """The first COUNT events NAME matching MATCH, once they have all been printed."""
        found = wait_until(lambda: (lambda e: e if len(e) >= count else None)(self.events(name, stream, **match)),
                           f"{count} x event {name} {match} from {self.name}\n{self.transcript()}", timeout)
        return found[0] if count == 1 else found[:count]

    def wait_line(self, text: str, stream: str = "stdout", timeout: float = DEADLINE) -> str:
        return wait_until(lambda: next((line for line in list(self.lines[stream]) if text in line), None),
                          f"{text!r} on {stream} of {self.name}\n{self.transcript()}", timeout)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the exit; return the status once all output has been read."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit\n{self.transcript()}") from None
        for reader in self.readers:
            reader.join(timeout)
        return code

    def stdout(self) -> str:
        return "".join(self.lines["stdout"])

    def stderr(self) -> str:
        return "".join(self.lines["stderr"])

    def transcript(self) -> str:
        return f"--- stdout\n{self.stdout()}--- stderr\n{self.stderr()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass


@pytest.fixture
def run_app():
    """run_app(name, *args) starts `python -m netbed.apps.NAME ARGS`; all are stopped at the end."""
    started: list[AppProcess] = []

    def start(name: str, *args, stdin=subprocess.PIPE) -> AppProcess:
        app = AppProcess(name, args, stdin=stdin)
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        app.stop()


@pytest.fixture
def app_server(run_app):
    """app_server(name="echo_server", *args): a server on a free loopback port, listening."""

    def start(*args, name: str = "echo_server") -> AppProcess:
        server = run_app(name, "--bind", "127.0.0.1", "--port", "0", *args)
        server.port = server.wait_event("listening")["port"]
        return server

    return start


@pytest.fixture
def app_sockets():
    """app_sockets(port, n) opens N test-side connections to 127.0.0.1:PORT; closed at the end."""
    opened: list[socket.socket] = []

    def connect(port: int, count: int = 1) -> list[socket.socket]:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(count)]
        opened.extend(socks)
        return socks

    yield connect
    for sock in opened:
        sock.close()


def zombie_children(pid: int) -> list[int]:
    """The children of PID in state Z, read from /proc."""
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z" and int(fields[1]) == pid:
            zombies.append(int(entry))
    return zombies


def tcp_state(local: str, remote: str) -> str | None:
    """The state of the IPv4 TCP connection LOCAL-REMOTE ("127.0.0.1:port") from /proc/net/tcp."""
    for row in tcp_rows():
        if row["local"] == local and row["remote"] == remote:
            return row["state"]
    return None


def tcp_rows() -> list[dict]:
    """The IPv4 TCP sockets, each once (a read racing with other sockets can list a row twice)."""
    rows = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            row = {"local": _address(fields[1]), "remote": _address(fields[2]),
                   "state": TCP_STATES.get(fields[3], fields[3]), "inode": int(fields[9])}
            rows[tuple(row.values())] = row
    return list(rows.values())


def _address(hex_pair: str) -> str:
    ip, port = hex_pair.split(":")
    return f"{socket.inet_ntoa(bytes.fromhex(ip)[::-1])}:{int(port, 16)}"


def in_accept(pid: int) -> bool:
    """True while PID sleeps in accept (the kernel's wait channel for it)."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return "accept" in wchan.read()
    except OSError:
        return False


@pytest.fixture
def app_probe():
    """What the apps tests read from the kernel: zombies, socket states, accept; and wait_until."""
    return types.SimpleNamespace(wait_until=wait_until, zombie_children=zombie_children, tcp_state=tcp_state,
                                 tcp_rows=tcp_rows, in_accept=in_accept)


@pytest.fixture(scope="module")
def tshark() -> tuple[str, str]:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is not installed, and CI=true: the Makefile installs it (apt package tshark)")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.split()[2] if out.startswith("TShark") else ""
    return path, version
