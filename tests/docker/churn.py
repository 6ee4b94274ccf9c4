"""Other testbeds coming and going: netbed-labelled containers made and removed until SIGTERM.

Run as a process of its own by test_churn.py: `python churn.py NETWORK RUN_DIR COUNT_FILE`.
Each container looks like a netbed host (netbed's labels, a compose project)
and sits on NETWORK, an internal network of the test's own; every few are
started, the rest only created, so the engine's list changes many times a
second. The number of containers removed is written to COUNT_FILE at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import docker
import docker.errors


def main() -> None:
    network, run_dir, count_file = sys.argv[1:4]
    cli = docker.from_env()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    removed = 0
    previous = None
    while not stop:
        project = f"netbed-churn-{uuid.uuid4().hex[:8]}"
        labels = {"org.netbed.project": project, "org.netbed.run-dir": run_dir,
                  "org.netbed.owner": f"{socket.gethostname()}:{os.getpid()}",
                  "org.netbed.started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "com.docker.compose.project": project, "com.docker.compose.service": "server"}
        box = cli.containers.create("netbed-host:latest", ["sleep", "infinity"], network=network,
                                    labels=labels, init=True)
        if removed % 3 == 0:
            gone_ok(box.start)
        if previous is not None:
            removed += gone_ok(lambda: previous.remove(force=True))
        previous = box
    if previous is not None:
        removed += gone_ok(lambda: previous.remove(force=True))
    Path(count_file).write_text(str(removed))


def gone_ok(act) -> bool:
    """Act on a container; another process's `netbed clean` may have removed it first."""
    try:
        act()
    except docker.errors.NotFound:
        return False
    return True


if __name__ == "__main__":
    main()
