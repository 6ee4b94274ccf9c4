"""Each fault, proven on the wire: what the capture shows and what the client program reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapReader

from netbed import faults, observe
from netbed.errors import NetbedError
from netbed.observe import Program, wait_for
from netbed.backend.compose.testbed import Testbed

PORT = 9877
IDLE = ["sleep", "infinity"]


@pytest.fixture
def bed(tmp_path):
    """The default topology with an idle client host (the test drives the client) and short retries."""
    with Testbed.up(run_dir=tmp_path, services={
            "client": {"command": IDLE, "sysctls": {"net.ipv4.tcp_retries2": "5"}}}) as bed:
        yield bed


def segments(bed: Testbed) -> list:
    """The client<->server TCP segments captured so far (the file is valid while tcpdump writes)."""
    ends = {bed.host("client").ip, bed.host("server").ip}
    with PcapReader(str(bed.pcap)) as reader:
        return [p for p in reader if IP in p and TCP in p and {p[IP].src, p[IP].dst} == ends]


def from_host(packets, bed: Testbed, host: str) -> list:
    return [p for p in packets if p[IP].src == bed.host(host).ip]


def data_sends(packets, bed: Testbed, host: str, payload: bytes) -> list:
    return [p for p in from_host(packets, bed, host) if bytes(p[TCP].payload) == payload]


def connected_client(bed: Testbed) -> Program:
    client = Program(bed, "client", ["python3", "-m", "netbed.apps.echo_client", bed.host("server").ip,
                                     "--port", str(PORT)])
    client.send("hello")
    client.expect_output(r"hello", timeout=10)
    return client


def test_crash_gives_retransmissions_with_doubling_gaps_and_silence_from_the_server(bed):
    client = connected_client(bed)
    faults.crash(bed, "server")
    client.send("after the crash")
    line = b"after the crash\n"
    sends = wait_for(lambda: data_sends(segments(bed), bed, "client", line), lambda s: len(s) >= 5,
                     timeout=20, what="five transmissions of the line into the crashed host")
    gaps = [float(b.time - a.time) for a, b in zip(sends, sends[1:])]
    assert all(1.5 <= later / earlier <= 2.6 for earlier, later in zip(gaps[1:], gaps[2:])), gaps
    crash_time = sends[0].time
    assert from_host([p for p in segments(bed) if p.time > crash_time], bed, "server") == [], \
        "a crashed host sends nothing: no FIN, no RST, no ACK"
    client.expect_output(r"ETIMEDOUT|timed out", timeout=30)


def test_reboot_after_crash_draws_rst_from_the_same_ip_and_mac(bed):
    client = connected_client(bed)
    faults.crash(bed, "server")
    client.send("after the crash")
    wait_for(lambda: data_sends(segments(bed), bed, "client", b"after the crash\n"), lambda s: len(s) >= 2,
             timeout=10, what="a retransmission into the crashed host")
    faults.reboot(bed, "server")
    client.expect_output(r"ECONNRESET|reset", timeout=20)
    resets = [p for p in from_host(segments(bed), bed, "server") if p[TCP].flags.R]
    assert resets, "the rebooted server answers the retransmission with RST"
    assert resets[0][Ether].src == bed.host("server").mac
    assert bed.status("server") == "running"


def test_paused_server_kernel_still_acks_but_echoes_only_after_unpause(bed):
    client = connected_client(bed)
    faults.pause(bed, "server")
    client.send("while paused")
    line = b"while paused\n"
    sent = wait_for(lambda: data_sends(segments(bed), bed, "client", line), timeout=10, what="the line on the wire")
    end_seq = sent[0][TCP].seq + len(line)
    wait_for(lambda: [p for p in from_host(segments(bed), bed, "server") if p[TCP].ack == end_seq],
             timeout=10, what="the paused server's kernel to ACK the line")
    assert data_sends(segments(bed), bed, "server", line) == [], "no echo while paused"
    with pytest.raises(NetbedError):
        faults.pause(bed, "server")
    faults.unpause(bed, "server")
    client.expect_output(r"while paused", timeout=10)


def test_killing_the_forked_child_sends_fin_and_the_next_line_draws_rst(bed):
    client = connected_client(bed)
    server_ip = bed.host("server").ip
    child = next(s.pids[0] for s in observe.sockets(bed, "server")
                 if s.state == "ESTABLISHED" and s.local.endswith(f":{PORT}") and s.pids)
    faults.kill(bed, "server", signal="SIGTERM", pid=child)
    wait_for(lambda: [p for p in from_host(segments(bed), bed, "server") if p[TCP].flags.F], timeout=10,
             what="the dead child's FIN")
    client.send("after the kill")
    wait_for(lambda: [p for p in from_host(segments(bed), bed, "server") if p[TCP].flags.R], timeout=10,
             what="an RST for the line sent to the dead child")
    client.expect_output(r"terminated prematurely|ECONNRESET", timeout=10)
    assert server_ip


def test_partition_then_heal_within_the_retransmission_window_delivers_the_data(bed):
    client = connected_client(bed)
    faults.partition(bed, "client", "server")
    client.send("across the cut")
    line = b"across the cut\n"
    wait_for(lambda: data_sends(segments(bed), bed, "client", line), lambda s: len(s) >= 3, timeout=10,
             what="retransmissions across the cut")
    assert data_sends(segments(bed), bed, "server", line) == []
    healed = faults.heal(bed)
    assert healed
    client.expect_output(r"across the cut", timeout=15)
    with pytest.raises(NetbedError, match="nothing to heal"):
        faults.heal(bed)


def test_faults_on_unknown_or_stopped_hosts_are_refused_and_change_nothing(bed):
    with pytest.raises(NetbedError, match="no host 'nosuch'"):
        faults.crash(bed, "nosuch")
    faults.kill(bed, "server")
    with pytest.raises(NetbedError, match="not running"):
        faults.pause(bed, "server")
    with pytest.raises(NetbedError, match="not running"):
        faults.crash(bed, "server")
    faults.reboot(bed, "server")
    assert bed.status("server") == "running"


def test_shutdown_sends_fin_and_then_the_host_is_silent(bed):
    client = connected_client(bed)
    faults.shutdown(bed, "server", grace=2)
    assert bed.status("server") == "exited"
    wait_for(lambda: [p for p in from_host(segments(bed), bed, "server") if p[TCP].flags.F], timeout=10,
             what="the FIN of the server's orderly shutdown")
    client.send("after the shutdown")
    client.expect_output(r"terminated prematurely", timeout=10)


def test_impair_delay_slows_the_handshake_by_the_amount_asked(bed):
    mechanism = faults.impair(bed, "client", faults.Impairment(delay_ms=100))
    connected_client(bed)
    packets = segments(bed)
    synack = next(p for p in from_host(packets, bed, "server") if p[TCP].flags == "SA")
    ack = next(p for p in from_host(packets, bed, "client") if p.time > synack.time)
    assert 0.085 <= float(ack.time - synack.time) <= 0.160, (mechanism, float(ack.time - synack.time))
    faults.heal(bed, "client")


RTO_MAX = Path("/proc/sys/net/ipv4/tcp_rto_max_ms")  # Linux 6.15 and later


@pytest.fixture
def lossy_bed(tmp_path):
    """As bed, with the server's retransmission timeout capped at 1 s where the kernel allows it."""
    server = {"sysctls": {"net.ipv4.tcp_rto_max_ms": "1000"}} if RTO_MAX.exists() else {}
    with Testbed.up(run_dir=tmp_path, services={
            "client": {"command": IDLE, "sysctls": {"net.ipv4.tcp_retries2": "5"}}, "server": server}) as bed:
        yield bed


def test_impair_loss_shows_as_retransmissions_in_the_proportion_asked(lossy_bed):
    """Each echo lost on its way into the client is sent again, so retransmitted / sent estimates the loss.

    The connection is made before the impairment (a lost SYN-ACK waits 1 s,
    then 2 s, ...: not what is measured here). With the server's RTO capped at
    1 s, a line's 60 s allow some fifty losses in a row (0.3^50: never);
    without the cap (kernels before 6.15) eight (RTO 0.2 s doubling: 51 s;
    nine in a row, 0.3^9 per line, fail about one run in 800). The proportion
    must lie within four standard errors of the 30 % asked (one in 16,000).
    """
    bed = lossy_bed
    client = connected_client(bed)
    faults.impair(bed, "client", faults.Impairment(loss_pct=30))
    for n in range(60):
        client.send(f"line {n}")
        client.expect_output(rf"^line {n}$", timeout=60)
    echoes = [p for p in from_host(segments(bed), bed, "server") if bytes(p[TCP].payload).startswith(b"line ")]
    retransmitted = len(echoes) - len({p[TCP].seq for p in echoes})
    p, n = 0.30, len(echoes)
    margin = 4 * (p * (1 - p) / n) ** 0.5
    assert abs(retransmitted / n - p) <= margin, (retransmitted, n, margin)
    faults.heal(bed, "client")


@pytest.mark.parametrize("args, message", [
    (["pause", "nosuch"], "no host 'nosuch'"),
    (["crash", "server", "-p", "netbed-no-such-project"], "no testbed 'netbed-no-such-project'"),
    (["heal"], "nothing to heal"),
])
def test_cli_answers_bad_input_with_one_line(bed, args, message):
    import subprocess
    import sys

    if "-p" not in args:
        args = [*args, "-p", bed.project]
    done = subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert bed.status("server") == "running" and bed.status("client") == "running"
