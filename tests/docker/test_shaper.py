"""The NFQUEUE shaper (netbed.apps.shaper) delays a host's outgoing packets on a real engine.

Two hosts on an internal network; one direction of the server's traffic (its
OUTPUT, or its INPUT from the network) goes through the shaper, so each
request/response round trip gains the delay once. After heal (rule deleted,
then the shaper stopped) the RTT is back to normal.
"""

from __future__ import annotations

import json
import statistics
import uuid

import pytest

from netbed.backend.compose import engine
from netbed.observe import wait_for

PORT = 9000
QUEUE = 7
RULES = {"OUTPUT": ["OUTPUT", "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"],
         "INPUT": ["INPUT", "!", "-i", "lo", "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]}

ECHO_SERVER = f"""
import socket
srv = socket.create_server(("0.0.0.0", {PORT}))
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(100):
        conn.sendall(data)
    conn.close()
"""

# Prints a JSON list of round-trip times in ms: 20 one-byte request/response exchanges.
RTT_CLIENT = """
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], {port}), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(20):
    t = time.monotonic()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    rtts.append((time.monotonic() - t) * 1000)
print(json.dumps(rtts))
""".format(port=PORT)

# Prints the seconds one TCP connect to the server takes.
CONNECT_TIMER = f"""
import socket, sys, time
start = time.monotonic()
socket.create_connection((sys.argv[1], {PORT}), timeout=60)
print(time.monotonic() - start)
"""

# Sends to the client for 3 s; the client's side prints MB/s received.
BULK_RECEIVER = """
import socket, time
srv = socket.create_server(("0.0.0.0", 9200))
conn, _ = srv.accept()
n, start = 0, time.monotonic()
while data := conn.recv(1 << 20):
    n += len(data)
print(n / (time.monotonic() - start) / 1e6)
"""
BULK_SENDER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9200))
chunk, start = b"x" * 65536, time.monotonic()
while time.monotonic() - start < 3:
    s.sendall(chunk)
s.close()
"""


@pytest.fixture
def pair(docker_engine):
    """(server, client, server_ip) on a fresh internal network; all removed afterwards."""
    cli, tag = docker_engine, uuid.uuid4().hex[:8]
    made = []
    net = cli.networks.create(f"nbshaper-{tag}", driver="bridge", internal=True)
    try:
        for role in ("server", "client"):
            made.append(cli.containers.run(engine.IMAGE, ["sleep", "infinity"], detach=True, init=True,
                                           name=f"nbshaper-{role}-{tag}", network=net.name))
        server, client = made
        server.reload()
        server_ip = server.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        server.exec_run(["python3", "-c", ECHO_SERVER], detach=True)
        probe = f"import socket; socket.create_connection(('{server_ip}', {PORT}), timeout=1)"
        wait_for(lambda: client.exec_run(["python3", "-c", probe]).exit_code, lambda code: code == 0,
                 timeout=20, what="the echo server to listen")
        yield server, client, server_ip
    finally:
        for c in made:
            c.remove(force=True)
        net.remove()


def rtts(client, server_ip: str) -> list[float]:
    done = client.exec_run(["python3", "-c", RTT_CLIENT, server_ip])
    assert done.exit_code == 0, done.output.decode()
    return json.loads(done.output)


def iptables(cli, target, *args: str) -> None:
    cli.containers.run(engine.IMAGE, ["iptables", *args], network_mode=f"container:{target.id}",
                       cap_add=["NET_ADMIN"], remove=True)


def start_shaper(cli, target, *args: str):
    """The shaper in TARGET's namespace, once it says it is ready."""
    helper = cli.containers.run(engine.IMAGE, ["python3", "-m", "netbed.apps.shaper", "--queue", str(QUEUE), *args],
                                detach=True, network_mode=f"container:{target.id}", cap_add=["NET_ADMIN"])
    try:
        def state():
            helper.reload()
            return helper.status, helper.logs().decode()
        wait_for(state, lambda s: "ready" in s[1] or s[0] == "exited", timeout=20, what="the shaper's ready line")
        status, logs = state()
        assert status == "running" and f"shaper: queue {QUEUE} delay" in logs, logs
    except BaseException:
        helper.remove(force=True)
        raise
    return helper


def stop_shaper(helper) -> str:
    helper.stop(timeout=5)
    try:
        assert helper.wait(timeout=10)["StatusCode"] == 0, helper.logs().decode()
        return helper.logs().decode()
    finally:
        helper.remove(force=True)


@pytest.mark.parametrize("chain,jitter", [("OUTPUT", 0), ("OUTPUT", 40), ("INPUT", 0)])
def test_shaper_adds_the_delay_to_each_round_trip_and_heal_removes_it(docker_engine, pair, chain, jitter):
    cli, (server, client, server_ip) = docker_engine, pair
    base = statistics.median(rtts(client, server_ip))
    assert base < 10, f"unshaped RTT {base:.1f} ms"

    helper = start_shaper(cli, server, "--delay", "100", "--jitter", str(jitter), "--seed", "1")
    try:
        iptables(cli, server, "-A", *RULES[chain])
        shaped = rtts(client, server_ip)
        iptables(cli, server, "-D", *RULES[chain])
    finally:
        logs = stop_shaper(helper)
    assert "packets delayed, 0 receive overflows" in logs, logs
    # Never early; typically on time. (A busy machine can add tens of ms to a single
    # round trip, so the upper bound is on the median, not on every sample.)
    added = statistics.median(shaped) - base
    assert 70 <= added <= 130, f"added {added:.1f} ms for 100 ms (RTTs {shaped})"
    assert min(shaped) >= 100 - jitter - 1, f"a round trip beat the shortest delay: {shaped}"
    if jitter:
        assert max(shaped) - min(shaped) > jitter / 2, f"jitter {jitter} ms left RTTs flat: {shaped}"

    healed = statistics.median(rtts(client, server_ip))
    assert healed < 10, f"RTT {healed:.1f} ms after heal"


def test_bulk_tcp_keeps_its_throughput_when_the_receivers_input_is_delayed(docker_engine, pair):
    """On INPUT the held packets are no longer charged to the sender's socket, so TCP Small
    Queues does not throttle it (on the sender's OUTPUT, 10 ms of delay cut it to ~0.6 MB/s)."""
    cli, (server, client, _server_ip) = docker_engine, pair
    client.reload()
    client_ip = next(iter(client.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    helper = start_shaper(cli, client, "--delay", "10")
    try:
        iptables(cli, client, "-A", *RULES["INPUT"])
        receiver = client.exec_run(["python3", "-c", BULK_RECEIVER], stream=True)
        wait_for(lambda: client.exec_run(["ss", "-Htln", "sport = :9200"]).output, bool, timeout=20,
                 what="the bulk receiver to listen")
        sent = server.exec_run(["python3", "-c", BULK_SENDER, client_ip])
        assert sent.exit_code == 0, sent.output.decode()
        rate = float(b"".join(receiver.output))
        iptables(cli, client, "-D", *RULES["INPUT"])
    finally:
        stop_shaper(helper)
    assert rate > 20, f"bulk TCP through a 10 ms INPUT shaper: {rate:.2f} MB/s"


def test_stopping_the_shaper_releases_the_packets_it_holds(docker_engine, pair):
    """SIGTERM accepts held packets at once: a SYN held for a 30 s delay completes its connect."""
    cli, (server, client, server_ip) = docker_engine, pair
    helper = start_shaper(cli, server, "--delay", "30000")
    try:
        iptables(cli, server, "-A", *RULES["INPUT"])
        connect = client.exec_run(["python3", "-c", CONNECT_TIMER, server_ip], stream=True)
        wait_for(lambda: server.exec_run(["cat", "/proc/net/netfilter/nfnetlink_queue"]).output.split(),
                 lambda fields: len(fields) > 2 and int(fields[2]) > 0, timeout=10, what="a packet held in the queue")
    finally:
        logs = stop_shaper(helper)
    assert "done: 0 packets" not in logs, logs
    assert float(b"".join(connect.output)) < 10, f"the held SYN waited for its delay; {logs}"
    iptables(cli, server, "-D", *RULES["INPUT"])   # queue-bypass: with no shaper, packets pass
    assert statistics.median(rtts(client, server_ip)) < 10


def test_shaper_without_net_admin_says_so_in_one_line(docker_engine):
    done = docker_engine.containers.run(
        engine.IMAGE, ["python3", "-m", "netbed.apps.shaper", "--queue", "3", "--delay", "10"],
        network_mode="none", detach=True)
    try:
        assert done.wait(timeout=20)["StatusCode"] == 1
        assert done.logs(stdout=False).decode() == \
            "shaper: cannot bind queue 3: Operation not permitted (needs NET_ADMIN)\n"
    finally:
        done.remove(force=True)
