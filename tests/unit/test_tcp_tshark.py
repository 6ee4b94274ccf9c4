"""netbed.tcp agrees with Wireshark: counts of retransmissions, keep-alives and RSTs, frame by frame.

Wireshark's display filter tcp.analysis.retransmission matches fast and
spurious retransmissions too (they carry that expert info as well), so
netbed counts all three (Mark.ANY_RETRANSMISSION). The analysis mirrors
tshark 4.0 (Debian 12); with that version every tcp.analysis flag is
compared, with any other version the ones netbed promises to agree on.

One difference is deliberate, and the comparison accepts it and nothing
else (see _deliberate): Wireshark marks tcp.analysis.keep_alive any segment
of length 0 or 1 whose seq is the next expected one minus 1; netbed adds that
the peer has acknowledged seq, as it has for a real probe (which re-sends a
byte already acknowledged). Where the peer never acknowledged it, a 1-byte
segment is a retransmission of data (UNP 5.13's client, whose line's first
byte goes alone to a crashed host: two_writes_then_crash) and an empty one is
no probe at all.

Without tshark these tests skip, except under CI=true, where the Makefile
installs it (apt package tshark) and its absence is a failure.
"""

from __future__ import annotations

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


WIRE = ("tcp.srcport", "tcp.dstport", "tcp.len", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags.ack")
"""What tshark reads off each segment, for judging the deliberate difference without netbed's help."""


def _tshark_rows(tshark: tuple[str, str], path: Path) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Per frame: (stream, marks, RST, relative seq); and the wire facts (stream, sport, dport, len,
    raw seq, raw ack or None)."""
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
    for f in (*FIELDS, *WIRE):
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows, wire = {}, {}
    for line in out.splitlines():
        frame, stream, seq, ack, rst, rtx, *rest = line.split("\t")
        flags, (sport, dport, seglen, seq_raw, ack_raw, ack_flag) = rest[: len(FIELDS)], rest[len(FIELDS) :]
        marks = Mark.NONE
        for name, value in zip(FIELDS, flags):
            if value:
                marks |= FIELDS[name]
        if rtx and not marks & (Mark.FAST_RETRANSMISSION | Mark.SPURIOUS_RETRANSMISSION):
            marks |= Mark.RETRANSMISSION
        rows[int(frame)] = (int(stream), marks, rst in ("1", "True"), int(seq))
        acked = _int(ack_raw) if ack_flag in ("1", "True") else None
        wire[int(frame)] = (int(stream), _int(sport), _int(dport), _int(seglen), _int(seq_raw), acked)
    return rows, wire


def _int(text: str) -> int | None:
    """A field's value; None where tshark gives none (a header too short to hold it, in fuzzed captures)."""
    return int(text) if text else None


def _deliberate(rows: dict[int, tuple], wire: dict[int, tuple]) -> dict[int, Mark]:
    """The frames where netbed deliberately differs from tshark, and the marks netbed must give them.

    tshark marks keep_alive a segment of length 0 or 1 with seq = next expected - 1. Where the peer
    has never acknowledged seq (its highest ACK so far, in tshark's own fields, is at or below seq),
    the segment is no keep-alive probe, which re-sends an acknowledged byte: netbed marks a 1-byte
    one a retransmission (a plain one: in these captures no dup ACKs come before it, which would
    make it a fast one) and an empty one with nothing; its other marks are tshark's. This is the
    only difference the comparison accepts.
    """
    highest: dict[tuple[int, int, int], int] = {}  # (stream, sport, dport) -> the peer's highest ACK of its data
    out = {}
    for f in sorted(wire):
        stream, sport, dport, seglen, seq, ack = wire[f]
        marks = rows[f][1]
        peer_ack = highest.get((stream, sport, dport))
        if marks & Mark.KEEP_ALIVE and None not in (peer_ack, seq) and (peer_ack - seq - 1) % 2**32 >= 2**31:
            out[f] = (marks & ~Mark.KEEP_ALIVE) | (Mark.RETRANSMISSION if seglen == 1 else Mark.NONE)
        if ack is not None:
            mine = (stream, dport, sport)
            if mine not in highest or 0 < (ack - highest[mine]) % 2**32 < 2**31:
                highest[mine] = ack
    return out


def _netbed_rows(path: Path) -> dict[int, tuple]:
    rows = {}
    for conn in analyze_file(path):
        for s in conn.segments:
            rows[s.frame] = (conn.id, s.marks, bool(s.flags & 0x04), s.seq)
    return rows


def _compare(tshark: tuple[str, str], path: Path) -> int:
    """Frame by frame, netbed's marks are tshark's, but for the deliberate difference (_deliberate);
    returns how many frames that difference covered."""
    theirs, wire = _tshark_rows(tshark, path)
    ours = _netbed_rows(path)
    assert sorted(theirs) == sorted(ours), "netbed and tshark see different TCP frames"
    mask = ~Mark.NONE if tshark[1].startswith("4.0.") else PROMISED
    deliberate = _deliberate(theirs, wire)
    want = {f: (v[0], deliberate.get(f, v[1]), v[2], v[3]) for f, v in theirs.items()}
    diffs = [
        f"frame {f}: tshark stream {theirs[f][0]} {Mark(theirs[f][1] & mask)!r} seq {theirs[f][3]}"
        f"{' (netbed should differ: %r)' % Mark(want[f][1] & mask) if f in deliberate else ''}, "
        f"netbed connection {ours[f][0]} {Mark(ours[f][1] & mask)!r} seq {ours[f][3]}"
        for f in sorted(theirs)
        if (want[f][0], want[f][1] & mask, want[f][2], want[f][3])
        != (ours[f][0], ours[f][1] & mask, ours[f][2], ours[f][3])
    ]
    assert not diffs, "\n".join(diffs[:20])
    # and the totals a scenario asserts
    conns = analyze_file(path)
    rtx = sum(1 for v in theirs.values() if v[1] & Mark.ANY_RETRANSMISSION)
    ka = sum(1 for v in theirs.values() if v[1] & Mark.KEEP_ALIVE)
    rst = sum(1 for v in theirs.values() if v[2])
    moved = sum(1 for m in deliberate.values() if m & Mark.RETRANSMISSION)
    assert sum(c.retransmissions for c in conns) == rtx + moved
    assert sum(c.keepalive_probes for c in conns) == ka - len(deliberate)
    assert sum(len(c.resets) for c in conns) == rst
    return len(deliberate)


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_captures_agree_with_tshark(tshark, tmp_path, name):
    path = write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]())
    differ = _compare(tshark, path)
    # the deliberate difference, exercised: tshark's "keep-alives" are the lone byte's retransmissions,
    # and the late ACK captured before its FIN was acknowledged
    assert differ == {"two_writes_then_crash": 6, "two_writes_then_reboot": 4, "late_ack_after_fin": 1}.get(name, 0)


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
    # probes generated at snd - 1 while the peer had not acknowledged everything: the difference
    assert _compare(tshark, write_pcap(tmp_path / "messy.pcap", packets)) == 95


@pytest.mark.parametrize("how", TUNNELS)
def test_tunnelled_traffic_agrees_with_tshark(tshark, tmp_path, how):
    """The inner connection, as Wireshark sees it through PPPoE, MPLS, GRE, VXLAN, Geneve or L2TP."""
    packets = AWKWARD["out_of_order_duplicate_lost"]() + messy(7, port=30000, t0=1_700_000_100.0)
    _compare(tshark, write_pcap(tmp_path / f"{how}.pcap", packets, link=how))
