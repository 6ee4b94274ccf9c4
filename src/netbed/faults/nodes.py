"""Faults on a whole node of a testbed across a cluster: every host on it goes silent at once.

A node crash is a machine losing power with all its hosts: the node's own
network namespace drops the overlay's traffic (VXLAN, where its hosts'
frames enter and leave), then each of its hosts crashes as one host does
(nothing leaves it, not even onto the node's own bridge), and the node's
engine is frozen with them (so its part of the Swarm goes silent too). Its
hosts' peers on other nodes see only silence: their segments are
retransmitted into it, as into one crashed host (UNP 5.14). `node_reboot`
brings the node back and each of its hosts with no TCP state, at the same
addresses (5.15). A node partition cuts the node from the others and leaves
its hosts running; `heal` mends it.
"""

from __future__ import annotations

from netbed.backend import NODE_CHAIN, Backend
from netbed.errors import NetbedError
from netbed.faults.base import FaultError, await_status
from netbed.faults.hosts import crash, reboot
from netbed.faults.registry import Param, fault

OVERLAY_ONLY = ("-p", "udp", "--dport", "4789")  # VXLAN: the hosts' frames between nodes, not the Swarm's talk
NODE = Param("node", "the node (`netbed status` shows where each host runs)", positional=True)


def _hosts_on(bed: Backend, node: str) -> list[str]:
    nodes = bed.nodes()
    if not nodes:
        raise FaultError(f"{node}: this testbed runs on one engine; node faults need a testbed across a cluster "
                         "(`netbed up --cluster NAME`)")
    if node not in nodes:
        raise FaultError(f"no node {node!r}: the testbed's nodes are {', '.join(nodes)}")
    return nodes[node]


def _cut(bed: Backend, node: str, what: tuple[str, ...] = ()) -> None:
    """Drop all that enters or leaves the node's own namespace (the overlay's VXLAN and the Swarm's own
    talk), or only `what` matches (OVERLAY_ONLY: the hosts' traffic)."""
    code, out = bed.node_netns(node, ["iptables", "-w", "-S", NODE_CHAIN])
    if code == 0:
        raise FaultError(f"{node} is cut off already: `netbed heal` or `netbed node-reboot {node}` first")
    for argv in (["-N", NODE_CHAIN], ["-A", NODE_CHAIN, *what, "-j", "DROP"],
                 ["-I", "INPUT", "1", "-j", NODE_CHAIN], ["-I", "OUTPUT", "1", "-j", NODE_CHAIN]):
        code, out = bed.node_netns(node, ["iptables", "-w", *argv])
        if code != 0:
            _mend_node(bed, node)
            raise FaultError(f"`iptables {' '.join(argv)}` on node {node} failed: {out.strip()[-200:]}")


def _mend_node(bed: Backend, node: str) -> bool:
    """Remove the node's cut; whether there was one."""
    if bed.node_netns(node, ["iptables", "-w", "-S", NODE_CHAIN])[0] != 0:
        return False
    for hook in ("INPUT", "OUTPUT"):
        while bed.node_netns(node, ["iptables", "-w", "-D", hook, "-j", NODE_CHAIN])[0] == 0:
            pass
    bed.node_netns(node, ["iptables", "-w", "-F", NODE_CHAIN])
    bed.node_netns(node, ["iptables", "-w", "-X", NODE_CHAIN])
    return True


@fault("node_crash", "A whole node loses power: every host on it goes silent at once.", params=(NODE,),
       undone_by="node-reboot")
def node_crash(bed: Backend, node: str) -> None:
    hosts = _hosts_on(bed, node)
    _cut(bed, node, OVERLAY_ONLY)  # every host silent to the other nodes at once
    for host in hosts:  # then each crashed as one host is: nothing leaves it, not even onto its node's bridge
        if bed.status(host) == "running":
            crash(bed, host)
    bed.pause_node(node)  # its engine, and so its part of the Swarm, frozen too


@fault("node_reboot", "Back from a node crash: the node, and each of its hosts with no TCP state.", params=(NODE,))
def node_reboot(bed: Backend, node: str) -> None:
    """The hosts die and start again while the node's overlay traffic is still cut (their kernels' FINs and
    RSTs never leave it), then the cut goes."""
    hosts = _hosts_on(bed, node)
    try:
        bed.unpause_node(node)
    except NetbedError as exc:  # it was not frozen: a reboot of a running node is allowed
        if "not paused" not in str(exc):
            raise
    for host in hosts:
        if bed.status(host) == "paused":
            bed.unpause(host)
        if bed.status(host) == "running":
            bed.signal(host, "SIGKILL")
        await_status(bed, host, "exited")
    for host in hosts:
        reboot(bed, host)
    _mend_node(bed, node)


def _mend(bed: Backend, host: str) -> list[str]:
    node = bed.node_of(host)
    if node and bed.nodes().get(node, [None])[0] == host and _mend_node(bed, node):
        return [f"{node}: partition"]
    return []


@fault("node_partition", "Cut a whole node from the others; its hosts keep running.", params=(NODE,), undo=_mend)
def node_partition(bed: Backend, node: str) -> None:
    _hosts_on(bed, node)
    _cut(bed, node)
