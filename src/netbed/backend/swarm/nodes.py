"""What a Swarm says about its nodes, and what a node's port probe prints: pure parsing, no engine.

`parse_nodes` reads the node list as the Engine API (and `docker node
inspect`) gives it; `probe_argv` is the tiny check a node runs to see the
ports Swarm needs open on the other nodes, and `parse_probe` reads what it
prints. tests/unit/test_saved_outputs.py runs both on outputs saved from a
real cluster (tests/data/outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

SWARM_TCP_PORTS = {2377: "cluster management (managers only)", 7946: "node gossip"}
"""What Swarm listens on over TCP; 7946/udp (gossip) and 4789/udp (VXLAN) are proven by the overlay probe."""


@dataclass(frozen=True)
class SwarmNode:
    """One node as the Swarm's managers see it."""

    id: str
    hostname: str
    role: str           # manager, worker
    state: str          # ready, down, unknown, disconnected
    availability: str   # active, pause, drain
    addr: str
    engine: str
    leader: bool = False
    reachability: str = ""  # managers only: reachable, unreachable

    @property
    def healthy(self) -> bool:
        return (self.state == "ready" and self.availability == "active"
                and (self.role != "manager" or self.reachability == "reachable"))

    def describe(self) -> str:
        said = f"{self.role} {self.state}/{self.availability}"
        if self.role == "manager":
            said += " leader" if self.leader else f" {self.reachability or 'unknown'}"
        return said


def parse_nodes(nodes: Iterable[dict[str, Any]]) -> list[SwarmNode]:
    """The Swarm's nodes from the API's node objects, in hostname order."""
    found = []
    for node in nodes:
        spec, status = node.get("Spec") or {}, node.get("Status") or {}
        manager = node.get("ManagerStatus") or {}
        desc = node.get("Description") or {}
        found.append(SwarmNode(
            id=node.get("ID", ""),
            hostname=desc.get("Hostname", ""),
            role=spec.get("Role", ""),
            state=status.get("State", ""),
            availability=spec.get("Availability", ""),
            addr=status.get("Addr", ""),
            engine=(desc.get("Engine") or {}).get("EngineVersion", ""),
            leader=bool(manager.get("Leader")),
            reachability=manager.get("Reachability", ""),
        ))
    return sorted(found, key=lambda n: n.hostname)


# --- the port probe: run on a node, against the others -------------------------------------------

PROBE = """
import socket, sys
for target in sys.argv[1:]:
    ip, port = target.rsplit(":", 1)
    try:
        socket.create_connection((ip, int(port)), timeout=2).close()
        print(ip, port, "open", "-")
    except OSError as exc:
        print(ip, port, "closed", (exc.strerror or type(exc).__name__).replace(" ", "_"))
"""


@dataclass(frozen=True)
class PortCheck:
    source: str   # the node that tried
    ip: str
    port: int
    open: bool
    detail: str   # why not, when closed


def probe_targets(addresses: dict[str, str], managers: set[str], source: str) -> list[str]:
    """IP:PORT for every other node's TCP ports Swarm uses: 7946 on all, 2377 on managers."""
    targets = []
    for node, ip in sorted(addresses.items()):
        if node == source:
            continue
        targets += [f"{ip}:{port}" for port in sorted(SWARM_TCP_PORTS) if port != 2377 or node in managers]
    return targets


def probe_argv(targets: list[str]) -> list[str]:
    return ["python3", "-c", PROBE, *targets]


def parse_probe(source: str, text: str) -> list[PortCheck]:
    """The probe's lines (`IP PORT open|closed WHY`) as checks; other lines are ignored."""
    checks = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[1].isdigit() and words[2] in ("open", "closed"):
            checks.append(PortCheck(source, words[0], int(words[1]), words[2] == "open",
                                    "" if words[3] == "-" else words[3].replace("_", " ")))
    return checks
