"""The test suite's user programs: what each one is, and how to build them.

These are programs netbed did not write, written as students write them (the
book's C with its small error helpers; two Python servers), each a right or a
deliberately wrong answer to one of UNP's ch. 4-5 lessons. They are the
catalogue's negative controls: a scenario must pass the right ones and fail
the wrong ones with a message that names the bug (see README.md here).

    build(out_dir)   compiles every .c here with `gcc -O2 -static` into
                     OUT_DIR/NAME (no .c) and copies every program .py;
                     the docker tests mount OUT_DIR at /opt/mine.
    SERVERS, CLIENTS short name -> command template, for --server-cmd and
                     --client-cmd ({port}, {server_ip}).
    PROGRAMS         the table of README.md as data.

Run by hand: python3 tests/programs/build.py OUT_DIR
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOUNT = "/opt/mine"
"""Where the docker tests mount build()'s folder in the hosts."""
CFLAGS = ("-O2", "-static")


@dataclass(frozen=True)
class Program:
    key: str                        # short name in SERVERS / CLIENTS
    file: str                       # its source, in this folder
    mirrors: str                    # the book's program it follows
    verdict: str                    # "right", "wrong", or right with a proviso
    bug: str                        # what is wrong with it ("" if nothing)
    must_fail: tuple[str, ...] = ()  # the scenarios that must fail it (catalogue names)

    @property
    def role(self) -> str:
        return "server" if self.file.startswith("serv_") else "client"

    @property
    def name(self) -> str:
        """Its name under MOUNT: a C program without .c, a Python one as it is."""
        return self.file[:-2] if self.file.endswith(".c") else self.file

    @property
    def command(self) -> str:
        run = f"python3 {MOUNT}/{self.name}" if self.file.endswith(".py") else f"{MOUNT}/{self.name}"
        return f"{run} {{port}}" if self.role == "server" else f"{run} {{server_ip}} {{port}}"


NOT_FORK_PER_CLIENT = "one process serves every connection: not fork-per-client"

PROGRAMS: tuple[Program, ...] = (
    Program("fork-noreap", "serv_fork_noreap.c", "tcpserv01 (5.2)", "wrong",
            "no SIGCHLD handler: a zombie per client, for as long as the server lives",
            ("normal-termination", "sigchld-handler", "sigchld-multiple")),
    Program("fork-wait", "serv_fork_wait.c", "tcpserv03 + sigchldwait (5.9)", "right for one client at a time",
            "wait() once per SIGCHLD: signals are not queued, so children that exit together stay zombies",
            ("sigchld-multiple",)),
    Program("fork-wait-eintr", "serv_fork_wait_eintr.c", "tcpserv02 + sigchldwait (5.9), no SA_RESTART", "wrong",
            "SIGCHLD interrupts accept (no SA_RESTART), EINTR is not handled: the parent exits with "
            "\"accept error: Interrupted system call\" when its first child exits",
            ("eintr",)),
    Program("fork-waitpid", "serv_fork_waitpid.c", "tcpserv04 + sigchldwaitpid (5.10)", "right", ""),
    Program("fork-noclose", "serv_fork_noclose.c", "tcpserv04 (5.10) without UNP 4.8's two close() calls", "wrong",
            "the parent keeps every connected socket and each child the listening one (no close after fork)",
            ("concurrent-server",)),
    Program("select", "serv_select.c", "tcpservselect01 (6.8)", "right echo server, single process",
            NOT_FORK_PER_CLIENT, ("concurrent-server",)),
    Program("threads", "serv_threads.py", "tcpserv04's role, a thread per client (socketserver)",
            "right echo server, single process", NOT_FORK_PER_CLIENT + " (threads)", ("concurrent-server",)),
    Program("asyncio", "serv_asyncio.py", "tcpservselect01's role, an event loop (asyncio)",
            "right echo server, single process", NOT_FORK_PER_CLIENT + " (event loop)", ("concurrent-server",)),
    Program("dies-on-abort", "serv_dies_on_abort.c", "tcpserv04 (5.10) + getpeername in the parent", "wrong",
            "a connection reset before accept (5.11): accept returns it, getpeername fails with ENOTCONN and "
            "the parent exits with \"getpeername error: Transport endpoint is not connected\"",
            ("accept-abort",)),
    Program("sum-text", "serv_sum_text.c", "tcpserv04 + str_echo08 (5.18)", "right", ""),
    Program("sum-binary", "serv_sum_binary.c", "tcpserv04 + str_echo09, sum.h (5.18)",
            "wrong (right only between hosts of the same byte order and sizeof(long))",
            "binary structures as the protocol: host byte order, sizeof(long)", ("data-format-binary",)),
    Program("iterative", "serv_iterative.c", "tcpserv01 (5.2) without fork: an iterative server (1.5, 4.6)",
            "wrong", "one client at a time: a second client waits in the listen queue, ACKed but never echoed",
            ("concurrent-server", "keepalive-crash", "heartbeat-pause")),
    Program("ignores-term", "serv_ignores_term.c", "tcpserv04 + sigchldwaitpid (5.10) with SIGTERM ignored",
            "wrong", "SIGTERM ignored: a shutdown (5.16) must wait for the grace period's SIGKILL to end its "
            "connections", ("server-host-shutdown",)),
    Program("sum-text-atoi", "serv_sum_text_atoi.c", "tcpserv04 + str_echo08 (5.18), parsed with strtok and atoi",
            "wrong", "atoi into ints: a line without two numbers gets \"0\", not \"input error\"; "
            "\"2147483647 1\" overflows to -2147483648", ("data-format-text",)),
    Program("sum-binary-int", "serv_sum_binary_int.c", "tcpserv04 + str_echo09, sum.h written with int (5.18)",
            "wrong", "the structures' sizes differ: it reads 8-byte requests (two ints) where the book's client "
            "sends 16 (two longs)", ("data-format-binary",)),
    Program("lines", "cli_lines.c", "tcpcli01 + str_cli (5.4-5.5)", "right", ""),
    Program("five", "cli_five.c", "tcpcli04 (5.10)", "right", ""),
    Program("two-writes", "cli_two_writes.c", "tcpcli11 + str_cli11 (5.13)", "right", ""),
    Program("two-writes-epipe", "cli_two_writes_epipe.c", "tcpcli11 + str_cli11 (5.13), SIGPIPE ignored",
            "right", ""),
    Program("buffered", "cli_buffered.c", "tcpcli01 + str_cli (5.4-5.5), stdout fully buffered",
            "right (prints only at exit)", ""),
    Program("ignores-errors", "cli_ignores_errors.c", "tcpcli01 + str_cli (5.4-5.5), checks removed", "wrong",
            "SIGPIPE ignored, write's result ignored, EOF or error from the server: exit 0 without a word",
            ("server-process-killed", "sigpipe")),
    Program("sum-binary", "cli_sum_binary.c", "tcpcli09 + str_cli09, sum.h (5.18)",
            "wrong (right only between hosts of the same byte order and sizeof(long))",
            "binary structures as the protocol: host byte order, sizeof(long)", ("data-format-binary",)),
    Program("says-reset", "cli_says_reset.c", "tcpcli01 + str_cli (5.4-5.5), a hard-coded error message", "wrong",
            "every failure reported as \"Connection reset by peer\", whatever errno says: after a crash of the server "
            "host (ETIMEDOUT) it tells the user the server rebooted", ("server-host-crash",)),
    Program("gives-up", "cli_gives_up.c", "tcpcli01 + str_cli (5.4-5.5) with a 1 s SO_RCVTIMEO (14.2)", "wrong",
            "a one-second receive timeout takes a delay for a dead server: after a short partition it quits "
            "(\"str_cli: server not responding\") though TCP was retransmitting the line", ("partition-heal",)),
    Program("exits-quietly", "cli_exits_quietly.c", "tcpcli01 + str_cli (5.4-5.5), exit(1) for every error message",
            "right as far as a silent program can be judged (the moment it exits tells the error)", ""),
)

SERVERS: dict[str, str] = {p.key: p.command for p in PROGRAMS if p.role == "server"}
CLIENTS: dict[str, str] = {p.key: p.command for p in PROGRAMS if p.role == "client"}
CLIENTS["socat"] = "socat - TCP:{server_ip}:{port}"   # a client from another ecosystem, nothing to build


class BuildError(RuntimeError):
    """A program of this folder could not be built; the message names it."""


def sources() -> list[Path]:
    """Every program's source here (the .c files and the .py programs, not this file)."""
    return sorted(p for p in HERE.iterdir()
                  if p.suffix == ".c" or (p.suffix == ".py" and p.name.startswith(("serv_", "cli_"))))


def build(out_dir: Path) -> Path:
    """Compile every .c into OUT_DIR (static, -O2, no .c), copy the .py programs; OUT_DIR."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o755)  # a host's user other than ours may have to read it
    c_files = [p for p in sources() if p.suffix == ".c"]
    gcc = shutil.which("gcc")
    if c_files and gcc is None:
        raise BuildError(f"gcc is not installed: cannot build {c_files[0].name} and the other C programs "
                         "(Debian: apt-get install gcc libc6-dev)")

    def compile_one(source: Path) -> str | None:
        target = out_dir / source.stem
        done = subprocess.run([gcc, *CFLAGS, "-o", str(target), str(source)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{source.name}: gcc {' '.join(CFLAGS)} failed (exit {done.returncode}):\n{done.stderr.strip()}"
        os.chmod(target, 0o755)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failures = [f for f in pool.map(compile_one, c_files) if f]
    if failures:
        raise BuildError("cannot build the test programs:\n" + "\n".join(failures))
    for source in sources():
        if source.suffix == ".py":
            shutil.copyfile(source, out_dir / source.name)
            os.chmod(out_dir / source.name, 0o644)
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/programs/build.py OUT_DIR")
    try:
        print(build(Path(sys.argv[1])))
    except BuildError as exc:
        sys.exit(str(exc))
