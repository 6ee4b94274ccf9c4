"""Recording a testbed that spans a Swarm's nodes: one tcpdump per node on the overlay's bridge, streamed here.

On each node a recorder container joins the testbed's overlay network, so
the node has the overlay's namespace (and its bridge, br0) before any host
starts there. Sharing the node's PID namespace, it enters that namespace
through the node's own `/proc/1/root/run/docker/netns/1-<network id>` and
records br0: every frame any host of that node sends or receives, once. Its
pcap comes to the runner over the engine's attach stream, so the node may be
another machine, copied into a file by a follower process of its own
(`python -m netbed.backend.swarm.recorder`), so that a testbed brought up
by `netbed up` keeps recording after that command returns;
`netbed.capture.merge` makes the per-node files one capture,
a frame between two nodes kept once. The recorders run on the nodes' clocks:
on one machine that is one clock; across machines they must agree (NTP)
within `netbed.capture.MERGE_WINDOW_NS`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.types import EndpointConfig

from netbed.capture import CaptureError, CaptureStats, parse_stats
from netbed.backend.namespaces import alive
from netbed.labels import CAPTURE_ROLE, NODE, ROLE
from netbed.observe import WaitTimeout, wait_for

LISTENING_DEADLINE = 30.0
FOLLOWER_DEADLINE = 15.0   # the follower attached; after a stop, the follower gone with the last bytes
ATTACHED = b"attached\n"
# $1: the overlay's namespace as the node's init sees it; it appears once a container joined the overlay there
SCRIPT = """
ns=$1; i=0
while [ ! -e "$ns" ]; do
  i=$((i+1)); [ $i -gt 200 ] && { echo "netbed-recorder: no namespace $ns on this node" >&2; exit 3; }
  sleep 0.1
done
exec nsenter --net="$ns" tcpdump -i br0 -U --immediate-mode -n -Z root -s 262144 -B 32768 -w -
"""


@dataclass(frozen=True)
class Recorder:
    """One node's recording: its container there, the file it streams into here, the process that writes it."""

    node: str
    container_id: str
    path: Path
    follower: int  # the pid of the process copying the stream into `path`


def start(cli: docker.DockerClient, endpoint: str, node: str, network: str, network_id: str, address: str,
          path: Path, labels: dict[str, str], image: str) -> Recorder:
    """Record the overlay `network` on `node` into `path` (made new); return once tcpdump listens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    container = follower = None
    try:
        container = cli.containers.create(
            image, ["sh", "-c", SCRIPT, "recorder", f"/proc/1/root/run/docker/netns/1-{network_id[:10]}"],
            pid_mode="host", cap_drop=["ALL"], cap_add=["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "NET_RAW", "SETUID", "SETGID"],
            security_opt=["apparmor=unconfined"], network=network,
            networking_config={network: EndpointConfig(cli.api._version, ipv4_address=address)},
            sysctls={"net.ipv6.conf.all.disable_ipv6": "1"}, read_only=True,
            labels={**labels, ROLE: CAPTURE_ROLE, NODE: node})
        follower = _follow(endpoint, container.id, path)  # attached before the start: nothing is missed
        container.start()
        _await_listening(container, node)
    except BaseException as exc:
        if follower is not None:
            follower.kill()
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        if isinstance(exc, docker.errors.APIError):
            raise CaptureError(f"could not start the recorder on node {node}: {exc.explanation or exc}") from None
        raise
    return Recorder(node, container.id, path, follower.pid)


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
        _await_gone(recorder.follower)
    if died:
        last = (logs.strip().splitlines() or ["no output"])[-1]
        raise CaptureError(f"the recording on node {recorder.node} stopped before the run ended: {last}")
    return parse_stats(logs)


def _follow(endpoint: str, container_id: str, path: Path) -> subprocess.Popen[bytes]:
    """Start the follower, in a session of its own (it outlives `netbed up`); return once it is attached."""
    follower = subprocess.Popen([sys.executable, "-m", "netbed.backend.swarm.recorder", endpoint, container_id,
                                 str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    assert follower.stdout is not None  # stdout=PIPE
    said = follower.stdout.readline()  # the follower's one line; it never writes to stdout again
    follower.stdout.close()
    if said != ATTACHED:
        follower.kill()
        raise CaptureError(f"the follower of the recording into {path} could not attach to it")
    return follower


def _await_gone(pid: int) -> None:
    """Wait for the follower to write its last bytes and exit (it is not this process's child after `up`);
    one still there after FOLLOWER_DEADLINE ends with its stream, whatever it has written stays."""
    def gone() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is this process's child
        return not alive(pid)

    with contextlib.suppress(WaitTimeout):
        wait_for(gone, timeout=FOLLOWER_DEADLINE, what=f"the recording's follower (pid {pid}) to end")


def main(argv: list[str]) -> int:
    """The follower: copy a recorder's stdout (its pcap) into a file, chunk by chunk, until it ends."""
    endpoint, container_id, path = argv
    cli = docker.DockerClient(base_url=endpoint, timeout=None, use_ssh_client=endpoint.startswith("ssh://"))
    stream = cli.api.attach(container_id, stdout=True, stderr=False, stream=True)
    with open(path, "wb") as sink:
        os.write(1, ATTACHED)
        os.close(1)
        try:
            for chunk in stream:
                sink.write(chunk)
                sink.flush()  # the file is read whole as it grows
        except Exception:  # the node's engine went away (a node crash): what arrived is kept
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


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
