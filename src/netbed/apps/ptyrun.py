"""Run a program on a pseudo-terminal, as a person at a terminal would.

A C program's stdio fully buffers a pipe, so its echoes would arrive late, or
be lost when a signal kills it; on a terminal it flushes every line. This
wrapper gives the program a terminal for stdin and stdout (echo off, no
CR/LF translation), relays our stdin to it line by line (our EOF becomes the
terminal's end-of-file character), and keeps its stderr apart. It reports
the program's pid first and its end last, on stderr, as lines starting with
`netbed-ptyrun:`, and exits with the program's status (128+N for signal N).

    python3 -m netbed.apps.ptyrun [--join FILE,...] [--env JSON] [--enter KIND=FD,... --wd DIR] -- PROGRAM [ARG ...]

For a program netbed runs from the engine's machine in a host: --join makes
it join these control groups first (their cgroup.procs files), so that it
lives and freezes with the host; --env gives it the host's environment (a
JSON list of KEY=VALUE) instead of this one's; --enter makes it enter the
host's namespaces through these open descriptors (mnt, uts, ipc, net, pid)
and start in the host's folder DIR. In a new PID namespace the program is
the child of the process ptyrun reports, which only waits for it and ends
as it ends (unlike nsenter, it does not stop when the program is stopped).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import termios

MARK = "netbed-ptyrun:"
VEOF = b"\x04"


def _quiet_terminal(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.OPOST  # oflag: no "\n" -> "\r\n"
    attrs[3] &= ~(termios.ECHO | termios.ECHONL)  # lflag: do not echo what we type
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _report(text: str) -> None:
    os.write(2, f"{MARK} {text}\n".encode())


def _enter(namespaces: list[tuple[str, int]], wd: str) -> None:
    """Enter the namespaces (mnt last), then go on in a child, in the new PID namespace; this process only
    waits for that child and ends as it ends."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for kind, fd in sorted(namespaces, key=lambda item: item[0] == "mnt"):
        if libc.setns(fd, 0) != 0:
            raise OSError(ctypes.get_errno(), f"cannot enter the host's {kind} namespace")
        os.close(fd)
    child = os.fork()
    if child == 0:
        os.chdir(wd)
        return
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def main(argv: list[str]) -> int:
    join: list[str] = []
    env: dict[str, str] | None = None
    enter: list[tuple[str, int]] = []
    wd = "/"
    while argv[:1] in (["--join"], ["--env"], ["--enter"], ["--wd"]) and len(argv) > 1:
        if argv[0] == "--join":
            join = [f for f in argv[1].split(",") if f]
        elif argv[0] == "--env":
            env = dict(item.split("=", 1) for item in json.loads(argv[1]) if "=" in item)
        elif argv[0] == "--enter":
            enter = [(kind, int(fd)) for kind, _, fd in (item.partition("=") for item in argv[1].split(","))]
        else:
            wd = argv[1]
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    master, slave = pty.openpty()
    _quiet_terminal(slave)
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        os.dup2(slave, 0)
        os.dup2(slave, 1)
        if slave > 2:
            os.close(slave)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            for procs in join:
                with open(procs, "w") as f:
                    f.write(f"{os.getpid()}\n")
            if enter:
                _enter(enter, wd)
            if env is None:
                os.execvp(argv[0], argv)
            else:  # found on the host's PATH
                os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
    os.close(slave)
    _report(f"pid={pid}")
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    stdin_open = True
    while True:
        fds = [master] + ([0] if stdin_open else [])
        readable, _, _ = select.select(fds, [], [])
        if 0 in readable:
            data = os.read(0, 4096)
            if data:
                os.write(master, data)
            else:
                os.write(master, VEOF)
                stdin_open = False
        if master in readable:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the program closed the terminal (it exited)
                data = b""
            if not data:
                break
            os.write(1, data)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        _report(f"signal={sig} ({signal.Signals(sig).name})")
        return 128 + sig
    code = os.WEXITSTATUS(status)
    _report(f"exit={code}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
