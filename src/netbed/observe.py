"""Watching a testbed: its sockets, processes and programs, and waiting for conditions.

Every wait has a deadline and says, when it runs out, what was awaited and
what was last seen; nothing here sleeps blind.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Callable, TypeVar

from netbed.errors import Cancelled, NetbedError

if TYPE_CHECKING:
    from netbed.backend import Backend

T = TypeVar("T")
POLL_SECONDS = 0.05


class WaitTimeout(NetbedError, AssertionError):
    """A condition did not come true in time; says what was awaited and what was last seen."""


def wait_for(probe: Callable[[], T], until: Callable[[T], bool] = bool, *, timeout: float,
             what: str, cancel: threading.Event | None = None) -> T:
    """Poll `probe` until `until(observation)` holds; return that observation.

    The deadline comes from the caller (usually from the TCP timers in play);
    on timeout the error names `what` was awaited and the last observation.
    Once `cancel` is set the wait ends within one poll, raising Cancelled.
    """
    deadline = time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"called off while waiting for {what}")
        seen = probe()
        if until(seen):
            return seen
        if time.monotonic() >= deadline:
            shown = repr(seen)
            if len(shown) > 400:
                shown = shown[:200] + " ... " + shown[-200:]
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}; last seen: {shown}")
        if cancel is None:
            time.sleep(POLL_SECONDS)
        else:
            cancel.wait(POLL_SECONDS)


# --- sockets and processes, as the host itself reports them ------------------------

SS_STATES = {"ESTAB": "ESTABLISHED", "SYN-RECV": "SYN-RECEIVED", "UNCONN": "CLOSED"}


@dataclass(frozen=True)
class Socket:
    """One TCP socket as `ss -tanpo` shows it; state names as in RFC 9293."""

    state: str
    local: str
    peer: str
    recv_q: int
    send_q: int
    pids: tuple[int, ...]
    timer: str


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    stat: str
    command: str

    @property
    def zombie(self) -> bool:
        return self.stat.startswith("Z")


def parse_ss(text: str) -> list[Socket]:
    """Parse `ss -tanpoH` output (one socket a line)."""
    sockets = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5:
            continue
        state, recv_q, send_q, local, peer = words[:5]
        rest = " ".join(words[5:])
        pids = tuple(int(p) for p in re.findall(r"pid=(\d+)", rest))
        timer = re.search(r"timer:\(([^)]*)\)", rest)
        sockets.append(Socket(SS_STATES.get(state, state), local, peer, int(recv_q), int(send_q), pids,
                              timer.group(1) if timer else ""))
    return sockets


def parse_ps(text: str) -> list[Process]:
    """Parse `ps -eo pid=,ppid=,stat=,args=` output."""
    procs = []
    for line in text.splitlines():
        words = line.split(None, 3)
        if len(words) >= 3 and words[0].isdigit():
            procs.append(Process(int(words[0]), int(words[1]), words[2], words[3] if len(words) > 3 else ""))
    return procs


def sockets(bed: Backend, host: str) -> list[Socket]:
    return parse_ss(_run_in(bed, host, ["ss", "-tanpoH"]))


def processes(bed: Backend, host: str) -> list[Process]:
    procs = parse_ps(_run_in(bed, host, ["ps", "-eo", "pid=,ppid=,stat=,args="]))
    return [p for p in procs if not p.command.startswith(("ps -eo", "unshare --mount"))]


def _run_in(bed: Backend, host: str, argv: list[str]) -> str:
    """A tool's output about a host: the machine's tool beside it where netbed may, else the host's own."""
    status = bed.status(host)
    if status not in ("running", "paused"):  # a frozen host's kernel still answers (from beside it)
        raise NetbedError(f"cannot look into {host}: it is {status}")
    done = bed.beside(host, argv)
    if done.exit_code != 0:
        raise NetbedError(f"`{' '.join(argv)}` in {host} failed: {done.stderr.strip() or done.exit_code}")
    return done.stdout


# --- programs driven line by line -----------------------------------------------------


@dataclass(frozen=True)
class Exit:
    """How a program ended: its exit status, or the signal that killed it."""

    code: int | None
    signal: int | None

    @property
    def ok(self) -> bool:
        return self.code == 0

    def __str__(self) -> str:
        return f"killed by signal {self.signal}" if self.signal is not None else f"exit status {self.code}"


class Program:
    """A program on a host, on a pseudo-terminal, driven line by line from here.

    Its stdout lines and stderr lines are collected as they come; every read
    waits for a condition with a deadline, and ends early once `cancel` is set.
    """

    def __init__(self, bed: Backend, host: str, argv: list[str], cancel: threading.Event | None = None) -> None:
        self.host = host
        self.argv = list(argv)
        self.cancel = cancel
        self._bed = bed
        launch = bed.launch(host, self.argv)
        self._pid_in_host = launch.pid_in_host
        try:
            self._proc = subprocess.Popen(launch.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, pass_fds=launch.pass_fds)
        finally:
            launch.release()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.pid: int | None = None
        self.exit: Exit | None = None
        self._threads = [threading.Thread(target=self._pump, args=(self._proc.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._pump, args=(self._proc.stderr, self.stderr), daemon=True)]
        for t in self._threads:
            t.start()
        try:
            wait_for(lambda: self.pid or self._proc.poll() is not None, timeout=30,
                     what=f"{argv[0]} to start on {host}", cancel=cancel)
        except Cancelled:
            self.stop()
            raise
        if self.pid is None:  # ptyrun ended: what it said is all read once its pipes are
            for t in self._threads:
                t.join(timeout=5)
        if self.pid is None:
            raise NetbedError(f"could not start {argv[0]} on {host}: {' '.join(self.stderr[-1:]) or 'no output'}")
        bed.note(f"{host}: {' '.join(argv)} started (pid {self.pid})")

    def _pump(self, stream, lines: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("netbed-ptyrun: "):
                self._heard(line.removeprefix("netbed-ptyrun: "))
            else:
                lines.append(line)

    def _heard(self, text: str) -> None:
        """What ptyrun reports of the program: its pid first, how it ended last (noted on the testbed)."""
        key, _, value = text.partition("=")
        number = int(value.split()[0])
        if key == "pid":  # ptyrun's child; through nsenter, the program is that one's child in the host
            try:
                self.pid = wait_for(lambda: self._pid_in_host(number), lambda pid: pid is not None, timeout=5,
                                    what=f"{self.argv[0]}'s process in {self.host}")
            except WaitTimeout:  # it ended at once: its exit comes next
                self.pid = -1
            return
        self.exit = Exit(number, None) if key == "exit" else Exit(None, number) if key == "signal" else None
        if self.exit is not None:
            said = f": {self.stderr[-1]}" if self.stderr else ""  # its last words, e.g. the errno's message
            self._bed.note(f"{self.host}: {self.argv[0]} ended, {self.exit}{said}")

    @property
    def _stdin(self) -> IO[bytes]:
        """The program's terminal, to type at (Popen with stdin=PIPE gives one)."""
        stdin = self._proc.stdin
        assert stdin is not None, "the program was started with stdin=PIPE"
        return stdin

    def send(self, line: str) -> None:
        """Type one line at the program's terminal."""
        try:
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except BrokenPipeError:
            raise NetbedError(f"{self.argv[0]} on {self.host} is gone; it cannot read {line!r}") from None

    def end_input(self) -> None:
        """End of file on the program's terminal (Ctrl-D)."""
        self._stdin.close()

    def expect_output(self, pattern: str, timeout: float, stream: str = "any") -> str:
        """Wait for a line matching the regular expression on stdout, stderr or either; return it."""
        regex = re.compile(pattern)

        def lines() -> list[str]:
            return {"stdout": self.stdout, "stderr": self.stderr}.get(stream, self.stdout + self.stderr)[:]

        found = wait_for(lambda: next((line for line in lines() if regex.search(line)), None),
                         lambda line: line is not None or self._proc.poll() is not None, timeout=timeout,
                         what=f"{pattern!r} from {self.argv[0]} on {self.host} (so far: {lines()[-3:]})",
                         cancel=self.cancel)
        if found is None:
            raise WaitTimeout(f"{self.argv[0]} on {self.host} ended ({self.exit}) without printing {pattern!r}; "
                              f"its last lines: {lines()[-5:]}")
        return found

    def wait(self, timeout: float) -> Exit:
        """Wait for the program to end; return how it ended."""
        wait_for(lambda: self._proc.poll(), lambda code: code is not None, timeout=timeout,
                 what=f"{self.argv[0]} on {self.host} to end", cancel=self.cancel)
        for t in self._threads:
            t.join(timeout=5)
        return self.exit or Exit(self._proc.returncode, None)

    def transcript(self) -> str:
        """What the program printed, stdout then stderr, and how it ended: for the run's logs."""
        head = f"--- {' '.join(self.argv)} (pid {self.pid or '?'}) ---"
        err = [f"stderr: {line}" for line in self.stderr]
        end = f"--- {self.exit or 'still running when the run ended'} ---"
        return "\n".join([head, *self.stdout, *err, end]) + "\n"

    def stop(self) -> None:
        """Forget the program: end the local docker exec (the program itself dies with its host)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
