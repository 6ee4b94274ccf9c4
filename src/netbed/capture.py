"""Recording a testbed's bridge into a pcap file, from a container of its own.

The capture container shares the engine host's network namespace, so it sees
the bridge itself: crashing, rebooting or partitioning any host never stops
it, and it works wherever the engine runs, not only where the runner is root.
tcpdump writes with -U, so the file is a valid pcap at every moment, also
after SIGKILL.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from netbed import engine
from netbed.engine import IMAGE
from netbed.errors import NetbedError
from netbed.observe import WaitTimeout, wait_for
from netbed.tcp import read_frames

LISTENING_DEADLINE = 20.0
BUFFER_KIB = 32768  # kernel capture buffer: large enough for bursts of thousands of connections


class CaptureError(NetbedError):
    pass


@dataclass(frozen=True)
class Capture:
    container_id: str
    bridge: str
    path: Path


@dataclass(frozen=True)
class CaptureStats:
    """tcpdump's own closing count: what it wrote and what the kernel dropped."""

    captured: int
    received: int
    dropped: int


def start(cli: docker.DockerClient, bridge: str, path: Path, labels: dict[str, str],
          image: str = IMAGE) -> Capture:
    """Start recording `bridge` into `path`; return once tcpdump is listening (so no frame is missed)."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        container = cli.containers.run(
            image,
            ["tcpdump", "-i", bridge, "-U", "--immediate-mode", "-Z", "root", "-n", "-B", str(BUFFER_KIB),
             "-w", f"/captures/{path.name}"],
            detach=True, network_mode="host", cap_drop=["ALL"], cap_add=["NET_RAW", "NET_ADMIN", "SETUID", "SETGID"],
            volumes={str(path.parent): {"bind": "/captures", "mode": "rw"}},
            labels={**labels, "org.netbed.role": "capture"}, init=True,
        )
    except docker.errors.ImageNotFound:
        raise CaptureError(f"image {image} is missing: run `netbed doctor --fix`") from None
    except docker.errors.APIError as exc:
        raise CaptureError(f"could not start the capture on {bridge}: {exc.explanation}") from None

    def seen() -> tuple[str, str]:
        container.reload()
        return container.status, container.logs().decode(errors="replace")

    try:
        status, logs = wait_for(seen, lambda s: "listening on" in s[1] or s[0] == "exited",
                                timeout=LISTENING_DEADLINE, what=f"tcpdump to listen on {bridge}")
    except WaitTimeout:
        container.remove(force=True)
        raise CaptureError(f"tcpdump on {bridge} was not listening after {LISTENING_DEADLINE:.0f} s") from None
    if "listening on" not in logs:
        container.remove(force=True)
        raise CaptureError(f"the capture on {bridge} exited: {(logs.strip().splitlines() or ['no output'])[-1]}")
    return Capture(container.id, bridge, path)


def stop(cli: docker.DockerClient, capture: Capture) -> CaptureStats | None:
    """Stop tcpdump (SIGTERM: it flushes and counts), remove its container, return its counts.

    If tcpdump had already died (the disk filled up, say), the recording is
    incomplete: that is raised as a CaptureError with tcpdump's last words.
    """
    try:
        container = cli.containers.get(capture.container_id)
        died = container.status == "exited" and container.attrs["State"]["ExitCode"] != 0
        container.stop(timeout=5)
        logs = container.logs().decode(errors="replace")
    except docker.errors.APIError as exc:  # removed already, or being removed, by another `netbed down`
        if isinstance(exc, docker.errors.NotFound) or exc.status_code == 409:
            return None
        raise CaptureError(f"could not stop the capture on {capture.bridge}: {exc.explanation or exc}") from None
    engine.remove(cli, container.id)
    if died:
        last = (logs.strip().splitlines() or ["no output"])[-1]
        raise CaptureError(f"the capture stopped before the run ended, so {capture.path} is incomplete: {last}")
    stats = parse_stats(logs)
    if stats is not None and capture.path.is_file():
        written = sum(1 for _ in read_frames(str(capture.path), allow_truncated=True))
        if written < stats.captured:
            free = shutil.disk_usage(capture.path.parent).free
            raise CaptureError(f"{capture.path} is incomplete: tcpdump captured {stats.captured} frames but the file "
                               f"holds {written} ({free // 1024} KiB free on its filesystem: full disk?)")
    return stats


def parse_stats(logs: str) -> CaptureStats | None:
    numbers = {}
    for key in ("captured", "received by filter", "dropped by kernel"):
        match = re.search(rf"(\d+) packets? {key}", logs)
        if match:
            numbers[key] = int(match.group(1))
    if len(numbers) < 3:
        return None
    return CaptureStats(numbers["captured"], numbers["received by filter"], numbers["dropped by kernel"])


def stop_extra(cli: docker.DockerClient, project: str) -> list[CaptureStats | None]:
    """Stop the captures started by `netbed capture start` on a testbed (not the testbed's own)."""
    found = engine.containers(cli, f"org.netbed.project={project}", "org.netbed.capture=extra", running_only=True)
    return [stop(cli, Capture(c.id, "", Path())) for c in found]
