"""Faults on whole hosts: a crash (power lost) and a reboot (back with no TCP state), UNP 5.14 and 5.15."""

from __future__ import annotations

from netbed.backend import Backend
from netbed.faults.base import FaultError, await_status, interfaces, netns, remove_chain, running
from netbed.faults.processes import CRASH_CHAIN
from netbed.faults.registry import fault


@fault("crash", "The host loses power: nothing leaves it, nothing reaches it.", undone_by="reboot")
def crash(bed: Backend, host: str) -> None:
    """The host loses power: nothing leaves it, nothing reaches its stack, no ARP, processes frozen.

    The firewall goes up before the freeze, so no FIN, RST or ACK escapes
    while the processes are stopped.
    """
    running(bed, host, "crash")
    devs = interfaces(bed, host)
    try:
        netns(bed, host, ["iptables", "-w", "-N", CRASH_CHAIN])
        netns(bed, host, ["iptables", "-w", "-A", CRASH_CHAIN, "-j", "DROP"])
        for hook in ("INPUT", "OUTPUT"):
            netns(bed, host, ["iptables", "-w", "-I", hook, "1", "-j", CRASH_CHAIN])
        for dev in devs:
            netns(bed, host, ["ip", "link", "set", "dev", dev, "arp", "off"])
        bed.pause(host)
    except BaseException:
        remove_chain(bed, host, CRASH_CHAIN, ("INPUT", "OUTPUT"))
        for dev in devs:
            netns(bed, host, ["ip", "link", "set", "dev", dev, "arp", "on"], check=False)
        raise
    await_status(bed, host, "paused")


@fault("reboot", "Back with no TCP state, same IP and MAC; programs restart.")
def reboot(bed: Backend, host: str) -> None:
    """Back from a crash (or from running) with no TCP state, the same IP and MAC; programs restart."""
    before = bed.host(host)
    bed.own(host)
    if bed.status(host) == "paused":
        bed.unpause(host)
    if bed.status(host) in ("running", "paused"):
        bed.signal(host, "SIGKILL")
    await_status(bed, host, "exited")
    bed.start(host)
    await_status(bed, host, "running")
    bed.isolate(host)
    ip, mac = bed.address(host)
    # `before` is the address it had when last seen running, or its static one; a stopped
    # host with a dynamic address has none to compare with.
    if before.ip and (ip, mac) != (before.ip, before.mac or mac):
        raise FaultError(f"reboot: {host} came back as {ip}/{mac}, "
                         f"not {before.ip}/{before.mac}: give it a static ipv4_address and mac_address")
