"""Bad input is refused at parse time: exit 2, one line, no traceback, and nothing made.

Every command runs with no engine to talk to, so a value that got past the
parser would end differently (exit 1, "no Docker Engine answers"): exit 2
proves the refusal came first. Each runs in a folder of its own holding an
earlier run, so "nothing made" is checked on disk: no new folder, runs/latest
unchanged.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netbed import capture, faults
from netbed.backend.compose import capture as compose_capture
from netbed.errors import NetbedError
from netbed.folders import RunFolderError, run_folder
from netbed.scenarios.programs import Command, Programs, ProgramsError
from netbed.spec import check_project_name

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def netbed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, **NO_ENGINE})


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A working folder with one earlier run, linked as runs/latest."""
    (tmp_path / "runs" / "earlier").mkdir(parents=True)
    (tmp_path / "runs" / "latest").symlink_to("earlier")
    (tmp_path / "bin").mkdir()
    (tmp_path / "exists.pcap").write_bytes(b"mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other-run.txt").write_text("someone else's")
    return tmp_path


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


RUN = ["run", "normal-termination"]


@pytest.mark.parametrize("args, says", [
    # project names: Compose's rule, before any folder is named after one
    (["up", "-p", "../escape"], "project name '../escape' is not valid"),
    (["up", "-p", "a/b"], "is not valid"),
    (["up", "-p", "Upper"], "lowercase letters, digits"),
    (["up", "-p", "café"], "is not valid"),
    (["up", "-p", "-dash"], "starting with a letter or digit"),
    (["up", "-p", ""], "is not valid"),
    (["status", "-p", ".."], "is not valid"),
    # kill: a pid is one process of the host, not init or a group; a signal has a name
    (["kill", "server", "--pid", "-1"], "2 or more"),
    (["kill", "server", "--pid", "0"], "2 or more"),
    (["kill", "server", "--pid", "1"], "PID 1 is the host's init"),
    (["kill", "server", "--signal", "SIGNOPE"], "unknown signal"),
    # numbers: finite, in ranges tc takes
    (["impair", "client", "--rate", "inf"], "--rate"),
    (["impair", "client", "--rate", "0.0001"], "--rate"),
    (["impair", "client", "--rate", "1e9"], "--rate"),
    (["impair", "client", "--delay", "nan"], "not a finite number"),
    (["impair", "client", "--delay", "1e12"], "--delay"),
    (["impair", "client", "--delay", "-5"], "--delay"),
    (["impair", "client", "--loss", "nan"], "not a finite number"),
    (["impair", "client", "--duplicate", "inf"], "--duplicate"),
    (["impair", "client", "--delay", "10", "--jitter", "20"], "must not exceed the delay"),
    (["impair", "client", "--jitter", "5"], "--jitter needs --delay"),
    (["impair", "client"], "say what to impair"),
    (["shutdown", "server", "--grace", "nan"], "not a finite number"),
    (["shutdown", "server", "--grace", "inf"], "--grace"),
    (["shutdown", "server", "--grace", "-1"], "--grace"),
    (["partition", "server", "server"], "the same host"),
    # files netbed would write: never over an existing one, never into another run's folder
    (["capture", "start", "--out", "exists.pcap"], "exists.pcap exists"),
    (["capture", "start", "--out", "nofolder/x.pcap"], "is not a folder"),
    ([*RUN, "--out", "full"], "already holds files"),
    ([*RUN, "--out", "exists.pcap"], "--out"),
    # the user's programs: mounts and commands parsed before anything starts
    ([*RUN, "--mount", "/tmp"], "HOST_PATH:CONTAINER_PATH"),
    ([*RUN, "--mount", "bin:opt"], "must be absolute"),
    ([*RUN, "--mount", "a:b:ro:x"], "HOST_PATH:CONTAINER_PATH"),
    ([*RUN, "--mount", "bin:/opt/mine:rx"], "the mode is ro or rw"),
    ([*RUN, "--mount", "nosuch:/opt/mine"], "does not exist"),
    ([*RUN, "--mount", "/:/host"], "never gives a host /"),
    ([*RUN, "--mount", "/var/run/docker.sock:/var/run/docker.sock"], "/var/run/docker.sock"),
    ([*RUN, "--server-cmd", '/bin/echo "oops'], "no closing quotation"),
    ([*RUN, "--client-cmd", "client 'unbalanced"], "no closing quotation"),
    ([*RUN, "--server-cmd", "   "], "is empty"),
    ([*RUN, "--server-cmd", "server {server_ip}"], "{server_ip} is not known to the server"),
    ([*RUN, "--image", "Bad Name"], "is not an image name"),
    ([*RUN, "--junit", "nofolder/junit.xml"], "is not a folder"),
    (["report", "runs/earlier", "--junit", "nofolder/junit.xml"], "is not a folder"),
    (["ladder", "exists.pcap", "--svg", "nofolder/x.svg"], "is not a folder"),
    (["run", "--all", "--jobs", "17"], "--jobs"),
    ([*RUN, "--port", "0"], "--port"),
])
def test_bad_input_is_refused_at_parse_time_and_nothing_is_made(args, says, here):
    before = snapshot(here)
    done = netbed(*args, cwd=here)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert snapshot(here) == before
    assert os.readlink(here / "runs" / "latest") == "earlier"
    assert (here / "exists.pcap").read_bytes() == b"mine"


def test_a_run_that_fails_leaves_no_folder_and_keeps_runs_latest(here):
    before = snapshot(here)
    done = netbed(*RUN, cwd=here)
    assert done.returncode == 1 and "no Docker Engine answers" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(here) == before
    assert os.readlink(here / "runs" / "latest") == "earlier"


def test_commands_with_braces_and_placeholders_get_past_the_parser(here):
    """Braces are not special: such a run reaches the engine (here: none), no traceback, nothing left."""
    before = snapshot(here)
    done = netbed(*RUN, "--server-cmd", "socat TCP-LISTEN:{port},reuseaddr,fork EXEC:cat",
                  "--client-cmd", "sh -c 'read l; { echo \"$l\"; } ' {server_ip}", "--mount", "bin:/opt/mine:ro",
                  cwd=here)
    assert done.returncode == 1 and "no Docker Engine answers" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(here) == before


def test_a_failed_run_into_a_new_out_folder_removes_it_and_a_first_run_leaves_no_runs_folder(tmp_path):
    assert netbed(*RUN, "--out", "a/b/c", cwd=tmp_path).returncode == 1
    assert netbed(*RUN, cwd=tmp_path).returncode == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, says", [
    ("{}", "no 'scenario'"),
    ("[1, 2]", "a JSON list, not an object"),
    ('{"scenario": "x", "section": "5.7", "title": "t", "passed": true, "duration_s": 1}', "no 'checks'"),
    ('{"scenario": "x", "section": "5.7", "title": "t", "passed": true, "duration_s": "1", "checks": []}',
     "'duration_s' is '1'"),
    ('{"scenario": "x", "section": "5.7", "title": "t", "passed": true, "duration_s": 1, "checks": [1]}',
     "check 1 is not"),
    ("not json", "not JSON"),
])
def test_a_report_that_is_not_netbeds_is_named_in_one_line(content, says, tmp_path):
    (tmp_path / "scenario").mkdir()
    (tmp_path / "scenario" / "report.json").write_text(content)
    done = netbed("report", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert str(tmp_path / "scenario" / "report.json") in done.stderr and says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("command", [["netbed", "ladder"], ["netbed.tcp"]])  # the CLI, and the demo's live ladder
def test_ladder_follow_says_what_it_waits_for_and_refuses_a_folder_that_is_not_there(command, tmp_path):
    module, *verb = command
    missing = subprocess.run([sys.executable, "-m", module, *verb, "--follow", str(tmp_path / "nofolder" / "x.pcap")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no folder" in missing.stderr and missing.stderr.count("\n") == 1
    follow = subprocess.Popen([sys.executable, "-m", module, *verb, "--follow", str(tmp_path / "later.pcap")],
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        first = follow.stderr.readline()
    finally:
        follow.kill()
        follow.wait()
    assert "later.pcap" in first and "waiting for it to appear" in first and "Ctrl-C" in first


# --- the same checks in the Python API -------------------------------------------------------------


def test_commands_replace_only_their_placeholders_and_keep_every_other_brace():
    client = Command.parse("sh -c 'read l; { echo \"$l\"; } >&2' {server_ip} x{port}y {portx} {{port}}", "client")
    assert client.argv(server_ip="10.0.0.2", port=9877) == [
        "sh", "-c", "read l; { echo \"$l\"; } >&2", "10.0.0.2", "x9877y", "{portx}", "{9877}"]
    assert Command.parse("srv {port}", "server").argv(port=7) == ["srv", "7"]
    programs = Programs(server_cmd="socat TCP-LISTEN:{port},fork EXEC:cat", port=9000)
    assert programs.server_cmd.argv(port=programs.port) == ["socat", "TCP-LISTEN:9000,fork", "EXEC:cat"]


@pytest.mark.parametrize("kwargs", [
    {"server_cmd": '/bin/echo "oops'}, {"mounts": ("/tmp",)}, {"mounts": ("a:b:ro:x",)}, {"port": 0},
])
def test_programs_refuse_bad_commands_and_mounts(kwargs):
    with pytest.raises(ProgramsError):
        Programs(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"delay_ms": math.nan}, {"delay_ms": 1e12}, {"rate_kbit": math.inf}, {"rate_kbit": 0.0001},
    {"loss_pct": math.nan}, {"delay_ms": 5, "jitter_ms": 6}, {"reorder_pct": -1},
])
def test_impairments_out_of_range_are_refused(kwargs):
    with pytest.raises(faults.FaultError):
        faults.Impairment(**kwargs)


@pytest.mark.parametrize("name", ["..", "a/b", "Up", "é", "_x", "", "a.b"])
def test_project_names_follow_composes_rule(name):
    with pytest.raises(NetbedError):
        check_project_name(name)
    assert check_project_name("my-bed_2") == "my-bed_2"


def test_two_runs_never_share_a_folder(tmp_path):
    with run_folder(tmp_path / "out") as first:
        with pytest.raises(RunFolderError, match="another run is writing"):
            with run_folder(tmp_path / "out"):
                pass
        (first / "s").mkdir()
        (first / "s" / "report.json").write_text(json.dumps({}))
    with pytest.raises(RunFolderError, match="already holds files"):
        with run_folder(tmp_path / "out"):
            pass
    with run_folder(root=tmp_path / "runs") as a, run_folder(root=tmp_path / "runs") as b:
        assert a != b  # two runs in the same second
        for folder in (a, b):
            (folder / "s").mkdir()
            (folder / "s" / "report.json").write_text("{}")
    assert (tmp_path / "runs" / "latest").resolve() == a.resolve()  # the last to finish


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5", str(2**31)])
def test_the_capture_limit_from_the_environment_is_a_whole_number(value):
    with pytest.raises(capture.CaptureError, match="NETBED_CAPTURE_MAX_PACKETS"):
        capture.max_frames_from_env({"NETBED_CAPTURE_MAX_PACKETS": value})
    assert capture.max_frames_from_env({}) == capture.MAX_FRAMES
    assert capture.max_frames_from_env({"NETBED_CAPTURE_MAX_PACKETS": "25"}) == 25


def test_a_capture_never_overwrites_a_file(tmp_path):
    mine = tmp_path / "mine.pcap"
    mine.write_bytes(b"mine")
    with pytest.raises(capture.CaptureError, match="exists"):
        compose_capture.start(None, "nb-any", mine, {})  # refused before the engine is asked anything
    assert mine.read_bytes() == b"mine"


def test_a_folder_left_by_a_killed_run_is_not_taken_for_a_live_one(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".netbed-run").write_text(dead.stdout)
    with pytest.raises(RunFolderError, match="already holds files"):
        with run_folder(tmp_path / "out"):
            pass
