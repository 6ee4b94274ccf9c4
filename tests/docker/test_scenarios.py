"""The scenario catalogue, through the same runner as `netbed run`: `pytest -k reboot` runs one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netbed.scenarios import CATALOGUE, Programs, find, runner
from netbed.scenarios.lab import Verdict

C_PROGRAMS = Path(__file__).parent / "c_programs"


def failures(result: runner.Result) -> str:
    return "\n".join(f"{c.name}\n  expected: {c.expected}\n  observed: {c.observed}"
                     for c in result.checks if not c.passed)


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.name)
def test_scenario(scenario, tmp_path):
    result = runner.run(scenario, tmp_path)
    assert result.passed, failures(result)
    folder = tmp_path / scenario.name
    report = json.loads((folder / "report.json").read_text())
    assert report["passed"] is True and report["scenario"] == scenario.name
    assert {"name", "passed", "expected", "observed"} <= set(report["checks"][0])
    for artefact in ("capture.pcapng", "ladder.txt", "ladder.svg", "server.log", "hosts.json"):
        assert (folder / artefact).stat().st_size > 0, artefact
    assert (folder / "client.log").is_file(), "the client host's log (its programs run through netbed)"


@pytest.fixture(scope="module")
def c_pair(tmp_path_factory) -> Path:
    """A C echo server and str_cli client, not netbed's: compiled here, static, mounted into the hosts."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is needed to build the user programs of this test"
    out = tmp_path_factory.mktemp("mine")
    for name in ("echo_server", "echo_client"):
        subprocess.run([gcc, "-O2", "-static", "-o", str(out / name.replace("_", "-")), str(C_PROGRAMS / f"{name}.c")],
                       check=True)
    return out


USER_SCENARIOS = [s.name for s in CATALOGUE if s.user_programs]
NOT_FOR_AN_ECHO_PAIR = {  # scenario -> why an echo server and a one-write line client cannot be judged there
    "sigpipe": "the client wrote the line in one write",
    "data-format-text": "the server echoes '11 22' instead of answering its sum",
    "data-format-binary": "the server echoes the 16-byte structure",
}


def passes_or_says_why(name: str, result: runner.Result) -> None:
    if name in NOT_FOR_AN_ECHO_PAIR and result.verdict == Verdict.NOT_JUDGED:
        assert NOT_FOR_AN_ECHO_PAIR[name] in result.reason, result.reason
        return
    assert result.passed, failures(result)


@pytest.mark.parametrize("name", USER_SCENARIOS)
def test_scenario_with_the_users_c_programs(name, c_pair, tmp_path):
    programs = Programs(server_cmd="/opt/mine/echo-server", client_cmd="/opt/mine/echo-client {server_ip}",
                        mounts=(f"{c_pair}:/opt/mine",))
    result = runner.run(find([name])[0], tmp_path, programs)
    passes_or_says_why(name, result)


SOCAT_ECHO_SERVER = "socat TCP-LISTEN:{port},reuseaddr,fork EXEC:cat"


@pytest.mark.parametrize("name", USER_SCENARIOS)
def test_scenario_with_a_server_netbed_did_not_write(name, tmp_path):
    """socat forks a child per connection, as the book's server does, but is nobody's test program."""
    result = runner.run(find([name])[0], tmp_path, Programs(server_cmd=SOCAT_ECHO_SERVER))
    passes_or_says_why(name, result)
    report = json.loads((tmp_path / name / "report.json").read_text())
    assert report["settings"]["server"] == SOCAT_ECHO_SERVER


@pytest.mark.parametrize("server_cmd, reason", [
    ("/opt/mine/no-such-program", ("exited at once (exit status 127); its last output: ",
                                   "/opt/mine/no-such-program: No such file or directory")),
    ("/opt/mine/echo-server 9999", ("never listened on port 9877",)),
])
def test_a_user_server_that_never_listens_is_not_judged_and_the_verdict_says_why(server_cmd, reason, c_pair, tmp_path):
    programs = Programs(server_cmd=server_cmd, client_cmd="/opt/mine/echo-client {server_ip}",
                        mounts=(f"{c_pair}:/opt/mine",))
    result = runner.run(find(["server-host-crash"])[0], tmp_path, programs)
    assert result.verdict == Verdict.NOT_JUDGED and not result.checks
    assert all(words in result.reason for words in reason), result.reason
