"""The whole catalogue, two at a time: time per scenario, the part that is TCP timers, and the total.

    .venv/bin/python bench/bench_catalogue.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from netbed.scenarios import CATALOGUE, runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    jobs = parser.parse_args().jobs
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        results = runner.run_many(list(CATALOGUE), Path(tmp), jobs=jobs)
        total = time.monotonic() - started
    timers = {s.name: s.timers_s for s in CATALOGUE}
    print(f"{'scenario':22} {'section':10} {'verdict':8} {'time s':>7} {'TCP timers s':>13}")
    for r in results:
        print(f"{r.scenario:22} {r.section:10} {'pass' if r.passed else 'FAIL':8} {r.duration_s:7.1f} {timers[r.scenario]:13.1f}")
    print(f"{len(results)} scenarios, {sum(r.passed for r in results)} passed; "
          f"{total:.1f} s wall time with --jobs {jobs}; sum of scenario times {sum(r.duration_s for r in results):.1f} s, "
          f"of which TCP timers {sum(timers.values()):.1f} s")


if __name__ == "__main__":
    main()
