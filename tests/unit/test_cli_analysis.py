"""`netbed analyze` and `netbed ladder` on captures crafted with scapy; bad files get one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tcp_craft import crash_then_reboot, write_pcap, write_pcapng


def netbed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbed", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def reboot_pcap(tmp_path):
    return write_pcap(tmp_path / "reboot.pcap", crash_then_reboot())


def test_analyze_json_has_the_documented_fields(reboot_pcap):
    done = netbed("analyze", str(reboot_pcap), "--json", "--name", "10.0.0.2=server", "--name", "10.0.0.3=client")
    assert done.returncode == 0, done.stderr
    [conn] = json.loads(done.stdout)
    assert conn["client"] == "10.0.0.3:40000" and conn["server"] == "10.0.0.2:9877"
    assert conn["flags"][:3] == ["S", "SA", "A"] and conn["flags"][-1] == "R"
    assert conn["retransmissions"] == 5 and conn["keepalive_probes"] == 0
    assert conn["resets"] == ["server"] and conn["close"] == "reset-by-server"
    assert conn["states"]["client"][-2:] == ["ESTABLISHED", "CLOSED"]


def test_ladder_draws_the_connection_and_writes_svg(tmp_path):
    pcap = write_pcapng(tmp_path / "reboot.pcapng", crash_then_reboot())
    done = netbed("ladder", str(pcap), "--svg", str(tmp_path / "l.svg"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[retransmission]") == 5 and "R seq" in done.stdout
    assert (tmp_path / "l.svg").read_text().startswith("<svg")


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"root:x:0:0:root:/root:/bin/bash\n", "not a pcap"),
    (None, "truncated"),
])
def test_bad_files_get_one_line_and_exit_1(tmp_path, reboot_pcap, content, message):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(reboot_pcap.read_bytes()[:100] if content is None else content)
    for verb in ("analyze", "ladder"):
        done = netbed(verb, str(bad))
        assert done.returncode == 1
        assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_missing_file_is_named(tmp_path):
    done = netbed("analyze", str(tmp_path / "nope.pcap"))
    assert done.returncode == 1 and "no file" in done.stderr


def test_analyze_says_what_it_read_and_what_it_left_out(tmp_path, reboot_pcap):
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import ARP, Ether
    from scapy.packet import Raw
    from scapy.utils import rdpcap, wrpcap

    big = IP(src="10.0.0.3", dst="10.0.0.2", proto=6) / Raw(b"x" * 3000)
    extra = [Ether() / ARP(), Ether() / IP() / UDP(), *(Ether() / f for f in fragment(big, 1000))]
    mixed = tmp_path / "mixed.pcap"
    wrpcap(str(mixed), list(rdpcap(str(reboot_pcap))) + extra)
    done = netbed("analyze", str(mixed))
    assert done.returncode == 0, done.stderr
    tcp = len(rdpcap(str(reboot_pcap)))
    assert done.stdout.splitlines()[-1] == (
        f"{tcp + 5} frames read, {tcp} TCP, 2 not TCP, 3 IP fragments (not reassembled)"
    )
