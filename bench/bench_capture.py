"""No frame lost: echo connections as fast as one client host can, captured frames vs the kernel's count.

    .venv/bin/python bench/bench_capture.py [--connections 2000]

The client host opens, uses (one line echoed) and closes N connections one
after another. Then the frames in the pcap are compared with what the
kernel counted on the bridge: every frame the hosts sent into it (rx of the
bridge's ports) plus every frame the bridge sent itself (its tx).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from netbed.backend.compose import engine
from netbed.observe import wait_for
from netbed.tcp import read_frames
from netbed.backend.compose.testbed import Testbed

CLIENT_LOOP = """
import socket, sys, time
n, host = int(sys.argv[1]), sys.argv[2]
start = time.monotonic()
for i in range(n):
    with socket.create_connection((host, 9877)) as s:
        s.sendall(b"ping\\n")
        s.recv(16)
print(n / (time.monotonic() - start))
"""


def bridge_frames(bridge: str) -> int:
    """Frames into the bridge from its ports, plus the bridge's own, as the kernel counts them."""
    script = (f"import glob\n"
              f"ports = glob.glob('/sys/class/net/{bridge}/brif/*')\n"
              f"rx = sum(int(open(f'/sys/class/net/{{p.rsplit(\"/\", 1)[1]}}/statistics/rx_packets').read()) for p in ports)\n"
              f"print(rx + int(open('/sys/class/net/{bridge}/statistics/tx_packets').read()))")
    out = engine.client().containers.run(engine.IMAGE, ["python3", "-c", script], network_mode="host", remove=True)
    return int(out.decode().strip())


def pcap_frames(path) -> int:
    return sum(1 for _ in read_frames(str(path), allow_truncated=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    n = parser.parse_args().connections
    with tempfile.TemporaryDirectory() as tmp:
        with Testbed.up(run_dir=tmp, services={"client": {"command": ["sleep", "infinity"]}}) as bed:
            started = time.monotonic()
            done = bed.exec("client", ["python3", "-c", CLIENT_LOOP, str(n), bed.host("server").ip])
            took = time.monotonic() - started
            if done.exit_code != 0:
                raise SystemExit(f"the client loop failed: {done.stderr.strip()}")
            rate = float(done.stdout.strip())

            def counts() -> tuple[int, int]:
                return bridge_frames(bed.bridge), pcap_frames(bed.pcap)

            kernel, captured = wait_for(counts, lambda kc: kc[0] == kc[1], timeout=20,
                                        what="the capture to hold every frame the kernel counted")
        print(f"connections:      {n} in {took:.1f} s ({rate:.0f} connections/s from one client host)")
        print(f"kernel counted:   {kernel} frames on bridge {bed.bridge}")
        print(f"capture holds:    {captured} frames")
        print(f"tcpdump says:     {bed.capture_stats}")
        print(f"lost:             {kernel - captured}")


if __name__ == "__main__":
    main()
