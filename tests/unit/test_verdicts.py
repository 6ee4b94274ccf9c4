"""Three verdicts: passed, failed, not judged (with the reason), told apart by the CLI, JUnit and the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netbed.report import load_run, write_html, write_junit
from netbed.scenarios import CATALOGUE
from netbed.scenarios.catalogue import ROLES
from netbed.scenarios.lab import Check, Verdict
from netbed.scenarios.runner import programs_for, verdict_of
from netbed.scenarios.programs import Programs

OK = Check("ok", True, "x", "x")
BAD = Check("bad", False, "x", "y")


@pytest.mark.parametrize("checks, not_judged, interrupted, verdict", [
    ([OK], "", False, Verdict.PASSED),
    ([OK, BAD], "", False, Verdict.FAILED),
    ([OK], "the client printed nothing", False, Verdict.NOT_JUDGED),
    ([BAD], "the client printed nothing", False, Verdict.FAILED),   # a failure seen first stays a failure
    ([], "", False, Verdict.FAILED),                                 # no check: nothing was shown
    ([OK], "", True, Verdict.FAILED),
])
def test_the_verdict_of_a_run(checks, not_judged, interrupted, verdict):
    assert verdict_of(checks, not_judged, interrupted) == verdict


def test_every_scenario_takes_the_users_programs_or_says_why_not():
    for s in CATALOGUE:
        assert set(s.takes) <= set(ROLES), s.name
        if set(s.takes) != set(ROLES):
            assert s.own and len(s.own) > 20, f"{s.name} must say why it keeps netbed's own programs"


def test_a_role_a_scenario_does_not_take_runs_netbeds_own_and_says_so():
    partial = next((s for s in CATALOGUE if s.takes and set(s.takes) != set(ROLES)), None)
    if partial is None:
        pytest.skip("every scenario takes both of the user's programs")
    kept_role = partial.takes[0]
    other = next(r for r in ROLES if r != kept_role)
    given = Programs(server_cmd="/opt/mine/s {port}", client_cmd="/opt/mine/c {server_ip}")
    used, note = programs_for(partial, given)
    assert getattr(used, f"{kept_role}_cmd") is not None and getattr(used, f"{other}_cmd") is None
    assert f"netbed's own {other}" in note and partial.own in note


def netbed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})


def test_a_scenario_that_can_judge_none_of_the_given_programs_is_not_judged_without_a_testbed(tmp_path):
    """No engine is needed to say it: the verdict comes before any testbed (exit 3: none failed, some not judged)."""
    refusing = next(s for s in CATALOGUE if "client" not in s.takes)  # e.g. keepalive-crash: SO_KEEPALIVE
    done = netbed("run", refusing.name, "--client-cmd", "/opt/mine/c {server_ip}", "--out", "run", cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "N/J" in done.stdout and "not judged" in done.stdout and refusing.own in done.stdout.replace("\n", " ")
    assert "0 passed, 0 failed, 1 not judged" in done.stdout
    report = json.loads((tmp_path / "run" / refusing.name / "report.json").read_text())
    assert report["verdict"] == "not judged" and refusing.own in report["reason"]


def report(folder: Path, name: str, verdict: str, reason: str = "") -> None:
    (folder / name).mkdir(parents=True)
    checks = [] if verdict == "not judged" else [{"name": "c", "passed": verdict == "passed", "expected": "e",
                                                   "observed": "o"}]
    (folder / name / "report.json").write_text(json.dumps({
        "scenario": name, "section": "5.7", "title": "t", "passed": verdict == "passed", "duration_s": 1.0,
        "checks": checks, "verdict": verdict, "reason": reason}))


def test_junit_and_the_page_show_the_three_verdicts_apart(tmp_path):
    report(tmp_path, "a", "passed")
    report(tmp_path, "b", "failed")
    report(tmp_path, "c", "not judged", "the client printed nothing")
    reports = load_run(tmp_path)
    suite = ET.parse(write_junit(reports, tmp_path / "junit.xml")).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite}
    assert cases["a"].find("failure") is None and cases["a"].find("skipped") is None
    assert cases["b"].find("failure") is not None
    assert cases["c"].find("skipped").get("message") == "not judged: the client printed nothing"
    page = write_html(reports, tmp_path / "report.html").read_text()
    assert "1 passed" in page and "1 failed" in page and "1 not judged" in page
    assert "data-verdict='not judged'" in page and "the client printed nothing" in page


def test_a_report_from_before_three_verdicts_reads_as_passed_or_failed(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps({
        "scenario": "old", "section": "5.7", "title": "t", "passed": False, "duration_s": 1.0, "checks": []}))
    assert load_run(tmp_path)[0].verdict == "failed"
