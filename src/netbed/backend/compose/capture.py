"""Recording a testbed's bridge into a pcap file, from a container of its own.

The capture container shares the engine host's network namespace, so it sees
the bridge itself: crashing, rebooting or partitioning any host never stops
it, and it works wherever the engine runs, not only where the runner is root.
tcpdump writes with -U, so the file is a valid pcap at every moment, also
after SIGKILL.

Every capture is bounded and none outlives its testbed: tcpdump stops at a
frame limit (`-c`, NETBED_CAPTURE_MAX_PACKETS, 1,000,000 by default), and a
testbed's bridge disappearing ends it (tcpdump: "The interface
disappeared"), and, for a testbed owned by a process, a watchdog beside it in
the container ends it when that process is gone (its attach to the
container's stdin closes). Stopping early is said: `stop()` raises a
CaptureError naming the limit or the reason. The container gets the one file
it writes, never a folder, and an existing file is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import docker
import docker.errors

from netbed.backend.compose import engine
from netbed.backend.compose.engine import IMAGE
from netbed.capture import (MAX_FRAMES, MAX_FRAMES_CEILING, MAX_FRAMES_ENV, Capture, CaptureError,
                            CaptureLimitReached, CaptureStats, parse_stats)
from netbed.labels import CAPTURE, CAPTURE_LIMIT, CAPTURE_PATH, CAPTURE_ROLE, PROJECT, ROLE
from netbed.observe import WaitTimeout, wait_for
from netbed.tcp import read_frames

LISTENING_DEADLINE = 20.0
BUFFER_KIB = 32768  # kernel capture buffer: large enough for bursts of thousands of connections
LABEL_PATH, LABEL_LIMIT = CAPTURE_PATH, CAPTURE_LIMIT
WATCHDOG = "netbed-capture:"  # how the watchdog's words start in the container's log
# sh -c SCRIPT capture LIFELINE TCPDUMP-ARGS...: the watchdog is a child of the shell, which then
# becomes tcpdump (exec), so `kill $$` reaches tcpdump, and tcpdump gets docker's SIGTERM directly.
# (When the bridge disappears, tcpdump ends by itself: "The interface disappeared".)
SCRIPT = """
lifeline=$1; shift
if [ "$lifeline" = 1 ]; then
  exec 3<&0
  ( cat <&3 >/dev/null; echo "%(w)s the testbed's owner process is gone" >&2; kill -TERM $$ ) &
  exec 3<&-
fi
exec tcpdump "$@"
""" % {"w": WATCHDOG}


def start(cli: docker.DockerClient, bridge: str, path: Path, labels: dict[str, str],
          image: str = IMAGE, max_frames: int = MAX_FRAMES, overwrite: bool = False,
          lifeline: bool = False) -> Capture:
    """Start recording `bridge` into `path`; return once tcpdump is listening (so no frame is missed).

    `path` must be new unless `overwrite`. With `lifeline`, the recording
    also stops when this process is gone (keep the returned Capture). On
    failure nothing is left: no container, no file.
    """
    if not 1 <= max_frames <= MAX_FRAMES_CEILING:
        raise CaptureError(f"a capture's limit is 1 to {MAX_FRAMES_CEILING} frames, not {max_frames}")
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the container gets this one file, made here (a bind mount of a missing file would make a folder)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | (os.O_TRUNC if overwrite else os.O_EXCL), 0o644))
    except FileExistsError:
        raise CaptureError(f"{path} exists: netbed does not overwrite files; choose another name or remove it") from None
    inside = f"/captures/{path.name}"
    argv = ["sh", "-c", SCRIPT, "capture", "1" if lifeline else "0",
            "-i", bridge, "-U", "--immediate-mode", "-Z", "root", "-n", "-B", str(BUFFER_KIB),
            "-c", str(max_frames), "-w", inside]
    container = attached = None
    try:
        container = cli.containers.create(
            image, argv, network_mode="host", cap_drop=["ALL"], cap_add=["NET_RAW", "NET_ADMIN", "SETUID", "SETGID"],
            volumes={str(path): {"bind": inside, "mode": "rw"}}, read_only=True, stdin_open=lifeline,
            labels={**labels, ROLE: CAPTURE_ROLE, LABEL_PATH: str(path), LABEL_LIMIT: str(max_frames)},
            init=True)
        attached = _attach_stdin(cli, container.id) if lifeline else None
        container.start()
        _await_listening(container, bridge)
    except BaseException as exc:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        if attached is not None:
            attached.close()
        path.unlink(missing_ok=True)
        if isinstance(exc, docker.errors.ImageNotFound):
            raise CaptureError(f"image {image} is missing: run `netbed doctor --fix`") from None
        if isinstance(exc, docker.errors.APIError):
            raise CaptureError(f"could not start the capture on {bridge}: {exc.explanation}") from None
        raise
    return Capture(container.id, bridge, path, max_frames, attached)


def _await_listening(container, bridge: str) -> None:
    def seen() -> tuple[str, str]:
        container.reload()
        return container.status, container.logs().decode(errors="replace")

    try:
        _, logs = wait_for(seen, lambda s: "listening on" in s[1] or s[0] == "exited",
                           timeout=LISTENING_DEADLINE, what=f"tcpdump to listen on {bridge}")
    except WaitTimeout:
        raise CaptureError(f"tcpdump on {bridge} was not listening after {LISTENING_DEADLINE:.0f} s") from None
    if "listening on" not in logs:
        raise CaptureError(f"the capture on {bridge} exited: {(logs.strip().splitlines() or ['no output'])[-1]}")


def _attach_stdin(cli: docker.DockerClient, container_id: str):
    """Hold the container's stdin open from this process; the engine closes it when the process is gone."""
    return cli.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})


def stop(cli: docker.DockerClient, capture: Capture) -> CaptureStats | None:
    """Stop tcpdump (SIGTERM: it flushes and counts), remove its container, return its counts.

    If tcpdump had already ended (its frame limit, the bridge or the owner
    gone, a full disk), the recording is incomplete: that is raised as a
    CaptureError that says why (CaptureLimitReached for the limit).
    """
    try:
        container = cli.containers.get(capture.container_id)
        ended = container.status == "exited"
        died = ended and container.attrs["State"]["ExitCode"] != 0
        container.stop(timeout=5)
        logs = container.logs().decode(errors="replace")
    except docker.errors.APIError as exc:  # removed already, or being removed, by another `netbed down`
        if isinstance(exc, docker.errors.NotFound) or exc.status_code == 409:
            return None
        raise CaptureError(f"could not stop the capture on {capture.bridge}: {exc.explanation or exc}") from None
    engine.remove(cli, container.id)
    if capture.lifeline is not None:
        capture.lifeline.close()
    if died:  # tcpdump's own error, e.g. "pcap_loop: The interface disappeared" when the testbed was removed
        said = [line for line in logs.strip().splitlines() if "tcpdump:" in line and "listening on" not in line]
        last = (said or logs.strip().splitlines() or ["no output"])[-1]
        raise CaptureError(f"the capture stopped before the run ended, so {capture.path} is incomplete: {last}")
    stats = parse_stats(logs)
    if ended:  # tcpdump ended by itself: its frame limit, or a watchdog
        why = next((line.split(WATCHDOG, 1)[1].strip() for line in logs.splitlines() if WATCHDOG in line), "")
        if why:
            raise CaptureError(f"the capture stopped before the run ended ({why}), so {capture.path} is incomplete")
        raise CaptureLimitReached(f"the capture reached its limit of {capture.max_frames} frames, so "
                                  f"{capture.path} holds only the first {capture.max_frames} "
                                  f"(raise {MAX_FRAMES_ENV})")
    if stats is not None and capture.path.is_file():
        written = sum(1 for _ in read_frames(str(capture.path), allow_truncated=True))
        if written < stats.captured:
            free = shutil.disk_usage(capture.path.parent).free
            raise CaptureError(f"{capture.path} is incomplete: tcpdump captured {stats.captured} frames but the file "
                               f"holds {written} ({free // 1024} KiB free on its filesystem: full disk?)")
    return stats


def stop_extra(cli: docker.DockerClient, project: str) -> list[CaptureStats | None]:
    """Stop the captures started by `netbed capture start` on a testbed (not the testbed's own).

    All are stopped; then the first that ended early (its limit, a watchdog) is raised.
    """
    found = cli.containers.list(all=True, sparse=True, filters={"label": [f"{PROJECT}={project}",
                                                                          f"{CAPTURE}=extra"]})
    stats, errors = [], []
    for c in found:
        labels = c.attrs.get("Labels") or {}
        try:
            stats.append(stop(cli, Capture(c.id, "", Path(labels.get(LABEL_PATH, "")),
                                           int(labels.get(LABEL_LIMIT, MAX_FRAMES)))))
        except CaptureError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return stats
