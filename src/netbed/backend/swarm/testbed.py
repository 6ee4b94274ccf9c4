"""A testbed across the engines of a Docker Swarm: the same compose file, its hosts spread over the nodes.

Each network the file declares becomes an attachable, internal overlay
network with netbed's own /24 (VXLAN between the nodes: one L2 network). The
hosts are plain containers, not Swarm services (a service cannot have a
static address or be paused as a host is): on each node, Compose makes that
node's hosts, with the overlay as an external network, the same static
addresses and MACs as on one engine, and the same labels. A recorder per
node records the overlay's bridge there; `pcap` is their merge.

Every host verb goes to the engine of the host's node (`_engine`), and the
network faults run from a helper container there (`netns`), so the runner
need not share a kernel with any host. Compose on one engine is the parent
class: what differs is only where the hosts run and how the capture is made.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from netbed import capture as recording
from netbed import spec
from netbed.backend import NODE_CHAIN, TestbedError
from netbed.backend import guard
from netbed.backend.compose import engine
from netbed.backend.compose.testbed import (DOWN_FILE, STATE_FILE, Testbed, _for_every_host, _go_on, _host_services,
                                            _last_line, free_prefixes, machine_netns, netns_helper)
from netbed.backend.swarm import recorder
from netbed.capture import CaptureStats
from netbed.errors import NetbedError
from netbed.folders import missing_top, remove_made
from netbed.labels import NODE, OWNER, PROJECT, RUN_DIR, STARTED, owner_id
from netbed.progress import Reporter, silent, step



def spread(hosts: list[str], nodes: list[str], placed: dict[str, str] | None = None) -> dict[str, str]:
    """Which node runs each host: those placed where asked, the others in turn over the nodes (file order)."""
    placed = dict(placed or {})
    unknown_hosts = sorted(set(placed) - set(hosts))
    if unknown_hosts:
        raise TestbedError(f"placement names no host of the file: {', '.join(unknown_hosts)} "
                           f"(its hosts are {', '.join(hosts)})")
    unknown_nodes = sorted(set(placed.values()) - set(nodes))
    if unknown_nodes:
        raise TestbedError(f"placement names no node of the cluster: {', '.join(unknown_nodes)} "
                           f"(its nodes are {', '.join(nodes)})")
    free = [h for h in hosts if h not in placed]
    return {host: placed.get(host) or nodes[free.index(host) % len(nodes)] for host in hosts}


@dataclass
class SwarmTestbed(Testbed):
    __test__ = False
    endpoints: dict[str, str] = field(default_factory=dict)   # node name -> its engine's endpoint (DOCKER_HOST)
    cluster: str = ""                                          # the `netbed cluster` it runs on, if one
    placement: dict[str, str] = field(default_factory=dict)   # host -> node
    overlays: dict[str, str] = field(default_factory=dict)    # the file's network -> the overlay's name
    recorders: dict[str, recorder.Recorder] = field(default_factory=dict, repr=False)
    _clients: dict[str, docker.DockerClient] = field(default_factory=dict, repr=False)
    _outer_ns: str = field(default="", repr=False)

    @classmethod
    def up_across(cls, nodes: dict[str, str], compose_file: Path | str | None = None, project: str | None = None,
                  run_dir: Path | str | None = None, services: dict[str, dict[str, Any]] | None = None,
                  place: dict[str, str] | None = None, report: Reporter = silent, owner: str | None = None,
                  cancel: threading.Event | None = None, cluster: str = "",
                  every_host: dict[str, Any] | None = None) -> "SwarmTestbed":
        """Bring a testbed up across `nodes` (the first a manager of the Swarm); on failure remove what was made."""
        if not nodes:
            raise TestbedError("a testbed across a Swarm needs its nodes: `netbed cluster up 3` makes some")
        compose_file = Path(compose_file or engine.default_compose_file()).resolve()
        if not compose_file.is_file():
            raise TestbedError(f"no compose file at {compose_file}: give the path of a compose file")
        project = spec.check_project_name(project) if project else f"netbed-{uuid.uuid4().hex[:10]}"
        run_dir = Path(run_dir or Path.cwd() / "runs" / project).resolve()
        labels = {PROJECT: project, RUN_DIR: str(run_dir), OWNER: owner or owner_id(),
                  STARTED: datetime.now(timezone.utc).isoformat(timespec="seconds")}
        made = missing_top(run_dir)
        bed = cls(project=project, compose_file=compose_file, run_dir=run_dir, env={}, bridge="", labels=labels,
                  endpoints=dict(nodes), cluster=cluster)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with step(report, f"testbed {project} up across {len(nodes)} nodes") as s:
                bed._create_across(services or {}, every_host or {}, place or {}, s, cancel or threading.Event())
        except BaseException:
            bed.down()
            if made is not None:
                remove_made(run_dir, made)
            raise
        return bed

    def _create_across(self, services: dict[str, dict[str, Any]], every_host: dict[str, Any], place: dict[str, str],
                       s, cancel: threading.Event) -> None:
        for node in self.endpoints:
            if not engine.has_image(self._node_engine(node), engine.IMAGE):
                raise engine.EngineError(f"image {engine.IMAGE} is missing on node {node}: load it there "
                                         "(`netbed cluster up` does)")
        model = self._config()
        hosts = _host_services(model)
        services = _for_every_host(services, every_host, hosts)
        external = {name for name, net in (model.get("networks") or {}).items() if (net or {}).get("external")}
        guard.check_services(model["services"], hosts, external)
        guard.check_services(services, hosts, external)
        self.placement = spread(hosts, list(self.endpoints), place)
        manager = self._node_engine(next(iter(self.endpoints)))
        networks = spec.created_networks(model)
        prefixes = free_prefixes(manager, networks)
        self.env["NETBED_NET"] = next(iter(prefixes.values()), "10.98.0")
        reserved = spec.LAST_HOST - len(self.endpoints)  # the top octets are the recorders'
        ids = {}
        for net in networks:
            name = f"{self.project}_{net}"
            created = manager.networks.create(
                name, driver="overlay", attachable=True, internal=True, labels=self.labels,
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=f"{prefixes[net]}.0/24",
                                                       gateway=f"{prefixes[net]}.1")]))
            self.overlays[net], ids[net] = name, created.id
        s.info(f"overlay {', '.join(self.overlays.values())} on {prefixes[networks[0]] if networks else '-'}.0/24")
        self.bridge = f"overlay {self.overlays.get(networks[0], '-') if networks else '-'}"
        try:
            override = spec.override(model, hosts, services, self.labels, prefixes, last_host=reserved)
        except ValueError as exc:
            raise TestbedError(f"{self.compose_file.name}: {exc}") from None
        override["networks"] = {net: {"external": True, "name": name} for net, name in self.overlays.items()}
        for name in hosts:
            override["services"][name].setdefault("labels", {})[NODE] = self.placement[name]
        (self.run_dir / "netbed.override.json").write_text(json.dumps(override, indent=2))
        self._ship_mounts(hosts)
        first = networks[0] if networks else None
        for stale in ("capture.pcap", "capture.pcapng"):  # a folder used before: its capture is not this one
            (self.run_dir / stale).unlink(missing_ok=True)
        for index, node in enumerate(self.endpoints):  # a recorder on every node before any host starts
            _go_on(cancel)
            if first is None:
                break
            self.recorders[node] = recorder.start(
                self._node_engine(node), self.endpoints[node], node, self.overlays[first], ids[first],
                f"{prefixes[first]}.{spec.LAST_HOST - index}", self.run_dir / f"capture-{node}.pcap",
                self.labels, engine.IMAGE)
        s.info(f"recording on {len(self.recorders)} nodes")
        for node in self.endpoints:
            mine = [h for h in hosts if self.placement[h] == node]
            if not mine:
                continue
            _go_on(cancel)
            done = self._compose_on(node, ["up", "-d", "--no-deps", "--no-build", "--pull", "never", *mine],
                                    check=False)
            if done.returncode != 0:
                raise TestbedError(f"could not start {', '.join(mine)} on node {node}: {_last_line(done.stderr)}")
        self.hosts = self._discover_across(hosts)
        for name in self.hosts:
            _go_on(cancel)
            self.isolate(name)
        (self.run_dir / STATE_FILE).write_text(json.dumps({
            "project": self.project, "compose_file": str(self.compose_file), "run_dir": str(self.run_dir),
            "env": self.env, "bridge": self.bridge, "labels": self.labels, "endpoints": self.endpoints,
            "cluster": self.cluster, "placement": self.placement, "overlays": self.overlays,
            "recorders": {node: {"container_id": r.container_id, "path": str(r.path), "follower": r.follower}
                          for node, r in self.recorders.items()}}, indent=2))

    @classmethod
    def attach_across(cls, project: str) -> "SwarmTestbed":
        """The testbed `project` on one of this machine's clusters, made by an earlier `up` (another process)."""
        from netbed.backend.swarm import cluster as clusters
        for name in clusters.clusters():
            for node in clusters.attach(name, swarm=False).nodes:
                try:
                    rows = engine.containers(node.client(timeout=10), f"{PROJECT}={project}", RUN_DIR)
                except (docker.errors.DockerException, OSError):
                    continue  # a node that does not answer (crashed): another holds its labels too
                if rows:
                    return cls.from_state(json.loads((Path(rows[0].labels[RUN_DIR]) / STATE_FILE).read_text()))
        raise TestbedError(f"no testbed {project!r} is up here or on a cluster")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SwarmTestbed":
        bed = cls(project=state["project"], compose_file=Path(state["compose_file"]), run_dir=Path(state["run_dir"]),
                  env=state["env"], bridge=state["bridge"], labels=state["labels"], endpoints=state["endpoints"],
                  cluster=state.get("cluster", ""), placement=state["placement"], overlays=state["overlays"],
                  recorders={node: recorder.Recorder(node, r["container_id"], Path(r["path"]), r["follower"])
                             for node, r in state.get("recorders", {}).items()})
        bed.hosts = bed._discover_across(list(bed.placement))
        return bed

    def _ship_mounts(self, hosts: list[str]) -> None:
        """Copy what the hosts bind-mount from this machine (the user's programs) to the same paths on their
        nodes: on a `netbed cluster` a node is a container of this machine's engine; on machines of the
        user's own, those paths must be there already."""
        if not self.cluster:
            return
        from netbed.backend.swarm import cluster as clusters
        made = clusters.attach(self.cluster, swarm=False)
        model = self._config(with_override=True)
        outer = engine.client()
        for host in hosts:
            for volume in model["services"][host].get("volumes") or []:
                source = Path(volume.get("source", "")) if volume.get("type") == "bind" else None
                if source is None or not source.is_absolute() or not source.exists():
                    continue
                packed = io.BytesIO()
                with tarfile.open(fileobj=packed, mode="w") as tar:
                    tar.add(source, arcname=str(source).lstrip("/"))
                outer.api.put_archive(made.node(self.placement[host]).container, "/", packed.getvalue())

    def down(self, hurry: bool = False) -> None:
        """Stop the hosts (their last FINs recorded), then the recorders; remove it all; merge. Never raises.
        With `hurry` (a run called off) the hosts are not stopped in order first."""
        if self.labels.get(PROJECT):
            try:
                (self.run_dir / DOWN_FILE).write_text(json.dumps({"project": self.project, "by": owner_id()}))
            except OSError:
                pass
        self._restore_nodes()
        for node in [] if hurry else self.endpoints:
            if any(n == node for n in self.placement.values()):
                try:
                    self._compose_on(node, ["stop", "--timeout", "2"], check=False)
                except NetbedError:
                    pass
        stats: list[CaptureStats | None] = []
        for node, rec in self.recorders.items():
            try:
                stats.append(recorder.stop(self._node_engine(node), rec))
            except NetbedError as exc:
                self.capture_error = self.capture_error or str(exc)
        for node in self.endpoints:
            try:
                self._compose_on(node, ["down", "--volumes", "--remove-orphans", "--timeout", "0"], check=False)
                cli = self._node_engine(node)
                for container in engine.containers(cli, f"{PROJECT}={self.project}"):
                    engine.remove(cli, container.id)
            except NetbedError:
                continue
        for name in self.overlays.values():
            for node in self.endpoints:
                try:
                    self._node_engine(node).api.remove_network(name)
                    break
                except (docker.errors.APIError, NetbedError):
                    continue
        if self.recorders:
            try:
                self._merge()
                recording.annotate_in_place(self.run_dir / "capture.pcap", self.notes())
            except (OSError, ValueError) as exc:
                self.capture_error = self.capture_error or f"could not merge the nodes' recordings: {exc}"

    def _restore_nodes(self) -> None:
        """Thaw a node a fault froze and remove a node's cut: the cluster outlives its testbeds."""
        if not self.cluster:
            return
        for node in self.endpoints:
            try:
                outer = self._outer_container(node)
                if outer.status == "paused":
                    outer.unpause()
                if self.node_netns(node, ["iptables", "-w", "-S", NODE_CHAIN])[0] == 0:
                    for hook in ("INPUT", "OUTPUT"):
                        while self.node_netns(node, ["iptables", "-w", "-D", hook, "-j", NODE_CHAIN])[0] == 0:
                            pass
                    self.node_netns(node, ["iptables", "-w", "-F", NODE_CHAIN])
                    self.node_netns(node, ["iptables", "-w", "-X", NODE_CHAIN])
            except NetbedError:
                continue

    def vanished(self) -> str:
        try:
            note = json.loads((self.run_dir / DOWN_FILE).read_text())
        except (OSError, ValueError):
            note = {}
        if note.get("project") == self.project:
            return f"the testbed {self.project} was torn down from outside during the run (by {note.get('by', '?')})"
        return ""

    @property
    def pcap(self) -> Path:
        """The nodes' recordings merged: made afresh while the testbed is up, the annotated pcapng after `down`."""
        done = recording.finished(self.run_dir / "capture.pcap")
        if done.suffix == ".pcapng" or not self.recorders:
            return done
        self._merge()
        return self.run_dir / "capture.pcap"

    def _merge(self) -> recording.MergeStats:
        return recording.merge({node: rec.path for node, rec in self.recorders.items()},
                               self.run_dir / "capture.pcap")

    def record(self, path: Path, max_frames: int) -> recording.Capture:
        raise TestbedError("an extra capture of a testbed across a Swarm is not made yet: its capture.pcap "
                           "holds every node's recording")

    def stop_recordings(self) -> list[CaptureStats | None]:
        return []

    # --- nodes ------------------------------------------------------------------------------------

    def nodes(self) -> dict[str, list[str]]:
        return {node: sorted(h for h, n in self.placement.items() if n == node) for node in self.endpoints}

    def node_of(self, host: str) -> str:
        self.host(host)
        return self.placement[host]

    def node_netns(self, node: str, argv: list[str]) -> tuple[int, str]:
        """A network command in the node's own namespace (where its VXLAN traffic comes and goes), from a
        helper beside the node on the machine's engine; refused if that namespace is the machine's."""
        container = self._node_container(node)
        outer = engine.client()
        if not self._outer_ns:
            self._outer_ns = machine_netns(outer, self.labels)
        try:
            return netns_helper(outer, container, argv, self._outer_ns, self.labels, f"node {node}")
        except docker.errors.APIError as exc:
            raise TestbedError(f"node {node}: {exc.explanation or exc}") from None

    def pause_node(self, node: str) -> None:
        """Freeze the node's engine (its container on the machine); its hosts are frozen through it first."""
        self._outer_container(node).pause()

    def unpause_node(self, node: str) -> None:
        self._outer_container(node).unpause()

    def _outer_container(self, node: str):
        try:
            return engine.client().containers.get(self._node_container(node))
        except docker.errors.APIError as exc:
            raise TestbedError(f"node {node}: {exc.explanation or exc}") from None

    def _node_container(self, node: str) -> str:
        """The node's container on the machine's engine: node faults act only on nodes netbed made."""
        if node not in self.endpoints:
            raise TestbedError(f"no node {node!r} in {self.project}: its nodes are {', '.join(self.endpoints)}")
        if not self.cluster:
            raise TestbedError(f"node {node} is an engine of yours, not a node netbed made: node faults act only "
                               "on the nodes of a `netbed cluster` (netbed never changes a machine's own network)")
        from netbed.backend.swarm import cluster
        return cluster.attach(self.cluster, swarm=False).node(node).container

    # --- where the hosts run ---------------------------------------------------------------

    def _node_engine(self, node: str) -> docker.DockerClient:
        if node not in self._clients:
            try:
                cli = docker.DockerClient(base_url=self.endpoints[node], timeout=120,
                                          use_ssh_client=self.endpoints[node].startswith("ssh://"))
                cli.ping()
            except docker.errors.DockerException as exc:
                raise engine.EngineError(f"the engine of node {node} ({self.endpoints[node]}) does not answer: "
                                         f"{str(exc).splitlines()[0][:200]}") from None
            self._clients[node] = cli
        return self._clients[node]

    def _engine(self, host: str | None = None) -> docker.DockerClient:
        node = self.placement.get(host) if host else None
        return self._node_engine(node or next(iter(self.endpoints)))

    def _docker_command(self, host: str) -> list[str]:
        return ["docker", "-H", self.endpoints[self.placement[host]]]

    def _beside_from_machine(self) -> bool:
        """On the nodes of a `netbed cluster` (containers of this machine's engine) netbed's tools enter the
        hosts' namespaces from this machine, as on one engine; a node of the user's may be another machine."""
        return bool(self.cluster) and engine.runner_is_root_on_engine_host()

    def _machine_pid(self, container: Any) -> int:
        """The host's init as this machine numbers it: the process in the host's control group whose pid in
        the host's own namespace is 1 (the node's engine gives its pid in the node's namespace)."""
        if not container.attrs["State"]["Pid"]:
            return 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if container.id not in (entry / "cgroup").read_text():
                    continue
                status = (entry / "status").read_text()
            except OSError:
                continue  # gone meanwhile
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if nspid and nspid[-1] == "1":
                return int(entry.name)
        raise TestbedError(f"the init of container {container.id[:12]} is not among this machine's processes")

    def _compose_on(self, node: str, args: list[str], check: bool = True):
        override = self.run_dir / "netbed.override.json"
        return engine.compose(args, project=self.project,
                              files=[self.compose_file] + ([override] if override.is_file() else []),
                              env={**self.env, "DOCKER_HOST": self.endpoints[node]}, cwd=self.compose_file.parent,
                              check=check)

    def _discover_across(self, names: list[str]) -> dict[str, Any]:
        hosts = {}
        for node in self.endpoints:
            found = self._discover_hosts(self._node_engine(node), names)
            hosts.update({name: host for name, host in found.items() if self.placement.get(name) == node})
        missing = sorted(set(names) - set(hosts))
        if missing:
            raise TestbedError(f"hosts {', '.join(missing)} did not come up on their nodes")
        return hosts

