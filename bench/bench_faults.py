"""How long each fault takes to be in effect, and a testbed's up and down (median of 5).

    .venv/bin/python bench/bench_faults.py [--runs 5]

Each figure is the wall time of the API call, which returns only once the
fault is in effect (checked in the host, not slept on).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from netbed import faults
from netbed.backend.compose.testbed import Testbed

IDLE = {"client": {"command": ["sleep", "infinity"]}}


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    figures: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            start = time.perf_counter()
            bed = Testbed.up(run_dir=f"{tmp}/{run}", services=IDLE)
            note("up", time.perf_counter() - start)
            try:
                note("pause", timed(faults.pause, bed, "server"))
                note("unpause", timed(faults.unpause, bed, "server"))
                note("partition", timed(faults.partition, bed, "client", "server"))
                note("heal (partition)", timed(faults.heal, bed))
                note("impair --loss 10", timed(faults.impair, bed, "client", faults.Impairment(loss_pct=10)))
                note("heal (impair)", timed(faults.heal, bed))
                note("impair --delay 50", timed(faults.impair, bed, "client", faults.Impairment(delay_ms=50)))
                note("heal (delay)", timed(faults.heal, bed))
                note("crash", timed(faults.crash, bed, "server"))
                note("reboot (from crash)", timed(faults.reboot, bed, "server"))
                note("shutdown", timed(faults.shutdown, bed, "server", grace=2))
                note("reboot (from stopped)", timed(faults.reboot, bed, "server"))
                note("kill", timed(faults.kill, bed, "server"))
            finally:
                note("down", timed(bed.down))
            print(f"run {run + 1}/{runs} done", flush=True)
    print(f"\n{'verb':24} {'median s':>9} {'min s':>7} {'max s':>7}   (n={runs})")
    for name, values in figures.items():
        print(f"{name:24} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")


if __name__ == "__main__":
    main()
