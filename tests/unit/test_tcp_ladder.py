"""netbed.tcp.ladder: text and SVG ladders, and following a capture that is still being written."""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tcp_craft import AWKWARD, NAMES, frame, write_pcap  # noqa: E402

from netbed.tcp import analyze_file, follow, render_ladder, render_ladder_svg  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def conn_of(tmp_path: Path, name: str, names=NAMES):
    return analyze_file(write_pcap(tmp_path / f"{name}.pcap", AWKWARD[name]()), names)[0]


def test_text_ladder(tmp_path):
    text = render_ladder(conn_of(tmp_path, "four_segment_close"))
    lines = text.splitlines()
    assert lines[0] == "connection 0: cli 10.0.0.3:40000 > srv 10.0.0.2:9877"
    assert lines[1].split()[:4] == ["frame", "time", "cli", "10.0.0.3:40000"] and lines[1].endswith("srv 10.0.0.2:9877")
    assert lines[2].split() == ["CLOSED", "LISTEN"]
    syn = lines[3]
    assert syn.split()[:4] == ["1", "0.000000", "SYN-SENT", "--"] and syn.endswith("SYN-RECEIVED")
    assert "<mss 1460,sackOK,wscale 7>" in syn and "-->" in syn
    synack = lines[4]
    assert "<-- S. seq 0 ack 1 win 502" in synack and "ESTABLISHED" in synack
    fin = next(line for line in lines if " F. " in line)
    assert "FIN-WAIT-1" in fin and fin.endswith("CLOSE-WAIT")
    # the server's state column lines up with its header
    col = lines[1].index("srv")
    assert syn.index("SYN-RECEIVED") == col and lines[2].index("LISTEN") == col
    assert lines[-2] == "close: client-first; retransmissions: 0; keep-alive probes: 0"
    assert lines[-1].startswith("states: client CLOSED > SYN-SENT > ESTABLISHED")


def test_text_ladder_marks_notes_pointer_and_window(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    text = render_ladder(conn, notes={9: "step 2"}, pointer=13, around=11, context=2)
    lines = text.splitlines()
    assert any("[retransmission]" in line and line.endswith("<- step 2") for line in lines)
    assert any(line.startswith(">>") and " R " in line for line in lines)
    assert "... 9 earlier segments ..." in text and "later" not in text
    assert "... 1 later segment ..." in render_ladder(conn, around=10, context=2)
    assert "RST from server" in text


def test_guessed_roles_are_said(tmp_path):
    text = render_ladder(conn_of(tmp_path, "no_syn"))
    assert "(roles: SYN not captured; the server is guessed as the lower port)" in text


def test_svg_ladder(tmp_path):
    conn = conn_of(tmp_path, "crash_then_reboot")
    svg = render_ladder_svg(conn)
    root = ET.fromstring(svg)  # well-formed and self-contained
    assert root.tag == f"{SVG}svg" and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    arrows = [line for line in root.iter(f"{SVG}line") if line.get("marker-end")]
    assert len(arrows) == conn.packets
    red = [a for a in arrows if a.get("stroke") == "#cf222e"]
    orange = [a for a in arrows if a.get("stroke") == "#d4730b"]
    assert len(red) == 1 and len(orange) == 5 and all(a.get("stroke-dasharray") for a in orange)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "[retransmission]" in texts and "SYN-SENT" in texts and "TIME-WAIT" not in texts
    assert "close: reset-by-server" in texts and "1.6 s later" in texts or "later" in texts
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert len(titles) == conn.packets and titles[0].startswith("frame 1: cli > srv S")
    # arrows slope down in time, and later segments sit lower
    ys = [float(a.get("y1")) for a in arrows]
    assert ys == sorted(ys) and all(float(a.get("y2")) > float(a.get("y1")) for a in arrows)


def test_svg_escapes_names(tmp_path):
    conn = conn_of(tmp_path, "four_segment_close", {"10.0.0.3": "<cli&1>"})
    svg = render_ladder_svg(conn, title='a "title" <b>')
    ET.fromstring(svg)
    assert "&lt;cli&amp;1&gt;" in svg


# --- follow ---------------------------------------------------------------------------------------


def _records(packets) -> list[bytes]:
    out = []
    for p in packets:
        raw = bytes(frame(p, "ether"))
        t = float(p.time)
        out.append(struct.pack("<IIII", int(t), round(t % 1 * 1e6), len(raw), len(raw)) + raw)
    return out


HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


class _Pacer:
    """Lets a writer go on only once the reader has read all there is.

    The follower asks stop() only when it finds no file or no more bytes; two
    such questions after a write mean that a read after the write came back
    empty, so the reader has met the file exactly as written so far.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.asked = 0
        self.done = False

    def stop(self) -> bool:
        with self.cond:
            self.asked += 1
            self.cond.notify_all()
            return self.done

    def wait_for_reader(self) -> None:
        with self.cond:
            start = self.asked
            assert self.cond.wait_for(lambda: self.asked >= start + 2, timeout=10), "the follower stopped reading"

    def finish(self) -> None:
        with self.cond:
            self.done = True


def test_follow_a_growing_capture_with_split_records(tmp_path):
    """Like tcpdump -U: the file appears late, records arrive in pieces, each cut mid-way until read so."""
    path = tmp_path / "live.pcap"
    recs = _records(AWKWARD["four_segment_close"]())
    pacer = _Pacer()

    failed: list[BaseException] = []

    def writer():
        try:
            pacer.wait_for_reader()  # it has looked for the file and not found it
            with open(path, "wb", buffering=0) as f:
                pieces = [HEADER[:10], HEADER[10:]] + [part for rec in recs for part in (rec[:30], rec[30:])]
                for piece in pieces:
                    f.write(piece)
                    pacer.wait_for_reader()  # a partial header or record: the reader must wait for the rest
        except BaseException as e:  # noqa: BLE001  (re-raised in the test below)
            failed.append(e)
        finally:
            pacer.finish()

    th = threading.Thread(target=writer)
    th.start()
    lines = list(follow(path, NAMES, stop=pacer.stop, poll=0.01))
    th.join()
    if failed:
        raise failed[0]
    segs = [line for line in lines if " -- " in line or "<-- " in line]
    assert lines[0] == "[0] new connection: cli 10.0.0.3:40000 > srv 10.0.0.2:9877"
    assert len(segs) == 11
    assert "SYN-SENT" in segs[0] and segs[0].rstrip().endswith("SYN-RECEIVED")
    assert "TIME-WAIT" in segs[-2] or "TIME-WAIT" in segs[-3]


def test_follow_stops_when_idle_and_does_not_spin(tmp_path):
    path = write_pcap(tmp_path / "done.pcap", AWKWARD["port_reuse"]())
    cpu, wall = time.process_time(), time.monotonic()
    lines = list(follow(path, idle=0.5, poll=0.05))
    wall = time.monotonic() - wall
    cpu = time.process_time() - cpu
    assert sum(1 for line in lines if "new connection" in line) == 2
    assert any(line.startswith("[1]") for line in lines)
    assert 0.45 < wall < 3 and cpu < 0.3


def test_follow_a_file_that_never_appears_ends_on_stop(tmp_path):
    deadline = time.monotonic() + 0.3
    assert list(follow(tmp_path / "never.pcap", stop=lambda: time.monotonic() > deadline, poll=0.05)) == []


def test_follow_bad_bytes_raise(tmp_path):
    from netbed.tcp import PcapError

    path = tmp_path / "bad.pcap"
    path.write_bytes(b"definitely not a capture")
    with pytest.raises(PcapError):
        list(follow(path, idle=0.2, poll=0.05))


# --- the C speedups draw the same lines as the Python code -----------------------------------


def _agree(conn, **kw) -> int:  # noqa: ANN001 - a Connection
    """The ladder drawn by the C speedups and by the Python code, line by line; returns the lines."""
    from netbed.tcp.ladder import _drawer, ladder_lines, ladder_text

    assert _drawer(conn, True, True) is not None  # the C path is taken
    pure = list(ladder_lines(conn, speedups=False, **kw))
    fast = list(ladder_lines(conn, speedups=True, **kw))
    for k, (p, f) in enumerate(zip(pure, fast)):
        assert f == p, f"line {k} of connection {conn.id} differs:\nC:      {f!r}\nPython: {p!r}"
    assert len(fast) == len(pure)
    assert "".join(ladder_text(conn, speedups=True, **kw)) == "".join(line + "\n" for line in pure)
    return len(pure)


def _notes(conn, n: int = 7):  # noqa: ANN001
    """netbed's notes before, across and after the connection, some at a segment's own instant."""
    from netbed.tcp.annotate import Note

    first, last = conn.first_ns, conn.last_ns
    stamps = [first - 5, first, last, last + 5] + [first + (last - first) * k // n for k in range(1, n)]
    some = [s.ts for s in conn.segments[1::max(1, conn.packets // 3)]]
    stamps += [round(ts * 1e9) for ts in some]
    return [Note(ts, f"note {k}") for k, ts in enumerate(stamps)]


@pytest.fixture(scope="module")
def fast_drawing():
    from netbed.tcp import scan

    if scan._speedups is None:
        if os.environ.get("CI") == "true":
            pytest.fail("netbed.tcp._speedups is not built, and CI=true: pip install -e . builds it (needs gcc)")
        pytest.skip("netbed.tcp._speedups is not built")


def test_the_c_ladder_is_the_python_one_on_long_connections(tmp_path, fast_drawing):
    sys.path.insert(0, str(Path(__file__).parent.parent.parent / "bench"))
    from tcp_shapes import SHAPES

    from netbed.tcp import connections

    path = tmp_path / "bulk.pcap"
    SHAPES["bulk"](path, 24_000)  # four transfers of 6,000 segments: SACK, dup ACKs, retransmissions
    conns = sorted(connections(path, {"10.0.0.2": "server"}), key=lambda c: c.id)
    assert len(conns) == 4 and all(c.packets > 5000 for c in conns)
    assert sum(c.retransmissions for c in conns) > 0
    for conn in conns:  # read again from the file, several mapped windows each
        assert _agree(conn) == conn.packets + 5
        _agree(conn, events=_notes(conn))
        _agree(conn, options=False)
    held = sorted(connections(path, keep_segments=lambda c: c.id == 1), key=lambda c: c.id)
    _agree(held[1], events=_notes(held[1]))


@pytest.mark.parametrize("how", ["file", "held", "pcapng"])
def test_the_c_ladder_is_the_python_one_on_awkward_and_messy_connections(tmp_path, fast_drawing, how):
    from tcp_craft import messy, write_pcapng

    from netbed.tcp import connections

    captures = [(name, make()) for name, make in AWKWARD.items()]
    captures += [(f"messy{seed}", messy(seed, n_conns=4, port=41000 + 10 * seed)) for seed in range(12)]
    drawn = 0
    for name, packets in captures:
        write = write_pcapng if how == "pcapng" else write_pcap
        path = write(tmp_path / f"{name}.cap", packets)
        keep = (lambda c: True) if how == "held" else True
        for conn in connections(path, NAMES, keep_segments=keep, allow_truncated=True):
            _agree(conn)
            _agree(conn, events=_notes(conn, 3), options=False)
            drawn += 1
    assert drawn > 60


def test_the_c_ladder_writes_every_flag_as_the_python_one(tmp_path, fast_drawing):
    from scapy.layers.inet import IP, TCP

    from netbed.tcp import connections

    packets = []
    for k, flags in enumerate([0x02, 0x12] + list(range(512))):
        sender, receiver = (("10.0.0.3", 40000), ("10.0.0.2", 9877))[:: 1 if k % 3 else -1]
        opts = [("MSS", 1400 + k), ("SAckOK", b""), ("Timestamp", (k, k + 1)), ("WScale", k % 15)]
        if k % 5 == 0:
            opts = [("NOP", None), ("SAck", (5000 + k, 6000 + k, 7000 + k, 8000 + k))]
        pkt = IP(src=sender[0], dst=receiver[0]) / TCP(
            sport=sender[1], dport=receiver[1], seq=1000 + 7 * k, ack=5000 + 3 * k, flags=flags, window=k,
            options=opts,
        ) / (b"x" * (k % 4))
        pkt.time = 1_700_000_000 + k / 1000
        packets.append(pkt)
    path = write_pcap(tmp_path / "flags.pcap", packets)
    conns = list(connections(path, NAMES))
    assert sum(c.packets for c in conns) == len(packets)
    for conn in conns:
        _agree(conn)


def test_the_c_ladder_writes_times_beyond_64_bits_as_python_does(fast_drawing):
    from array import array

    from netbed.tcp.scan import _speedups

    fl = array("H", [0x02, 0x12 | 1 << 9, 0x10])
    for first, stamps in ((10**20, [10**20 + 5, 2**70, 10**20]), (-(2**63), [10**20, 2**63 - 1, -(2**63)])):
        segs = [(ts, b"k", 100, 7, f & 0x1FF, 502, 0, b"", k + 1, 40, 60, 1) for k, (ts, f) in enumerate(zip(stamps, fl))]
        lines = _speedups.ladder_draw(segs, 0, fl, 0, 100, 7, first, b"", [], True, 60).split("\n")
        assert [line.split()[1] for line in lines] == [f"{(ts - first) / 1e9:.6f}" for ts in stamps]
