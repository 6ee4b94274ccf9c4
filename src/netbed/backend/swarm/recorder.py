"""Recording a testbed that spans a Swarm's nodes: one tcpdump per node on the overlay's bridge, streamed here.

On each node a recorder container joins the testbed's overlay network, so
the node has the overlay's namespace (and its bridge, br0) before any host
starts there. Sharing the node's PID namespace, it enters that namespace
through the node's own `/proc/1/root/run/docker/netns/1-<network id>` and
records br0: every frame any host of that node sends or receives, once. Its
pcap comes to the runner over the engine's attach stream, so the node may be
another machine; `netbed.capture.merge` makes the per-node files one capture,
a frame between two nodes kept once. The recorders run on the nodes' clocks:
on one machine that is one clock; across machines they must agree (NTP)
within `netbed.capture.MERGE_WINDOW_NS`.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.types import EndpointConfig

from netbed.capture import CaptureError, CaptureStats, parse_stats
from netbed.labels import CAPTURE_ROLE, ROLE
from netbed.observe import WaitTimeout, wait_for

LISTENING_DEADLINE = 30.0
NODE = "org.netbed.node"
# $1: the overlay's namespace as the node's init sees it; it appears once a container joined the overlay there
SCRIPT = """
ns=$1; i=0
while [ ! -e "$ns" ]; do
  i=$((i+1)); [ $i -gt 200 ] && { echo "netbed-recorder: no namespace $ns on this node" >&2; exit 3; }
  sleep 0.1
done
exec nsenter --net="$ns" tcpdump -i br0 -U -n -Z root -s 262144 -B 32768 -w -
"""


@dataclass
class Recorder:
    """One node's recording: its container there, the file it streams into here, the thread that writes it."""

    node: str
    container_id: str
    path: Path
    thread: threading.Thread = field(repr=False)


def start(cli: docker.DockerClient, node: str, network: str, network_id: str, address: str, path: Path,
          labels: dict[str, str], image: str) -> Recorder:
    """Record the overlay `network` on `node` into `path` (made new); return once tcpdump listens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = open(path, "wb")
    container = None
    try:
        container = cli.containers.create(
            image, ["sh", "-c", SCRIPT, "recorder", f"/proc/1/root/run/docker/netns/1-{network_id[:10]}"],
            pid_mode="host", cap_drop=["ALL"], cap_add=["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "NET_RAW", "SETUID", "SETGID"],
            security_opt=["apparmor=unconfined"], network=network,
            networking_config={network: EndpointConfig(cli.api._version, ipv4_address=address)},
            sysctls={"net.ipv6.conf.all.disable_ipv6": "1"}, read_only=True,
            labels={**labels, ROLE: CAPTURE_ROLE, NODE: node})
        stream = container.attach(stdout=True, stderr=False, stream=True)  # before start: nothing is missed
        thread = threading.Thread(target=_copy, args=(stream, sink), name=f"netbed-recorder-{node}", daemon=True)
        thread.start()
        container.start()
        _await_listening(container, node)
    except BaseException as exc:
        sink.close()
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        if isinstance(exc, docker.errors.APIError):
            raise CaptureError(f"could not start the recorder on node {node}: {exc.explanation or exc}") from None
        raise
    return Recorder(node, container.id, path, thread)


def stop(cli: docker.DockerClient, recorder: Recorder) -> CaptureStats | None:
    """Stop tcpdump (SIGTERM: it flushes and counts), wait for the last bytes here, remove its container."""
    try:
        container = cli.containers.get(recorder.container_id)
        died = container.status == "exited" and container.attrs["State"]["ExitCode"] != 0
        container.stop(timeout=5)
        logs = container.logs(stdout=False, stderr=True).decode(errors="replace")
        container.remove(force=True)
    except docker.errors.APIError as exc:
        if isinstance(exc, docker.errors.NotFound):
            return None
        raise CaptureError(f"could not stop the recorder on node {recorder.node}: {exc.explanation or exc}") from None
    finally:
        recorder.thread.join(timeout=10)
    if died:
        last = (logs.strip().splitlines() or ["no output"])[-1]
        raise CaptureError(f"the recording on node {recorder.node} stopped before the run ended: {last}")
    return parse_stats(logs)


def _copy(stream, sink) -> None:
    """The recorder's pcap, chunk by chunk, flushed so that the file is read whole as it grows."""
    try:
        for chunk in stream:
            sink.write(chunk)
            sink.flush()
    except Exception:  # the node's engine went away (a node crash): what arrived is kept
        pass
    finally:
        sink.close()


def _await_listening(container, node: str) -> None:
    def seen() -> tuple[str, str]:
        container.reload()
        return container.status, container.logs(stdout=False, stderr=True).decode(errors="replace")

    try:
        status, logs = wait_for(seen, lambda s: "listening on" in s[1] or s[0] == "exited",
                                timeout=LISTENING_DEADLINE, what=f"the recorder on node {node} to listen")
    except WaitTimeout:
        raise CaptureError(f"the recorder on node {node} was not listening after {LISTENING_DEADLINE:.0f} s") \
            from None
    if "listening on" not in logs:
        raise CaptureError(f"the recorder on node {node} exited: {(logs.strip().splitlines() or ['no output'])[-1]}")
