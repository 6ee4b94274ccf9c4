"""What netbed adds to a compose file to make a testbed of it: pure data in, the override out.

No engine is asked anything here, so it is tested on compose models alone.
Whatever the user's file pins, every network netbed creates gets netbed's
own /24 (so parallel testbeds never collide) and is internal, and every host
gets a static address on each of its networks and a static MAC (so a reboot
brings it back as it was, whatever the engine version's habits): the file's
last octet and MAC where it pins them, the next free ones otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from netbed.errors import NetbedError

FIRST_HOST = 10       # addresses below are left to the gateway (.1) and to people's habits
LAST_HOST = 254
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # Compose's rule for project names


class SpecError(NetbedError):
    """A testbed cannot be made of what was given; the message says what to change."""


def check_project_name(name: str) -> str:
    """Compose's rule for project names, checked before anything is named after one (folders included)."""
    if not PROJECT_NAME.fullmatch(name):
        raise SpecError(f"project name {name!r} is not valid: use lowercase letters, digits, '-' and '_', "
                        "starting with a letter or digit")
    return name


def created_networks(model: dict[str, Any]) -> list[str]:
    """The networks netbed creates for the file (not the external ones), in the file's order."""
    return [name for name, net in (model.get("networks") or {}).items() if not (net or {}).get("external")]


def override(model: dict[str, Any], hosts: list[str], services: dict[str, dict[str, Any]],
             labels: dict[str, str], prefixes: dict[str, str], last_host: int = LAST_HOST) -> dict[str, Any]:
    """The compose override: labels, internal networks on netbed's subnets, static addresses and MACs,
    then the caller's own settings per host (which win)."""
    addresses = addressing(model, hosts, prefixes, last_host)
    networks = {}
    for name in created_networks(model):
        net = model["networks"][name] or {}
        ipv6 = [c for c in (net.get("ipam") or {}).get("config") or [] if ":" in str(c.get("subnet", ""))]
        networks[name] = {"labels": labels, "internal": True}  # nothing leaves a testbed
        if name in prefixes:
            networks[name]["ipam"] = {"config": [{"subnet": f"{prefixes[name]}.0/24",
                                                  "gateway": f"{prefixes[name]}.1"}, *ipv6]}
    return {"services": {name: {"labels": labels, **addresses.get(name, {}), **services.get(name, {})}
                         for name in hosts},
            "networks": networks}


def addressing(model: dict[str, Any], hosts: list[str], prefixes: dict[str, str],
               last_host: int = LAST_HOST) -> dict[str, dict[str, Any]]:
    """Per host: {"networks": {NET: {"ipv4_address": ...}}, "mac_address": ...} on netbed's prefixes.

    A host keeps the last octet its file gives it on a network (and its MAC)
    where it can; the others take the next free octets from FIRST_HOST to
    `last_host` (those above are netbed's own, e.g. a Swarm's recorders).
    """
    taken: dict[str, set[int]] = {net: set() for net in prefixes}
    wanted: dict[tuple[str, str], int] = {}
    for host in hosts:  # first the octets the file pins, so that no free pick takes one of them
        for net, conf in _networks(model["services"][host]).items():
            octet = _last_octet((conf or {}).get("ipv4_address", ""), last_host)
            if net in prefixes and octet and octet not in taken[net]:
                taken[net].add(octet)
                wanted[host, net] = octet
    found: dict[str, dict[str, Any]] = {}
    for host in hosts:
        service = model["services"][host]
        nets = {}
        for net in _networks(service):
            if net not in prefixes:
                continue
            octet = wanted.get((host, net)) or _next_free(taken[net], net, last_host)
            nets[net] = {"ipv4_address": f"{prefixes[net]}.{octet}"}
        if not nets:
            continue
        first = next(iter(nets.values()))["ipv4_address"]
        found[host] = {"networks": nets, "mac_address": service.get("mac_address") or mac_for(first)}
    return found


def mac_for(ipv4: str) -> str:
    """The MAC Docker used to derive from an address (02:42 and its four bytes), fixed here for every engine."""
    return "02:42:" + ":".join(f"{int(part):02x}" for part in ipv4.split("."))


def _networks(service: dict[str, Any]) -> dict[str, Any]:
    nets = service.get("networks") or {}
    return {name: None for name in nets} if isinstance(nets, list) else dict(nets)


def _last_octet(address: str, last_host: int = LAST_HOST) -> int:
    """The host part of a pinned address, if it can stay (anything but the network, gateway and broadcast)."""
    parts = address.split(".")
    if len(parts) == 4 and parts[3].isdigit() and 2 <= int(parts[3]) <= last_host:
        return int(parts[3])
    return 0


def _next_free(taken: set[int], net: str, last_host: int = LAST_HOST) -> int:
    for octet in range(FIRST_HOST, last_host + 1):
        if octet not in taken:
            taken.add(octet)
            return octet
    raise ValueError(f"network {net} has more hosts than a /24 holds")
