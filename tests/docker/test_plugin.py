"""The pytest plugin seen from a user's test run: failure evidence, kept testbeds, artefacts."""

from __future__ import annotations

import subprocess
import sys

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
    line = next(l for l in done.stdout.splitlines() if "netbed down -p" in l)
    project = line.split("netbed down -p ")[1].rstrip("`").split("`")[0]
    try:
        running = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        assert running, "the failed test's testbed is still up"
    finally:
        down = subprocess.run([sys.executable, "-m", "netbed", "down", "-p", project], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})


def test_capture_start_and_stop_from_the_cli(tmp_path, docker_engine):
    from netbed.testbed import Testbed

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
