"""`netbed doctor --cluster NAME`: is the cluster fit to carry a testbed across its nodes?

Each node's engine answers; each is a member of the one Swarm, Ready and
Active; the TCP ports Swarm needs between nodes (2377 on managers, 7946 on
all) open from every node to every other (a small probe run inside each
node); the data path: a throwaway attachable internal overlay with an echo
server on node 1 and a client on each other node, which crosses VXLAN
(4789/udp) both ways, and node 1's view of the overlay's gossip peers
(7946/udp); netbed's host image current on every node.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors

from netbed.backend import Finding, NetbedError
from netbed.backend.compose import engine
from netbed.backend.compose.testbed import free_prefixes
from netbed.backend.swarm import cluster as clusters
from netbed.backend.swarm.nodes import PortCheck, parse_probe, probe_argv, probe_targets
from netbed.labels import CLUSTER, OWNER, ROLE, kept_owner
from netbed.observe import WaitTimeout, wait_for

PROBE_ROLE = "cluster-probe"
PROBE_DEADLINE = 60.0
ECHO = """
import socket, sys
s = socket.create_connection((sys.argv[1], 9877), timeout=10)
s.sendall(b"netbed overlay probe\\n")
got = b""
while not got.endswith(b"\\n"):
    chunk = s.recv(100)
    if not chunk:
        break
    got += chunk
s.close()
print("echoed" if got == b"netbed overlay probe\\n" else f"wrong echo {got!r}", flush=True)
"""


def diagnose(name: str) -> list[Finding]:
    try:
        cluster = clusters.status(name)
    except NetbedError as exc:
        return [Finding(f"cluster {name}", False, str(exc), f"`netbed cluster up 3 --name {name}`")]
    findings = [Finding(f"cluster {name}", bool(cluster.nodes),
                        f"{len(cluster.nodes)} nodes on {cluster.subnet or '?'} (bridge {cluster.bridge or '?'})",
                        f"`netbed cluster down --name {name}`, then up again")]
    for node in cluster.nodes:
        findings.append(Finding(f"{node.name} engine", bool(node.engine),
                                f"Docker Engine {node.engine} at {node.endpoint}" if node.engine
                                else f"no answer at {node.endpoint} (container {node.container_state or 'gone'})",
                                f"`docker logs {node.container}`; `netbed cluster down --name {name}` and up again"))
    for node in cluster.nodes:
        ok = bool(node.swarm_id) and node.state == "ready" and node.availability == "active"
        findings.append(Finding(f"{node.name} swarm", ok,
                                f"{node.role} {node.state}/{node.availability} (id {node.swarm_id[:12] or 'none'})",
                                f"a Ready node's engine answers and reaches a manager on 2377/tcp: "
                                f"`docker logs {node.container}`"))
    answering = [n for n in cluster.nodes if n.engine]  # the probes run from these (a frozen node would stall them)
    if len(answering) > 1:
        findings.append(_tcp_ports(cluster, answering))
        if answering[0] == cluster.nodes[0] and all(n.image in ("current", "stale") for n in answering):
            findings.append(_data_path(cluster, answering))  # any netbed-host image has the echo server
    for node in cluster.nodes:
        findings.append(Finding(f"{node.name} image {engine.IMAGE}", node.image == "current", node.image,
                                f"`netbed cluster load-image --name {name}`"))
    return findings


def port_checks(cluster: clusters.Cluster, sources: list[clusters.Node] | None = None) -> list[PortCheck]:
    """From every node (or those given), a TCP connect to the other nodes' Swarm ports, run inside the node's
    container."""
    sources = list(cluster.nodes) if sources is None else sources
    cli = engine.client()
    addresses = {n.name: n.address for n in cluster.nodes}
    managers = {n.name for n in cluster.managers}

    def probe(node: clusters.Node) -> list[PortCheck]:
        targets = probe_targets(addresses, managers, node.name)
        try:
            code, output = cli.containers.get(node.container).exec_run(probe_argv(targets))
        except docker.errors.DockerException as exc:
            return [PortCheck(node.name, t.split(":")[0], int(t.split(":")[1]), False, f"probe failed: {exc}")
                    for t in targets]
        checks = parse_probe(node.name, output.decode(errors="replace"))
        if len(checks) != len(targets):
            return [PortCheck(node.name, "?", 0, False, f"probe exited {code}: {output.decode()[-200:]}")]
        return checks

    with ThreadPoolExecutor(len(sources)) as pool:
        return [check for checks in pool.map(probe, sources) for check in checks]


def _tcp_ports(cluster: clusters.Cluster, sources: list[clusters.Node]) -> Finding:
    checks = port_checks(cluster, sources)
    names = {n.address: n.name for n in cluster.nodes}
    closed = [f"{c.source} -> {names.get(c.ip, c.ip)}:{c.port} ({c.detail})" for c in checks if not c.open]
    return Finding("swarm ports 2377/tcp, 7946/tcp", bool(checks) and not closed,
                   f"{len(checks) - len(closed)} of {len(checks)} open between the nodes"
                   + (f"; closed: {', '.join(closed)}" if closed else ""),
                   "open 2377/tcp (managers), 7946/tcp+udp and 4789/udp between the nodes")


def _data_path(cluster: clusters.Cluster, nodes: list[clusters.Node]) -> Finding:
    name = "overlay data path 4789/udp, 7946/udp"
    try:
        detail = overlay_echo(cluster, nodes)
        return Finding(name, True, detail)
    except (NetbedError, docker.errors.DockerException) as exc:
        return Finding(name, False, str(exc).splitlines()[0][:300],
                       "open 4789/udp and 7946/udp between the nodes; `docker logs` of the nodes")


def overlay_echo(cluster: clusters.Cluster, nodes: list[clusters.Node] | None = None) -> str:
    """An echo from every other node (of those given) to the first across a throwaway overlay; raises if one
    fails."""
    nodes = list(cluster.nodes) if nodes is None else nodes
    first, others = nodes[0], nodes[1:]
    lead = first.client(timeout=60)
    prefix = free_prefixes(lead, ["probe"])["probe"]
    while cluster.subnet.startswith(f"{prefix}."):
        prefix = free_prefixes(lead, ["probe"])["probe"]
    tag = uuid.uuid4().hex[:6]
    labels = {CLUSTER: cluster.name, ROLE: PROBE_ROLE, OWNER: kept_owner()}
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{prefix}.0/24")])
    net = lead.networks.create(f"netbed-probe-{tag}", driver="overlay", attachable=True, internal=True, ipam=ipam,
                               labels=labels)
    made: list[tuple[docker.DockerClient, str]] = []
    try:
        server = lead.containers.run(engine.IMAGE, ["python3", "-m", "netbed.apps.echo_server"], detach=True,
                                     network=net.name, labels=labels, name=f"netbed-probe-{tag}-server")
        made.append((lead, server.id))
        server.reload()
        ip = server.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        clients = []
        for node in others:
            cli = node.client(timeout=60)
            box = cli.containers.run(engine.IMAGE, ["sh", "-c", f"python3 -c '{ECHO}' {ip}; sleep 60"],
                                     detach=True, network=net.name, labels=labels,
                                     name=f"netbed-probe-{tag}-{node.name}")
            made.append((cli, box.id))
            clients.append((node, box))
        for node, box in clients:
            try:
                said = wait_for(lambda: box.logs().decode(errors="replace"), lambda out: out.strip() != "",
                                timeout=PROBE_DEADLINE, what=f"the echo from {node.name} to {first.name}")
            except WaitTimeout as exc:
                raise NetbedError(str(exc)) from None
            if said.strip() != "echoed":
                raise NetbedError(f"{node.name} -> {first.name} across the overlay: {said.strip()[-200:]}")
        peers = lead.api.inspect_network(net.id, verbose=True).get("Peers") or []
        if len(peers) < len(nodes):
            raise NetbedError(f"{first.name} knows {len(peers)} of {len(nodes)} nodes as peers of the "
                              "overlay: its gossip (7946/udp+tcp) does not reach them all")
        return (f"echo from {', '.join(n.name for n in others)} to {first.name} ({ip}) across an internal "
                f"overlay; {len(peers)} gossip peers")
    finally:
        for cli, container in reversed(made):
            try:
                cli.api.remove_container(container, force=True)
            except docker.errors.DockerException:
                pass
        try:
            net.remove()
        except docker.errors.DockerException:
            pass
