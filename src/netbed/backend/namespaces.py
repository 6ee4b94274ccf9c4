"""netbed's tools beside a host: run from the engine machine inside the host's namespaces, not from its image.

When netbed is root on the engine's machine, it needs nothing inside a host:
`ss`, `ps` and `kill` are the machine's own, run in the host's network and
PID namespaces with a /proc of the host's own (a fresh mount namespace, so
the machine's mounts are untouched), and a program is started on a terminal
by the machine's Python (netbed.apps.ptyrun), which enters all of the host's
namespaces (its files, its network, its PIDs) and its control groups, so that a paused host freezes
it and a killed host kills it, exactly as a process started in the host. A
host image may then be anything that runs: no Python, no iproute2, no procps.

Every namespace is opened once, checked against the machine's own, and
entered through that same descriptor, so neither a host that stops nor a PID
reused in between can send a command into the machine's namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from netbed.backend import guard

KINDS = ("mnt", "uts", "ipc", "net", "pid")
NSENTER_FLAG = {"mnt": "--mount", "uts": "--uts", "ipc": "--ipc", "net": "--net", "pid": "--pid"}  # for run_beside


class NamespaceError(guard.RefusedError):
    pass


def alive(pid: int | None) -> bool:
    """Whether a process of this machine is there and not a zombie (one that exited and awaits its parent)."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Entry:
    """A host's namespaces, opened and checked: the descriptors to enter them by."""

    host: str
    pid: int
    fds: dict[str, int]

    @classmethod
    def open(cls, host: str, pid: int, kinds: tuple[str, ...] = KINDS) -> "Entry":
        fds: dict[str, int] = {}
        try:
            for kind in kinds:
                try:
                    fds[kind] = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
                except OSError:
                    raise NamespaceError(f"{host} has no {kind} namespace to enter (is it running?)") from None
                _check(host, kind, os.fstat(fds[kind]).st_ino)
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        return cls(host, pid, fds)

    def nsenter(self, kinds: tuple[str, ...]) -> list[str]:
        """`nsenter` with these namespaces, each by its open descriptor (pass `self.fds` to the child)."""
        return ["nsenter", *(f"{NSENTER_FLAG[k]}=/proc/self/fd/{self.fds[k]}" for k in kinds)]

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def __enter__(self) -> "Entry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(host: str, kind: str, inode: int) -> None:
    """A namespace of a host must not be one of the machine's (netbed's own, PID 1's or the engine's)."""
    if kind == "net":
        guard.check_namespace(inode, guard.machine_netns_inodes(), host)
        return
    mine = set()
    for pid in ("self", "1"):
        try:
            mine.add(os.stat(f"/proc/{pid}/ns/{kind}").st_ino)
        except OSError:
            pass
    if inode in mine:
        raise NamespaceError(f"netbed will not act on {host}: its {kind} namespace is the machine's own")


def run_beside(host: str, pid: int, argv: list[str], timeout: float = 30) -> tuple[int, str, str]:
    """Run one of the machine's tools (ss, ps, kill) in the host's network and PID namespaces, with a /proc
    of the host's own. Returns the exit status, stdout and stderr."""
    with Entry.open(host, pid, ("net", "pid")) as entry:
        done = subprocess.run([*entry.nsenter(("net", "pid")), "--", "unshare", "--mount", "--mount-proc", *argv],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                              pass_fds=tuple(entry.fds.values()))
    return done.returncode, done.stdout, done.stderr


def cgroup_procs(pid: int) -> list[str]:
    """The cgroup.procs files of every control group process `pid` belongs to (v1 hierarchies or v2)."""
    mounts: dict[str, str] = {}  # controllers ("" for v2, "name=systemd", "cpu,cpuacct") -> mount point
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2") or fields[3] != "/":
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault("", fields[4])
        else:
            names = [o for o in tail[2].split(",") if o not in ("rw", "ro", "nosuid", "nodev", "noexec",
                                                                "relatime", "clone_children")]
            mounts.setdefault(",".join(names), fields[4])
    files = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        point = mounts.get(controllers) or next((m for c, m in mounts.items() if c and set(c.split(",")) ==
                                                 set(controllers.split(","))), None)
        if point is not None:
            procs = Path(point) / path.lstrip("/") / "cgroup.procs"
            if procs.exists():
                files.append(str(procs))
    return files


def program_command(entry: Entry, argv: list[str], env: list[str], wd: str = "/") -> list[str]:
    """The local command that runs `argv` in the host, on a terminal (netbed.apps.ptyrun with the machine's
    Python), inside all of the host's namespaces and control groups, with its environment (`env`, KEY=VALUE)
    and in its working folder."""
    join = cgroup_procs(entry.pid)
    if not join:
        raise NamespaceError(f"cannot find {entry.host}'s control groups: netbed would not be able to freeze "
                             "its programs with it")
    return [sys.executable, "-m", "netbed.apps.ptyrun", "--join", ",".join(join), "--env", json.dumps(env),
            "--enter", ",".join(f"{kind}={fd}" for kind, fd in entry.fds.items()), "--wd", wd or "/", "--", *argv]


def pid_in_host(machine_pid: int) -> int | None:
    """The host's own number for the program, the child of the process ptyrun reports: None while it is not
    there yet, -1 once that process has no child left (the program ended at once; its exit status follows)."""
    try:
        children = Path(f"/proc/{machine_pid}/task/{machine_pid}/children").read_text().split()
        if not children:
            state = Path(f"/proc/{machine_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return -1 if state in ("Z", "X") else None
        status = Path(f"/proc/{children[0]}/status").read_text()
    except OSError:
        return -1
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return None
