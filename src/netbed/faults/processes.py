"""Faults on a host's processes: freeze them, kill one or all, shut the host down in order (UNP 5.12, 5.16)."""

from __future__ import annotations

import math
import signal as signals
from typing import Any

from netbed import observe
from netbed.backend import Backend
from netbed.errors import NetbedError
from netbed.faults.base import STATE_DEADLINE, FaultError, await_status, chains, running
from netbed.faults.registry import HOST, Param, fault
from netbed.observe import wait_for

GRACE_MAX_S = 600.0
CRASH_CHAIN = "NETBED-CRASH"   # a crashed host is also paused; it comes back with reboot, not unpause


def check_pid(pid: int) -> int:
    """A process netbed may kill inside a host: not PID 1 (the host's init) nor a process group."""
    if pid < 2:
        raise FaultError(f"pid {pid}: give one process of the host, 2 or more "
                         "(PID 1 is the host's init: to kill the whole host, give no pid)")
    return pid


def signal_name(signal: str) -> str:
    """SIGTERM, TERM, term or 15 as the signal's name; an unknown one is refused."""
    name = signal.upper() if signal.upper().startswith("SIG") else f"SIG{signal.upper()}"
    if signal.isdigit():
        try:
            name = signals.Signals(int(signal)).name
        except ValueError:
            raise FaultError(f"kill: no signal number {signal}") from None
    if name not in signals.Signals.__members__:
        raise FaultError(f"kill: unknown signal {signal!r} (try SIGTERM, SIGKILL, SIGINT)")
    return name


@fault("pause", "Freeze a host's processes; its kernel keeps answering.", undone_by="unpause")
def pause(bed: Backend, host: str) -> None:
    """Freeze the host's processes; its kernel still ACKs and answers keepalive probes."""
    running(bed, host, "pause")
    bed.pause(host)
    await_status(bed, host, "paused")


@fault("unpause", "Thaw a paused host.")
def unpause(bed: Backend, host: str) -> None:
    bed.own(host)
    status = bed.status(host)
    if status != "paused":
        raise FaultError(f"unpause: {host} is {status}, not paused")
    if chains(bed, host) & {CRASH_CHAIN}:
        raise FaultError(f"unpause: {host} has crashed; a crashed host comes back with `reboot`")
    bed.unpause(host)
    await_status(bed, host, "running")


def _killed(values: dict[str, Any], _: Any) -> str:
    pid = values.get("pid")
    return f"kill: {values['signal']} to {values['host']}{f' pid {pid}' if pid else ''} done"


@fault("kill", "Kill a host's main process, or one process in it.", said=_killed,
       params=(HOST,
               Param("signal", "A name (SIGTERM, TERM) or number.", default="SIGKILL", check=signal_name),
               Param("pid", "One process inside the host (e.g. a forked child, 2 or more) instead of the whole host.",
                     kind=int, default=None, check=check_pid)))
def kill(bed: Backend, host: str, signal: str = "SIGKILL", pid: int | None = None) -> None:
    """Kill the host's main process, or one process inside the host (e.g. a forked child)."""
    name = signal_name(signal)
    if pid is not None:
        check_pid(pid)
    running(bed, host, "kill")
    if pid is None:
        bed.signal(host, name)
        if name == "SIGKILL":
            await_status(bed, host, "exited")
        return
    done = bed.beside(host, ["kill", "-s", name.removeprefix("SIG"), str(pid)])
    if done.exit_code != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        raise FaultError(f"kill: no process {pid} in {host}{f' ({said[-1]})' if said else ''}: "
                         f"`netbed ps {host}` lists its processes")
    if name in ("SIGKILL", "SIGTERM", "SIGINT", "SIGPIPE", "SIGHUP"):
        wait_for(lambda: _process_state(bed, host, pid), lambda st: st in ("", "Z"),
                 timeout=STATE_DEADLINE, what=f"process {pid} in {host} to die")


@fault("shutdown", "Orderly shutdown: SIGTERM to every process, SIGKILL after the grace period.", undone_by="reboot",
       params=(HOST, Param("grace", "Seconds before SIGKILL.", kind=float, default=2.0, range=(0, GRACE_MAX_S))))
def shutdown(bed: Backend, host: str, grace: float = 2.0) -> None:
    """An orderly host shutdown: SIGTERM to every process, SIGKILL to those left after the grace period.

    The host's main process (its compose command, PID 1's child) is stopped
    last, as an init stops itself last: were it first, the host would be
    gone at once and a process that outlives SIGTERM would never be seen to.
    The host may stop on its own at any moment: that is the shutdown done.
    """
    if not (math.isfinite(grace) and 0 <= grace <= GRACE_MAX_S):
        raise FaultError(f"shutdown: the grace period must be 0-{GRACE_MAX_S:.0f} s, got {grace}")
    running(bed, host, "shutdown")
    _signal_all_but_main(bed, host, "TERM")
    try:
        wait_for(lambda: _user_processes(bed, host), lambda procs: not procs, timeout=grace,
                 what=f"{host}'s processes to exit")
    except NetbedError:
        _signal_all_but_main(bed, host, "KILL")
    bed.stop(host, timeout=1)
    await_status(bed, host, "exited")


def _signal_all_but_main(bed: Backend, host: str, name: str) -> None:
    """Signal every process of a host that may stop at any moment, but its init and main process."""
    try:
        pids = [str(p.pid) for p in observe.processes(bed, host) if p.pid != 1 and p.ppid != 1 and not p.zombie]
        if pids:
            bed.beside(host, ["kill", "-s", name, *pids])  # some may have exited meanwhile: that is fine
    except NetbedError as exc:
        if bed.status(host) == "running":
            raise FaultError(f"shutdown: could not signal {host}'s processes: {exc}") from None


def _process_state(bed: Backend, host: str, pid: int) -> str:
    done = bed.beside(host, ["ps", "-o", "stat=", "-p", str(pid)])
    return done.stdout.strip()[:1] if done.exit_code == 0 else ""


def _user_processes(bed: Backend, host: str) -> list[str]:
    """The processes a shutdown waits for (all but init and the main process); none once the host stopped."""
    try:
        return [p.command for p in observe.processes(bed, host) if p.pid != 1 and p.ppid != 1 and not p.zombie]
    except NetbedError:  # the host stopped: its last process is gone
        return []
