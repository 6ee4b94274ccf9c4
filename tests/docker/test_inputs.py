"""Bad input and odd states on a real engine: one line, the right status, nothing harmed, nothing left.

`up` of a project that is up (one after the other, and two at once), faults
on hosts that have exited, and captures that reach their limit or lose their
testbed or their owner.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from netbed.backend.compose import capture as capture_mod
from netbed import faults
from netbed.backend.compose import engine
from netbed.observe import wait_for
from netbed.scenarios import find, runner
from netbed.tcp import read_frames
from netbed.backend.compose.testbed import COMPOSE_PROJECT, LABEL_PROJECT, Testbed, default_compose_file, free_prefix

IDLE = ["sleep", "infinity"]


def netbed(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, **(env or {})})


def one_line(done: subprocess.CompletedProcess[str], status: int, says: str) -> None:
    assert done.returncode == status, done.stderr
    assert says in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr, done.stderr
    for raw in ("Client Error", "Server Error", "Error response from daemon", "Conflict"):
        assert raw not in done.stderr, done.stderr


def containers(cli, project: str) -> dict[str, str]:
    """The project's containers, id -> status."""
    found = {}
    for key in (COMPOSE_PROJECT, LABEL_PROJECT):
        for c in cli.containers.list(all=True, filters={"label": f"{key}={project}"}):
            found[c.id] = c.status
    return found


@pytest.fixture
def bed(tmp_path):
    with Testbed.up(run_dir=tmp_path / "bed", services={"client": {"command": IDLE}}) as bed:
        yield bed


@pytest.fixture
def project(docker_engine, tmp_path):
    """A project name for `netbed up -p`, torn down after the test whatever happened."""
    name = f"nbt-{uuid.uuid4().hex[:8]}"
    yield name
    netbed("down", "-p", name, cwd=tmp_path)
    for project in (name, f"{name}-2"):  # whatever `down` could not remove
        for key in (LABEL_PROJECT, COMPOSE_PROJECT):
            for c in docker_engine.containers.list(all=True, filters={"label": f"{key}={project}"}):
                c.remove(force=True)
            for n in docker_engine.networks.list(filters={"label": f"{key}={project}"}):
                n.remove()


# --- up of a project that is up ----------------------------------------------------------------


def test_a_second_up_of_a_project_is_refused_and_the_first_is_untouched(docker_engine, project, tmp_path):
    assert netbed("up", "-p", project, cwd=tmp_path).returncode == 0
    before = containers(docker_engine, project)
    pcap = tmp_path / "runs" / project / "capture.pcap"
    size = pcap.stat().st_size
    assert size > 0

    one_line(netbed("up", "-p", project, cwd=tmp_path), 1, f"{project} is already up")

    one_line(netbed("up", "-p", f"{project}-2", "--run-dir", str(pcap.parent), cwd=tmp_path), 1,
             f"is the folder of testbed {project}, which is up")
    assert containers(docker_engine, f"{project}-2") == {}, "a refused up makes nothing"
    assert containers(docker_engine, project) == before, "the running testbed was not touched"
    assert pcap.stat().st_size >= size, "its capture was not overwritten"
    done = netbed("status", "-p", project, "--json", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.count('"running"') == 2, done.stdout


def test_two_ups_at_once_one_wins_and_the_other_gets_one_line(docker_engine, project, tmp_path):
    ups = [subprocess.Popen([sys.executable, "-m", "netbed", "up", "-p", project], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in ups]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[0] == 1)
    one_line(subprocess.CompletedProcess([], loser[0], loser[1], loser[2]), 1, f"{project} is already up")
    done = netbed("status", "-p", project, "--json", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.count('"running"') == 2, done.stdout
    capture = docker_engine.containers.list(filters={"label": [f"{LABEL_PROJECT}={project}", "org.netbed.role=capture"]})
    assert len(capture) == 1, "one capture, the winner's, still recording"


def test_a_failed_up_leaves_no_folder(docker_engine, tmp_path):
    done = netbed("up", "-p", f"nbt-{uuid.uuid4().hex[:8]}", cwd=tmp_path, env={"NETBED_CAPTURE_MAX_PACKETS": "lots"})
    one_line(done, 1, "NETBED_CAPTURE_MAX_PACKETS")
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  lonely:\n    image: netbed-no-such-image:latest\n    command: [sleep, infinity]\n"
                   "    networks: [bed]\nnetworks:\n  bed:\n    internal: true\n")
    project = f"nbt-{uuid.uuid4().hex[:8]}"
    done = netbed("up", "-p", project, cwd=tmp_path)  # progress lines, then the error in one line
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "netbed-no-such-image:latest of host lonely is not on the engine" in done.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compose.yaml"], "no runs/ folder"
    assert containers(docker_engine, project) == {}


# --- faults on hosts that have exited ----------------------------------------------------------


def test_reboot_of_an_exited_host_brings_it_back_at_its_address(bed):
    server = bed.host("server")
    faults.kill(bed, "server")  # SIGKILL: the host has exited and the engine shows no address for it
    done = netbed("reboot", "server", "-p", bed.project)
    assert done.returncode == 0 and "reboot: server done" in done.stdout, done.stderr
    container = bed.container("server")
    assert container.status == "running"
    now = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))
    assert (now["IPAddress"], now["MacAddress"]) == (server.ip, server.mac)
    routes = bed.netns("server", ["ip", "-4", "route", "show"])[1]
    gateway = bed.host("server").gateways[0]  # Docker 26 shows none in `now` on an internal network
    assert f"unreachable {gateway}" in routes and "default" not in routes, routes  # isolated again
    status = netbed("status", "-p", bed.project)
    assert server.ip in status.stdout


def test_shutdown_with_no_grace_ends_in_one_line_and_a_stopped_host(bed):
    done = netbed("shutdown", "server", "--grace", "0", "-p", bed.project)
    assert done.returncode == 0 and "shutdown: server done" in done.stdout, done.stdout + done.stderr
    assert done.stderr == ""
    assert bed.status("server") == "exited"


def test_partition_with_an_exited_host_is_refused_and_installs_nothing(bed):
    faults.kill(bed, "client")
    one_line(netbed("partition", "client", "server", "-p", bed.project), 1, "client is exited, not running")
    one_line(netbed("partition", "server", "client", "-p", bed.project), 1, "client is exited, not running")
    code, rules = bed.netns("server", ["iptables", "-w", "-S"])
    assert code == 0 and "NETBED" not in rules, rules
    with pytest.raises(faults.FaultError, match="same host"):
        faults.partition(bed, "server", "server")
    assert "NETBED" not in bed.netns("server", ["iptables", "-w", "-S"])[1]


def test_kill_of_a_process_that_is_not_there_says_so_in_one_line(bed):
    one_line(netbed("kill", "server", "--pid", "99999", "-p", bed.project), 1, "no process 99999 in server")
    assert bed.status("server") == "running"


# --- captures: bounded, said when stopped early, never orphaned ---------------------------------


def test_a_capture_that_reaches_its_limit_fails_the_verdict_and_says_why(tmp_path, monkeypatch, docker_engine):
    monkeypatch.setenv("NETBED_CAPTURE_MAX_PACKETS", "12")
    result = runner.run(find(["normal-termination"])[0], tmp_path)
    failed = [c for c in result.checks if not c.passed]
    assert any(c.name == "the capture recorded the whole run" and "limit of 12 frames" in c.observed
               for c in failed), result.checks
    assert not result.passed
    assert sum(1 for _ in read_frames(str(tmp_path / "normal-termination" / "capture.pcapng"))) == 12


def test_netbed_down_notes_a_capture_that_reached_its_limit(docker_engine, project, tmp_path):
    assert netbed("up", "-p", project, cwd=tmp_path, env={"NETBED_CAPTURE_MAX_PACKETS": "5"}).returncode == 0
    capture = docker_engine.containers.list(all=True, filters={"label": [f"{LABEL_PROJECT}={project}",
                                                                      "org.netbed.role=capture"]})[0]
    wait_for(lambda: docker_engine.containers.get(capture.id).status, lambda s: s == "exited", timeout=30,
             what="the demo client's echoes to fill the capture's 5 frames")
    done = netbed("down", "-p", project, cwd=tmp_path)
    assert done.returncode == 0 and f"{project} is down" in done.stdout
    assert "limit of 5 frames" in done.stderr and "NETBED_CAPTURE_MAX_PACKETS" in done.stderr, done.stderr


def test_the_capture_gets_its_one_file_and_nothing_else(bed, docker_engine):
    container = docker_engine.containers.get(bed.capture.container_id)
    mounts = [(m["Source"], m["Destination"], m["RW"]) for m in container.attrs["Mounts"]]
    assert mounts == [(str(bed.pcap), f"/captures/{bed.pcap.name}", True)]
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    with pytest.raises(capture_mod.CaptureError, match="exists"):
        capture_mod.start(docker_engine, bed.bridge, bed.pcap, {})


def test_a_capture_that_cannot_start_leaves_no_file_and_no_container(docker_engine, tmp_path):
    name = f"nbt{uuid.uuid4().hex[:8]}"
    with pytest.raises(capture_mod.CaptureError, match="No such device"):
        capture_mod.start(docker_engine, name, tmp_path / "x.pcap", {LABEL_PROJECT: name})
    assert list(tmp_path.iterdir()) == []
    assert containers(docker_engine, name) == {}


def test_a_capture_stops_when_its_bridge_is_gone(docker_engine, tmp_path):
    name = f"nbt{uuid.uuid4().hex[:8]}"
    labels = {LABEL_PROJECT: name}
    network = docker_engine.networks.create(name, driver="bridge", internal=True, labels=labels, options={
        "com.docker.network.bridge.name": name}, ipam=_ipam(docker_engine))
    started = None
    try:
        host = docker_engine.containers.run(engine.IMAGE, IDLE, detach=True, network=name, labels=labels)
        started = capture_mod.start(docker_engine, name, tmp_path / "x.pcap", labels)
        host.remove(force=True)
        network.remove()
        wait_for(lambda: docker_engine.containers.get(started.container_id).status, lambda s: s == "exited",
                 timeout=15, what="the capture to stop once its bridge is gone")
        with pytest.raises(capture_mod.CaptureError, match="The interface disappeared"):
            capture_mod.stop(docker_engine, started)
    finally:
        for c in docker_engine.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={name}"}):
            c.remove(force=True)
        for n in docker_engine.networks.list(names=[name]):
            n.remove()


def test_a_capture_stops_when_the_process_that_owns_its_testbed_is_killed(docker_engine, tmp_path):
    script = ("import os, signal, sys\nfrom netbed.backend.compose.testbed import Testbed\n"
              "bed = Testbed.up(run_dir=sys.argv[1], services={'client': {'command': ['sleep', 'infinity']}})\n"
              "print(bed.project, bed.capture.container_id, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    project, capture_id = done.stdout.split()
    try:
        wait_for(lambda: docker_engine.containers.get(capture_id).status, lambda s: s == "exited", timeout=15,
                 what="the orphaned capture to stop")
        assert "the testbed's owner process is gone" in docker_engine.containers.get(capture_id).logs().decode()
    finally:
        Testbed.attach(project).down()


def test_the_demo_says_when_its_capture_reaches_the_limit(docker_engine, tmp_path):
    project = f"netbed-demo-{uuid.uuid4().hex[:8]}"
    env = {"NETBED_NET": free_prefix(docker_engine), "NETBED_BRIDGE": f"nbd{uuid.uuid4().hex[:8]}",
           "NETBED_CAPTURE_DIR": str(tmp_path), "NETBED_CAPTURE_MAX_PACKETS": "10"}
    def compose(*args, check=True):
        return engine.compose(list(args), project=project, files=[default_compose_file()], env=env, check=check)
    try:
        compose("up", "-d")
        logs = wait_for(lambda: compose("logs", "capture").stdout, lambda log: "limit of 10 frames" in log,
                        timeout=30, what="the demo's capture to say it reached its limit")
    finally:
        compose("down", "--volumes", "--timeout", "2", check=False)
    assert "NETBED_CAPTURE_MAX_PACKETS" in logs
    assert sum(1 for _ in read_frames(str(tmp_path / "demo.pcap"))) == 10


def test_the_demo_stopped_by_hand_does_not_claim_the_limit(docker_engine, tmp_path):
    project = f"netbed-demo-{uuid.uuid4().hex[:8]}"
    env = {"NETBED_NET": free_prefix(docker_engine), "NETBED_BRIDGE": f"nbd{uuid.uuid4().hex[:8]}",
           "NETBED_CAPTURE_DIR": str(tmp_path)}
    def compose(*args, check=True):
        return engine.compose(list(args), project=project, files=[default_compose_file()], env=env, check=check)
    try:
        compose("up", "-d")
        compose("stop", "capture")
        logs = compose("logs", "capture").stdout
        state = docker_engine.containers.list(all=True, filters={"label": [f"{COMPOSE_PROJECT}={project}",
                                                                           "com.docker.compose.service=capture"]})
        assert [c.attrs["State"]["ExitCode"] for c in state] == [0]
    finally:
        compose("down", "--volumes", "--timeout", "2", check=False)
    assert "packets captured" in logs and "limit" not in logs


def _ipam(cli):
    import docker.types

    prefix = free_prefix(cli)
    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{prefix}.0/24")])
