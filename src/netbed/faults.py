"""Faults, each made the way it looks on the wire (DESIGN.md, "The fault model").

Everything a fault installs lives in the target's own network namespace
(iptables chains named NETBED-*, qdiscs, a shaper helper sharing the
namespace), so it dies with the container and no host-wide rule can outlive a
run. Network changes run inside that namespace: through nsenter when the
runner is root on the engine host, else from a short-lived helper container
with NET_ADMIN; app containers never get capabilities. Every fault returns
once it is in effect (checked, not slept on), and the state of a host is read
back from its namespace, never remembered here.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal as signals
from dataclasses import dataclass, fields
from typing import Any, Callable, TypeVar


from netbed import labels, observe
from netbed.errors import NetbedError
from netbed.observe import wait_for
from netbed.backend import Backend

CRASH_CHAIN = "NETBED-CRASH"
PARTITION_CHAIN = "NETBED-PARTITION"
LOSS_CHAIN = "NETBED-LOSS"      # on INPUT: the sender's segments still cross the bridge, so losses show as retransmissions
DELAY_CHAIN = "NETBED-DELAY"    # on INPUT too: a packet held on OUTPUT would still count against its
                                # socket, and TCP Small Queues would throttle the host's bulk sending
SHAPER_QUEUE = 7
STATE_DEADLINE = 15.0
T = TypeVar("T")
DELAY_MAX_MS = 60_000.0           # a minute: longer than any retransmission timer needs to fire
RATE_KBIT = (1.0, 1_000_000.0)    # what tc's tbf takes with netbed's 16 kbit burst: above 1 Gbit/s it is too small
GRACE_MAX_S = 600.0


class FaultError(NetbedError):
    pass


@dataclass(frozen=True)
class Impairment:
    """A lossy or slow link, as asked; zero means 'leave as is'."""

    delay_ms: float = 0
    jitter_ms: float = 0
    loss_pct: float = 0
    rate_kbit: float = 0
    duplicate_pct: float = 0
    reorder_pct: float = 0

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms", "rate_kbit", "loss_pct", "duplicate_pct", "reorder_pct"):
            if not math.isfinite(getattr(self, name)):
                raise FaultError(f"impair: {name.split('_')[0]} must be a finite number, got {getattr(self, name)}")
        for name in ("delay_ms", "jitter_ms"):
            if not 0 <= getattr(self, name) <= DELAY_MAX_MS:
                raise FaultError(f"impair: {name.split('_')[0]} must be 0-{DELAY_MAX_MS:.0f} ms, got {getattr(self, name)}")
        if self.rate_kbit and not RATE_KBIT[0] <= self.rate_kbit <= RATE_KBIT[1]:
            raise FaultError(f"impair: rate must be {RATE_KBIT[0]:.0f}-{RATE_KBIT[1]:.0f} kbit/s, got {self.rate_kbit}")
        for name in ("loss_pct", "duplicate_pct", "reorder_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise FaultError(f"impair: {name.split('_')[0]} must be a percentage 0-100, got {getattr(self, name)}")
        if self.jitter_ms and not self.delay_ms:
            raise FaultError("impair: --jitter needs --delay")
        if self.jitter_ms > self.delay_ms:
            raise FaultError(f"impair: jitter ({self.jitter_ms} ms) must not exceed the delay ({self.delay_ms} ms)")
        if not any((self.delay_ms, self.loss_pct, self.rate_kbit, self.duplicate_pct, self.reorder_pct)):
            raise FaultError("impair: say what to impair: --delay, --loss, --rate, --duplicate or --reorder")

    def __str__(self) -> str:
        """As a person says it: "delay 100 ms, loss 20%"."""
        units = {"ms": " ms", "pct": "%", "kbit": " kbit/s"}
        return ", ".join(f"{f.name.rsplit('_', 1)[0]} {getattr(self, f.name):g}{units[f.name.rsplit('_', 1)[1]]}"
                         for f in fields(self) if getattr(self, f.name))


def noted(fault: Callable[..., T]) -> Callable[..., T]:
    """Each fault notes itself on the testbed as it begins, so the capture carries it as a comment
    just before the frames it causes (a kill's FIN, a reboot's RST); a fault that fails says so too."""

    @functools.wraps(fault)
    def apply(bed: Backend, *args: Any, **kwargs: Any) -> T:
        said = " ".join([fault.__name__, *map(str, args), *(f"{k}={v}" for k, v in kwargs.items() if v is not None)])
        bed.note(said)
        try:
            return fault(bed, *args, **kwargs)
        except NetbedError as exc:
            bed.note(f"{said}: failed: {exc}")
            raise
    return apply


# --- processes ---------------------------------------------------------------


@noted
def pause(bed: Backend, host: str) -> None:
    """Freeze the host's processes; its kernel still ACKs and answers keepalive probes."""
    _running(bed, host, "pause")
    bed.pause(host)
    _await_status(bed, host, "paused")


@noted
def unpause(bed: Backend, host: str) -> None:
    bed.own(host)
    status = bed.status(host)
    if status != "paused":
        raise FaultError(f"unpause: {host} is {status}, not paused")
    if _chains(bed, host) & {CRASH_CHAIN}:
        raise FaultError(f"unpause: {host} has crashed; a crashed host comes back with `reboot`")
    bed.unpause(host)
    _await_status(bed, host, "running")


@noted
def kill(bed: Backend, host: str, signal: str = "SIGKILL", pid: int | None = None) -> None:
    """Kill the host's main process, or one process inside the host (e.g. a forked child)."""
    name = signal_name(signal)
    if pid is not None:
        check_pid(pid)
    _running(bed, host, "kill")
    if pid is None:
        bed.signal(host, name)
        if name == "SIGKILL":
            _await_status(bed, host, "exited")
        return
    done = bed.beside(host, ["kill", "-s", name.removeprefix("SIG"), str(pid)])
    if done.exit_code != 0:
        said = (done.stdout + done.stderr).strip().splitlines()
        raise FaultError(f"kill: no process {pid} in {host}{f' ({said[-1]})' if said else ''}: "
                         f"`netbed ps {host}` lists its processes")
    if name in ("SIGKILL", "SIGTERM", "SIGINT", "SIGPIPE", "SIGHUP"):
        wait_for(lambda: _process_state(bed, host, pid), lambda st: st in ("", "Z"),
                 timeout=STATE_DEADLINE, what=f"process {pid} in {host} to die")


@noted
def shutdown(bed: Backend, host: str, grace: float = 2.0) -> None:
    """An orderly host shutdown: SIGTERM to every process, SIGKILL to those left after the grace period.

    The host's main process (its compose command, PID 1's child) is stopped
    last, as an init stops itself last: were it first, the host would be
    gone at once and a process that outlives SIGTERM would never be seen to.
    The host may stop on its own at any moment: that is the shutdown done.
    """
    if not (math.isfinite(grace) and 0 <= grace <= GRACE_MAX_S):
        raise FaultError(f"shutdown: the grace period must be 0-{GRACE_MAX_S:.0f} s, got {grace}")
    _running(bed, host, "shutdown")
    _signal_all_but_main(bed, host, "TERM")
    try:
        wait_for(lambda: _user_processes(bed, host), lambda procs: not procs, timeout=grace,
                 what=f"{host}'s processes to exit")
    except NetbedError:
        _signal_all_but_main(bed, host, "KILL")
    bed.stop(host, timeout=1)
    _await_status(bed, host, "exited")


def _signal_all_but_main(bed: Backend, host: str, name: str) -> None:
    """Signal every process of a host that may stop at any moment, but its init and main process."""
    try:
        pids = [str(p.pid) for p in observe.processes(bed, host) if p.pid != 1 and p.ppid != 1 and not p.zombie]
        if pids:
            bed.beside(host, ["kill", "-s", name, *pids])  # some may have exited meanwhile: that is fine
    except NetbedError as exc:
        if bed.status(host) == "running":
            raise FaultError(f"shutdown: could not signal {host}'s processes: {exc}") from None


# --- whole hosts -------------------------------------------------------------


@noted
def crash(bed: Backend, host: str) -> None:
    """The host loses power: nothing leaves it, nothing reaches its stack, no ARP, processes frozen.

    The firewall goes up before the freeze, so no FIN, RST or ACK escapes
    while the processes are stopped.
    """
    _running(bed, host, "crash")
    devs = _interfaces(bed, host)
    try:
        _netns(bed, host, ["iptables", "-w", "-N", CRASH_CHAIN])
        _netns(bed, host, ["iptables", "-w", "-A", CRASH_CHAIN, "-j", "DROP"])
        for hook in ("INPUT", "OUTPUT"):
            _netns(bed, host, ["iptables", "-w", "-I", hook, "1", "-j", CRASH_CHAIN])
        for dev in devs:
            _netns(bed, host, ["ip", "link", "set", "dev", dev, "arp", "off"])
        bed.pause(host)
    except BaseException:
        _remove_chain(bed, host, CRASH_CHAIN, ("INPUT", "OUTPUT"))
        for dev in devs:
            _netns(bed, host, ["ip", "link", "set", "dev", dev, "arp", "on"], check=False)
        raise
    _await_status(bed, host, "paused")


@noted
def reboot(bed: Backend, host: str) -> None:
    """Back from a crash (or from running) with no TCP state, the same IP and MAC; programs restart."""
    before = bed.host(host)
    bed.own(host)
    if bed.status(host) == "paused":
        bed.unpause(host)
    if bed.status(host) in ("running", "paused"):
        bed.signal(host, "SIGKILL")
    _await_status(bed, host, "exited")
    bed.start(host)
    _await_status(bed, host, "running")
    bed.isolate(host)
    ip, mac = bed.address(host)
    # `before` is the address it had when last seen running, or its static one; a stopped
    # host with a dynamic address has none to compare with.
    if before.ip and (ip, mac) != (before.ip, before.mac or mac):
        raise FaultError(f"reboot: {host} came back as {ip}/{mac}, "
                         f"not {before.ip}/{before.mac}: give it a static ipv4_address and mac_address")


# --- links ---------------------------------------------------------------------


@noted
def partition(bed: Backend, a: str, b: str, one_way: bool = False) -> None:
    """Cut the link between a and b (only a -> b with one_way).

    Each receiver drops what comes from the other, so both sides' segments
    still cross the bridge and the capture shows every retransmission.
    """
    if a == b:
        raise FaultError(f"partition: {a} and {b} are the same host; name the two ends of the link")
    for host in (a, b):
        _running(bed, host, "partition")
        if not bed.host(host).ip:
            raise FaultError(f"partition: {host} has no address on the testbed's network")
    pairs = [(b, a)] if one_way else [(b, a), (a, b)]
    rules = {receiver: ["-s", bed.host(sender).ip, "-j", "DROP"] for receiver, sender in pairs}
    for receiver, sender in pairs:  # all checked before anything is installed
        if _netns(bed, receiver, ["iptables", "-w", "-C", PARTITION_CHAIN, *rules[receiver]], check=False) == 0:
            raise FaultError(f"partition: {receiver} already drops what {sender} sends")
    done: list[tuple[str, bool]] = []
    try:
        for receiver, _ in pairs:
            made = PARTITION_CHAIN not in _chains(bed, receiver)
            done.append((receiver, made))
            if made:
                _add_chain(bed, receiver, PARTITION_CHAIN, "INPUT")
            _netns(bed, receiver, ["iptables", "-w", "-A", PARTITION_CHAIN, *rules[receiver]])
    except BaseException:
        for receiver, made in done:  # all or nothing
            if made:
                _remove_chain(bed, receiver, PARTITION_CHAIN, ("INPUT",))
            else:
                _netns(bed, receiver, ["iptables", "-w", "-D", PARTITION_CHAIN, *rules[receiver]], check=False)
        raise


@noted
def impair(bed: Backend, host: str, how: Impairment) -> str:
    """Make the host's link lossy or slow; returns the mechanism used.

    With netem everything applies to what the host sends. Without it, rate
    applies to what the host sends (tbf), and loss and delay to what reaches
    it, so lost segments were on the wire and the capture shows them
    retransmitted, and a delayed segment shows on the wire before the host sees it.
    """
    _running(bed, host, "impair")
    if _chains(bed, host) & {LOSS_CHAIN, DELAY_CHAIN} or _root_qdisc(bed, host) not in ("", "noqueue"):
        raise FaultError(f"impair: {host} is already impaired; `heal {host}` first")
    mechanism = NETEM if bed.has_netem() else PORTABLE
    mechanism.check(how)
    try:
        mechanism.apply(bed, host, _interfaces(bed, host)[0], how)
    except BaseException:
        with contextlib.suppress(FaultError):
            heal(bed, host)
        raise
    return mechanism.name


class Mechanism:
    """One way to impair a link (Jepsen's `Net`): what it can do, and how it does it. `heal` undoes any."""

    name = ""

    def check(self, how: Impairment) -> None:
        """Refuse, before anything is changed, what this mechanism cannot do."""

    def apply(self, bed: Backend, host: str, dev: str, how: Impairment) -> None:
        raise NotImplementedError


class Netem(Mechanism):
    """The kernel's netem qdisc: everything, on what the host sends."""

    name = "netem"

    def apply(self, bed: Backend, host: str, dev: str, how: Impairment) -> None:
        args = ["tc", "qdisc", "add", "dev", dev, "root", "netem"]
        if how.delay_ms:
            args += ["delay", f"{how.delay_ms}ms"] + ([f"{how.jitter_ms}ms"] if how.jitter_ms else [])
        if how.loss_pct:
            args += ["loss", f"{how.loss_pct}%"]
        if how.duplicate_pct:
            args += ["duplicate", f"{how.duplicate_pct}%"]
        if how.reorder_pct:
            args += ["reorder", f"{how.reorder_pct}%"]
        if how.rate_kbit:
            args += ["rate", f"{how.rate_kbit}kbit"]
        _netns(bed, host, args)


class Portable(Mechanism):
    """Without netem: loss through iptables statistic and delay through the NFQUEUE shaper on what reaches
    the host, rate through tbf on what it sends."""

    name = "iptables/tbf/nfqueue"

    def check(self, how: Impairment) -> None:
        if how.duplicate_pct or how.reorder_pct:
            raise FaultError("impair: --duplicate and --reorder need netem, which this kernel lacks "
                             "(see `netbed doctor`)")

    def apply(self, bed: Backend, host: str, dev: str, how: Impairment) -> None:
        _impair_without_netem(bed, host, dev, how)


NETEM, PORTABLE = Netem(), Portable()


def _impair_without_netem(bed: Backend, host: str, dev: str, how: Impairment) -> None:
    """Loss through iptables statistic, rate through tbf, delay through the NFQUEUE shaper."""
    if how.loss_pct:
        _add_chain(bed, host, LOSS_CHAIN, "INPUT")
        _netns(bed, host, ["iptables", "-w", "-A", LOSS_CHAIN, "-i", dev, "-m", "statistic", "--mode", "random",
                           "--probability", f"{how.loss_pct / 100:.6f}", "-j", "DROP"])
    if how.rate_kbit:
        _netns(bed, host, ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{how.rate_kbit}kbit",
                           "burst", "16kbit", "latency", "500ms"])
    if how.delay_ms:
        _start_shaper(bed, host, how)
        _add_chain(bed, host, DELAY_CHAIN, "INPUT")
        _netns(bed, host, ["iptables", "-w", "-A", DELAY_CHAIN, "-i", dev, "-j", "NFQUEUE",
                           "--queue-num", str(SHAPER_QUEUE), "--queue-bypass"])


@noted
def heal(bed: Backend, host: str | None = None) -> list[str]:
    """Undo partitions and impairments on one host or all; returns what was healed."""
    names = [host] if host else sorted(bed.hosts)
    healed = []
    for name in names:
        bed.own(name)
        if bed.status(name) != "running":
            continue
        chains = _chains(bed, name)
        for chain, hooks in ((PARTITION_CHAIN, ("INPUT",)), (LOSS_CHAIN, ("INPUT",)), (DELAY_CHAIN, ("INPUT",))):
            if chain in chains:
                _remove_chain(bed, name, chain, hooks)
                healed.append(f"{name}: {'partition' if chain == PARTITION_CHAIN else 'impairment'}")
        if _root_qdisc(bed, name) not in ("", "noqueue"):
            _netns(bed, name, ["tc", "qdisc", "del", "dev", _interfaces(bed, name)[0], "root"])
            if not any(h.startswith(f"{name}: impairment") for h in healed):
                healed.append(f"{name}: impairment")
        _stop_shaper(bed, name)
    if not healed:
        where = host or "any host"
        raise FaultError(f"heal: nothing to heal on {where} (no partition or impairment in place)")
    return healed


# --- plumbing ------------------------------------------------------------------


def _running(bed: Backend, host: str, verb: str) -> None:
    bed.own(host)
    status = bed.status(host)
    if status != "running":
        raise FaultError(f"{verb}: {host} is {status}, not running")


def _await_status(bed: Backend, host: str, status: str) -> None:
    wait_for(lambda: bed.status(host), lambda s: s == status, timeout=STATE_DEADLINE, what=f"{host} to be {status}")


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


def _process_state(bed: Backend, host: str, pid: int) -> str:
    done = bed.beside(host, ["ps", "-o", "stat=", "-p", str(pid)])
    return done.stdout.strip()[:1] if done.exit_code == 0 else ""


def _user_processes(bed: Backend, host: str) -> list[str]:
    """The processes a shutdown waits for (all but init and the main process); none once the host stopped."""
    try:
        return [p.command for p in observe.processes(bed, host) if p.pid != 1 and p.ppid != 1 and not p.zombie]
    except NetbedError:  # the host stopped: its last process is gone
        return []


def _netns(bed: Backend, host: str, argv: list[str], check: bool = True) -> int:
    code, out = bed.netns(host, argv)
    if check and code != 0:
        last = out.strip().splitlines()[-1] if out.strip() else f"exit status {code}"
        raise FaultError(f"`{' '.join(argv)}` in {host} failed: {last}")
    return code


def _chains(bed: Backend, host: str) -> set[str]:
    """netbed's iptables chains present in the host's namespace: the fault state, read back."""
    _, out = bed.netns(host, ["iptables", "-w", "-S"])
    return parse_chains(out)


def parse_chains(text: str) -> set[str]:
    """netbed's chains in `iptables -S` output (the lines `-N NETBED-...`)."""
    return {line.split()[1] for line in text.splitlines() if line.startswith("-N NETBED-")}


def _add_chain(bed: Backend, host: str, chain: str, hook: str) -> None:
    _netns(bed, host, ["iptables", "-w", "-N", chain])
    _netns(bed, host, ["iptables", "-w", "-I", hook, "1", "-j", chain])


def _remove_chain(bed: Backend, host: str, chain: str, hooks: tuple[str, ...]) -> None:
    """Unhook and delete one of netbed's chains; quiet about parts that are not there."""
    for hook in hooks:
        while _netns(bed, host, ["iptables", "-w", "-D", hook, "-j", chain], check=False) == 0:
            pass
    _netns(bed, host, ["iptables", "-w", "-F", chain], check=False)
    _netns(bed, host, ["iptables", "-w", "-X", chain], check=False)


def _interfaces(bed: Backend, host: str) -> list[str]:
    _, out = bed.netns(host, ["ip", "-o", "link", "show"])
    devs = parse_links(out)
    if not devs:
        raise FaultError(f"{host} has no network interface")
    return devs


def parse_links(text: str) -> list[str]:
    """The interfaces but loopback in `ip -o link show` output ("eth0@if27566" is eth0)."""
    names = [line.split(":")[1].strip().split("@")[0] for line in text.splitlines() if ":" in line]
    return [n for n in names if n != "lo"]


def _root_qdisc(bed: Backend, host: str) -> str:
    _, out = bed.netns(host, ["tc", "qdisc", "show", "dev", _interfaces(bed, host)[0], "root"])
    return parse_root_qdisc(out)


def parse_root_qdisc(text: str) -> str:
    """The root qdisc's kind in `tc qdisc show dev DEV root` output ("noqueue", "tbf", "netem"), or ""."""
    words = text.split()
    return words[1] if len(words) > 1 else ""


def _start_shaper(bed: Backend, host: str, how: Impairment) -> None:
    argv = ["python3", "-m", "netbed.apps.shaper", "--queue", str(SHAPER_QUEUE), "--delay", f"{how.delay_ms:g}"]
    if how.jitter_ms:
        argv += ["--jitter", f"{how.jitter_ms:g}"]
    shaper = bed.companion(host, labels.SHAPER, argv)
    try:
        status, log = wait_for(lambda: bed.companion_state(shaper),
                               lambda seen: "ready" in seen[1] or seen[0] == "exited",
                               timeout=STATE_DEADLINE, what=f"the delay shaper in {host} to be ready")
    except NetbedError:
        bed.remove_companions(host, labels.SHAPER)
        raise
    if "ready" not in log:
        bed.remove_companions(host, labels.SHAPER)
        raise FaultError(f"impair: the delay shaper failed: {(log.strip().splitlines() or [status])[-1]}")


def _stop_shaper(bed: Backend, host: str) -> None:
    bed.remove_companions(host, labels.SHAPER)
