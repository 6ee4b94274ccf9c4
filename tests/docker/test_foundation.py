"""The default topology on a real engine: echoes through the server, every frame captured, nothing left."""

from __future__ import annotations

import uuid

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from netbed.backend.compose import engine
from netbed.observe import wait_for
from netbed.backend.compose.testbed import COMPOSE_PROJECT, Testbed, default_compose_file, free_prefix

ECHO_PORT = 9877


def leftovers(cli, project: str) -> list[str]:
    label = {"label": f"{COMPOSE_PROJECT}={project}"}
    return ([f"container {c.name}" for c in cli.containers.list(all=True, filters=label)]
            + [f"network {n.name}" for n in cli.networks.list(filters=label)]
            + [f"volume {v.name}" for v in cli.volumes.list(filters=label)])


def tcp_between(pcap, a: str, b: str) -> list:
    return [p for p in rdpcap(str(pcap)) if IP in p and TCP in p and {p[IP].src, p[IP].dst} == {a, b}]


def assert_handshake_and_data(packets, client_ip: str, server_ip: str) -> None:
    first = packets[:3]
    assert [(p[IP].src, str(p[TCP].flags)) for p in first] == [
        (client_ip, "S"), (server_ip, "SA"), (client_ip, "A")], "the client's three-way handshake"
    assert first[0][TCP].dport == ECHO_PORT
    sent = b"".join(bytes(p[TCP].payload) for p in packets if p[IP].src == client_ip)
    echoed = b"".join(bytes(p[TCP].payload) for p in packets if p[IP].src == server_ip)
    assert b"line 1" in sent and b"line 1" in echoed, "the first line went out and came back"


def test_testbed_echoes_through_the_server_and_captures_every_frame(tmp_path, docker_engine):
    with Testbed.up(run_dir=tmp_path) as bed:
        wait_for(lambda: bed.logs("client"), lambda log: "line 3" in log, timeout=30,
                 what="three echoes in the client's output")
        client, server, project = bed.host("client"), bed.host("server"), bed.project
    packets = tcp_between(bed.pcap, client.ip, server.ip)
    assert_handshake_and_data(packets, client.ip, server.ip)
    assert {p[Ether].src for p in packets if p[IP].src == server.ip} == {server.mac}
    assert bed.capture_stats is not None and bed.capture_stats.dropped == 0
    assert leftovers(docker_engine, project) == []


def test_compose_up_runs_the_demo_as_written(tmp_path, docker_engine):
    """Plain `docker compose up` of compose.yaml: its own capture is healthy before the hosts start."""
    project = f"netbed-demo-{uuid.uuid4().hex[:8]}"
    env = {"NETBED_NET": free_prefix(docker_engine), "NETBED_BRIDGE": f"nbd{uuid.uuid4().hex[:8]}",
           "NETBED_CAPTURE_DIR": str(tmp_path)}
    files = [default_compose_file()]
    def run(*args, check=True):
        return engine.compose(list(args), project=project, files=files, env=env, check=check)
    try:
        run("up", "-d")
        wait_for(lambda: run("logs", "client").stdout, lambda log: "line 2" in log, timeout=30,
                 what="two echoes in the demo client's output")
    finally:
        run("down", "--volumes", "--timeout", "2", check=False)
    prefix = env["NETBED_NET"]
    assert_handshake_and_data(tcp_between(tmp_path / "demo.pcap", f"{prefix}.20", f"{prefix}.10"),
                              f"{prefix}.20", f"{prefix}.10")
    assert leftovers(docker_engine, project) == []


def test_compose_file_is_valid(docker_engine):
    done = engine.compose(["config", "-q"], files=[default_compose_file()], check=False)
    assert done.returncode == 0, done.stderr


def test_a_new_offline_base_untags_the_ones_it_supersedes(docker_engine):
    """Only netbed-base tags other than the current one go; the images they named stay if anything else uses them."""
    from netbed.progress import silent, step

    host = docker_engine.images.get(engine.IMAGE)
    old = f"{engine.OFFLINE_BASE.split(':')[0]}:superseded-{uuid.uuid4().hex[:8]}"
    host.tag(old)
    had_current_base = engine.has_image(docker_engine, engine.OFFLINE_BASE)
    with step(silent, "base image") as s:
        engine._untag_superseded_bases(docker_engine, s)
    assert not docker_engine.images.list(name=old), f"{old} is still tagged"
    assert engine.IMAGE in docker_engine.images.get(host.id).tags, "the image behind the old tag stays"
    assert engine.has_image(docker_engine, engine.OFFLINE_BASE) == had_current_base, "the current base stays"
