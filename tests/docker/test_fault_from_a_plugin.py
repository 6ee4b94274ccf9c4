"""A fault that is not netbed's, added as one module (tests/faultplugin.py), used from the CLI and from a scenario.

The module reaches netbed the way someone else's package would: an installed
distribution with an entry point in the group "netbed.faults". Nothing in
netbed names it; the CLI command, the lab verb and `heal` come from the registry.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from faultplugin import install

from netbed.observe import wait_for
from netbed.tcp import analyze

PORT = 9877


def netbed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


def with_plugin(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(install(tmp_path / "plugin")),
                                                         os.environ.get("PYTHONPATH", "")])}


def echo_connection(pcap: Path):
    """The demo client's connection to the server's echo port, as captured so far."""
    conns = [c for c in analyze(str(pcap), allow_truncated=True) if c.server.port == PORT]
    return conns[-1] if conns else None


def echoes(conn) -> int:
    return sum(1 for s in conn.segments if s.sender == "server" and s.payload_len)


def test_a_fault_from_a_plugin_is_a_cli_command_proven_on_the_wire_and_healed(tmp_path, docker_engine):
    env, project, run_dir = with_plugin(tmp_path), f"plugin-{uuid.uuid4().hex[:8]}", tmp_path / "run"
    listed = netbed("--help", env=env)
    assert "blackhole" in listed.stdout and "Drop every segment" in listed.stdout, listed.stdout
    up = netbed("up", "-p", project, "--run-dir", str(run_dir), env=env)
    try:
        assert up.returncode == 0, up.stderr
        pcap = run_dir / "capture.pcap"
        wait_for(lambda: echo_connection(pcap), lambda c: c is not None and echoes(c) >= 2,
                 timeout=20, what="the demo client's lines echoed")

        done = netbed("blackhole", "server", "--port", str(PORT), "-p", project, env=env)
        assert done.returncode == 0 and "blackhole: server done" in done.stdout, done.stderr
        cut_at = time.time()
        wait_for(lambda: echo_connection(pcap), lambda c: c.retransmissions >= 3, timeout=20,
                 what="the client's lines retransmitted into the blackhole")
        conn = echo_connection(pcap)
        assert not [s for s in conn.segments if s.sender == "server" and s.payload_len and s.ts > cut_at + 0.5], \
            "the server echoed nothing while its port was a blackhole"

        healed = netbed("heal", "server", "-p", project, env=env)
        assert healed.returncode == 0 and healed.stdout.strip() == "healed server: blackhole", healed.stdout
        healed_at = time.time()
        wait_for(lambda: echo_connection(pcap),
                 lambda c: any(s.sender == "server" and s.payload_len and s.ts > healed_at for s in c.segments),
                 timeout=20, what="the server's echo after the heal")
        again = netbed("heal", "server", "-p", project, env=env)
        assert again.returncode == 1 and "nothing to heal" in again.stderr, again.stderr
    finally:
        netbed("down", "-p", project, env=env)


SCENARIO = '''
"""A port made a blackhole, then healed: the client's line is retransmitted into it, then echoed."""

import sys
from pathlib import Path

from netbed.scenarios.catalogue import scenario
from netbed.scenarios.client_errors import resent
from netbed.scenarios.lab import Lab
from netbed.scenarios.runner import run


@scenario("blackhole-heal", "-", takes=("server", "client"))
def blackhole_heal(lab: Lab) -> None:
    client = lab.client()
    client.send("hello")
    client.expect_echo("hello")
    lab.blackhole("server", port=9877)
    client.send("into the hole")
    lab.wait_on_wire(client, lambda c: len(resent(c.segments)) >= 3, timeout=15,
                     what="3 retransmissions into the blackhole")
    lab.heal()
    client.expect_echo("into the hole", timeout=15)
    lab.key_connections.append(client.connection)
    lab.check("retransmitted into the blackhole, echoed after the heal",
              len(resent(client.connection.segments)) >= 3, "3 or more retransmissions",
              str(len(resent(client.connection.segments))))


result = run(blackhole_heal, Path(sys.argv[1]))
print(result.verdict.name, result.out_dir)
'''


def test_a_fault_from_a_plugin_is_a_verb_of_the_scenario_lab(tmp_path, docker_engine):
    script = tmp_path / "blackhole_heal.py"
    script.write_text(SCENARIO)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], capture_output=True, text=True,
                          timeout=300, env=with_plugin(tmp_path), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    verdict, out_dir = done.stdout.split()
    assert verdict == "PASSED", (Path(out_dir) / "report.json").read_text()
    ladder = (Path(out_dir) / "ladder.txt").read_text()
    assert "netbed: blackhole server port=9877" in ladder and "netbed: heal" in ladder, ladder


USERS_TEST = """
def test_the_blackhole_from_the_faults_fixture(testbed, faults):
    faults.blackhole("server", port=9877)
    code, rules = testbed.netns("server", ["iptables", "-S", "NETBED-BLACKHOLE"])
    assert code == 0 and "--dport 9877 -j DROP" in rules, rules
    assert faults.heal("server") == ["server: blackhole"]
"""


def test_a_fault_from_a_plugin_is_in_the_pytest_fixture(tmp_path, docker_engine):
    (tmp_path / "test_users.py").write_text(USERS_TEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_users.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=with_plugin(tmp_path),
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
