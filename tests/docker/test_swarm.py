"""One testbed across a 3-node Swarm (`netbed cluster`): every fault across nodes, proven from the merged capture.

The server and the client run on different nodes, so every segment between
them crosses the overlay (VXLAN) and is recorded twice, leaving one node and
reaching the other; the merged capture must hold each once. One cluster
serves the module (xdist_group: one worker runs it).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import machine_state
from judging import CLIENTS, MOUNT, SERVERS, assert_verdict, said

from netbed import backend, faults
from netbed.errors import NetbedError
from netbed.backend.swarm import cluster as clusters
from netbed.observe import Program, wait_for
from netbed.scenarios import Programs, find, runner
from netbed.scenarios.lab import Verdict
from netbed.tcp import CloseKind, analyze, read_frames

pytestmark = [pytest.mark.xdist_group("swarm"), pytest.mark.cluster]
IDLE = ["sleep", "infinity"]
PLACE = {"server": "node2", "client": "node3"}


@pytest.fixture(scope="module")
def cluster(docker_engine):
    """One 3-node cluster for the module; the node faults done on it leave the machine's network as it was."""
    name = f"nbs-{uuid.uuid4().hex[:6]}"
    before = machine_state.snapshot()
    try:
        clusters.up(3, name)
        yield name
    finally:
        clusters.down(name)
        differences = before.differences(machine_state.snapshot())
        if differences:
            machine_state.restore(before)
        assert not differences, f"the machine's network changed: {differences}"


@pytest.fixture
def bed(cluster, tmp_path):
    with backend.up(cluster=cluster, run_dir=tmp_path / "run", place=PLACE,
                    services={"client": {"command": IDLE, "sysctls": {"net.ipv4.tcp_retries2": "5"}}}) as bed:
        yield bed


def client_of(bed) -> Program:
    """netbed's client on its node, its first line echoed by the server on another, and that seen on the wire
    (the nodes' recordings arrive here a moment after the frames)."""
    client = Program(bed, "client", ["python3", "-m", "netbed.apps.echo_client", bed.host("server").ip])
    client.send("hello")
    client.expect_output("hello", timeout=15)
    wait_for(lambda: echo_conn(bed), lambda c: c is not None and any(s.payload_len for s in c.segments
                                                                       if s.sender == "server"),
             timeout=10, what="the echo in the merged capture")
    return client


def echo_conn(bed):
    conns = [c for c in analyze(str(bed.pcap), bed.names(), allow_truncated=True) if c.server.port == 9877]
    return conns[-1] if conns else None


def from_server_after(conn, ts: float) -> list:
    return [s for s in conn.segments if s.sender == "server" and s.ts > ts]


def assert_each_frame_once(pcap: Path) -> None:
    """Every TCP segment once (each IPv4 packet of a connection has its own IP ID, so none repeats byte for
    byte; a host's repeated IPv6 multicast reports do, and are left aside)."""
    frames = [f.data for f in read_frames(pcap) if f.data[12:14] == b"\x08\x00" and f.data[23] == 6]
    assert len(frames) >= 7 and len(frames) == len(set(frames)), f"{len(frames) - len(set(frames))} frames twice"


def test_hosts_are_placed_on_the_nodes_asked_and_the_capture_holds_each_frame_once(bed):
    assert {h: bed.node_of(h) for h in bed.hosts} == PLACE
    client_of(bed)
    conn = echo_conn(bed)
    assert conn.flags[:3] == ["S", "SA", "A"] and conn.flags.count("S") == 1
    bed.down()
    assert bed.pcap.suffix == ".pcapng" and not bed.capture_error
    assert_each_frame_once(bed.pcap)


def sent_into_silence(bed, client: Program, line: str, what: str):
    """The client's line, retransmitted 3 times into the silence a fault made, and nothing from the server."""
    cut = echo_conn(bed).segments[-1].ts
    client.send(line)
    conn = wait_for(lambda: echo_conn(bed), lambda c: c.retransmissions >= 3, timeout=20, what=what)
    assert not from_server_after(conn, cut), "nothing came from the server"
    return conn


def test_crash_then_reboot_across_nodes(bed):
    client = client_of(bed)
    faults.crash(bed, "server")
    sent_into_silence(bed, client, "into the crash",
                      "the client's line retransmitted into the crashed server on another node")
    faults.reboot(bed, "server")
    client.expect_output("reset|ECONNRESET", timeout=30)
    conn = wait_for(lambda: echo_conn(bed), lambda c: c.resets == ["server"], timeout=10,
                    what="the rebooted server's RST in the merged capture")
    assert conn.close_kind == CloseKind.RESET_BY_SERVER


def test_partition_then_heal_across_nodes(bed):
    client = client_of(bed)
    faults.partition(bed, "client", "server")
    client.send("across the cut")
    wait_for(lambda: echo_conn(bed), lambda c: c.retransmissions >= 2, timeout=20,
             what="retransmissions into the partition")
    assert faults.heal(bed) == ["client: partition", "server: partition"]
    client.expect_output("across the cut", timeout=20)


def test_pause_shutdown_and_kill_across_nodes(bed):
    client = client_of(bed)
    faults.pause(bed, "server")
    paused_at = echo_conn(bed).segments[-1].ts
    client.send("to a frozen server")
    conn = wait_for(lambda: echo_conn(bed), lambda c: any(s.payload_len == 0 for s in from_server_after(c, paused_at)),
                    timeout=15, what="the frozen server's kernel to ACK the line")
    assert not [s for s in from_server_after(conn, paused_at) if s.payload_len], "no echo while frozen"
    faults.unpause(bed, "server")
    client.expect_output("to a frozen server", timeout=15)
    faults.shutdown(bed, "server", grace=1)
    wait_for(lambda: echo_conn(bed), lambda c: any(who == "server" and "F" in flags
                                                   for who, flags in zip(c.senders, c.flags)),
             timeout=15, what="the server's FIN at its shutdown")
    assert bed.status("server") == "exited"


def test_impair_and_kill_across_nodes(bed):
    client = client_of(bed)
    faults.impair(bed, "server", faults.Impairment(delay_ms=300))
    sent_at = echo_conn(bed).segments[-1].ts
    client.send("slowly")
    client.expect_output("slowly", timeout=15)
    conn = wait_for(lambda: echo_conn(bed), lambda c: any(s.payload_len for s in from_server_after(c, sent_at)),
                    timeout=10, what="the delayed echo in the merged capture")
    line = next(s for s in conn.segments if s.ts > sent_at and s.sender == "client" and s.payload_len)
    echo = next(s for s in from_server_after(conn, sent_at) if s.payload_len)
    assert echo.ts - line.ts >= 0.3, "the line reached the server 300 ms late (the delay is on what reaches it)"
    assert faults.heal(bed, "server") == ["server: impairment"]
    faults.kill(bed, "server")  # the host's main process: its server dies, its kernel closes the connection
    wait_for(lambda: echo_conn(bed), lambda c: any(who == "server" and ("F" in flags or "R" in flags)
                                                   for who, flags in zip(c.senders, c.flags)),
             timeout=15, what="the killed server's FIN or RST across the nodes")


def test_a_node_crash_silences_every_host_on_it_and_its_reboot_resets(bed):
    client = client_of(bed)
    faults.node_crash(bed, "node2")
    sent_into_silence(bed, client, "into the dead node", "retransmissions into the crashed node")
    assert bed.status("client") == "running"
    faults.node_reboot(bed, "node2")
    client.expect_output("reset|ECONNRESET", timeout=30)
    assert bed.status("server") == "running"


def test_a_node_partition_is_healed(bed):
    client = client_of(bed)
    faults.node_partition(bed, "node3")
    client.send("from the cut node")
    wait_for(lambda: echo_conn(bed), lambda c: c.retransmissions >= 2, timeout=20,
             what="the client's node cut from the others: its line retransmitted")
    assert faults.heal(bed) == ["node3: partition"]
    client.expect_output("from the cut node", timeout=20)


def test_engines_given_by_endpoint_are_a_swarm_of_your_own(cluster, tmp_path):
    """As on machines of the user's: netbed knows only the engines' endpoints, its tools run in the hosts and
    its network faults from helpers on their nodes, and it refuses to touch a node itself."""
    nodes = {node.name: node.endpoint for node in clusters.attach(cluster).nodes}
    with backend.up(nodes=nodes, run_dir=tmp_path / "run", place=PLACE,
                    services={"client": {"command": IDLE}}) as bed:
        assert not bed._beside_from_machine()
        client = client_of(bed)
        faults.crash(bed, "server")
        client.send("into the crash")
        wait_for(lambda: echo_conn(bed), lambda c: c.retransmissions >= 2, timeout=20,
                 what="retransmissions into the server crashed on another machine's engine")
        with pytest.raises(NetbedError, match="not a node netbed made"):
            faults.node_crash(bed, "node2")


def test_the_cli_brings_a_testbed_up_across_the_cluster_and_faults_it(cluster, tmp_path):
    project = f"sw-{uuid.uuid4().hex[:8]}"

    def netbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=180,
                              cwd=tmp_path, stdin=subprocess.DEVNULL)

    up = netbed("up", "-p", project, "--cluster", cluster, "--place", "server=node1", "--place", "client=node3")
    try:
        assert up.returncode == 0, up.stderr
        assert "on node1" in up.stdout and "on node3" in up.stdout, up.stdout
        status = netbed("status", "-p", project)
        assert status.returncode == 0 and "on node1" in status.stdout, status.stderr
        crash = netbed("crash", "server", "-p", project)
        assert crash.returncode == 0, crash.stderr
        pcap = tmp_path / "runs" / project
        conn = wait_for(lambda: [c for c in analyze(str(pcap / "capture-node1.pcap"), allow_truncated=True)
                                 if c.server.port == 9877],
                        lambda conns: conns and conns[-1].retransmissions >= 2, timeout=30,
                        what="the demo client's lines retransmitted into the crashed server (node1's recording)")
        assert conn
    finally:
        down = netbed("down", "-p", project)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "runs" / project / "capture.pcapng").is_file()


USERS_TEST = """
import pytest


@pytest.mark.netbed(place={"server": "node3"})
def test_across_nodes(testbed, faults):
    assert testbed.node_of("server") == "node3" and testbed.node_of("client") != "node3"
    faults.pause("server")
    assert testbed.status("server") == "paused"
"""


def test_the_pytest_plugin_brings_each_testbed_up_across_the_cluster(cluster, tmp_path):
    (tmp_path / "test_users.py").write_text(USERS_TEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_users.py",
                           "--netbed-cluster", cluster], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]


SCENARIOS = [  # the user's programs, server and client on different nodes: the same verdicts as on one engine
    ("server-process-killed", "fork-waitpid", "lines", Verdict.PASSED),
    ("sigpipe", "fork-waitpid", "two-writes", Verdict.PASSED),
    ("server-host-crash", "fork-waitpid", "lines", Verdict.PASSED),
    ("server-host-reboot", "fork-waitpid", "lines", Verdict.PASSED),
    ("server-host-shutdown", "fork-waitpid", "lines", Verdict.PASSED),
    ("partition-heal", "fork-waitpid", "lines", Verdict.PASSED),
    ("server-host-crash", "fork-waitpid", "ignores-errors", Verdict.FAILED),
]


def test_the_users_programs_are_judged_across_nodes(cluster, built, tmp_path):
    first, server, client, _ = SCENARIOS[0]
    done = subprocess.run([sys.executable, "-m", "netbed", "run", first, "--cluster", cluster, "--out",
                           str(tmp_path / "cli"), "--server-cmd", SERVERS[server], "--client-cmd", CLIENTS[client],
                           "--mount", f"{built}:{MOUNT}"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "1 passed, 0 failed" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    results = []
    for scenario, server, client, _ in SCENARIOS[1:]:
        programs = Programs(server_cmd=SERVERS[server], client_cmd=CLIENTS[client], mounts=(f"{built}:{MOUNT}",))
        results.append(runner.run(find([scenario])[0], tmp_path / f"{scenario}-{client}", programs, cluster=cluster))
    for (_, _, _, verdict), result in zip(SCENARIOS[1:], results):
        assert result is not None
        assert_verdict(result, verdict, ())
        assert Path(result.out_dir, "capture.pcapng").is_file(), said(result)
