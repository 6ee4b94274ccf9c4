"""`netbed cluster`: a real 3-node Swarm of engine containers on this machine, used and then removed whole.

One test, in phases, so that one cluster serves it under any xdist
distribution: up; `netbed cluster status --json` (3 nodes Ready and Active,
the host image current on each, each engine's socket on the machine); the
doctor (all green, its overlay echo included); an attachable internal
overlay on a netbed subnet with an echo server on node1 and a client on
node2 at static addresses, judged from a capture of the VXLAN frames
(`udp port 4789`) on the nodes' bridge on the machine, which netbed.tcp
decapsulates; the doctor on a frozen node; then `down`, after which nothing named after the cluster is
left (containers, networks, volumes, the sockets folder, cgroups) and the
machine's routes, links and iptables are as they were.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest

from netbed import backend
from netbed.backend.compose import engine
from netbed.backend.compose.testbed import free_prefix
from netbed.backend.swarm import cluster as clusters
from netbed.labels import CLUSTER, ROLE
from netbed.observe import wait_for
from netbed.tcp import analyze

import machine_state

NETBED = str(Path(sys.executable).with_name("netbed"))
pytestmark = pytest.mark.cluster


def run_on(cli: docker.DockerClient, name: str, argv: list[str], network: str, ip: str, labels: dict) -> str:
    """A netbed-host container on a node's engine at a static address on the overlay; its id."""
    networking = cli.api.create_networking_config({network: cli.api.create_endpoint_config(ipv4_address=ip)})
    made = cli.api.create_container(engine.IMAGE, argv, name=name, labels=labels, networking_config=networking,
                                    host_config=cli.api.create_host_config(network_mode=network))
    cli.api.start(made["Id"])
    return made["Id"]


def capture(cli: docker.DockerClient, bridge: str, folder: Path, labels: dict):
    """tcpdump of the VXLAN frames on the nodes' bridge, from a container on the machine's network."""
    # --immediate-mode: without it libpcap hands frames over in blocks, and those of the last block are lost at
    # the SIGTERM that ends the recording
    box = cli.containers.run(engine.IMAGE, ["tcpdump", "-i", bridge, "-U", "--immediate-mode", "-Z", "root", "-w",
                                            "/out/vxlan.pcap", "udp port 4789"],
                             detach=True, network_mode="host", cap_add=["NET_RAW", "NET_ADMIN"], labels=labels,
                             volumes={str(folder): {"bind": "/out", "mode": "rw"}})
    wait_for(lambda: box.logs().decode(errors="replace"), lambda said: "listening on" in said, timeout=20,
             what="tcpdump to listen on the nodes' bridge")
    return box


def test_a_three_node_cluster_carries_an_echo_across_nodes_and_leaves_nothing(tmp_path, docker_engine):
    name = f"nbt-{uuid.uuid4().hex[:6]}"
    before = machine_state.snapshot()
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        made = clusters.up(3, name)
        timings["up"] = time.monotonic() - started

        # status, as a person reads it back from the engines
        done = subprocess.run([NETBED, "cluster", "status", "--name", name, "--json"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        nodes = shown["nodes"]
        assert [n["name"] for n in nodes] == ["node1", "node2", "node3"]
        assert [(n["state"], n["availability"], n["role"], n["image"]) for n in nodes] == [
            ("ready", "active", "manager", "current")] * 3, nodes
        assert len({n["swarm_id"] for n in nodes}) == 3 and all(n["swarm_id"] for n in nodes)
        assert all(Path(n["endpoint"].removeprefix("unix://")).is_socket() for n in nodes)
        assert shown["subnet"].endswith(".0/24") and all(n["address"] for n in nodes)
        assert made.nodes == tuple(clusters.Node(**n) for n in nodes)

        # the doctor
        t = time.monotonic()
        findings = backend.cluster_diagnose(name)
        timings["doctor"] = time.monotonic() - t
        assert all(f.ok for f in findings), [f for f in findings if not f.ok]
        assert any(f.name.startswith("overlay data path") for f in findings)

        # an echo between node1 and node2 on an internal overlay, captured as VXLAN on the machine's bridge
        t = time.monotonic()
        node1, node2 = made.nodes[0].client(), made.nodes[1].client()
        prefix = free_prefix(docker_engine)
        labels = {CLUSTER: name, ROLE: "test"}
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{prefix}.0/24")])
        net = node1.networks.create(f"{name}-bed", driver="overlay", attachable=True, internal=True, ipam=ipam,
                                    labels=labels)
        assert net.attrs["Internal"] and net.attrs["Attachable"]
        recorder = capture(docker_engine, made.bridge, tmp_path, labels)
        server = run_on(node1, "server", ["python3", "-m", "netbed.apps.echo_server"], net.name, f"{prefix}.10",
                        labels)
        wait_for(lambda: node1.api.exec_start(node1.api.exec_create(server, ["ss", "-Hltn"])["Id"]).decode(),
                 lambda said: ":9877" in said, timeout=20, what="the echo server to listen on node1")
        client = run_on(node2, "client", ["sh", "-c", f"printf 'hello\\nacross nodes\\n' | "
                                          f"python3 -m netbed.apps.echo_client {prefix}.10"],
                        net.name, f"{prefix}.20", labels)
        assert node2.api.wait(client, timeout=60)["StatusCode"] == 0, node2.api.logs(client)
        assert node2.api.logs(client).decode() == "hello\nacross nodes\n"
        pcap = tmp_path / "vxlan.pcap"
        wait_for(lambda: analyze(pcap, allow_truncated=True), lambda conns: conns and conns[-1].states["server"]
                 and conns[-1].states["server"][-1] == "CLOSED", timeout=10,
                 what="the close's last ACK in the VXLAN capture")  # on the wire, not after a pause
        recorder.kill(signal="SIGTERM")
        recorder.wait(timeout=20)
        timings["echo"] = time.monotonic() - t

        from scapy.all import IP, UDP, rdpcap

        outer = rdpcap(str(pcap))
        assert outer and {(p[IP].src, p[IP].dst) for p in outer} == {
            (made.nodes[0].address, made.nodes[1].address), (made.nodes[1].address, made.nodes[0].address)}
        assert {p[UDP].dport for p in outer} == {4789}
        conns = analyze(pcap, {f"{prefix}.10": "server", f"{prefix}.20": "client"})
        assert len(conns) == 1, conns
        conn = conns[0]
        assert (conn.client.ip, conn.server.ip, conn.server.port) == (f"{prefix}.20", f"{prefix}.10", 9877)
        assert conn.flags[:3] == ["S", "SA", "A"] and conn.close_kind.value == "client-first"
        assert conn.states["client"][-1] == "TIME-WAIT" and conn.states["server"][-1] == "CLOSED"
        assert conn.retransmissions == 0 and not conn.resets

        # a frozen node is named at once (its socket is not waited on), and loading a current image does nothing
        docker_engine.api.pause(made.nodes[2].container)
        try:
            t = time.monotonic()
            said = {f.name: f for f in backend.cluster_diagnose(name)}
            assert time.monotonic() - t < 10
            assert not said["node3 engine"].ok and "(container paused)" in said["node3 engine"].detail
            assert said["node1 engine"].ok and said["node2 swarm"].ok
        finally:
            docker_engine.api.unpause(made.nodes[2].container)
        loaded = subprocess.run([NETBED, "cluster", "load-image", "--name", name], capture_output=True, text=True,
                                timeout=300)
        assert loaded.returncode == 0 and "current on every node" in loaded.stderr, loaded.stderr
    finally:
        t = time.monotonic()
        done = subprocess.run([NETBED, "cluster", "down", "--name", name], capture_output=True, text=True,
                              timeout=300)
        timings["down"] = time.monotonic() - t
        print("cluster of 3 nodes on 2 shared cores: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))

    assert done.returncode == 0, done.stderr
    label = {"label": f"{CLUSTER}={name}"}
    assert not docker_engine.api.containers(all=True, filters=label)
    assert not [c for c in docker_engine.api.containers(all=True) if any(n.startswith(f"/{name}") for n in c["Names"])]
    assert not docker_engine.api.networks(filters=label) and not docker_engine.api.networks(names=[f"{name}-nodes"])
    volumes = docker_engine.api.volumes().get("Volumes") or []
    assert not [v["Name"] for v in volumes if v["Name"].startswith(name) or (v.get("Labels") or {}).get(CLUSTER)
                == name]
    assert not clusters.folder(name).exists()
    assert not clusters.cgroups(name)
    differences = before.differences(machine_state.snapshot())
    if differences:
        machine_state.restore(before)
    assert not differences, f"the machine's network changed: {differences}"
    again = subprocess.run([NETBED, "cluster", "down", "--name", name], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to remove" in again.stdout
