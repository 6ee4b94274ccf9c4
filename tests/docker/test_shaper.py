"""The NFQUEUE shaper (netbed.apps.shaper) delays a host's outgoing packets on a real engine.

Two hosts on an internal network; the server's OUTPUT goes through the shaper,
so each request/response round trip gains the delay once (only one direction
is shaped). After heal (rule deleted, shaper stopped) the RTT is back to normal.
"""

from __future__ import annotations

import json
import statistics
import uuid

import pytest

from netbed import engine
from netbed.observe import wait_for

PORT = 9000
QUEUE = 7
RULE = ["OUTPUT", "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]

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
        wait_for(lambda: client.exec_run(["python3", "-c", f"import socket; socket.create_connection(('{server_ip}', {PORT}), timeout=1)"]).exit_code,
                 lambda code: code == 0, timeout=20, what="the echo server to listen")
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


@pytest.mark.parametrize("jitter", [0, 40])
def test_shaper_adds_the_delay_to_each_round_trip_and_heal_removes_it(docker_engine, pair, jitter):
    cli, (server, client, server_ip) = docker_engine, pair
    base = statistics.median(rtts(client, server_ip))
    assert base < 10, f"unshaped RTT {base:.1f} ms"

    helper = start_shaper(cli, server, "--delay", "100", "--jitter", str(jitter), "--seed", "1")
    try:
        iptables(cli, server, "-A", *RULE)
        shaped = rtts(client, server_ip)
        iptables(cli, server, "-D", *RULE)
    finally:
        logs = stop_shaper(helper)
    assert "packets delayed, 0 receive overflows" in logs, logs
    added = statistics.mean(shaped) - base
    assert 70 <= added <= 130, f"added {added:.1f} ms for 100 ms (RTTs {shaped})"
    if jitter:
        assert min(shaped) >= 100 - jitter - 5 and max(shaped) <= 100 + jitter + 30, shaped
        assert max(shaped) - min(shaped) > jitter / 2, f"jitter {jitter} ms left RTTs flat: {shaped}"
    else:
        assert all(95 <= r <= 130 for r in shaped), shaped

    healed = statistics.median(rtts(client, server_ip))
    assert healed < 10, f"RTT {healed:.1f} ms after heal"


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
