"""netbed's notes in the capture: Wireshark and tshark show each fault and program event among the frames."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from netbed import faults
from netbed.observe import Program
from netbed.scenarios import find, runner
from netbed.tcp import analyze
from netbed.tcp.annotate import read_notes
from netbed.backend.compose.testbed import Testbed


def comments(pcapng) -> list[tuple[int, str]]:
    """(frame number, comment) as tshark shows them (the Makefile installs tshark for the tests)."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is needed: `make test-tools` installs it"
    done = subprocess.run([tshark, "-r", str(pcapng), "-Y", "frame.comment", "-T", "fields", "-e", "frame.number",
                           "-e", "frame.comment", "-E", "aggregator=|"], capture_output=True, text=True, check=True)
    found = []
    for line in done.stdout.splitlines():
        number, text = line.split("\t", 1)
        found += [(int(number), c) for c in text.split("|")]  # several comments on one frame
    return found


def test_tshark_lists_a_scenarios_faults_in_order_where_the_wire_changes(tmp_path, docker_engine):
    result = runner.run(find(["server-host-reboot"])[0], tmp_path)
    assert result.passed, [c for c in result.checks if not c.passed]
    pcapng = tmp_path / "server-host-reboot" / "capture.pcapng"
    assert not (tmp_path / "server-host-reboot" / "capture.pcap").exists(), "one capture file"
    seen = comments(pcapng)
    faults_seen = [text for _, text in seen if text.startswith("netbed: crash") or text.startswith("netbed: reboot")]
    assert faults_seen == ["netbed: crash server", "netbed: reboot server"]
    crash_frame = next(n for n, text in seen if text == "netbed: crash server")
    reboot_frame = next(n for n, text in seen if text == "netbed: reboot server")
    [conn] = [c for c in analyze(str(pcapng), result.names) if str(c.client) in result.connections]
    first_retransmission = min(s.frame for s in conn.segments if s.is_retransmission)
    reset = min(s.frame for s in conn.segments if "R" in s.letters)
    assert crash_frame <= first_retransmission < reboot_frame <= reset, (seen, first_retransmission, reset)
    assert any(text.startswith("netbed: client: types ") for _, text in seen), "the lines typed are there too"
    assert any(text.startswith("netbed: client: ") and " ended, " in text for _, text in seen), "and how it ended"
    notes = [n.text for n in read_notes(pcapng)]
    assert notes.index("crash server") < notes.index("reboot server")


def test_faults_and_programs_of_the_python_api_are_noted(tmp_path, docker_engine):
    with Testbed.up(run_dir=tmp_path, services={"client": {"command": ["sleep", "infinity"]}}) as bed:
        client = Program(bed, "client", ["python3", "-m", "netbed.apps.echo_client", bed.host("server").ip])
        client.send("hello")
        client.expect_output("hello", timeout=10)
        faults.kill(bed, "server")
        client.send("anyone there?")
        end = client.wait(timeout=20)
    texts = [text for _, text in comments(bed.pcap)]
    assert bed.pcap.suffix == ".pcapng"
    started = next(i for i, t in enumerate(texts) if t.startswith("netbed: client: python3 -m netbed.apps.echo_client"))
    killed = texts.index("netbed: kill server")
    ended = next(i for i, t in enumerate(texts) if t.startswith(f"netbed: client: python3 ended, {end}"))
    assert started < killed < ended


def test_a_fault_that_fails_is_noted_as_failed(tmp_path, docker_engine):
    with Testbed.up(run_dir=tmp_path) as bed:
        with pytest.raises(faults.FaultError):
            faults.heal(bed, "server")
    notes = [n.text for n in read_notes(bed.pcap)]
    assert notes[-2:] == ["heal server", "heal server: failed: heal: nothing to heal on server (no partition or "
                                         "impairment in place)"]
