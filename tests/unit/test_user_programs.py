"""The test suite's user programs (tests/programs/) on loopback, without Docker.

Each program is built once (gcc -O2 -static, as the docker tests build them)
and run here as netbed runs it: servers with a port, clients with an address,
a port and lines on stdin. The right ones must echo (or add); the wrong ones
must really have their bug wherever loopback shows it cheaply: the zombie,
the EINTR death, the death on a connection reset before accept, the silent
client, the byte order of the binary sum. Conditions are waited for with a
deadline, never slept for; every process a test starts (and its children:
each runs in its own process group) is killed at the end, failed or not.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import tty
import types
from pathlib import Path

import pytest

from netbed.scenarios import CATALOGUE

PROGRAMS_DIR = Path(__file__).resolve().parents[1] / "programs"
DEADLINE = 10.0  # seconds; every condition here normally holds within milliseconds


def _load_build(folder: Path = PROGRAMS_DIR):
    name = f"user_programs_build_{abs(hash(str(folder)))}"
    spec = importlib.util.spec_from_file_location(name, folder / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _load_build()
ECHO_SERVERS = ("fork-noreap", "fork-wait", "fork-wait-eintr", "fork-waitpid", "select", "threads", "asyncio",
                "dies-on-abort")
ECHO_CLIENTS = ("lines", "five", "two-writes", "buffered", "ignores-errors")


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    """Every program built into one folder (the docker tests' /opt/mine)."""
    if shutil.which("gcc") is None:
        message = "gcc is not installed: the test suite's C programs (tests/programs) cannot be built"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true", pytrace=False)
        pytest.skip(message)
    try:
        return build.build(tmp_path_factory.mktemp("mine"))
    except build.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


# ---------------------------------------------------------------- the kernel's view

def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None once PID is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """PID's children, zombies included (they stay on the list until reaped)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
    except OSError:
        pass
    return found


def zombies(pid: int) -> list[int]:
    return [child for child in children(pid) if (proc_stat(child) or ["?"])[0] == "Z"]


def wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as chan:
            return chan.read()
    except OSError:
        return ""


def io_counts(pid: int) -> dict[str, int]:
    """/proc/PID/io: rchar and wchar count the bytes of every read() and write() (sockets included)."""
    with open(f"/proc/{pid}/io") as io:
        return {key: int(value) for key, value in (line.split(":") for line in io)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- running the programs

class Program:
    """A user program in its own process group; stdout and stderr collected as they come."""

    def __init__(self, argv: list[str], terminal: bool = False):
        self.argv = argv
        self.out = bytearray()
        self.err = bytearray()
        self.master = slave = None
        if terminal:  # stdout a terminal, as netbed gives it: stdio is line buffered there
            self.master, slave = pty.openpty()
            tty.setraw(slave)  # no \n -> \r\n
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=slave if terminal else subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        if terminal:
            os.close(slave)
        self.readers = [threading.Thread(target=self._collect, args=(reader, sink), daemon=True) for reader, sink in
                        ((self._reader(self.master) if terminal else self._reader(self.proc.stdout.fileno()), self.out),
                         (self._reader(self.proc.stderr.fileno()), self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _reader(fd: int):
        def read() -> bytes:
            try:
                return os.read(fd, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                return b""
        return read

    @staticmethod
    def _collect(read, sink: bytearray) -> None:
        while chunk := read():
            sink.extend(chunk)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = DEADLINE) -> int:
        """The exit status (negative: killed by that signal), all of the output read."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self} still runs after {timeout} s") from None
        for reader in self.readers:
            reader.join(timeout)
        return status

    def stop(self) -> None:
        # its own process group: it and the children it forked (the group's id cannot be reused by
        # another process while any member lives, even once the leader has been reaped)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for reader in self.readers:
            reader.join(DEADLINE)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                try:
                    stream.close()
                except OSError:  # stdin: the program has gone with bytes unread
                    pass

    def __str__(self) -> str:
        return (f"{shlex.join(self.argv)} (pid {self.pid}, exit {self.proc.poll()})\n"
                f"stdout: {bytes(self.out)!r}\nstderr: {bytes(self.err)!r}")


class LoopbackServer:
    """A server written in the test, on 127.0.0.1: BEHAVIOUR(conn) runs for the first connection."""

    def __init__(self, behaviour):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peer = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(behaviour,), daemon=True)
        self.thread.start()

    def _serve(self, behaviour) -> None:
        try:
            conn, self.peer = self.listener.accept()
            with conn:
                behaviour(conn)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the test's server still runs"
        if self.error:
            raise self.error

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def run(programs, app_probe):
    """run.server(key), run.client(key, port, terminal=False), run.loopback_server(fn); all stopped at the end."""
    started: list[Program] = []
    loopbacks: list[LoopbackServer] = []

    def command(template: str, **values) -> list[str]:
        return [word.replace(build.MOUNT, str(programs)) for word in shlex.split(template.format(**values))]

    def server(key: str) -> Program:
        port = free_port()
        program = Program(command(build.SERVERS[key], port=port))
        started.append(program)
        program.port = port

        def listening():
            if program.proc.poll() is not None:
                raise AssertionError(f"server {key} exited before listening:\n{program}")
            return any(row["local"] == f"0.0.0.0:{port}" and row["state"] == "LISTEN"
                       for row in app_probe.tcp_rows())
        app_probe.wait_until(listening, lambda: f"server {key} to listen on port {port}\n{program}")
        return program

    def client(key: str, port: int, terminal: bool = False) -> Program:
        program = Program(command(build.CLIENTS[key], server_ip="127.0.0.1", port=port), terminal=terminal)
        started.append(program)
        return program

    def loopback_server(behaviour) -> LoopbackServer:
        made = LoopbackServer(behaviour)
        loopbacks.append(made)
        return made

    yield types.SimpleNamespace(server=server, client=client, loopback_server=loopback_server)
    for program in reversed(started):
        program.stop()
    for made in loopbacks:
        made.close()


def converse(client: Program, text: str) -> tuple[int, str, str]:
    """Give CLIENT its lines and end of input; its exit status, stdout and stderr."""
    client.send(text)
    client.close_stdin()
    status = client.wait()
    return status, client.out.decode(), client.err.decode()


# ---------------------------------------------------------------- the set itself

def test_every_program_is_described_and_the_table_names_real_scenarios():
    files = {source.name for source in build.sources()}
    assert files == {program.file for program in build.PROGRAMS}
    readme = (PROGRAMS_DIR / "README.md").read_text()
    scenarios = {scenario.name for scenario in CATALOGUE}
    for program in build.PROGRAMS:
        header = (PROGRAMS_DIR / program.file).read_text()[:3000]
        assert "Mirrors:" in header and "Verdict:" in header, f"{program.file}: header comment incomplete"
        assert f"`{program.file}`" in readme, f"{program.file} missing from README.md's table"
        assert set(program.must_fail) <= scenarios, f"{program.file}: unknown scenario in {program.must_fail}"
        if program.verdict.startswith("wrong"):
            assert program.bug and program.must_fail and "The bug:" in header, program.file
    assert build.SERVERS["fork-noreap"] == "/opt/mine/serv_fork_noreap {port}"
    assert build.SERVERS["threads"] == "python3 /opt/mine/serv_threads.py {port}"
    assert build.CLIENTS["lines"] == "/opt/mine/cli_lines {server_ip} {port}"
    assert build.CLIENTS["socat"] == "socat - TCP:{server_ip}:{port}"


def test_a_program_gcc_cannot_build_is_named(tmp_path):
    folder = tmp_path / "programs"
    folder.mkdir()
    shutil.copy(PROGRAMS_DIR / "build.py", folder)
    (folder / "cli_typo.c").write_text("int main(void) { return missing; }\n")
    broken = _load_build(folder)
    if shutil.which("gcc") is None:
        with pytest.raises(broken.BuildError, match="gcc is not installed: cannot build cli_typo.c"):
            broken.build(tmp_path / "out")
        return
    with pytest.raises(broken.BuildError, match=r"cli_typo\.c: gcc -O2 -static failed(.|\n)*missing"):
        broken.build(tmp_path / "out")


def test_every_program_is_built(programs):
    for program in build.PROGRAMS:
        built = programs / program.name
        assert built.is_file(), program.name
        if program.file.endswith(".c"):
            assert os.access(built, os.X_OK) and built.read_bytes()[:4] == b"\x7fELF", program.name


# ---------------------------------------------------------------- right answers

@pytest.mark.parametrize("key", ECHO_SERVERS)
def test_each_echo_server_echoes(run, key):
    server = run.server(key)
    assert converse(run.client("lines", server.port), "hello\n") == (0, "hello\n", ""), str(server)


@pytest.mark.parametrize("key", ECHO_CLIENTS)
def test_each_echo_client_echoes(run, key):
    server = run.server("fork-waitpid")
    assert converse(run.client(key, server.port), "hello\n") == (0, "hello\n", "")


def test_the_text_sum_server_adds_lines(run):
    server = run.server("sum-text")
    assert converse(run.client("lines", server.port), "3 4\n-11 -44\nthree four\n") == (
        0, "7\n-55\ninput error\n", "")


def test_the_binary_sum_pair_adds_on_one_machine(run):
    server = run.server("sum-binary")
    assert converse(run.client("sum-binary", server.port), "3 4\n-11 -44\nthree four\n") == (
        0, "7\n-55\ninvalid input: three four\n", "")


# ---------------------------------------------------------------- the bugs, where loopback shows them

def test_binary_sum_server_speaks_this_hosts_byte_order_and_long(run):
    """5.18: the bytes of struct args are the protocol; another byte order or long size gets nonsense."""
    if struct.calcsize("l") != 8:
        pytest.skip("this check is written for a host whose long has 8 bytes")
    native, other = ("<", ">") if sys.byteorder == "little" else (">", "<")
    server = run.server("sum-binary")
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as conn:
        conn.sendall(struct.pack(f"{native}qq", 1, 2))
        assert struct.unpack(f"{native}q", conn.recv(8, socket.MSG_WAITALL)) == (3,)
        # a client of the other byte order: small sums without carries come out right, as in the book...
        conn.sendall(struct.pack(f"{other}qq", 1, 2))
        assert struct.unpack(f"{other}q", conn.recv(8, socket.MSG_WAITALL)) == (3,)
        # ...negative ones do not (the book's "-22 -77")
        conn.sendall(struct.pack(f"{other}qq", -22, -77))
        assert struct.unpack(f"{other}q", conn.recv(8, socket.MSG_WAITALL)) != (-99,)
        # two requests of a 32-bit-long client are one request here; its reading 4 bytes gives 1 + 3
        conn.sendall(struct.pack(f"{native}ii", 1, 2) + struct.pack(f"{native}ii", 3, 4))
        assert struct.unpack(f"{native}i", conn.recv(8, socket.MSG_WAITALL)[:4]) == (4,)


@pytest.mark.parametrize("key, zombies_per_client", [("fork-noreap", 1), ("fork-wait", 0), ("fork-waitpid", 0)])
def test_zombies_after_clients_close(run, app_probe, key, zombies_per_client):
    """5.7-5.9: one client at a time; no handler leaves a zombie per client, wait() or waitpid() none."""
    server = run.server(key)
    for done in (1, 2):
        client = run.client("lines", server.port)
        client.send("hello\n")
        app_probe.wait_until(lambda: len(children(server.pid)) == (done - 1) * zombies_per_client + 1,
                             lambda: f"the child serving client {done}\n{server}")
        client.close_stdin()
        assert client.wait() == 0
        if zombies_per_client:
            app_probe.wait_until(lambda: len(zombies(server.pid)) == done,
                                 lambda: f"{done} zombie(s) of {key}; children {children(server.pid)}")
        else:  # reaped: the child has left the list (a zombie stays on it until reaped)
            app_probe.wait_until(lambda: not children(server.pid),
                                 lambda: f"{key} to reap its child; children {children(server.pid)}")
    assert server.proc.poll() is None


def test_waitpid_loop_reaps_five_children_that_exit_together(run, app_probe):
    """5.10: cli_five's five connections close at once; waitpid's loop reaps all five."""
    server = run.server("fork-waitpid")
    client = run.client("five", server.port)
    app_probe.wait_until(lambda: len(children(server.pid)) == 5, lambda: f"five children of the server\n{server}")
    status, out, err = converse(client, "hello\n")
    assert (status, out, err) == (0, "hello\n", "")
    app_probe.wait_until(lambda: not children(server.pid), lambda: f"all five reaped; children {children(server.pid)}")


@pytest.mark.parametrize("key, dies", [("fork-wait-eintr", True), ("fork-wait", False), ("fork-waitpid", False)])
def test_sigchld_while_in_accept(run, app_probe, key, dies):
    """5.9: a child exits while the parent is blocked in accept; without SA_RESTART and an EINTR check it dies."""
    server = run.server(key)
    client = run.client("lines", server.port)
    client.send("hello\n")
    # the child exists and the parent is back in accept (a running task has no wait channel)
    app_probe.wait_until(lambda: children(server.pid) and app_probe.in_accept(server.pid),
                         lambda: f"{key}'s parent in accept with one child\n{server}")
    assert converse(client, "") == (0, "hello\n", "")
    if dies:
        assert server.wait() == 1
        assert server.err.decode() == "accept error: Interrupted system call\n"
    else:
        app_probe.wait_until(lambda: not children(server.pid), lambda: f"{key} to reap its child")
        assert server.proc.poll() is None
        assert converse(run.client("lines", server.port), "again\n") == (0, "again\n", "")


@pytest.mark.parametrize("key, dies", [("dies-on-abort", True), ("fork-waitpid", False), ("select", False)])
def test_connection_reset_before_accept(run, app_probe, key, dies):
    """5.11: the client's RST comes before accept; Linux's accept returns the dead connection anyway."""
    server = run.server(key)
    os.kill(server.pid, signal.SIGSTOP)  # the handshake completes in the kernel; accept waits
    try:
        app_probe.wait_until(lambda: (proc_stat(server.pid) or ["?"])[0] in "tT", "the server to stop")
        aborted = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        peer = "%s:%d" % aborted.getsockname()
        app_probe.wait_until(lambda: app_probe.tcp_state(f"127.0.0.1:{server.port}", peer) == "ESTABLISHED",
                             "the connection, established in the server's accept queue")
        aborted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        aborted.close()  # RST
        app_probe.wait_until(lambda: app_probe.tcp_state(f"127.0.0.1:{server.port}", peer) is None,
                             "the RST to reach the queued connection")
    finally:
        os.kill(server.pid, signal.SIGCONT)
    if dies:
        assert server.wait() == 1
        assert server.err.decode() == "getpeername error: Transport endpoint is not connected\n"
        return
    if key == "fork-waitpid":  # its child read the reset connection and exited; the parent lives on
        app_probe.wait_until(lambda: b"str_echo: read error: Connection reset by peer\n" in server.err,
                             lambda: f"the child's read error\n{server}")
    assert converse(run.client("lines", server.port), "still here?\n") == (0, "still here?\n", "")
    assert server.proc.poll() is None


@pytest.mark.parametrize("key, prints_at_once", [("lines", True), ("buffered", False)])
def test_when_the_client_prints(run, app_probe, key, prints_at_once):
    """On a terminal, cli_lines prints each echo at once; cli_buffered only when it exits."""
    server = run.server("fork-waitpid")
    client = run.client(key, server.port, terminal=True)
    client.send("hello\n")
    # it has read its line (6 bytes) and the echo (6 bytes), and waits for the next line
    app_probe.wait_until(lambda: io_counts(client.pid)["rchar"] >= 12 and "pipe_read" in wchan(client.pid),
                         lambda: f"{key} to read the echo and wait for its next line: {io_counts(client.pid)}, "
                                 f"wchan {wchan(client.pid)!r}")
    written = io_counts(client.pid)["wchar"]  # the 6 bytes sent, plus what it wrote to stdout
    if prints_at_once:
        assert written == 12
        app_probe.wait_until(lambda: client.out == b"hello\n", lambda: f"the echo on the terminal\n{client}")
    else:
        assert written == 6 and client.out == b""
    assert converse(client, "") == (0, "hello\n", "")


def test_two_writes_client_sends_a_line_in_two_pieces(run):
    """5.13's client: the server reads its first byte, then (a second later) the rest."""
    reads: list[bytes] = []

    def echo_recording_reads(conn):
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(4096)
            assert chunk, "the client closed before a whole line"
            reads.append(chunk)
            line += chunk
        conn.sendall(line)
        assert conn.recv(4096) == b""  # the client's FIN

    server = run.loopback_server(echo_recording_reads)
    assert converse(run.client("two-writes", server.port), "hello\n") == (0, "hello\n", "")
    server.finish()
    assert reads == [b"h", b"ello\n"]


@pytest.mark.parametrize("key, status, stderr", [
    ("lines", 1, "str_cli: server terminated prematurely\n"),
    ("two-writes", -signal.SIGPIPE, ""),                # 5.13: the second write after the RST
    ("ignores-errors", 0, ""),                          # the bug: not a word, as after a normal session
])
def test_server_gone_before_the_line(run, app_probe, key, status, stderr):
    """5.12-5.13: the server has closed (FIN); the client writes, gets an RST, and must not stay silent."""
    server = run.loopback_server(lambda conn: None)  # accept, close at once
    client = run.client(key, server.port)
    server.finish()
    local = "%s:%d" % server.peer
    app_probe.wait_until(lambda: app_probe.tcp_state(local, f"127.0.0.1:{server.port}") == "CLOSE_WAIT",
                         "the server's FIN at the client")
    assert converse(client, "hello\nworld\n") == (status, "", stderr)
