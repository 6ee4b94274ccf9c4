"""Hosts brought up across a 3-node Swarm (`netbed cluster`), next to the same hosts on one engine.

    .venv/bin/python bench/bench_swarm.py [--hosts 100 240] [--nodes 3]

For each count: a compose file of that many idle hosts (netbed's image, one
network), brought up with `netbed.backend.up` on the machine's engine, then
across the cluster's nodes (spread in turn), each as a whole `netbed up`
would do it (capture or per-node recorders first, addresses, isolation);
prints the time to up and to down, and the cost per host. One /24 per
network bounds a testbed at 245 hosts on one engine (.10 to .254) and at
245 minus one per node on a cluster (the top octets are the recorders').
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from netbed import backend
from netbed.backend.swarm import cluster as clusters


def compose_file(folder: Path, hosts: int) -> Path:
    services = "\n".join(f"  h{i}:\n    image: netbed-host:latest\n    command: [sleep, infinity]\n"
                         f"    init: true\n    cap_drop: [ALL]\n    networks: [bed]" for i in range(hosts))
    path = folder / f"hosts-{hosts}.yaml"
    path.write_text(f"services:\n{services}\nnetworks:\n  bed: {{}}\n")
    return path


def timed_up_down(path: Path, run_dir: Path, cluster: str | None) -> tuple[float, float, int]:
    started = time.perf_counter()
    bed = backend.up(path, run_dir=run_dir, cluster=cluster)
    up = time.perf_counter() - started
    count = len(bed.hosts)
    started = time.perf_counter()
    bed.down()
    return up, time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 240])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    name = f"bench-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    clusters.up(args.nodes, name)
    print(f"cluster {name}: {args.nodes} nodes up in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for hosts in args.hosts:
                path = compose_file(Path(tmp), hosts)
                for where, cluster in (("one engine", None), (f"{args.nodes} nodes", name)):
                    up, down, count = timed_up_down(path, Path(tmp) / f"{hosts}-{cluster or 'one'}", cluster)
                    print(f"{count:4d} hosts on {where:10}: up {up:6.1f} s ({up / count * 1000:5.0f} ms/host), "
                          f"down {down:5.1f} s", flush=True)
    finally:
        clusters.down(name)


if __name__ == "__main__":
    main()
