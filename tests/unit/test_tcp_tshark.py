"""netbed.tcp agrees with Wireshark: counts of retransmissions, keep-alives and RSTs, frame by frame.

Wireshark's display filter tcp.analysis.retransmission matches fast and
spurious retransmissions too (they carry that expert info as well), so
netbed counts all three (Mark.ANY_RETRANSMISSION). The analysis mirrors
tshark 4.0 (Debian 12); with that version every tcp.analysis flag is
compared, with any other version the ones netbed promises to agree on.

Without tshark these tests skip, except under CI=true, where the Makefile
installs it (apt package tshark) and its absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tcp_craft import AWKWARD, TUNNELS, messy, write_pcap, write_pcapng  # noqa: E402

from netbed.tcp import Mark, analyze_file  # noqa: E402

FIELDS = {
    "tcp.analysis.fast_retransmission": Mark.FAST_RETRANSMISSION,
    "tcp.analysis.spurious_retransmission": Mark.SPURIOUS_RETRANSMISSION,
    "tcp.analysis.out_of_order": Mark.OUT_OF_ORDER,
    "tcp.analysis.keep_alive": Mark.KEEP_ALIVE,
    "tcp.analysis.keep_alive_ack": Mark.KEEP_ALIVE_ACK,
    "tcp.analysis.zero_window": Mark.ZERO_WINDOW,
    "tcp.analysis.zero_window_probe": Mark.ZERO_WINDOW_PROBE,
    "tcp.analysis.zero_window_probe_ack": Mark.ZERO_WINDOW_PROBE_ACK,
    "tcp.analysis.duplicate_ack": Mark.DUPLICATE_ACK,
    "tcp.analysis.window_update": Mark.WINDOW_UPDATE,
    "tcp.analysis.lost_segment": Mark.LOST_SEGMENT,
    "tcp.analysis.ack_lost_segment": Mark.ACKED_UNSEEN,
}
PROMISED = Mark.ANY_RETRANSMISSION | Mark.KEEP_ALIVE | Mark.ZERO_WINDOW_PROBE


@pytest.fixture(scope="module")
def tshark() -> tuple[str, str]:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is not installed, and CI=true: the Makefile installs it (apt package tshark)")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.split()[2] if out.startswith("TShark") else ""
    return path, version


def _tshark_rows(tshark: tuple[str, str], path: Path) -> dict[int, tuple]:
    cmd = [
        tshark[0],
        "-n",
        "-r",
        str(path),
        "-Y",
        "tcp",
        "-T",
        "fields",
        "-E",
        "occurrence=f",
        "-e",
        "frame.number",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.seq",
        "-e",
        "tcp.ack",
        "-e",
        "tcp.flags.reset",
        "-e",
        "tcp.analysis.retransmission",
    ]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = {}
    for line in out.splitlines():
        frame, stream, seq, ack, rst, rtx, *flags = line.split("\t")
        marks = Mark.NONE
        for name, value in zip(FIELDS, flags):
            if value:
                marks |= FIELDS[name]
        if rtx and not marks & (Mark.FAST_RETRANSMISSION | Mark.SPURIOUS_RETRANSMISSION):
            marks |= Mark.RETRANSMISSION
        rows[int(frame)] = (int(stream), marks, rst in ("1", "True"), int(seq))
    return rows


def _netbed_rows(path: Path) -> dict[int, tuple]:
    rows = {}
    for conn in analyze_file(path):
        for s in conn.segments:
            rows[s.frame] = (conn.id, s.marks, bool(s.flags & 0x04), s.seq)
    return rows


def _compare(tshark: tuple[str, str], path: Path) -> None:
    theirs = _tshark_rows(tshark, path)
    ours = _netbed_rows(path)
    assert sorted(theirs) == sorted(ours), "netbed and tshark see different TCP frames"
    mask = ~Mark.NONE if tshark[1].startswith("4.0.") else PROMISED
    diffs = [
        f"frame {f}: tshark stream {theirs[f][0]} {Mark(theirs[f][1] & mask)!r} seq {theirs[f][3]}, "
        f"netbed connection {ours[f][0]} {Mark(ours[f][1] & mask)!r} seq {ours[f][3]}"
        for f in sorted(theirs)
        if (theirs[f][0], theirs[f][1] & mask, theirs[f][2], theirs[f][3])
        != (ours[f][0], ours[f][1] & mask, ours[f][2], ours[f][3])
    ]
    assert not diffs, "\n".join(diffs[:20])
    # and the totals a scenario asserts
    conns = analyze_file(path)
    rtx = sum(1 for v in theirs.values() if v[1] & Mark.ANY_RETRANSMISSION)
    ka = sum(1 for v in theirs.values() if v[1] & Mark.KEEP_ALIVE)
    rst = sum(1 for v in theirs.values() if v[2])
    assert sum(c.retransmissions for c in conns) == rtx
    assert sum(c.keepalive_probes for c in conns) == ka
    assert sum(len(c.resets) for c in conns) == rst


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_captures_agree_with_tshark(tshark, tmp_path, name):
    path = write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]())
    _compare(tshark, path)


@pytest.mark.parametrize("link", ["sll", "sll2", "raw", "ppp", "ppp-hdlc", "ipoib"])
def test_pcapng_and_other_links_agree_with_tshark(tshark, tmp_path, link):
    packets = AWKWARD["out_of_order_duplicate_lost"]()
    _compare(tshark, write_pcapng(tmp_path / "x.pcapng", packets, link=link, endian=">", tsresol=9))


def test_messy_traffic_agrees_with_tshark(tshark, tmp_path):
    """Seeded random connections: losses, duplicates, reordering, keep-alives, zero windows, wraparound."""
    packets = []
    for seed in range(60):
        packets += messy(seed, port=20000 + 10 * seed, t0=1_700_000_000.0 + 60 * seed)
    packets.sort(key=lambda p: float(p.time))
    _compare(tshark, write_pcap(tmp_path / "messy.pcap", packets))


@pytest.mark.parametrize("how", TUNNELS)
def test_tunnelled_traffic_agrees_with_tshark(tshark, tmp_path, how):
    """The inner connection, as Wireshark sees it through PPPoE, MPLS, GRE, VXLAN, Geneve or L2TP."""
    packets = AWKWARD["out_of_order_duplicate_lost"]() + messy(7, port=30000, t0=1_700_000_100.0)
    _compare(tshark, write_pcap(tmp_path / f"{how}.pcap", packets, link=how))
