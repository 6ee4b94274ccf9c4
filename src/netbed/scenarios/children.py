"""A fork-per-client server's processes, whoever wrote it: who owns which connection, who is left a zombie.

The scenarios about the book's concurrent server (4.8, 5.7, 5.9, 5.10) judge
a user's server from the server host's process table and sockets only: the
listener (the process holding the LISTEN socket), the processes owning the
connections of the scenario's own clients, their parent, their state (Z: a
zombie nobody reaped), the listener's kernel wait channel, and how the server
program ended (its last line on stderr).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from netbed import observe
from netbed.errors import NetbedError
from netbed.scenarios.lab import Client, Lab, NotJudged, ScenarioError

SETTLE_S = 3.0
"""How long a process gets to do what it does at once (close its copy of a socket, reap an exited child)."""

NOT_REAPED = "the server does not reap its children (no SIGCHLD handler calling wait/waitpid, UNP 5.9)"
ONE_WAIT = ("the SIGCHLD handler calls wait once per signal, but signals are not queued; "
            "loop on waitpid(-1, &status, WNOHANG) (UNP 5.10)")
NO_CHILD = "one process serves every connection: no child exits, so there is no SIGCHLD to handle"
IN_ACCEPT = ("inet_csk_accept", "inet_accept", "__sys_accept4", "do_accept")
"""Kernel wait channels of a process blocked in accept (Linux: inet_csk_accept)."""
SLOW_WAITS = ("poll_schedule_timeout", "do_select", "do_sys_poll", "ep_poll", "do_epoll_wait")
"""Kernel wait channels of a process blocked in poll, select or epoll_wait: a SIGCHLD interrupts them too (EINTR)."""
SLOW_SYSCALLS = {"43": "accept", "288": "accept4", "7": "poll", "23": "select", "270": "pselect6",
                   "271": "ppoll", "232": "epoll_wait", "281": "epoll_pwait"}
"""x86-64 system call numbers, /proc/PID/syscall's first field, for when the wait channel is hidden
(netbed's hosts run the engine's architecture; elsewhere the number is shown as it is)."""


def settled(lab: Lab, probe: Callable[[], Any], until: Callable[[Any], bool], timeout: float = SETTLE_S,
            what: str = "") -> Any:
    """What `probe` shows once `until` holds, or what it shows at the deadline (the caller judges it)."""
    try:
        return lab.wait_for(probe, until, timeout=timeout, what=what or "the server's processes to settle")
    except observe.WaitTimeout:
        return probe()


def owners(lab: Lab, clients: Iterable[Client]) -> dict[int, tuple[int, ...]]:
    """For every connection of these clients (each local port its processes hold), the pids owning
    its server end, as the server host's `ss` shows them."""
    client_ip = lab.bed.host("client").ip
    ports = [port for client in clients for port in client.ports()]
    by_peer = {s.peer: s.pids for s in lab.sockets("server") if s.state == "ESTABLISHED"}
    return {port: by_peer.get(f"{client_ip}:{port}", ()) for port in ports}


def settled_owners(lab: Lab, clients: list[Client], listener: int) -> dict[int, tuple[int, ...]]:
    """owners(), once each connection has one owner and the children got their copies (the parent of a
    fork-per-client server closes its copy just after fork)."""
    def done(found: dict[int, tuple[int, ...]]) -> bool:
        return bool(found) and all(len(pids) == 1 for pids in found.values()) and (
            all(pids != (listener,) for pids in found.values()) or len({p for ps in found.values() for p in ps}) == 1)
    return settled(lab, lambda: owners(lab, clients), done, what="each connection owned by one process")


def threads(lab: Lab, pid: int) -> int:
    """How many threads the process has (/proc/PID/task), 0 if it cannot be read."""
    listing = lab.bed.exec("server", ["ls", f"/proc/{pid}/task"])
    return len(listing.stdout.split()) if listing.exit_code == 0 else 0


def one_process(lab: Lab, pid: int) -> str:
    """'one process (pid N) serves every connection', naming its threads if it has several."""
    n = threads(lab, pid)
    return f"one process (pid {pid}){f' with {n} threads' if n > 1 else ''} serves every connection"


def alive(lab: Lab, pids: Iterable[int]) -> dict[int, str]:
    """Each of these pids still on the server host, with its ps state (Z: a zombie)."""
    wanted = set(pids)
    return {p.pid: p.stat for p in lab.processes("server") if p.pid in wanted}


def zombies_after_reaping(lab: Lab, children: Iterable[int], parent: int | None = None,
                          timeout: float = SETTLE_S) -> list[int]:
    """The children still zombies once the server had its chance to reap them: an exited child it reaps is
    gone from the process table at once, one it never reaps stays (state Z).

    Its chance is over when the parent is back asleep in accept (or poll/select) with no SIGCHLD pending:
    the kernel posts SIGCHLD before it shows the child as a zombie, so by then the parent has run its handler,
    or has none. A parent seen otherwise gets `timeout`.
    """
    children = sorted(set(children))

    def done(found: dict[int, str]) -> bool:
        return not found or (parent is not None and all(stat.startswith("Z") for stat in found.values())
                             and idle(lab, parent))

    left = settled(lab, lambda: alive(lab, children), done, timeout=timeout, what=f"children {children} reaped")
    return sorted(pid for pid, stat in left.items() if stat.startswith("Z"))


SIGCHLD_BIT = 1 << (17 - 1)  # SIGCHLD is 17 on Linux; /proc/PID/status shows pending signals as a hex mask


def idle(lab: Lab, pid: int) -> bool:
    """The process sleeps in accept (or poll/select) with no SIGCHLD pending, for itself or its threads."""
    status = lab.bed.exec("server", ["cat", f"/proc/{pid}/status"])
    if status.exit_code != 0:
        return False
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in status.stdout.splitlines())}
    try:
        pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
    except ValueError:
        return False
    return fields.get("State", "")[:1] == "S" and not pending & SIGCHLD_BIT and in_slow_call(wait_channel(lab, pid))


def exited(lab: Lab, children: Iterable[int], timeout: float = 10) -> dict[int, str]:
    """Wait until every one of these children has exited (gone, or a zombie); what is left of them."""
    children = sorted(set(children))
    return lab.wait_for(lambda: alive(lab, children),
                        lambda found: all(stat.startswith("Z") for stat in found.values()),
                        timeout=timeout, what=f"children {children} to exit")


def zombie_verdict(zombies: list[int], served: int) -> str:
    """Why these children are zombies, in the book's words ('' when none is)."""
    if not zombies:
        return ""
    if len(zombies) == 1 and served == 1:
        return f"child {zombies[0]} left a zombie: {NOT_REAPED}"
    why = NOT_REAPED if len(zombies) == served else ONE_WAIT
    return f"{len(zombies)} of {served} children left zombies: {why}; zombies: {', '.join(map(str, zombies))}"


def server_end(lab: Lab, timeout: float = 2.0) -> str:
    """How the server program ended, with its last line on stderr ('' while it runs)."""
    server = lab.server
    if server is None:
        return ""
    settled(lab, lambda: server.exit, lambda end: end is not None, timeout=timeout, what="the server program to end")
    if server.exit is None:
        return ""
    said = (server.stderr or server.stdout or [""])[-1].strip()
    return f"the server exited with {said!r}" if said else f"the server ended ({server.exit}) without a word"


def wait_channel(lab: Lab, pid: int) -> str:
    """Where the process sleeps in the kernel: /proc/PID/wchan, or the system call it is in
    (/proc/PID/syscall) when the wait channel is hidden; '' when neither can be read."""
    wchan = lab.bed.exec("server", ["cat", f"/proc/{pid}/wchan"])
    if wchan.exit_code == 0 and wchan.stdout.strip() not in ("", "0"):
        return wchan.stdout.strip()
    syscall = lab.bed.exec("server", ["cat", f"/proc/{pid}/syscall"])
    first = syscall.stdout.split()[:1] if syscall.exit_code == 0 else []
    return f"syscall {SLOW_SYSCALLS.get(first[0], first[0])}" if first else ""


def in_accept(channel: str) -> bool:
    return channel in IN_ACCEPT or channel in ("syscall accept", "syscall accept4")


def in_slow_call(channel: str) -> bool:
    """Blocked in accept, or in poll/select/epoll_wait waiting for the listening socket."""
    return in_accept(channel) or channel.split(".")[0] in SLOW_WAITS or (
        channel.startswith("syscall ") and channel.removeprefix("syscall ") in SLOW_SYSCALLS.values())


EINTR_NOT_RESTARTED = "accept was interrupted by SIGCHLD and not restarted (UNP 5.9)"


def survives(lab: Lab, listener: int, timeout: float = 0.0) -> tuple[bool, str]:
    """Whether the server program still runs and the same process still listens; what was seen.

    A server that died says why in its last line; "Interrupted system call"
    there is the book's 5.9 failure, named so.
    """
    end = server_end(lab, timeout=timeout)
    if end:
        return False, f"{end}: {EINTR_NOT_RESTARTED}" if "Interrupted system call" in end else end
    try:
        now = lab.listener()
    except ScenarioError as exc:  # nobody listens any more
        return False, str(exc)
    if now != listener:
        return False, f"pid {now} listens now, not pid {listener}"
    return True, f"pid {listener} still listens"


def another_client(lab: Lab, line: str, name: str = "second client") -> tuple[Client, str]:
    """Start one more client and type a line: ('echoed' or what went wrong, e.g. its connect error)."""
    client = lab.client(name=name)
    try:
        client.send(line)
        client.expect_echo(line)
        return client, "echoed"
    except NotJudged:
        raise
    except NetbedError as exc:  # it could not connect and ended, or no echo came
        said = client.program.stderr[-1:] if client.program.exit is not None else []
        return client, f"no echo: {said[0] if said else exc}"


def serves_after_sigchld(lab: Lab, listener: int, parent_survives: str) -> tuple[Client, bool]:
    """After a child exited: a second client is served and the same process still listens (two checks);
    the second client, and whether it was echoed."""
    second, echoed = another_client(lab, "still there?")
    ok, seen = survives(lab, listener, timeout=0 if echoed == "echoed" else 2)
    lab.check(parent_survives, ok, f"pid {listener} still listens", seen)
    lab.check("a second client is served after the first one's child exited", echoed == "echoed",
              "'still there?' echoed", echoed)
    return second, echoed == "echoed"
