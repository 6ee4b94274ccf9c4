"""Captures annotated with netbed's notes: what Wireshark shows, and what netbed reads back."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.utils import rdpcap

from netbed.tcp import analyze, render_ladder
from netbed.tcp.annotate import Note, annotate, read_notes
from netbed.tcp.pcap import read_frames
from tcp_craft import Conversation, write_pcap

T0_NS = 1_700_000_000 * 10**9


@pytest.fixture
def capture(tmp_path):
    conv = Conversation()
    conv.handshake()
    conv.send("client", "PA", b"hello\n")
    conv.send("server", "PA", b"hello\n")
    conv.send("client", "A")
    return write_pcap(tmp_path / "capture.pcap", conv.packets)


def _times(path) -> list[int]:
    return [f.ts_ns for f in read_frames(str(path))]


def test_frames_are_kept_exactly_and_notes_land_on_the_first_frame_at_or_after_them(capture, tmp_path):
    times = _times(capture)
    notes = [Note(times[0] - 1000, "client started"), Note(times[3], "crash server"),
             Note(times[3] + 1, "reboot server"), Note(times[-1] + 10**9, "client exited 104 ECONNRESET")]
    out = tmp_path / "capture.pcapng"
    assert annotate(capture, out, reversed(notes)) == len(times)
    assert [(f.ts_ns, f.data, f.wire_len) for f in read_frames(str(out))] == \
        [(f.ts_ns, f.data, f.wire_len) for f in read_frames(str(capture))]
    assert [len(c.segments) for c in analyze(str(out))] == [len(c.segments) for c in analyze(str(capture))]
    assert read_notes(out) == notes, "every note back, at its own instant, in order"
    comments = [(i, p.comments) for i, p in enumerate(rdpcap(str(out))) if p.comments]
    assert comments == [(0, [b"netbed: client started"]), (3, [b"netbed: crash server"]),
                        (4, [b"netbed: reboot server"]), (len(times) - 1, [b"netbed: client exited 104 ECONNRESET"])]


def test_tshark_lists_the_notes_in_order(capture, tmp_path, tshark):
    times = _times(capture)
    out = tmp_path / "capture.pcapng"
    annotate(capture, out, [Note(times[2], "crash server"), Note(times[4], "reboot server")])
    done = subprocess.run([tshark[0], "-r", str(out), "-Y", "frame.comment", "-T", "fields", "-e", "frame.number",
                           "-e", "frame.comment"], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["3\tnetbed: crash server", "5\tnetbed: reboot server"]


def test_no_notes_and_no_frames(tmp_path):
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [])
    out = tmp_path / "out.pcapng"
    assert annotate(empty, out, [Note(T0_NS, "only a note")]) == 0
    assert read_notes(out) == [Note(T0_NS, "only a note")], "kept in the section comment"
    assert read_notes(empty) == [], "a pcap has no notes"


def test_the_ladder_draws_the_notes_between_the_segments_at_their_instants(capture, tmp_path):
    times = _times(capture)
    out = tmp_path / "capture.pcapng"
    annotate(capture, out, [Note(times[3] - 1, "crash server"), Note(times[-1] + 10**9, "after the connection")])
    lines = subprocess.run([sys.executable, "-m", "netbed", "ladder", str(out)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    drawn = [i for i, line in enumerate(lines) if "~~ netbed:" in line]
    assert len(drawn) == 1 and lines[drawn[0]].endswith("~~ netbed: crash server"), lines
    frames = [line.split()[0] for line in lines[drawn[0] - 1:drawn[0] + 2:2]]
    assert frames == ["3", "4"], "between the third and the fourth frame"
    conn = analyze(str(out))[0]
    assert "crash server" in render_ladder(conn, events=read_notes(out))
    assert "crash server" not in render_ladder(conn)
