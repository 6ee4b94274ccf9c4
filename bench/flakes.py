"""Flake hunt: the Docker suite again and again, serially and with 2 workers; two catalogues at once.

    .venv/bin/python bench/flakes.py [--serial 10] [--parallel 5] [--twins 1]

Prints, for each kind of run, how many passed, and the slowest tests. A test
that fails once here is a defect to fix at its cause, never a retry to add.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "tests/docker", "-q", "-p", "no:cacheprovider", "--durations=8",
          "-m", "not engine_stop"]  # that one stops the engine: never beside other tests


def suite(extra: list[str]) -> tuple[bool, float, str]:
    started = time.monotonic()
    done = subprocess.run(PYTEST + extra, cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0, time.monotonic() - started, done.stdout


def twins() -> bool:
    """Two whole catalogues started at the same moment on one engine."""
    runs = [subprocess.Popen([sys.executable, "-m", "netbed", "run", "--all", "--jobs", "2", "--out", f"/tmp/netbed-twin-{i}"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in (1, 2)]
    outs = [p.communicate()[0] for p in runs]
    for out in outs:
        print("   ", (out.strip().splitlines() or ["no output"])[-1])
    return all(p.returncode == 0 for p in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--twins", type=int, default=1)
    args = parser.parse_args()
    slow: Counter[str] = Counter()
    for label, count, extra in (("serial", args.serial, []), ("2 workers", args.parallel, ["-n", "2"])):
        passed = 0
        for i in range(count):
            ok, took, out = suite(extra)
            passed += ok
            failed = re.findall(r"^FAILED (\S+)", out, re.M)
            print(f"{label} run {i + 1}/{count}: {'pass' if ok else 'FAIL'} in {took:.0f} s {' '.join(failed)}", flush=True)
            for seconds, test in re.findall(r"^([\d.]+)s call\s+(\S+)", out, re.M):
                slow[test] = max(slow[test], float(seconds))
        print(f"{label}: {passed}/{count} passed")
    twins_passed = sum(twins() for _ in range(args.twins))
    print(f"two catalogues at once: {twins_passed}/{args.twins} passed")
    print("slowest tests (worst call time seen):")
    for test, seconds in slow.most_common(8):
        print(f"  {seconds:6.1f} s  {test}")


if __name__ == "__main__":
    main()
