"""The pytest plugin seen from a user's test run: failure evidence, kept testbeds, artefacts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAILING = '''
import pytest

def test_the_echo_never_comes(testbed, program, faults):
    client = program("client", ["python3", "-m", "netbed.apps.echo_client", testbed.host("server").ip])
    client.send("hello")
    client.expect_output("hello", timeout=10)
    faults.pause("server")
    client.send("are you there?")
    client.expect_output("are you there", timeout=1)
'''


def run_pytest(path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path), *args],
                          capture_output=True, text=True, cwd=path.parent, timeout=300)


def test_a_failing_test_reports_pcap_ladder_sockets_processes_and_logs(tmp_path, docker_engine):
    test = tmp_path / "test_user.py"
    test.write_text(FAILING)
    done = run_pytest(test, "--netbed-artifacts", str(tmp_path / "art"))
    out = done.stdout
    assert done.returncode == 1
    for section in ("netbed: capture", "netbed: ladder", "netbed: server sockets and processes", "netbed: client log"):
        assert section in out, section
    assert str(tmp_path / "art") in out and ".pcap" in out
    assert "ESTABLISHED" in out and "P. seq" in out
    assert list((tmp_path / "art").glob("*/capture.pcapng"))


def test_netbed_keep_leaves_the_failed_testbed_up_and_says_how_to_tear_it_down(tmp_path, docker_engine):
    test = tmp_path / "test_user.py"
    test.write_text(FAILING)
    done = run_pytest(test, "--netbed-keep", "-s")
    line = next(line for line in done.stdout.splitlines() if "netbed down -p" in line)
    project = line.split("netbed down -p ")[1].rstrip("`").split("`")[0]
    try:
        running = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        assert running, "the failed test's testbed is still up"
    finally:
        down = subprocess.run([sys.executable, "-m", "netbed", "down", "-p", project], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})


def test_capture_start_and_stop_from_the_cli(tmp_path, docker_engine):
    from netbed.backend.compose.testbed import Testbed

    with Testbed.up(run_dir=tmp_path / "bed", owner="test:cli") as bed:
        extra = tmp_path / "extra.pcap"
        start = subprocess.run([sys.executable, "-m", "netbed", "capture", "start", "-p", bed.project,
                                "--out", str(extra)], capture_output=True, text=True)
        assert start.returncode == 0, start.stderr
        stop = subprocess.run([sys.executable, "-m", "netbed", "capture", "stop", "-p", bed.project],
                              capture_output=True, text=True)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
        assert extra.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
        again = subprocess.run([sys.executable, "-m", "netbed", "capture", "stop", "-p", bed.project],
                               capture_output=True, text=True)
        assert again.returncode == 1 and "no extra capture" in again.stderr


USERS_OWN = '''
import pytest

@pytest.mark.netbed(compose="topology/compose.yaml", hosts=["alpha", "beta"],
                    sysctls={"net.ipv4.tcp_keepalive_time": 77})
def test_settings_reach_every_host_of_my_file(testbed, program):
    for host in ("alpha", "beta"):
        assert testbed.exec(host, ["sysctl", "-n", "net.ipv4.tcp_keepalive_time"]).stdout.strip() == "77"
    talker = program("alpha", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    assert talker.wait(timeout=10).code == 3
    assert False, "fail on purpose, to see the evidence"
'''

USERS_COMPOSE = '''
services:
  alpha: {image: netbed-host:latest, init: true, command: [sleep, infinity]}
  beta: {image: netbed-host:latest, init: true, command: [sleep, infinity]}
'''


def test_a_users_own_file_relative_to_the_test_every_host_settings_and_program_evidence(tmp_path, docker_engine):
    """Marker paths are relative to the test file (pytest runs from elsewhere); flat sysctls reach hosts of
    any name; the failure report and the artefacts folder carry each program's output and end."""
    tests = tmp_path / "tests"
    (tests / "topology").mkdir(parents=True)
    (tests / "topology" / "compose.yaml").write_text(USERS_COMPOSE)
    (tests / "test_mine.py").write_text(USERS_OWN)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_mine.py",
                           "--netbed-artifacts", str(tmp_path / "art")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert "fail on purpose" in done.stdout, done.stdout[-3000:]
    assert "netbed: program 1 on alpha" in done.stdout
    assert "exit status 3" in done.stdout and "to-stdout" in done.stdout and "to-stderr" in done.stdout
    [folder] = (tmp_path / "art").iterdir()
    kept = {p.name for p in folder.iterdir()}
    assert {"capture.pcapng", "ladder.txt", "program_1_on_alpha.txt", "alpha_log.txt",
            "beta_sockets_and_processes.txt"} <= kept, kept
    assert "to-stderr" in (folder / "program_1_on_alpha.txt").read_text()
    page_line = next(line for line in done.stdout.splitlines() if line.endswith("(written once the testbed is down)"))
    page = Path(page_line.split(" (written")[0])
    assert page == folder / "report.html", "the failure report links the test's own page"
    html = page.read_text()
    assert "fail on purpose" in html and "data-verdict='failed'" in html, "the test's outcome"
    assert "to-stderr" in html and "exit status 3" in html, "each program's output and end"
    assert "sh -c echo to-stdout" in html, "the capture's notes on the timeline"
