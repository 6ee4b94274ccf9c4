"""Impairment: a slow or lossy link, made with netem where the kernel has it, portably where it does not."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, fields
from typing import Any

from netbed import labels
from netbed.backend import Backend
from netbed.errors import NetbedError
from netbed.faults.base import (STATE_DEADLINE, FaultError, add_chain, chains, interfaces, netns, remove_chain,
                                root_qdisc, running)
from netbed.faults.registry import HOST, Param, fault
from netbed.observe import wait_for

LOSS_CHAIN = "NETBED-LOSS"      # on INPUT: the sender's segments still cross the bridge, so losses show as retransmissions
DELAY_CHAIN = "NETBED-DELAY"    # on INPUT too: a packet held on OUTPUT would still count against its
                                # socket, and TCP Small Queues would throttle the host's bulk sending
SHAPER_QUEUE = 7
DELAY_MAX_MS = 60_000.0           # a minute: longer than any retransmission timer needs to fire
RATE_KBIT = (1.0, 1_000_000.0)    # what tc's tbf takes with netbed's 16 kbit burst: above 1 Gbit/s it is too small


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


class Mechanism:
    """One way to impair a link (Jepsen's `Net`): what it can do, and how it does it. `mend` undoes any."""

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
        netns(bed, host, args)


class Portable(Mechanism):
    """Without netem: loss through iptables statistic and delay through the NFQUEUE shaper on what reaches
    the host, rate through tbf on what it sends."""

    name = "iptables/tbf/nfqueue"

    def check(self, how: Impairment) -> None:
        if how.duplicate_pct or how.reorder_pct:
            raise FaultError("impair: --duplicate and --reorder need netem, which this kernel lacks "
                             "(see `netbed doctor`)")

    def apply(self, bed: Backend, host: str, dev: str, how: Impairment) -> None:
        if how.loss_pct:
            add_chain(bed, host, LOSS_CHAIN, "INPUT")
            netns(bed, host, ["iptables", "-w", "-A", LOSS_CHAIN, "-i", dev, "-m", "statistic", "--mode", "random",
                              "--probability", f"{how.loss_pct / 100:.6f}", "-j", "DROP"])
        if how.rate_kbit:
            netns(bed, host, ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{how.rate_kbit}kbit",
                              "burst", "16kbit", "latency", "500ms"])
        if how.delay_ms:
            _start_shaper(bed, host, how)
            add_chain(bed, host, DELAY_CHAIN, "INPUT")
            netns(bed, host, ["iptables", "-w", "-A", DELAY_CHAIN, "-i", dev, "-j", "NFQUEUE",
                              "--queue-num", str(SHAPER_QUEUE), "--queue-bypass"])


NETEM, PORTABLE = Netem(), Portable()


def mend(bed: Backend, host: str) -> list[str]:
    """Undo any impairment of either mechanism on the host; [] if it had none."""
    found = chains(bed, host) & {LOSS_CHAIN, DELAY_CHAIN}
    for chain in sorted(found):
        remove_chain(bed, host, chain, ("INPUT",))
    if root_qdisc(bed, host) not in ("", "noqueue"):
        netns(bed, host, ["tc", "qdisc", "del", "dev", interfaces(bed, host)[0], "root"])
        found.add("qdisc")
    bed.remove_companions(host, labels.SHAPER)
    return [f"{host}: impairment"] if found else []


def _how(values: dict[str, Any]) -> dict[str, Any]:
    return {"host": values["host"],
            "how": Impairment(values["delay"], values["jitter"], values["loss"], values["rate"] or 0,
                              values["duplicate"], values["reorder"])}


def _through(values: dict[str, Any], mechanism: str) -> str:
    return f"impair: {values['host']} impaired through {mechanism}"


def _percent(name: str, what: str) -> Param:
    return Param(name, f"{what}, percent.", kind=float, default=0, range=(0, 100))


@fault("impair", "Make a host's link slow or lossy.", undo=mend, prepare=_how, said=_through,
       params=(HOST,
               Param("delay", "Added delay, ms (at most a minute).", kind=float, default=0, range=(0, DELAY_MAX_MS)),
               Param("jitter", "Delay jitter, ms (at most the delay).", kind=float, default=0,
                     range=(0, DELAY_MAX_MS)),
               _percent("loss", "Loss"),
               Param("rate", "Rate limit, kbit/s (1 to 1000000).", kind=float, default=None, range=RATE_KBIT),
               _percent("duplicate", "Duplicates (netem only)"),
               _percent("reorder", "Reordering (netem only)")))
def impair(bed: Backend, host: str, how: Impairment) -> str:
    """Make the host's link lossy or slow; returns the mechanism used.

    With netem everything applies to what the host sends. Without it, rate
    applies to what the host sends (tbf), and loss and delay to what reaches
    it, so lost segments were on the wire and the capture shows them
    retransmitted, and a delayed segment shows on the wire before the host sees it.
    """
    running(bed, host, "impair")
    if chains(bed, host) & {LOSS_CHAIN, DELAY_CHAIN} or root_qdisc(bed, host) not in ("", "noqueue"):
        raise FaultError(f"impair: {host} is already impaired; `heal {host}` first")
    mechanism = NETEM if bed.has_netem() else PORTABLE
    mechanism.check(how)
    try:
        mechanism.apply(bed, host, interfaces(bed, host)[0], how)
    except BaseException:
        with contextlib.suppress(FaultError):
            mend(bed, host)
        raise
    return mechanism.name


def _start_shaper(bed: Backend, host: str, how: Impairment) -> None:
    argv = ["python3", "-m", "netbed.apps.shaper", "--queue", str(SHAPER_QUEUE), "--delay", f"{how.delay_ms:g}"]
    if how.jitter_ms:
        argv += ["--jitter", f"{how.jitter_ms:g}"]
    shaper = bed.companion(host, labels.SHAPER, argv)
    try:
        status, log = wait_for(lambda: bed.companion_state(host, shaper),
                               lambda seen: "ready" in seen[1] or seen[0] == "exited",
                               timeout=STATE_DEADLINE, what=f"the delay shaper in {host} to be ready")
    except NetbedError:
        bed.remove_companions(host, labels.SHAPER)
        raise
    if "ready" not in log:
        bed.remove_companions(host, labels.SHAPER)
        raise FaultError(f"impair: the delay shaper failed: {(log.strip().splitlines() or [status])[-1]}")
