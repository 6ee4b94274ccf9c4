"""How long `netbed grade` takes for a class, as the teacher runs it: a whole process, --jobs 2.

    .venv/bin/python bench/bench_grade.py [--students 20] [--jobs 2] [--scenario normal-termination ...]

Makes the class (tests/programs/classroom.py: right programs, the book's bugs, ones that cannot be
judged), runs `netbed grade` once, and prints the wall time, the time per run, and the table's counts.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "programs"))
from classroom import make_class  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--scenario", action="append", default=None)
    args = ap.parse_args()
    scenarios = args.scenario or ["normal-termination", "server-process-killed"]
    with tempfile.TemporaryDirectory(prefix="netbed-bench-grade-") as tmp:
        make_class(Path(tmp) / "class", args.students)
        argv = [sys.executable, "-m", "netbed", "grade", "class", "--jobs", str(args.jobs), "--out", "graded"]
        for s in scenarios:
            argv += ["--scenario", s]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        took = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"netbed grade failed ({done.returncode}): {done.stderr[-1000:]}")
        rows = list(csv.DictReader(open(Path(tmp) / "graded" / "grade.csv")))
    runs = args.students * len(scenarios)
    counts = {v: sum(int(r[v]) for r in rows) for v in ("passed", "failed", "not judged")}
    print(f"netbed grade: {args.students} submissions x {len(scenarios)} scenario(s) ({', '.join(scenarios)}), "
          f"--jobs {args.jobs}")
    print(f"  wall time {took:.1f} s, {took / runs:.2f} s per submission-scenario, "
          f"{took / args.students:.1f} s per submission")
    print(f"  table: {counts['passed']} passed, {counts['failed']} failed, {counts['not judged']} not judged")


if __name__ == "__main__":
    main()
