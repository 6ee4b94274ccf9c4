"""Flake hunt: the Docker suite again and again, serially and with 2 workers; two catalogues at once.

    .venv/bin/python bench/flakes.py [--serial 10] [--parallel 5] [--twins 1] [--keep /tmp/netbed-flakes]

Prints, for each kind of run, how many passed, and the slowest tests. A test
that fails once here is a defect to fix at its cause, never a retry to add:
so a failed run keeps its pytest output (KEEP/<run>.log) and its tests' temporary
folders (KEEP/<run>/, with each scenario's report.json, capture.pcap and logs).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "tests/docker", "-q", "-p", "no:cacheprovider", "--durations=8",
          "-m", "not engine_stop"]  # that one stops the engine: never beside other tests


def suite(extra: list[str], keep: Path) -> tuple[bool, float, str]:
    """One run of the suite; its output and temporary folders stay in KEEP only if it failed."""
    started = time.monotonic()
    done = subprocess.run(PYTEST + extra + ["--basetemp", str(keep)], cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - started
    if done.returncode == 0:
        shutil.rmtree(keep, ignore_errors=True)
    else:
        keep.with_suffix(".log").write_text(done.stdout + done.stderr)
    return done.returncode == 0, took, done.stdout


def twins(keep: Path) -> bool:
    """Two whole catalogues started at the same moment on one engine; their run folders stay if one failed."""
    folders = [keep / f"catalogue-{i}" for i in (1, 2)]
    runs = [subprocess.Popen([sys.executable, "-m", "netbed", "run", "--all", "--jobs", "2", "--out", str(folder)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for folder in folders]
    outs = [p.communicate()[0] for p in runs]
    for out in outs:
        print("   ", (out.strip().splitlines() or ["no output"])[-1])
    passed = all(p.returncode == 0 for p in runs)
    if passed:
        shutil.rmtree(keep, ignore_errors=True)
    else:
        for folder, out in zip(folders, outs):
            folder.with_suffix(".log").write_text(out)
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--twins", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=Path("/tmp/netbed-flakes"),
                        help="where failed runs leave their output and folders (emptied first)")
    args = parser.parse_args()
    shutil.rmtree(args.keep, ignore_errors=True)
    args.keep.mkdir(parents=True)
    # as `make test` does: the host image of this very code (a stale one is not a flake)
    subprocess.run([sys.executable, "-m", "netbed", "doctor", "--fix"], cwd=ROOT, check=True, capture_output=True)
    slow: Counter[str] = Counter()
    for label, count, extra in (("serial", args.serial, []), ("2 workers", args.parallel, ["-n", "2"])):
        passed = 0
        for i in range(count):
            keep = args.keep / f"{label.replace(' ', '-')}-{i + 1}"
            ok, took, out = suite(extra, keep)
            passed += ok
            failed = re.findall(r"^FAILED (\S+)", out, re.M)
            kept = "" if ok else f" (kept: {keep}.log, {keep}/)"
            print(f"{label} run {i + 1}/{count}: {'pass' if ok else 'FAIL'} in {took:.0f} s {' '.join(failed)}{kept}",
                  flush=True)
            for seconds, test in re.findall(r"^([\d.]+)s call\s+(\S+)", out, re.M):
                slow[test] = max(slow[test], float(seconds))
        print(f"{label}: {passed}/{count} passed")
    twins_passed = sum(twins(args.keep / f"twins-{i + 1}") for i in range(args.twins))
    print(f"two catalogues at once: {twins_passed}/{args.twins} passed")
    print("slowest tests (worst call time seen):")
    for test, seconds in slow.most_common(8):
        print(f"  {seconds:6.1f} s  {test}")


if __name__ == "__main__":
    main()
