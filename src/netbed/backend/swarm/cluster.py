"""`netbed cluster`: an N-node Docker Swarm of engine containers on the machine's own engine.

Each node is a container of the node image (Debian's docker.io on netbed's
base) running its own `dockerd`, on an internal network of its own; node 1
initialises a Swarm and the others join it; netbed's host image is copied
into every node with save/load (there is no registry). Everything made
carries netbed's labels (CLUSTER), so `status`, `attach` and `down` read a
cluster back from the engine, never from memory.

- Endpoint: each node's engine listens on a unix socket in a folder netbed
  owns on the machine (CLUSTERS_DIR/NAME/NODE/docker.sock, bind-mounted into
  the node), not on TCP: a socket is guarded by the machine's file
  permissions (root only), opens no port, and needs no TLS, whereas a plain
  TCP engine port gives root on the node to whatever can reach it.
- Managers: with 3 or more nodes, nodes 1-3 are managers (the Raft quorum
  survives any one node crashing, which the node-level faults do) and the
  rest workers; with 1 or 2 nodes, node 1 alone manages (with two managers
  losing either one would stop the Swarm's control plane).
- Cgroups: each node's dockerd runs with `--cgroup-parent=/CONTAINER`, so the
  nested containers' cgroups do not collide with the machine engine's; on a
  cgroup v1 machine those folders are the machine's, and `down` removes them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import docker.errors

from netbed.backend import EngineError, TestbedError, check_cluster_name, check_node_count
from netbed.backend.compose import engine
from netbed.backend.compose.testbed import free_prefix
from netbed.backend.swarm.nodes import SwarmNode, parse_nodes
from netbed.labels import (CLUSTER, CLUSTER_NETWORK, CLUSTER_NODE, CONTEXT, NODE, NODE_ENDPOINT, OWNER, ROLE,
                           STARTED, SWARM_ROLE, kept_owner)
from netbed.observe import WaitTimeout, wait_for
from netbed.progress import Reporter, silent, step

NODE_IMAGE = os.environ.get("NETBED_NODE_IMAGE", "netbed-node:latest")
CLUSTERS_DIR = Path(os.environ.get("NETBED_CLUSTERS_DIR", "/run/netbed/clusters"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_PACKAGES = ("docker.io", "python3", "iproute2", "iptables", "procps")
NODE_DOCKERFILE = f"""\
# A netbed cluster node: a Docker Engine (Debian's docker.io) in a container.
ARG BASE
FROM ${{BASE}}
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {' '.join(NODE_PACKAGES)} \\
    && rm -rf /var/lib/apt/lists/*
"""
MANAGERS_FROM = 3          # with this many nodes or more, the first three are managers
ENGINE_DEADLINE = 60.0     # a node's dockerd answering
READY_DEADLINE = 60.0      # every node Ready in the Swarm
CGROUP_DEADLINE = 20.0     # a removed node's cgroups emptied
SUBNET_TRIES = 8
HOST_OFFSET = 10           # node K gets PREFIX.(10+K)


@dataclass(frozen=True)
class Node:
    """One node of a cluster: its engine, where the runner reaches it, and what the Swarm says of it."""

    name: str            # node1, node2, ...
    container: str       # the node's container on the machine's engine
    endpoint: str        # the node engine's Docker endpoint (unix://.../docker.sock)
    address: str         # the node's address on the node network
    swarm_id: str = ""   # its Swarm node id ("" while its engine does not answer)
    role: str = ""       # manager or worker (what it joined as)
    state: str = ""      # from status(): ready/down/... and
    availability: str = ""  # active/pause/drain, as the managers see it
    engine: str = ""     # from status(): the node engine's version
    image: str = ""      # from status(): netbed's host image on the node: current, stale, missing
    container_state: str = ""  # the node's container on the machine: running, paused, exited, ...

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.endpoint, timeout=timeout)


@dataclass(frozen=True)
class Cluster:
    name: str
    network: str         # the nodes' network on the machine's engine
    subnet: str
    bridge: str          # its bridge on the machine: every frame between the nodes (VXLAN, 4789/udp) crosses it
    nodes: tuple[Node, ...] = field(default_factory=tuple)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TestbedError(f"cluster {self.name} has no node {name}: its nodes are "
                           f"{', '.join(n.name for n in self.nodes)}")

    @property
    def managers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "manager"]


# --- names --------------------------------------------------------------------------------------


def container_name(cluster: str, index: int) -> str:
    return f"{cluster}-node{index}"


def network_name(cluster: str) -> str:
    return f"{cluster}-nodes"


def volume_name(cluster: str, index: int) -> str:
    return f"{container_name(cluster, index)}-data"


def folder(cluster: str) -> Path:
    return CLUSTERS_DIR / cluster


def roles(n: int) -> list[str]:
    managers = 3 if n >= MANAGERS_FROM else 1
    return ["manager" if i < managers else "worker" for i in range(n)]


# --- the node image ----------------------------------------------------------------------------


def node_image_digest(base: str, base_id: str) -> str:
    return hashlib.sha256(f"{NODE_DOCKERFILE}\n{base}\n{base_id}".encode()).hexdigest()[:16]


def node_image_state(cli: docker.DockerClient) -> tuple[str, str]:
    """('current' | 'stale' | 'missing', the base it is or would be built on)."""
    base = engine._base_image(cli)
    try:
        base_id = cli.images.get(base).id
    except docker.errors.ImageNotFound:
        raise EngineError(f"the base image {base} is missing: run `netbed doctor --fix` first") from None
    try:
        image = cli.images.get(NODE_IMAGE)
    except docker.errors.ImageNotFound:
        return "missing", base
    current = (image.labels or {}).get(CONTEXT) == node_image_digest(base, base_id)
    return ("current" if current else "stale"), base


def build_node_image(cli: docker.DockerClient, base: str, info=lambda _line: None) -> None:
    """Debian's docker.io on netbed's base, from the machine's Debian mirror (the legacy builder, no registry)."""
    digest = node_image_digest(base, cli.images.get(base).id)
    context = tempfile.TemporaryFile()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = NODE_DOCKERFILE.encode()
        member = tarfile.TarInfo("Dockerfile")
        member.size = len(data)
        tar.addfile(member, fileobj=_bytes(data))
    context.seek(0)
    stream = cli.api.build(fileobj=context, custom_context=True, tag=NODE_IMAGE, rm=True, buildargs={"BASE": base},
                           labels={CONTEXT: digest}, decode=True)
    for chunk in stream:
        if "error" in chunk:
            raise EngineError(f"building {NODE_IMAGE} failed: {chunk['error'].strip()} "
                              "(it installs docker.io from the Debian mirror in the base image's apt sources)")
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            info(line)


def _bytes(data: bytes):
    import io
    return io.BytesIO(data)


# --- up ---------------------------------------------------------------------------------------


def up(n: int, name: str = "netbed-cluster", report: Reporter = silent,
       cancel: threading.Event | None = None) -> Cluster:
    """Make an N-node Swarm of engine containers on the machine's engine; see the module's doc."""
    check_cluster_name(name)
    check_node_count(n)
    cli = engine.client(timeout=300)
    if _made(cli, name):
        raise TestbedError(f"cluster {name} is up already: `netbed cluster down --name {name}` first, "
                           "or give another --name")
    with step(report, f"image {NODE_IMAGE}") as s:
        state, base = node_image_state(cli)
        if state == "current":
            s.skip("current")
        else:
            s.info(f"{state}: building on {base}")
            build_node_image(cli, base, s.info)
    with step(report, f"image {engine.IMAGE}") as s:
        state = engine.image_state(cli)
        if state == "current":
            s.skip("current")
        else:
            engine.build_image(cli, engine._base_image(cli), s.info)
    try:
        _go_on(cancel)
        with step(report, f"network {network_name(name)}") as s:
            prefix = _network(cli, name)
            s.info(f"{prefix}.0/24, internal")
        with step(report, f"{n} node{'s' if n > 1 else ''}") as s:
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for index, role in enumerate(roles(n), 1):
                _go_on(cancel)
                _start_node(cli, name, index, role, f"{prefix}.{HOST_OFFSET + index}", started)
                s.info(f"{container_name(name, index)} ({role}) at {prefix}.{HOST_OFFSET + index}")
        cluster = attach(name, swarm=False)
        with step(report, "node engines") as s:
            for node in cluster.nodes:
                version = _wait_engine(node, cancel)
                s.info(f"{node.name}: Docker Engine {version}")
        with step(report, "swarm") as s:
            _form_swarm(cluster, s.info, cancel)
        with step(report, f"image {engine.IMAGE} on the nodes") as s:
            load_host_image(cluster, cli, s.info)
        return status(name)
    except BaseException:
        down(name)
        raise


def _go_on(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        from netbed.errors import Cancelled
        raise Cancelled("called off while the cluster came up")


def _made(cli: docker.DockerClient, name: str) -> bool:
    label = {"label": f"{CLUSTER}={name}"}
    return bool(cli.api.containers(all=True, filters=label) or cli.api.networks(filters=label))


def _labels(name: str, role: str, started: str = "") -> dict[str, str]:
    return {CLUSTER: name, ROLE: role, OWNER: kept_owner(), STARTED: started or time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _network(cli: docker.DockerClient, name: str) -> str:
    """The nodes' internal network on a /24 no other network of the engine uses; its prefix."""
    for attempt in range(SUBNET_TRIES):
        prefix = free_prefix(cli)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{prefix}.0/24")])
        try:
            cli.networks.create(network_name(name), driver="bridge", internal=True, ipam=ipam,
                                labels=_labels(name, CLUSTER_NETWORK))
            return prefix
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc) or attempt == SUBNET_TRIES - 1:
                raise EngineError(f"could not create network {network_name(name)}: {exc.explanation or exc}") from None
    raise AssertionError("unreachable")


def _start_node(cli: docker.DockerClient, name: str, index: int, role: str, ip: str, started: str) -> None:
    node, container = f"node{index}", container_name(name, index)
    sockets = folder(name) / node
    if sockets.exists():
        shutil.rmtree(sockets)
    sockets.mkdir(parents=True, mode=0o700)
    endpoint = f"unix://{sockets}/docker.sock"
    labels = {**_labels(name, CLUSTER_NODE, started), NODE: node, NODE_ENDPOINT: endpoint, SWARM_ROLE: role}
    volume = volume_name(name, index)
    cli.volumes.create(volume, labels=labels)
    host_config = cli.api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],  # every capability but the one this kind of machine withholds
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        tmpfs={"/run": ""}, init=True, network_mode=network_name(name),
        binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
               str(sockets): {"bind": "/netbed", "mode": "rw"},
               volume: {"bind": "/var/lib/docker", "mode": "rw"}})
    networking = cli.api.create_networking_config(
        {network_name(name): cli.api.create_endpoint_config(ipv4_address=ip)})
    try:
        made = cli.api.create_container(
            NODE_IMAGE, name=container, hostname=node, labels=labels, host_config=host_config,
            networking_config=networking,
            command=["dockerd", f"--cgroup-parent=/{container}", "-H", "unix:///var/run/docker.sock",
                     "-H", "unix:///netbed/docker.sock"])
        cli.api.start(made["Id"])
    except docker.errors.APIError as exc:
        raise EngineError(f"could not start {container}: {exc.explanation or exc}") from None


def _wait_engine(node: Node, cancel: threading.Event | None = None) -> str:
    def version() -> str:
        try:
            return node.client(timeout=5).version().get("Version", "?")
        except (docker.errors.DockerException, OSError):
            return ""
    try:
        return wait_for(version, timeout=ENGINE_DEADLINE, what=f"{node.name}'s engine at {node.endpoint}",
                        cancel=cancel)
    except WaitTimeout as exc:
        raise EngineError(f"{exc}: see `docker logs {node.container}`") from None


def _form_swarm(cluster: Cluster, info, cancel: threading.Event | None) -> None:
    first = cluster.nodes[0]
    lead = first.client()
    try:
        lead.swarm.init(advertise_addr=first.address, listen_addr=f"{first.address}:2377")
        info(f"{first.name}: swarm init --advertise-addr {first.address}")
        tokens = lead.swarm.attrs["JoinTokens"] if lead.swarm.attrs else lead.api.inspect_swarm()["JoinTokens"]
        for node in cluster.nodes[1:]:
            _go_on(cancel)
            node.client().swarm.join(remote_addrs=[f"{first.address}:2377"], advertise_addr=node.address,
                                     listen_addr=f"{node.address}:2377",
                                     join_token=tokens["Manager" if node.role == "manager" else "Worker"])
            info(f"{node.name}: joined as a {node.role}")
    except docker.errors.APIError as exc:
        raise EngineError(f"forming the Swarm failed: {exc.explanation or exc}") from None
    try:
        wait_for(lambda: parse_nodes(lead.api.nodes()),
                 lambda seen: len(seen) == len(cluster.nodes) and all(n.healthy for n in seen),
                 timeout=READY_DEADLINE, what="every node Ready and Active in the Swarm", cancel=cancel)
    except WaitTimeout as exc:
        raise EngineError(str(exc)) from None


def load_host_image(cluster: Cluster, cli: docker.DockerClient | None = None, info=lambda _line: None) -> None:
    """Put the machine's netbed host image on every node where it is not current (docker save | docker load)."""
    cli = cli or engine.client(timeout=300)
    wanted = cli.images.get(engine.IMAGE).id
    todo = [node for node in cluster.nodes if _image_id(node) != wanted]
    if not todo:
        info("current on every node")
        return
    with tempfile.NamedTemporaryFile(prefix="netbed-host-", suffix=".tar", dir="/var/tmp") as saved:
        for chunk in cli.api.get_image(engine.IMAGE):
            saved.write(chunk)
        saved.flush()
        info(f"saved {engine.IMAGE} ({saved.tell() / 1e6:.0f} MB)")

        def load(node: Node) -> None:
            with open(saved.name, "rb") as data:
                for _ in node.client(timeout=600).api.load_image(data):
                    pass
            info(f"{node.name}: loaded")

        with ThreadPoolExecutor(len(todo)) as pool:
            for done in [pool.submit(load, node) for node in todo]:
                done.result()
    missing = [node.name for node in todo if _image_id(node) != wanted]
    if missing:
        raise EngineError(f"{engine.IMAGE} did not load on {', '.join(missing)}")


def refresh_image(name: str, report: Reporter = silent) -> None:
    """Build netbed's host image where it is stale on the machine (any change to netbed makes it so), then
    load it into every node of the cluster that lacks it (`netbed cluster load-image`)."""
    cluster = attach(name, swarm=False)
    cli = engine.client(timeout=300)
    with step(report, f"image {engine.IMAGE}") as s:
        if engine.image_state(cli) == "current":
            s.skip("current")
        else:
            engine.build_image(cli, engine._base_image(cli), s.info)
    with step(report, f"image {engine.IMAGE} on the nodes of {name}") as s:
        load_host_image(cluster, cli, s.info)


def _image_id(node: Node) -> str:
    try:
        return node.client().images.get(engine.IMAGE).id
    except docker.errors.ImageNotFound:
        return ""


# --- reading a cluster back ---------------------------------------------------------------------


def attach(name: str, swarm: bool = True) -> Cluster:
    """The cluster `up` made, from its labels on the machine's engine (and, with swarm, each node's Swarm id)."""
    check_cluster_name(name)
    cli = engine.client()
    nets = cli.api.networks(filters={"label": [f"{CLUSTER}={name}", f"{ROLE}={CLUSTER_NETWORK}"]})
    rows = engine.containers(cli, f"{CLUSTER}={name}", f"{ROLE}={CLUSTER_NODE}")
    if not nets and not rows:
        raise TestbedError(f"no cluster named {name}: `netbed cluster up N --name {name}` makes one")
    subnet, bridge = "", ""
    if nets:
        net = cli.api.inspect_network(nets[0]["Id"])
        subnet = ((net.get("IPAM") or {}).get("Config") or [{}])[0].get("Subnet", "")
        bridge = (net.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net['Id'][:12]}"
    nodes = []
    for row in sorted(rows, key=lambda r: int(r.labels.get(NODE, "node0")[4:] or 0)):
        address = (row.networks.get(network_name(name)) or {}).get("IPAddress", "")
        node = Node(row.labels.get(NODE, ""), row.name, row.labels.get(NODE_ENDPOINT, ""), address,
                    role=row.labels.get(SWARM_ROLE, ""), container_state=row.status)
        if swarm and row.status == "running":  # a paused or stopped node's engine cannot answer: no waiting on it
            node = replace(node, swarm_id=_swarm_id(node))
        nodes.append(node)
    return Cluster(name, network_name(name), subnet, bridge, tuple(nodes))


def _swarm_id(node: Node) -> str:
    try:
        return ((node.client(timeout=5).info().get("Swarm") or {}).get("NodeID")) or ""
    except (docker.errors.DockerException, OSError):
        return ""


def swarm_nodes(cluster: Cluster) -> list[SwarmNode]:
    """The Swarm's node list, from the first manager whose engine answers."""
    for node in cluster.managers or cluster.nodes:
        if node.container_state != "running":
            continue
        try:
            return parse_nodes(node.client(timeout=5).api.nodes())
        except (docker.errors.DockerException, OSError):
            continue
    return []


def status(name: str) -> Cluster:
    """attach() with each node's engine version, Swarm state and availability, and host image state."""
    cluster = attach(name)
    listed = swarm_nodes(cluster)
    by_id, by_hostname = {n.id: n for n in listed}, {n.hostname: n for n in listed}
    wanted = engine.context_digest(engine.build_context())
    nodes = []
    for node in cluster.nodes:
        swarm = by_id.get(node.swarm_id) or by_hostname.get(node.name)  # a node whose engine is silent: by name
        try:
            if node.container_state != "running":
                raise OSError(f"container {node.container_state}")
            cli = node.client(timeout=5)
            version = cli.version().get("Version", "")
            try:
                labels = cli.images.get(engine.IMAGE).labels or {}
                image = "current" if labels.get(CONTEXT) == wanted else "stale"
            except docker.errors.ImageNotFound:
                image = "missing"
        except (docker.errors.DockerException, OSError):
            version, image = "", "unknown"
        nodes.append(replace(node, engine=version, image=image, state=swarm.state if swarm else "unknown",
                             availability=swarm.availability if swarm else "unknown",
                             role=swarm.role if swarm else node.role,
                             swarm_id=node.swarm_id or (swarm.id if swarm else "")))
    return replace(cluster, nodes=tuple(nodes))


def clusters() -> list[str]:
    """The names of the clusters on the machine's engine."""
    cli = engine.client()
    names = {row.labels[CLUSTER] for row in engine.containers(cli, CLUSTER)}
    names |= {(net.get("Labels") or {})[CLUSTER] for net in cli.api.networks(filters={"label": CLUSTER})}
    return sorted(names)


# --- down -------------------------------------------------------------------------------------


def down(name: str, report: Reporter = silent) -> list[str]:
    """Remove everything of the cluster: node containers, their volumes, the network, the sockets folder,
    the nodes' cgroups. Idempotent: what is gone already is no error. Returns what it removed."""
    check_cluster_name(name)
    cli = engine.client(timeout=120)
    removed: list[str] = []
    label = f"{CLUSTER}={name}"
    with step(report, f"cluster {name} down") as s:
        rows = engine.containers(cli, label)
        with ThreadPoolExecutor(max(1, len(rows))) as pool:
            list(pool.map(lambda row: engine.remove(cli, row.id), rows))
        removed += [f"container {row.name}" for row in rows]
        for volume in cli.api.volumes(filters={"label": label}).get("Volumes") or []:
            _quietly(lambda: cli.api.remove_volume(volume["Name"], force=True))
            removed.append(f"volume {volume['Name']}")
        for net in cli.api.networks(filters={"label": label}):
            _quietly(lambda: cli.api.remove_network(net["Id"]))
            removed.append(f"network {net['Name']}")
        gone = _remove_cgroups(name)
        if gone:
            removed.append(f"{gone} cgroup folders")
        if folder(name).exists():
            shutil.rmtree(folder(name), ignore_errors=True)
            removed.append(f"folder {folder(name)}")
        for empty in (CLUSTERS_DIR, CLUSTERS_DIR.parent):  # /run/netbed/clusters, /run/netbed: netbed's own
            if empty.is_dir() and empty.name in ("clusters", "netbed") and not any(empty.iterdir()):
                _quietly(empty.rmdir)
        if not removed:
            s.skip("nothing left of it")
        else:
            s.info(", ".join(removed))
    return removed


def _quietly(action) -> None:
    try:
        action()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise EngineError(f"cluster down: {exc.explanation or exc}") from None
    except OSError:
        pass


def cgroups(name: str) -> list[Path]:
    """The cgroup folders on the machine named after the cluster's nodes (cgroup v1: one per controller)."""
    pattern = re.compile(rf"{re.escape(name)}-node\d+")
    found = []
    for top in [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())] if CGROUP_ROOT.is_dir() else []:
        try:
            found += [p for p in top.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
        except OSError:
            continue
    return found


def _remove_cgroups(name: str) -> int:
    """rmdir the nodes' cgroup folders, deepest first, once the processes in them are gone."""
    tops = cgroups(name)
    if not tops:
        return 0

    def left() -> list[Path]:
        for top in tops:
            for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    pass  # still busy: processes of a nested container are exiting
        return [top for top in tops if top.exists()]
    try:
        wait_for(left, lambda busy: not busy, timeout=CGROUP_DEADLINE, what="the nodes' cgroups to empty")
    except WaitTimeout as exc:
        raise EngineError(f"cluster down left cgroups behind: {exc}") from None
    return len(tops)
