"""What every fault is built from: its error, its waits, and commands in a host's network namespace.

Everything a fault installs lives in the target's own network namespace
(iptables chains named NETBED-*, qdiscs, a shaper helper sharing the
namespace), so it dies with the container and no host-wide rule can outlive a
run. The state of a host is read back from its namespace (`chains`,
`root_qdisc`), never remembered here. The `parse_*` functions read the tools'
output and are tested on saved outputs.
"""

from __future__ import annotations

from netbed.backend import Backend
from netbed.errors import NetbedError
from netbed.observe import wait_for

STATE_DEADLINE = 15.0


class FaultError(NetbedError):
    pass


def running(bed: Backend, host: str, verb: str) -> None:
    """Refuse a host that is not running (or whose namespaces are not its own)."""
    bed.own(host)
    status = bed.status(host)
    if status != "running":
        raise FaultError(f"{verb}: {host} is {status}, not running")


def await_status(bed: Backend, host: str, status: str) -> None:
    wait_for(lambda: bed.status(host), lambda s: s == status, timeout=STATE_DEADLINE, what=f"{host} to be {status}")


def netns(bed: Backend, host: str, argv: list[str], check: bool = True) -> int:
    """Run a command in the host's network namespace; with `check`, a failure is a FaultError quoting it."""
    code, out = bed.netns(host, argv)
    if check and code != 0:
        last = out.strip().splitlines()[-1] if out.strip() else f"exit status {code}"
        raise FaultError(f"`{' '.join(argv)}` in {host} failed: {last}")
    return code


def chains(bed: Backend, host: str) -> set[str]:
    """netbed's iptables chains present in the host's namespace: the fault state, read back."""
    _, out = bed.netns(host, ["iptables", "-w", "-S"])
    return parse_chains(out)


def parse_chains(text: str) -> set[str]:
    """netbed's chains in `iptables -S` output (the lines `-N NETBED-...`)."""
    return {line.split()[1] for line in text.splitlines() if line.startswith("-N NETBED-")}


def add_chain(bed: Backend, host: str, chain: str, hook: str) -> None:
    netns(bed, host, ["iptables", "-w", "-N", chain])
    netns(bed, host, ["iptables", "-w", "-I", hook, "1", "-j", chain])


def remove_chain(bed: Backend, host: str, chain: str, hooks: tuple[str, ...]) -> None:
    """Unhook and delete one of netbed's chains; quiet about parts that are not there."""
    for hook in hooks:
        while netns(bed, host, ["iptables", "-w", "-D", hook, "-j", chain], check=False) == 0:
            pass
    netns(bed, host, ["iptables", "-w", "-F", chain], check=False)
    netns(bed, host, ["iptables", "-w", "-X", chain], check=False)


def interfaces(bed: Backend, host: str) -> list[str]:
    _, out = bed.netns(host, ["ip", "-o", "link", "show"])
    devs = parse_links(out)
    if not devs:
        raise FaultError(f"{host} has no network interface")
    return devs


def parse_links(text: str) -> list[str]:
    """The interfaces but loopback in `ip -o link show` output ("eth0@if27566" is eth0)."""
    names = [line.split(":")[1].strip().split("@")[0] for line in text.splitlines() if ":" in line]
    return [n for n in names if n != "lo"]


def root_qdisc(bed: Backend, host: str) -> str:
    _, out = bed.netns(host, ["tc", "qdisc", "show", "dev", interfaces(bed, host)[0], "root"])
    return parse_root_qdisc(out)


def parse_root_qdisc(text: str) -> str:
    """The root qdisc's kind in `tc qdisc show dev DEV root` output ("noqueue", "tbf", "netem"), or ""."""
    words = text.split()
    return words[1] if len(words) > 1 else ""
