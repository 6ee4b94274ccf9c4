"""What netbed refuses to touch, judged on settings alone: compose services and saved `docker inspect` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netbed.backend import guard
from netbed.backend.guard import HostSettings, refusals

DATA = Path(__file__).parent.parent / "data"


def test_a_saved_inspection_of_a_host_network_container_is_refused_for_every_reason():
    attrs = json.loads((DATA / "inspect-host-network.json").read_text())
    found = refusals("client", HostSettings.from_container(attrs))
    assert [reason.split(" ")[1:3] for reason in found] == [
        ["network_mode:", "host"], ["pid:", "host"], ["volumes:", "/run"]]


def test_a_plain_host_may_join():
    service = {"image": "x", "networks": {"bed": {"ipv4_address": "10.0.0.2"}}, "cap_drop": ["ALL"],
               "volumes": [{"type": "bind", "source": "/opt/mine", "target": "/opt/mine"},
                           {"type": "volume", "source": "data", "target": "/data"}, "./bin:/opt/bin:ro"]}
    assert refusals("server", HostSettings.from_compose(service)) == []


@pytest.mark.parametrize("mode, peers, refused", [
    ("service:server", {"service:server"}, False),   # another host of the same testbed
    ("service:capture", {"service:server"}, True),   # netbed's capture is on the machine's network
    ("container:abc", {"container:def"}, True),
    ("none", set(), False),
    ("bridge", set(), True),
])
def test_sharing_a_namespace_only_with_another_host(mode, peers, refused):
    assert bool(refusals("client", HostSettings(network_mode=mode), frozenset(peers))) == refused
    assert bool(refusals("client", HostSettings(pid=mode if mode.startswith(("service", "container")) else ""),
                         frozenset(peers))) == (refused and mode.startswith(("service", "container")))


@pytest.mark.parametrize("source, refused", [
    ("/", True), ("/var/run/docker.sock", True), ("/run/docker.sock", True), ("/run", True), ("/var", True),
    ("/var/run/", True), ("/run/user", False), ("/srv/docker.sock.d", False), ("relative/dir", False),
])
def test_mounts_of_the_machine_root_or_the_engine_socket(source, refused):
    assert bool(refusals("client", HostSettings(bind_sources=(source,)))) == refused


def test_the_socket_named_by_docker_host_counts_too(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///srv/engine/api.sock")
    assert refusals("client", HostSettings(bind_sources=("/srv/engine",)))


def test_check_services_names_every_offence_in_one_line():
    services = {"server": {"privileged": True}, "client": {"network_mode": "host", "networks": ["outside"]},
                "capture": {"network_mode": "host"}}
    with pytest.raises(guard.RefusedError) as caught:
        guard.check_services(services, ["server", "client"], external={"outside"})
    message = str(caught.value)
    assert "\n" not in message
    assert "server: privileged: true" in message and "client: network_mode: host" in message
    assert "client: networks: outside is external" in message
    assert "capture" not in message, "netbed's own capture is not a host"


def test_the_namespace_check_compares_inodes():
    guard.check_namespace(5, {1, 2}, "client")
    with pytest.raises(guard.RefusedError, match=r"net:\[2\]"):
        guard.check_namespace(2, {1, 2}, "client")
    assert guard.machine_netns_inodes(), "at least this process's own namespace is known"


def test_the_pid_file_beside_the_engines_socket_is_read(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/netbed-docker26.sock")
    assert guard.engine_pidfiles() == [*guard.ENGINE_PIDFILES, "/run/netbed-docker26.pid"]
    assert guard.engine_pidfile() == "/run/netbed-docker26.pid"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert (guard.engine_pidfiles(), guard.engine_pidfile()) == (list(guard.ENGINE_PIDFILES), "")
    monkeypatch.delenv("DOCKER_HOST")
    assert guard.engine_pidfile() == "/var/run/docker.pid"


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="a network namespace of its own needs root")
def test_the_namespace_of_a_second_engine_in_its_own_network_namespace_is_the_machines(monkeypatch, tmp_path):
    """A second engine runs in a network namespace of its own (its bridges are there): netbed never changes it."""
    import os
    import subprocess

    from netbed.observe import wait_for

    daemon = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{daemon.pid}/ns/net"), lambda ns: ns != os.readlink("/proc/self/ns/net"),
                 timeout=5, what="unshare to become sleep, in its new network namespace")
        (tmp_path / "engine.pid").write_text(f"{daemon.pid}\n")
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/engine.sock")
        inode = os.stat(f"/proc/{daemon.pid}/ns/net").st_ino
        assert inode != os.stat("/proc/self/ns/net").st_ino
        assert inode in guard.machine_netns_inodes()
    finally:
        daemon.kill()
        daemon.wait()


def test_the_helper_wrapper_runs_only_outside_the_named_namespace():
    import os
    import subprocess

    own = os.readlink("/proc/self/ns/net")
    refused = subprocess.run(guard.in_own_namespace(["echo", "ran"], own), capture_output=True, text=True)
    assert refused.returncode == guard.REFUSED_STATUS and refused.stdout == ""
    allowed = subprocess.run(guard.in_own_namespace(["echo", "ran"], "net:[1]"), capture_output=True, text=True)
    assert (allowed.returncode, allowed.stdout) == (0, "ran\n")
