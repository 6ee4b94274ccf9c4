"""The machine's own network, as a test sees it: snapshot before, compare after, put back what changed.

Docker itself adds and removes bridges, veths, their routes and its own
iptables rules whenever any testbed comes or goes (other test workers too),
so those are left out; everything else (the machine's routes, link flags
such as NOARP, iptables rules, root qdiscs) must be exactly as it was.
`inside` runs the same commands in another network namespace, so the
restoring itself can be tested without touching the machine.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

DOCKERS = re.compile(r"^(veth|br-|nb|docker)")
BUILT_IN_DEFAULTS = {(hook, "ACCEPT") for hook in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")}
IPTABLES_DOCKERS = re.compile(r"DOCKER|(-[io]|--in-interface|--out-interface) (! )?(veth|br-|nb|docker)")


def namespaces() -> list[list[str]]:
    """Where the machine's network is, as `inside` prefixes: the runner's own, and the engine daemon's when it
    has one of its own (netbed's second engine runs in its own network namespace, where its bridges are and
    where a container on its "host" network is)."""
    import os

    from netbed.backend import guard

    found: list[list[str]] = [[]]
    try:
        pid = open(guard.engine_pidfile()).read().strip()
        if os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
            found.append(["nsenter", f"--net=/proc/{pid}/ns/net"])
    except (OSError, ValueError):
        pass
    return found


def addresses(inside: list[str] = []) -> list[str]:
    """The IPv4 addresses in a network namespace, loopback's aside."""
    lines = _run(["ip", "-o", "-4", "addr", "show"], inside).splitlines()
    return [line.split()[3].split("/")[0] for line in lines if not line.split()[3].startswith("127.")]


@dataclass(frozen=True)
class NetworkState:
    routes: frozenset[tuple[str, str]]        # (family, route as `ip route` prints it)
    links: frozenset[tuple[str, str]]         # (name, flags)
    rules: frozenset[tuple[str, str, str]]    # (command, table, rule as iptables-save prints it)
    chains: frozenset[tuple[str, str, str]]   # (command, table, chain) of chains not Docker's
    qdiscs: frozenset[tuple[str, str]]        # (device, root qdisc kind)

    def differences(self, other: "NetworkState") -> dict[str, list]:
        found = {}
        for name in ("routes", "links", "rules", "chains", "qdiscs"):
            gone, new = getattr(self, name) - getattr(other, name), getattr(other, name) - getattr(self, name)
            if gone or new:
                found[name] = {"gone": sorted(gone), "new": sorted(new)}
        return found


def _run(argv: list[str], inside: list[str]) -> str:
    return subprocess.run([*inside, *argv], capture_output=True, text=True, check=True).stdout


def snapshot(inside: list[str] = []) -> NetworkState:
    links = json.loads(_run(["ip", "-j", "link", "show"], inside))
    watched = {link["ifname"] for link in links if not DOCKERS.match(link["ifname"])}
    routes = set()
    for family in ("-4", "-6"):
        for line in _run(["ip", family, "route", "show", "table", "all"], inside).splitlines():
            dev = re.search(r"\bdev (\S+)", line)
            if dev is None or dev.group(1) in watched:
                routes.add((family, " ".join(w for w in line.split() if w != "linkdown")))  # a state, not a setting
    rules, chains = set(), set()
    for command in ("iptables", "ip6tables"):
        table = ""
        for line in _run([f"{command}-save"], inside).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and "DOCKER" not in line:
                name, policy = line.split()[0][1:], line.split()[1]
                if (name, policy) not in BUILT_IN_DEFAULTS:  # iptables-save lists a table only once it was used
                    chains.add((command, table, f"{name} {policy}"))
            elif line.startswith("-A") and not IPTABLES_DOCKERS.search(line):
                rules.add((command, table, line))
    qdiscs = set()
    for dev in sorted(watched):
        words = _run(["tc", "qdisc", "show", "dev", dev, "root"], inside).split()
        qdiscs.add((dev, words[1] if len(words) > 1 else ""))
    flags = {(link["ifname"], ",".join(sorted(link.get("flags", [])))) for link in links if link["ifname"] in watched}
    return NetworkState(frozenset(routes), frozenset(flags), frozenset(rules), frozenset(chains), frozenset(qdiscs))


def restore(before: NetworkState, inside: list[str] = []) -> None:
    """Put back what changed since `before`: rules, chains, routes, link flags, qdiscs."""
    now = snapshot(inside)
    run = lambda *argv: subprocess.run([*inside, *argv], capture_output=True)  # noqa: E731
    for command, table, rule in sorted(now.rules - before.rules):
        run(command, "-t", table, "-D", *rule.split()[1:])
    for command, table, chain in sorted(now.chains - before.chains):
        name = chain.split()[0]
        if (command, table, name) not in {(c, t, x.split()[0]) for c, t, x in before.chains}:
            run(command, "-t", table, "-F", name)
            run(command, "-t", table, "-X", name)
    for command, table, chain in sorted(before.chains - now.chains):
        name, policy = chain.split()
        if policy != "-":
            run(command, "-t", table, "-P", name, policy)
    for command, table, rule in sorted(before.rules - now.rules):
        run(command, "-t", table, *rule.split())
    for family, route in sorted(now.routes - before.routes):
        run("ip", family, "route", "del", *route.split())
    for family, route in sorted(before.routes - now.routes):
        run("ip", family, "route", "add", *route.split())
    was = dict(before.links)
    for name, flags in now.links - before.links:
        if name in was:
            wanted = set(was[name].split(","))
            run("ip", "link", "set", "dev", name, "arp", "off" if "NOARP" in wanted else "on")
            run("ip", "link", "set", "dev", name, "up" if "UP" in wanted else "down")
    for dev, _kind in now.qdiscs - before.qdiscs:
        run("tc", "qdisc", "del", "dev", dev, "root")  # back to the kernel's default
