"""The seam between netbed and an engine: what faults, observation, scenarios and front ends ask of one.

Everything above this package (faults, observe, scenarios, the CLI, the
pytest plugin, grading) works on a `Backend`: a running testbed, its hosts,
the raw verbs on them (freeze, signal, stop, start), commands in them or
beside them in their namespaces, helpers sharing a host's network, and its
recordings. They never import an engine's client library. Here live the
interface, the small values it hands out, and the entry points the front ends
call (`up`, `attach`, `leftovers`, `clean`, `diagnose`, `fix`; for clusters of
engines `cluster_up`, `cluster_down`, `cluster_status`, `cluster_diagnose`).

One package per backend beside this module, as Kathara's managers are:
`compose` (a Compose project on one Docker Engine) is the first; a Swarm of
engines is the second. `guard` and `namespaces` are the machine-side pieces a
backend on the runner's own machine uses: what it refuses to touch, and
netbed's own tools run inside a host's namespaces.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from netbed.capture import Capture, CaptureStats
from netbed.errors import NetbedError
from netbed.labels import KEPT_OWNERS
from netbed.progress import Reporter, silent



NODE_CHAIN = "NETBED-NODE"
"""The iptables chain in a cluster node's own namespace that cuts it off (the node faults'); a testbed's
`down` removes it, so no node stays cut after the testbed that cut it."""


class TestbedError(NetbedError):
    """A testbed cannot be made, found or acted on; the message says why and what to do."""

    __test__ = False


class EngineError(NetbedError):
    """Something about the engine is wrong; the message says what and what to do."""


@dataclass(frozen=True)
class Finding:
    """One line of `netbed doctor`: a piece, whether it is there, and what to do if not."""

    name: str
    ok: bool
    detail: str
    remedy: str = ""


@dataclass(frozen=True)
class Host:
    """One host of the testbed: a Compose service and the container that runs it."""

    name: str
    container_id: str
    ip: str
    mac: str
    gateways: tuple[str, ...] = ()  # the bridge's own addresses on the machine's side: never to be reached


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


def _no_cleanup() -> None:
    pass


@dataclass(frozen=True)
class Launch:
    """The local command that starts a program on a host (through netbed.apps.ptyrun), the descriptors it
    inherits, what to release once it runs, and how the host numbers the process ptyrun reports."""

    command: list[str]
    pass_fds: tuple[int, ...] = ()
    release: Callable[[], None] = _no_cleanup
    pid_in_host: Callable[[int], int | None] = lambda pid: pid


@dataclass(frozen=True)
class Leftover:
    """Something netbed made on an engine (a container, network or volume) and the run it belongs to."""

    kind: str      # container, network, volume
    name: str
    project: str
    owner: str
    started: str

    @property
    def kept(self) -> bool:
        return self.owner.partition(":")[2] in KEPT_OWNERS


@runtime_checkable
class Backend(Protocol):
    project: str
    run_dir: Path
    hosts: dict[str, Host]
    labels: dict[str, str]
    bridge: str         # where the testbed's traffic is recorded (shown to the user)
    capture_error: str  # after down(): why the recording is incomplete, if it is

    # what it is
    def host(self, name: str) -> Host: ...
    def names(self) -> dict[str, str]: ...
    @property
    def pcap(self) -> Path: ...
    def note(self, text: str) -> None: ...
    def vanished(self) -> str: ...
    def down(self, hurry: bool = False) -> None: ...  # hurry: an interrupted run's, no orderly stop
    def __enter__(self) -> Backend: ...
    def __exit__(self, *exc_info: object) -> None: ...

    # a host's state and the raw verbs on it
    def status(self, host: str) -> str: ...
    def own(self, host: str) -> None: ...  # refuses a host whose namespaces are not its own
    def pause(self, host: str) -> None: ...
    def unpause(self, host: str) -> None: ...
    def signal(self, host: str, name: str = "SIGKILL") -> None: ...
    def stop(self, host: str, timeout: float = 1) -> None: ...
    def start(self, host: str) -> None: ...
    def address(self, host: str) -> tuple[str, str]: ...
    def isolate(self, host: str) -> None: ...
    def has_netem(self) -> bool: ...

    # commands: in the host, beside it (netbed's tools in its namespaces), in its network namespace
    def exec(self, host: str, argv: list[str]) -> ExecResult: ...
    def beside(self, host: str, argv: list[str]) -> ExecResult: ...
    def launch(self, host: str, argv: list[str]) -> Launch: ...
    def netns(self, host: str, argv: list[str]) -> tuple[int, str]: ...
    def logs(self, host: str) -> str: ...
    def enter_hint(self, host: str) -> str: ...

    # helpers of netbed's that share a host's network namespace (the delay shaper)
    def companion(self, host: str, role: str, argv: list[str], cap_add: tuple[str, ...] = ...) -> str: ...
    def companion_state(self, host: str, helper_id: str) -> tuple[str, str]: ...
    def remove_companions(self, host: str, role: str) -> None: ...

    # the nodes of a testbed across several engines ({} and "" on one engine: node faults refuse it)
    def nodes(self) -> dict[str, list[str]]: ...   # node -> its hosts
    def node_of(self, host: str) -> str: ...
    def node_netns(self, node: str, argv: list[str]) -> tuple[int, str]: ...
    def pause_node(self, node: str) -> None: ...
    def unpause_node(self, node: str) -> None: ...

    # recordings besides the testbed's own (`netbed capture start/stop`)
    def record(self, path: Path, max_frames: int) -> Capture: ...
    def stop_recordings(self) -> list[CaptureStats | None]: ...


# --- the entry points the front ends call ------------------------------------------------------


def up(compose_file: Path | str | None = None, project: str | None = None, run_dir: Path | str | None = None,
       services: dict[str, dict[str, Any]] | None = None, report: Reporter = silent, owner: str | None = None,
       cancel: threading.Event | None = None, every_host: dict[str, Any] | None = None,
       cluster: str | None = None, nodes: dict[str, str] | None = None,
       place: dict[str, str] | None = None) -> Backend:
    """Bring a fresh testbed up from a compose file (netbed's default topology without one): on the engine
    DOCKER_HOST names; or across the nodes of `cluster` (`netbed cluster up`); or across `nodes`, the
    engines of a Swarm of the user's own machines (name -> Docker endpoint, see `parse_nodes`). With
    nodes, each host runs on the node `place` gives it, the others spread over the nodes in turn."""
    if cluster is None and nodes is None:
        if place:
            raise TestbedError("placing hosts on nodes needs a cluster or nodes: give --cluster or --nodes")
        from netbed.backend.compose import Testbed
        return Testbed.up(compose_file, project=project, run_dir=run_dir, services=services, report=report,
                          owner=owner, cancel=cancel, every_host=every_host)
    if cluster is not None and nodes is not None:
        raise TestbedError("give a cluster or nodes, not both")
    from netbed.backend.swarm.testbed import SwarmTestbed
    if cluster is not None:
        from netbed.backend.swarm import cluster as clusters
        nodes = {node.name: node.endpoint for node in clusters.attach(cluster, swarm=False).nodes}
    return SwarmTestbed.up_across(nodes or {}, compose_file, project=project, run_dir=run_dir, services=services,
                                  place=place, report=report, owner=owner, cancel=cancel, cluster=cluster or "",
                                  every_host=every_host)


def parse_nodes(text: str) -> dict[str, str]:
    """--nodes: comma-separated engines, each NAME=ENDPOINT or ENDPOINT (then named node1, node2, ...); an
    endpoint is a Docker endpoint (unix://, tcp://, ssh://) or the name of a Docker context. The first must be
    a manager of the Swarm."""
    nodes: dict[str, str] = {}
    for index, item in enumerate((part.strip() for part in text.split(",")), 1):
        name, sep, endpoint = item.rpartition("=")
        name, endpoint = (name.strip(), endpoint.strip()) if sep else (f"node{index}", item)
        if not endpoint or not name or name in nodes:
            raise TestbedError(f"--nodes {text!r}: give NAME=ENDPOINT or ENDPOINT, comma-separated, each name once")
        nodes[name] = endpoint if "://" in endpoint else _context_endpoint(endpoint)
    return nodes


def _context_endpoint(context: str) -> str:
    import json
    import subprocess
    try:
        done = subprocess.run(["docker", "context", "inspect", context], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        host = json.loads(done.stdout)[0]["Endpoints"]["docker"]["Host"] if done.returncode == 0 else ""
    except (OSError, ValueError, KeyError, IndexError, subprocess.TimeoutExpired):
        host = ""
    if not host:
        raise TestbedError(f"{context!r} is no Docker endpoint (unix://, tcp://, ssh://) nor a Docker context "
                           "(`docker context ls`)")
    return str(host)


def attach(project: str | None = None, compose_file: Path | str | None = None) -> Backend:
    """The testbed an earlier `up` made, by project name or compose file (on one engine, or on a cluster)."""
    from netbed.backend.compose import Testbed
    try:
        return Testbed.attach(project, compose_file)
    except TestbedError:
        if project is None:
            raise
        from netbed.backend.swarm import cluster as clusters
        if not clusters.clusters():
            raise
        from netbed.backend.swarm.testbed import SwarmTestbed
        return SwarmTestbed.attach_across(project)


def leftovers(older_than_s: float | None = None, owner: str | None = None, kept: bool = False) -> list[Leftover]:
    """What runs that are over left on the engine (see the compose backend's `leftovers`)."""
    from netbed.backend.compose import testbed
    return testbed.leftovers(older_than_s, owner, kept)


def clean(items: list[Leftover]) -> None:
    from netbed.backend.compose import testbed
    testbed.clean(items)


def answers() -> bool:
    """Whether an engine answers right now."""
    from netbed.backend.compose import engine
    return engine.answers()


def diagnose() -> list[Finding]:
    """`netbed doctor`: every piece the backend needs, there or not, with what to do."""
    from netbed.backend.compose import engine
    return engine.diagnose()


def fix(report: Reporter = silent) -> list[Finding]:
    """`netbed doctor --fix`: set up what is missing, step by step, then diagnose again."""
    from netbed.backend.compose import engine
    return engine.fix(report)


def default_compose_file() -> Path:
    from netbed.backend.compose import engine
    return engine.default_compose_file()


# --- clusters: several engines on one machine (`netbed cluster`, the swarm package) ---------------

CLUSTER_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
MAX_NODES = 9


def check_cluster_name(name: str) -> str:
    """A cluster's name: it names containers, a network, volumes, cgroups and a folder, so it is kept short."""
    if not CLUSTER_NAME.fullmatch(name) or name.endswith("-"):
        raise TestbedError(f"cluster name {name!r} is not valid: use 1 to 30 lowercase letters, digits and '-', "
                           "starting with a letter")
    return name


def check_node_count(n: int) -> int:
    if not 1 <= n <= MAX_NODES:
        raise TestbedError(f"a cluster has 1 to {MAX_NODES} nodes, not {n}")
    return n


def cluster_up(n: int, name: str, report: Reporter = silent, cancel: threading.Event | None = None):
    """`netbed cluster up N`: an N-node Swarm of engine containers on this machine (see netbed.backend.swarm)."""
    from netbed.backend.swarm import cluster
    return cluster.up(n, name, report=report, cancel=cancel)


def cluster_down(name: str, report: Reporter = silent) -> list[str]:
    from netbed.backend.swarm import cluster
    return cluster.down(name, report=report)


def cluster_load_image(name: str, report: Reporter = silent) -> None:
    """Rebuild netbed's host image if stale, and load it into every node of the cluster that lacks it."""
    from netbed.backend.swarm import cluster
    cluster.refresh_image(name, report=report)


def cluster_status(name: str):
    from netbed.backend.swarm import cluster
    return cluster.status(name)


def cluster_diagnose(name: str) -> list[Finding]:
    """`netbed doctor --cluster NAME`: every node's engine, Swarm state, the ports Swarm needs, the host image."""
    from netbed.backend.swarm import doctor
    return doctor.diagnose(name)
