"""Grading a class, without Docker: finding submissions, building them, and the table in CSV, JUnit and HTML."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netbed.grade import MOUNT, Cell, Row, find_submissions, prepare
from netbed.report.grades import write_csv, write_junit, write_page
from netbed.scenarios.lab import Verdict

C_SERVER = Path(__file__).parents[1] / "docker" / "c_programs" / "echo_server.c"


def make(root: Path, name: str, files: dict[str, str], executable: tuple[str, ...] = ()) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    for file in executable:
        (folder / file).chmod(0o755)
    return folder


def test_each_subfolder_is_a_submission_and_its_programs_are_found_by_name(tmp_path):
    make(tmp_path, "ann", {"server": "#!/bin/sh\n", "client.py": ""}, executable=("server",))
    make(tmp_path, "ben", {"server.c": "int main(void){return 0;}"})
    make(tmp_path, "cid", {"netbed.json": json.dumps({"server": "./bin/srv {port}", "client": "socat - TCP:{server_ip}:{port}"})})
    make(tmp_path, "dee", {"notes.txt": "my server is great"})
    make(tmp_path, "eve", {"netbed.json": json.dumps({"server": 3})})
    make(tmp_path, ".git", {"HEAD": ""})
    subs = {s.name: s for s in find_submissions(tmp_path)}
    assert list(subs) == ["ann", "ben", "cid", "dee", "eve"]
    assert subs["ann"].commands == {"server": f"{MOUNT}/server {{port}}",
                                    "client": f"python3 {MOUNT}/client.py {{server_ip}} {{port}}"}
    assert subs["ben"].commands == {"server": f"{MOUNT}/server {{port}}"} and "server" in subs["ben"].sources
    assert subs["cid"].commands == {"server": f"{MOUNT}/bin/srv {{port}}", "client": "socat - TCP:{server_ip}:{port}"}
    assert subs["dee"].problem.startswith("nothing to run")
    assert subs["eve"].problem.startswith("netbed.json:")


def test_a_folder_without_submissions_is_named_with_what_to_do(tmp_path):
    with pytest.raises(Exception, match="holds no submissions: put each one in a subfolder"):
        find_submissions(tmp_path)
    with pytest.raises(Exception, match="is not a folder"):
        find_submissions(tmp_path / "nope")


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler on this machine")
def test_c_sources_are_built_into_the_grading_folder_never_into_the_submission(tmp_path):
    good = make(tmp_path / "subs", "good", {"server.c": C_SERVER.read_text()})
    make(tmp_path / "subs", "bad", {"server.c": "int main( {"})
    subs = {s.name: s for s in find_submissions(tmp_path / "subs")}
    built_sub, mounted = prepare(subs["good"], tmp_path / "build")
    assert not built_sub.problem and mounted == tmp_path / "build" / "good"
    assert os.access(mounted / "server", os.X_OK) and not (good / "server").exists()
    bad, _ = prepare(subs["bad"], tmp_path / "build")
    assert bad.problem.startswith("server.c does not compile:") and "error" in bad.problem


ROWS = [
    Row("ann", {"normal-termination": Cell(Verdict.PASSED, "", "x"),
                "sigchld-multiple": Cell(Verdict.FAILED, "4 of 5 children left zombies", "y")}),
    Row("ben", {"normal-termination": Cell(Verdict.NOT_JUDGED, "the client printed nothing", "z"),
                "sigchld-multiple": Cell(Verdict.NOT_JUDGED, "nothing to run")}),
]
COLUMNS = ["normal-termination", "sigchld-multiple"]


def test_the_table_as_csv_has_a_row_per_submission_and_a_column_per_scenario(tmp_path):
    rows = list(csv.reader(open(write_csv(ROWS, COLUMNS, tmp_path / "grade.csv"))))
    assert rows[0] == ["submission", *COLUMNS, "passed", "failed", "not judged"]
    assert rows[1] == ["ann", "passed", "failed: 4 of 5 children left zombies", "1", "1", "0"]
    assert rows[2] == ["ben", "not judged: the client printed nothing", "not judged: nothing to run", "0", "0", "2"]


def test_the_table_as_junit_has_a_suite_per_submission(tmp_path):
    root = ET.parse(write_junit(ROWS, COLUMNS, tmp_path / "grade.xml")).getroot()
    suites = {s.get("name"): s for s in root}
    assert (suites["ann"].get("failures"), suites["ann"].get("skipped")) == ("1", "0")
    assert (suites["ben"].get("failures"), suites["ben"].get("skipped")) == ("0", "2")
    failed = [c for c in suites["ann"] if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["sigchld-multiple"]
    assert failed[0].find("failure").get("message") == "4 of 5 children left zombies"


def test_the_page_shows_every_cell_with_its_reason(tmp_path):
    page = write_page(ROWS, COLUMNS, tmp_path).read_text()
    assert page.count("data-verdict='passed'") == 1 and page.count("data-verdict='failed'") == 1
    assert page.count("data-verdict='not judged'") == 2
    assert "4 of 5 children left zombies" in page and "the client printed nothing" in page


def test_grade_refuses_bad_input_in_one_line_before_anything_is_made(tmp_path):
    def netbed(*args):
        return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    (tmp_path / "empty").mkdir()
    for args, says in ((["grade", "empty"], "holds no submissions"),
                       (["grade", "empty", "--scenario", "no-such"], "no scenario no-such"),
                       (["grade", "missing"], "is not a folder")):
        done = netbed(*args)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
