"""Parsing what the tools print, on outputs saved from real hosts (tests/data/outputs), no Docker.

ss and ps from a testbed's server host and from loopback connections in every
closing state; iptables -S, ip -o link and tc from a host with a partition
and a portable impairment (loss and rate) in place, and after the heal; a
3-node cluster's Swarm (`docker node inspect`, all Ready, then with node3's
container paused) and a node's port probe (`netbed cluster`).
"""

from __future__ import annotations

from pathlib import Path

from netbed.backend.swarm.nodes import parse_nodes, parse_probe, probe_targets
from netbed.faults import parse_chains, parse_links, parse_root_qdisc
from netbed.observe import parse_ps, parse_ss

SAVED = Path(__file__).parents[1] / "data" / "outputs"


def saved(name: str) -> str:
    return (SAVED / name).read_text()


def test_ss_on_a_host_a_listener_and_a_child_with_their_pids():
    socks = parse_ss(saved("ss-idle.txt"))
    listener = next(s for s in socks if s.state == "LISTEN" and s.local.endswith(":9877"))
    child = next(s for s in socks if s.state == "ESTABLISHED")
    assert (listener.pids, child.pids) == ((8,), (9,))
    assert child.peer == "10.217.164.20:46556" and child.recv_q == 0
    assert any(s.local == "127.0.0.11:42499" and not s.pids for s in socks), "Docker's resolver, owned by no one here"


def test_ss_names_every_closing_state_as_rfc_9293_does_with_its_timers():
    socks = parse_ss(saved("ss-states.txt"))
    assert [s.state for s in socks] == ["LISTEN", "CLOSE-WAIT", "ESTABLISHED", "FIN-WAIT-2", "TIME-WAIT",
                                        "ESTABLISHED"]
    close_wait = socks[1]
    assert close_wait.recv_q == 1, "the FIN counts as a byte to read"
    assert socks[4].timer == "timewait,59sec,0" and socks[4].pids == ()


def test_ps_the_init_the_listener_and_its_child():
    procs = parse_ps(saved("ps.txt"))
    assert [(p.pid, p.ppid) for p in procs][:3] == [(1, 0), (8, 1), (9, 8)]
    assert procs[0].command.startswith("/sbin/docker-init -- python3") and not any(p.zombie for p in procs)


def test_iptables_shows_netbeds_chains_and_nothing_else():
    assert parse_chains(saved("iptables-S.txt")) == {"NETBED-LOSS", "NETBED-PARTITION"}
    assert parse_chains("-P INPUT ACCEPT\n-N DOCKER\n") == set()


def test_the_links_of_a_host_without_loopback_and_without_the_peer_index():
    assert parse_links(saved("ip-o-link.txt")) == ["eth0"]


def test_the_root_qdisc_impaired_and_healed():
    assert parse_root_qdisc(saved("tc-root-tbf.txt")) == "tbf"
    assert parse_root_qdisc(saved("tc-root-noqueue.txt")) == "noqueue"
    assert parse_root_qdisc("") == ""


def test_a_swarm_of_three_managers_all_ready():
    import json

    nodes = parse_nodes(json.loads(saved("swarm-node-inspect.json")))
    assert [n.hostname for n in nodes] == ["node1", "node2", "node3"]
    assert all(n.role == "manager" and n.healthy for n in nodes)
    assert [n.leader for n in nodes] == [True, False, False]
    assert [n.addr for n in nodes] == ["10.216.180.11", "10.216.180.12", "10.216.180.13"]
    assert nodes[1].describe() == "manager ready/active reachable" and nodes[0].describe().endswith(" leader")
    assert nodes[0].engine == "20.10.24+dfsg1" and len(nodes[0].id) == 25


def test_a_swarm_whose_node3_is_frozen_says_it_is_down_and_unreachable():
    import json

    nodes = {n.hostname: n for n in parse_nodes(json.loads(saved("swarm-node-inspect-node3-paused.json")))}
    assert nodes["node1"].healthy and nodes["node2"].healthy
    assert (nodes["node3"].state, nodes["node3"].reachability, nodes["node3"].healthy) == ("down", "unreachable", False)


def test_a_port_probe_from_node2_open_and_refused():
    checks = parse_probe("node2", "noise\n" + saved("swarm-port-probe.txt"))
    assert [(c.ip, c.port, c.open) for c in checks] == [
        ("10.216.180.11", 2377, True), ("10.216.180.11", 7946, True), ("10.216.180.13", 2377, True),
        ("10.216.180.13", 7946, True), ("10.216.180.13", 2378, False)]
    assert checks[-1].detail == "Connection refused" and checks[0].detail == "" and checks[0].source == "node2"


def test_a_node_probes_gossip_on_every_other_node_and_management_on_managers_only():
    addresses = {"node1": "10.0.0.11", "node2": "10.0.0.12", "node3": "10.0.0.13", "node4": "10.0.0.14"}
    targets = probe_targets(addresses, {"node1", "node2", "node3"}, "node2")
    assert targets == ["10.0.0.11:2377", "10.0.0.11:7946", "10.0.0.13:2377", "10.0.0.13:7946", "10.0.0.14:7946"]


def test_docker_version_of_both_engines_the_suite_runs_on():
    """`docker version --format '{{json .}}'` saved from Debian 12's docker.io and Debian 13's (netbed's second engine)."""
    import json

    from netbed.backend.compose.engine import describe, upstream_version

    old, new = (json.loads(saved(f"docker-version-{v}.json"))["Server"] for v in ("20.10", "26.1"))
    assert describe(old, "unix:///var/run/docker.sock") == "Docker 20.10.24 (API 1.41) at unix:///var/run/docker.sock"
    assert describe(new, "unix:///run/netbed-docker26.sock") == \
        "Docker 26.1.5 (API 1.45) at unix:///run/netbed-docker26.sock"
    assert (upstream_version(old["Version"]), upstream_version(new["Version"])) == ((20, 10, 24), (26, 1, 5))
    assert upstream_version("v29.0.0-rc.1") == (29, 0, 0) and upstream_version("unknown") == ()
    # Docker 26 accepts clients from API 1.24 on; 20.10 from 1.12 (Docker 29 raised it to 1.44)
    assert (old["MinAPIVersion"], new["MinAPIVersion"]) == ("1.12", "1.24")


def test_the_bridges_address_on_docker_26_comes_from_the_networks_configuration():
    """Docker 26 shows no gateway in a container's settings on an internal network (saved from one, with netbed's
    pinned gateway), though the bridge has the address: netbed reads it from the network's IPAM configuration."""
    import json

    from netbed.backend.compose.testbed import _gateways

    saved_run = json.loads(saved("docker26-internal-network.json"))
    nets = saved_run["container_networks"]
    assert [net["Gateway"] for net in nets.values()] == [""]
    assert _gateways(nets) == ()
    ipam = {row["Id"]: tuple(c["Gateway"] for c in row["IPAM"]["Config"]) for row in saved_run["network_list"]}
    assert _gateways(nets, ipam) == ("10.251.7.1",)
    assert _gateways({"n": {"Gateway": "10.251.7.1", "NetworkID": "x"}}, {"x": ("10.251.7.1",)}) == ("10.251.7.1",)
