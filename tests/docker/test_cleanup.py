"""Nothing outlives a run: interrupted runs tear down, killed runs are cleaned, foreign things survive."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from netbed.testbed import LABEL_OWNER


def netbed_things(cli, pid: int) -> set[str]:
    """What the netbed process `pid` made (other runs may be going on at the same time)."""
    label = {"label": f"{LABEL_OWNER}={socket.gethostname()}:{pid}"}
    return ({f"container {c.name}" for c in cli.containers.list(all=True, filters=label)}
            | {f"network {n.name}" for n in cli.networks.list(filters=label)})


def start_run(tmp_path) -> subprocess.Popen:
    """`netbed run server-host-crash` (it waits ~13 s on TCP timers: time to interrupt it).

    SIGINT is given back its default: under a shell's background job (`make test &`,
    a CI runner) it arrives ignored, and an ignored Ctrl-C is not what is tested here.
    """
    return subprocess.Popen([sys.executable, "-m", "netbed", "run", "server-host-crash", "--out", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until_crashed(proc, cli, timeout: float = 60) -> None:
    """Read the run's progress until it says the server crashed (the run then waits on TCP timers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        line = proc.stderr.readline() if ready else b""
        if b"crash server" in line:
            assert netbed_things(cli, proc.pid), "the run has a testbed up"
            return
        if not line:
            break
    raise AssertionError("the run never reached its crash")


@pytest.fixture
def foreign(docker_engine):
    """A container and a network that are not netbed's, which no cleanup may touch."""
    name = f"foreign-{uuid.uuid4().hex[:8]}"
    net = docker_engine.networks.create(name, internal=True)
    box = docker_engine.containers.run("netbed-host:latest", ["sleep", "infinity"], name=name, network=name,
                                       detach=True, init=True)
    yield name
    box.remove(force=True)
    net.remove()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_tears_its_testbed_down(sig, tmp_path, docker_engine, foreign):
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 130
    assert netbed_things(docker_engine, proc.pid) == set()
    assert docker_engine.containers.get(foreign).status == "running"


def test_clean_removes_what_a_killed_run_left_and_nothing_else(tmp_path, docker_engine, foreign):
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    proc.kill()
    proc.wait(timeout=30)
    left = netbed_things(docker_engine, proc.pid)
    assert left, "SIGKILL gives no chance to tear down: something is left"
    listed = subprocess.run([sys.executable, "-m", "netbed", "clean", "--dry-run"], capture_output=True, text=True)
    assert listed.returncode == 0 and "would remove" in listed.stdout
    assert netbed_things(docker_engine, proc.pid) == left, "--dry-run removes nothing"
    done = subprocess.run([sys.executable, "-m", "netbed", "clean"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert netbed_things(docker_engine, proc.pid) == set()
    assert docker_engine.containers.get(foreign).status == "running"
    assert docker_engine.networks.get(foreign).name == foreign


@pytest.mark.engine_stop
def test_the_engine_stopping_mid_run_gets_one_line_and_clean_recovers(tmp_path, docker_engine):
    """Stops the local dockerd, so it runs alone (`make test` runs the engine_stop tests after the rest)."""
    proc = start_run(tmp_path)
    wait_until_crashed(proc, docker_engine)
    pid = open("/var/run/docker.pid").read().strip()
    subprocess.run(["kill", "-TERM", pid], check=True)
    try:
        _, err = proc.communicate(timeout=120)
        last = err.decode().strip().splitlines()[-1]
        assert proc.returncode == 1
        assert last.startswith("netbed: the Docker Engine stopped answering during server-host-crash"), last
        assert "Traceback" not in err.decode()
    finally:
        fixed = subprocess.run([sys.executable, "-m", "netbed", "doctor", "--fix"], capture_output=True, text=True)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    cleaned = subprocess.run([sys.executable, "-m", "netbed", "clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert netbed_things(docker_engine, proc.pid) == set()
