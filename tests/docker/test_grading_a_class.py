"""`netbed grade` on a class of 20 submissions, as a teacher runs it: one table, every verdict right."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parents[1] / "programs"))
from classroom import make_class  # noqa: E402



def test_grading_twenty_submissions_gives_one_right_table(tmp_path):
    expected = make_class(tmp_path / "class", 20)
    done = subprocess.run([sys.executable, "-m", "netbed", "grade", "class", "--scenario", "normal-termination",
                           "--jobs", "2", "--out", "graded"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL, env={**os.environ})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "graded" / "grade.csv"))}
    assert set(rows) == set(expected)
    for name, (verdict, word) in expected.items():
        cell = rows[name]["normal-termination"]
        assert cell.split(":")[0] == verdict and word in cell, f"{name}: {cell}"
    page = (tmp_path / "graded" / "grade.html").read_text()
    links = re.findall(r"href='([^'#]+)#", page)
    assert links and all((tmp_path / "graded" / link).is_file() for link in links)
    assert "grading 20 submission(s)" in done.stderr
