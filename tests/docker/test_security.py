"""The security posture, tested: bare app containers, internal networks, no shell for user input."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.utils import rdpcap

from netbed.scenarios import Programs, find, runner
from netbed.backend.compose.testbed import Testbed

OUTSIDE = "192.0.2.1"  # TEST-NET-1: documentation only, never routed anywhere


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with Testbed.up(run_dir=tmp_path_factory.mktemp("sec"), services={"client": {"command": ["sleep", "infinity"]}}) as bed:
        yield bed


def test_app_containers_have_no_capabilities_no_privilege_and_a_read_only_root(bed):
    for name in bed.hosts:
        host_config = bed.container(name).attrs["HostConfig"]
        assert host_config["Privileged"] is False
        assert host_config["CapAdd"] in (None, [])
        assert host_config["CapDrop"] == ["ALL"]
        assert host_config["ReadonlyRootfs"] is True
        mounts = bed.container(name).attrs["Mounts"]
        assert not any("docker.sock" in m.get("Source", "") for m in mounts)


def test_only_the_capture_gets_network_privileges(bed, docker_engine):
    capture = docker_engine.containers.get(bed.capture.container_id)
    assert set(capture.attrs["HostConfig"]["CapAdd"]) == {"NET_RAW", "NET_ADMIN", "SETUID", "SETGID"}
    assert capture.attrs["HostConfig"]["CapDrop"] == ["ALL"]


def test_a_host_cannot_reach_outside_its_testbed(bed):
    probe = ("import socket\ns = socket.socket()\ns.settimeout(5)\n"
             f"try:\n    s.connect(('{OUTSIDE}', 80))\nexcept OSError as e:\n    print(e.strerror)\n")
    done = bed.exec("client", ["python3", "-c", probe])
    assert done.stdout.strip() == "Network is unreachable", done
    network = next(iter(bed.container("client").attrs["NetworkSettings"]["Networks"]))
    assert bed.container("client").client.networks.get(network).attrs["Internal"] is True
    assert not [p for p in rdpcap(str(bed.pcap)) if IP in p and p[IP].dst == OUTSIDE], "nothing left the bridge"


def test_a_user_command_with_shell_metacharacters_is_never_interpreted(tmp_path):
    marker = "/tmp/netbed-was-interpreted"
    programs = Programs(server_cmd=f"/opt/netbed/netbed/apps/echo_server.py; touch {marker}")
    result = runner.run(find(["server-host-crash"])[0], tmp_path, programs)
    assert result.verdict == "not judged"
    assert "exited at once" in result.reason, "the whole string was one program name, not a shell line"
    assert not Path(marker).exists()
